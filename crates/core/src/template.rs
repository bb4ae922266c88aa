//! Message templates: the bracket fields merchants know from SMS tools (`[Name]`,
//! `[Product Name]`, `[Link]`), backed by minijinja so that conditions also work.
//!
//! A template is checked when a flow is loaded: an unknown field is an error that names it.
//! Rendering never HTML-escapes and never leaves a field empty, because every field value is
//! filled with a fallback before it reaches the template.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// A field that templates may use: its bracket spelling, its variable name and what it holds.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub bracket: &'static str,
    pub variable: &'static str,
    pub meaning: &'static str,
}

/// Every field, in the order `nudge flows check` lists them.
pub const FIELDS: &[FieldSpec] = &[
    FieldSpec {
        bracket: "Name",
        variable: "name",
        meaning: "first name, or the fallback (\"there\")",
    },
    FieldSpec {
        bracket: "First Name",
        variable: "first_name",
        meaning: "first name, or the fallback",
    },
    FieldSpec {
        bracket: "Full Name",
        variable: "full_name",
        meaning: "first and last name, or the fallback",
    },
    FieldSpec {
        bracket: "Product Name",
        variable: "product_name",
        meaning: "first item, \"and N more\" for several",
    },
    FieldSpec {
        bracket: "Items",
        variable: "items",
        meaning: "every item with its quantity",
    },
    FieldSpec {
        bracket: "Item Count",
        variable: "item_count",
        meaning: "number of units in the cart",
    },
    FieldSpec {
        bracket: "Cart Total",
        variable: "cart_total",
        meaning: "total in the cart's currency, e.g. KES 4,850",
    },
    FieldSpec {
        bracket: "Price",
        variable: "price",
        meaning: "the price quoted in chat",
    },
    FieldSpec {
        bracket: "Link",
        variable: "link",
        meaning: "short tracked link back to the cart",
    },
    FieldSpec {
        bracket: "Link Token",
        variable: "link_token",
        meaning: "the token of the short link alone",
    },
    FieldSpec {
        bracket: "Shop",
        variable: "shop",
        meaning: "the shop's name",
    },
];

/// Bracket spellings accepted beside the canonical ones in `FIELDS`.
const ALIASES: &[(&str, &str)] = &[
    ("product", "product_name"),
    ("total", "cart_total"),
    ("cart link", "link"),
    ("store", "shop"),
    ("shop name", "shop"),
    ("store name", "shop"),
];

/// Variable names accepted beside the canonical ones, for templates written in
/// minijinja syntax.
const VARIABLE_ALIASES: &[&str] = &["store_name"];

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown field [{0}]; known fields are {known}", known = known_brackets())]
    UnknownField(String),
    #[error("unknown variable '{0}'; known variables are {known}", known = known_variables())]
    UnknownVariable(String),
    #[error("template syntax error: {0}")]
    Syntax(String),
    #[error("template is empty")]
    Empty,
    #[error("rendering failed: {0}")]
    Render(String),
}

fn known_brackets() -> String {
    FIELDS
        .iter()
        .map(|field| format!("[{}]", field.bracket))
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_variables() -> String {
    FIELDS
        .iter()
        .map(|field| field.variable)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values a template is rendered with. Every value is already filled with its fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fields {
    pub name: String,
    pub first_name: String,
    pub full_name: String,
    pub product_name: String,
    pub items: String,
    pub item_count: String,
    pub cart_total: String,
    pub price: String,
    pub link: String,
    pub link_token: String,
    pub shop: String,
    /// Copy of `shop` under the name some merchants write.
    pub store_name: String,
}

/// A checked template.
#[derive(Clone)]
pub struct Template {
    source: String,
    variables: BTreeSet<String>,
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_tuple("Template")
            .field(&self.source)
            .finish()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

const NAME: &str = "message";

impl Template {
    /// Checks a template written with bracket fields, minijinja syntax or both.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let jinja = brackets_to_jinja(text)?;
        let mut env = Environment::new();
        // Messages are plain text, so nothing may be HTML-escaped.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_template_owned(NAME, jinja)
            .map_err(|error| TemplateError::Syntax(error.to_string()))?;
        let compiled = env
            .get_template(NAME)
            .map_err(|error| TemplateError::Syntax(error.to_string()))?;
        let variables: BTreeSet<String> =
            compiled.undeclared_variables(false).into_iter().collect();
        for variable in &variables {
            let known = FIELDS.iter().any(|field| field.variable == variable)
                || VARIABLE_ALIASES.contains(&variable.as_str());
            if !known {
                return Err(TemplateError::UnknownVariable(variable.clone()));
            }
        }
        Ok(Template {
            source: text.to_string(),
            variables,
            env: Arc::new(env),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template uses a variable, such as `link`.
    pub fn uses(&self, variable: &str) -> bool {
        self.variables.contains(variable)
    }

    pub fn render(&self, fields: &Fields) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|error| TemplateError::Render(error.to_string()))?;
        template
            .render(fields)
            .map_err(|error| TemplateError::Render(error.to_string()))
    }
}

/// Rewrites `[Product Name]` as `{{ product_name }}`, leaving everything else as written.
fn brackets_to_jinja(text: &str) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if looks_like_field(&after[..close]) => {
                let inner = &after[..close];
                let variable = variable_for(inner)
                    .ok_or_else(|| TemplateError::UnknownField(inner.trim().to_string()))?;
                out.push_str("{{ ");
                out.push_str(variable);
                out.push_str(" }}");
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A bracket pair is a field when it holds a short run of words starting with a letter;
/// anything else, such as `[1]` or `[[`, stays literal text.
fn looks_like_field(inner: &str) -> bool {
    let trimmed = inner.trim();
    trimmed.len() <= 40
        && trimmed.chars().next().is_some_and(char::is_alphabetic)
        && trimmed
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '-')
}

fn variable_for(inner: &str) -> Option<&'static str> {
    let wanted = normalise_field_name(inner);
    FIELDS
        .iter()
        .find(|field| normalise_field_name(field.bracket) == wanted || field.variable == wanted)
        .map(|field| field.variable)
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(alias, _)| *alias == wanted)
                .map(|(_, variable)| *variable)
        })
}

fn normalise_field_name(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Upper-cases the first letter of a name, so `wanjiru` greets as `Wanjiru`.
pub fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Trims a value and treats blank text as missing.
pub fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            name: "Amina".into(),
            first_name: "Amina".into(),
            full_name: "Amina Test".into(),
            product_name: "Test Kettle 1.7L".into(),
            items: "Test Kettle 1.7L".into(),
            item_count: "1".into(),
            cart_total: "KES 4,850".into(),
            price: "KES 2,500".into(),
            link: "https://shop.example/r/Ab3xQ9".into(),
            link_token: "Ab3xQ9".into(),
            shop: "Duka Bora".into(),
            store_name: "Duka Bora".into(),
        }
    }

    #[test]
    fn bracket_fields_render() {
        let template =
            Template::parse("Hi [Name], your [Product Name] is still waiting! [Link]").unwrap();
        assert_eq!(
            template.render(&fields()).unwrap(),
            "Hi Amina, your Test Kettle 1.7L is still waiting! https://shop.example/r/Ab3xQ9"
        );
    }

    #[test]
    fn bracket_fields_ignore_case_and_spacing() {
        let template = Template::parse("[first name] [CART TOTAL] [product_name]").unwrap();
        assert_eq!(
            template.render(&fields()).unwrap(),
            "Amina KES 4,850 Test Kettle 1.7L"
        );
    }

    #[test]
    fn unknown_bracket_field_is_named() {
        let error = Template::parse("Hi [Nmae]").unwrap_err();
        assert_eq!(error, TemplateError::UnknownField("Nmae".into()));
        assert!(error.to_string().contains("[Nmae]"));
    }

    #[test]
    fn unknown_variable_is_named() {
        let error = Template::parse("Hi {{firstname}}, your {{product_name}} is waiting: {{link}}")
            .unwrap_err();
        assert_eq!(error, TemplateError::UnknownVariable("firstname".into()));
        assert!(error.to_string().contains("'firstname'"));
    }

    #[test]
    fn literal_brackets_stay() {
        let template = Template::parse("Sizes [1] to [3], [=] [Shop]").unwrap();
        assert_eq!(
            template.render(&fields()).unwrap(),
            "Sizes [1] to [3], [=] Duka Bora"
        );
    }

    #[test]
    fn conditions_work() {
        let template = Template::parse(
            "{% if item_count != \"1\" %}Your items{% else %}Your [Product Name]{% endif %}",
        )
        .unwrap();
        assert_eq!(template.render(&fields()).unwrap(), "Your Test Kettle 1.7L");
    }

    #[test]
    fn text_is_never_html_escaped() {
        let template = Template::parse("{{store_name}}: your {{product_name}} is waiting").unwrap();
        let mut values = fields();
        values.store_name = "Tom & Jerry's Duka".into();
        values.product_name = "Mug \"Classic\" <XL>".into();
        let text = template.render(&values).unwrap();
        assert_eq!(
            text,
            "Tom & Jerry's Duka: your Mug \"Classic\" <XL> is waiting"
        );
        for escaped in ["&amp;", "&#39;", "&#x27;", "&quot;", "&lt;", "&gt;"] {
            assert!(!text.contains(escaped), "{escaped} in {text}");
        }
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(
            Template::parse("Hi {{ name"),
            Err(TemplateError::Syntax(_))
        ));
        assert_eq!(Template::parse("  "), Err(TemplateError::Empty));
    }

    #[test]
    fn names_are_capitalised() {
        assert_eq!(capitalise("wanjiru"), "Wanjiru");
        assert_eq!(capitalise("émile"), "Émile");
        assert_eq!(capitalise(""), "");
    }
}
