//! Checkout updates: merging a new snapshot into the stored checkout, completing it when an
//! order already matches, and (re)arming its idle timers.

use crate::event::CheckoutEvent;
use crate::flow::Trigger;
use crate::time::{Timestamp, add, truncate_to_millis};

use super::Engine;
use super::contact::{normalise_contact, unreachable};
use super::state::{CheckoutState, CheckoutStatus, ExitReason, MatchRule, OrderFacts};

/// Change to a checkout's idle timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdleTimers {
    /// Arm or move the idle timer of each flow (by name) to its due time.
    Arm(Vec<(String, Timestamp)>),
    /// Remove every idle timer of the checkout.
    Cancel,
    /// Leave them as they are.
    Keep,
}

/// The result of one checkout update.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutOutcome {
    pub state: CheckoutState,
    pub timers: IdleTimers,
    /// Set when the checkout became complete with this update; the checkout's active runs
    /// exit with this reason.
    pub completed: Option<ExitReason>,
}

impl Engine {
    /// Applies one checkout update. `stored_orders` are orders already recorded that share a
    /// checkout id, cart token, phone, e-mail or customer id with the checkout; the engine
    /// decides which of them match.
    pub fn on_checkout(
        &self,
        previous: Option<&CheckoutState>,
        event: &CheckoutEvent,
        stored_orders: &[OrderFacts],
        now: Timestamp,
    ) -> CheckoutOutcome {
        // A shop clock ahead of ours must not push the idle moment into the future.
        let occurred_at = truncate_to_millis(event.occurred_at).min(now);
        let mut state = match previous {
            None => self.new_checkout(event, occurred_at),
            Some(previous) => self.merge_checkout(previous, event, occurred_at),
        };
        state.unreachable = unreachable(
            state.phone.as_ref(),
            state.invalid_phone.as_deref(),
            state.sms_consent,
            &self.settings,
        );

        if state.is_final() {
            return CheckoutOutcome {
                state,
                timers: IdleTimers::Keep,
                completed: None,
            };
        }
        if event.completed_at.is_some() {
            state.status = CheckoutStatus::Completed;
            return CheckoutOutcome {
                state,
                timers: IdleTimers::Cancel,
                completed: Some(ExitReason::CheckoutCompleted),
            };
        }
        // An order that arrived before this checkout was known: ties go to the order,
        // because it was recorded first.
        let order_first = previous.is_none();
        let matched = stored_orders
            .iter()
            .filter_map(|order| order_matches(order, &state, order_first).map(|rule| (order, rule)))
            .min_by_key(|(order, rule)| (*rule != MatchRule::SameCheckout, order.occurred_at));
        if let Some((order, rule)) = matched {
            state.status = CheckoutStatus::Completed;
            state.completed_by = Some(order.id.clone());
            return CheckoutOutcome {
                state,
                timers: IdleTimers::Cancel,
                completed: Some(ExitReason::for_match(rule)),
            };
        }
        let timers = match (state.status, state.unreachable) {
            (CheckoutStatus::Open, None) => IdleTimers::Arm(
                self.flows
                    .for_trigger(Trigger::CartAbandoned)
                    .map(|flow| (flow.name.clone(), add(state.last_activity_at, flow.idle)))
                    .collect(),
            ),
            (CheckoutStatus::Open, Some(_)) => IdleTimers::Cancel,
            _ => IdleTimers::Keep,
        };
        CheckoutOutcome {
            state,
            timers,
            completed: None,
        }
    }

    fn new_checkout(&self, event: &CheckoutEvent, occurred_at: Timestamp) -> CheckoutState {
        let contact = normalise_contact(&event.contact, &self.settings);
        CheckoutState {
            id: event.id.clone(),
            cart_token: event.cart_token.clone(),
            status: CheckoutStatus::Open,
            unreachable: None,
            opened_at: occurred_at,
            last_activity_at: occurred_at,
            snapshot_at: occurred_at,
            phone: contact.phone,
            invalid_phone: contact.invalid_phone,
            email: contact.email,
            customer_id: contact.customer_id,
            first_name: contact.first_name,
            last_name: contact.last_name,
            sms_consent: contact.sms_consent,
            timezone: contact.timezone,
            items: live_items(event),
            total: event.total,
            currency: event.currency.clone(),
            recovery_url: event.recovery_url.clone(),
            locale: event.locale.clone(),
            completed_by: None,
        }
    }

    fn merge_checkout(
        &self,
        previous: &CheckoutState,
        event: &CheckoutEvent,
        occurred_at: Timestamp,
    ) -> CheckoutState {
        let contact = normalise_contact(&event.contact, &self.settings);
        let mut state = previous.clone();
        let newer = occurred_at >= previous.snapshot_at;
        // Contact details: a newer update wins where it has a value, and an older one only
        // fills gaps.
        let pick = |new: Option<String>, old: &Option<String>| match (new, old) {
            (Some(new), _) if newer || old.is_none() => Some(new),
            (_, old) => old.clone(),
        };
        if let Some(phone) = contact.phone {
            if newer || state.phone.is_none() {
                state.phone = Some(phone);
                state.invalid_phone = None;
            }
        } else if let Some(raw) = contact.invalid_phone {
            if state.phone.is_none() {
                state.invalid_phone = Some(raw);
            }
        }
        state.email = pick(contact.email, &state.email);
        state.customer_id = pick(contact.customer_id, &state.customer_id);
        state.first_name = pick(contact.first_name, &state.first_name);
        state.last_name = pick(contact.last_name, &state.last_name);
        state.timezone = pick(contact.timezone, &state.timezone);
        state.cart_token = pick(event.cart_token.clone(), &state.cart_token);
        if contact.sms_consent.is_some() && (newer || state.sms_consent.is_none()) {
            state.sms_consent = contact.sms_consent;
        }
        if newer {
            state.snapshot_at = occurred_at;
            state.items = live_items(event);
            state.total = event.total.or(state.total);
            state.currency = event.currency.clone().or(state.currency);
            state.recovery_url = event.recovery_url.clone().or(state.recovery_url);
            state.locale = event.locale.clone().or(state.locale);
        }
        state.opened_at = state.opened_at.min(occurred_at);
        // Activity after abandonment does not reopen the checkout: abandonment is final.
        if state.status == CheckoutStatus::Open {
            state.last_activity_at = state.last_activity_at.max(occurred_at);
        }
        state
    }
}

/// Lines with a quantity above zero; a line at zero is a removed item.
fn live_items(event: &CheckoutEvent) -> Vec<crate::event::Item> {
    event
        .items
        .iter()
        .filter(|item| item.quantity > 0)
        .cloned()
        .collect()
}

/// Whether an order completes a checkout, and by which rule.
///
/// The same checkout id or cart token always matches. The same contact (E.164 phone or
/// lower-case e-mail) matches when the checkout opened before the order: at or before it when
/// the checkout was recorded first, strictly before it when the order was (`order_first`).
/// A store's customer id alone never matches, because a guest gets one only when buying, so
/// the id does not show who opened an earlier checkout. Item overlap is not required,
/// because a shopper who just bought should not get a reminder about another cart of the
/// same visit.
pub fn order_matches(
    order: &OrderFacts,
    checkout: &CheckoutState,
    order_first: bool,
) -> Option<MatchRule> {
    let same = |left: &Option<String>, right: &Option<String>| matches!((left, right), (Some(left), Some(right)) if left == right);
    if same(&order.checkout_id, &Some(checkout.id.clone()))
        || same(&order.cart_token, &checkout.cart_token)
    {
        return Some(MatchRule::SameCheckout);
    }
    let same_phone =
        matches!((&order.phone, &checkout.phone), (Some(left), Some(right)) if left == right);
    let same_contact = same_phone || same(&order.email, &checkout.email);
    let opened_before = if order_first {
        checkout.opened_at < order.occurred_at
    } else {
        checkout.opened_at <= order.occurred_at
    };
    (same_contact && opened_before).then_some(MatchRule::SameContact)
}
