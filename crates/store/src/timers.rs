//! Due timers: claiming them in batches under a lease, and applying each through the engine.
//!
//! A claim is a short transaction of its own (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
//! instances share the work; applying a batch is a second transaction under the workspace
//! lock. A timer is applied only if it is still claimed by this worker, because an update
//! that re-arms it clears the claim. A crashed instance's claims lapse with their lease.

use nudge_core::engine::{
    CheckoutStatus, Engine, EntryOutcome, StepContext, StepOutcome, SubjectRef,
};
use nudge_core::flow::Flow;
use nudge_core::store::{Claim, FireReport, StoreError};
use nudge_core::time::{Timestamp, add, sub};
use rand::Rng;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::connect::Backend;
use crate::rows::{
    Conn, arm_timer, checkout_by_external, checkout_by_id, db_error, exit_run, get, lock_workspace,
    ms, run_by_id, run_timer_key, save_checkout, subject_parts, ts,
};

/// Workspaces looked at per pass.
const WORKSPACES_PER_PASS: i64 = 64;

/// A claimed timer.
struct DueTimer {
    id: i64,
    kind: String,
    subject_id: i64,
    flow: Option<String>,
    due_at: Timestamp,
}

impl DueTimer {
    fn from_row(row: &AnyRow) -> Result<DueTimer, StoreError> {
        Ok(DueTimer {
            id: get(row, "id")?,
            kind: get(row, "kind")?,
            subject_id: get(row, "subject_id")?,
            flow: get(row, "flow")?,
            due_at: ts(get(row, "due_at")?),
        })
    }
}

/// Returns the time that due-ness is judged by: the claim's, or the database's own clock.
pub(crate) async fn claim_time(store: &SqlStore, claim: &Claim) -> Result<Timestamp, StoreError> {
    if let Some(now) = claim.now {
        return Ok(now);
    }
    match store.backend {
        Backend::Postgres => {
            let row = sqlx::query("SELECT nudge_now_ms() AS now")
                .fetch_one(&store.read)
                .await
                .map_err(db_error)?;
            Ok(ts(get(&row, "now")?))
        }
        Backend::Sqlite => Ok(nudge_core::time::truncate_to_millis(Timestamp::now())),
    }
}

pub(crate) async fn fire_due(
    store: &SqlStore,
    engine: &Engine,
    claim: &Claim,
) -> Result<FireReport, StoreError> {
    let now = claim_time(store, claim).await?;
    let rows = sqlx::query(
        "SELECT DISTINCT workspace_id FROM timers WHERE due_at <= $1 \
         AND (lease_until IS NULL OR lease_until < $1) LIMIT $2",
    )
    .bind(ms(now))
    .bind(WORKSPACES_PER_PASS)
    .fetch_all(&store.read)
    .await
    .map_err(db_error)?;
    let mut report = FireReport::default();
    for row in rows {
        let workspace_id: i64 = get(&row, "workspace_id")?;
        let claimed = claim_batch(store, workspace_id, claim, now).await?;
        if claimed.is_empty() {
            continue;
        }
        report.claimed += claimed.len();
        let applied =
            apply_batch(store, engine, workspace_id, &claim.worker, &claimed, now).await?;
        report.fired += applied.fired;
        report.messages_queued += applied.messages_queued;
    }
    Ok(report)
}

async fn claim_batch(
    store: &SqlStore,
    workspace_id: i64,
    claim: &Claim,
    now: Timestamp,
) -> Result<Vec<DueTimer>, StoreError> {
    let lock = match store.backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE timers SET lease_owner = $1, lease_until = $2 WHERE id IN (\
         SELECT id FROM timers WHERE workspace_id = $3 AND due_at <= $4 \
         AND (lease_until IS NULL OR lease_until < $4) ORDER BY due_at, id LIMIT $5 {lock}) \
         RETURNING id, kind, subject_id, flow, due_at"
    );
    let lease_until = add(now, claim.lease);
    let rows = sqlx::query(&sql)
        .bind(&claim.worker)
        .bind(ms(lease_until))
        .bind(workspace_id)
        .bind(ms(now))
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
        .fetch_all(&store.write)
        .await
        .map_err(db_error)?;
    let mut timers = rows
        .iter()
        .map(DueTimer::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    timers.sort_by_key(|timer| (timer.due_at, timer.id));
    Ok(timers)
}

async fn apply_batch(
    store: &SqlStore,
    engine: &Engine,
    workspace_id: i64,
    worker: &str,
    timers: &[DueTimer],
    now: Timestamp,
) -> Result<FireReport, StoreError> {
    let mut tx = store.begin_write().await?;
    lock_workspace(store.backend, &mut tx, workspace_id).await?;
    let mut report = FireReport::default();
    for timer in timers {
        let still_ours =
            sqlx::query("DELETE FROM timers WHERE id = $1 AND lease_owner = $2 RETURNING id")
                .bind(timer.id)
                .bind(worker)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if still_ours.is_none() {
            continue;
        }
        report.fired += 1;
        match timer.kind.as_str() {
            "idle" => fire_idle(&mut tx, engine, workspace_id, timer, now).await?,
            "conversation_idle" => {
                fire_conversation_idle(&mut tx, engine, workspace_id, timer, now).await?
            }
            "step" => {
                if fire_step(&mut tx, engine, workspace_id, timer, now).await? {
                    report.messages_queued += 1;
                }
            }
            other => tracing::warn!(kind = other, timer = timer.id, "unknown timer kind dropped"),
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(report)
}

async fn fire_idle(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    timer: &DueTimer,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(flow_name) = timer.flow.as_deref() else {
        return Ok(());
    };
    let Some((checkout_id, state)) = checkout_by_id(conn, workspace_id, timer.subject_id).await?
    else {
        return Ok(());
    };
    let already_entered = sqlx::query(
        "SELECT id FROM runs WHERE workspace_id = $1 AND flow = $2 AND subject_kind = 'checkout' \
         AND subject_id = $3",
    )
    .bind(workspace_id)
    .bind(flow_name)
    .bind(&state.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?
    .is_some();
    match engine.on_idle_timer(&state, flow_name, already_entered, now) {
        EntryOutcome::Drop => {}
        EntryOutcome::Rearm(due_at) => {
            let key = crate::rows::idle_timer_key(checkout_id, flow_name);
            arm_timer(
                conn,
                workspace_id,
                &key,
                "idle",
                checkout_id,
                Some(flow_name),
                due_at,
            )
            .await?;
        }
        EntryOutcome::Emptied => {
            let emptied = nudge_core::engine::CheckoutState {
                status: CheckoutStatus::Emptied,
                ..state
            };
            save_checkout(conn, workspace_id, &emptied, None, now).await?;
            crate::rows::cancel_idle_timers(conn, workspace_id, checkout_id).await?;
        }
        EntryOutcome::Enter {
            holdout,
            entered_at,
            first_step_due,
        } => {
            let steps_total = engine
                .flows
                .get(flow_name)
                .map(|flow| flow.steps.len())
                .unwrap_or_default();
            if state.status == CheckoutStatus::Open {
                let abandoned = nudge_core::engine::CheckoutState {
                    status: CheckoutStatus::Abandoned,
                    ..state.clone()
                };
                save_checkout(conn, workspace_id, &abandoned, Some(now), now).await?;
            }
            let subject = SubjectRef::Checkout(state.id.clone());
            let entry = (holdout, entered_at, first_step_due, steps_total);
            enter_flow(conn, workspace_id, flow_name, &subject, entry).await?;
        }
    }
    Ok(())
}

/// Applies a step timer; returns whether a message was queued.
async fn fire_step(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    timer: &DueTimer,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(run) = run_by_id(conn, workspace_id, timer.subject_id).await? else {
        return Ok(false);
    };
    let external_id = match &run.subject {
        SubjectRef::Checkout(external_id) => external_id,
        SubjectRef::Conversation(id) => {
            return fire_conversation_step(conn, engine, workspace_id, &run, id, now).await;
        }
    };
    let Some((_, checkout)) = checkout_by_external(conn, workspace_id, external_id).await? else {
        return Ok(false);
    };
    let flow = engine.flows.get(&run.flow).cloned();
    let address = engine.address_of(&checkout);
    let whatsapp_step = flow
        .as_deref()
        .and_then(|flow| flow.step(run.next_step))
        .is_some_and(|step| step.channel == nudge_core::channel::ChannelKind::Whatsapp);
    // A WhatsApp step needs the contact's window: their last message in a WhatsApp chat.
    let last_inbound_at = match (whatsapp_step, &checkout.phone) {
        (true, Some(phone)) => crate::chat::conversation_by_contact(
            conn,
            workspace_id,
            nudge_core::channel::ChannelKind::Whatsapp,
            phone.as_str(),
        )
        .await?
        .and_then(|(_, conversation)| conversation.last_inbound_at),
        _ => None,
    };
    let context = StepContext {
        suppressed: is_suppressed(conn, workspace_id, &address).await?,
        paused: false,
        recent_sends: recent_sends(conn, workspace_id, &address, flow.as_deref(), now).await?,
        link_token: unused_token(conn).await?,
        last_inbound_at,
    };
    let outcome = engine.on_step_timer(&run, &checkout, &context, now);
    let (_, subject) = subject_parts(&run.subject);
    tracing::debug!(run = run.id, subject, ?outcome, "step decided");
    apply_step_outcome(conn, workspace_id, &run, None, outcome, now).await
}

async fn fire_conversation_idle(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    timer: &DueTimer,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(flow_name) = timer.flow.as_deref() else {
        return Ok(());
    };
    let Some((conversation_id, state)) =
        crate::chat::conversation_by_id(conn, workspace_id, timer.subject_id).await?
    else {
        return Ok(());
    };
    let subject = conversation_id.to_string();
    let already_entered = sqlx::query(
        "SELECT id FROM runs WHERE workspace_id = $1 AND flow = $2 AND subject_kind = 'conversation' \
         AND subject_id = $3",
    )
    .bind(workspace_id)
    .bind(flow_name)
    .bind(&subject)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?
    .is_some();
    match engine.on_conversation_idle(&state, flow_name, &subject, already_entered, now) {
        EntryOutcome::Drop | EntryOutcome::Emptied => {}
        EntryOutcome::Rearm(due_at) => {
            let key = crate::chat::conversation_timer_key(conversation_id, flow_name);
            arm_timer(
                conn,
                workspace_id,
                &key,
                "conversation_idle",
                conversation_id,
                Some(flow_name),
                due_at,
            )
            .await?;
        }
        EntryOutcome::Enter {
            holdout,
            entered_at,
            first_step_due,
        } => {
            let steps_total = engine
                .flows
                .get(flow_name)
                .map(|flow| flow.steps.len())
                .unwrap_or_default();
            let subject = SubjectRef::Conversation(subject.clone());
            let entry = (holdout, entered_at, first_step_due, steps_total);
            enter_flow(conn, workspace_id, flow_name, &subject, entry).await?;
        }
    }
    Ok(())
}

async fn fire_conversation_step(
    conn: &mut Conn,
    engine: &Engine,
    workspace_id: i64,
    run: &nudge_core::engine::RunFacts,
    conversation: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Ok(conversation_id) = conversation.parse::<i64>() else {
        return Ok(false);
    };
    let Some((_, state)) =
        crate::chat::conversation_by_id(conn, workspace_id, conversation_id).await?
    else {
        return Ok(false);
    };
    let flow = engine.flows.get(&run.flow).cloned();
    let context = StepContext {
        suppressed: is_suppressed(conn, workspace_id, &state.contact).await?,
        paused: state.paused,
        recent_sends: recent_sends(conn, workspace_id, &state.contact, flow.as_deref(), now)
            .await?,
        link_token: unused_token(conn).await?,
        last_inbound_at: state.last_inbound_at,
    };
    let outcome = engine.on_conversation_step(run, &state, &context, now);
    tracing::debug!(
        run = run.id,
        conversation = conversation_id,
        ?outcome,
        "conversation step decided"
    );
    apply_step_outcome(conn, workspace_id, run, Some(conversation_id), outcome, now).await
}

/// A new run's holdout flag, entry time, first step due time (none for holdout) and number
/// of steps.
type Entry = (bool, Timestamp, Option<Timestamp>, usize);

/// Starts a run of a flow for a subject, once per flow and subject, and arms its first step.
async fn enter_flow(
    conn: &mut Conn,
    workspace_id: i64,
    flow_name: &str,
    subject: &SubjectRef,
    (holdout, entered_at, first_step_due, steps_total): Entry,
) -> Result<(), StoreError> {
    let (kind, subject_id) = subject_parts(subject);
    let run = sqlx::query(
        "INSERT INTO runs (workspace_id, flow, subject_kind, subject_id, status, holdout, \
         entered_at, next_step, steps_total) VALUES ($1, $2, $3, $4, 'active', $5, $6, 0, $7) \
         ON CONFLICT (workspace_id, flow, subject_kind, subject_id) DO NOTHING RETURNING id",
    )
    .bind(workspace_id)
    .bind(flow_name)
    .bind(kind)
    .bind(subject_id)
    .bind(i64::from(holdout))
    .bind(ms(entered_at))
    .bind(i64::try_from(steps_total).unwrap_or_default())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    if let (Some(row), Some(due_at)) = (run, first_step_due) {
        let run_id: i64 = get(&row, "id")?;
        let key = run_timer_key(run_id);
        arm_timer(
            conn,
            workspace_id,
            &key,
            "step",
            run_id,
            Some(flow_name),
            due_at,
        )
        .await?;
    }
    Ok(())
}

/// Applies a step decision to a run; returns whether a message was queued. A message of a
/// conversation run also goes into that conversation's transcript.
async fn apply_step_outcome(
    conn: &mut Conn,
    workspace_id: i64,
    run: &nudge_core::engine::RunFacts,
    conversation_id: Option<i64>,
    outcome: StepOutcome,
    now: Timestamp,
) -> Result<bool, StoreError> {
    match outcome {
        StepOutcome::Send { message, next_due } => {
            let queued =
                crate::outbox::queue_message(conn, workspace_id, run, &run.flow, &message, now)
                    .await?;
            if let (Some(message_id), Some(conversation_id)) = (queued, conversation_id) {
                crate::chat::record_automation(
                    conn,
                    workspace_id,
                    conversation_id,
                    message_id,
                    message.kind,
                    &message.body,
                    now,
                )
                .await?;
            }
            advance_run(
                conn,
                workspace_id,
                run.id,
                message.step,
                next_due,
                &run.flow,
            )
            .await?;
            Ok(queued.is_some())
        }
        StepOutcome::Skip {
            step,
            channel,
            to,
            reason,
            next_due,
        } => {
            crate::outbox::record_skipped(conn, workspace_id, run, step, channel, &to, reason, now)
                .await?;
            advance_run(conn, workspace_id, run.id, step, next_due, &run.flow).await?;
            Ok(false)
        }
        StepOutcome::Defer { until } => {
            let key = run_timer_key(run.id);
            arm_timer(
                conn,
                workspace_id,
                &key,
                "step",
                run.id,
                Some(&run.flow),
                until,
            )
            .await?;
            Ok(false)
        }
        StepOutcome::Exit { reason } => {
            exit_run(conn, workspace_id, run.id, reason.as_str(), now).await?;
            Ok(false)
        }
        StepOutcome::Drop => Ok(false),
    }
}

/// Moves a run past `step`: arms the next step, or marks the run finished.
async fn advance_run(
    conn: &mut Conn,
    workspace_id: i64,
    run_id: i64,
    step: usize,
    next_due: Option<Timestamp>,
    flow: &str,
) -> Result<(), StoreError> {
    let next_step = i64::try_from(step + 1).unwrap_or(i64::MAX);
    let status = if next_due.is_some() {
        "active"
    } else {
        "finished"
    };
    sqlx::query("UPDATE runs SET next_step = $1, status = $2 WHERE workspace_id = $3 AND id = $4")
        .bind(next_step)
        .bind(status)
        .bind(workspace_id)
        .bind(run_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    if let Some(due_at) = next_due {
        arm_timer(
            conn,
            workspace_id,
            &run_timer_key(run_id),
            "step",
            run_id,
            Some(flow),
            due_at,
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn is_suppressed(
    conn: &mut Conn,
    workspace_id: i64,
    address: &str,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 AS hit FROM suppressions WHERE workspace_id = $1 AND address = $2")
            .bind(workspace_id)
            .bind(address)
            .fetch_optional(conn)
            .await
            .map_err(db_error)?
            .is_some(),
    )
}

/// Messages queued or sent to an address within the flow's frequency-cap period.
async fn recent_sends(
    conn: &mut Conn,
    workspace_id: i64,
    address: &str,
    flow: Option<&Flow>,
    now: Timestamp,
) -> Result<u32, StoreError> {
    let Some(cap) = flow.and_then(|flow| flow.frequency_cap) else {
        return Ok(0);
    };
    let row = sqlx::query(
        "SELECT COUNT(*) AS sends FROM messages WHERE workspace_id = $1 AND to_address = $2 \
         AND created_at > $3 AND status IN ('queued', 'sending', 'sent', 'delivered', 'read')",
    )
    .bind(workspace_id)
    .bind(address)
    .bind(ms(sub(now, cap.per)))
    .fetch_one(conn)
    .await
    .map_err(db_error)?;
    let sends: i64 = get(&row, "sends")?;
    Ok(u32::try_from(sends).unwrap_or(u32::MAX))
}

/// Characters of short-link tokens: letters and digits, minus look-alikes (0/O, 1/l/I).
const TOKEN_ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
/// 10 characters of a 57-letter alphabet: about 58 bits, so guessing a live link is futile.
const TOKEN_LENGTH: usize = 10;

/// Draws a random link token that is not yet in use.
async fn unused_token(conn: &mut Conn) -> Result<String, StoreError> {
    loop {
        let token: String = {
            let mut rng = rand::rng();
            (0..TOKEN_LENGTH)
                .map(|_| char::from(TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())]))
                .collect()
        };
        let taken = sqlx::query("SELECT 1 AS hit FROM links WHERE token = $1")
            .bind(&token)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?
            .is_some();
        if !taken {
            return Ok(token);
        }
    }
}

pub(crate) async fn next_due(store: &SqlStore) -> Result<Option<Timestamp>, StoreError> {
    let row = sqlx::query(
        "SELECT MIN(due) AS due FROM (SELECT MIN(due_at) AS due FROM timers \
         UNION ALL SELECT MIN(not_before) AS due FROM outbox WHERE state = 'queued') AS pending",
    )
    .fetch_one(&store.read)
    .await
    .map_err(db_error)?;
    Ok(get::<Option<i64>>(&row, "due")?.map(ts))
}
