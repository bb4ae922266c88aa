//! Flow definitions: the TOML files that say when a shopper enters a recovery flow and which
//! messages follow, and their checks at load time.
//!
//! A flow is read once, checked completely (unknown keys, durations, bracket fields, channel
//! rules) and kept as a `Flow` whose templates are ready to render.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::channel::ChannelKind;
use crate::quiet::QuietHours;
use crate::template::{Template, TemplateError};
use crate::time::parse_duration;

/// The largest control group a flow may keep, in percent of entries.
pub const MAX_HOLDOUT_PERCENT: u8 = 50;
/// Maximum number of steps in a flow.
pub const MAX_STEPS: usize = 10;

/// Event that starts a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A checkout with a reachable contact saw no update for `idle` and no order.
    CartAbandoned,
    /// The business spoke last in a chat and the customer stayed silent for `idle`.
    ConversationIdle,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::CartAbandoned => "cart_abandoned",
            Trigger::ConversationIdle => "conversation_idle",
        }
    }

    fn default_idle(self) -> Duration {
        match self {
            Trigger::CartAbandoned => Duration::from_secs(3600),
            Trigger::ConversationIdle => Duration::from_secs(24 * 3600),
        }
    }
}

/// At most `max` messages to one recipient within `per`, across all flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    pub per: Duration,
}

/// Text used where a field has no value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fallbacks {
    pub name: String,
    pub product_name: String,
    pub items: String,
    pub cart_total: String,
    pub price: String,
    pub shop: String,
}

impl Fallbacks {
    fn for_trigger(trigger: Trigger) -> Fallbacks {
        let product_name = match trigger {
            Trigger::CartAbandoned => "cart",
            Trigger::ConversationIdle => "item",
        };
        Fallbacks {
            product_name: product_name.into(),
            ..Fallbacks::default()
        }
    }
}

impl Default for Fallbacks {
    fn default() -> Self {
        Fallbacks {
            name: "there".into(),
            product_name: "cart".into(),
            items: "your items".into(),
            cart_total: "your total".into(),
            price: "the price we quoted".into(),
            shop: "our shop".into(),
        }
    }
}

/// An approved WhatsApp template and the fields that fill its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatsappTemplate {
    pub name: String,
    pub language: String,
    pub header: Vec<Template>,
    pub body: Vec<Template>,
    /// Suffixes of dynamic URL buttons, by button index.
    pub buttons: Vec<Template>,
}

/// One message of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub index: usize,
    /// Time after entry for the first step, after the previous step otherwise.
    pub wait: Duration,
    pub channel: ChannelKind,
    pub text: Option<Template>,
    pub template: Option<WhatsappTemplate>,
    /// The channel to use when a WhatsApp step cannot be sent on WhatsApp.
    pub fallback: Option<ChannelKind>,
    /// Most SMS segments; longer text shortens the product name first.
    pub max_segments: Option<usize>,
    /// The step asks a yes/no question ("Reply YES and we'll hold a pair for you"); a yes
    /// creates a hold request for an agent.
    pub hold_on_yes: bool,
}

/// A checked flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub name: String,
    pub trigger: Trigger,
    pub enabled: bool,
    pub idle: Duration,
    pub quiet_hours: Option<QuietHours>,
    /// Percent of entries kept as a control group that gets no message.
    pub holdout: u8,
    pub attribution_window: Duration,
    pub frequency_cap: Option<FrequencyCap>,
    pub require_quote: bool,
    pub send_within_window: bool,
    pub fallbacks: Fallbacks,
    pub steps: Vec<Step>,
    /// File (or built-in name) the flow was read from.
    pub source: String,
}

/// A flow that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct FlowError {
    /// The file (or built-in flow) at fault.
    pub origin: String,
    pub message: String,
}

/// Returns the quiet hours of a flow that sets none: no marketing message between 20:00 and
/// 08:00 in the recipient's time zone.
pub fn default_quiet_hours() -> QuietHours {
    QuietHours {
        start: jiff::civil::time(20, 0, 0, 0),
        end: jiff::civil::time(8, 0, 0, 0),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    name: String,
    trigger: Trigger,
    #[serde(default = "yes")]
    enabled: bool,
    idle: Option<String>,
    quiet_hours: Option<toml::Value>,
    #[serde(default)]
    holdout: u8,
    attribution_window: Option<String>,
    frequency_cap: Option<toml::Value>,
    #[serde(default)]
    require_quote: bool,
    #[serde(default)]
    send_within_window: bool,
    fallbacks: Option<BTreeMap<String, String>>,
    #[serde(default)]
    steps: Vec<StepFile>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrequencyCapFile {
    max: u32,
    per: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    #[serde(default)]
    wait: Option<String>,
    channel: String,
    text: Option<String>,
    template: Option<TemplateFile>,
    fallback: Option<String>,
    max_segments: Option<usize>,
    #[serde(default)]
    hold_on_yes: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    name: String,
    language: String,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    header: Vec<String>,
    #[serde(default)]
    buttons: Vec<String>,
}

impl Flow {
    /// Parses and checks one flow file's text.
    pub fn parse(text: &str, source: &str) -> Result<Flow, FlowError> {
        let fail = |message: String| FlowError {
            origin: source.to_string(),
            message,
        };
        let file: FlowFile = toml::from_str(text).map_err(|error| fail(error.to_string()))?;
        build(file, source).map_err(fail)
    }

    pub fn step(&self, index: usize) -> Option<&Step> {
        self.steps.get(index)
    }

    /// Time from entry to the step, adding the waits of every step up to it.
    pub fn offset_of(&self, index: usize) -> Duration {
        self.steps
            .iter()
            .take(index + 1)
            .map(|step| step.wait)
            .sum()
    }
}

fn build(file: FlowFile, source: &str) -> Result<Flow, String> {
    let name = file.name.trim().to_string();
    if name.is_empty() || name.len() > 64 {
        return Err("name: must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "name: {name:?} may hold only lower-case letters, digits, '-' and '_', because it \
             appears in links as utm_campaign"
        ));
    }
    let idle = match &file.idle {
        Some(text) => parse_duration(text).map_err(|error| format!("idle: {error}"))?,
        None => file.trigger.default_idle(),
    };
    if idle.is_zero() {
        return Err("idle: must be longer than 0s".into());
    }
    let quiet_hours = match file.quiet_hours {
        None => Some(default_quiet_hours()),
        Some(toml::Value::String(word)) if word == "off" => None,
        Some(toml::Value::Table(table)) => Some(
            QuietHours::deserialize(toml::Value::Table(table))
                .map_err(|error| format!("quiet_hours: {}", error.message()))?,
        ),
        Some(other) => {
            return Err(format!(
                "quiet_hours: {other} is not valid; write \"off\" or {{ start = \"20:00\", end = \"08:00\" }}"
            ));
        }
    };
    if file.holdout > MAX_HOLDOUT_PERCENT {
        return Err(format!(
            "holdout: {} percent is above the limit of {MAX_HOLDOUT_PERCENT}",
            file.holdout
        ));
    }
    let attribution_window = match &file.attribution_window {
        Some(text) => {
            parse_duration(text).map_err(|error| format!("attribution_window: {error}"))?
        }
        None => Duration::from_secs(5 * 86_400),
    };
    let frequency_cap = match file.frequency_cap {
        None => None,
        Some(toml::Value::String(word)) if word == "off" => None,
        Some(toml::Value::Table(table)) => {
            let cap = FrequencyCapFile::deserialize(toml::Value::Table(table))
                .map_err(|error| format!("frequency_cap: {}", error.message()))?;
            let per =
                parse_duration(&cap.per).map_err(|error| format!("frequency_cap.per: {error}"))?;
            if cap.max == 0 || per.is_zero() {
                return Err("frequency_cap: max and per must be above zero".into());
            }
            Some(FrequencyCap { max: cap.max, per })
        }
        Some(other) => {
            return Err(format!(
                "frequency_cap: {other} is not valid; write \"off\" or {{ max = 2, per = \"24h\" }}"
            ));
        }
    };
    if file.require_quote && file.trigger != Trigger::ConversationIdle {
        return Err("require_quote: applies only to trigger = \"conversation_idle\"".into());
    }
    let mut fallbacks = Fallbacks::for_trigger(file.trigger);
    for (key, value) in file.fallbacks.unwrap_or_default() {
        let slot = match key.as_str() {
            "name" | "first_name" => &mut fallbacks.name,
            "product_name" => &mut fallbacks.product_name,
            "items" => &mut fallbacks.items,
            "cart_total" => &mut fallbacks.cart_total,
            "price" => &mut fallbacks.price,
            "shop" => &mut fallbacks.shop,
            other => {
                return Err(format!(
                    "fallbacks.{other}: unknown field; known: name, product_name, items, cart_total, price, shop"
                ));
            }
        };
        if value.trim().is_empty() {
            return Err(format!("fallbacks.{key}: must not be blank"));
        }
        *slot = value;
    }
    if file.steps.is_empty() {
        return Err("steps: a flow needs at least one [[steps]] entry".into());
    }
    if file.steps.len() > MAX_STEPS {
        return Err(format!(
            "steps: {} steps; the limit is {MAX_STEPS}",
            file.steps.len()
        ));
    }
    let steps = file
        .steps
        .into_iter()
        .enumerate()
        .map(|(index, step)| build_step(index, step))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Flow {
        name,
        trigger: file.trigger,
        enabled: file.enabled,
        idle,
        quiet_hours,
        holdout: file.holdout,
        attribution_window,
        frequency_cap,
        require_quote: file.require_quote,
        send_within_window: file.send_within_window,
        fallbacks,
        steps,
        source: source.to_string(),
    })
}

fn build_step(index: usize, step: StepFile) -> Result<Step, String> {
    let at = |key: &str| format!("steps[{index}].{key}");
    let wait = match &step.wait {
        Some(text) => parse_duration(text).map_err(|error| format!("{}: {error}", at("wait")))?,
        None => Duration::ZERO,
    };
    let channel = ChannelKind::parse(&step.channel).ok_or_else(|| {
        format!(
            "{}: {:?} is not a channel; expected \"sms\" or \"whatsapp\"",
            at("channel"),
            step.channel
        )
    })?;
    let template_error = |key: String, error: TemplateError| format!("{key}: {error}");
    let text = step
        .text
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|error| template_error(at("text"), error))?;
    let template = match step.template {
        None => None,
        Some(file) => {
            let parse_all = |key: &str, sources: &[String]| {
                sources
                    .iter()
                    .enumerate()
                    .map(|(position, source)| {
                        Template::parse(source).map_err(|error| {
                            template_error(
                                format!("{}[{position}]", at(&format!("template.{key}"))),
                                error,
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            if file.name.trim().is_empty() || file.language.trim().is_empty() {
                return Err(format!(
                    "{}: name and language must not be blank",
                    at("template")
                ));
            }
            Some(WhatsappTemplate {
                name: file.name,
                language: file.language,
                header: parse_all("header", &file.header)?,
                body: parse_all("params", &file.params)?,
                buttons: parse_all("buttons", &file.buttons)?,
            })
        }
    };
    let fallback = match step.fallback.as_deref() {
        None => None,
        Some("sms") => Some(ChannelKind::Sms),
        Some(other) => {
            return Err(format!(
                "{}: {other:?} is not valid; the only fallback is \"sms\"",
                at("fallback")
            ));
        }
    };
    match channel {
        ChannelKind::Sms => {
            if text.is_none() {
                return Err(format!("{}: an SMS step needs text", at("text")));
            }
            if template.is_some() || fallback.is_some() {
                return Err(format!(
                    "steps[{index}]: template and fallback apply only to WhatsApp steps"
                ));
            }
        }
        ChannelKind::Whatsapp => {
            if text.is_none() && template.is_none() {
                return Err(format!(
                    "steps[{index}]: a WhatsApp step needs text, a template or both"
                ));
            }
            if fallback.is_some() && text.is_none() {
                return Err(format!(
                    "{}: an SMS fallback needs the step's text",
                    at("fallback")
                ));
            }
        }
    }
    if step.max_segments == Some(0) {
        return Err(format!("{}: must be at least 1", at("max_segments")));
    }
    Ok(Step {
        index,
        wait,
        channel,
        text,
        template,
        fallback,
        max_segments: step.max_segments,
        hold_on_yes: step.hold_on_yes,
    })
}

/// The flows in force.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: Vec<Arc<Flow>>,
}

/// Flows used when no folder is given.
const BUILT_IN: &[(&str, &str)] = &[(
    "cart-recovery.toml",
    include_str!("../flows/cart-recovery.toml"),
)];

impl FlowSet {
    pub fn new(flows: Vec<Flow>) -> Result<FlowSet, FlowError> {
        let mut seen = BTreeMap::new();
        for flow in &flows {
            if let Some(first) = seen.insert(flow.name.clone(), flow.source.clone()) {
                return Err(FlowError {
                    origin: flow.source.clone(),
                    message: format!("name: {:?} is already used by {first}", flow.name),
                });
            }
        }
        Ok(FlowSet {
            flows: flows.into_iter().map(Arc::new).collect(),
        })
    }

    /// Loads the flows that ship with nudge.
    pub fn built_in() -> Result<FlowSet, FlowError> {
        let flows = BUILT_IN
            .iter()
            .map(|(file, text)| Flow::parse(text, &format!("built-in {file}")))
            .collect::<Result<Vec<_>, _>>()?;
        FlowSet::new(flows)
    }

    /// Loads every `*.toml` file of a folder, in file-name order.
    pub fn load_dir(dir: &Path) -> Result<FlowSet, FlowError> {
        let read_error = |message: String| FlowError {
            origin: dir.display().to_string(),
            message,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|error| read_error(format!("cannot read folder: {error}")))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(read_error("holds no *.toml flow files".into()));
        }
        let flows = paths
            .iter()
            .map(|path| {
                let source = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|error| FlowError {
                    origin: source.clone(),
                    message: format!("cannot read file: {error}"),
                })?;
                Flow::parse(&text, &source)
            })
            .collect::<Result<Vec<_>, _>>()?;
        FlowSet::new(flows)
    }

    pub fn all(&self) -> &[Arc<Flow>] {
        &self.flows
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.iter().find(|flow| flow.name == name)
    }

    /// Returns the enabled flows that a trigger starts.
    pub fn for_trigger(&self, trigger: Trigger) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows
            .iter()
            .filter(move |flow| flow.enabled && flow.trigger == trigger)
    }
}

#[cfg(test)]
mod tests;
