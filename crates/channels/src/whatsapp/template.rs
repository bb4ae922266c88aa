//! WhatsApp template messages: the merchant's local copy of an approved template, the checks
//! a filled-in template must pass before it is sent, and the `template` object of the request.

use std::collections::BTreeSet;
use std::ops::Range;

use nudge_core::channel::{SendError, TemplateMessage};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::outbound::invalid;

/// Maximum characters of a template body once its placeholders are filled in.
pub const MAX_TEMPLATE_BODY_CHARS: usize = 1024;

/// A template as Meta approved it, kept by the merchant so sends can be checked locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedTemplate {
    /// Template name as registered with Meta, such as `cart_reminder_v2`.
    pub name: String,
    /// Language code the template was approved in, such as `en` or `sw`.
    pub language: String,
    /// Body text with positional placeholders `{{1}}`, `{{2}}` and so on.
    pub body: String,
    /// Number of text parameters the header takes, 0 for no header or a fixed one.
    #[serde(default)]
    pub header_params: usize,
    /// Buttons in the order Meta lists them, which fixes each button's index.
    #[serde(default)]
    pub buttons: Vec<ButtonKind>,
}

/// A template button, as far as sending is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ButtonKind {
    /// A URL button. A dynamic one takes a suffix appended to the approved URL.
    Url {
        dynamic: bool,
    },
    QuickReply,
}

impl ApprovedTemplate {
    /// Returns the number of body parameters: the distinct `{{n}}` placeholders.
    pub fn body_params(&self) -> usize {
        distinct_numbers(&self.body).len()
    }

    /// Returns the indexes of the dynamic URL buttons, which take one suffix each.
    pub fn dynamic_button_indexes(&self) -> Vec<usize> {
        let dynamic = |(index, button): (usize, &ButtonKind)| {
            matches!(button, ButtonKind::Url { dynamic: true }).then_some(index)
        };
        self.buttons
            .iter()
            .enumerate()
            .filter_map(dynamic)
            .collect()
    }

    /// Checks that the template can be used to check sends.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let reject = |reason: &str| ConfigError::InvalidTemplate {
            name: self.name.clone(),
            language: self.language.clone(),
            reason: reason.to_owned(),
        };
        if self.name.trim().is_empty() {
            return Err(reject("the name is empty"));
        }
        if self.language.trim().is_empty() {
            return Err(reject("the language is empty"));
        }
        if self.body.matches("{{").count() != placeholders(&self.body).len() {
            return Err(reject(
                "the body has a placeholder that is not {{n}}, and named parameters are not supported",
            ));
        }
        let numbers = distinct_numbers(&self.body);
        if !numbers.iter().copied().eq(1..=numbers.len()) {
            return Err(reject(
                "body placeholders must be numbered {{1}}, {{2}} and so on without gaps",
            ));
        }
        Ok(())
    }
}

/// One `{{n}}` in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder {
    /// Byte range of the whole `{{n}}`.
    range: Range<usize>,
    number: usize,
}

/// Finds every `{{n}}` placeholder, where `n` is one or more ASCII digits.
fn placeholders(body: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    let mut offset = 0;
    while let Some(position) = body[offset..].find("{{") {
        let open = offset + position;
        let inner_start = open + 2;
        let Some(inner_len) = body[inner_start..].find("}}") else {
            break;
        };
        let inner = &body[inner_start..inner_start + inner_len];
        let number = inner
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| inner.parse::<usize>().ok())
            .flatten();
        match number {
            Some(number) => {
                let end = inner_start + inner_len + 2;
                found.push(Placeholder {
                    range: open..end,
                    number,
                });
                offset = end;
            }
            // Not a placeholder: look again from the next character, so `{{{1}}` still finds
            // its `{{1}}`.
            None => offset = open + 1,
        }
    }
    found
}

fn distinct_numbers(body: &str) -> BTreeSet<usize> {
    placeholders(body).into_iter().map(|p| p.number).collect()
}

/// Fills each `{{n}}` with the n-th parameter, leaving placeholders without one as written.
fn render(body: &str, parameters: &[String]) -> String {
    let mut rendered = String::with_capacity(body.len());
    let mut copied_to = 0;
    for placeholder in placeholders(body) {
        let Some(value) = placeholder
            .number
            .checked_sub(1)
            .and_then(|i| parameters.get(i))
        else {
            continue;
        };
        rendered.push_str(&body[copied_to..placeholder.range.start]);
        rendered.push_str(value);
        copied_to = placeholder.range.end;
    }
    rendered.push_str(&body[copied_to..]);
    rendered
}

/// Rejects a template with a missing name or language, or any blank parameter, which Meta
/// rejects with HTTP 400.
pub(crate) fn check_parameters(template: &TemplateMessage) -> Result<(), SendError> {
    let label = format!("template {} ({})", template.name, template.language);
    if template.name.trim().is_empty() || template.language.trim().is_empty() {
        let message = format!("{label} needs both a name and a language");
        return Err(invalid("template_incomplete", message));
    }
    let groups = [
        ("header", &template.header),
        ("body", &template.body),
        ("button", &template.buttons),
    ];
    for (component, parameters) in groups {
        if let Some(position) = parameters.iter().position(|text| text.trim().is_empty()) {
            let message = format!(
                "{component} parameter {} of {label} is empty, so use a fallback value or skip the message",
                position + 1
            );
            return Err(invalid("empty_parameter", message));
        }
    }
    Ok(())
}

/// Finds the approved copy of `template`. With no approved templates configured there is
/// nothing to check against and the result is `None`.
pub(crate) fn find_approved<'a>(
    approved: &'a [ApprovedTemplate],
    template: &TemplateMessage,
) -> Result<Option<&'a ApprovedTemplate>, SendError> {
    if approved.is_empty() {
        return Ok(None);
    }
    let found = approved
        .iter()
        .find(|known| known.name == template.name && known.language == template.language);
    match found {
        Some(known) => Ok(Some(known)),
        None => Err(invalid(
            "template_not_approved",
            format!(
                "template {} ({}) is not in the approved template list",
                template.name, template.language
            ),
        )),
    }
}

/// Checks parameter counts and the rendered body length against the approved template.
pub(crate) fn check_against(
    approved: &ApprovedTemplate,
    template: &TemplateMessage,
) -> Result<(), SendError> {
    let label = format!("template {} ({})", template.name, template.language);
    let counts = [
        ("header", approved.header_params, template.header.len(), ""),
        (
            "body",
            approved.body_params(),
            template.body.len(),
            " (a URL button's suffix belongs in the button parameters, not the body)",
        ),
        (
            "button",
            approved.dynamic_button_indexes().len(),
            template.buttons.len(),
            "",
        ),
    ];
    for (component, expected, actual, hint) in counts {
        if expected != actual {
            let message = format!(
                "{label} takes {expected} {component} parameters but the message has {actual}{hint}"
            );
            return Err(invalid(&format!("{component}_parameter_count"), message));
        }
    }

    let length = render(&approved.body, &template.body).chars().count();
    if length > MAX_TEMPLATE_BODY_CHARS {
        let message = format!(
            "{label} body has {length} characters once filled in, but WhatsApp allows {MAX_TEMPLATE_BODY_CHARS}"
        );
        return Err(invalid("template_body_too_long", message));
    }
    Ok(())
}

/// The `template` object of a send request.
#[derive(Debug, Serialize)]
pub(crate) struct TemplateObject<'a> {
    name: &'a str,
    language: Language<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

#[derive(Debug, Serialize)]
struct Language<'a> {
    code: &'a str,
    /// The only policy Meta documents: use exactly this language, never a fallback.
    policy: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Component<'a> {
    Header {
        parameters: Vec<Parameter<'a>>,
    },
    Body {
        parameters: Vec<Parameter<'a>>,
    },
    Button {
        sub_type: &'static str,
        /// The button's position among all buttons, as a string.
        index: String,
        parameters: Vec<Parameter<'a>>,
    },
}

#[derive(Debug, Serialize)]
struct Parameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

fn text_parameters(values: &[String]) -> Vec<Parameter<'_>> {
    values
        .iter()
        .map(|text| Parameter { kind: "text", text })
        .collect()
}

/// Builds the `template` object. Header and body components appear only when they have
/// parameters. Each button suffix becomes its own `url` button component, indexed by the
/// approved template's dynamic URL buttons, or by its position when no approved copy is known.
pub(crate) fn template_object<'a>(
    template: &'a TemplateMessage,
    approved: Option<&ApprovedTemplate>,
) -> TemplateObject<'a> {
    let mut components = Vec::new();
    if !template.header.is_empty() {
        let parameters = text_parameters(&template.header);
        components.push(Component::Header { parameters });
    }
    if !template.body.is_empty() {
        let parameters = text_parameters(&template.body);
        components.push(Component::Body { parameters });
    }
    let indexes = approved.map(ApprovedTemplate::dynamic_button_indexes);
    for (position, suffix) in template.buttons.iter().enumerate() {
        let index = indexes
            .as_ref()
            .and_then(|indexes| indexes.get(position).copied())
            .unwrap_or(position);
        components.push(Component::Button {
            sub_type: "url",
            index: index.to_string(),
            parameters: text_parameters(std::slice::from_ref(suffix)),
        });
    }
    TemplateObject {
        name: &template.name,
        language: Language {
            code: &template.language,
            policy: "deterministic",
        },
        components,
    }
}

#[cfg(test)]
mod tests;
