//! Ingest: storing incoming events once and applying them through the engine, many events
//! per transaction.

use nudge_core::channel::ChannelKind;
use nudge_core::engine::{CheckoutState, Engine, IdleTimers, OrderFacts, normalise_contact};
use nudge_core::event::{CheckoutEvent, Event, OrderEvent};
use nudge_core::store::{Incoming, Ingested, StoreError};
use nudge_core::time::Timestamp;

use crate::SqlStore;
use crate::rows::{
    CHECKOUT_COLUMNS, Conn, RUN_COLUMNS, arm_timer, cancel_idle_timers, checkout_by_external,
    checkout_from_row, db_error, exit_run, get, idle_timer_key, json_error, lock_workspace, ms,
    placeholders, run_from_row, save_checkout,
};

pub(crate) async fn ingest(
    store: &SqlStore,
    engine: &Engine,
    batch: &[Incoming],
    now: Timestamp,
) -> Result<Vec<Ingested>, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut workspaces: Vec<i64> = batch.iter().map(|incoming| incoming.workspace_id).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    for workspace_id in workspaces {
        lock_workspace(store.backend, &mut tx, workspace_id).await?;
    }
    let mut results = Vec::with_capacity(batch.len());
    for incoming in batch {
        results.push(apply_one(&mut tx, engine, incoming, now).await?);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(results)
}

async fn apply_one(
    conn: &mut Conn,
    engine: &Engine,
    incoming: &Incoming,
    now: Timestamp,
) -> Result<Ingested, StoreError> {
    let body = serde_json::to_string(&incoming.event).map_err(json_error)?;
    let inserted = sqlx::query(
        "INSERT INTO events (workspace_id, source, dedupe_key, event_type, occurred_at, received_at, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (workspace_id, source, dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(incoming.workspace_id)
    .bind(&incoming.source)
    .bind(incoming.dedupe_key())
    .bind(incoming.event.type_name())
    .bind(ms(incoming.event.occurred_at()))
    .bind(ms(now))
    .bind(body)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    if inserted.is_none() {
        return Ok(Ingested::Duplicate);
    }
    match &incoming.event {
        Event::CheckoutUpdated(checkout) => {
            apply_checkout(conn, engine, incoming.workspace_id, checkout, now).await?;
            Ok(Ingested::Applied)
        }
        Event::OrderCreated(order) => {
            apply_order(conn, engine, incoming.workspace_id, order, now).await
        }
        Event::MessageInbound(message) => {
            crate::chat::apply_chat(
                conn,
                engine,
                incoming.workspace_id,
                message,
                true,
                None,
                now,
            )
            .await
        }
        Event::MessageOutbound(message) => {
            crate::chat::apply_chat(
                conn,
                engine,
                incoming.workspace_id,
                message,
                false,
                None,
                now,
            )
            .await
        }
    }
}

async fn apply_checkout(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    event: &CheckoutEvent,
    now: Timestamp,
) -> Result<(), StoreError> {
    let previous = checkout_by_external(conn, workspace_id, &event.id).await?;
    let orders = if needs_order_lookup(engine, previous.as_ref().map(|(_, state)| state), event) {
        let contact = normalise_contact(&event.contact, &engine.settings);
        let keys = Keys {
            checkout_id: Some(event.id.clone()),
            cart_token: event.cart_token.clone(),
            phone: contact.phone.map(|phone| phone.as_str().to_string()),
            email: contact.email,
        };
        stored_orders(conn, workspace_id, &keys).await?
    } else {
        Vec::new()
    };
    let outcome = engine.on_checkout(
        previous.as_ref().map(|(_, state)| state),
        event,
        &orders,
        now,
    );
    let checkout_id = save_checkout(conn, workspace_id, &outcome.state, None, now).await?;
    match &outcome.timers {
        IdleTimers::Arm(timers) => {
            for (flow, due_at) in timers {
                let key = idle_timer_key(checkout_id, flow);
                arm_timer(
                    conn,
                    workspace_id,
                    &key,
                    "idle",
                    checkout_id,
                    Some(flow),
                    *due_at,
                )
                .await?;
            }
        }
        IdleTimers::Cancel => cancel_idle_timers(conn, workspace_id, checkout_id).await?,
        IdleTimers::Keep => {}
    }
    if let Some(reason) = outcome.completed {
        let runs =
            runs_of_subjects(conn, workspace_id, std::slice::from_ref(&outcome.state.id)).await?;
        for run in runs {
            exit_run(conn, workspace_id, run.id, reason.as_str(), now).await?;
        }
    }
    Ok(())
}

/// Orders were already checked when the checkout was first seen with the same keys; look
/// again only for a new checkout or when an update brings a new way to match.
fn needs_order_lookup(
    engine: &Engine,
    previous: Option<&CheckoutState>,
    event: &CheckoutEvent,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    if previous.is_final() {
        return false;
    }
    let contact = normalise_contact(&event.contact, &engine.settings);
    let new_key = |new: Option<&str>, old: Option<&str>| new.is_some() && new != old;
    new_key(event.cart_token.as_deref(), previous.cart_token.as_deref())
        || new_key(
            contact.phone.as_ref().map(|phone| phone.as_str()),
            previous.phone.as_ref().map(|phone| phone.as_str()),
        )
        || new_key(contact.email.as_deref(), previous.email.as_deref())
}

/// The values by which an order and a checkout can match. A customer id is not one of them,
/// because it alone never ties an order to a checkout.
struct Keys {
    checkout_id: Option<String>,
    cart_token: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

async fn stored_orders(
    conn: &mut Conn,
    workspace_id: i64,
    keys: &Keys,
) -> Result<Vec<OrderFacts>, StoreError> {
    let rows = sqlx::query(
        "SELECT data FROM orders WHERE workspace_id = $1 AND (checkout_id = $2 OR cart_token = $3 \
         OR phone = $4 OR email = $5)",
    )
    .bind(workspace_id)
    .bind(keys.checkout_id.as_deref())
    .bind(keys.cart_token.as_deref())
    .bind(keys.phone.as_deref())
    .bind(keys.email.as_deref())
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let data: String = get(row, "data")?;
            serde_json::from_str(&data).map_err(json_error)
        })
        .collect()
}

async fn apply_order(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    event: &OrderEvent,
    now: Timestamp,
) -> Result<Ingested, StoreError> {
    let facts = engine.order_facts(event);
    let data = serde_json::to_string(&facts).map_err(json_error)?;
    let phone = facts.phone.as_ref().map(|phone| phone.as_str().to_string());
    let inserted = sqlx::query(
        "INSERT INTO orders (workspace_id, external_id, checkout_id, cart_token, phone, email, \
         customer_id, occurred_at, total, currency, data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (workspace_id, external_id) DO NOTHING RETURNING id",
    )
    .bind(workspace_id)
    .bind(&facts.id)
    .bind(facts.checkout_id.as_deref())
    .bind(facts.cart_token.as_deref())
    .bind(phone.as_deref())
    .bind(facts.email.as_deref())
    .bind(facts.customer_id.as_deref())
    .bind(ms(facts.occurred_at))
    .bind(facts.total.map(|total| total.to_string()))
    .bind(facts.currency.as_deref())
    .bind(data)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    if inserted.is_none() {
        // The same order through another delivery: it was applied then.
        return Ok(Ingested::Duplicate);
    }
    let keys = Keys {
        checkout_id: facts.checkout_id.clone(),
        cart_token: facts.cart_token.clone(),
        phone,
        email: facts.email.clone(),
    };
    let checkouts = candidate_checkouts(conn, workspace_id, &keys).await?;
    let ids: Vec<String> = checkouts
        .iter()
        .map(|(_, state)| state.id.clone())
        .collect();
    let mut runs = runs_of_subjects(conn, workspace_id, &ids).await?;
    // Conversations with the same phone number: an order ends their follow-ups too.
    if let Some(phone) = &keys.phone {
        for channel in [ChannelKind::Whatsapp, ChannelKind::Sms] {
            if let Some((id, _)) =
                crate::chat::conversation_by_contact(conn, workspace_id, channel, phone).await?
            {
                runs.extend(crate::chat::runs_of_conversation(conn, workspace_id, id).await?);
            }
        }
    }
    let states: Vec<CheckoutState> = checkouts.iter().map(|(_, state)| state.clone()).collect();
    let outcome = engine.on_order(&facts, &states, &runs);

    for (external_id, _rule) in &outcome.completed {
        let Some((checkout_id, state)) =
            checkouts.iter().find(|(_, state)| &state.id == external_id)
        else {
            continue;
        };
        let completed = CheckoutState {
            status: nudge_core::engine::CheckoutStatus::Completed,
            completed_by: Some(facts.id.clone()),
            ..state.clone()
        };
        save_checkout(conn, workspace_id, &completed, None, now).await?;
        cancel_idle_timers(conn, workspace_id, *checkout_id).await?;
    }
    for exit in &outcome.exits {
        exit_run(conn, workspace_id, exit.run_id, exit.reason.as_str(), now).await?;
    }
    for run_id in outcome
        .credited_run
        .iter()
        .chain(outcome.control_run.iter())
    {
        sqlx::query(
            "UPDATE runs SET credited_order = $1 WHERE workspace_id = $2 AND id = $3 AND credited_order IS NULL",
        )
        .bind(&facts.id)
        .bind(workspace_id)
        .bind(*run_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(Ingested::Applied)
}

async fn candidate_checkouts(
    conn: &mut Conn,
    workspace_id: i64,
    keys: &Keys,
) -> Result<Vec<(i64, CheckoutState)>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE workspace_id = $1 AND (external_id = $2 \
         OR cart_token = $3 OR phone = $4 OR email = $5) ORDER BY id"
    ))
    .bind(workspace_id)
    .bind(keys.checkout_id.as_deref())
    .bind(keys.cart_token.as_deref())
    .bind(keys.phone.as_deref())
    .bind(keys.email.as_deref())
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    rows.iter().map(checkout_from_row).collect()
}

/// Loads every run on the given checkouts.
pub(crate) async fn runs_of_subjects(
    conn: &mut Conn,
    workspace_id: i64,
    checkout_ids: &[String],
) -> Result<Vec<nudge_core::engine::RunFacts>, StoreError> {
    let mut runs = Vec::new();
    // Bounded IN lists keep each statement under both databases' parameter limits.
    for chunk in checkout_ids.chunks(500) {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND subject_kind = 'checkout' \
             AND subject_id IN ({}) ORDER BY id",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(workspace_id);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(&mut *conn).await.map_err(db_error)?;
        for row in &rows {
            runs.push(run_from_row(row)?);
        }
    }
    Ok(runs)
}
