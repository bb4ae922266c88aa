//! Shared pieces of the SQL code: error mapping, time conversion, and loading and saving the
//! rows the engine reasons about.

use nudge_core::engine::{CheckoutState, RunFacts, RunStatus, SubjectRef};
use nudge_core::store::StoreError;
use nudge_core::time::{Timestamp, from_millis};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use crate::connect::Backend;

pub(crate) type Conn = AnyConnection;

/// Maps a sqlx error onto what the caller can act on.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default().to_string();
            // PostgreSQL: class 08 is a connection failure, 57P0x an administrator
            // shutdown or a server that is starting; SQLite: 5 and 6 are BUSY and LOCKED.
            if code.starts_with("08") || code.starts_with("57P") || code == "5" || code == "6" {
                StoreError::Unavailable(error.to_string())
            } else if database.is_unique_violation() {
                StoreError::Conflict(error.to_string())
            } else {
                StoreError::Other(error.to_string())
            }
        }
        _ => StoreError::Other(error.to_string()),
    }
}

pub(crate) fn json_error(error: serde_json::Error) -> StoreError {
    StoreError::Other(format!("stored JSON could not be read: {error}"))
}

pub(crate) fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

pub(crate) fn ts(millis: i64) -> Timestamp {
    from_millis(millis)
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column).map_err(db_error)
}

/// Serialises the workspace's writers on PostgreSQL for the rest of the transaction, so that
/// two instances never decide on the same checkout or run at once. SQLite has one writer.
pub(crate) async fn lock_workspace(
    backend: Backend,
    conn: &mut Conn,
    workspace_id: i64,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('nudge-workspace'), CAST($1 AS INTEGER))",
        )
        .bind(workspace_id)
        .execute(conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// A `$n, $n+1, …` list of `count` placeholders starting at `first`.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn checkout_from_row(row: &AnyRow) -> Result<(i64, CheckoutState), StoreError> {
    let id: i64 = get(row, "id")?;
    let data: String = get(row, "data")?;
    let state = serde_json::from_str(&data).map_err(json_error)?;
    Ok((id, state))
}

pub(crate) const CHECKOUT_COLUMNS: &str = "id, data";

pub(crate) async fn checkout_by_external(
    conn: &mut Conn,
    workspace_id: i64,
    external_id: &str,
) -> Result<Option<(i64, CheckoutState)>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE workspace_id = $1 AND external_id = $2"
    ))
    .bind(workspace_id)
    .bind(external_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    row.as_ref().map(checkout_from_row).transpose()
}

pub(crate) async fn checkout_by_id(
    conn: &mut Conn,
    workspace_id: i64,
    id: i64,
) -> Result<Option<(i64, CheckoutState)>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE workspace_id = $1 AND id = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    row.as_ref().map(checkout_from_row).transpose()
}

/// Inserts or replaces a checkout's row and returns its id.
pub(crate) async fn save_checkout(
    conn: &mut Conn,
    workspace_id: i64,
    state: &CheckoutState,
    abandoned_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let data = serde_json::to_string(state).map_err(json_error)?;
    let row = sqlx::query(
        "INSERT INTO checkouts (workspace_id, external_id, cart_token, status, phone, email, \
         customer_id, unreachable, opened_at, last_activity_at, abandoned_at, data, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (workspace_id, external_id) DO UPDATE SET cart_token = excluded.cart_token, \
         status = excluded.status, phone = excluded.phone, email = excluded.email, \
         customer_id = excluded.customer_id, unreachable = excluded.unreachable, \
         opened_at = excluded.opened_at, last_activity_at = excluded.last_activity_at, \
         abandoned_at = COALESCE(checkouts.abandoned_at, excluded.abandoned_at), \
         data = excluded.data, updated_at = excluded.updated_at \
         RETURNING id",
    )
    .bind(workspace_id)
    .bind(&state.id)
    .bind(state.cart_token.as_deref())
    .bind(state.status.as_str())
    .bind(state.phone.as_ref().map(|phone| phone.as_str().to_string()))
    .bind(state.email.as_deref())
    .bind(state.customer_id.as_deref())
    .bind(state.unreachable.map(|reason| reason.as_str()))
    .bind(ms(state.opened_at))
    .bind(ms(state.last_activity_at))
    .bind(abandoned_at.map(ms))
    .bind(data)
    .bind(ms(now))
    .fetch_one(conn)
    .await
    .map_err(db_error)?;
    get(&row, "id")
}

pub(crate) const RUN_COLUMNS: &str = "id, flow, subject_kind, subject_id, status, holdout, \
    entered_at, next_step, last_message_at, credited_order";

pub(crate) fn run_from_row(row: &AnyRow) -> Result<RunFacts, StoreError> {
    let kind: String = get(row, "subject_kind")?;
    let subject_id: String = get(row, "subject_id")?;
    let subject = match kind.as_str() {
        "checkout" => SubjectRef::Checkout(subject_id),
        _ => SubjectRef::Conversation(subject_id),
    };
    let status: String = get(row, "status")?;
    let next_step: i64 = get(row, "next_step")?;
    Ok(RunFacts {
        id: get(row, "id")?,
        flow: get(row, "flow")?,
        subject,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Other(format!("unknown run status {status:?}")))?,
        holdout: get::<i64>(row, "holdout")? != 0,
        entered_at: ts(get(row, "entered_at")?),
        next_step: usize::try_from(next_step).unwrap_or_default(),
        last_message_at: get::<Option<i64>>(row, "last_message_at")?.map(ts),
        credited_order: get(row, "credited_order")?,
    })
}

pub(crate) fn subject_parts(subject: &SubjectRef) -> (&'static str, &str) {
    match subject {
        SubjectRef::Checkout(id) => ("checkout", id),
        SubjectRef::Conversation(id) => ("conversation", id),
    }
}

pub(crate) async fn run_by_id(
    conn: &mut Conn,
    workspace_id: i64,
    run_id: i64,
) -> Result<Option<RunFacts>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2"
    ))
    .bind(workspace_id)
    .bind(run_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    row.as_ref().map(run_from_row).transpose()
}

/// Arms a timer, or moves it if it exists; a moved timer loses any claim on it.
pub(crate) async fn arm_timer(
    conn: &mut Conn,
    workspace_id: i64,
    key: &str,
    kind: &str,
    subject_id: i64,
    flow: Option<&str>,
    due_at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO timers (workspace_id, timer_key, kind, subject_id, flow, due_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (workspace_id, timer_key) DO UPDATE SET due_at = excluded.due_at, \
         subject_id = excluded.subject_id, flow = excluded.flow, lease_owner = NULL, lease_until = NULL",
    )
    .bind(workspace_id)
    .bind(key)
    .bind(kind)
    .bind(subject_id)
    .bind(flow)
    .bind(ms(due_at))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(crate) fn idle_timer_key(checkout_id: i64, flow: &str) -> String {
    format!("idle:{checkout_id}:{flow}")
}

pub(crate) fn run_timer_key(run_id: i64) -> String {
    format!("run:{run_id}")
}

pub(crate) async fn cancel_idle_timers(
    conn: &mut Conn,
    workspace_id: i64,
    checkout_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM timers WHERE workspace_id = $1 AND kind = 'idle' AND subject_id = $2")
        .bind(workspace_id)
        .bind(checkout_id)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Stops a run: no more steps, its timer removed, its unsent messages cancelled.
pub(crate) async fn exit_run(
    conn: &mut Conn,
    workspace_id: i64,
    run_id: i64,
    reason: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE runs SET status = 'exited', exit_reason = $1, ended_at = $2 \
         WHERE workspace_id = $3 AND id = $4 AND status = 'active'",
    )
    .bind(reason)
    .bind(ms(now))
    .bind(workspace_id)
    .bind(run_id)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM timers WHERE workspace_id = $1 AND timer_key = $2")
        .bind(workspace_id)
        .bind(run_timer_key(run_id))
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    cancel_queued_messages(conn, workspace_id, "run_id = $3", run_id, reason, now).await?;
    Ok(true)
}

/// Cancels queued (not yet claimed) messages selected by `filter` over `messages`, where
/// `$3` is `value`.
pub(crate) async fn cancel_queued_messages<V>(
    conn: &mut Conn,
    workspace_id: i64,
    filter: &str,
    value: V,
    reason: &str,
    now: Timestamp,
) -> Result<u64, StoreError>
where
    V: for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Clone + Send,
{
    let selected = format!(
        "SELECT id FROM messages WHERE workspace_id = $1 AND status = 'queued' AND {filter}"
    );
    let cancelled = sqlx::query(&format!(
        "UPDATE messages SET status = 'cancelled', reason = $2, updated_at = $4 \
         WHERE id IN ({selected}) \
         AND id IN (SELECT message_id FROM outbox WHERE workspace_id = $1 AND state = 'queued')"
    ))
    .bind(workspace_id)
    .bind(reason)
    .bind(value.clone())
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?
    .rows_affected();
    if cancelled > 0 {
        sqlx::query(&format!(
            "DELETE FROM outbox WHERE workspace_id = $1 AND state = 'queued' AND message_id IN \
             (SELECT id FROM messages WHERE workspace_id = $1 AND status = 'cancelled' AND reason = $2 \
             AND {filter})"
        ))
        .bind(workspace_id)
        .bind(reason)
        .bind(value)
        .execute(conn)
        .await
        .map_err(db_error)?;
    }
    Ok(cancelled)
}
