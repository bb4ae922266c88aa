//! The fakes reject what the real providers reject, over real HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nudge_testkit::{FakeGraph, FakeSmsLeopard, FakeSmsLeopardOptions, shared_json};
use serde_json::{Value, json};

const KEY: &str = "key";
const SECRET: &str = "secret";

async fn post_sms(fake: &FakeSmsLeopard, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/sms/send", fake.base_url()))
        .basic_auth(KEY, Some(SECRET))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn post_graph(fake: &FakeGraph, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/200000000000001/messages", fake.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn simple_sms(source: &str) -> Value {
    json!({"source": source, "message": "Hi", "destination": [{"number": "+254700000001"}]})
}

#[tokio::test]
async fn sms_fake_accepts_documented_request() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let request = shared_json("providers/payloads/smsleopard_send_request.json");

    let (status, body) = post_sms(&fake, &request).await;

    assert_eq!(status, 201);
    assert_eq!(body["success"], true);
    assert_eq!(body["recipients"][0]["number"], "+254700000001");
    assert_eq!(body["recipients"][0]["status"], "queued");
    let id = body["recipients"][0]["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(fake.count(), 1);
    assert_eq!(fake.requests()[0].body, request);
}

#[tokio::test]
async fn sms_fake_accepts_documented_multi_request() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let request = shared_json("providers/payloads/smsleopard_send_multi_request.json");

    let (status, body) = post_sms(&fake, &request).await;

    assert_eq!(status, 201);
    assert_eq!(body["recipients"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sms_fake_rejects_malformed_requests() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let valid = simple_sms("DUKABORA");
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let missing_source = "Source (sender id) is not defined";
    let cases = [
        ("missing source", without("source"), missing_source),
        ("empty source", with("source", json!("")), missing_source),
        (
            "empty message",
            with("message", json!("")),
            "Message must be a non-empty string",
        ),
        (
            "no destination",
            without("destination"),
            "Destination must be a list",
        ),
        (
            "empty destination",
            with("destination", json!([])),
            "Destination must not be empty",
        ),
        (
            "number without plus",
            with("destination", json!([{"number": "254700000001"}])),
            "Invalid phone number",
        ),
        (
            "short number",
            with("destination", json!([{"number": "+2547"}])),
            "Invalid phone number",
        ),
        (
            "status url alone",
            with("status_url", json!("https://example.com/s")),
            "status_secret is required",
        ),
        (
            "unknown key",
            with("sender", json!("DUKABORA")),
            "Unknown field sender",
        ),
    ];
    for (name, body, expected) in cases {
        let (status, response) = post_sms(&fake, &body).await;
        assert_eq!(status, 400, "case {name}");
        assert_eq!(response["success"], false, "case {name}");
        let message = response["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "case {name}: {message}");
    }
}

#[tokio::test]
async fn sms_fake_rejects_form_bodies() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let response = reqwest::Client::new()
        .post(format!("{}/sms/send", fake.base_url()))
        .basic_auth(KEY, Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("source=DUKABORA&message=Hi&destination=%2B254700000001")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 400);
    let raw = json!("source=DUKABORA&message=Hi&destination=%2B254700000001");
    assert_eq!(fake.requests()[0].body, raw);
}

#[tokio::test]
async fn sms_fake_rejects_wrong_credentials() {
    let fake = FakeSmsLeopard::start(KEY, "other-secret").await;
    let request = shared_json("providers/payloads/smsleopard_send_request.json");

    let (status, body) = post_sms(&fake, &request).await;

    assert_eq!(status, 401);
    assert_eq!(body["success"], false);
    assert_eq!(body["recipients"], Value::Null);
}

#[tokio::test]
async fn sms_fake_rejects_unassigned_sender() {
    let fake = FakeSmsLeopard::start_with(FakeSmsLeopardOptions {
        api_key: KEY.to_owned(),
        api_secret: SECRET.to_owned(),
        sender_ids: Some(vec!["DUKABORA".to_owned()]),
    })
    .await;

    let (status, body) = post_sms(&fake, &simple_sms("TESTSHOP")).await;

    let expected = shared_json("providers/payloads/smsleopard_error_invalid_sender_404.json");
    assert_eq!(status, 404);
    assert_eq!(body, expected);
}

#[tokio::test]
async fn sms_fake_matches_sender_ids_without_case() {
    let fake = FakeSmsLeopard::start_with(FakeSmsLeopardOptions {
        api_key: KEY.to_owned(),
        api_secret: SECRET.to_owned(),
        sender_ids: Some(vec!["SMSLeopard".to_owned()]),
    })
    .await;

    let (status, _) = post_sms(&fake, &simple_sms("smsleopard")).await;

    assert_eq!(status, 201);
}

#[tokio::test]
async fn sms_fake_reports_only_issued_ids() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let client = reqwest::Client::new();
    let report = |id: &str| {
        client
            .get(format!("{}/delivery_reports/{id}", fake.base_url()))
            .basic_auth(KEY, Some(SECRET))
            .send()
    };

    let unknown = report("00000000-0000-4000-8000-000000000001")
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let (_, sent) = post_sms(&fake, &simple_sms("DUKABORA")).await;
    let id = sent["recipients"][0]["id"].as_str().unwrap();
    let known = report(id).await.unwrap();
    assert_eq!(known.status().as_u16(), 201);
    let body: Value = known.json().await.unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["status"], "DELIVRD");
}

#[tokio::test]
async fn queued_failures_precede_normal_responses() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    fake.fail_next(
        2,
        503,
        json!({"success": false, "message": "down", "recipients": null}),
    );
    let request = simple_sms("DUKABORA");

    let statuses = [
        post_sms(&fake, &request).await.0,
        post_sms(&fake, &request).await.0,
        post_sms(&fake, &request).await.0,
    ];

    assert_eq!(statuses, [503, 503, 201]);
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn delay_holds_the_response() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    fake.set_delay(Duration::from_millis(200));

    let started = std::time::Instant::now();
    let (status, _) = post_sms(&fake, &simple_sms("DUKABORA")).await;

    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn recorded_headers_use_lower_case_names() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;

    post_sms(&fake, &simple_sms("DUKABORA")).await;

    let request = &fake.requests()[0];
    assert_eq!(
        request.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/sms/send");
}

#[tokio::test]
async fn graph_fake_accepts_documented_requests() {
    let fake = FakeGraph::start("200000000000001", "token").await;
    for file in [
        "whatsapp_send_text_request.json",
        "whatsapp_send_template_request.json",
    ] {
        let request = shared_json(&format!("providers/payloads/{file}"));

        let (status, body) = post_graph(&fake, "token", &request).await;

        assert_eq!(status, 200, "{file}");
        assert_eq!(body["contacts"][0]["wa_id"], "254700000001", "{file}");
        assert_eq!(body["messages"][0]["message_status"], "accepted", "{file}");
    }
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn graph_fake_numbers_wamids_in_order() {
    let fake = FakeGraph::start("200000000000001", "token").await;
    let request = shared_json("providers/payloads/whatsapp_send_text_request.json");

    let first = post_graph(&fake, "token", &request).await.1;
    let second = post_graph(&fake, "token", &request).await.1;

    assert_eq!(first["messages"][0]["id"], "wamid.FAKE1");
    assert_eq!(second["messages"][0]["id"], "wamid.FAKE2");
}

#[tokio::test]
async fn graph_fake_rejects_wrong_token_with_code_190() {
    let fake = FakeGraph::start("200000000000001", "token").await;
    let request = shared_json("providers/payloads/whatsapp_send_text_request.json");

    let (status, body) = post_graph(&fake, "other", &request).await;

    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 190);
}

#[tokio::test]
async fn graph_fake_rejects_other_phone_number_id() {
    let fake = FakeGraph::start("200000000000002", "token").await;
    let request = shared_json("providers/payloads/whatsapp_send_text_request.json");

    let (status, body) = post_graph(&fake, "token", &request).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);
}

#[tokio::test]
async fn graph_fake_rejects_malformed_requests() {
    let fake = FakeGraph::start("200000000000001", "token").await;
    let text = shared_json("providers/payloads/whatsapp_send_text_request.json");
    let template = shared_json("providers/payloads/whatsapp_send_template_request.json");
    let change = |base: &Value, pointer: &str, value: Value| {
        let mut body = base.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let first_text = "/template/components/0/parameters/0/text";
    let cases = [
        (
            "wrong product",
            change(&text, "/messaging_product", json!("sms")),
            100,
        ),
        (
            "plus in number",
            change(&text, "/to", json!("+254700000001")),
            100,
        ),
        ("empty text", change(&text, "/text/body", json!("")), 100),
        (
            "text too long",
            change(&text, "/text/body", json!("x".repeat(4097))),
            100,
        ),
        ("image type", change(&text, "/type", json!("image")), 131051),
        (
            "blank parameter",
            change(&template, first_text, json!(" ")),
            100,
        ),
        (
            "no language",
            change(&template, "/template/language/code", json!("")),
            100,
        ),
        (
            "numeric index",
            change(&template, "/template/components/1/index", json!(0)),
            100,
        ),
    ];
    for (name, body, code) in cases {
        let (status, response) = post_graph(&fake, "token", &body).await;
        assert_eq!(status, 400, "case {name}");
        assert_eq!(response["error"]["code"], code, "case {name}");
    }
}

#[tokio::test]
async fn graph_fake_injects_error_codes() {
    let fake = FakeGraph::start("200000000000001", "token").await;
    fake.fail_next_with_code(1, 400, 131047);
    let request = shared_json("providers/payloads/whatsapp_send_text_request.json");

    let (status, body) = post_graph(&fake, "token", &request).await;

    let documented = shared_json("providers/payloads/whatsapp_error_response.json");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 131047);
    let keys = |value: &Value| {
        value["error"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&body), keys(&documented));
}
