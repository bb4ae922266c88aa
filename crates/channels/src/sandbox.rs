//! The sandbox channel: it records each message in a log (the store in production) instead of
//! sending it, so a workspace can try flows end to end without a provider account.

use std::sync::Arc;

use async_trait::async_trait;
use nudge_core::channel::{Channel, ChannelKind, Lookup, OutboundMessage, SendError, SendReceipt};
use nudge_core::store::{Store, StoreError};
use nudge_core::time::{Clock, Timestamp};

/// Log of the messages the sandbox "sent": the two sandbox operations of [`Store`].
///
/// Every [`Store`] is a `SandboxLog`, so the server passes its store, and tests can pass a small
/// in-memory log instead of a whole store.
#[async_trait]
pub trait SandboxLog: Send + Sync {
    /// Records a message as sent at `now`.
    async fn record_sandbox_send(
        &self,
        message: &OutboundMessage,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Returns whether a message was recorded.
    async fn sandbox_has(&self, message_id: i64) -> Result<bool, StoreError>;
}

#[async_trait]
impl<T: Store + ?Sized> SandboxLog for T {
    async fn record_sandbox_send(
        &self,
        message: &OutboundMessage,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        Store::record_sandbox_send(self, message, now).await
    }

    async fn sandbox_has(&self, message_id: i64) -> Result<bool, StoreError> {
        Store::sandbox_has(self, message_id).await
    }
}

/// A channel that records messages instead of sending them.
///
/// `L` is the log type. With a store it is `SandboxChannel<dyn Store>`:
///
/// ```
/// use std::sync::Arc;
///
/// use nudge_channels::SandboxChannel;
/// use nudge_core::channel::{Channel, ChannelKind};
/// use nudge_core::store::Store;
/// use nudge_core::time::SystemClock;
///
/// fn sms_sandbox(store: Arc<dyn Store>) -> Arc<dyn Channel> {
///     Arc::new(SandboxChannel::new(ChannelKind::Sms, store, Arc::new(SystemClock)))
/// }
/// ```
pub struct SandboxChannel<L: ?Sized = dyn SandboxLog> {
    kind: ChannelKind,
    log: Arc<L>,
    clock: Arc<dyn Clock>,
}

impl<L: SandboxLog + ?Sized> SandboxChannel<L> {
    /// Creates a sandbox for `kind`, timestamping records with `clock` so that replays record
    /// virtual time.
    pub fn new(kind: ChannelKind, log: Arc<L>, clock: Arc<dyn Clock>) -> SandboxChannel<L> {
        SandboxChannel { kind, log, clock }
    }
}

/// Returns the provider message id the sandbox gives a message.
fn sandbox_message_id(message_id: i64) -> String {
    format!("sandbox-{message_id}")
}

#[async_trait]
impl<L: SandboxLog + ?Sized> Channel for SandboxChannel<L> {
    fn provider(&self) -> &str {
        "sandbox"
    }

    fn kind(&self) -> ChannelKind {
        self.kind
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        let now = self.clock.now();
        match self.log.record_sandbox_send(message, now).await {
            Ok(()) => Ok(SendReceipt {
                provider_message_id: Some(sandbox_message_id(message.message_id)),
                status: Some("sent".to_owned()),
            }),
            Err(error) => Err(SendError::Retryable {
                code: "store_failed".to_owned(),
                message: format!(
                    "failed to record sandbox message {}: {error}",
                    message.message_id
                ),
                retry_after_secs: None,
            }),
        }
    }

    /// Returns `Sent` when the log has the message and `NotSent` when it does not. A log that
    /// cannot be read gives `Unknown`.
    async fn lookup(&self, message: &OutboundMessage) -> Lookup {
        match self.log.sandbox_has(message.message_id).await {
            Ok(true) => Lookup::Sent {
                provider_message_id: Some(sandbox_message_id(message.message_id)),
            },
            Ok(false) => Lookup::NotSent,
            Err(error) => {
                tracing::warn!(
                    message_id = message.message_id,
                    %error,
                    "failed to read the sandbox log, so the send outcome stays unknown"
                );
                Lookup::Unknown
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use nudge_core::channel::MessageKind;
    use nudge_core::time::ManualClock;

    use super::*;

    /// An in-memory log that can be set to fail like an unreachable database.
    #[derive(Default)]
    struct MemoryLog {
        records: Mutex<Vec<(i64, Timestamp)>>,
        unavailable: bool,
    }

    #[async_trait]
    impl SandboxLog for MemoryLog {
        async fn record_sandbox_send(
            &self,
            message: &OutboundMessage,
            now: Timestamp,
        ) -> Result<(), StoreError> {
            if self.unavailable {
                return Err(StoreError::Unavailable("database is down".to_owned()));
            }
            self.records.lock().unwrap().push((message.message_id, now));
            Ok(())
        }

        async fn sandbox_has(&self, message_id: i64) -> Result<bool, StoreError> {
            if self.unavailable {
                return Err(StoreError::Unavailable("database is down".to_owned()));
            }
            let records = self.records.lock().unwrap();
            Ok(records.iter().any(|(id, _)| *id == message_id))
        }
    }

    fn message(message_id: i64) -> OutboundMessage {
        OutboundMessage {
            message_id,
            workspace_id: 1,
            idempotency_key: format!("run:1:step:{message_id}"),
            channel: ChannelKind::Sms,
            to: "+254700000001".to_owned(),
            kind: MessageKind::Text,
            body: "Hi Amina, your Jiko Classic is still waiting.".to_owned(),
            template: None,
        }
    }

    fn start() -> Timestamp {
        "2026-01-15T07:00:00Z".parse().unwrap()
    }

    fn sandbox(log: Arc<MemoryLog>) -> SandboxChannel<MemoryLog> {
        let clock = Arc::new(ManualClock::new(start()));
        SandboxChannel::new(ChannelKind::Sms, log, clock)
    }

    #[tokio::test]
    async fn send_records_message_at_clock_time() {
        let log = Arc::new(MemoryLog::default());
        let channel = sandbox(log.clone());

        let receipt = channel.send(&message(42)).await.unwrap();

        assert_eq!(receipt.provider_message_id.as_deref(), Some("sandbox-42"));
        assert_eq!(receipt.status.as_deref(), Some("sent"));
        assert_eq!(*log.records.lock().unwrap(), vec![(42, start())]);
    }

    #[tokio::test]
    async fn lookup_finds_only_recorded_messages() {
        let channel = sandbox(Arc::new(MemoryLog::default()));
        channel.send(&message(7)).await.unwrap();

        let sent = channel.lookup(&message(7)).await;
        let expected = Lookup::Sent {
            provider_message_id: Some("sandbox-7".to_owned()),
        };
        assert_eq!(sent, expected);
        assert_eq!(channel.lookup(&message(8)).await, Lookup::NotSent);
    }

    #[tokio::test]
    async fn store_failure_is_retryable() {
        let log = Arc::new(MemoryLog {
            unavailable: true,
            ..MemoryLog::default()
        });
        let channel = sandbox(log);

        let error = channel.send(&message(1)).await.unwrap_err();

        assert!(matches!(error, SendError::Retryable { .. }), "{error:?}");
        assert_eq!(channel.lookup(&message(1)).await, Lookup::Unknown);
    }

    #[test]
    fn sandbox_reports_its_provider_and_kind() {
        let clock = Arc::new(ManualClock::new(start()));
        let log: Arc<dyn SandboxLog> = Arc::new(MemoryLog::default());
        let channel: SandboxChannel = SandboxChannel::new(ChannelKind::Whatsapp, log, clock);
        assert_eq!(channel.provider(), "sandbox");
        assert_eq!(channel.kind(), ChannelKind::Whatsapp);
    }
}
