//! Provider adapters of nudge: each implements [`nudge_core::channel::Channel`] for one
//! provider and turns its HTTP responses into a [`SendReceipt`] or a [`SendError`] the
//! dispatcher can act on.
//!
//! - [`SandboxChannel`] records messages in the store instead of sending them.
//! - [`SmsLeopardChannel`] sends SMS through SMSLeopard (Kenya).
//! - [`WhatsappChannel`] sends text and template messages through Meta's WhatsApp Cloud API.
//!
//! Adapters check what they can before a request leaves (length, template parameters, phone
//! format) and return [`SendError::Invalid`] without calling the provider. A failure after the
//! request may have been written (a timeout, a dropped connection) is [`SendError::Unknown`],
//! because the provider may have sent the message. Choosing a channel, retrying and
//! suppressing addresses belong to the dispatcher, not to this crate.
//!
//! [`SendReceipt`]: nudge_core::channel::SendReceipt
//! [`SendError`]: nudge_core::channel::SendError
//! [`SendError::Invalid`]: nudge_core::channel::SendError::Invalid
//! [`SendError::Unknown`]: nudge_core::channel::SendError::Unknown

mod error;
mod http;
mod outbound;
pub mod sandbox;
pub mod smsleopard;
pub mod whatsapp;

pub use error::ConfigError;
pub use sandbox::{SandboxChannel, SandboxLog};
pub use smsleopard::{SmsLeopardChannel, SmsLeopardConfig, validate_sender_id};
pub use whatsapp::{ApprovedTemplate, ButtonKind, WhatsappChannel, WhatsappConfig, split_text};
