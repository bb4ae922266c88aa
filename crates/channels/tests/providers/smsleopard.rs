//! The SMSLeopard adapter against the fake SMSLeopard.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nudge_channels::smsleopard::{SmsLeopardChannel, SmsLeopardConfig};
use nudge_channels::{ConfigError, validate_sender_id};
use nudge_core::channel::{Channel, Lookup, SendError};
use nudge_testkit::{
    CannedResponse, FakeSmsLeopard, FakeSmsLeopardOptions, HangUpServer, shared_json,
};
use secrecy::SecretString;
use serde_json::json;

use crate::common::{TO, closed_port_url, field_failure, sms};

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";

fn config(base_url: &str, secret: &str) -> SmsLeopardConfig {
    SmsLeopardConfig {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(5),
        ..SmsLeopardConfig::new(KEY, SecretString::from(secret), "DUKABORA")
    }
}

fn channel(base_url: &str) -> SmsLeopardChannel {
    SmsLeopardChannel::new(config(base_url, SECRET)).unwrap()
}

#[tokio::test]
async fn send_matches_documented_request() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let mut expected = shared_json("providers/payloads/smsleopard_send_request.json");
    // The documented test sender is written `SMS_Leopard`, which the sender ID rule rejects;
    // SMSLeopard also spells it `SMSLeopard`.
    expected["source"] = json!("SMSLeopard");
    let mut config = config(&fake.base_url(), SECRET);
    config.source = "SMSLeopard".to_owned();
    config.status_url = Some(expected["status_url"].as_str().unwrap().to_owned());
    config.status_secret = Some(SecretString::from(
        expected["status_secret"].as_str().unwrap(),
    ));
    let channel = SmsLeopardChannel::new(config).unwrap();

    let receipt = channel
        .send(&sms(expected["message"].as_str().unwrap()))
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/sms/send");
    let basic = format!("Basic {}", STANDARD.encode(format!("{KEY}:{SECRET}")));
    assert_eq!(request.header("authorization"), Some(basic.as_str()));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, expected);
    assert_eq!(receipt.status.as_deref(), Some("queued"));

    // The receipt id is one the fake issued, because its delivery report endpoint finds it.
    let id = receipt.provider_message_id.unwrap();
    let report = reqwest::Client::new()
        .get(format!("{}/delivery_reports/{id}", fake.base_url()))
        .basic_auth(KEY, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status().as_u16(), 201);
    let report: serde_json::Value = report.json().await.unwrap();
    assert_eq!(report["status"], "DELIVRD");
}

#[tokio::test]
async fn send_without_status_url_omits_both_fields() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;

    channel(&fake.base_url())
        .send(&sms("Habari"))
        .await
        .unwrap();

    let body = &fake.requests()[0].body;
    let expected =
        json!({"source": "DUKABORA", "message": "Habari", "destination": [{"number": TO}]});
    assert_eq!(*body, expected);
}

#[tokio::test]
async fn wrong_secret_is_retryable_after_five_minutes() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let channel = SmsLeopardChannel::new(config(&fake.base_url(), "wrong-secret")).unwrap();

    let error = channel.send(&sms("Habari")).await.unwrap_err();

    let SendError::Retryable {
        code,
        retry_after_secs,
        ..
    } = &error
    else {
        panic!("expected Retryable, got {error:?}");
    };
    assert_eq!(code, "http_401");
    assert_eq!(*retry_after_secs, Some(300));
}

#[tokio::test]
async fn unassigned_sender_is_permanent() {
    let fake = FakeSmsLeopard::start_with(FakeSmsLeopardOptions {
        api_key: KEY.to_owned(),
        api_secret: SECRET.to_owned(),
        sender_ids: Some(vec!["SMSLeopard".to_owned()]),
    })
    .await;

    let error = channel(&fake.base_url())
        .send(&sms("Habari"))
        .await
        .unwrap_err();

    let SendError::Permanent {
        code,
        message,
        opted_out,
    } = &error
    else {
        panic!("expected Permanent, got {error:?}");
    };
    assert_eq!(code, "http_404");
    assert!(
        message.contains("Sender ID DUKABORA is not assigned"),
        "{message}"
    );
    assert!(!opted_out);
}

#[tokio::test]
async fn server_error_is_retryable() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    fake.fail_next(
        1,
        500,
        json!({"success": false, "message": "Internal error", "recipients": null}),
    );

    let error = channel(&fake.base_url())
        .send(&sms("Habari"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, SendError::Retryable { code, .. } if code == "http_500"),
        "{error:?}"
    );
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let body = json!({"success": false, "message": "Too many requests", "recipients": null});
    fake.fail_next_with(
        1,
        CannedResponse::new(429, body).with_header("Retry-After", "7"),
    );

    let error = channel(&fake.base_url())
        .send(&sms("Habari"))
        .await
        .unwrap_err();

    let SendError::Retryable {
        retry_after_secs, ..
    } = &error
    else {
        panic!("expected Retryable, got {error:?}");
    };
    assert_eq!(*retry_after_secs, Some(7));
}

#[tokio::test]
async fn silent_server_makes_outcome_unknown() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    fake.set_delay(Duration::from_secs(3));
    let mut config = config(&fake.base_url(), SECRET);
    config.timeout = Duration::from_millis(400);
    let channel = SmsLeopardChannel::new(config).unwrap();

    let error = channel.send(&sms("Habari")).await.unwrap_err();

    assert!(
        matches!(&error, SendError::Unknown { code, .. } if code == "timeout"),
        "{error:?}"
    );
    assert_eq!(fake.count(), 1, "the request reached the provider");
}

#[tokio::test]
async fn closed_port_is_retryable() {
    let channel = channel(&closed_port_url("/v1"));

    let error = channel.send(&sms("Habari")).await.unwrap_err();

    let SendError::Retryable { code, .. } = &error else {
        panic!("expected Retryable, got {error:?}");
    };
    assert_eq!(code, "connect_failed");
}

#[tokio::test]
async fn local_number_is_invalid_before_sending() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let mut message = sms("Habari");
    message.to = "0700000001".to_owned();

    let error = channel(&fake.base_url()).send(&message).await.unwrap_err();

    assert_eq!(error.code(), "invalid_recipient");
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn lookup_is_unknown() {
    let fake = FakeSmsLeopard::start(KEY, SECRET).await;
    let lookup = channel(&fake.base_url()).lookup(&sms("Habari")).await;
    assert_eq!(lookup, Lookup::Unknown);
}

#[test]
fn sender_ids_match_field_failure_expectations() {
    let case = field_failure("B15");
    let sender_ids = case["input"]["sender_ids"].as_array().unwrap();
    assert_eq!(sender_ids.len(), 4);
    for sender_id in sender_ids {
        let sender_id = sender_id.as_str().unwrap();
        let expected = case["expected"][sender_id].as_str().unwrap();
        let accepted = validate_sender_id(sender_id).is_ok();
        assert_eq!(
            accepted,
            expected.starts_with("accepted"),
            "{sender_id}: {expected}"
        );
    }
}

#[test]
fn long_sender_id_fails_channel_setup() {
    let mut config = config("https://api.smsleopard.com/v1", SECRET);
    config.source = "DukaBoraShop".to_owned();
    let error = SmsLeopardChannel::new(config).unwrap_err();
    assert!(
        matches!(error, ConfigError::InvalidSenderId { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn dropped_connection_makes_outcome_unknown() {
    let server = HangUpServer::start().await;

    let error = channel(&server.base_url("/v1"))
        .send(&sms("Habari"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, SendError::Unknown { code, .. } if code == "connection_lost"),
        "{error:?}"
    );
    assert_eq!(server.count(), 1, "the request reached the server");
}
