//! Orders: completing the checkouts they match, stopping the runs those checkouts are in, and
//! crediting the order to the nudge that most plausibly brought it back.

use std::time::Duration;

use crate::event::OrderEvent;
use crate::time::{Timestamp, truncate_to_millis};

use super::Engine;
use super::checkout::order_matches;
use super::contact::normalise_contact;
use super::state::{
    CheckoutState, CheckoutStatus, ExitReason, MatchRule, OrderFacts, RunFacts, RunStatus,
    SubjectRef,
};

/// A run that must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunExit {
    pub run_id: i64,
    pub reason: ExitReason,
}

/// The result of one order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderOutcome {
    /// Checkouts (by id) that this order completes, with the rule that matched.
    pub completed: Vec<(String, MatchRule)>,
    pub exits: Vec<RunExit>,
    /// The run credited with the order: the one whose latest message came last before it.
    pub credited_run: Option<i64>,
    /// A holdout run whose contact converted without a message, counted for the control group.
    pub control_run: Option<i64>,
}

/// Attribution window used for runs of a flow that is no longer loaded.
const FALLBACK_ATTRIBUTION_WINDOW: Duration = Duration::from_secs(5 * 86_400);

impl Engine {
    /// Reduces an order event to the facts matching and attribution use.
    pub fn order_facts(&self, event: &OrderEvent) -> OrderFacts {
        let contact = normalise_contact(&event.contact, &self.settings);
        OrderFacts {
            id: event.id.clone(),
            occurred_at: truncate_to_millis(event.occurred_at),
            checkout_id: event.checkout_id.clone(),
            cart_token: event.cart_token.clone(),
            phone: contact.phone,
            email: contact.email,
            customer_id: contact.customer_id,
            total: event.total,
            currency: event.currency.clone(),
            discount_codes: event.discount_codes.clone(),
        }
    }

    /// Applies a new order. `checkouts` are the stored checkouts that share an id, cart token
    /// or contact key with it, and `runs` every run on those checkouts and on conversations
    /// with the order's phone number.
    pub fn on_order(
        &self,
        order: &OrderFacts,
        checkouts: &[CheckoutState],
        runs: &[RunFacts],
    ) -> OrderOutcome {
        let matched: Vec<(&CheckoutState, MatchRule)> = checkouts
            .iter()
            .filter_map(|checkout| {
                order_matches(order, checkout, false).map(|rule| (checkout, rule))
            })
            .collect();
        let rule_for = |subject: &SubjectRef| match subject {
            SubjectRef::Checkout(id) => matched
                .iter()
                .find(|(checkout, _)| &checkout.id == id)
                .map(|(_, rule)| *rule),
            // The store passes only conversations with the order's phone number.
            SubjectRef::Conversation(_) => Some(MatchRule::SameContact),
        };

        let completed = matched
            .iter()
            .filter(|(checkout, _)| {
                matches!(
                    checkout.status,
                    CheckoutStatus::Open | CheckoutStatus::Abandoned
                )
            })
            .map(|(checkout, rule)| (checkout.id.clone(), *rule))
            .collect();
        let exits = runs
            .iter()
            .filter(|run| run.status == RunStatus::Active)
            .filter_map(|run| {
                rule_for(&run.subject).map(|rule| RunExit {
                    run_id: run.id,
                    reason: ExitReason::for_match(rule),
                })
            })
            .collect();

        // Runs of the same shopper, whatever the order of arrival: attribution only looks at
        // when messages went out.
        let of_shopper: Vec<&RunFacts> = runs
            .iter()
            .filter(|run| run.credited_order.is_none())
            .filter(|run| match &run.subject {
                SubjectRef::Checkout(id) => checkouts
                    .iter()
                    .any(|checkout| &checkout.id == id && shares_contact(order, checkout)),
                SubjectRef::Conversation(_) => false,
            })
            .collect();
        let credited_run = of_shopper
            .iter()
            .filter(|run| !run.holdout)
            .filter_map(|run| {
                let sent = run.last_message_at?;
                self.within_window(run, sent, order.occurred_at)
                    .then_some((sent, run.id))
            })
            .max_by_key(|(sent, id)| (*sent, -id))
            .map(|(_, id)| id);
        let control_run = if credited_run.is_some() {
            None
        } else {
            of_shopper
                .iter()
                .filter(|run| run.holdout)
                .filter(|run| self.within_window(run, run.entered_at, order.occurred_at))
                .max_by_key(|run| (run.entered_at, -run.id))
                .map(|run| run.id)
        };
        OrderOutcome {
            completed,
            exits,
            credited_run,
            control_run,
        }
    }

    fn within_window(&self, run: &RunFacts, from: Timestamp, order_at: Timestamp) -> bool {
        let window = self
            .flows
            .get(&run.flow)
            .map(|flow| flow.attribution_window)
            .unwrap_or(FALLBACK_ATTRIBUTION_WINDOW);
        from <= order_at && crate::time::add(from, window) >= order_at
    }
}

/// The same checkout, or the same phone or e-mail, regardless of timing.
fn shares_contact(order: &OrderFacts, checkout: &CheckoutState) -> bool {
    let same = |left: &Option<String>, right: &Option<String>| matches!((left, right), (Some(left), Some(right)) if left == right);
    same(&order.checkout_id, &Some(checkout.id.clone()))
        || same(&order.cart_token, &checkout.cart_token)
        || matches!((&order.phone, &checkout.phone), (Some(left), Some(right)) if left == right)
        || same(&order.email, &checkout.email)
}
