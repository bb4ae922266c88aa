//! The send worker: claims queued messages, sends each through its channel, and records the
//! outcome. A failed send is retried with backoff only when the provider reports a temporary
//! fault, and a send whose outcome is unknown is never repeated.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use nudge_core::channel::{Lookup, MessageKind, SendError};
use nudge_core::store::{Claim, ClaimedMessage, SendResult, StoreError};
use nudge_core::time::{Timestamp, add};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::{claim_time, until_next_due};
use crate::state::App;

/// Sends per second per provider, until per-sender limits are configurable.
const DEFAULT_RATE_PER_SECOND: u32 = 50;
/// The longest wait between two looks for messages a dead worker left `sending`; with a short
/// send lease the worker looks every half lease.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// Counts of one pass over the outbox.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub sent: usize,
    /// Claimed messages that were never handed to a provider (shutdown came first).
    pub unsent: Vec<i64>,
}

/// Claims up to `send_concurrency` messages and sends them concurrently.
pub async fn dispatch_once(
    app: &App,
    shutdown: &CancellationToken,
) -> Result<DispatchReport, StoreError> {
    let workers = &app.config().workers;
    let claim = Claim {
        worker: workers.instance.clone(),
        now: claim_time(app),
        limit: workers.send_concurrency,
        lease: workers.send_lease,
    };
    let batch = app.store().claim_messages(&claim).await?;
    let mut report = DispatchReport {
        claimed: batch.len(),
        ..DispatchReport::default()
    };
    let mut sends = JoinSet::new();
    for claimed in batch {
        sends.spawn(send_one(app.clone(), claimed, shutdown.clone()));
    }
    while let Some(done) = sends.join_next().await {
        match done {
            Ok(Delivery::Finished { sent }) => report.sent += usize::from(sent),
            Ok(Delivery::NotStarted(id)) => report.unsent.push(id),
            Err(error) => tracing::error!(%error, "send task ended abnormally"),
        }
    }
    Ok(report)
}

enum Delivery {
    Finished { sent: bool },
    NotStarted(i64),
}

fn limiter(provider: &str) -> Arc<DefaultDirectRateLimiter> {
    static LIMITERS: OnceLock<Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>> =
        OnceLock::new();
    let limiters = LIMITERS.get_or_init(Default::default);
    let mut limiters = match limiters.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    limiters
        .entry(provider.to_string())
        .or_insert_with(|| {
            let rate = NonZeroU32::new(DEFAULT_RATE_PER_SECOND).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(Quota::per_second(rate)))
        })
        .clone()
}

async fn send_one(app: App, mut claimed: ClaimedMessage, shutdown: CancellationToken) -> Delivery {
    // The window of a WhatsApp text is checked again now, at the moment of sending: a text
    // decided inside it may reach the worker after it closed.
    if let Some(closes) = claimed.window_closes_at {
        let now = app.clock().now();
        if claimed.message.kind == MessageKind::Text && now >= closes {
            if claimed.message.template.is_some()
                && app
                    .store()
                    .switch_to_template(claimed.message.message_id, now)
                    .await
                    .unwrap_or(false)
            {
                tracing::info!(
                    message = claimed.message.message_id,
                    "window closed before sending; the template goes instead"
                );
                claimed.message.kind = MessageKind::Template;
            } else {
                let result = SendResult::Failed {
                    provider: "local".into(),
                    code: "window_closed".into(),
                    reason: "the 24-hour window closed before the text could go out and the step has no template"
                        .into(),
                    opted_out: false,
                };
                log_outcome(&claimed, "local", &result);
                record(&app, claimed.message.message_id, &result).await;
                return Delivery::Finished { sent: false };
            }
        }
    }
    let message = &claimed.message;
    let Some(channel) = app.channels().for_kind(message.channel).cloned() else {
        let result = SendResult::Failed {
            provider: "none".into(),
            code: "no_channel".into(),
            reason: format!("no {} channel is configured", message.channel.as_str()),
            opted_out: false,
        };
        record(&app, message.message_id, &result).await;
        return Delivery::Finished { sent: false };
    };
    let limiter = limiter(channel.provider());
    tokio::select! {
        _ = limiter.until_ready() => {}
        _ = shutdown.cancelled() => return Delivery::NotStarted(message.message_id),
    }
    let timeout = app.config().workers.send_timeout;
    let outcome = tokio::time::timeout(timeout, channel.send(message)).await;
    let now = app.clock().now();
    let result = match outcome {
        Ok(Ok(receipt)) => SendResult::Sent {
            provider: channel.provider().to_string(),
            provider_message_id: receipt.provider_message_id,
        },
        Ok(Err(error)) => result_for_error(
            channel.provider(),
            &error,
            claimed.attempts,
            app.config().workers.max_attempts,
            now,
        ),
        Err(_) => SendResult::Unknown {
            reason: format!("provider call timed out after {timeout:?}; not resent"),
        },
    };
    let sent = matches!(result, SendResult::Sent { .. });
    log_outcome(&claimed, channel.provider(), &result);
    record(&app, message.message_id, &result).await;
    Delivery::Finished { sent }
}

fn log_outcome(claimed: &ClaimedMessage, provider: &str, result: &SendResult) {
    let message = &claimed.message;
    let status = match result {
        SendResult::Sent { .. } => "sent",
        SendResult::Retry { .. } => "retry",
        SendResult::Failed { .. } => "failed",
        SendResult::Unknown { .. } => "unknown",
    };
    metrics::counter!("nudge_messages_total", "provider" => provider.to_string(), "status" => status)
        .increment(1);
    let to = nudge_core::phone::Phone::parse(&message.to, "")
        .map(|phone| phone.masked())
        .unwrap_or_else(|_| "(not a phone)".into());
    match result {
        SendResult::Sent { .. } => tracing::info!(
            message = message.message_id, flow = %claimed.flow, provider, to, "message sent"
        ),
        SendResult::Retry { at, error } => tracing::warn!(
            message = message.message_id, provider, attempt = claimed.attempts, %at, error, "send failed; will retry"
        ),
        SendResult::Failed { code, reason, .. } => tracing::warn!(
            message = message.message_id,
            provider,
            code,
            reason,
            "send failed permanently"
        ),
        SendResult::Unknown { reason } => tracing::error!(
            message = message.message_id,
            provider,
            reason,
            "send outcome unknown; the message is not sent again"
        ),
    }
}

/// Records a send's end, retrying while the database is away: the provider call already
/// happened and its outcome must not be lost.
async fn record(app: &App, message_id: i64, result: &SendResult) {
    let mut backoff = Backoff::new();
    loop {
        match app
            .store()
            .finish_send(message_id, result, app.clock().now())
            .await
        {
            Ok(()) => return,
            Err(StoreError::Unavailable(error)) if backoff.failures() < 200 => {
                let wait = backoff.fail();
                if backoff.should_log() {
                    tracing::warn!(
                        message = message_id,
                        error,
                        "recording a send outcome failed; retrying"
                    );
                }
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                // NOTE: the row stays `sending`; reconciliation marks it `unknown` after the
                // lease, so it is reported rather than sent again.
                tracing::error!(message = message_id, %error, "recording a send outcome failed");
                return;
            }
        }
    }
}

/// Decides what a provider error means for the message.
pub fn result_for_error(
    provider: &str,
    error: &SendError,
    attempts: u32,
    max_attempts: u32,
    now: Timestamp,
) -> SendResult {
    match error {
        SendError::Retryable {
            code,
            message,
            retry_after_secs,
        } => match retry_delay(attempts, max_attempts, *retry_after_secs) {
            Some(delay) => SendResult::Retry {
                at: add(now, delay),
                error: format!("{code}: {message}"),
            },
            None => SendResult::Failed {
                provider: provider.to_string(),
                code: code.clone(),
                reason: format!("gave up after {attempts} attempts: {message}"),
                opted_out: false,
            },
        },
        SendError::Permanent {
            code,
            message,
            opted_out,
        } => SendResult::Failed {
            provider: provider.to_string(),
            code: code.clone(),
            reason: message.clone(),
            opted_out: *opted_out,
        },
        SendError::Invalid { code, message } => SendResult::Failed {
            provider: provider.to_string(),
            code: code.clone(),
            reason: message.clone(),
            opted_out: false,
        },
        SendError::Unknown { code, message } => SendResult::Unknown {
            reason: format!("{code}: {message}; not resent"),
        },
    }
}

/// The wait before retry number `attempts + 1`: 30 s doubling up to an hour, never shorter
/// than the provider's `Retry-After`; `None` once `max_attempts` are spent.
pub fn retry_delay(
    attempts: u32,
    max_attempts: u32,
    retry_after_secs: Option<u64>,
) -> Option<Duration> {
    if attempts >= max_attempts {
        return None;
    }
    let exponent = attempts.saturating_sub(1).min(10);
    let backoff = Duration::from_secs(30 * 2u64.pow(exponent)).min(Duration::from_secs(3600));
    Some(backoff.max(Duration::from_secs(retry_after_secs.unwrap_or(0))))
}

/// Settles messages a dead worker left `sending`: the provider is asked where it supports a
/// lookup, and otherwise the message is marked `unknown` and reported, never sent again.
pub async fn reconcile_once(app: &App) -> Result<usize, StoreError> {
    let workers = &app.config().workers;
    let claim = Claim {
        worker: workers.instance.clone(),
        now: claim_time(app),
        limit: 100,
        lease: workers.send_lease,
    };
    let stale = app.store().stale_sending(&claim).await?;
    for claimed in &stale {
        let message = &claimed.message;
        let lookup = match app.channels().for_kind(message.channel) {
            Some(channel) => channel.lookup(message).await,
            None => Lookup::Unknown,
        };
        let result = match lookup {
            Lookup::Sent { provider_message_id } => SendResult::Sent {
                provider: app
                    .channels()
                    .for_kind(message.channel)
                    .map(|channel| channel.provider().to_string())
                    .unwrap_or_default(),
                provider_message_id,
            },
            Lookup::NotSent => SendResult::Retry {
                at: app.clock().now(),
                error: "the provider has no record of the send; queued again".into(),
            },
            Lookup::Unknown => SendResult::Unknown {
                reason: "a worker stopped during the provider call and the provider cannot tell; not resent".into(),
            },
        };
        tracing::warn!(
            message = message.message_id,
            ?result,
            "reconciled a message left sending"
        );
        record(app, message.message_id, &result).await;
    }
    Ok(stale.len())
}

pub async fn run(app: App, shutdown: CancellationToken) {
    tracing::info!(instance = %app.config().workers.instance, "send worker started");
    let mut backoff = Backoff::new();
    let mut last_reconcile: Option<tokio::time::Instant> = None;
    let reconcile_every =
        (app.config().workers.send_lease / 2).clamp(Duration::from_secs(1), RECONCILE_EVERY);
    while !shutdown.is_cancelled() {
        if last_reconcile.is_none_or(|at| at.elapsed() >= reconcile_every) {
            if let Err(error) = reconcile_once(&app).await {
                tracing::warn!(%error, "reconciling stale sends failed");
            }
            last_reconcile = Some(tokio::time::Instant::now());
        }
        match dispatch_once(&app, &shutdown).await {
            Ok(report) => {
                backoff.reset();
                if !report.unsent.is_empty() {
                    release(&app, &report.unsent).await;
                }
                if report.claimed > 0 {
                    continue;
                }
            }
            Err(error) => {
                let wait = backoff.fail();
                if backoff.should_log() {
                    tracing::warn!(%error, failures = backoff.failures(), ?wait, "claiming messages failed; backing off");
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
            _ = app.wakeups().dispatch.notified() => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracing::info!("send worker stopped claiming; in-flight sends have finished");
    release(&app, &[]).await;
}

async fn release(app: &App, unsent: &[i64]) {
    let worker = &app.config().workers.instance;
    match app.store().release_claims(worker, unsent).await {
        Ok(count) => tracing::info!(released = count, "claims released"),
        Err(error) => {
            tracing::warn!(%error, "releasing claims failed; they lapse with their lease")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_respects_retry_after() {
        assert_eq!(retry_delay(1, 5, None), Some(Duration::from_secs(30)));
        assert_eq!(retry_delay(2, 5, None), Some(Duration::from_secs(60)));
        assert_eq!(retry_delay(3, 5, Some(600)), Some(Duration::from_secs(600)));
        assert_eq!(retry_delay(5, 5, None), None);
        assert_eq!(retry_delay(4, 50, None), Some(Duration::from_secs(240)));
        assert_eq!(retry_delay(20, 50, None), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn unknown_outcome_is_never_retried() {
        let now: Timestamp = "2026-01-15T08:00:00Z".parse().unwrap();
        let error = SendError::Unknown {
            code: "timeout".into(),
            message: "no answer".into(),
        };
        assert!(matches!(
            result_for_error("smsleopard", &error, 1, 5, now),
            SendResult::Unknown { .. }
        ));
        let opted_out = SendError::Permanent {
            code: "131050".into(),
            message: "stopped marketing".into(),
            opted_out: true,
        };
        assert!(matches!(
            result_for_error("whatsapp", &opted_out, 1, 5, now),
            SendResult::Failed {
                opted_out: true,
                ..
            }
        ));
    }
}
