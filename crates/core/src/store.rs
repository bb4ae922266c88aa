//! The persistence contract the server, the workers and replays use. Implementations (SQLite
//! and PostgreSQL) live in `nudge-store`; they load the state each input needs, call the
//! engine and apply its outcome in one transaction.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::channel::{ChannelKind, MessageKind, OutboundMessage, TemplateMessage};
use crate::engine::Engine;
use crate::event::Event;
use crate::time::Timestamp;

/// A store failure, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or timed out; the request may be retried later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

/// One event to store and apply.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub workspace_id: i64,
    /// Origin: `api`, `shopify`, `woocommerce`, `whatsapp` or `replay`.
    pub source: String,
    /// The provider's delivery id (such as `X-Shopify-Webhook-Id`); repeats of it are
    /// applied once. Without one, the event's own natural key is used.
    pub delivery_id: Option<String>,
    pub event: Event,
}

impl Incoming {
    pub fn dedupe_key(&self) -> String {
        match &self.delivery_id {
            Some(id) => format!("delivery:{id}"),
            None => self.event.natural_key(),
        }
    }
}

/// Outcome of one incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ingested {
    Applied,
    /// The same delivery or event was stored before; nothing changed.
    Duplicate,
}

/// Parameters of a claim on due work.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Name of the claiming worker, recorded as the lease owner.
    pub worker: String,
    /// The time to judge due-ness by; `None` uses the database's own clock, so that an
    /// instance with a skewed clock cannot fire early.
    pub now: Option<Timestamp>,
    pub limit: usize,
    pub lease: Duration,
}

/// Counts of one pass over due timers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FireReport {
    pub claimed: usize,
    pub fired: usize,
    pub messages_queued: usize,
}

/// A message claimed for sending, already marked `sending`.
#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub message: OutboundMessage,
    pub flow: String,
    pub attempts: u32,
    /// For a WhatsApp text: when its window closes; see `switch_to_template`.
    pub window_closes_at: Option<Timestamp>,
}

/// End of a send, as the dispatcher reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Sent {
        provider: String,
        provider_message_id: Option<String>,
    },
    /// A transient failure: back to the queue until `at`.
    Retry { at: Timestamp, error: String },
    /// A permanent failure. `opted_out` also suppresses the address.
    Failed {
        provider: String,
        code: String,
        reason: String,
        opted_out: bool,
    },
    /// The outcome is unknown (crash during the provider call, provider cannot tell); the
    /// message is not sent again and is reported.
    Unknown { reason: String },
}

/// Filters of `GET /v1/messages`.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub contact: Option<String>,
    pub status: Option<String>,
    pub flow: Option<String>,
    pub limit: usize,
    /// Return messages older than this id.
    pub before_id: Option<i64>,
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub contact: String,
    pub body: String,
    pub channel: ChannelKind,
    pub provider: Option<String>,
    pub kind: MessageKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateMessage>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub segments: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// The run the message belongs to; none for a message an agent sent by hand.
    pub run: Option<i64>,
    pub step: i64,
    pub flow: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
}

/// A page of messages, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

/// Per-flow and total figures of what the engine did, as a replay reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub checkouts: u64,
    pub abandoned: u64,
    pub emptied: u64,
    pub completed: u64,
    pub entered: u64,
    pub holdout: u64,
    pub messages: u64,
    pub messages_skipped: u64,
    pub cancelled_by_order: u64,
    pub pending: u64,
    pub orders: u64,
    pub recovered_orders: u64,
    /// Decimal string.
    pub recovered_revenue: String,
    pub holdout_converted: u64,
    pub conversations: u64,
    /// Conversation runs entered because a chat went quiet.
    pub idle_entered: u64,
    /// Messages sent as free-form text, and as WhatsApp templates.
    pub messages_text: u64,
    pub messages_template: u64,
}

/// A delivery report from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The provider's message id (a WhatsApp wamid).
    pub provider_message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub error_code: Option<String>,
    pub error_title: Option<String>,
    pub at: Timestamp,
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, Serialize)]
pub struct TranscriptEntry {
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `customer`, `agent` or `automation`.
    pub author: String,
    /// `text`, `template`, or the inbound message type (`image`, `button`, ...).
    pub kind: String,
    pub body: String,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<crate::engine::Quote>,
    /// The outbox message, for messages sent from here, with its delivery status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A conversation in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub contact: String,
    pub channel: ChannelKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Automation is paused because an agent took over.
    pub paused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outbound_at: Option<Timestamp>,
    /// `customer` or `business`: who spoke last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_speaker: Option<crate::engine::Speaker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<crate::engine::Quote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// When the WhatsApp customer-service window closes (or closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_closes_at: Option<Timestamp>,
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: i64,
    pub flow: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    pub holdout: bool,
    pub entered_at: Timestamp,
    pub next_step: i64,
    pub steps_total: i64,
}

/// A conversation with everything an agent needs to pick it up.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    pub transcript: Vec<TranscriptEntry>,
    pub runs: Vec<RunView>,
    pub holds: Vec<HoldView>,
}

/// A request to hold a product for a customer who said yes.
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub id: i64,
    pub conversation_id: i64,
    pub run_id: i64,
    pub contact: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// `open` or `resolved`.
    pub status: String,
    pub requested_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// Called when another instance signals new work.
pub type WakeCallback = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Figures of one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowFigures {
    pub entered: u64,
    pub holdout: u64,
    pub messages: u64,
    pub messages_skipped: u64,
    pub cancelled_by_order: u64,
    pub pending: u64,
    pub recovered_orders: u64,
    /// Decimal string.
    pub recovered_revenue: String,
    pub holdout_converted: u64,
    pub messages_text: u64,
    pub messages_template: u64,
}

/// The persistence operations of nudge.
#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Returns `Ok` once the database is reachable.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Returns the workspace that single-tenant installs use, which the migrations create.
    async fn default_workspace(&self) -> Result<i64, StoreError>;

    /// Records the hash of a new API key.
    async fn create_api_key(
        &self,
        workspace_id: i64,
        key_hash: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn workspace_for_key(&self, key_hash: &str) -> Result<Option<i64>, StoreError>;

    /// Stores and applies a batch of events in one transaction. The result has one entry
    /// per event, in order.
    async fn ingest(
        &self,
        engine: &Engine,
        batch: &[Incoming],
        now: Timestamp,
    ) -> Result<Vec<Ingested>, StoreError>;

    /// Claims due timers and applies them.
    async fn fire_due_timers(
        &self,
        engine: &Engine,
        claim: &Claim,
    ) -> Result<FireReport, StoreError>;

    /// Returns the earliest time at which a timer or queued message becomes due.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Claims queued messages, re-checking that each may still go out, and marks the
    /// claimed ones `sending` before returning them.
    async fn claim_messages(&self, claim: &Claim) -> Result<Vec<ClaimedMessage>, StoreError>;

    /// Records the end of a send.
    async fn finish_send(
        &self,
        message_id: i64,
        result: &SendResult,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Gives up a worker's claims at shutdown: its timer leases, and the claimed messages in
    /// `unsent`, which the worker never handed to a provider, go back to the queue.
    async fn release_claims(&self, worker: &str, unsent: &[i64]) -> Result<u64, StoreError>;

    /// Messages left `sending` after their lease ran out: a worker died during the call.
    async fn stale_sending(&self, claim: &Claim) -> Result<Vec<ClaimedMessage>, StoreError>;

    async fn list_messages(
        &self,
        workspace_id: i64,
        query: &MessageQuery,
    ) -> Result<MessagePage, StoreError>;

    /// Returns the target of a short link with campaign parameters, or `None` for an unknown
    /// token, and records a click when `record_click` is set.
    async fn follow_link(
        &self,
        token: &str,
        record_click: bool,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError>;

    /// Records a message that the sandbox channel "sent".
    async fn record_sandbox_send(
        &self,
        message: &OutboundMessage,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Returns whether the sandbox recorded a message, for reconciling a crash.
    async fn sandbox_has(&self, message_id: i64) -> Result<bool, StoreError>;

    /// Tells other instances that work became due. A hint only: every instance also polls.
    async fn notify_wakeup(&self) {}

    /// Calls `on_wake` whenever another instance sends a wake-up, until the store closes.
    /// Backends without notifications do nothing.
    async fn listen_wakeups(&self, on_wake: WakeCallback) -> Result<(), StoreError> {
        let _ = on_wake;
        Ok(())
    }

    /// Records provider delivery reports, once per message and status, and applies them to
    /// the messages they report on. Returns how many were new.
    async fn record_statuses(
        &self,
        workspace_id: i64,
        statuses: &[ProviderStatus],
        now: Timestamp,
    ) -> Result<usize, StoreError>;

    /// Conversations, most recently active first.
    async fn list_conversations(
        &self,
        workspace_id: i64,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    async fn conversation(
        &self,
        workspace_id: i64,
        id: i64,
    ) -> Result<Option<ConversationDetail>, StoreError>;

    /// Queues a message an agent wrote and records it in the transcript; the agent takes the
    /// conversation over if a flow runs. `Conflict` when the WhatsApp window is closed.
    async fn send_agent_message(
        &self,
        engine: &Engine,
        workspace_id: i64,
        conversation_id: i64,
        text: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError>;

    /// Ends an agent's takeover, so automation may run again for the contact.
    async fn resume_conversation(
        &self,
        workspace_id: i64,
        id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    async fn holds(
        &self,
        workspace_id: i64,
        status: Option<&str>,
    ) -> Result<Vec<HoldView>, StoreError>;

    async fn resolve_hold(
        &self,
        workspace_id: i64,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Turns a queued WhatsApp text into its stored template, because the window closed
    /// before it could go out. Returns false when it has no template.
    async fn switch_to_template(&self, message_id: i64, now: Timestamp)
    -> Result<bool, StoreError>;

    /// Figures of one workspace, in total and per flow.
    async fn figures(
        &self,
        workspace_id: i64,
    ) -> Result<(Figures, Vec<(String, FlowFigures)>), StoreError>;
}
