//! The state the engine reasons about. Stores keep these as rows, and the engine works on
//! plain values.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::event::Item;
use crate::phone::Phone;
use crate::time::Timestamp;

/// Status of a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    /// Still in progress: updates push the idle moment back.
    Open,
    /// Went idle with items in it and entered a flow. Final.
    Abandoned,
    /// An order or the store completed it. Final.
    Completed,
    /// Went idle with nothing in it. Final.
    Emptied,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::Open => "open",
            CheckoutStatus::Abandoned => "abandoned",
            CheckoutStatus::Completed => "completed",
            CheckoutStatus::Emptied => "emptied",
        }
    }

    pub fn parse(text: &str) -> Option<CheckoutStatus> {
        match text {
            "open" => Some(CheckoutStatus::Open),
            "abandoned" => Some(CheckoutStatus::Abandoned),
            "completed" => Some(CheckoutStatus::Completed),
            "emptied" => Some(CheckoutStatus::Emptied),
            _ => None,
        }
    }
}

/// Reason that no message can reach a checkout's contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    /// No phone number at all (blank counts as none).
    NoContact,
    /// A phone number was given but is not a valid number; it is never guessed.
    InvalidPhone,
    /// The shopper refused marketing SMS, or consent is required and was not given.
    NoConsent,
}

impl Unreachable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unreachable::NoContact => "no_contact",
            Unreachable::InvalidPhone => "invalid_phone",
            Unreachable::NoConsent => "no_consent",
        }
    }
}

/// Checkout state as the engine keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutState {
    /// The source's checkout id.
    pub id: String,
    pub cart_token: Option<String>,
    pub status: CheckoutStatus,
    pub unreachable: Option<Unreachable>,
    pub opened_at: Timestamp,
    /// Latest activity; the idle moment is this plus a flow's `idle`.
    pub last_activity_at: Timestamp,
    /// `occurred_at` of the update whose items and totals are kept, so that a late,
    /// older delivery does not overwrite a newer cart.
    pub snapshot_at: Timestamp,
    pub phone: Option<Phone>,
    /// The raw text of a phone number that could not be read, for the merchant to fix.
    pub invalid_phone: Option<String>,
    pub email: Option<String>,
    pub customer_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub sms_consent: Option<bool>,
    pub timezone: Option<String>,
    pub items: Vec<Item>,
    pub total: Option<Decimal>,
    pub currency: Option<String>,
    pub recovery_url: Option<String>,
    pub locale: Option<String>,
    /// The order that completed the checkout, if one did.
    pub completed_by: Option<String>,
}

impl CheckoutState {
    pub fn is_final(&self) -> bool {
        matches!(
            self.status,
            CheckoutStatus::Completed | CheckoutStatus::Emptied
        )
    }

    /// Units left in the cart.
    pub fn unit_count(&self) -> u64 {
        self.items.iter().map(|item| u64::from(item.quantity)).sum()
    }
}

/// An order, reduced to what matching and attribution need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub id: String,
    pub occurred_at: Timestamp,
    pub checkout_id: Option<String>,
    pub cart_token: Option<String>,
    pub phone: Option<Phone>,
    pub email: Option<String>,
    pub customer_id: Option<String>,
    pub total: Option<Decimal>,
    pub currency: Option<String>,
    pub discount_codes: Vec<String>,
}

/// Rule by which an order matched a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchRule {
    /// Same checkout id or cart token.
    SameCheckout,
    /// Same phone, e-mail or customer id, and the checkout opened before the order.
    SameContact,
}

/// Subject of a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum SubjectRef {
    /// A checkout, by the source's checkout id.
    Checkout(String),
    /// A conversation, by its id.
    Conversation(String),
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Steps may still be sent (or, for a holdout run, it is still being observed).
    Active,
    /// Every step was handled.
    Finished,
    /// Stopped early, for the reason in `exit_reason`.
    Exited,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Active => "active",
            RunStatus::Finished => "finished",
            RunStatus::Exited => "exited",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        match text {
            "active" => Some(RunStatus::Active),
            "finished" => Some(RunStatus::Finished),
            "exited" => Some(RunStatus::Exited),
            _ => None,
        }
    }
}

/// Reason a run stopped before its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// An order for the same checkout (id or cart token).
    OrderPlaced,
    /// An order from the same contact for another checkout.
    OrderBySameContact,
    /// The store reported the checkout completed.
    CheckoutCompleted,
    OptedOut,
    Unreachable,
    CustomerReplied,
    AgentTakeover,
    /// The flow was removed or disabled while the run was waiting.
    FlowRemoved,
    /// The customer replied yes to a hold question, so an agent takes it from here.
    HoldRequested,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::OrderPlaced => "order_placed",
            ExitReason::OrderBySameContact => "order_by_same_contact",
            ExitReason::CheckoutCompleted => "checkout_completed",
            ExitReason::OptedOut => "opted_out",
            ExitReason::Unreachable => "unreachable",
            ExitReason::CustomerReplied => "customer_replied",
            ExitReason::AgentTakeover => "agent_takeover",
            ExitReason::FlowRemoved => "flow_removed",
            ExitReason::HoldRequested => "hold_requested",
        }
    }

    /// Returns whether an order ended the run.
    pub fn is_order(self) -> bool {
        matches!(
            self,
            ExitReason::OrderPlaced
                | ExitReason::OrderBySameContact
                | ExitReason::CheckoutCompleted
        )
    }

    pub fn for_match(rule: MatchRule) -> ExitReason {
        match rule {
            MatchRule::SameCheckout => ExitReason::OrderPlaced,
            MatchRule::SameContact => ExitReason::OrderBySameContact,
        }
    }
}

/// A run of a flow, as the engine needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// The store's id; opaque to the engine.
    pub id: i64,
    pub flow: String,
    pub subject: SubjectRef,
    pub status: RunStatus,
    pub holdout: bool,
    pub entered_at: Timestamp,
    /// Index of the next step to handle.
    pub next_step: usize,
    pub last_message_at: Option<Timestamp>,
    /// The order credited to this run, if any.
    pub credited_order: Option<String>,
}
