//! The WhatsApp adapter against the fake Graph API.

use std::time::Duration;

use nudge_channels::whatsapp::{
    ApprovedTemplate, ButtonKind, MAX_TEXT_CHARS, WhatsappChannel, WhatsappConfig, split_text,
};
use nudge_core::channel::{Channel, SendError, TemplateMessage};
use nudge_testkit::{FakeGraph, HangUpServer, shared_json};
use secrecy::SecretString;
use serde_json::json;

use crate::common::{closed_port_url, field_failure, whatsapp_template, whatsapp_text};

const PHONE_NUMBER_ID: &str = "200000000000001";
const TOKEN: &str = "test-token";

fn config(base_url: &str, templates: Vec<ApprovedTemplate>) -> WhatsappConfig {
    WhatsappConfig {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(5),
        templates,
        ..WhatsappConfig::new(PHONE_NUMBER_ID, SecretString::from(TOKEN))
    }
}

fn channel(base_url: &str, templates: Vec<ApprovedTemplate>) -> WhatsappChannel {
    WhatsappChannel::new(config(base_url, templates)).unwrap()
}

/// Returns the approved `cart_reminder_v2`: two body parameters and one dynamic URL button.
fn cart_reminder_v2() -> ApprovedTemplate {
    ApprovedTemplate {
        name: "cart_reminder_v2".to_owned(),
        language: "en".to_owned(),
        body: "Hi {{1}}, your {{2}} is still waiting.".to_owned(),
        header_params: 0,
        buttons: vec![ButtonKind::Url { dynamic: true }],
    }
}

#[tokio::test]
async fn text_send_matches_documented_request() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let mut expected = shared_json("providers/payloads/whatsapp_send_text_request.json");
    let message = whatsapp_text(expected["text"]["body"].as_str().unwrap());
    expected["biz_opaque_callback_data"] = json!(message.idempotency_key);

    let receipt = channel(&fake.base_url(), vec![])
        .send(&message)
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/v21.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(request.header("authorization"), Some("Bearer test-token"));
    assert_eq!(request.body, expected);
    assert_eq!(receipt.provider_message_id.as_deref(), Some("wamid.FAKE1"));
    assert_eq!(receipt.status.as_deref(), Some("accepted"));
}

#[tokio::test]
async fn template_send_matches_documented_request() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let expected = shared_json("providers/payloads/whatsapp_send_template_request.json");
    let body = ["Amina", "Test Kettle 1.7L", "BACK5-TEST01"];
    let mut message = whatsapp_template("cart_reminder_v1", &body, &["abc123"]);
    message.idempotency_key = expected["biz_opaque_callback_data"]
        .as_str()
        .unwrap()
        .to_owned();

    channel(&fake.base_url(), vec![])
        .send(&message)
        .await
        .unwrap();

    assert_eq!(fake.requests()[0].body, expected);
}

#[tokio::test]
async fn template_components_follow_approved_template() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let case = field_failure("B19");
    let context = &case["input"]["context"];
    let first_name = context["first_name"].as_str().unwrap();
    let product_name = context["product_name"].as_str().unwrap();
    let link_token = context["link_token"].as_str().unwrap();
    let message = whatsapp_template(
        "cart_reminder_v2",
        &[first_name, product_name],
        &[link_token],
    );

    let channel = channel(&fake.base_url(), vec![cart_reminder_v2()]);
    let receipt = channel.send(&message).await.unwrap();

    let body = &fake.requests()[0].body;
    assert_eq!(
        body["template"]["components"],
        case["expected"]["components"]
    );
    assert_eq!(body["template"]["name"], "cart_reminder_v2");
    assert_eq!(
        body["template"]["language"],
        json!({"code": "en", "policy": "deterministic"})
    );
    assert_eq!(
        body["biz_opaque_callback_data"],
        json!(message.idempotency_key)
    );
    assert_eq!(body["to"], "254700000001");
    assert!(receipt.provider_message_id.is_some());
}

#[tokio::test]
async fn parameter_count_mismatch_sends_nothing() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let channel = channel(&fake.base_url(), vec![cart_reminder_v2()]);
    // One integration put the button suffix in the body, and another sent every alias spelling.
    let suffix_in_body = whatsapp_template(
        "cart_reminder_v2",
        &["Amina", "Jiko Classic", "Ab3xQ9"],
        &[],
    );
    let aliases = ["Amina", "Amina", "Amina", "Jiko Classic", "Ab3xQ9"];
    let alias_spellings = whatsapp_template("cart_reminder_v2", &aliases, &["Ab3xQ9"]);

    for message in [suffix_in_body, alias_spellings] {
        let error = channel.send(&message).await.unwrap_err();
        assert!(
            matches!(&error, SendError::Invalid { code, .. } if code == "body_parameter_count"),
            "{error:?}"
        );
    }
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn blank_parameter_sends_nothing() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let channel = channel(&fake.base_url(), vec![cart_reminder_v2()]);
    let cases = [
        whatsapp_template("cart_reminder_v2", &["", "Jiko Classic"], &["Ab3xQ9"]),
        whatsapp_template("cart_reminder_v2", &["   ", "Jiko Classic"], &["Ab3xQ9"]),
        whatsapp_template("cart_reminder_v2", &["Amina", ""], &["Ab3xQ9"]),
    ];

    for message in cases {
        let error = channel.send(&message).await.unwrap_err();
        assert!(
            matches!(&error, SendError::Invalid { code, .. } if code == "empty_parameter"),
            "{error:?}"
        );
    }
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn unapproved_template_sends_nothing() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let channel = channel(&fake.base_url(), vec![cart_reminder_v2()]);
    let message = whatsapp_template("cart_reminder_v9", &["Amina"], &[]);

    let error = channel.send(&message).await.unwrap_err();

    assert!(
        error
            .to_string()
            .contains("not in the approved template list"),
        "{error}"
    );
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn overlong_text_is_invalid_and_splits_in_two() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let channel = channel(&fake.base_url(), vec![]);
    let description = "Jiko Classic charcoal stove, ceramic lined. ".repeat(200);
    let body: String = description.chars().take(5000).collect();
    assert_eq!(body.chars().count(), 5000);

    let error = channel.send(&whatsapp_text(&body)).await.unwrap_err();
    assert!(
        matches!(&error, SendError::Invalid { code, .. } if code == "text_too_long"),
        "{error:?}"
    );
    assert_eq!(fake.count(), 0);

    let parts = split_text(&body, MAX_TEXT_CHARS);
    assert_eq!(parts.len(), 2);
    for part in &parts {
        assert!(part.chars().count() <= MAX_TEXT_CHARS);
        channel.send(&whatsapp_text(part)).await.unwrap();
    }
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn overlong_template_body_sends_nothing() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let approved = ApprovedTemplate {
        name: "cart_details_v1".to_owned(),
        language: "en".to_owned(),
        body: "Hi {{1}}, here is what you left: {{2}}".to_owned(),
        header_params: 1,
        buttons: vec![ButtonKind::Url { dynamic: true }],
    };
    let fixed = "Hi , here is what you left: ".chars().count();
    let details = "x".repeat(1100 - fixed - "Amina".len());
    let message = whatsapp_template("cart_details_v1", &["Amina", &details], &["Ab3xQ9"]);
    let mut message = message;
    let template: &mut TemplateMessage = message.template.as_mut().unwrap();
    template.header = vec!["Duka Bora".to_owned()];

    let error = channel(&fake.base_url(), vec![approved])
        .send(&message)
        .await
        .unwrap_err();

    let SendError::Invalid { code, message } = &error else {
        panic!("expected Invalid, got {error:?}");
    };
    assert_eq!(code, "template_body_too_long");
    assert!(message.contains("1100 characters"), "{message}");
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn closed_window_is_permanent() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    fake.fail_next_with_code(1, 400, 131047);

    let error = channel(&fake.base_url(), vec![])
        .send(&whatsapp_text("Habari"))
        .await
        .unwrap_err();

    let SendError::Permanent {
        code, opted_out, ..
    } = &error
    else {
        panic!("expected Permanent, got {error:?}");
    };
    assert_eq!(code, "131047");
    assert!(!opted_out);
}

#[tokio::test]
async fn marketing_stop_is_opt_out() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    fake.fail_next_with_code(1, 400, 131050);

    let message = whatsapp_template("cart_reminder_v2", &["Amina", "Jiko Classic"], &["Ab3xQ9"]);
    let error = channel(&fake.base_url(), vec![])
        .send(&message)
        .await
        .unwrap_err();

    let SendError::Permanent {
        code, opted_out, ..
    } = &error
    else {
        panic!("expected Permanent, got {error:?}");
    };
    assert_eq!(code, "131050");
    assert!(opted_out);
}

#[tokio::test]
async fn throughput_limit_is_retryable() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    fake.fail_next_with_code(1, 429, 130429);

    let error = channel(&fake.base_url(), vec![])
        .send(&whatsapp_text("Habari"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, SendError::Retryable { code, .. } if code == "130429"),
        "{error:?}"
    );
}

#[tokio::test]
async fn wrong_token_is_retryable_after_five_minutes() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    let mut config = config(&fake.base_url(), vec![]);
    config.access_token = SecretString::from("expired-token");

    let error = WhatsappChannel::new(config)
        .unwrap()
        .send(&whatsapp_text("Habari"))
        .await
        .unwrap_err();

    let SendError::Retryable {
        code,
        retry_after_secs,
        ..
    } = &error
    else {
        panic!("expected Retryable, got {error:?}");
    };
    assert_eq!(code, "190");
    assert_eq!(*retry_after_secs, Some(300));
}

#[tokio::test]
async fn silent_server_makes_outcome_unknown() {
    let fake = FakeGraph::start(PHONE_NUMBER_ID, TOKEN).await;
    fake.set_delay(Duration::from_secs(3));
    let mut config = config(&fake.base_url(), vec![]);
    config.timeout = Duration::from_millis(400);

    let error = WhatsappChannel::new(config)
        .unwrap()
        .send(&whatsapp_text("Habari"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, SendError::Unknown { code, .. } if code == "timeout"),
        "{error:?}"
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn closed_port_is_retryable() {
    let channel = channel(&closed_port_url("/v21.0"), vec![]);

    let error = channel.send(&whatsapp_text("Habari")).await.unwrap_err();

    assert!(
        matches!(&error, SendError::Retryable { code, .. } if code == "connect_failed"),
        "{error:?}"
    );
}

#[tokio::test]
async fn dropped_connection_makes_outcome_unknown() {
    let server = HangUpServer::start().await;

    let error = channel(&server.base_url("/v21.0"), vec![])
        .send(&whatsapp_text("Habari"))
        .await
        .unwrap_err();

    assert!(matches!(&error, SendError::Unknown { .. }), "{error:?}");
    assert_eq!(server.count(), 1, "the request reached the server");
}
