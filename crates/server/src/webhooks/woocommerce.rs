//! `POST /webhooks/woocommerce`: `order.created` and `order.updated`, verified with
//! `X-WC-Webhook-Signature` over the raw body.
//!
//! WooCommerce has no cart event. A `checkout-draft` or `pending` order is the checkout
//! itself; only a placed order (`processing`, `on-hold`, `completed`, or a set
//! `date_paid_gmt`) is an order, and it completes the checkout with the same id.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use nudge_core::event::{
    CheckoutEvent, ContactInput, Event, FieldError, Item, OrderEvent, validate,
};
use nudge_core::store::{Incoming, Ingested};
use nudge_core::time::Timestamp;
use serde_json::{Value, json};

use super::shopify::{header, note_unknown_topic};
use super::value::{array, customer_id, decimal, text};
use super::verify_base64_hmac;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::App;

pub async fn receive(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let delivery = header(&headers, "x-wc-webhook-delivery-id").unwrap_or("-");
    let bytes = read_limited(body, &headers, app.config().body_limit, delivery).await?;
    let Some(signature) = header(&headers, "x-wc-webhook-signature") else {
        // WooCommerce checks a new webhook with an unsigned `webhook_id=<id>` body and
        // saves it only if the answer is 200.
        if bytes.starts_with(b"webhook_id=") {
            tracing::info!("WooCommerce webhook creation ping answered");
            return Ok(Json(json!({ "result": "pong" })));
        }
        return Err(ApiError::Unauthorized(
            "missing X-WC-Webhook-Signature".into(),
        ));
    };
    let Some(secret) = &app.config().woocommerce_secret else {
        return Err(ApiError::Unauthorized(
            "WooCommerce webhooks are not configured; set woocommerce.webhook_secret (NUDGE_WOOCOMMERCE_WEBHOOK_SECRET)"
                .into(),
        ));
    };
    if !verify_base64_hmac(std::slice::from_ref(secret), &bytes, signature) {
        metrics::counter!("nudge_webhooks_rejected_total", "provider" => "woocommerce")
            .increment(1);
        tracing::warn!(
            delivery,
            "WooCommerce webhook with a signature that does not match its body"
        );
        return Err(ApiError::Unauthorized(
            "X-WC-Webhook-Signature does not match the body".into(),
        ));
    }
    let topic = header(&headers, "x-wc-webhook-topic").unwrap_or("order.updated");
    if !matches!(topic, "order.created" | "order.updated") {
        note_unknown_topic(&app, "woocommerce", topic);
        return Ok(Json(json!({ "result": "ignored", "topic": topic })));
    }
    let payload: Value = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request("", format!("body is not valid JSON: {error}")))?;
    let source = header(&headers, "x-wc-webhook-source");
    let Some(event) = map_order(&payload, source, app.clock().now())? else {
        return Ok(Json(
            json!({ "result": "ignored", "reason": "order status is neither open nor placed" }),
        ));
    };
    validate(&event)?;
    let delivery_id = format!(
        "{}:{}:{}",
        text(&payload, &["id"]).unwrap_or_default(),
        text(&payload, &["date_modified_gmt"]).unwrap_or_default(),
        text(&payload, &["status"]).unwrap_or_default()
    );
    let incoming = Incoming {
        workspace_id: app.config().webhook_workspace_id,
        source: "woocommerce".into(),
        delivery_id: Some(delivery_id),
        event,
    };
    let result = app.0.writer.submit(vec![incoming]).await?;
    Ok(Json(
        json!({ "result": result.first().copied().unwrap_or(Ingested::Duplicate) }),
    ))
}

/// Maps a WooCommerce order: an open one to a checkout, a placed one to an order, and any
/// other status (`cancelled`, `failed`, `refunded`) to nothing. `source` is the shop's URL
/// (`X-WC-Webhook-Source`), from which the order's payment page is built when the payload
/// carries no `payment_url`.
pub fn map_order(
    payload: &Value,
    source: Option<&str>,
    now: Timestamp,
) -> Result<Option<Event>, FieldError> {
    let id = text(payload, &["id"]).ok_or_else(|| FieldError::new("id", "missing field"))?;
    let status = text(payload, &["status"]).unwrap_or_default();
    let paid = text(payload, &["date_paid_gmt"]).is_some();
    let placed = paid || matches!(status.as_str(), "processing" | "on-hold" | "completed");
    let open = matches!(status.as_str(), "checkout-draft" | "pending");
    let occurred_at = gmt_time(payload, &["date_modified_gmt", "date_created_gmt"], now)?;
    let contact = ContactInput {
        phone: text(payload, &["billing/phone", "shipping/phone"]),
        email: text(payload, &["billing/email"]),
        first_name: text(payload, &["billing/first_name", "shipping/first_name"]),
        last_name: text(payload, &["billing/last_name", "shipping/last_name"]),
        sms_consent: None,
        customer_id: customer_id(payload, &["customer_id"]),
        timezone: None,
    };
    if placed {
        return Ok(Some(Event::OrderCreated(OrderEvent {
            id: id.clone(),
            occurred_at: gmt_time(
                payload,
                &["date_paid_gmt", "date_modified_gmt", "date_created_gmt"],
                now,
            )?,
            checkout_id: Some(id),
            cart_token: text(payload, &["cart_hash"]),
            contact,
            total: decimal(payload, &["total"]),
            currency: text(payload, &["currency"]),
            discount_codes: array(payload, "coupon_lines")
                .iter()
                .filter_map(|line| text(line, &["code"]))
                .collect(),
        })));
    }
    if !open {
        return Ok(None);
    }
    let items = array(payload, "line_items")
        .iter()
        .map(|line| Item {
            product_id: text(line, &["product_id"]),
            title: text(line, &["name"]).unwrap_or_default(),
            variant: None,
            quantity: line
                .get("quantity")
                .and_then(Value::as_u64)
                .and_then(|quantity| u32::try_from(quantity).ok())
                .unwrap_or(1),
            price: decimal(line, &["price"]),
            image_url: text(line, &["image/src"]),
        })
        .collect();
    Ok(Some(Event::CheckoutUpdated(CheckoutEvent {
        id,
        occurred_at,
        cart_token: text(payload, &["cart_hash"]),
        contact,
        items,
        total: decimal(payload, &["total"]),
        currency: text(payload, &["currency"]),
        recovery_url: text(payload, &["payment_url", "checkout_payment_url"])
            .or_else(|| pay_page(payload, source)),
        completed_at: None,
        locale: None,
    })))
}

/// WooCommerce's own "pay for order" page of an unpaid order:
/// `<shop>/checkout/order-pay/<id>/?pay_for_order=true&key=<order_key>`.
fn pay_page(payload: &Value, source: Option<&str>) -> Option<String> {
    let shop = url::Url::parse(source?).ok()?;
    let id = text(payload, &["id"])?;
    let key = text(payload, &["order_key"])?;
    let mut page = shop.join(&format!("checkout/order-pay/{id}/")).ok()?;
    page.query_pairs_mut()
        .append_pair("pay_for_order", "true")
        .append_pair("key", &key);
    Some(page.to_string())
}

/// WooCommerce writes `*_gmt` times without an offset; they are UTC.
fn gmt_time(payload: &Value, paths: &[&str], fallback: Timestamp) -> Result<Timestamp, FieldError> {
    for path in paths {
        if let Some(raw) = text(payload, &[path]) {
            if let Ok(ts) = raw.parse::<Timestamp>() {
                return Ok(ts);
            }
            return raw
                .parse::<DateTime>()
                .ok()
                .and_then(|civil| civil.to_zoned(TimeZone::UTC).ok())
                .map(|zoned| zoned.timestamp())
                .ok_or_else(|| FieldError::new(*path, format!("{raw:?} is not a date-time")));
        }
    }
    Ok(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_order_links_to_its_payment_page() {
        let payload = serde_json::json!({
            "id": 5001, "status": "pending", "order_key": "wc_order_TESTKEY0001",
            "date_modified_gmt": "2026-01-15T07:00:05", "billing": { "phone": "0700000001" }
        });
        let now: Timestamp = "2026-01-15T07:00:06Z".parse().unwrap();
        let Some(Event::CheckoutUpdated(checkout)) =
            map_order(&payload, Some("https://woo-test.example.com/"), now).unwrap()
        else {
            panic!("a pending order is a checkout");
        };
        assert_eq!(
            checkout.recovery_url.as_deref(),
            Some(
                "https://woo-test.example.com/checkout/order-pay/5001/?pay_for_order=true&key=wc_order_TESTKEY0001"
            )
        );
        assert_eq!(
            checkout.occurred_at,
            "2026-01-15T07:00:05Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn paid_order_completes_and_failed_order_is_ignored() {
        let now: Timestamp = "2026-01-15T07:00:06Z".parse().unwrap();
        let paid = serde_json::json!({ "id": 7012, "status": "processing", "date_paid_gmt": "2025-05-01T09:20:00" });
        assert!(matches!(
            map_order(&paid, None, now).unwrap(),
            Some(Event::OrderCreated(_))
        ));
        let failed = serde_json::json!({ "id": 7014, "status": "failed" });
        assert!(map_order(&failed, None, now).unwrap().is_none());
    }
}
