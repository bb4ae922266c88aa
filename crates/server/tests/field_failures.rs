//! Failures seen in the field with other cart-recovery tools, replayed end to end through the
//! webhooks and `/v1/events`, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nudge_core::engine::{CheckoutStatus, Settings, Unreachable, fit_sms};
use nudge_core::flow::Flow;
use nudge_core::money::MoneyStyle;
use nudge_core::sms::{Encoding, analyse};
use nudge_core::template::{Fields, Template};
use nudge_core::time::{Clock, Timestamp, add};
use serde_json::{Value, json};
use support::*;

/// The moment every test starts at, in UTC.
const START: &str = "2025-05-01T09:00:00Z";

/// A text without a link, for checkouts that have no recovery URL.
const GREETING: &str = "Hi [Name], your [Product Name] is still waiting.";

/// Builds a cart flow whose steps start 60 minutes after the checkout's last activity. The
/// checkout enters the flow after 1 minute without activity and the first step waits 59 more,
/// so an order in between finds a waiting run to cancel.
fn flow_due_at_60m(steps: &str) -> String {
    format!(
        r#"
name = "cart-recovery"
trigger = "cart_abandoned"
idle = "1m"
quiet_hours = "off"
holdout = 0
attribution_window = "5d"
{steps}"#
    )
}

/// Builds an SMS step that waits 59 minutes, the first step of `flow_due_at_60m`.
fn sms_step(text: &str) -> String {
    format!(
        "[[steps]]\nwait = \"59m\"\nchannel = \"sms\"\ntext = {}\n",
        toml_string(text)
    )
}

/// Quotes text as a TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn options(steps: &str, settings: Settings) -> Options {
    Options {
        flows: vec![flow_due_at_60m(steps)],
        start: START.parse().unwrap(),
        settings,
        ..Options::default()
    }
}

fn minutes(count: u64) -> Duration {
    Duration::from_secs(count * 60)
}

/// Returns `START` plus some minutes.
fn at(count: u64) -> Timestamp {
    add(START.parse().unwrap(), minutes(count))
}

/// Moves the clock one minute, so that checkouts written at the start enter the flow at
/// minute 1 and their step is due at minute 60.
async fn enter_flow(app: &TestApp) {
    app.advance(minutes(1)).await;
}

/// Returns one line for a Shopify checkout. A checkout without lines is an emptied cart,
/// which enters no flow.
fn shopify_lines() -> Value {
    json!([{ "title": "Jiko Classic", "quantity": 1, "price": "2499.00" }])
}

/// Returns one line for a WooCommerce order.
fn woocommerce_lines() -> Value {
    json!([{ "name": "Jiko Classic", "quantity": 1, "price": "2499.00" }])
}

/// Builds a `/v1/events` checkout at `START` with one line and a recovery URL.
fn api_checkout(id: &str, contact: Value, title: &str) -> Value {
    json!({
        "type": "checkout.updated",
        "id": id,
        "occurred_at": START,
        "contact": contact,
        "items": [{ "title": title, "quantity": 1 }],
        "recovery_url": "https://shop.example/cart/1"
    })
}

/// Groups sent messages by the address they went to.
fn by_contact(sent: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for message in sent {
        let contact = message["contact"].as_str().unwrap().to_string();
        grouped.entry(contact).or_default().push(message.clone());
    }
    grouped
}

fn run_for<'a>(runs: &'a [RunRow], checkout: &str) -> &'a RunRow {
    let matching: Vec<&RunRow> = runs.iter().filter(|run| run.checkout == checkout).collect();
    assert_eq!(matching.len(), 1, "runs of {checkout}: {runs:?}");
    matching[0]
}

// Field failure B01: a guest creates an account while paying, so the order carries a customer
// id that the checkout never had. The order must still cancel the checkout's nudge, and a
// customer id alone must never tie an order to a checkout.
#[tokio::test]
async fn guest_order_by_checkout_token_cancels_nudge() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let checkout = json!({
            "token": "chk_T1",
            "cart_token": "crt_C1",
            "email": "amina.w@example.com",
            "phone": "+254700000001",
            "customer": null,
            "created_at": "2025-05-01T09:00:00Z",
            "line_items": shopify_lines()
        });
        let response = app.shopify("checkouts/create", &checkout, "b01-1").await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(1)).await;
        let order = json!({
            "id": 5001,
            "checkout_token": "chk_T1",
            "email": "amina.w@example.com",
            "phone": "+254700000001",
            "customer": { "id": 991, "created_at": "2025-05-01T09:01:30Z" },
            "financial_status": "paid"
        });
        let response = app.shopify("orders/create", &order, "b01-2").await;
        assert_eq!(response.status(), 200, "{name}");
        app.advance(minutes(120)).await;

        let sent = app.sent().await;
        assert!(
            sent.is_empty(),
            "{name}: no nudge after the purchase: {sent:?}"
        );
        let runs = app.runs().await;
        let run = run_for(&runs, "chk_T1");
        assert_eq!(run.status, "exited", "{name}");
        assert_eq!(run.exit_reason.as_deref(), Some("order_placed"), "{name}");
        assert_eq!(run.ended_at, Some(at(2)), "{name}: cancelled at 2m");
        let state = app.checkout("chk_T1").await.unwrap();
        assert_eq!(state.status, CheckoutStatus::Completed, "{name}");
        assert_eq!(state.completed_by.as_deref(), Some("5001"), "{name}");
        assert_eq!(app.figures().await.cancelled_by_order, 1, "{name}");
    }

    // The WooCommerce form of the same failure: the cart was kept under a guest session and
    // the order under customer 991, so only the phone number and e-mail address link them.
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let guest_cart = json!({
            "id": 7000,
            "status": "checkout-draft",
            "customer_id": 0,
            "billing": { "email": "amina.w@example.com", "phone": "+254700000001" },
            "line_items": woocommerce_lines()
        });
        let response = app.woocommerce("order.created", &guest_cart).await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(1)).await;
        let order = json!({
            "id": 7001,
            "status": "processing",
            "customer_id": 991,
            "billing": { "email": "Amina.W@example.com", "phone": "0700 000 001" }
        });
        let response = app.woocommerce("order.updated", &order).await;
        assert_eq!(response.status(), 200, "{name}");
        app.advance(minutes(120)).await;

        assert!(app.sent().await.is_empty(), "{name}");
        let runs = app.runs().await;
        let run = run_for(&runs, "7000");
        assert_eq!(
            run.exit_reason.as_deref(),
            Some("order_by_same_contact"),
            "{name}"
        );
        assert_eq!(run.ended_at, Some(at(2)), "{name}: cancelled at 2m");
        assert_eq!(app.figures().await.cancelled_by_order, 1, "{name}");
    }

    // A logged-in shopper's checkout, and an order that shares only the customer id with it
    // but has another checkout, phone number and e-mail address: the nudge still goes out.
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let checkout = json!({
            "token": "chk_T1c",
            "email": "kamau@example.com",
            "phone": "+254700000002",
            "customer": { "id": 992 },
            "created_at": "2025-05-01T09:00:00Z",
            "line_items": shopify_lines()
        });
        let response = app.shopify("checkouts/create", &checkout, "b01-3").await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(1)).await;
        let order = json!({
            "id": 5002,
            "checkout_token": "chk_OTHER",
            "email": "someone.else@example.com",
            "phone": "+254700000009",
            "customer": { "id": 992 },
            "financial_status": "paid"
        });
        let response = app.shopify("orders/create", &order, "b01-4").await;
        assert_eq!(response.status(), 200, "{name}");
        app.advance(minutes(120)).await;

        let runs = app.runs().await;
        let run = run_for(&runs, "chk_T1c");
        assert_eq!(
            run.exit_reason, None,
            "{name}: an order that shares only the customer id must not cancel the nudge"
        );
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        assert_eq!(sent[0]["contact"], "+254700000002", "{name}");
    }
}

// Field failure B03: checkouts whose phone and e-mail are missing, empty or blank get no job,
// no provider call and no error. A phone number added later makes the checkout reachable.
#[tokio::test]
async fn checkout_without_contact_gets_no_job() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let missing = json!({
            "token": "chk_T3",
            "email": null,
            "phone": null,
            "customer": null,
            "billing_address": { "phone": "" },
            "shipping_address": null,
            "line_items": shopify_lines()
        });
        let blank = json!({
            "token": "chk_T3b",
            "email": "",
            "phone": "   ",
            "line_items": shopify_lines()
        });
        let added_later = json!({
            "token": "chk_T3c",
            "email": null,
            "phone": null,
            "line_items": shopify_lines()
        });
        for (index, body) in [missing, blank, added_later].iter().enumerate() {
            let response = app
                .shopify("checkouts/create", body, &format!("b03-{index}"))
                .await;
            assert_eq!(response.status(), 200, "{name}: {body}");
        }
        assert_eq!(app.rows_in("timers").await, 0, "{name}: no job created");
        for id in ["chk_T3", "chk_T3b", "chk_T3c"] {
            let state = app.checkout(id).await.unwrap();
            assert_eq!(
                state.unreachable,
                Some(Unreachable::NoContact),
                "{name}: {id}"
            );
        }

        app.advance(minutes(20)).await;
        let update = json!({
            "token": "chk_T3c",
            "phone": "0700 000 003",
            "line_items": shopify_lines()
        });
        let response = app.shopify("checkouts/update", &update, "b03-3").await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(60)).await;

        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        assert_eq!(sent[0]["contact"], "+254700000003", "{name}");
        let runs = app.runs().await;
        assert_eq!(runs.len(), 1, "{name}: {runs:?}");
        assert_eq!(runs[0].checkout, "chk_T3c", "{name}");
        let failed = app.messages("status=failed").await;
        assert_eq!(failed["messages"], json!([]), "{name}: no errors");
        let figures = app.figures().await;
        assert_eq!(figures.messages, 1, "{name}");
        assert_eq!(figures.messages_skipped, 0, "{name}");
        assert_eq!(app.rows_in("outbox").await, 0, "{name}: no retries left");
    }
}

// Field failure B04: the shopper starts on a desktop and pays on a phone, under another
// checkout. The order from the same phone number cancels the first checkout's nudge.
#[tokio::test]
async fn other_device_order_cancels_nudge() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let desktop = json!({
            "token": "chk_T4A",
            "phone": "0700 000 004",
            "email": null,
            "line_items": [{ "variant_id": 111, "quantity": 1 }]
        });
        let response = app.shopify("checkouts/create", &desktop, "b04-1").await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(19)).await;
        let mobile_order = json!({
            "id": 5004,
            "checkout_token": "chk_T4B",
            "phone": "+254700000004",
            "line_items": [{ "variant_id": 111, "quantity": 1 }],
            "created_at": at(20).to_string()
        });
        let response = app.shopify("orders/create", &mobile_order, "b04-2").await;
        assert_eq!(response.status(), 200, "{name}");
        app.advance(minutes(120)).await;

        let sent = app.sent().await;
        assert!(sent.is_empty(), "{name}: {sent:?}");
        let runs = app.runs().await;
        let run = run_for(&runs, "chk_T4A");
        assert_eq!(
            run.exit_reason.as_deref(),
            Some("order_by_same_contact"),
            "{name}"
        );
        assert_eq!(run.ended_at, Some(at(20)), "{name}");
        let state = app.checkout("chk_T4A").await.unwrap();
        assert_eq!(state.status, CheckoutStatus::Completed, "{name}");
        assert_eq!(state.completed_by.as_deref(), Some("5004"), "{name}");
        assert_eq!(app.figures().await.cancelled_by_order, 1, "{name}");
    }
}

// Field failure B06: cart totals are written in the cart's own currency, with that
// currency's minor units and the locale's grouping and decimal marks.
#[tokio::test]
async fn cart_total_follows_currency_and_locale() {
    // (total, currency, locale of the checkout, expected with Full, expected with Compact).
    // The shop's locale is en-KE, and only the first checkout carries its own.
    let contexts = [
        ("24.99", "EUR", Some("de-DE"), "EUR 24,99", "EUR 24,99"),
        ("74849.83", "USD", None, "USD 74,849.83", "USD 74,849.83"),
        ("1500.00", "KES", None, "KES 1,500.00", "KES 1,500"),
        ("1500", "JPY", None, "JPY 1,500", "JPY 1,500"),
    ];
    let never = ["EUR 2.499,00", "KES 74,849.83", "JPY 15.00"];
    for style in [MoneyStyle::Full, MoneyStyle::Compact] {
        for db in databases().await {
            let settings = Settings {
                money_style: style,
                locale: Some("en-KE".into()),
                ..Settings::default()
            };
            let text = "Your {{product_name}} ({{cart_total}}) is waiting";
            let app = TestApp::spawn_with(db, options(&sms_step(text), settings)).await;
            let name = app.db;
            for (index, (total, currency, locale, _, _)) in contexts.iter().enumerate() {
                let contact = json!({ "phone": format!("0700 000 06{index}") });
                let mut event = api_checkout(&format!("b06-{index}"), contact, "Jiko Classic");
                event["total"] = json!(total);
                event["currency"] = json!(currency);
                if let Some(locale) = locale {
                    event["locale"] = json!(locale);
                }
                let response = app.post_events(&event).await;
                assert_eq!(response.status(), 200, "{name}: {currency}");
            }
            enter_flow(&app).await;
            app.advance(minutes(60)).await;

            let sent = by_contact(&app.sent().await);
            assert_eq!(sent.len(), contexts.len(), "{name}: {sent:?}");
            for (index, (_, currency, _, full, compact)) in contexts.iter().enumerate() {
                let amount = match style {
                    MoneyStyle::Full => full,
                    MoneyStyle::Compact => compact,
                };
                let messages = &sent[&format!("+25470000006{index}")];
                assert_eq!(messages.len(), 1, "{name}: {currency}");
                let body = messages[0]["body"].as_str().unwrap();
                assert_eq!(
                    body,
                    format!("Your Jiko Classic ({amount}) is waiting"),
                    "{name}: {style:?}"
                );
                assert_eq!(messages[0]["encoding"], "GSM-7", "{name}: {body}");
                for wrong in never {
                    assert!(!body.contains(wrong), "{name}: {style:?}: {body}");
                }
            }
        }
    }
}

/// An order webhook body as Shopify sends it: `/` escaped as `\/`, `&` as `\u0026`, a U+2028
/// escape and Romanian diacritics in UTF-8.
const B07_BODY_BASE64: &str = "eyJpZCI6ODIwOTgyOTExOTQ2MTU0NTA4LCJlbWFpbCI6IndhbmppcnVAZXhhbXBsZS5jb20iLCJub3RlIjoiVG9tIFx1MDAyNiBKZXJyeSIsImxhbmRpbmdfc2l0ZSI6IlwvcHJvZHVjdHNcL2ppa28/cmVmPXNtcyIsImxpbmVfaXRlbXMiOlt7InRpdGxlIjoiTcOibmVjxIMgSmlrbyDigJMgQ2xhc3NpYyIsInByaWNlIjoiMjQ5OS4wMCJ9XSwiY3VycmVuY3kiOiJLRVMiLCJzZXAiOiJhXHUyMDI4YiJ9";

// Field failure B07: the signature is checked over the raw request bytes. A body that was
// re-serialised or changed, or a request without the header, is rejected and stores nothing.
#[tokio::test]
async fn shopify_signature_checked_over_raw_bytes() {
    let secret = "shpss_fake_secret_0001";
    let signature = "WE9bmxz9w0COY2zqlIMLcmSgHI5qSxRCf+3AJ+oQlHA=";
    let raw = STANDARD.decode(B07_BODY_BASE64).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(text.contains(r#""landing_site":"\/products\/jiko?ref=sms""#));
    assert!(text.contains(r#""note":"Tom \u0026 Jerry""#));
    let tampered = text.replace("2499.00", "1.00").into_bytes();
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(&raw).unwrap()).unwrap();
    assert_ne!(reserialised, raw);

    for db in databases().await {
        let app_options = Options {
            shopify_secret: Some(secret.into()),
            ..options(&sms_step(GREETING), Settings::default())
        };
        let app = TestApp::spawn_with(db, app_options).await;
        let name = app.db;
        let response = app
            .shopify_raw("orders/create", &tampered, "b07-1", signature)
            .await;
        assert_eq!(response.status(), 401, "{name}: tampered");
        let response = app
            .shopify_raw("orders/create", &reserialised, "b07-2", signature)
            .await;
        assert_eq!(response.status(), 401, "{name}: re-serialised");
        let unsigned = app
            .http
            .post(format!("{}/webhooks/shopify", app.base))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", "orders/create")
            .header("X-Shopify-Webhook-Id", "b07-3")
            .header("X-Shopify-Shop-Domain", "test-shop.myshopify.com")
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401, "{name}: missing header");
        assert_eq!(app.stored_events().await, 0, "{name}: nothing stored");
        assert_eq!(app.rows_in("orders").await, 0, "{name}");

        let response = app
            .shopify_raw("orders/create", &raw, "b07-4", signature)
            .await;
        assert_eq!(response.status(), 200, "{name}: original");
        assert_eq!(app.stored_events().await, 1, "{name}");
        assert_eq!(app.figures().await.orders, 1, "{name}");
    }
}

// Field failure B08: the same order webhook arrives twice at once and again a minute later.
// Every delivery gets a 2xx response and the order takes effect once.
#[tokio::test]
async fn concurrent_duplicate_order_webhooks_apply_once() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let checkout = json!({
            "token": "chk_T8",
            "phone": "0700 000 008",
            "line_items": shopify_lines()
        });
        let response = app.shopify("checkouts/create", &checkout, "b08-1").await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;

        let order = json!({
            "id": 5008,
            "checkout_token": "chk_T8",
            "total_price": "1200.00",
            "currency": "KES"
        });
        let bytes = serde_json::to_vec(&order).unwrap();
        let signature = nudge_server::webhooks::sign_base64(&app.shopify_secret, &bytes);
        let webhook_id = "00000000-0000-4000-8000-00000000b081";
        let (first, second) = tokio::join!(
            app.shopify_raw("orders/create", &bytes, webhook_id, &signature),
            app.shopify_raw("orders/create", &bytes, webhook_id, &signature)
        );
        assert!(first.status().is_success(), "{name}: {}", first.status());
        assert!(second.status().is_success(), "{name}: {}", second.status());
        let mut results = vec![
            first.json::<Value>().await.unwrap()["result"].clone(),
            second.json::<Value>().await.unwrap()["result"].clone(),
        ];
        results.sort_by_key(Value::to_string);
        assert_eq!(results, [json!("applied"), json!("duplicate")], "{name}");

        app.advance(Duration::from_secs(60)).await;
        let redelivery = app
            .shopify_raw("orders/create", &bytes, webhook_id, &signature)
            .await;
        assert!(redelivery.status().is_success(), "{name}");
        let body: Value = redelivery.json().await.unwrap();
        assert_eq!(body["result"], "duplicate", "{name}");
        app.advance(minutes(120)).await;

        assert_eq!(app.rows_in("orders").await, 1, "{name}: orders recorded");
        assert_eq!(app.stored_events().await, 2, "{name}: checkout and order");
        let runs = app.runs().await;
        assert_eq!(runs.len(), 1, "{name}: {runs:?}");
        assert_eq!(
            runs[0].exit_reason.as_deref(),
            Some("order_placed"),
            "{name}"
        );
        let figures = app.figures().await;
        assert_eq!(figures.orders, 1, "{name}");
        assert_eq!(figures.cancelled_by_order, 1, "{name}: one cancellation");
        // The order is attributed to its checkout once. No nudge went out, so no run is
        // credited with it.
        assert_eq!(figures.completed, 1, "{name}");
        let state = app.checkout("chk_T8").await.unwrap();
        assert_eq!(state.completed_by.as_deref(), Some("5008"), "{name}");
        assert_eq!(figures.recovered_orders, 0, "{name}");
        assert!(app.sent().await.is_empty(), "{name}");
    }
}

// Field failure B10: WooCommerce sends `order.created` for a draft as soon as the checkout
// page opens. Only a placed order (processing, completed, on-hold or paid) cancels the nudge.
#[tokio::test]
async fn only_placed_woocommerce_order_cancels_nudge() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let opened = [
            (7010, "checkout-draft", "0700 000 010"),
            (7011, "pending", "0700 000 011"),
            (7012, "checkout-draft", "0700 000 012"),
            (7013, "checkout-draft", "0700 000 013"),
        ];
        for (id, status, phone) in opened {
            let body = json!({
                "id": id,
                "status": status,
                "date_paid_gmt": null,
                "billing": { "phone": phone, "email": "juma@example.com" },
                "line_items": woocommerce_lines()
            });
            let response = app.woocommerce("order.created", &body).await;
            assert_eq!(response.status(), 200, "{name}: {id}");
        }
        enter_flow(&app).await;
        app.advance(minutes(19)).await;
        let paid = json!({
            "id": 7012,
            "status": "processing",
            "date_paid_gmt": "2025-05-01T09:20:00"
        });
        let on_hold = json!({ "id": 7013, "status": "on-hold", "payment_method": "bacs" });
        for body in [paid, on_hold] {
            let response = app.woocommerce("order.updated", &body).await;
            assert_eq!(response.status(), 200, "{name}: {body}");
        }
        app.advance(minutes(120)).await;

        let sent = by_contact(&app.sent().await);
        let expected = [
            ("+254700000010", 1),
            ("+254700000011", 1),
            ("+254700000012", 0),
            ("+254700000013", 0),
        ];
        for (contact, count) in expected {
            assert_eq!(
                sent.get(contact).map_or(0, Vec::len),
                count,
                "{name}: {contact}"
            );
        }
        let runs = app.runs().await;
        for (checkout, exit_reason) in [
            ("7010", None),
            ("7011", None),
            ("7012", Some("order_placed")),
            ("7013", Some("order_placed")),
        ] {
            let run = run_for(&runs, checkout);
            assert_eq!(
                run.exit_reason.as_deref(),
                exit_reason,
                "{name}: {checkout}"
            );
        }
        assert_eq!(app.figures().await.orders, 2, "{name}");
    }
}

// Field failure B11: a signed order webhook of 655,360 bytes with 300 line items gets a 200
// response and is processed, because the body limit is well above its size.
#[tokio::test]
async fn large_signed_order_webhook_is_processed() {
    const BODY_BYTES: usize = 655_360;
    let line = json!({
        "title": "Jiko Classic",
        "quantity": 1,
        "price": "2499.00",
        "properties": [{ "name": "engraving", "value": "p".repeat(1900) }]
    });
    let mut order = json!({
        "id": 5011,
        "checkout_token": "chk_T11",
        "total_price": "749700.00",
        "currency": "KES",
        "line_items": vec![line; 300],
        "note": ""
    });
    let unpadded = serde_json::to_vec(&order).unwrap().len();
    assert!(unpadded < BODY_BYTES, "{unpadded} bytes before padding");
    order["note"] = json!("x".repeat(BODY_BYTES - unpadded));
    let bytes = serde_json::to_vec(&order).unwrap();
    assert_eq!(bytes.len(), BODY_BYTES);

    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(GREETING), Settings::default())).await;
        let name = app.db;
        let checkout = json!({
            "token": "chk_T11",
            "phone": "0700 000 011",
            "line_items": shopify_lines()
        });
        let response = app.shopify("checkouts/create", &checkout, "b11-1").await;
        assert_eq!(response.status(), 200, "{name}");
        enter_flow(&app).await;

        let signature = nudge_server::webhooks::sign_base64(&app.shopify_secret, &bytes);
        // One byte changed near the end: the signature covers the whole body.
        let mut tampered = bytes.clone();
        let last_x = tampered.iter().rposition(|byte| *byte == b'x').unwrap();
        tampered[last_x] = b'y';
        let response = app
            .shopify_raw("orders/create", &tampered, "b11-2", &signature)
            .await;
        assert_eq!(response.status(), 401, "{name}: tampered");

        let response = app
            .shopify_raw("orders/create", &bytes, "b11-3", &signature)
            .await;
        assert_eq!(response.status(), 200, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"], "applied", "{name}");
        app.advance(minutes(120)).await;

        let state = app.checkout("chk_T11").await.unwrap();
        assert_eq!(state.status, CheckoutStatus::Completed, "{name}");
        assert_eq!(state.completed_by.as_deref(), Some("5011"), "{name}");
        let runs = app.runs().await;
        assert_eq!(runs.len(), 1, "{name}: {runs:?}");
        assert_eq!(
            runs[0].exit_reason.as_deref(),
            Some("order_placed"),
            "{name}"
        );
        assert_eq!(app.figures().await.orders, 1, "{name}");
        assert!(app.sent().await.is_empty(), "{name}");
    }
}

// Field failure B17: Kenyan numbers in every spelling shoppers type, including the newer 01xx
// range, normalise to E.164; invalid ones get no SMS and the checkout is flagged.
#[tokio::test]
async fn kenyan_numbers_normalise_or_block_sms() {
    let numbers = [
        ("0700 000 001", Some("+254700000001")),
        ("254700000001", Some("+254700000001")),
        ("+254 700-000-001", Some("+254700000001")),
        ("700000001", Some("+254700000001")),
        ("+254 0700 000 001", Some("+254700000001")),
        ("00254700000001", Some("+254700000001")),
        ("0110 000 001", Some("+254110000001")),
        ("254110000001", Some("+254110000001")),
        ("+254 (0) 110 000 001", Some("+254110000001")),
        ("07000", None),
        ("+2547000000011", None),
    ];
    for db in databases().await {
        let app = TestApp::spawn_with(
            db,
            options(
                &sms_step("Your [Product Name] is waiting."),
                Settings::default(),
            ),
        )
        .await;
        let name = app.db;
        for (index, (raw, _)) in numbers.iter().enumerate() {
            let contact = json!({ "phone": raw });
            let event = api_checkout(&format!("b17-{index}"), contact, &format!("item-{index}"));
            let response = app.post_events(&event).await;
            assert_eq!(response.status(), 200, "{name}: {raw}");
        }
        enter_flow(&app).await;
        app.advance(minutes(60)).await;

        let sent = app.sent().await;
        let contact_of_body: BTreeMap<String, String> = sent
            .iter()
            .map(|message| {
                (
                    message["body"].as_str().unwrap().to_string(),
                    message["contact"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            sent.len(),
            contact_of_body.len(),
            "{name}: one SMS per checkout"
        );
        for (index, (raw, expected)) in numbers.iter().enumerate() {
            let body = format!("Your item-{index} is waiting.");
            let contact = contact_of_body.get(&body).map(String::as_str);
            assert_eq!(contact, *expected, "{name}: {raw}");
            let state = app.checkout(&format!("b17-{index}")).await.unwrap();
            match expected {
                Some(e164) => {
                    assert_eq!(
                        state.phone.as_ref().map(|phone| phone.as_str()),
                        Some(*e164)
                    );
                    assert_eq!(state.unreachable, None, "{name}: {raw}");
                }
                None => {
                    assert_eq!(
                        state.unreachable,
                        Some(Unreachable::InvalidPhone),
                        "{name}: {raw}"
                    );
                    assert_eq!(state.invalid_phone.as_deref(), Some(*raw), "{name}");
                }
            }
        }
        for contact in contact_of_body.values() {
            assert!(contact.starts_with("+254"), "{name}: {contact}");
        }
        let figures = app.figures().await;
        assert_eq!(figures.entered, 9, "{name}: invalid numbers never enter");
        assert_eq!(figures.messages, 9, "{name}");
    }
}

// Field failure B27: a missing, empty or blank first name greets with the fallback, never
// with an empty name, a raw placeholder or the e-mail handle. A template with a misspelt
// variable is rejected when the flow is loaded.
#[tokio::test]
async fn missing_first_name_greets_with_fallback() {
    let template = "Hi {{first_name}}, your {{product_name}} is waiting: {{link}}";
    let contacts = [
        (json!({}), "Hi there"),
        (json!({ "first_name": "" }), "Hi there"),
        (json!({ "first_name": "   " }), "Hi there"),
        (json!({ "email": "wanjiru.k87@example.com" }), "Hi there"),
        (json!({ "first_name": "wanjiru" }), "Hi Wanjiru"),
    ];
    let never = ["Hi ,", "Hi  ,", "{{", "}}", "Hi wanjiru.k87"];
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&sms_step(template), Settings::default())).await;
        let name = app.db;
        for (index, (contact, _)) in contacts.iter().enumerate() {
            let mut contact = contact.clone();
            contact["phone"] = json!(format!("0700 000 27{index}"));
            let event = api_checkout(&format!("b27-{index}"), contact, "Jiko Classic");
            let response = app.post_events(&event).await;
            assert_eq!(response.status(), 200, "{name}: {index}");
        }
        enter_flow(&app).await;
        app.advance(minutes(60)).await;

        let sent = by_contact(&app.sent().await);
        for (index, (contact, greeting)) in contacts.iter().enumerate() {
            let messages = &sent[&format!("+25470000027{index}")];
            assert_eq!(messages.len(), 1, "{name}: {contact}");
            let body = messages[0]["body"].as_str().unwrap();
            let link = messages[0]["link"].as_str().unwrap();
            assert_eq!(
                body,
                format!("{greeting}, your Jiko Classic is waiting: {link}"),
                "{name}: {contact}"
            );
            for wrong in never {
                assert!(!body.contains(wrong), "{name}: {body}");
            }
        }
    }

    let typo = "Hi {{firstname}}, your {{product_name}} is waiting: {{link}}";
    let error = Flow::parse(&flow_due_at_60m(&sms_step(typo)), "typo.toml").unwrap_err();
    assert!(error.to_string().contains("'firstname'"), "{error}");
}

/// Posts a signed WhatsApp webhook with one text from `from` (E.164 digits without '+'),
/// timestamped at the clock's current time.
async fn whatsapp_inbound(app: &TestApp, from: &str) -> reqwest::Response {
    let mut body = shared_json("providers/payloads/whatsapp_webhook_inbound_text.json");
    let value = &mut body["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(from);
    let message = &mut value["messages"][0];
    message["from"] = json!(from);
    let sent_at = app.clock.now().as_second();
    message["timestamp"] = json!(sent_at.to_string());
    let bytes = serde_json::to_vec(&body).unwrap();
    app.http
        .post(format!("{}/webhooks/whatsapp", app.base))
        .header("Content-Type", "application/json")
        .header(
            "X-Hub-Signature-256",
            nudge_server::webhooks::whatsapp::sign(WHATSAPP_APP_SECRET, &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap()
}

// Field failure B28: SMS and WhatsApp text is never HTML-escaped.
#[tokio::test]
async fn message_text_is_not_html_escaped() {
    let template = "{{store_name}}: your {{product_name}} is waiting";
    let expected = "Tom & Jerry's Duka: your Mug \"Classic\" <XL> is waiting";
    let steps = format!(
        "{}[[steps]]\nwait = \"0s\"\nchannel = \"whatsapp\"\ntext = {}\n",
        sms_step(template),
        toml_string(template)
    );
    for db in databases().await {
        let settings = Settings {
            shop_name: Some("Tom & Jerry's Duka".into()),
            ..Settings::default()
        };
        let app = TestApp::spawn_with(db, options(&steps, settings)).await;
        let name = app.db;
        // WhatsApp takes free-form text only within 24 hours of the customer's last message,
        // so the customer writes first.
        let response = whatsapp_inbound(&app, "254700000028").await;
        assert_eq!(response.status(), 200, "{name}");
        let contact = json!({ "phone": "0700 000 028" });
        let event = api_checkout("b28", contact, "Mug \"Classic\" <XL>");
        assert_eq!(app.post_events(&event).await.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(60)).await;

        let sent = app.sent().await;
        let channels: BTreeMap<&str, &str> = sent
            .iter()
            .map(|message| {
                (
                    message["channel"].as_str().unwrap(),
                    message["body"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(sent.len(), 2, "{name}: {sent:?}");
        assert_eq!(channels.get("sms"), Some(&expected), "{name}");
        assert_eq!(channels.get("whatsapp"), Some(&expected), "{name}");
        for body in channels.values() {
            for escaped in ["&amp;", "&#39;", "&#x27;", "&quot;", "&lt;", "&gt;"] {
                assert!(!body.contains(escaped), "{name}: {body}");
            }
        }
    }
}

/// A product name of 170 characters, too long to fit one SMS segment whole.
const LONG_PRODUCT: &str = "Pikabora PB-557 Professional Stainless Steel 4-Burner Gas Cooker with Electric Oven, Rotisserie, Auto Ignition, Glass Lid and 12-Month Warranty - Silver Grey Edition 2025";

// Field failure B29: an SMS limited to one segment shortens the product name and keeps the
// link whole at the end, instead of cutting the text at 160 characters.
#[tokio::test]
async fn one_segment_sms_keeps_whole_link() {
    let template = "Hi {{first_name}}, {{product_name}} is still in your cart: {{link}}";
    // The case's own values, through the same fitting the server uses.
    let case_link = "https://shop.example/r/Ab3xQ9";
    let fields = Fields {
        name: "Kamau".into(),
        first_name: "Kamau".into(),
        product_name: LONG_PRODUCT.into(),
        link: case_link.into(),
        ..Fields::default()
    };
    let fitted = fit_sms(&Template::parse(template).unwrap(), &fields, Some(1)).unwrap();
    assert_eq!(
        fitted.text,
        "Hi Kamau, Pikabora PB-557 Professional Stainless Steel 4-Burner Gas Cooker with \
         Electric Oven, Rotisseri... is still in your cart: https://shop.example/r/Ab3xQ9"
    );
    assert_eq!(fitted.encoding, Encoding::Gsm7);
    assert_eq!(fitted.segments, 1);
    assert_eq!(analyse(&fitted.text).units, 160);

    let steps = format!("{}max_segments = 1\n", sms_step(template));
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(&steps, Settings::default())).await;
        let name = app.db;
        let contact = json!({ "phone": "0700 000 029", "first_name": "Kamau" });
        let event = api_checkout("b29", contact, LONG_PRODUCT);
        assert_eq!(app.post_events(&event).await.status(), 200, "{name}");
        enter_flow(&app).await;
        app.advance(minutes(60)).await;

        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        let body = sent[0]["body"].as_str().unwrap();
        let link = sent[0]["link"].as_str().unwrap();
        // With the case's 29-character link the name keeps 94 characters; the server's own
        // link differs in length, and the name gives up exactly the difference.
        let kept = 94 + case_link.len() - link.len();
        let name_prefix: String = LONG_PRODUCT.chars().take(kept).collect();
        assert_eq!(
            body,
            format!("Hi Kamau, {name_prefix}... is still in your cart: {link}"),
            "{name}"
        );
        assert!(body.ends_with(link), "{name}: the link comes last");
        assert!(!body.contains('\u{2026}'), "{name}: three ASCII dots");
        assert_eq!(analyse(body).units, 160, "{name}: {body}");
        assert_eq!(sent[0]["segments"], 1, "{name}");
        assert_eq!(sent[0]["encoding"], "GSM-7", "{name}");
    }
}
