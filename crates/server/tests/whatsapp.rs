//! Abandoned WhatsApp conversations end to end through HTTP, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use nudge_core::store::Store;
use nudge_core::time::{Clock, Timestamp};
use nudge_server::workers::{dispatcher, scheduler};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;

const CHAT_FLOW: &str = r#"
name = "chat-followup"
trigger = "conversation_idle"
idle = "2s"
require_quote = true
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "whatsapp"
text = "Hi [Name], just checking in about the [Product Name] we discussed. Any more questions?"
template = { name = "chat_followup", language = "en", params = ["[First Name]", "[Product Name]"] }
"#;

const TWO_STEP_FLOW: &str = r#"
name = "chat-two-steps"
trigger = "conversation_idle"
idle = "2s"
require_quote = true
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "whatsapp"
text = "Hi [Name], still thinking about the [Product Name]?"
template = { name = "chat_followup", language = "en", params = ["[First Name]", "[Product Name]"] }

[[steps]]
wait = "1h"
channel = "whatsapp"
text = "Last note about the [Product Name], [Name]."
template = { name = "chat_followup", language = "en", params = ["[First Name]", "[Product Name]"] }
"#;

const HOLD_FLOW: &str = r#"
name = "chat-hold"
trigger = "conversation_idle"
idle = "2s"
require_quote = true
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "whatsapp"
text = "Only 2 left of the [Product Name]. Reply YES and we'll hold one for you."
hold_on_yes = true
"#;

fn options(flow: &str) -> Options {
    Options {
        flows: vec![flow.to_string()],
        ..Options::default()
    }
}

/// A signed WhatsApp webhook with one inbound text from +254700000001.
async fn inbound(app: &TestApp, wamid: &str, text: &str, at: Timestamp) -> reqwest::Response {
    let mut body = shared_json("providers/payloads/whatsapp_webhook_inbound_text.json");
    let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
    message["id"] = json!(wamid);
    message["text"]["body"] = json!(text);
    message["timestamp"] = json!((at.as_millisecond() / 1000).to_string());
    post_webhook(app, &body).await
}

async fn post_webhook(app: &TestApp, body: &Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
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

async fn agent_reply(app: &TestApp, text: &str, at: Timestamp) {
    let event = json!({
        "type": "message.outbound",
        "occurred_at": at.to_string(),
        "contact": { "phone": "+254700000001" },
        "channel": "whatsapp",
        "text": text,
        "author": "agent"
    });
    let response = app.post_events(&event).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

fn seconds_ago(app: &TestApp, seconds: i64) -> Timestamp {
    Timestamp::from_millisecond(app.clock.now().as_millisecond() - seconds * 1000).unwrap()
}

async fn conversation(app: &TestApp) -> Value {
    let list: Value = app
        .http
        .get(format!("{}/v1/conversations", app.base))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["conversations"][0]["id"].as_i64().unwrap();
    app.http
        .get(format!("{}/v1/conversations/{id}", app.base))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn quote_inside_window_gets_text_naming_product() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        let now = app.clock.now();
        assert_eq!(
            inbound(
                &app,
                "wamid.IN1",
                "How much is the blue kitenge dress?",
                now
            )
            .await
            .status(),
            200
        );
        agent_reply(&app, "It's KES 2,500", now).await;

        app.advance(Duration::from_secs(3)).await;
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        assert_eq!(sent[0]["channel"], "whatsapp", "{name}");
        assert_eq!(sent[0]["kind"], "text", "{name}");
        assert_eq!(
            sent[0]["body"],
            "Hi Amina, just checking in about the blue kitenge dress we discussed. Any more questions?",
            "{name}"
        );
        let detail = conversation(&app).await;
        assert_eq!(detail["quote"]["amount"], "2500", "{name}: {detail}");
        assert_eq!(detail["quote"]["currency"], "KES", "{name}");
        assert_eq!(detail["quote"]["product"], "blue kitenge dress", "{name}");
        let transcript = detail["transcript"].as_array().unwrap();
        let authors: Vec<&str> = transcript
            .iter()
            .map(|entry| entry["author"].as_str().unwrap())
            .collect();
        assert_eq!(authors, ["customer", "agent", "automation"], "{name}");
    }
}

#[tokio::test]
async fn quote_outside_window_gets_template_with_parameters() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        let two_days_ago = seconds_ago(&app, 2 * 86_400);
        assert_eq!(
            inbound(
                &app,
                "wamid.IN2",
                "How much is the blue kitenge dress?",
                two_days_ago
            )
            .await
            .status(),
            200
        );
        agent_reply(&app, "It's KES 2,500", app.clock.now()).await;
        app.advance(Duration::from_secs(3)).await;
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        assert_eq!(sent[0]["kind"], "template", "{name}");
        assert_eq!(sent[0]["template"]["name"], "chat_followup", "{name}");
        assert_eq!(
            sent[0]["template"]["body"],
            json!(["Amina", "blue kitenge dress"]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn customer_reply_before_idle_sends_nothing() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        let now = app.clock.now();
        inbound(
            &app,
            "wamid.IN3",
            "How much is the blue kitenge dress?",
            now,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", now).await;
        app.advance(Duration::from_secs(1)).await;
        inbound(&app, "wamid.IN4", "Do you have it in red?", app.clock.now()).await;
        app.advance(Duration::from_secs(3600)).await;
        assert!(app.sent().await.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn agent_message_after_first_step_pauses_until_resumed() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(TWO_STEP_FLOW)).await;
        let name = app.db;
        let now = app.clock.now();
        inbound(
            &app,
            "wamid.IN5",
            "How much is the blue kitenge dress?",
            now,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", now).await;
        app.advance(Duration::from_secs(3)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}: first step");

        // An agent steps in after the first nudge.
        app.clock.advance(Duration::from_secs(60));
        agent_reply(
            &app,
            "Hi Amina, I can offer free delivery today.",
            app.clock.now(),
        )
        .await;
        app.advance(Duration::from_secs(2 * 3600)).await;
        assert_eq!(
            app.sent().await.len(),
            1,
            "{name}: the second step is not sent"
        );
        let detail = conversation(&app).await;
        assert_eq!(detail["paused"], true, "{name}");
        assert_eq!(detail["runs"][0]["exit_reason"], "agent_takeover", "{name}");

        // Paused: a new quote does not start automation again.
        agent_reply(&app, "The red one is KES 2,700", app.clock.now()).await;
        app.advance(Duration::from_secs(3600)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}: still paused");

        let id = detail["id"].as_i64().unwrap();
        let resumed = app
            .http
            .post(format!("{}/v1/conversations/{id}/resume", app.base))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resumed.status(), 200, "{name}");
        assert_eq!(conversation(&app).await["paused"], false, "{name}");
    }
}

#[tokio::test]
async fn handshake_and_signature_are_checked() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        let url = |token: &str| {
            format!(
                "{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
                app.base
            )
        };
        let good = app
            .http
            .get(url(WHATSAPP_VERIFY_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(good.status(), 200, "{name}");
        assert_eq!(good.text().await.unwrap(), "1158201444", "{name}");
        let wrong = app.http.get(url("not-the-token")).send().await.unwrap();
        assert_eq!(wrong.status(), 403, "{name}");

        let body = serde_json::to_vec(&shared_json(
            "providers/payloads/whatsapp_webhook_inbound_text.json",
        ))
        .unwrap();
        let forged = app
            .http
            .post(format!("{}/webhooks/whatsapp", app.base))
            .header(
                "X-Hub-Signature-256",
                nudge_server::webhooks::whatsapp::sign("wrong-secret", &body),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401, "{name}");
        assert_eq!(app.stored_events().await, 0, "{name}");

        let payload = shared_json("providers/payloads/whatsapp_webhook_inbound_text.json");
        let first: Value = post_webhook(&app, &payload).await.json().await.unwrap();
        let again: Value = post_webhook(&app, &payload).await.json().await.unwrap();
        assert_eq!(first["messages"], 1, "{name}");
        assert_eq!(again["messages"], 0, "{name}");
        assert_eq!(again["duplicates"], 1, "{name}");
        let detail = conversation(&app).await;
        assert_eq!(
            detail["transcript"].as_array().unwrap().len(),
            1,
            "{name}: the wamid is stored once"
        );
        assert_eq!(detail["contact"], "+254700000001", "{name}");
        assert_eq!(
            detail["transcript"][0]["body"], "How much is the Test Kettle 1.7L?",
            "{name}"
        );
    }
}

#[tokio::test]
async fn failed_status_131047_marks_message_failed_not_sent() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        let now = app.clock.now();
        inbound(
            &app,
            "wamid.IN6",
            "How much is the blue kitenge dress?",
            now,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", now).await;
        app.advance(Duration::from_secs(3)).await;
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}");
        let wamid = sent[0]["provider_message_id"].as_str().unwrap().to_string();
        assert_eq!(app.figures().await.messages, 1, "{name}");

        let mut status =
            shared_json("providers/payloads/whatsapp_webhook_status_failed_131047.json");
        status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = json!(wamid);
        let answer: Value = post_webhook(&app, &status).await.json().await.unwrap();
        assert_eq!(answer["statuses"], 1, "{name}");
        // A repeat of the same report counts once.
        let answer: Value = post_webhook(&app, &status).await.json().await.unwrap();
        assert_eq!(answer["statuses"], 0, "{name}");

        let failed = app.messages("status=failed").await;
        assert_eq!(failed["messages"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(
            failed["messages"][0]["reason"], "131047: Re-engagement message",
            "{name}"
        );
        assert!(app.sent().await.is_empty(), "{name}");
        assert_eq!(
            app.figures().await.messages,
            0,
            "{name}: a failed message is not counted as sent"
        );
    }
}

#[tokio::test]
async fn status_before_send_record_is_not_lost() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        // The sandbox names its messages sandbox-<id>; report the first one delivered before
        // it is even queued.
        let mut status = shared_json("providers/payloads/whatsapp_webhook_status_delivered.json");
        status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = json!("sandbox-1");
        let answer: Value = post_webhook(&app, &status).await.json().await.unwrap();
        assert_eq!(answer["statuses"], 1, "{name}");
        let now = app.clock.now();
        inbound(
            &app,
            "wamid.IN7",
            "How much is the blue kitenge dress?",
            now,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", now).await;
        app.advance(Duration::from_secs(3)).await;
        let delivered = app.messages("status=delivered").await;
        let messages = delivered["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{name}: {delivered}");
        assert_eq!(messages[0]["provider_message_id"], "sandbox-1", "{name}");
    }
}

#[tokio::test]
async fn window_closing_between_decision_and_send_switches_to_template() {
    // Field failure B18: the window is checked at the moment of sending.
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        // The customer wrote 23 h 49 min ago: at the decision 11 minutes of window remain,
        // one more than the safety margin.
        let last_inbound = seconds_ago(&app, 24 * 3600 - 11 * 60);
        inbound(
            &app,
            "wamid.IN8",
            "How much is the blue kitenge dress?",
            last_inbound,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", seconds_ago(&app, 2)).await;
        let fired = scheduler::fire_once(&app.app).await.unwrap();
        assert_eq!(fired.fired, 1, "{name}: idle timer");
        let fired = scheduler::fire_once(&app.app).await.unwrap();
        assert_eq!(fired.messages_queued, 1, "{name}: the step queued a text");
        // The send worker is slow: two minutes pass before it looks.
        app.clock.advance(Duration::from_secs(120));
        dispatcher::dispatch_once(&app.app, &CancellationToken::new())
            .await
            .unwrap();
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}");
        assert_eq!(
            sent[0]["kind"], "template",
            "{name}: the closed window forced the template"
        );
    }
}

#[tokio::test]
async fn yes_to_hold_question_creates_hold_request() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(HOLD_FLOW)).await;
        let name = app.db;
        let now = app.clock.now();
        inbound(&app, "wamid.IN9", "How much are the leather sandals?", now).await;
        agent_reply(&app, "They are Ksh 1,800", now).await;
        app.advance(Duration::from_secs(3)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}");
        inbound(&app, "wamid.IN10", "Yes please", app.clock.now()).await;
        let holds: Value = app
            .http
            .get(format!("{}/v1/holds?status=open", app.base))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = holds["holds"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{name}: {holds}");
        assert_eq!(list[0]["product"], "leather sandals", "{name}");
        assert_eq!(list[0]["contact"], "+254700000001", "{name}");
        let detail = conversation(&app).await;
        assert_eq!(
            detail["holds"][0]["status"], "open",
            "{name}: the agent view shows the hold"
        );
        let id = list[0]["id"].as_i64().unwrap();
        let resolved = app
            .http
            .post(format!("{}/v1/holds/{id}/resolve", app.base))
            .bearer_auth(&app.api_key)
            .json(&json!({ "resolution": "held until Friday" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resolved.status(), 200, "{name}");
        let again = app
            .http
            .post(format!("{}/v1/holds/{id}/resolve", app.base))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404, "{name}: already resolved");
    }
}

#[tokio::test]
async fn stop_reply_opts_out_and_order_ends_follow_up() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(TWO_STEP_FLOW)).await;
        let name = app.db;
        let now = app.clock.now();
        inbound(
            &app,
            "wamid.IN11",
            "How much is the blue kitenge dress?",
            now,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", now).await;
        app.advance(Duration::from_secs(3)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}");
        let order = json!({
            "type": "order.created",
            "id": "wa-order-1",
            "occurred_at": app.clock.now().to_string(),
            "contact": { "phone": "0700 000 001" },
            "total": "2500",
            "currency": "KES"
        });
        assert_eq!(app.post_events(&order).await.status(), 200, "{name}");
        app.advance(Duration::from_secs(2 * 3600)).await;
        assert_eq!(
            app.sent().await.len(),
            1,
            "{name}: the order stopped the second step"
        );
        let detail = conversation(&app).await;
        assert_eq!(
            detail["runs"][0]["exit_reason"], "order_by_same_contact",
            "{name}"
        );

        inbound(&app, "wamid.IN12", "STOP", app.clock.now()).await;
        let suppressed = app
            .store
            .list_messages(1, &Default::default())
            .await
            .unwrap();
        assert!(!suppressed.messages.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn agent_can_send_inside_window_only() {
    for db in databases().await {
        let app = TestApp::spawn_with(db, options(CHAT_FLOW)).await;
        let name = app.db;
        inbound(
            &app,
            "wamid.IN13",
            "Hello, is the shop open?",
            app.clock.now(),
        )
        .await;
        let id = conversation(&app).await["id"].as_i64().unwrap();
        let url = format!("{}/v1/conversations/{id}/messages", app.base);
        let accepted = app
            .http
            .post(&url)
            .bearer_auth(&app.api_key)
            .json(&json!({ "text": "Yes, until 6 pm." }))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 202, "{name}");
        app.run_due().await;
        let sent = app.sent().await;
        assert_eq!(sent.len(), 1, "{name}");
        assert_eq!(sent[0]["body"], "Yes, until 6 pm.", "{name}");
        assert!(
            sent[0]["run"].is_null(),
            "{name}: an agent message belongs to no run"
        );

        app.clock.advance(Duration::from_secs(25 * 3600));
        let closed = app
            .http
            .post(&url)
            .bearer_auth(&app.api_key)
            .json(&json!({ "text": "Are you still there?" }))
            .send()
            .await
            .unwrap();
        assert_eq!(closed.status(), 409, "{name}");
        let empty = app
            .http
            .post(&url)
            .bearer_auth(&app.api_key)
            .json(&json!({ "text": "   " }))
            .send()
            .await
            .unwrap();
        assert_eq!(empty.status(), 400, "{name}");
        let _ = app.store.holds(1, None).await.unwrap();
    }
}

#[tokio::test]
async fn cloud_api_gets_text_inside_and_template_outside_window() {
    use nudge_channels::{WhatsappChannel, WhatsappConfig};
    use nudge_testkit::FakeGraph;
    for db in databases().await {
        let graph = FakeGraph::start("200000000000001", "graph-token").await;
        let mut config = WhatsappConfig::new("200000000000001", "graph-token".to_string().into());
        config.base_url = graph.base_url();
        let channel: std::sync::Arc<dyn nudge_core::channel::Channel> =
            std::sync::Arc::new(WhatsappChannel::new(config).unwrap());
        let app = TestApp::spawn_with(
            db,
            Options {
                whatsapp: Some(channel),
                ..options(CHAT_FLOW)
            },
        )
        .await;
        let name = app.db;
        let now = app.clock.now();
        inbound(
            &app,
            "wamid.IN20",
            "How much is the blue kitenge dress?",
            now,
        )
        .await;
        agent_reply(&app, "It's KES 2,500", now).await;
        app.advance(Duration::from_secs(3)).await;
        let requests = graph.requests();
        assert_eq!(requests.len(), 1, "{name}");
        let body = &requests[0].body;
        assert_eq!(body["type"], "text", "{name}: {body}");
        assert_eq!(body["to"], "254700000001", "{name}");
        assert!(
            body["text"]["body"]
                .as_str()
                .unwrap()
                .contains("blue kitenge dress"),
            "{name}"
        );
        let sent = app.sent().await;
        assert_eq!(sent[0]["provider"], "whatsapp", "{name}");
        assert!(
            sent[0]["provider_message_id"]
                .as_str()
                .unwrap()
                .starts_with("wamid."),
            "{name}"
        );

        // A second conversation, whose customer wrote two days ago, gets the template.
        let mut payload = shared_json("providers/payloads/whatsapp_webhook_inbound_text.json");
        let value = &mut payload["entry"][0]["changes"][0]["value"];
        value["contacts"][0]["wa_id"] = json!("254700000002");
        value["contacts"][0]["profile"]["name"] = json!("Baraka");
        value["messages"][0]["from"] = json!("254700000002");
        value["messages"][0]["id"] = json!("wamid.IN21");
        value["messages"][0]["text"]["body"] = json!("Do you have the leather sandals?");
        value["messages"][0]["timestamp"] =
            json!(((now.as_millisecond() / 1000) - 2 * 86_400).to_string());
        post_webhook(&app, &payload).await;
        let quote = json!({
            "type": "message.outbound",
            "occurred_at": app.clock.now().to_string(),
            "contact": { "phone": "+254700000002" },
            "text": "Yes, they are Ksh 1,800",
        });
        assert_eq!(app.post_events(&quote).await.status(), 200);
        app.advance(Duration::from_secs(3)).await;
        let requests = graph.requests();
        assert_eq!(requests.len(), 2, "{name}");
        let body = &requests[1].body;
        assert_eq!(body["type"], "template", "{name}: {body}");
        assert_eq!(body["template"]["name"], "chat_followup", "{name}");
        assert_eq!(
            body["template"]["components"][0]["parameters"],
            json!([{ "type": "text", "text": "Baraka" }, { "type": "text", "text": "leather sandals" }]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn customer_reply_stops_cart_flow() {
    for db in databases().await {
        let app = TestApp::spawn(db).await;
        let name = app.db;
        let checkout = json!({
            "type": "checkout.updated",
            "id": "reply-1",
            "occurred_at": app.clock.now().to_string(),
            "contact": { "phone": "0700 000 001", "first_name": "Amina" },
            "items": [{ "title": "Test Kettle 1.7L", "quantity": 1, "price": "4850" }],
            "total": "4850",
            "currency": "KES",
            "recovery_url": "https://shop.example/cart/reply-1"
        });
        assert_eq!(app.post_events(&checkout).await.status(), 200);
        app.advance(Duration::from_secs(3)).await;
        assert_eq!(app.sent().await.len(), 1, "{name}: first step");
        // The shopper answers the SMS on WhatsApp with a question, not a STOP.
        inbound(
            &app,
            "wamid.REPLY1",
            "Will you stop selling the blue one?",
            app.clock.now(),
        )
        .await;
        app.advance(Duration::from_secs(3600)).await;
        assert_eq!(
            app.sent().await.len(),
            1,
            "{name}: the second step is not sent"
        );
        let reply = json!({
            "type": "message.inbound",
            "occurred_at": app.clock.now().to_string(),
            "channel": "sms",
            "contact": { "phone": "0700 000 001" },
            "text": "ok thanks"
        });
        assert_eq!(
            app.post_events(&reply).await.status(),
            200,
            "{name}: an SMS reply is accepted too"
        );
    }
}
