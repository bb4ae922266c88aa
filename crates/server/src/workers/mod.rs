//! Background workers: the timer worker fires due timers through the engine, and the send
//! worker delivers queued messages through the channels. Both poll the database on a short
//! interval and wake early when told that work arrived.

mod backoff;
pub mod dispatcher;
pub mod scheduler;

use std::time::Duration;

use nudge_core::time::Timestamp;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::App;

/// The running workers of one process.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
}

/// Starts the timer and send workers. They stop when `shutdown` is cancelled: the timer
/// worker at once, the send worker after its in-flight sends (within the grace period).
pub fn spawn(app: &App, shutdown: CancellationToken) -> Workers {
    let wake = app.wakeups().clone();
    let listen_store = app.store().clone();
    tokio::spawn(async move {
        let on_wake: nudge_core::store::WakeCallback = std::sync::Arc::new(move || wake.all());
        if let Err(error) = listen_store.listen_wakeups(on_wake).await {
            tracing::warn!(%error, "wake-up listener not started; polling only");
        }
    });
    let handles = vec![
        tokio::spawn(scheduler::run(app.clone(), shutdown.clone())),
        tokio::spawn(dispatcher::run(app.clone(), shutdown)),
    ];
    Workers { handles }
}

impl Workers {
    /// Waits for the workers to stop.
    pub async fn join(self) {
        for handle in self.handles {
            if let Err(error) = handle.await {
                tracing::error!(%error, "worker task ended abnormally");
            }
        }
    }
}

/// The time a claim judges due-ness by; `None` leaves it to the database's clock.
pub(crate) fn claim_time(app: &App) -> Option<Timestamp> {
    if app.config().workers.database_clock {
        None
    } else {
        Some(app.clock().now())
    }
}

/// How long to wait before looking again: until the next due time, within bounds.
pub(crate) async fn until_next_due(app: &App) -> Duration {
    let poll = app.config().workers.poll_interval;
    let floor = Duration::from_millis(20).min(poll);
    match app.store().next_due().await {
        Ok(Some(due)) => {
            let now = app.clock().now();
            let millis = due.as_millisecond().saturating_sub(now.as_millisecond());
            Duration::from_millis(u64::try_from(millis).unwrap_or(0)).clamp(floor, poll)
        }
        _ => poll,
    }
}
