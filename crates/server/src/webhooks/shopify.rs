//! `POST /webhooks/shopify`: checkout and order webhooks, verified with
//! `X-Shopify-Hmac-Sha256` over the raw body and de-duplicated on `X-Shopify-Webhook-Id`.
//!
//! Shopify has no "abandoned" event: `checkouts/create` and `checkouts/update` feed the idle
//! timers, and `orders/create` (or `orders/paid`) completes the checkout.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use nudge_core::event::{
    CheckoutEvent, ContactInput, Event, FieldError, Item, OrderEvent, validate,
};
use nudge_core::store::{Incoming, Ingested};
use nudge_core::time::Timestamp;
use serde_json::{Value, json};

use super::value::{array, boolean, customer_id, decimal, text};
use super::verify_base64_hmac;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::App;

pub async fn receive(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let webhook_id = header(&headers, "x-shopify-webhook-id");
    let bytes = read_limited(
        body,
        &headers,
        app.config().body_limit,
        webhook_id.unwrap_or("-"),
    )
    .await?;
    let secrets = &app.config().shopify_secrets;
    if secrets.is_empty() {
        return Err(ApiError::Unauthorized(
            "Shopify webhooks are not configured; set shopify.webhook_secret (NUDGE_SHOPIFY_WEBHOOK_SECRET)".into(),
        ));
    }
    let signature = header(&headers, "x-shopify-hmac-sha256")
        .ok_or_else(|| ApiError::Unauthorized("missing X-Shopify-Hmac-Sha256".into()))?;
    if !verify_base64_hmac(secrets, &bytes, signature) {
        metrics::counter!("nudge_webhooks_rejected_total", "provider" => "shopify").increment(1);
        tracing::warn!(
            webhook_id,
            "Shopify webhook with a signature that does not match its body"
        );
        return Err(ApiError::Unauthorized(
            "X-Shopify-Hmac-Sha256 does not match the body".into(),
        ));
    }
    let topic = header(&headers, "x-shopify-topic")
        .ok_or_else(|| ApiError::bad_request("X-Shopify-Topic", "missing header"))?;
    let payload: Value = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request("", format!("body is not valid JSON: {error}")))?;
    let fallback_time = header(&headers, "x-shopify-triggered-at")
        .and_then(|text| text.parse::<Timestamp>().ok())
        .unwrap_or_else(|| app.clock().now());
    let event = match topic {
        "checkouts/create" | "checkouts/update" => {
            Event::CheckoutUpdated(map_checkout(&payload, fallback_time)?)
        }
        "orders/create" | "orders/paid" => Event::OrderCreated(map_order(&payload, fallback_time)?),
        other => {
            note_unknown_topic(&app, "shopify", other);
            return Ok(Json(json!({ "result": "ignored", "topic": other })));
        }
    };
    validate(&event)?;
    let delivery_id = webhook_id
        .map(str::to_string)
        .unwrap_or_else(|| format!("{topic}:{}", event.natural_key()));
    let incoming = Incoming {
        workspace_id: app.config().webhook_workspace_id,
        source: "shopify".into(),
        delivery_id: Some(delivery_id),
        event,
    };
    let result = app.0.writer.submit(vec![incoming]).await?;
    Ok(Json(
        json!({ "result": result.first().copied().unwrap_or(Ingested::Duplicate) }),
    ))
}

/// Logs the first delivery of each unknown topic; later ones are only counted.
pub(crate) fn note_unknown_topic(app: &App, provider: &'static str, topic: &str) {
    metrics::counter!("nudge_webhooks_ignored_total", "provider" => provider).increment(1);
    let first = app
        .0
        .unknown_topics
        .lock()
        .map(|mut seen| seen.insert(format!("{provider}:{topic}")))
        .unwrap_or(false);
    if first {
        tracing::info!(provider, topic, "webhook topic not used by nudge; ignored");
    }
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn time(payload: &Value, paths: &[&str], fallback: Timestamp) -> Result<Timestamp, FieldError> {
    for path in paths {
        if let Some(raw) = text(payload, &[path]) {
            return raw
                .parse::<Timestamp>()
                .map_err(|_| FieldError::new(*path, format!("{raw:?} is not an RFC 3339 time")));
        }
    }
    Ok(fallback)
}

fn contact(payload: &Value) -> ContactInput {
    ContactInput {
        phone: text(
            payload,
            &[
                "phone",
                "sms_marketing_phone",
                "customer/phone",
                "billing_address/phone",
                "shipping_address/phone",
            ],
        ),
        email: text(payload, &["email", "contact_email", "customer/email"]),
        first_name: text(
            payload,
            &[
                "customer/first_name",
                "billing_address/first_name",
                "shipping_address/first_name",
            ],
        ),
        last_name: text(
            payload,
            &[
                "customer/last_name",
                "billing_address/last_name",
                "shipping_address/last_name",
            ],
        ),
        sms_consent: boolean(payload, "buyer_accepts_sms_marketing"),
        customer_id: customer_id(payload, &["customer/id"]),
        timezone: None,
    }
}

/// Maps a Shopify checkout. Its `token` is the id that orders refer back to
/// (`checkout_token`); the numeric `id` is used only when there is no token.
pub fn map_checkout(
    payload: &Value,
    fallback_time: Timestamp,
) -> Result<CheckoutEvent, FieldError> {
    let id =
        text(payload, &["token", "id"]).ok_or_else(|| FieldError::new("token", "missing field"))?;
    let items = array(payload, "line_items")
        .iter()
        .map(|line| Item {
            product_id: text(line, &["product_id"]),
            title: text(line, &["presentment_title", "title"]).unwrap_or_default(),
            variant: text(line, &["variant_title"]),
            quantity: line
                .get("quantity")
                .and_then(Value::as_u64)
                .and_then(|quantity| u32::try_from(quantity).ok())
                .unwrap_or(1),
            price: decimal(line, &["price"]),
            image_url: text(line, &["image_url", "image/src"]),
        })
        .collect();
    Ok(CheckoutEvent {
        id,
        occurred_at: time(payload, &["updated_at", "created_at"], fallback_time)?,
        cart_token: text(payload, &["cart_token"]),
        contact: contact(payload),
        items,
        total: decimal(payload, &["total_price"]),
        currency: text(payload, &["currency"]),
        recovery_url: text(payload, &["abandoned_checkout_url"]),
        completed_at: text(payload, &["completed_at"]).and_then(|raw| raw.parse().ok()),
        locale: text(payload, &["customer_locale"]),
    })
}

/// Maps a Shopify order. `checkout_token` (else `checkout_id`) ties it to its checkout.
pub fn map_order(payload: &Value, fallback_time: Timestamp) -> Result<OrderEvent, FieldError> {
    let id = text(payload, &["id"]).ok_or_else(|| FieldError::new("id", "missing field"))?;
    Ok(OrderEvent {
        id,
        occurred_at: time(payload, &["created_at", "processed_at"], fallback_time)?,
        checkout_id: text(payload, &["checkout_token", "checkout_id"]),
        cart_token: text(payload, &["cart_token"]),
        contact: ContactInput {
            sms_consent: None,
            ..contact(payload)
        },
        total: decimal(payload, &["total_price"]),
        currency: text(payload, &["currency"]),
        discount_codes: array(payload, "discount_codes")
            .iter()
            .filter_map(|code| text(code, &["code"]))
            .collect(),
    })
}
