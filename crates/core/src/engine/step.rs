//! Step timers: deciding, at the moment a step is due, whether its message goes out now, waits
//! for the morning, is skipped, or ends the run.

use jiff::tz::TimeZone;

use crate::channel::{ChannelKind, MessageKind, TemplateMessage};
use crate::flow::{Flow, Step};
use crate::sms::Encoding;
use crate::time::{Timestamp, add};

use super::Engine;
use super::render::fields_for_checkout;
use super::state::{CheckoutState, CheckoutStatus, ExitReason, RunFacts, RunStatus};

/// Facts about the recipient that the store looks up when a step is due.
#[derive(Debug, Clone, Default)]
pub struct StepContext {
    /// The address opted out of messages.
    pub suppressed: bool,
    /// An agent took the conversation over; automation waits for them.
    pub paused: bool,
    /// Messages sent to the address within the flow's frequency-cap period.
    pub recent_sends: u32,
    /// A fresh random token for this message's short link.
    pub link_token: String,
    /// The contact's last WhatsApp message, for WhatsApp steps of cart flows.
    pub last_inbound_at: Option<Timestamp>,
}

/// A short link to create with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub token: String,
    /// The stored target; the redirect appends the campaign parameters.
    pub target: String,
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub step: usize,
    pub channel: ChannelKind,
    pub to: String,
    pub kind: MessageKind,
    pub body: String,
    pub template: Option<TemplateMessage>,
    pub encoding: Option<Encoding>,
    pub segments: usize,
    pub link: Option<NewLink>,
    /// For WhatsApp free-form text: when the customer-service window closes. The sender
    /// checks it again at the moment of sending and switches to `template` (or gives up)
    /// once it has passed.
    pub window_closes_at: Option<Timestamp>,
    /// A note recorded with the message, such as `over_max_segments` when even the
    /// shortest product name left the SMS longer than the step allows.
    pub warning: Option<&'static str>,
}

/// The result of a step timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Queue the message; arm the next step at `next_due`, or finish the run when `None`.
    Send {
        message: Box<NewMessage>,
        next_due: Option<Timestamp>,
    },
    /// Quiet hours: the step fires again at `until`.
    Defer { until: Timestamp },
    /// The step is passed over, with a recorded reason; the run goes on.
    Skip {
        step: usize,
        channel: ChannelKind,
        to: String,
        reason: &'static str,
        next_due: Option<Timestamp>,
    },
    /// The run stops.
    Exit { reason: ExitReason },
    /// A stale timer: nothing to do.
    Drop,
}

impl Engine {
    /// Decides what the due step of a checkout run does.
    pub fn on_step_timer(
        &self,
        run: &RunFacts,
        checkout: &CheckoutState,
        context: &StepContext,
        now: Timestamp,
    ) -> StepOutcome {
        if run.status != RunStatus::Active || run.holdout {
            return StepOutcome::Drop;
        }
        let Some(flow) = self.flows.get(&run.flow).filter(|flow| flow.enabled) else {
            return StepOutcome::Exit {
                reason: ExitReason::FlowRemoved,
            };
        };
        let Some(step) = flow.step(run.next_step) else {
            return StepOutcome::Drop;
        };
        if checkout.status == CheckoutStatus::Completed {
            let reason = if checkout.completed_by.is_some() {
                ExitReason::OrderPlaced
            } else {
                ExitReason::CheckoutCompleted
            };
            return StepOutcome::Exit { reason };
        }
        if context.suppressed {
            return StepOutcome::Exit {
                reason: ExitReason::OptedOut,
            };
        }
        if context.paused {
            return StepOutcome::Exit {
                reason: ExitReason::AgentTakeover,
            };
        }
        if checkout.unreachable.is_some() {
            return StepOutcome::Exit {
                reason: ExitReason::Unreachable,
            };
        }
        if let Some(hours) = flow.quiet_hours {
            if let Some(until) = hours.deferral(now, &self.time_zone_of(checkout)) {
                return StepOutcome::Defer { until };
            }
        }
        let next_due = next_step_due(flow, step, now);
        let to = self.address_of(checkout);
        let skip = |reason: &'static str| StepOutcome::Skip {
            step: step.index,
            channel: step.channel,
            to: to.clone(),
            reason,
            next_due,
        };
        if let Some(cap) = flow.frequency_cap {
            if context.recent_sends >= cap.max {
                return skip("frequency_cap");
            }
        }
        match self.render_checkout_step(flow, step, checkout, context, now) {
            Ok(Some(message)) => StepOutcome::Send {
                message: Box::new(NewMessage { to, ..message }),
                next_due,
            },
            Ok(None) => skip("missing_link"),
            Err(reason) => skip(reason),
        }
    }

    /// Renders a checkout step. `Ok(None)` means the text needs a link and the checkout has
    /// no page to link to.
    fn render_checkout_step(
        &self,
        flow: &Flow,
        step: &Step,
        checkout: &CheckoutState,
        context: &StepContext,
        now: Timestamp,
    ) -> Result<Option<NewMessage>, &'static str> {
        let target = checkout
            .recovery_url
            .clone()
            .or_else(|| self.settings.shop_url.clone());
        let uses_link = |template: &crate::template::Template| {
            template.uses("link") || template.uses("link_token")
        };
        let step_uses_link = step.text.as_ref().is_some_and(uses_link)
            || step.template.as_ref().is_some_and(|template| {
                template
                    .body
                    .iter()
                    .chain(&template.header)
                    .chain(&template.buttons)
                    .any(uses_link)
            });
        let link = match (&target, step_uses_link) {
            (None, true) => return Ok(None),
            (Some(target), true) => Some(super::NewLink {
                token: context.link_token.clone(),
                target: target.clone(),
            }),
            (_, false) => None,
        };
        let url = link.as_ref().map(|link| self.short_link(&link.token));
        let fields = fields_for_checkout(
            checkout,
            &flow.fallbacks,
            &self.settings,
            url.as_deref()
                .zip(link.as_ref().map(|link| link.token.as_str())),
        );
        let address = self.address_of(checkout);
        let window_closes_at = context
            .last_inbound_at
            .map(|at| crate::time::add(at, super::conversation::WINDOW));
        let message = super::conversation::choose_message(
            step,
            &fields,
            &address,
            Some(&address),
            window_closes_at,
            now,
        )?;
        Ok(Some(NewMessage { link, ..message }))
    }

    /// Returns the public short link for a token.
    pub fn short_link(&self, token: &str) -> String {
        format!(
            "{}/r/{token}",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    /// Returns the address of messages for this checkout: the phone number, or in a replay the
    /// customer id.
    pub fn address_of(&self, checkout: &CheckoutState) -> String {
        match (&checkout.phone, &checkout.customer_id) {
            (Some(phone), _) => phone.as_str().to_string(),
            (None, Some(customer)) => format!("customer:{customer}"),
            (None, None) => format!("checkout:{}", checkout.id),
        }
    }

    /// Returns the contact's own time zone, else their phone's country's, else the shop's.
    pub fn time_zone_of(&self, checkout: &CheckoutState) -> TimeZone {
        checkout
            .timezone
            .as_deref()
            .and_then(|name| TimeZone::get(name).ok())
            .or_else(|| {
                checkout
                    .phone
                    .as_ref()
                    .and_then(|phone| phone.time_zone())
                    .and_then(|name| TimeZone::get(name).ok())
            })
            .unwrap_or_else(|| self.settings.default_timezone.clone())
    }
}

/// Returns the next step's due time: its wait counted from this step's send.
fn next_step_due(flow: &Flow, step: &Step, now: Timestamp) -> Option<Timestamp> {
    flow.step(step.index + 1).map(|next| add(now, next.wait))
}
