//! Abandoned-cart recovery end to end through HTTP, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn shopify_checkout_gets_personal_sms_with_link() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let checkout = shopify_checkout("tok-1", "2026-01-15T10:05:00+03:00");
        let response = app.shopify("checkouts/create", &checkout, "wh-1").await;
        assert_eq!(response.status(), 200, "{name}");

        app.advance(Duration::from_secs(1)).await;
        assert!(
            app.sent().await.is_empty(),
            "{name}: nothing before the idle time"
        );

        app.advance(Duration::from_secs(2)).await;
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        let message = &sent[0];
        let body = message["body"].as_str().unwrap();
        assert!(
            body.starts_with("Hi Amina, your Test Kettle 1.7L is still waiting! "),
            "{name}: {body}"
        );
        assert_eq!(message["contact"], "+254700000001", "{name}");
        assert_eq!(message["channel"], "sms", "{name}");
        assert_eq!(message["provider"], "sandbox", "{name}");
        assert_eq!(message["segments"], 1, "{name}");
        assert_eq!(message["step"], 0, "{name}");
        let link = message["link"].as_str().unwrap();
        assert!(body.ends_with(link), "{name}: the link ends the text");
        assert!(
            link.starts_with(&format!("{}/r/", app.base)),
            "{name}: {link}"
        );

        let redirect = app.http.get(link).send().await.unwrap();
        assert_eq!(redirect.status(), 302, "{name}");
        assert_eq!(
            redirect.headers()["location"],
            "https://test-shop.example.com/1/checkouts/0000000000000000000000000000c0de/recover?key=TESTKEY\
             &utm_source=nudge&utm_medium=sms&utm_campaign=cart-recovery",
            "{name}"
        );
        let unknown = app
            .http
            .get(format!("{}/r/NoSuchToken1", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404, "{name}");
    }
}

#[tokio::test]
async fn order_before_idle_time_sends_nothing() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let checkout = shopify_checkout("tok-2", "2026-01-15T10:05:00+03:00");
        assert_eq!(
            app.shopify("checkouts/create", &checkout, "wh-2")
                .await
                .status(),
            200
        );
        app.advance(Duration::from_secs(1)).await;
        let order = shopify_order(
            600_000_000_000_000_002,
            "tok-2",
            "2026-01-15T10:05:01+03:00",
        );
        assert_eq!(
            app.shopify("orders/create", &order, "wh-3").await.status(),
            200,
            "{name}"
        );
        app.advance(Duration::from_secs(3600)).await;
        assert!(app.sent().await.is_empty(), "{name}");
        let figures = app.figures().await;
        assert_eq!(figures.completed, 1, "{name}");
        assert_eq!(figures.entered, 0, "{name}");
    }
}

#[tokio::test]
async fn same_webhook_id_counts_once() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let checkout = shopify_checkout("tok-3", "2026-01-15T10:05:00+03:00");
        let first: Value = app
            .shopify("checkouts/create", &checkout, "wh-4")
            .await
            .json()
            .await
            .unwrap();
        let second: Value = app
            .shopify("checkouts/create", &checkout, "wh-4")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(first["result"], "applied", "{name}");
        assert_eq!(second["result"], "duplicate", "{name}");
        assert_eq!(app.stored_events().await, 1, "{name}");
        app.advance(Duration::from_secs(3)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn reserialised_body_or_wrong_secret_gets_401() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        // The example file as Shopify would send it, byte for byte.
        let raw = std::fs::read(shared_data(
            "providers/payloads/shopify_checkouts_create.json",
        ))
        .unwrap();
        let signature = nudge_server::webhooks::sign_base64(SHOPIFY_SECRET, &raw);
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<Value>(&raw).unwrap()).unwrap();
        assert_ne!(raw, reserialised);
        let response = app
            .shopify_raw("checkouts/create", &reserialised, "wh-5", &signature)
            .await;
        assert_eq!(response.status(), 401, "{name}: re-serialised body");
        let wrong = nudge_server::webhooks::sign_base64("not-the-secret", &raw);
        let response = app
            .shopify_raw("checkouts/create", &raw, "wh-6", &wrong)
            .await;
        assert_eq!(response.status(), 401, "{name}: wrong secret");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{name}");
        assert_eq!(app.stored_events().await, 0, "{name}: nothing stored");
        // The genuine bytes pass.
        let response = app
            .shopify_raw("checkouts/create", &raw, "wh-7", &signature)
            .await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(app.stored_events().await, 1, "{name}");
    }
}

fn checkout_event(id: &str) -> Value {
    json!({
        "type": "checkout.updated",
        "id": id,
        "occurred_at": "2026-01-15T07:05:00Z",
        "contact": { "phone": "0700 000 001", "first_name": "Amina" },
        "items": [{ "product_id": "p1", "title": "Test Kettle 1.7L", "quantity": 1, "price": "4850.00" }],
        "total": "4850.00",
        "currency": "KES",
        "recovery_url": "https://shop.example/cart/1"
    })
}

#[tokio::test]
async fn bad_events_get_400_naming_the_field_and_store_nothing() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let mut missing_id = checkout_event("c1");
        missing_id.as_object_mut().unwrap().remove("id");
        let mut bad_quantity = checkout_event("c1");
        bad_quantity["items"][0]["quantity"] = json!("two");
        let mut lower_currency = checkout_event("c1");
        lower_currency["currency"] = json!("kes");
        let mut bad_url = checkout_event("c1");
        bad_url["recovery_url"] = json!("javascript:alert(1)");
        let mut missing_time = checkout_event("c2");
        missing_time.as_object_mut().unwrap().remove("occurred_at");
        let mut unknown_key = checkout_event("c1");
        unknown_key["colour"] = json!("red");
        let mut negative_total = checkout_event("c1");
        negative_total["total"] = json!("-100");
        let mut fractional_id = checkout_event("c1");
        fractional_id["id"] = json!(1.5);
        let mut huge_id = checkout_event("c1");
        huge_id["id"] = serde_json::from_str::<Value>("18446744073709551616").unwrap();
        let mut year_one = checkout_event("c1");
        year_one["occurred_at"] = json!("0001-01-01T00:00:00Z");
        let mut bad_locale = checkout_event("c1");
        bad_locale["locale"] = json!("zz-ZZ-xxxxxxxxxxx");
        let mut disguised_url = checkout_event("c1");
        disguised_url["recovery_url"] = json!("https://shop.example@evil.example/x");
        let mut long_title = checkout_event("c1");
        long_title["items"][0]["title"] = json!("x".repeat(1001));
        let cases = [
            (negative_total, "total"),
            (fractional_id, "id"),
            (huge_id, "id"),
            (year_one, "occurred_at"),
            (bad_locale, "locale"),
            (disguised_url, "recovery_url"),
            (long_title, "items[0].title"),
            (missing_id, "id"),
            (bad_quantity, "items[0].quantity"),
            (lower_currency, "currency"),
            (bad_url, "recovery_url"),
            (json!({ "type": "cart.exploded", "id": "x" }), "type"),
            (
                json!([checkout_event("c1"), missing_time]),
                "[1].occurred_at",
            ),
            (unknown_key, "colour"),
        ];
        for (body, field) in cases {
            let response = app.post_events(&body).await;
            assert_eq!(response.status(), 400, "{name}: {field}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "invalid_request", "{name}: {field}");
            assert_eq!(error["error"]["field"], field, "{name}: {error}");
        }
        let malformed = app
            .http
            .post(format!("{}/v1/events", app.base))
            .bearer_auth(&app.api_key)
            .body("{\"type\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), 400, "{name}");
        let unauthenticated = app
            .http
            .post(format!("{}/v1/events", app.base))
            .json(&checkout_event("c1"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401, "{name}");
        let wrong_key = app
            .http
            .post(format!("{}/v1/events", app.base))
            .bearer_auth("nk_wrong")
            .json(&checkout_event("c1"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_key.status(), 401, "{name}");
        assert_eq!(app.stored_events().await, 0, "{name}: nothing stored");
        assert_eq!(app.figures().await.checkouts, 0, "{name}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_and_store_nothing() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let mut checkout = shopify_checkout("tok-big", "2026-01-15T10:05:00+03:00");
        checkout["note"] = json!("x".repeat(10 * 1024 * 1024 + 10));
        let response = app.shopify("checkouts/create", &checkout, "wh-big").await;
        assert_eq!(response.status(), 413, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{name}");
        assert_eq!(app.stored_events().await, 0, "{name}");
    }
}

#[tokio::test]
async fn api_checkout_then_order_by_api() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let response = app.post_events(&checkout_event("api-1")).await;
        assert_eq!(response.status(), 200, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["applied"], 1, "{name}");
        app.advance(Duration::from_secs(3)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}");
        let order = json!({
            "type": "order.created",
            "id": "o-1",
            "occurred_at": "2026-01-15T07:10:00Z",
            "checkout_id": "api-1",
            "total": "4850.00",
            "currency": "KES"
        });
        app.clock.set("2026-01-15T07:10:00Z".parse().unwrap());
        assert_eq!(app.post_events(&order).await.status(), 200, "{name}");
        app.advance(Duration::from_secs(3600)).await;
        assert_eq!(
            app.sent().await.len(),
            1,
            "{name}: the second step is cancelled"
        );
        let figures = app.figures().await;
        assert_eq!(figures.recovered_orders, 1, "{name}");
        assert_eq!(figures.recovered_revenue, "4850", "{name}");
        assert_eq!(figures.cancelled_by_order, 1, "{name}");
    }
}

#[tokio::test]
async fn messages_list_filters_and_pages() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        for index in 0..3 {
            let mut event = checkout_event(&format!("p-{index}"));
            event["contact"]["phone"] = json!(format!("0700 000 01{index}"));
            assert_eq!(app.post_events(&event).await.status(), 200);
        }
        app.advance(Duration::from_secs(3)).await;
        let page = app.messages("limit=2").await;
        let first: Vec<i64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        assert_eq!(first.len(), 2, "{name}");
        assert!(first[0] > first[1], "{name}: newest first");
        let cursor = page["next_cursor"].as_str().unwrap().to_string();
        let rest = app.messages(&format!("limit=2&cursor={cursor}")).await;
        assert_eq!(rest["messages"].as_array().unwrap().len(), 1, "{name}");
        assert!(rest["next_cursor"].is_null(), "{name}");
        let one = app.messages("contact=0700%20000%20011").await;
        assert_eq!(one["messages"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(one["messages"][0]["contact"], "+254700000011", "{name}");
        assert_eq!(
            app.messages("flow=cart-recovery").await["messages"]
                .as_array()
                .unwrap()
                .len(),
            3,
            "{name}"
        );
        assert_eq!(
            app.messages("status=failed").await["messages"]
                .as_array()
                .unwrap()
                .len(),
            0,
            "{name}"
        );
        let bad = app
            .http
            .get(format!("{}/v1/messages?limit=0", app.base))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{name}");
    }
}

#[tokio::test]
async fn openapi_document_is_served() {
    let app = TestApp::spawn(nudge_testkit::TestDb::sqlite()).await;
    let response = app
        .http
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/v1/events",
        "/v1/messages",
        "/r/{token}",
        "/webhooks/shopify",
        "/v1/conversations/{id}/messages",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
    let checkout = &document["components"]["schemas"]["CheckoutUpdated"]["properties"];
    for field in [
        "id",
        "occurred_at",
        "contact",
        "items",
        "total",
        "currency",
        "recovery_url",
    ] {
        assert!(
            checkout.get(field).is_some(),
            "checkout field {field} is documented"
        );
    }
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn(nudge_testkit::TestDb::sqlite()).await;
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let request_id = ready.headers().get("x-request-id").cloned();
    assert!(request_id.is_some(), "every response carries a request id");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

#[tokio::test]
async fn unknown_topic_is_acknowledged_and_ignored() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let body = shopify_checkout("tok-x", "2026-01-15T10:05:00+03:00");
        for _ in 0..2 {
            let response = app.shopify("carts/create", &body, "wh-cart").await;
            assert_eq!(response.status(), 200, "{name}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["result"], "ignored", "{name}");
        }
        assert_eq!(app.stored_events().await, 0, "{name}");
        let ping = app
            .http
            .post(format!("{}/webhooks/woocommerce", app.base))
            .body("webhook_id=12")
            .send()
            .await
            .unwrap();
        assert_eq!(ping.status(), 200, "{name}: WooCommerce's creation ping");
        let unsigned = app
            .http
            .post(format!("{}/webhooks/woocommerce", app.base))
            .json(&json!({ "id": 1, "status": "processing" }))
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401, "{name}: anything else unsigned");
    }
}

#[tokio::test]
async fn every_error_is_json_naming_the_field() {
    let app = TestApp::spawn(nudge_testkit::TestDb::sqlite()).await;
    let get = |path: &str| {
        app.http
            .get(format!("{}{path}", app.base))
            .header("Authorization", format!("bearer {}", app.api_key))
            .send()
    };
    let cases = [
        ("/v1/conversations/abc", 400, Some("id")),
        ("/v1/conversations?limit=abc", 400, Some("limit")),
        ("/v1/holds?status=lost", 400, Some("status")),
        ("/v1/messages?cursor=x", 400, Some("cursor")),
        ("/v1/nowhere", 404, None),
    ];
    for (path, status, field) in cases {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{path}: {body}");
        }
    }
    let wrong_method = app
        .http
        .delete(format!("{}/v1/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn head_request_is_not_a_click() {
    let app = TestApp::spawn(nudge_testkit::TestDb::sqlite()).await;
    assert_eq!(
        app.post_events(&checkout_event("head-1")).await.status(),
        200
    );
    app.advance(Duration::from_secs(3)).await;
    let link = app.sent().await[0]["link"].as_str().unwrap().to_string();
    let head = app.http.head(&link).send().await.unwrap();
    assert_eq!(head.status(), 302);
    assert_eq!(app.count_clicks().await, 0, "a preview is not a click");
    app.http.get(&link).send().await.unwrap();
    assert_eq!(app.count_clicks().await, 1);
}
