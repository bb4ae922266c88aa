//! Figures of what the engine did in a workspace, in total and per flow: entries, messages,
//! cancellations, and orders credited to nudges.

use std::collections::BTreeMap;

use nudge_core::store::{Figures, FlowFigures, StoreError};
use rust_decimal::Decimal;

use crate::SqlStore;
use crate::rows::{db_error, get};

/// Exit reasons that mean an order ended the run.
const ORDER_REASONS: &str = "('order_placed', 'order_by_same_contact', 'checkout_completed')";

pub(crate) async fn figures(
    store: &SqlStore,
    workspace_id: i64,
) -> Result<(Figures, Vec<(String, FlowFigures)>), StoreError> {
    let pool = &store.read;
    let mut total = Figures::default();
    let checkouts = sqlx::query(
        "SELECT COUNT(*) AS checkouts, \
         CAST(COALESCE(SUM(CASE WHEN abandoned_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS abandoned, \
         CAST(COALESCE(SUM(CASE WHEN status = 'emptied' THEN 1 ELSE 0 END), 0) AS BIGINT) AS emptied, \
         CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS completed \
         FROM checkouts WHERE workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    total.checkouts = count(get(&checkouts, "checkouts")?);
    total.abandoned = count(get(&checkouts, "abandoned")?);
    total.emptied = count(get(&checkouts, "emptied")?);
    total.completed = count(get(&checkouts, "completed")?);
    let orders = sqlx::query("SELECT COUNT(*) AS orders FROM orders WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
    total.orders = count(get(&orders, "orders")?);
    let conversations =
        sqlx::query("SELECT COUNT(*) AS conversations FROM conversations WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(pool)
            .await
            .map_err(db_error)?;
    total.conversations = count(get(&conversations, "conversations")?);
    let idle = sqlx::query(
        "SELECT COUNT(*) AS entered FROM runs WHERE workspace_id = $1 AND subject_kind = 'conversation'",
    )
    .bind(workspace_id)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    total.idle_entered = count(get(&idle, "entered")?);

    let mut per_flow: BTreeMap<String, FlowFigures> = BTreeMap::new();
    let runs = sqlx::query(&format!(
        "SELECT flow, COUNT(*) AS entered, \
         CAST(COALESCE(SUM(holdout), 0) AS BIGINT) AS holdout, \
         CAST(COALESCE(SUM(CASE WHEN holdout = 0 AND status = 'active' THEN steps_total - next_step ELSE 0 END), 0) AS BIGINT) AS pending, \
         CAST(COALESCE(SUM(CASE WHEN holdout = 0 AND status = 'exited' AND exit_reason IN {ORDER_REASONS} \
             THEN steps_total - next_step ELSE 0 END), 0) AS BIGINT) AS unsent_after_order, \
         CAST(COALESCE(SUM(CASE WHEN holdout = 0 AND credited_order IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS recovered, \
         CAST(COALESCE(SUM(CASE WHEN holdout = 1 AND credited_order IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS converted \
         FROM runs WHERE workspace_id = $1 GROUP BY flow"
    ))
    .bind(workspace_id)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    for row in &runs {
        let flow: String = get(row, "flow")?;
        let figures = per_flow.entry(flow).or_default();
        figures.entered = count(get(row, "entered")?);
        figures.holdout = count(get(row, "holdout")?);
        figures.pending = count(get(row, "pending")?);
        figures.cancelled_by_order = count(get(row, "unsent_after_order")?);
        figures.recovered_orders = count(get(row, "recovered")?);
        figures.holdout_converted = count(get(row, "converted")?);
    }
    let messages = sqlx::query(&format!(
        "SELECT flow, \
         CAST(COALESCE(SUM(CASE WHEN status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END), 0) AS BIGINT) AS sent, \
         CAST(COALESCE(SUM(CASE WHEN status = 'skipped' THEN 1 ELSE 0 END), 0) AS BIGINT) AS skipped, \
         CAST(COALESCE(SUM(CASE WHEN status = 'cancelled' AND reason IN {ORDER_REASONS} THEN 1 ELSE 0 END), 0) AS BIGINT) AS cancelled, \
         CAST(COALESCE(SUM(CASE WHEN status IN ('sent', 'delivered', 'read') AND kind = 'text' THEN 1 ELSE 0 END), 0) AS BIGINT) AS sent_text, \
         CAST(COALESCE(SUM(CASE WHEN status IN ('sent', 'delivered', 'read') AND kind = 'template' THEN 1 ELSE 0 END), 0) AS BIGINT) AS sent_template \
         FROM messages WHERE workspace_id = $1 AND run_id IS NOT NULL GROUP BY flow"
    ))
    .bind(workspace_id)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    for row in &messages {
        let flow: String = get(row, "flow")?;
        let figures = per_flow.entry(flow).or_default();
        figures.messages = count(get(row, "sent")?);
        figures.messages_skipped = count(get(row, "skipped")?);
        figures.cancelled_by_order += count(get(row, "cancelled")?);
        figures.messages_text = count(get(row, "sent_text")?);
        figures.messages_template = count(get(row, "sent_template")?);
    }
    let revenue = sqlx::query(
        "SELECT runs.flow AS flow, orders.total AS total FROM runs JOIN orders \
         ON orders.workspace_id = runs.workspace_id AND orders.external_id = runs.credited_order \
         WHERE runs.workspace_id = $1 AND runs.holdout = 0",
    )
    .bind(workspace_id)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let mut revenue_by_flow: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in &revenue {
        let flow: String = get(row, "flow")?;
        let amount: Option<String> = get(row, "total")?;
        let amount = amount
            .and_then(|text| text.parse::<Decimal>().ok())
            .unwrap_or_default();
        *revenue_by_flow.entry(flow).or_default() += amount;
    }
    let mut total_revenue = Decimal::ZERO;
    for (flow, figures) in per_flow.iter_mut() {
        let revenue = revenue_by_flow.get(flow).copied().unwrap_or_default();
        figures.recovered_revenue = revenue.normalize().to_string();
        total_revenue += revenue;
        total.entered += figures.entered;
        total.holdout += figures.holdout;
        total.messages += figures.messages;
        total.messages_skipped += figures.messages_skipped;
        total.cancelled_by_order += figures.cancelled_by_order;
        total.pending += figures.pending;
        total.recovered_orders += figures.recovered_orders;
        total.holdout_converted += figures.holdout_converted;
        total.messages_text += figures.messages_text;
        total.messages_template += figures.messages_template;
    }
    total.recovered_revenue = total_revenue.normalize().to_string();
    Ok((total, per_flow.into_iter().collect()))
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}
