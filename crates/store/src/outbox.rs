//! The outbox: queuing decided messages, claiming them for sending, and recording how each
//! send ended.
//!
//! A claimed message is `sending` before any provider call; a worker that dies during the
//! call leaves it so, and `stale` hands it to reconciliation rather than back to the queue,
//! so a message is never sent twice.

use nudge_core::channel::{ChannelKind, MessageKind, OutboundMessage, TemplateMessage};
use nudge_core::engine::{NewMessage, RunFacts};
use nudge_core::store::{Claim, ClaimedMessage, SendResult, StoreError};
use nudge_core::time::{Timestamp, add};
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::connect::Backend;
use crate::rows::{Conn, cancel_queued_messages, db_error, get, json_error, ms, placeholders};
use crate::timers::claim_time;

/// Queues a message and its short link; returns its id, or `None` if the step already had a
/// message.
pub(crate) async fn queue_message(
    conn: &mut Conn,
    workspace_id: i64,
    run: &RunFacts,
    flow: &str,
    message: &NewMessage,
    now: Timestamp,
) -> Result<Option<i64>, StoreError> {
    let template = message
        .template
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_error)?;
    let row = sqlx::query(
        "INSERT INTO messages (workspace_id, run_id, step, idempotency_key, flow, channel, kind, \
         to_address, body, template, encoding, segments, status, link_token, created_at, updated_at, \
         window_closes_at, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $14, $14, $15, $16) \
         ON CONFLICT (workspace_id, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(workspace_id)
    .bind(run.id)
    .bind(i64::try_from(message.step).unwrap_or_default())
    .bind(idempotency_key(run.id, message.step))
    .bind(flow)
    .bind(message.channel.as_str())
    .bind(message.kind.as_str())
    .bind(&message.to)
    .bind(&message.body)
    .bind(template)
    .bind(message.encoding.map(|encoding| encoding.as_str()))
    .bind(i64::try_from(message.segments).unwrap_or_default())
    .bind(message.link.as_ref().map(|link| link.token.as_str()))
    .bind(ms(now))
    .bind(message.window_closes_at.map(ms))
    .bind(message.warning)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let message_id: i64 = get(&row, "id")?;
    if let Some(link) = &message.link {
        sqlx::query(
            "INSERT INTO links (token, workspace_id, message_id, target, campaign, medium, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&link.token)
        .bind(workspace_id)
        .bind(message_id)
        .bind(&link.target)
        .bind(flow)
        .bind(message.channel.as_str())
        .bind(ms(now))
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    sqlx::query(
        "INSERT INTO outbox (message_id, workspace_id, state, not_before) VALUES ($1, $2, 'queued', $3)",
    )
    .bind(message_id)
    .bind(workspace_id)
    .bind(ms(now))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(Some(message_id))
}

/// Builds the key that makes a message unique: one per run and step.
pub(crate) fn idempotency_key(run_id: i64, step: usize) -> String {
    format!("{run_id}:{step}")
}

/// Records a step that was passed over, so the merchant can tell why nothing went out.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_skipped(
    conn: &mut Conn,
    workspace_id: i64,
    run: &RunFacts,
    step: usize,
    channel: ChannelKind,
    to: &str,
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO messages (workspace_id, run_id, step, idempotency_key, flow, channel, kind, \
         to_address, body, segments, status, reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'text', $7, '', 0, 'skipped', $8, $9, $9) \
         ON CONFLICT (workspace_id, idempotency_key) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(run.id)
    .bind(i64::try_from(step).unwrap_or_default())
    .bind(idempotency_key(run.id, step))
    .bind(&run.flow)
    .bind(channel.as_str())
    .bind(to)
    .bind(reason)
    .bind(ms(now))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

const CLAIMED_COLUMNS: &str = "messages.id, messages.workspace_id, messages.idempotency_key, \
    messages.flow, messages.channel, messages.kind, messages.to_address, messages.body, \
    messages.template, messages.attempts, messages.window_closes_at";

fn claimed_from_row(row: &AnyRow) -> Result<ClaimedMessage, StoreError> {
    let channel: String = get(row, "channel")?;
    let kind: String = get(row, "kind")?;
    let template: Option<String> = get(row, "template")?;
    let template: Option<TemplateMessage> = template
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(json_error)?;
    let attempts: i64 = get(row, "attempts")?;
    Ok(ClaimedMessage {
        message: OutboundMessage {
            message_id: get(row, "id")?,
            workspace_id: get(row, "workspace_id")?,
            idempotency_key: get(row, "idempotency_key")?,
            channel: ChannelKind::parse(&channel)
                .ok_or_else(|| StoreError::Other(format!("unknown channel {channel:?}")))?,
            to: get(row, "to_address")?,
            kind: MessageKind::parse(&kind)
                .ok_or_else(|| StoreError::Other(format!("unknown message kind {kind:?}")))?,
            body: get(row, "body")?,
            template,
        },
        flow: get(row, "flow")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        window_closes_at: get::<Option<i64>>(row, "window_closes_at")?.map(crate::rows::ts),
    })
}

/// Queued messages whose run stopped or whose address opted out since they were queued.
const INELIGIBLE: &str = "(EXISTS (SELECT 1 FROM runs WHERE runs.id = messages.run_id \
    AND runs.status = 'exited') OR EXISTS (SELECT 1 FROM suppressions \
    WHERE suppressions.workspace_id = messages.workspace_id AND suppressions.address = messages.to_address))";

pub(crate) async fn claim(
    store: &SqlStore,
    claim: &Claim,
) -> Result<Vec<ClaimedMessage>, StoreError> {
    let now = claim_time(store, claim).await?;
    // Claims run per workspace, so that each transaction touches one workspace's rows.
    let workspaces = sqlx::query(
        "SELECT DISTINCT workspace_id FROM outbox WHERE state = 'queued' AND not_before <= $1 LIMIT 64",
    )
    .bind(ms(now))
    .fetch_all(&store.read)
    .await
    .map_err(db_error)?;
    let mut claimed = Vec::new();
    for row in &workspaces {
        let workspace_id: i64 = get(row, "workspace_id")?;
        let room = claim.limit.saturating_sub(claimed.len());
        if room == 0 {
            break;
        }
        claimed.extend(claim_in_workspace(store, claim, workspace_id, room, now).await?);
    }
    Ok(claimed)
}

async fn claim_in_workspace(
    store: &SqlStore,
    claim: &Claim,
    workspace_id: i64,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<ClaimedMessage>, StoreError> {
    let mut tx = store.begin_write().await?;
    let lock = match store.backend {
        Backend::Postgres => "FOR UPDATE OF outbox SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Re-check eligibility inside the claiming transaction: cancel what may no longer go.
    let ineligible = sqlx::query(&format!(
        "SELECT outbox.message_id AS id, CASE WHEN EXISTS (SELECT 1 FROM suppressions \
         WHERE suppressions.workspace_id = messages.workspace_id \
         AND suppressions.address = messages.to_address) THEN 'opted_out' ELSE 'run_exited' END AS reason \
         FROM outbox JOIN messages ON messages.id = outbox.message_id \
         WHERE outbox.workspace_id = $3 AND outbox.state = 'queued' AND outbox.not_before <= $1 \
         AND {INELIGIBLE} ORDER BY outbox.not_before LIMIT $2 {lock}"
    ))
    .bind(ms(now))
    .bind(limit)
    .bind(workspace_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    for row in &ineligible {
        let id: i64 = get(row, "id")?;
        let reason: String = get(row, "reason")?;
        sqlx::query(
            "UPDATE messages SET status = 'cancelled', reason = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(&reason)
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM outbox WHERE message_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    let lease_until = ms(add(now, claim.lease));
    let rows = match store.backend {
        Backend::Postgres => {
            // One statement claims the rows and marks their messages `sending`.
            sqlx::query(&format!(
                "WITH picked AS (SELECT outbox.message_id FROM outbox \
                 JOIN messages ON messages.id = outbox.message_id \
                 WHERE outbox.workspace_id = $5 AND outbox.state = 'queued' AND outbox.not_before <= $1 \
                 AND NOT {INELIGIBLE} \
                 ORDER BY outbox.not_before, outbox.message_id LIMIT $2 FOR UPDATE OF outbox SKIP LOCKED), \
                 claimed AS (UPDATE outbox SET state = 'sending', lease_owner = $3, lease_until = $4 \
                 FROM picked WHERE outbox.message_id = picked.message_id RETURNING outbox.message_id) \
                 UPDATE messages SET status = 'sending', attempts = messages.attempts + 1, updated_at = $1, \
                 claimed_by = $3 FROM claimed WHERE messages.id = claimed.message_id RETURNING {CLAIMED_COLUMNS}"
            ))
            .bind(ms(now))
            .bind(limit)
            .bind(&claim.worker)
            .bind(lease_until)
            .bind(workspace_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
        }
        Backend::Sqlite => {
            // The transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE), so no other
            // writer can claim between this select and the update.
            let picked = sqlx::query(&format!(
                "SELECT outbox.message_id AS id FROM outbox JOIN messages ON messages.id = outbox.message_id \
                 WHERE outbox.workspace_id = $3 AND outbox.state = 'queued' AND outbox.not_before <= $1 \
                 AND NOT {INELIGIBLE} ORDER BY outbox.not_before, outbox.message_id LIMIT $2"
            ))
            .bind(ms(now))
            .bind(limit)
            .bind(workspace_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            let ids = picked
                .iter()
                .map(|row| get::<i64>(row, "id"))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.is_empty() {
                Vec::new()
            } else {
                let claim_sql = format!(
                    "UPDATE outbox SET state = 'sending', lease_owner = $1, lease_until = $2 \
                     WHERE state = 'queued' AND message_id IN ({})",
                    placeholders(3, ids.len())
                );
                let mut update = sqlx::query(&claim_sql)
                    .bind(&claim.worker)
                    .bind(lease_until);
                for id in &ids {
                    update = update.bind(*id);
                }
                update.execute(&mut *tx).await.map_err(db_error)?;
                let mark_sql = format!(
                    "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = $1, \
                     claimed_by = $2 WHERE id IN ({}) RETURNING {}",
                    placeholders(3, ids.len()),
                    CLAIMED_COLUMNS.replace("messages.", "")
                );
                let mut mark = sqlx::query(&mark_sql).bind(ms(now)).bind(&claim.worker);
                for id in &ids {
                    mark = mark.bind(*id);
                }
                mark.fetch_all(&mut *tx).await.map_err(db_error)?
            }
        }
    };
    tx.commit().await.map_err(db_error)?;
    let mut claimed = rows
        .iter()
        .map(claimed_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|message| message.message.message_id);
    Ok(claimed)
}

pub(crate) async fn finish(
    store: &SqlStore,
    message_id: i64,
    result: &SendResult,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    match result {
        SendResult::Sent {
            provider,
            provider_message_id,
        } => {
            let row = sqlx::query(
                "UPDATE messages SET status = 'sent', provider = $1, provider_message_id = $2, \
                 sent_at = $3, updated_at = $3, reason = NULL \
                 WHERE id = $4 AND status IN ('sending', 'unknown') RETURNING run_id, workspace_id",
            )
            .bind(provider)
            .bind(provider_message_id.as_deref())
            .bind(ms(now))
            .bind(message_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if let Some(row) = row {
                let workspace_id: i64 = get(&row, "workspace_id")?;
                if let Some(provider_id) = provider_message_id {
                    crate::chat::apply_pending_statuses(&mut tx, workspace_id, provider_id, now)
                        .await?;
                }
                let run_id: Option<i64> = get(&row, "run_id")?;
                // Attribution counts from the latest message that actually went out.
                sqlx::query(
                    "UPDATE runs SET last_message_at = $1 WHERE id = $2 \
                     AND (last_message_at IS NULL OR last_message_at < $1)",
                )
                .bind(ms(now))
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
            delete_from_outbox(&mut tx, message_id).await?;
        }
        SendResult::Retry { at, error } => {
            sqlx::query(
                "UPDATE messages SET status = 'queued', reason = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'sending'",
            )
            .bind(error)
            .bind(ms(now))
            .bind(message_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            sqlx::query(
                "UPDATE outbox SET state = 'queued', not_before = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE message_id = $2",
            )
            .bind(ms(*at))
            .bind(message_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        SendResult::Failed {
            provider,
            code,
            reason,
            opted_out,
        } => {
            let row = sqlx::query(
                "UPDATE messages SET status = 'failed', provider = $1, reason = $2, updated_at = $3 \
                 WHERE id = $4 RETURNING workspace_id, to_address",
            )
            .bind(provider)
            .bind(format!("{code}: {reason}"))
            .bind(ms(now))
            .bind(message_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            delete_from_outbox(&mut tx, message_id).await?;
            if let (true, Some(row)) = (*opted_out, row) {
                let workspace_id: i64 = get(&row, "workspace_id")?;
                let address: String = get(&row, "to_address")?;
                suppress(
                    &mut tx,
                    workspace_id,
                    &address,
                    &format!("provider:{provider}:{code}"),
                    now,
                )
                .await?;
            }
        }
        SendResult::Unknown { reason } => {
            sqlx::query(
                "UPDATE messages SET status = 'unknown', reason = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'sending'",
            )
            .bind(reason)
            .bind(ms(now))
            .bind(message_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            delete_from_outbox(&mut tx, message_id).await?;
        }
    }
    tx.commit().await.map_err(db_error)
}

async fn delete_from_outbox(conn: &mut Conn, message_id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM outbox WHERE message_id = $1")
        .bind(message_id)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Adds an address to the suppression list and cancels what is queued for it.
pub(crate) async fn suppress(
    conn: &mut Conn,
    workspace_id: i64,
    address: &str,
    source: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO suppressions (workspace_id, address, source, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, address) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(address)
    .bind(source)
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    cancel_queued_messages(
        conn,
        workspace_id,
        "to_address = $3",
        address.to_string(),
        "opted_out",
        now,
    )
    .await?;
    Ok(())
}

pub(crate) async fn release(
    store: &SqlStore,
    worker: &str,
    unsent: &[i64],
) -> Result<u64, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut released = sqlx::query(
        "UPDATE timers SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
    )
    .bind(worker)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    for id in unsent {
        let back = sqlx::query(
            "UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE message_id = $1 AND lease_owner = $2 AND state = 'sending'",
        )
        .bind(*id)
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if back > 0 {
            sqlx::query(
                "UPDATE messages SET status = 'queued', attempts = attempts - 1 WHERE id = $1 AND status = 'sending'",
            )
            .bind(*id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            released += back;
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(released)
}

pub(crate) async fn stale(
    store: &SqlStore,
    claim: &Claim,
) -> Result<Vec<ClaimedMessage>, StoreError> {
    let now = claim_time(store, claim).await?;
    let lock = match store.backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // Take the stale rows over under a fresh lease, so two reconcilers do not both act.
    let taken = sqlx::query(&format!(
        "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE message_id IN (\
         SELECT message_id FROM outbox WHERE state = 'sending' AND lease_until < $3 \
         ORDER BY message_id LIMIT $4 {lock}) RETURNING message_id"
    ))
    .bind(&claim.worker)
    .bind(ms(add(now, claim.lease)))
    .bind(ms(now))
    .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
    .fetch_all(&store.write)
    .await
    .map_err(db_error)?;
    let mut messages = Vec::with_capacity(taken.len());
    for row in &taken {
        let id: i64 = get(row, "message_id")?;
        let row = sqlx::query(&format!(
            "SELECT {CLAIMED_COLUMNS} FROM messages WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&store.write)
        .await
        .map_err(db_error)?;
        if let Some(row) = row {
            messages.push(claimed_from_row(&row)?);
        }
    }
    Ok(messages)
}

pub(crate) async fn record_sandbox(
    store: &SqlStore,
    message: &OutboundMessage,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sandbox_outbox (workspace_id, message_id, to_address, body, sent_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(message.workspace_id)
    .bind(message.message_id)
    .bind(&message.to)
    .bind(&message.body)
    .bind(ms(now))
    .execute(&store.write)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(crate) async fn sandbox_has(store: &SqlStore, message_id: i64) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 AS hit FROM sandbox_outbox WHERE message_id = $1 LIMIT 1")
            .bind(message_id)
            .fetch_optional(&store.read)
            .await
            .map_err(db_error)?
            .is_some(),
    )
}
