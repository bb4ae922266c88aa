//! The timer worker: claims due timers in batches and applies them through the engine.

use nudge_core::store::{Claim, FireReport, StoreError};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::{claim_time, until_next_due};
use crate::state::App;

/// One pass: claims a batch of due timers and applies it.
pub async fn fire_once(app: &App) -> Result<FireReport, StoreError> {
    let workers = &app.config().workers;
    let claim = Claim {
        worker: workers.instance.clone(),
        now: claim_time(app),
        limit: workers.timer_batch,
        lease: workers.timer_lease,
    };
    let report = app.store().fire_due_timers(app.engine(), &claim).await?;
    if report.fired > 0 {
        metrics::counter!("nudge_timers_fired_total").increment(report.fired as u64);
    }
    if report.messages_queued > 0 {
        app.wakeups().dispatch.notify_one();
        app.store().notify_wakeup().await;
    }
    Ok(report)
}

pub async fn run(app: App, shutdown: CancellationToken) {
    tracing::info!(instance = %app.config().workers.instance, "timer worker started");
    let mut backoff = Backoff::new();
    while !shutdown.is_cancelled() {
        match fire_once(&app).await {
            Ok(report) => {
                if backoff.failures() > 0 {
                    tracing::info!(
                        failures = backoff.failures(),
                        "timer worker reached the database again"
                    );
                }
                backoff.reset();
                if report.claimed > 0 {
                    continue;
                }
            }
            Err(error) => {
                let wait = backoff.fail();
                if backoff.should_log() {
                    tracing::warn!(%error, failures = backoff.failures(), ?wait, "firing timers failed; backing off");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        }
        let wait = until_next_due(&app).await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = app.wakeups().timers.notified() => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracing::info!("timer worker stopped claiming");
}
