//! The recovery engine. It is pure: each function takes the current state, one input and
//! `now`, and returns what should change (new state, timers to arm or cancel, runs to enter
//! or exit, messages to queue). It reads no clock and does no I/O, so the live server and
//! `nudge replay` run the same rules, and tests drive it directly.
//!
//! The stores load the state an input needs, call one of these functions and apply the
//! outcome in the same transaction.

mod checkout;
mod contact;
mod conversation;
mod entry;
mod order;
mod render;
mod state;
mod step;

use jiff::tz::TimeZone;

use crate::flow::FlowSet;
use crate::money::MoneyStyle;

pub use checkout::{CheckoutOutcome, IdleTimers, order_matches};
pub use contact::{Contact, normalise_contact, normalise_email};
pub use conversation::{
    ChatOutcome, ConversationState, HoldRequest, Quote, Speaker, WINDOW, WINDOW_MARGIN,
    fields_for_conversation,
};
pub use entry::{EntryOutcome, holdout_bucket};
pub use order::{OrderOutcome, RunExit};
pub use render::{SmsText, fields_for_checkout, fit_sms};
pub use state::{
    CheckoutState, CheckoutStatus, ExitReason, MatchRule, OrderFacts, RunFacts, RunStatus,
    SubjectRef, Unreachable,
};
pub use step::{NewLink, NewMessage, StepContext, StepOutcome};

/// Settings that shape decisions but are not part of any flow.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of short links, such as `https://nudge.example.com`.
    pub public_url: String,
    /// ISO 3166 region for phone numbers written without a country code.
    pub default_region: String,
    /// Time zone for quiet hours when the contact's own is unknown.
    pub default_timezone: TimeZone,
    pub shop_name: Option<String>,
    /// Where links point when a checkout has no recovery URL.
    pub shop_url: Option<String>,
    pub money_style: MoneyStyle,
    /// Locale for number formatting when a checkout carries none.
    pub locale: Option<String>,
    /// Treat every contact as reachable and consenting, with or without a phone number.
    /// Only replays set this.
    pub assume_reachable: bool,
    /// Require an explicit SMS opt-in. When false, a contact whose consent the source did
    /// not report is treated as consenting; an explicit refusal always blocks.
    pub require_sms_consent: bool,
    /// Currency of prices written without one ("2500/-").
    pub default_currency: String,
    /// Words that mean stop, start again, or yes, in the markets served.
    pub keywords: crate::reply::Keywords,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public_url: "http://127.0.0.1:8080".into(),
            default_region: "KE".into(),
            default_timezone: TimeZone::get("Africa/Nairobi").unwrap_or(TimeZone::UTC),
            shop_name: None,
            shop_url: None,
            money_style: MoneyStyle::Compact,
            locale: None,
            assume_reachable: false,
            require_sms_consent: false,
            default_currency: "KES".into(),
            keywords: crate::reply::Keywords::default(),
        }
    }
}

/// The flows and settings that decisions are made with.
#[derive(Debug, Clone)]
pub struct Engine {
    pub flows: FlowSet,
    pub settings: Settings,
}

impl Engine {
    pub fn new(flows: FlowSet, settings: Settings) -> Engine {
        Engine { flows, settings }
    }
}

#[cfg(test)]
mod tests;
