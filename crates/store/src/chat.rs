//! Conversations: applying chat messages through the engine, the transcript, agent messages,
//! hold requests, and provider delivery reports.

use nudge_core::channel::{ChannelKind, MessageKind};
use nudge_core::engine::{ConversationState, Engine, IdleTimers, RunFacts};
use nudge_core::event::{Author, ChatMessageEvent};
use nudge_core::store::{
    ConversationDetail, ConversationSummary, HoldView, Ingested, ProviderStatus, RunView,
    StoreError, TranscriptEntry,
};
use nudge_core::time::Timestamp;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::outbox::suppress;
use crate::rows::{
    Conn, RUN_COLUMNS, arm_timer, db_error, exit_run, get, json_error, lock_workspace, ms,
    run_from_row, ts,
};

pub(crate) fn conversation_timer_key(conversation_id: i64, flow: &str) -> String {
    format!("conv:{conversation_id}:{flow}")
}

pub(crate) async fn conversation_by_contact(
    conn: &mut Conn,
    workspace_id: i64,
    channel: ChannelKind,
    contact: &str,
) -> Result<Option<(i64, ConversationState)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, data FROM conversations WHERE workspace_id = $1 AND channel = $2 AND contact = $3",
    )
    .bind(workspace_id)
    .bind(channel.as_str())
    .bind(contact)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    row.as_ref().map(conversation_from_row).transpose()
}

pub(crate) async fn conversation_by_id(
    conn: &mut Conn,
    workspace_id: i64,
    id: i64,
) -> Result<Option<(i64, ConversationState)>, StoreError> {
    let row = sqlx::query("SELECT id, data FROM conversations WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    row.as_ref().map(conversation_from_row).transpose()
}

fn conversation_from_row(row: &AnyRow) -> Result<(i64, ConversationState), StoreError> {
    let id: i64 = get(row, "id")?;
    let data: String = get(row, "data")?;
    Ok((id, serde_json::from_str(&data).map_err(json_error)?))
}

pub(crate) async fn save_conversation(
    conn: &mut Conn,
    workspace_id: i64,
    state: &ConversationState,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let data = serde_json::to_string(state).map_err(json_error)?;
    let row = sqlx::query(
        "INSERT INTO conversations (workspace_id, channel, contact, paused, last_inbound_at, \
         last_outbound_at, data, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (workspace_id, channel, contact) DO UPDATE SET paused = excluded.paused, \
         last_inbound_at = excluded.last_inbound_at, last_outbound_at = excluded.last_outbound_at, \
         data = excluded.data, updated_at = excluded.updated_at RETURNING id",
    )
    .bind(workspace_id)
    .bind(state.channel.as_str())
    .bind(&state.contact)
    .bind(i64::from(state.paused))
    .bind(state.last_inbound_at.map(ms))
    .bind(state.last_outbound_at.map(ms))
    .bind(data)
    .bind(ms(now))
    .fetch_one(conn)
    .await
    .map_err(db_error)?;
    get(&row, "id")
}

pub(crate) async fn runs_of_conversation(
    conn: &mut Conn,
    workspace_id: i64,
    conversation_id: i64,
) -> Result<Vec<RunFacts>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND subject_kind = 'conversation' \
         AND subject_id = $2 ORDER BY id"
    ))
    .bind(workspace_id)
    .bind(conversation_id.to_string())
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    rows.iter().map(run_from_row).collect()
}

/// Applies a chat message; `message_id` links an entry to the outbox message it records.
pub(crate) async fn apply_chat(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    event: &ChatMessageEvent,
    inbound: bool,
    message_id: Option<i64>,
    now: Timestamp,
) -> Result<Ingested, StoreError> {
    let Some((contact, _)) = engine.chat_address(event) else {
        return Err(StoreError::Other(
            "chat message without a usable contact".into(),
        ));
    };
    if let Some(id) = &event.id {
        // The same provider message through another delivery path.
        let seen = sqlx::query(
            "SELECT 1 AS hit FROM conversation_messages WHERE workspace_id = $1 AND provider_message_id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        if seen.is_some() {
            return Ok(Ingested::Duplicate);
        }
    }
    let previous = conversation_by_contact(conn, workspace_id, event.channel, &contact).await?;
    let mut runs = match &previous {
        Some((id, _)) => runs_of_conversation(conn, workspace_id, *id).await?,
        None => Vec::new(),
    };
    // Cart runs of the same phone number: a reply, an opt-out or an agent stepping in stops
    // those too.
    if contact.starts_with('+') {
        let checkouts =
            sqlx::query("SELECT external_id FROM checkouts WHERE workspace_id = $1 AND phone = $2")
                .bind(workspace_id)
                .bind(&contact)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)?;
        let ids = checkouts
            .iter()
            .map(|row| get::<String>(row, "external_id"))
            .collect::<Result<Vec<_>, _>>()?;
        runs.extend(crate::apply::runs_of_subjects(conn, workspace_id, &ids).await?);
    }
    let Some(outcome) = engine.on_chat_message(
        previous.as_ref().map(|(_, state)| state),
        event,
        inbound,
        &runs,
        now,
    ) else {
        return Err(StoreError::Other(
            "chat message without a usable contact".into(),
        ));
    };
    let conversation_id = save_conversation(conn, workspace_id, &outcome.state, now).await?;
    let quote = outcome.quote.as_ref();
    let kind = event.kind.clone().unwrap_or_else(|| "text".into());
    sqlx::query(
        "INSERT INTO conversation_messages (workspace_id, conversation_id, direction, author, kind, body, \
         provider_message_id, message_id, quote_amount, quote_currency, quote_product, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(workspace_id)
    .bind(conversation_id)
    .bind(if inbound { "inbound" } else { "outbound" })
    .bind(outcome.author.as_str())
    .bind(kind)
    .bind(&event.text)
    .bind(event.id.as_deref())
    .bind(message_id)
    .bind(quote.map(|quote| quote.amount.to_string()))
    .bind(quote.map(|quote| quote.currency.clone()))
    .bind(quote.and_then(|quote| quote.product.clone()))
    .bind(ms(event.occurred_at.min(now)))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    match &outcome.timers {
        IdleTimers::Arm(timers) => {
            for (flow, due_at) in timers {
                let key = conversation_timer_key(conversation_id, flow);
                arm_timer(
                    conn,
                    workspace_id,
                    &key,
                    "conversation_idle",
                    conversation_id,
                    Some(flow),
                    *due_at,
                )
                .await?;
            }
        }
        IdleTimers::Cancel => {
            sqlx::query(
                "DELETE FROM timers WHERE workspace_id = $1 AND kind = 'conversation_idle' AND subject_id = $2",
            )
            .bind(workspace_id)
            .bind(conversation_id)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
        IdleTimers::Keep => {}
    }
    for exit in &outcome.exits {
        exit_run(conn, workspace_id, exit.run_id, exit.reason.as_str(), now).await?;
    }
    match outcome.opt_out {
        Some(true) => {
            suppress(
                conn,
                workspace_id,
                &outcome.state.contact,
                "reply:opt-out",
                now,
            )
            .await?
        }
        Some(false) => {
            sqlx::query("DELETE FROM suppressions WHERE workspace_id = $1 AND address = $2")
                .bind(workspace_id)
                .bind(&outcome.state.contact)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        None => {}
    }
    if let Some(hold) = &outcome.hold {
        sqlx::query(
            "INSERT INTO holds (workspace_id, conversation_id, run_id, contact, product, status, requested_at) \
             VALUES ($1, $2, $3, $4, $5, 'open', $6) ON CONFLICT (workspace_id, run_id) DO NOTHING",
        )
        .bind(workspace_id)
        .bind(conversation_id)
        .bind(hold.run_id)
        .bind(&outcome.state.contact)
        .bind(hold.product.as_deref())
        .bind(ms(hold.at))
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    if outcome.paused_now {
        tracing::info!(
            conversation = conversation_id,
            "agent took over; automation paused for the contact"
        );
    }
    Ok(Ingested::Applied)
}

/// Records a message nudge sent into the conversation's transcript.
pub(crate) async fn record_automation(
    conn: &mut Conn,
    workspace_id: i64,
    conversation_id: i64,
    message_id: i64,
    kind: MessageKind,
    body: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversation_messages (workspace_id, conversation_id, direction, author, kind, body, \
         message_id, occurred_at) VALUES ($1, $2, 'outbound', 'automation', $3, $4, $5, $6)",
    )
    .bind(workspace_id)
    .bind(conversation_id)
    .bind(kind.as_str())
    .bind(body)
    .bind(message_id)
    .bind(ms(now))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(crate) async fn send_agent_message(
    store: &SqlStore,
    engine: &Engine,
    workspace_id: i64,
    conversation_id: i64,
    text: &str,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let mut tx = store.begin_write().await?;
    lock_workspace(store.backend, &mut tx, workspace_id).await?;
    let Some((_, state)) = conversation_by_id(&mut tx, workspace_id, conversation_id).await? else {
        return Err(StoreError::NotFound);
    };
    if state.channel == ChannelKind::Whatsapp && !state.window_open(now) {
        return Err(StoreError::Conflict(
            "the WhatsApp customer-service window is closed (24 h after the customer's last message); \
             only an approved template may be sent"
                .into(),
        ));
    }
    let Some(phone) = &state.phone else {
        return Err(StoreError::Conflict(
            "the contact has no phone number to send to".into(),
        ));
    };
    let key = format!("agent:{conversation_id}:{}", now.as_millisecond());
    let row = sqlx::query(
        "INSERT INTO messages (workspace_id, run_id, step, idempotency_key, flow, channel, kind, to_address, \
         body, segments, status, created_at, updated_at, window_closes_at) \
         VALUES ($1, NULL, 0, $2, 'agent', $3, 'text', $4, $5, 1, 'queued', $6, $6, $7) RETURNING id",
    )
    .bind(workspace_id)
    .bind(&key)
    .bind(state.channel.as_str())
    .bind(phone.as_str())
    .bind(text)
    .bind(ms(now))
    .bind(state.window_closes_at().map(ms))
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let message_id: i64 = get(&row, "id")?;
    sqlx::query("INSERT INTO outbox (message_id, workspace_id, state, not_before) VALUES ($1, $2, 'queued', $3)")
        .bind(message_id)
        .bind(workspace_id)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let event = ChatMessageEvent {
        id: None,
        occurred_at: now,
        contact: nudge_core::event::ContactInput {
            phone: Some(phone.as_str().to_string()),
            ..Default::default()
        },
        channel: state.channel,
        text: text.to_string(),
        kind: None,
        author: Some(Author::Agent),
        product: None,
        price: None,
        currency: None,
    };
    apply_chat(
        &mut tx,
        engine,
        workspace_id,
        &event,
        false,
        Some(message_id),
        now,
    )
    .await?;
    tx.commit().await.map_err(db_error)?;
    Ok(message_id)
}

pub(crate) async fn resume(
    store: &SqlStore,
    workspace_id: i64,
    id: i64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    lock_workspace(store.backend, &mut tx, workspace_id).await?;
    let Some((_, mut state)) = conversation_by_id(&mut tx, workspace_id, id).await? else {
        return Ok(false);
    };
    state.paused = false;
    save_conversation(&mut tx, workspace_id, &state, now).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(true)
}

fn summary_from(id: i64, state: &ConversationState) -> ConversationSummary {
    ConversationSummary {
        id,
        contact: state.contact.clone(),
        channel: state.channel,
        name: state.name.clone(),
        paused: state.paused,
        last_inbound_at: state.last_inbound_at,
        last_outbound_at: state.last_outbound_at,
        last_speaker: state.last_speaker,
        quote: state.quote.clone(),
        product: state.product().map(str::to_string),
        window_closes_at: state.window_closes_at(),
    }
}

pub(crate) async fn list(
    store: &SqlStore,
    workspace_id: i64,
    limit: usize,
) -> Result<Vec<ConversationSummary>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, data FROM conversations WHERE workspace_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
    )
    .bind(workspace_id)
    .bind(i64::try_from(limit.clamp(1, 500)).unwrap_or(50))
    .fetch_all(&store.read)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|row| conversation_from_row(row).map(|(id, state)| summary_from(id, &state)))
        .collect()
}

pub(crate) async fn detail(
    store: &SqlStore,
    workspace_id: i64,
    id: i64,
) -> Result<Option<ConversationDetail>, StoreError> {
    let mut conn = store.read.acquire().await.map_err(db_error)?;
    let Some((id, state)) = conversation_by_id(&mut conn, workspace_id, id).await? else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT conversation_messages.direction, conversation_messages.author, conversation_messages.kind, \
         conversation_messages.body, conversation_messages.occurred_at, conversation_messages.message_id, \
         conversation_messages.quote_amount, conversation_messages.quote_currency, \
         conversation_messages.quote_product, messages.status \
         FROM conversation_messages LEFT JOIN messages ON messages.id = conversation_messages.message_id \
         WHERE conversation_messages.workspace_id = $1 AND conversation_messages.conversation_id = $2 \
         ORDER BY conversation_messages.occurred_at, conversation_messages.id",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let transcript = rows
        .iter()
        .map(|row| {
            let at = ts(get(row, "occurred_at")?);
            let amount: Option<String> = get(row, "quote_amount")?;
            let currency: Option<String> = get(row, "quote_currency")?;
            let quote = match (amount.and_then(|text| text.parse().ok()), currency) {
                (Some(amount), Some(currency)) => Some(nudge_core::engine::Quote {
                    amount,
                    currency,
                    product: get(row, "quote_product")?,
                    at,
                }),
                _ => None,
            };
            Ok(TranscriptEntry {
                direction: get(row, "direction")?,
                author: get(row, "author")?,
                kind: get(row, "kind")?,
                body: get(row, "body")?,
                at,
                quote,
                message_id: get(row, "message_id")?,
                status: get(row, "status")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let runs = sqlx::query(
        "SELECT id, flow, status, exit_reason, holdout, entered_at, next_step, steps_total FROM runs \
         WHERE workspace_id = $1 AND subject_kind = 'conversation' AND subject_id = $2 ORDER BY id",
    )
    .bind(workspace_id)
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?
    .iter()
    .map(|row| {
        Ok(RunView {
            id: get(row, "id")?,
            flow: get(row, "flow")?,
            status: get(row, "status")?,
            exit_reason: get(row, "exit_reason")?,
            holdout: get::<i64>(row, "holdout")? != 0,
            entered_at: ts(get(row, "entered_at")?),
            next_step: get(row, "next_step")?,
            steps_total: get(row, "steps_total")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let holds = holds_where(&mut conn, workspace_id, "conversation_id = $2", id).await?;
    Ok(Some(ConversationDetail {
        summary: summary_from(id, &state),
        transcript,
        runs,
        holds,
    }))
}

async fn holds_where(
    conn: &mut Conn,
    workspace_id: i64,
    filter: &str,
    value: i64,
) -> Result<Vec<HoldView>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id, conversation_id, run_id, contact, product, status, requested_at, resolved_at, resolution \
         FROM holds WHERE workspace_id = $1 AND {filter} ORDER BY requested_at DESC, id DESC"
    ))
    .bind(workspace_id)
    .bind(value)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    rows.iter().map(hold_from_row).collect()
}

fn hold_from_row(row: &AnyRow) -> Result<HoldView, StoreError> {
    Ok(HoldView {
        id: get(row, "id")?,
        conversation_id: get(row, "conversation_id")?,
        run_id: get(row, "run_id")?,
        contact: get(row, "contact")?,
        product: get(row, "product")?,
        status: get(row, "status")?,
        requested_at: ts(get(row, "requested_at")?),
        resolved_at: get::<Option<i64>>(row, "resolved_at")?.map(ts),
        resolution: get(row, "resolution")?,
    })
}

pub(crate) async fn holds(
    store: &SqlStore,
    workspace_id: i64,
    status: Option<&str>,
) -> Result<Vec<HoldView>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, conversation_id, run_id, contact, product, status, requested_at, resolved_at, resolution \
         FROM holds WHERE workspace_id = $1 AND ($2 = '' OR status = $2) ORDER BY requested_at DESC, id DESC LIMIT 500",
    )
    .bind(workspace_id)
    .bind(status.unwrap_or_default())
    .fetch_all(&store.read)
    .await
    .map_err(db_error)?;
    rows.iter().map(hold_from_row).collect()
}

pub(crate) async fn resolve_hold(
    store: &SqlStore,
    workspace_id: i64,
    id: i64,
    resolution: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE holds SET status = 'resolved', resolved_at = $1, resolution = $2 \
         WHERE workspace_id = $3 AND id = $4 AND status = 'open'",
    )
    .bind(ms(now))
    .bind(resolution)
    .bind(workspace_id)
    .bind(id)
    .execute(&store.write)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(changed > 0)
}

/// Status ranks: a message never moves back to an earlier status, and `failed` is final.
fn rank(status: &str) -> i64 {
    match status {
        "queued" => 0,
        "sending" => 1,
        "unknown" => 2,
        "sent" => 3,
        "delivered" => 4,
        "read" => 5,
        "failed" => 6,
        _ => -1,
    }
}

pub(crate) async fn record_statuses(
    store: &SqlStore,
    workspace_id: i64,
    statuses: &[ProviderStatus],
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut fresh = 0;
    for status in statuses {
        let inserted = sqlx::query(
            "INSERT INTO message_statuses (workspace_id, provider_message_id, status, error_code, error_title, \
             occurred_at, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (workspace_id, provider_message_id, status) DO NOTHING RETURNING id",
        )
        .bind(workspace_id)
        .bind(&status.provider_message_id)
        .bind(&status.status)
        .bind(status.error_code.as_deref())
        .bind(status.error_title.as_deref())
        .bind(ms(status.at))
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.is_some() {
            fresh += 1;
            apply_status(&mut tx, workspace_id, status, now).await?;
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(fresh)
}

/// Moves a message forward to a reported status. A report for a message whose send has not
/// been recorded yet stays in `message_statuses` and is applied when the send is recorded.
async fn apply_status(
    conn: &mut Conn,
    workspace_id: i64,
    status: &ProviderStatus,
    now: Timestamp,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT id, status FROM messages WHERE workspace_id = $1 AND provider_message_id = $2",
    )
    .bind(workspace_id)
    .bind(&status.provider_message_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(row) = row else {
        return Ok(());
    };
    let id: i64 = get(&row, "id")?;
    let current: String = get(&row, "status")?;
    if rank(&status.status) <= rank(&current) {
        return Ok(());
    }
    let reason = match (&status.error_code, &status.error_title) {
        (Some(code), Some(title)) => Some(format!("{code}: {title}")),
        (Some(code), None) => Some(code.clone()),
        _ => None,
    };
    sqlx::query("UPDATE messages SET status = $1, reason = COALESCE($2, reason), updated_at = $3 WHERE id = $4")
        .bind(&status.status)
        .bind(reason)
        .bind(ms(now))
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    if status.status == "failed" && status.error_code.as_deref() == Some(WINDOW_CLOSED_CODE) {
        queue_template_fallback(conn, workspace_id, id, now).await?;
    }
    Ok(())
}

/// WhatsApp's error for a free-form message outside the customer-service window.
const WINDOW_CLOSED_CODE: &str = "131047";

/// After WhatsApp refused a text for the closed window, sends the step's template instead,
/// once: the fallback's idempotency key is the text's key plus `:template`.
async fn queue_template_fallback(
    conn: &mut Conn,
    workspace_id: i64,
    failed_id: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO messages (workspace_id, run_id, step, idempotency_key, flow, channel, kind, to_address, \
         body, template, segments, status, reason, created_at, updated_at) \
         SELECT workspace_id, run_id, step, idempotency_key || ':template', flow, channel, 'template', \
         to_address, body, template, 1, 'queued', 'template after 131047', $1, $1 FROM messages \
         WHERE id = $2 AND kind = 'text' AND template IS NOT NULL AND run_id IS NOT NULL \
         AND idempotency_key NOT LIKE '%:template' \
         ON CONFLICT (workspace_id, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(ms(now))
    .bind(failed_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    if let Some(row) = inserted {
        let id: i64 = get(&row, "id")?;
        sqlx::query("INSERT INTO outbox (message_id, workspace_id, state, not_before) VALUES ($1, $2, 'queued', $3)")
            .bind(id)
            .bind(workspace_id)
            .bind(ms(now))
            .execute(conn)
            .await
            .map_err(db_error)?;
        tracing::info!(
            message = failed_id,
            fallback = id,
            "text refused outside the window; template queued"
        );
    }
    Ok(())
}

/// Applies reports that arrived before the send of `message_id` was recorded.
pub(crate) async fn apply_pending_statuses(
    conn: &mut Conn,
    workspace_id: i64,
    provider_message_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT status, error_code, error_title, occurred_at FROM message_statuses \
         WHERE workspace_id = $1 AND provider_message_id = $2",
    )
    .bind(workspace_id)
    .bind(provider_message_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    for row in &rows {
        let status = ProviderStatus {
            provider_message_id: provider_message_id.to_string(),
            status: get(row, "status")?,
            error_code: get(row, "error_code")?,
            error_title: get(row, "error_title")?,
            at: ts(get(row, "occurred_at")?),
        };
        apply_status(conn, workspace_id, &status, now).await?;
    }
    Ok(())
}

pub(crate) async fn switch_to_template(
    store: &SqlStore,
    message_id: i64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE messages SET kind = 'template', updated_at = $1 WHERE id = $2 AND kind = 'text' AND template IS NOT NULL",
    )
    .bind(ms(now))
    .bind(message_id)
    .execute(&store.write)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(changed > 0)
}
