//! Domain events: the normalised form of everything that comes in, whether through
//! `POST /v1/events`, a store webhook or a replay file.
//!
//! This module owns the JSON schema of `/v1/events` and its validation. Provider payloads are
//! mapped onto these types by their webhook parsers.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::money;
use crate::time::Timestamp;

/// Maximum number of events in one request.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// One incoming event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "checkout.updated")]
    CheckoutUpdated(CheckoutEvent),
    #[serde(rename = "order.created")]
    OrderCreated(OrderEvent),
    /// A customer wrote to the business.
    #[serde(rename = "message.inbound")]
    MessageInbound(ChatMessageEvent),
    /// The business wrote to a customer (through another inbox, or an agent here).
    #[serde(rename = "message.outbound")]
    MessageOutbound(ChatMessageEvent),
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::CheckoutUpdated(_) => "checkout.updated",
            Event::OrderCreated(_) => "order.created",
            Event::MessageInbound(_) => "message.inbound",
            Event::MessageOutbound(_) => "message.outbound",
        }
    }

    pub fn occurred_at(&self) -> Timestamp {
        match self {
            Event::CheckoutUpdated(checkout) => checkout.occurred_at,
            Event::OrderCreated(order) => order.occurred_at,
            Event::MessageInbound(message) | Event::MessageOutbound(message) => message.occurred_at,
        }
    }

    /// Returns the event's own id, as the source gave it.
    pub fn id(&self) -> String {
        match self {
            Event::CheckoutUpdated(checkout) => checkout.id.clone(),
            Event::OrderCreated(order) => order.id.clone(),
            Event::MessageInbound(message) | Event::MessageOutbound(message) => {
                message.id.clone().unwrap_or_default()
            }
        }
    }

    /// Builds the key by which a repeated delivery of the same event is recognised.
    pub fn natural_key(&self) -> String {
        match self {
            // Two different updates in the same millisecond are both kept; the same update
            // sent twice is recognised by its content.
            Event::CheckoutUpdated(checkout) => format!(
                "checkout.updated:{}:{}:{}",
                checkout.id,
                checkout.occurred_at.as_millisecond(),
                text_digest(&serde_json::to_string(checkout).unwrap_or_default())
            ),
            Event::OrderCreated(order) => format!("order.created:{}", order.id),
            Event::MessageInbound(message) | Event::MessageOutbound(message) => match &message.id {
                Some(id) => format!("message:{id}"),
                None => format!(
                    "{}:{}:{}:{}",
                    self.type_name(),
                    message
                        .contact
                        .phone
                        .as_deref()
                        .or(message.contact.customer_id.as_deref())
                        .unwrap_or_default(),
                    message.occurred_at.as_millisecond(),
                    text_digest(&message.text)
                ),
            },
        }
    }
}

/// Computes a short stable digest of a text, for natural keys.
fn text_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Author of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    Customer,
    /// A person at the business.
    Agent,
    /// nudge itself.
    Automation,
}

impl Author {
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Customer => "customer",
            Author::Agent => "agent",
            Author::Automation => "automation",
        }
    }
}

/// A chat message, in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessageEvent {
    /// The provider's message id (a WhatsApp wamid); repeats of it are applied once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_id"
    )]
    pub id: Option<String>,
    pub occurred_at: Timestamp,
    #[serde(default)]
    pub contact: ContactInput,
    #[serde(default = "whatsapp")]
    pub channel: crate::channel::ChannelKind,
    #[serde(default)]
    pub text: String,
    /// The message type when it is not plain text, such as `image` or `button`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Author of an outbound message, `agent` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// Product that an outbound message quotes, when the sender names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The price an outbound message quotes; marks the conversation as quoted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_decimal"
    )]
    pub price: Option<Decimal>,
    /// Currency of `price`; the workspace's default when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

fn whatsapp() -> crate::channel::ChannelKind {
    crate::channel::ChannelKind::Whatsapp
}

/// Contact of a checkout or order, as the source reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// As typed by the shopper; normalised to E.164 by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Whether the shopper agreed to marketing SMS, when the source reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_consent: Option<bool>,
    /// The store's own customer id. It links checkouts and orders only together with
    /// other evidence, never alone, because guests get an id only when they buy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_id"
    )]
    pub customer_id: Option<String>,
    /// IANA time zone, such as `Africa/Nairobi`, when the source reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_id"
    )]
    pub product_id: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default = "one")]
    pub quantity: u32,
    /// Unit price in the checkout's currency.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_decimal"
    )]
    pub price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

fn one() -> u32 {
    1
}

/// A checkout was created or changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutEvent {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    pub occurred_at: Timestamp,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_id"
    )]
    pub cart_token: Option<String>,
    #[serde(default)]
    pub contact: ContactInput,
    #[serde(default)]
    pub items: Vec<Item>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_decimal"
    )]
    pub total: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_url: Option<String>,
    /// Set when the source reports the checkout as completed (Shopify `completed_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// BCP 47 locale of the shopper or store, such as `en-KE`, used to format money.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// An order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderEvent {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    pub occurred_at: Timestamp,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_id"
    )]
    pub checkout_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_id"
    )]
    pub cart_token: Option<String>,
    #[serde(default)]
    pub contact: ContactInput,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_decimal"
    )]
    pub total: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discount_codes: Vec<String>,
}

/// A request body that cannot be accepted, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the field, such as `items[0].quantity`; empty when the body as a whole is bad.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses a `/v1/events` body: one event object or an array of them.
pub fn parse_events(body: &[u8]) -> Result<Vec<Event>, FieldError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| FieldError::new("", format!("body is not valid JSON: {error}")))?;
    match value {
        serde_json::Value::Array(values) => {
            if values.is_empty() {
                return Err(FieldError::new("", "the array contains no events"));
            }
            if values.len() > MAX_EVENTS_PER_REQUEST {
                return Err(FieldError::new(
                    "",
                    format!(
                        "{} events in one request; the limit is {MAX_EVENTS_PER_REQUEST}",
                        values.len()
                    ),
                ));
            }
            values
                .into_iter()
                .enumerate()
                .map(|(index, value)| {
                    parse_event(value).map_err(|error| FieldError {
                        field: join_path(&format!("[{index}]"), &error.field),
                        message: error.message,
                    })
                })
                .collect()
        }
        value @ serde_json::Value::Object(_) => Ok(vec![parse_event(value)?]),
        _ => Err(FieldError::new(
            "",
            "body must be an event object or an array of events",
        )),
    }
}

/// Parses and validates one event object.
pub fn parse_event(value: serde_json::Value) -> Result<Event, FieldError> {
    let kind = match value.get("type") {
        Some(serde_json::Value::String(kind)) => kind.clone(),
        Some(_) => return Err(FieldError::new("type", "must be a string")),
        None => return Err(FieldError::new("type", "missing field")),
    };
    let mut object = value;
    if let Some(map) = object.as_object_mut() {
        map.remove("type");
    }
    let event = match kind.as_str() {
        "checkout.updated" => Event::CheckoutUpdated(from_value(object)?),
        "order.created" => Event::OrderCreated(from_value(object)?),
        "message.inbound" => Event::MessageInbound(from_value(object)?),
        "message.outbound" => Event::MessageOutbound(from_value(object)?),
        other => {
            return Err(FieldError::new(
                "type",
                format!(
                    "unknown event type {other:?}; expected checkout.updated, order.created, \
                     message.inbound or message.outbound"
                ),
            ));
        }
    };
    validate(&event)?;
    Ok(event)
}

fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let field = if path == "." {
            missing_field_name(&inner)
        } else {
            path
        };
        FieldError::new(field, inner)
    })
}

/// serde reports a missing field at the parent's path; pull its name out of the message.
fn missing_field_name(message: &str) -> String {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_default()
        .to_string()
}

fn join_path(prefix: &str, field: &str) -> String {
    if field.is_empty() {
        prefix.to_string()
    } else if field.starts_with('[') {
        format!("{prefix}{field}")
    } else {
        format!("{prefix}.{field}")
    }
}

/// Checks the rules that serde cannot express.
pub fn validate(event: &Event) -> Result<(), FieldError> {
    match event {
        Event::CheckoutUpdated(checkout) => {
            require_id("id", &checkout.id)?;
            validate_time("occurred_at", checkout.occurred_at)?;
            validate_currency(checkout.currency.as_deref())?;
            validate_amount("total", checkout.total)?;
            validate_contact(&checkout.contact)?;
            validate_locale(checkout.locale.as_deref())?;
            if let Some(url) = &checkout.recovery_url {
                validate_url("recovery_url", url)?;
            }
            for (index, item) in checkout.items.iter().enumerate() {
                validate_length(
                    &format!("items[{index}].title"),
                    &item.title,
                    MAX_TEXT_FIELD,
                )?;
            }
            for (index, item) in checkout.items.iter().enumerate() {
                if let Some(price) = item.price {
                    if price.is_sign_negative() {
                        return Err(FieldError::new(
                            format!("items[{index}].price"),
                            "must not be negative",
                        ));
                    }
                }
            }
            Ok(())
        }
        Event::OrderCreated(order) => {
            require_id("id", &order.id)?;
            validate_time("occurred_at", order.occurred_at)?;
            validate_currency(order.currency.as_deref())?;
            validate_amount("total", order.total)?;
            validate_contact(&order.contact)
        }
        Event::MessageInbound(message) | Event::MessageOutbound(message) => {
            if let Some(id) = &message.id {
                require_id("id", id)?;
            }
            validate_contact(&message.contact)?;
            let has_phone = message
                .contact
                .phone
                .as_deref()
                .is_some_and(|phone| !phone.trim().is_empty());
            let has_customer = message.contact.customer_id.is_some();
            if !has_phone && !has_customer {
                return Err(FieldError::new(
                    "contact.phone",
                    "missing field; a chat message needs the contact's phone",
                ));
            }
            validate_time("occurred_at", message.occurred_at)?;
            validate_currency(message.currency.as_deref())?;
            validate_amount("price", message.price)?;
            validate_length("text", &message.text, 65_536)?;
            if let Some(product) = &message.product {
                validate_length("product", product, MAX_TEXT_FIELD)?;
            }
            Ok(())
        }
    }
}

/// Maximum length of a product title or name, in characters.
const MAX_TEXT_FIELD: usize = 1000;

fn validate_length(field: &str, text: &str, max: usize) -> Result<(), FieldError> {
    let length = text.chars().count();
    if length > max {
        return Err(FieldError::new(
            field,
            format!("{length} characters; the limit is {max}"),
        ));
    }
    Ok(())
}

fn validate_amount(field: &str, amount: Option<Decimal>) -> Result<(), FieldError> {
    match amount {
        Some(amount) if amount.is_sign_negative() && !amount.is_zero() => {
            Err(FieldError::new(field, "must not be negative"))
        }
        _ => Ok(()),
    }
}

/// Times before 2000 are a mistake (an unset date rendered as year 1), not history.
fn validate_time(field: &str, at: Timestamp) -> Result<(), FieldError> {
    if at.as_second() < 946_684_800 {
        return Err(FieldError::new(
            field,
            "earlier than 2000-01-01; send the time the event happened",
        ));
    }
    Ok(())
}

/// A BCP 47 language tag such as `en-KE`: a 2 or 3 letter language, then subtags.
fn validate_locale(locale: Option<&str>) -> Result<(), FieldError> {
    let Some(locale) = locale else {
        return Ok(());
    };
    let mut parts = locale.split('-');
    let language_ok = parts.next().is_some_and(|language| {
        (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_alphabetic())
    });
    let rest_ok = parts.all(|part| {
        (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if language_ok && rest_ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "locale",
            format!("{locale:?} is not a language tag such as en-KE"),
        ))
    }
}

fn require_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id.len() > 255 {
        return Err(FieldError::new(field, "longer than 255 characters"));
    }
    Ok(())
}

fn validate_currency(currency: Option<&str>) -> Result<(), FieldError> {
    match currency {
        Some(code) if !money::is_known_currency(code) => Err(FieldError::new(
            "currency",
            format!("{code:?} is not an upper-case ISO 4217 currency code such as KES"),
        )),
        _ => Ok(()),
    }
}

fn validate_contact(contact: &ContactInput) -> Result<(), FieldError> {
    if let Some(zone) = &contact.timezone {
        if jiff::tz::TimeZone::get(zone).is_err() {
            return Err(FieldError::new(
                "contact.timezone",
                format!("{zone:?} is not an IANA time zone such as Africa/Nairobi"),
            ));
        }
    }
    Ok(())
}

fn validate_url(field: &str, text: &str) -> Result<(), FieldError> {
    match url::Url::parse(text) {
        Ok(url) if !url.username().is_empty() || url.password().is_some() => Err(FieldError::new(
            field,
            "must not carry a user name or password, which can disguise the real host",
        )),
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(FieldError::new(
            field,
            "must be an absolute http or https URL",
        )),
    }
}

/// Accepts an id written as a JSON string or number.
fn de_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Ok(text),
        serde_json::Value::Number(number) => integer_id(&number),
        _ => Err(serde::de::Error::custom("must be a string or an integer")),
    }
}

/// An id written as a JSON number must be an integer that fits 64 bits; a fraction or a
/// larger number would lose digits and make two ids collide.
fn integer_id<E: serde::de::Error>(number: &serde_json::Number) -> Result<String, E> {
    if number.is_u64() || number.is_i64() {
        Ok(number.to_string())
    } else {
        Err(E::custom(
            "a numeric id must be an integer below 2^64; send larger ids as strings",
        ))
    }
}

fn de_opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(serde_json::Value::Number(number)) => integer_id(&number).map(Some),
        Some(_) => Err(serde::de::Error::custom("must be a string or an integer")),
    }
}

/// Accepts an amount as a decimal string (`"4850.00"`) or a JSON number.
fn de_opt_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => parse_decimal(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a decimal amount"))),
        // A JSON number's shortest text form is the decimal the sender wrote, so parsing
        // that text avoids binary floating-point rounding.
        Some(serde_json::Value::Number(number)) => parse_decimal(&number.to_string())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a decimal amount"))),
        Some(_) => Err(serde::de::Error::custom(
            "must be a decimal string or a number",
        )),
    }
}

/// Parses a plain or scientific decimal string.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(body: serde_json::Value) -> Event {
        parse_event(body).unwrap()
    }

    #[test]
    fn same_instant_updates_with_different_carts_keep_both() {
        let first = checkout(serde_json::json!({
            "type": "checkout.updated", "id": "c1", "occurred_at": "2026-01-15T07:00:00Z",
            "items": [{ "title": "Kettle", "quantity": 2 }]
        }));
        let second = checkout(serde_json::json!({
            "type": "checkout.updated", "id": "c1", "occurred_at": "2026-01-15T07:00:00Z",
            "items": [{ "title": "Kettle", "quantity": 1 }]
        }));
        assert_ne!(first.natural_key(), second.natural_key());
        assert_eq!(first.natural_key(), first.clone().natural_key());
    }

    #[test]
    fn missing_fields_are_named() {
        let error = parse_events(br#"{"type": "checkout.updated", "id": "c1"}"#).unwrap_err();
        assert_eq!(error.field, "occurred_at");
        let error =
            parse_events(br#"[{"type": "order.created", "occurred_at": "2026-01-15T07:00:00Z"}]"#)
                .unwrap_err();
        assert_eq!(error.field, "[0].id");
        let error = parse_events(
            br#"{"type": "message.inbound", "occurred_at": "2026-01-15T07:00:00Z", "text": "hi"}"#,
        )
        .unwrap_err();
        assert_eq!(error.field, "contact.phone");
    }

    #[test]
    fn amounts_keep_their_decimal_text() {
        let Event::CheckoutUpdated(event) = checkout(serde_json::json!({
            "type": "checkout.updated", "id": "c1", "occurred_at": "2026-01-15T07:00:00Z",
            "total": 0.1, "items": [{ "title": "Mug", "price": "1200.50" }]
        })) else {
            panic!("expected a checkout");
        };
        assert_eq!(event.total, Some(Decimal::new(1, 1)));
        assert_eq!(event.items[0].price, Some(Decimal::new(120050, 2)));
    }
}
