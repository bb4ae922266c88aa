//! The outbound side of a provider: what a channel adapter is given to send and what it returns.
//!
//! Adapters live in the `nudge-channels` crate; this module only fixes the contract, so the
//! dispatcher can drive any provider the same way.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The medium a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Sms,
    Whatsapp,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Whatsapp => "whatsapp",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelKind> {
        match text {
            "sms" => Some(ChannelKind::Sms),
            "whatsapp" => Some(ChannelKind::Whatsapp),
            _ => None,
        }
    }
}

/// Whether a WhatsApp message is free-form text or an approved template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Text,
    Template,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Template => "template",
        }
    }

    pub fn parse(text: &str) -> Option<MessageKind> {
        match text {
            "text" => Some(MessageKind::Text),
            "template" => Some(MessageKind::Template),
            _ => None,
        }
    }
}

/// A filled-in WhatsApp template: every parameter is already rendered and non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub name: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header: Vec<String>,
    #[serde(default)]
    pub body: Vec<String>,
    /// Suffixes for dynamic URL buttons, by button index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
}

/// One message handed to an adapter.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub message_id: i64,
    pub workspace_id: i64,
    /// Stable key of the message (run and step); adapters pass it on where the provider
    /// accepts one, so a provider can recognise a repeat.
    pub idempotency_key: String,
    pub channel: ChannelKind,
    /// E.164 phone number with `+`.
    pub to: String,
    pub kind: MessageKind,
    /// The wire text for SMS and WhatsApp text messages.
    pub body: String,
    pub template: Option<TemplateMessage>,
}

/// What a provider returned on acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id for the message (SMSLeopard recipient id, WhatsApp wamid).
    pub provider_message_id: Option<String>,
    /// The provider's first status, such as `queued` or `accepted`.
    pub status: Option<String>,
}

/// Why a send failed, split by what the dispatcher may do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider or network failed in a way that may pass; the send may be retried.
    #[error("retryable send failure ({code}): {message}")]
    Retryable {
        code: String,
        message: String,
        /// The provider's `Retry-After`, in seconds, when it gave one.
        retry_after_secs: Option<u64>,
    },
    /// The provider rejected this message; sending it again would fail the same way.
    #[error("permanent send failure ({code}): {message}")]
    Permanent {
        code: String,
        message: String,
        /// The recipient refused messages (opt-out, blacklist); suppress the address.
        opted_out: bool,
    },
    /// The message was never sent because it broke a local rule (length, template
    /// parameters); no request reached the provider.
    #[error("message rejected before sending ({code}): {message}")]
    Invalid { code: String, message: String },
    /// The request may or may not have reached the provider (for example, a timeout after
    /// the body was written). The message must not be sent again.
    #[error("send outcome unknown ({code}): {message}")]
    Unknown { code: String, message: String },
}

impl SendError {
    pub fn code(&self) -> &str {
        match self {
            SendError::Retryable { code, .. }
            | SendError::Permanent { code, .. }
            | SendError::Invalid { code, .. }
            | SendError::Unknown { code, .. } => code,
        }
    }
}

/// What a provider can tell about a message whose send outcome was lost in a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The provider has the message: it was sent.
    Sent { provider_message_id: Option<String> },
    /// The provider has no record of it: it was never sent.
    NotSent,
    /// The provider cannot answer this question.
    Unknown,
}

/// A provider adapter.
#[async_trait]
pub trait Channel: Send + Sync {
    /// The provider's name as recorded on messages, such as `sandbox` or `smsleopard`.
    fn provider(&self) -> &str;

    fn kind(&self) -> ChannelKind;

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError>;

    /// Asks the provider whether a message with this idempotency key went out.
    async fn lookup(&self, message: &OutboundMessage) -> Lookup {
        let _ = message;
        Lookup::Unknown
    }
}
