//! Conversations: a customer asked about a product, the business replied (often with a
//! price), and the customer went quiet. This module decides what each chat message changes,
//! when a silent conversation enters a flow, and what a due step sends, taking WhatsApp's
//! 24-hour customer-service window into account.
//!
//! The window is counted from the customer's own last message. Inside it a free-form text
//! may go out; outside it only an approved template may. A follow-up a day after a quote is
//! nearly always outside, so the engine picks the template (or an SMS fallback, or nothing)
//! rather than a text that WhatsApp would reject.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::channel::{ChannelKind, MessageKind, TemplateMessage};
use crate::event::{Author, ChatMessageEvent};
use crate::flow::{Fallbacks, Flow, Step, Trigger};
use crate::money::format_money;
use crate::phone::Phone;
use crate::quote::{detect_price, detect_product_question, detect_quoted_product};
use crate::reply::{ReplyIntent, classify};
use crate::template::{Fields, capitalise, present};
use crate::time::{Timestamp, add, sub};

use super::checkout::IdleTimers;
use super::entry::{EntryOutcome, holdout_bucket};
use super::order::RunExit;
use super::render::fit_sms;
use super::state::{ExitReason, RunFacts, RunStatus};
use super::step::{NewLink, NewMessage, StepContext, StepOutcome};
use super::{Engine, Settings};

/// WhatsApp's customer-service window.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The window counts as closed this long before it really closes, so that a message decided
/// now and sent a little later still lands inside it.
pub const WINDOW_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Party that wrote the latest message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Customer,
    Business,
}

/// A price the business quoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub amount: Decimal,
    pub currency: String,
    pub product: Option<String>,
    pub at: Timestamp,
}

/// Conversation state as the engine keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// The contact's address: an E.164 phone number, or in a replay the source's id.
    pub contact: String,
    pub channel: ChannelKind,
    pub phone: Option<Phone>,
    /// The name the customer goes by (a WhatsApp profile name, or the first name given).
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub opened_at: Timestamp,
    pub last_inbound_at: Option<Timestamp>,
    pub last_outbound_at: Option<Timestamp>,
    pub last_speaker: Option<Speaker>,
    pub quote: Option<Quote>,
    /// The product the customer last asked about.
    pub asked_product: Option<String>,
    /// An agent took over; automation waits until an agent resumes it.
    pub paused: bool,
}

impl ConversationState {
    /// When the customer-service window closes, if it is open at all.
    pub fn window_closes_at(&self) -> Option<Timestamp> {
        self.last_inbound_at.map(|at| add(at, WINDOW))
    }

    /// Returns whether a free-form message decided at `now` may still go out.
    pub fn window_open(&self, now: Timestamp) -> bool {
        self.window_closes_at()
            .is_some_and(|closes| now < sub(closes, WINDOW_MARGIN))
    }

    /// Returns the product this conversation is about.
    pub fn product(&self) -> Option<&str> {
        self.quote
            .as_ref()
            .and_then(|quote| quote.product.as_deref())
            .or(self.asked_product.as_deref())
    }
}

/// A hold an agent should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub run_id: i64,
    pub product: Option<String>,
    pub at: Timestamp,
}

/// The result of one chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutcome {
    pub state: ConversationState,
    pub timers: IdleTimers,
    pub exits: Vec<RunExit>,
    /// `Some(true)`: the customer opted out; `Some(false)`: opted back in.
    pub opt_out: Option<bool>,
    pub hold: Option<HoldRequest>,
    /// The quote this message made, if it made one.
    pub quote: Option<Quote>,
    pub author: Author,
    /// The conversation's automation was just paused by an agent's message.
    pub paused_now: bool,
}

impl Engine {
    /// The address a chat contact is known by: an E.164 phone, else (replays) the
    /// source's customer id. `None` when neither is usable.
    pub fn chat_address(&self, event: &ChatMessageEvent) -> Option<(String, Option<Phone>)> {
        if let Some(raw) = present(event.contact.phone.as_deref()) {
            if let Ok(phone) = Phone::parse(raw, &self.settings.default_region) {
                return Some((phone.as_str().to_string(), Some(phone)));
            }
            return None;
        }
        present(event.contact.customer_id.as_deref()).map(|id| (format!("customer:{id}"), None))
    }

    /// Applies one chat message. `runs` are the conversation's runs.
    pub fn on_chat_message(
        &self,
        previous: Option<&ConversationState>,
        event: &ChatMessageEvent,
        inbound: bool,
        runs: &[RunFacts],
        now: Timestamp,
    ) -> Option<ChatOutcome> {
        let (contact, phone) = self.chat_address(event)?;
        let at = event.occurred_at.min(now);
        let mut state = previous.cloned().unwrap_or(ConversationState {
            contact,
            channel: event.channel,
            phone,
            name: None,
            timezone: None,
            opened_at: at,
            last_inbound_at: None,
            last_outbound_at: None,
            last_speaker: None,
            quote: None,
            asked_product: None,
            paused: false,
        });
        if let Some(zone) = present(event.contact.timezone.as_deref()) {
            state.timezone = Some(zone.to_string());
        }
        let active: Vec<&RunFacts> = runs
            .iter()
            .filter(|run| run.status == RunStatus::Active)
            .collect();
        if inbound {
            Some(self.on_inbound(state, event, at, &active, runs))
        } else {
            Some(self.on_outbound(state, event, at, &active))
        }
    }

    fn on_inbound(
        &self,
        mut state: ConversationState,
        event: &ChatMessageEvent,
        at: Timestamp,
        active: &[&RunFacts],
        runs: &[RunFacts],
    ) -> ChatOutcome {
        if let Some(name) = present(event.contact.first_name.as_deref()) {
            state.name = Some(name.to_string());
        }
        state.last_inbound_at = Some(state.last_inbound_at.map_or(at, |last| last.max(at)));
        if state.last_outbound_at.is_none_or(|outbound| at >= outbound) {
            state.last_speaker = Some(Speaker::Customer);
        }
        if let Some(product) = detect_product_question(&event.text) {
            state.asked_product = Some(product);
        }
        let intent = classify(&event.text, &self.settings.keywords);
        let mut outcome = ChatOutcome {
            state,
            timers: IdleTimers::Cancel,
            exits: Vec::new(),
            opt_out: None,
            hold: None,
            quote: None,
            author: Author::Customer,
            paused_now: false,
        };
        match intent {
            ReplyIntent::OptOut => {
                outcome.opt_out = Some(true);
                outcome.exits = exit_all(active, ExitReason::OptedOut);
            }
            ReplyIntent::OptIn => {
                outcome.opt_out = Some(false);
                outcome.exits = exit_all(active, ExitReason::CustomerReplied);
            }
            ReplyIntent::Affirmative => {
                // A yes to a hold question becomes a hold request; the run stops because an
                // agent now owns the follow-up. The question may have been the flow's last
                // step, so finished runs count too.
                let asked = runs
                    .iter()
                    .filter(|run| run.status != RunStatus::Exited && self.asked_hold(run, at))
                    .max_by_key(|run| run.last_message_at);
                match asked {
                    Some(run) => {
                        outcome.hold = Some(HoldRequest {
                            run_id: run.id,
                            product: outcome.state.product().map(str::to_string),
                            at,
                        });
                        outcome.exits = active
                            .iter()
                            .map(|other| RunExit {
                                run_id: other.id,
                                reason: if other.id == run.id {
                                    ExitReason::HoldRequested
                                } else {
                                    ExitReason::CustomerReplied
                                },
                            })
                            .collect();
                    }
                    None => outcome.exits = exit_all(active, ExitReason::CustomerReplied),
                }
            }
            ReplyIntent::Other => outcome.exits = exit_all(active, ExitReason::CustomerReplied),
        }
        outcome
    }

    /// Whether the run's latest sent step asked a hold question that a reply at `at` may
    /// still answer (within the flow's attribution window).
    fn asked_hold(&self, run: &RunFacts, at: Timestamp) -> bool {
        let Some(flow) = self.flows.get(&run.flow) else {
            return false;
        };
        let asked = run
            .next_step
            .checked_sub(1)
            .and_then(|sent| flow.step(sent))
            .is_some_and(|step| step.hold_on_yes);
        asked
            && run
                .last_message_at
                .is_some_and(|sent| sent <= at && add(sent, flow.attribution_window) >= at)
    }

    fn on_outbound(
        &self,
        mut state: ConversationState,
        event: &ChatMessageEvent,
        at: Timestamp,
        active: &[&RunFacts],
    ) -> ChatOutcome {
        let author = event.author.unwrap_or(Author::Agent);
        state.last_outbound_at = Some(state.last_outbound_at.map_or(at, |last| last.max(at)));
        if state.last_inbound_at.is_none_or(|inbound| at >= inbound) {
            state.last_speaker = Some(Speaker::Business);
        }
        let quote = self.quote_in(event, &state, at);
        if let Some(quote) = &quote {
            state.quote = Some(quote.clone());
        }
        let mut exits = Vec::new();
        let mut paused_now = false;
        if author == Author::Agent {
            // A person writing while a flow runs takes the conversation over.
            let taken_over: Vec<&RunFacts> = active
                .iter()
                .copied()
                .filter(|run| run.entered_at <= at)
                .collect();
            if !taken_over.is_empty() {
                exits = exit_all(&taken_over, ExitReason::AgentTakeover);
                state.paused = true;
                paused_now = true;
            }
        }
        // nudge's own messages do not restart the silence clock, or a nudge would trigger
        // the next one.
        let timers = if author == Author::Automation || state.paused {
            IdleTimers::Keep
        } else {
            IdleTimers::Arm(
                self.flows
                    .for_trigger(Trigger::ConversationIdle)
                    .map(|flow| (flow.name.clone(), add(at, flow.idle)))
                    .collect(),
            )
        };
        ChatOutcome {
            state,
            timers,
            exits,
            opt_out: None,
            hold: None,
            quote,
            author,
            paused_now,
        }
    }

    /// Finds the quote a business message makes: an explicit price, else one in the text.
    fn quote_in(
        &self,
        event: &ChatMessageEvent,
        state: &ConversationState,
        at: Timestamp,
    ) -> Option<Quote> {
        let (amount, currency) = match event.price {
            Some(price) => (
                price,
                event
                    .currency
                    .clone()
                    .unwrap_or_else(|| self.settings.default_currency.clone()),
            ),
            None => {
                let found = detect_price(&event.text, &self.settings.default_currency)?;
                (found.amount, found.currency)
            }
        };
        let product = present(event.product.as_deref())
            .map(str::to_string)
            .or_else(|| detect_quoted_product(&event.text))
            .or_else(|| state.asked_product.clone());
        Some(Quote {
            amount,
            currency,
            product,
            at,
        })
    }

    /// Decides what a firing conversation idle timer means.
    pub fn on_conversation_idle(
        &self,
        state: &ConversationState,
        flow_name: &str,
        conversation_id: &str,
        already_entered: bool,
        now: Timestamp,
    ) -> EntryOutcome {
        let Some(flow) = self.flows.get(flow_name).filter(|flow| flow.enabled) else {
            return EntryOutcome::Drop;
        };
        if already_entered || state.paused || state.last_speaker != Some(Speaker::Business) {
            return EntryOutcome::Drop;
        }
        if flow.require_quote && state.quote.is_none() {
            return EntryOutcome::Drop;
        }
        let Some(business_at) = state.last_outbound_at else {
            return EntryOutcome::Drop;
        };
        let due = add(business_at, flow.idle);
        if due > now {
            return EntryOutcome::Rearm(due);
        }
        let holdout = holdout_bucket(&flow.name, conversation_id) < flow.holdout;
        let first_step_due = if holdout {
            None
        } else {
            flow.steps
                .first()
                .map(|step| self.conversation_step_due(flow, step, state, now))
        };
        EntryOutcome::Enter {
            holdout,
            entered_at: now,
            first_step_due,
        }
    }

    /// A step's due time counted from `from`, moved earlier to shortly before the window
    /// closes when the flow asks to aim inside the window.
    fn conversation_step_due(
        &self,
        flow: &Flow,
        step: &Step,
        state: &ConversationState,
        from: Timestamp,
    ) -> Timestamp {
        let due = add(from, step.wait);
        if !flow.send_within_window {
            return due;
        }
        match state
            .window_closes_at()
            .map(|closes| sub(closes, WINDOW_MARGIN + Duration::from_secs(60)))
        {
            Some(last_chance) if last_chance > from && last_chance < due => last_chance,
            _ => due,
        }
    }

    /// Decides what the due step of a conversation run sends, checking the window at this
    /// moment.
    pub fn on_conversation_step(
        &self,
        run: &RunFacts,
        state: &ConversationState,
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
        if context.suppressed {
            return StepOutcome::Exit {
                reason: ExitReason::OptedOut,
            };
        }
        if state.paused || context.paused {
            return StepOutcome::Exit {
                reason: ExitReason::AgentTakeover,
            };
        }
        if state
            .last_inbound_at
            .is_some_and(|inbound| inbound > run.entered_at)
        {
            return StepOutcome::Exit {
                reason: ExitReason::CustomerReplied,
            };
        }
        if let Some(hours) = flow.quiet_hours {
            if let Some(until) = hours.deferral(now, &self.zone_of(state)) {
                return StepOutcome::Defer { until };
            }
        }
        let next_due = flow
            .step(step.index + 1)
            .map(|next| self.conversation_step_due(flow, next, state, now));
        let skip = |reason: &'static str, channel: ChannelKind| StepOutcome::Skip {
            step: step.index,
            channel,
            to: state.contact.clone(),
            reason,
            next_due,
        };
        if let Some(cap) = flow.frequency_cap {
            if context.recent_sends >= cap.max {
                return skip("frequency_cap", step.channel);
            }
        }
        let link = self.settings.shop_url.clone().map(|target| NewLink {
            token: context.link_token.clone(),
            target,
        });
        let url = link.as_ref().map(|link| self.short_link(&link.token));
        let fields = fields_for_conversation(
            state,
            &flow.fallbacks,
            &self.settings,
            url.as_deref()
                .zip(link.as_ref().map(|link| link.token.as_str())),
        );
        let uses_link = |template: &crate::template::Template| {
            template.uses("link") || template.uses("link_token")
        };
        let message = match self.conversation_message(step, state, &fields, now) {
            Ok(message) => message,
            Err(reason) => return skip(reason, step.channel),
        };
        let needs_link = match message.kind {
            MessageKind::Text => step.text.as_ref().is_some_and(uses_link),
            MessageKind::Template => step.template.as_ref().is_some_and(|template| {
                template
                    .body
                    .iter()
                    .chain(&template.header)
                    .chain(&template.buttons)
                    .any(uses_link)
            }),
        };
        if needs_link && link.is_none() {
            return skip("missing_link", step.channel);
        }
        StepOutcome::Send {
            message: Box::new(NewMessage {
                link: if needs_link { link } else { None },
                ..message
            }),
            next_due,
        }
    }

    /// Picks text, template or SMS fallback for a conversation step.
    fn conversation_message(
        &self,
        step: &Step,
        state: &ConversationState,
        fields: &Fields,
        now: Timestamp,
    ) -> Result<NewMessage, &'static str> {
        choose_message(
            step,
            fields,
            &state.contact,
            sms_address(state).as_deref(),
            state.window_closes_at(),
            now,
        )
    }

    fn zone_of(&self, state: &ConversationState) -> jiff::tz::TimeZone {
        state
            .timezone
            .as_deref()
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .or_else(|| {
                state
                    .phone
                    .as_ref()
                    .and_then(|phone| phone.time_zone())
                    .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            })
            .unwrap_or_else(|| self.settings.default_timezone.clone())
    }
}

/// Returns the SMS fallback's address: the phone number, or in a replay the contact's id.
fn sms_address(state: &ConversationState) -> Option<String> {
    match &state.phone {
        Some(phone) => Some(phone.as_str().to_string()),
        None if state.contact.starts_with("customer:") => Some(state.contact.clone()),
        None => None,
    }
}

/// The message a step sends to `to`: an SMS; or on WhatsApp the text while the window
/// (closing at `window_closes_at`, less the margin) is open, else the template, else the text
/// by SMS to `sms_to` when the step falls back to SMS. `Err` gives the reason to skip.
pub(super) fn choose_message(
    step: &Step,
    fields: &Fields,
    to: &str,
    sms_to: Option<&str>,
    window_closes_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<NewMessage, &'static str> {
    let base = NewMessage {
        step: step.index,
        channel: step.channel,
        to: to.to_string(),
        kind: MessageKind::Text,
        body: String::new(),
        template: None,
        encoding: None,
        segments: 1,
        link: None,
        window_closes_at: None,
        warning: None,
    };
    let as_sms = |base: NewMessage| -> Result<NewMessage, &'static str> {
        let text = step.text.as_ref().ok_or("missing_text")?;
        let sms = fit_sms(text, fields, step.max_segments).map_err(|_| "render_failed")?;
        Ok(NewMessage {
            channel: ChannelKind::Sms,
            to: sms_to.ok_or("no_phone")?.to_string(),
            body: sms.text,
            encoding: Some(sms.encoding),
            segments: sms.segments,
            warning: sms.over_limit.then_some("over_max_segments"),
            ..base
        })
    };
    if step.channel == ChannelKind::Sms {
        return as_sms(base);
    }
    let template = match &step.template {
        Some(template) => Some(render_template(template, fields)?),
        None => None,
    };
    let last_moment = window_closes_at.map(|closes| sub(closes, WINDOW_MARGIN));
    if let (Some(text), Some(last_moment)) = (&step.text, last_moment) {
        if now < last_moment {
            let body = whatsapp_text(&text.render(fields).map_err(|_| "render_failed")?);
            return Ok(NewMessage {
                body,
                template,
                window_closes_at: Some(last_moment),
                ..base
            });
        }
    }
    if let Some(template) = template {
        return Ok(NewMessage {
            kind: MessageKind::Template,
            body: describe_template(&template),
            template: Some(template),
            ..base
        });
    }
    if step.fallback == Some(ChannelKind::Sms) && step.text.is_some() {
        return as_sms(base);
    }
    Err("window_closed")
}

fn exit_all(runs: &[&RunFacts], reason: ExitReason) -> Vec<RunExit> {
    runs.iter()
        .map(|run| RunExit {
            run_id: run.id,
            reason,
        })
        .collect()
}

/// Renders every template parameter; a parameter that comes out blank fails the step,
/// because WhatsApp rejects empty parameters.
fn render_template(
    template: &crate::flow::WhatsappTemplate,
    fields: &Fields,
) -> Result<TemplateMessage, &'static str> {
    let render_all = |parts: &[crate::template::Template]| {
        parts
            .iter()
            .map(|part| {
                let text = part.render(fields).map_err(|_| "render_failed")?;
                let text = text.trim().to_string();
                if text.is_empty() {
                    Err("empty_template_parameter")
                } else {
                    Ok(text)
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(TemplateMessage {
        name: template.name.clone(),
        language: template.language.clone(),
        header: render_all(&template.header)?,
        body: render_all(&template.body)?,
        buttons: render_all(&template.buttons)?,
    })
}

/// Maximum length of a WhatsApp text body, in characters.
const MAX_WHATSAPP_TEXT: usize = 4096;

/// Cleans a rendered WhatsApp text: control characters other than line breaks are dropped,
/// and a text over WhatsApp's 4096-character limit is cut at a word boundary, ending
/// `...`, so that it goes out as one message rather than being rejected.
fn whatsapp_text(rendered: &str) -> String {
    let clean: String = rendered
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\r')
        .collect();
    if clean.chars().count() <= MAX_WHATSAPP_TEXT {
        return clean;
    }
    let head: String = clean.chars().take(MAX_WHATSAPP_TEXT - 3).collect();
    let cut = match head.rfind(char::is_whitespace) {
        Some(space) if space > head.len() / 2 => &head[..space],
        _ => head.as_str(),
    };
    format!("{}...", cut.trim_end())
}

/// Formats a template message as one readable line for listings.
fn describe_template(template: &TemplateMessage) -> String {
    format!("[template {}] {}", template.name, template.body.join(" | "))
}

/// Field values for a conversation.
pub fn fields_for_conversation(
    state: &ConversationState,
    fallbacks: &Fallbacks,
    settings: &Settings,
    link: Option<(&str, &str)>,
) -> Fields {
    let first_name = state
        .name
        .as_deref()
        .and_then(|name| name.split_whitespace().next())
        .map(capitalise);
    let name = first_name.clone().unwrap_or_else(|| fallbacks.name.clone());
    let product = state
        .product()
        .map(str::to_string)
        .unwrap_or_else(|| fallbacks.product_name.clone());
    let price = state
        .quote
        .as_ref()
        .map(|quote| {
            format_money(
                quote.amount,
                &quote.currency,
                settings.locale.as_deref(),
                settings.money_style,
            )
        })
        .unwrap_or_else(|| fallbacks.price.clone());
    let shop = present(settings.shop_name.as_deref())
        .map(str::to_string)
        .unwrap_or_else(|| fallbacks.shop.clone());
    let (link, link_token) = link
        .map(|(url, token)| (url.to_string(), token.to_string()))
        .unwrap_or_default();
    Fields {
        name: name.clone(),
        first_name: name,
        full_name: state.name.clone().unwrap_or_else(|| fallbacks.name.clone()),
        product_name: product.clone(),
        items: product,
        item_count: "1".into(),
        cart_total: price.clone(),
        price,
        link,
        link_token,
        shop: shop.clone(),
        store_name: shop,
    }
}
