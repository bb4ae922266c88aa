#![allow(clippy::unwrap_used)]

use super::*;

fn reply(status: u16, retry_after_secs: Option<u64>, body: &str) -> Outcome {
    Ok(HttpReply {
        status,
        retry_after_secs,
        body: body.to_owned(),
    })
}

fn error_body(message: &str) -> String {
    serde_json::json!({"success": false, "message": message, "recipients": null}).to_string()
}

type Outcome = Result<HttpReply, TransportError>;

/// The expected outcome, code (the receipt id for a send) and retry wait of a case.
type Expected = (&'static str, &'static str, Option<u64>);

/// A classification reduced to comparable parts: the outcome, its code (the receipt id for a
/// send) and the retry wait.
type Summary = (&'static str, String, Option<u64>);

fn summarise(result: &Result<SendReceipt, SendError>) -> Summary {
    match result {
        Ok(receipt) => (
            "sent",
            receipt.provider_message_id.clone().unwrap_or_default(),
            None,
        ),
        Err(SendError::Retryable {
            code,
            retry_after_secs,
            ..
        }) => ("retryable", code.clone(), *retry_after_secs),
        Err(SendError::Permanent { code, .. }) => ("permanent", code.clone(), None),
        Err(SendError::Unknown { code, .. }) => ("unknown", code.clone(), None),
        Err(SendError::Invalid { code, .. }) => ("invalid", code.clone(), None),
    }
}

#[test]
fn responses_classify_by_status_and_body() {
    let accepted = r#"{"success":true,"message":"Sent to 1/1. Cost KES 0.90","recipients":[
        {"id":"00000000-0000-4000-8000-000000000001","cost":0.9,"number":"+254700000001","status":"queued"}]}"#;
    let invalid_sender =
        error_body("Unrecognized sender id. Sender ID TESTSHOP is not assigned an account");
    let cases: Vec<(&str, Outcome, Expected)> = vec![
        (
            "201 with a recipient",
            reply(201, None, accepted),
            ("sent", "00000000-0000-4000-8000-000000000001", None),
        ),
        (
            "200 with a recipient",
            reply(200, None, accepted),
            ("sent", "00000000-0000-4000-8000-000000000001", None),
        ),
        (
            "success false",
            reply(201, None, &error_body("Sent to 0/1")),
            ("permanent", "rejected", None),
        ),
        (
            "no recipients",
            reply(
                201,
                None,
                r#"{"success":true,"message":"ok","recipients":[]}"#,
            ),
            ("permanent", "rejected", None),
        ),
        (
            "recipient without id",
            reply(
                201,
                None,
                r#"{"success":true,"recipients":[{"status":"queued"}]}"#,
            ),
            ("permanent", "rejected", None),
        ),
        (
            "unreadable success",
            reply(201, None, "<html>"),
            ("unknown", "unreadable_response", None),
        ),
        (
            "missing source",
            reply(400, None, &error_body("Source (sender id) is not defined")),
            ("permanent", "http_400", None),
        ),
        (
            "unassigned sender",
            reply(404, None, &invalid_sender),
            ("permanent", "http_404", None),
        ),
        (
            "bad key",
            reply(401, None, &error_body("Unauthorized")),
            ("retryable", "http_401", Some(300)),
        ),
        (
            "no balance",
            reply(402, None, &error_body("Insufficient balance")),
            ("retryable", "http_402", Some(300)),
        ),
        (
            "forbidden",
            reply(403, None, ""),
            ("retryable", "http_403", Some(300)),
        ),
        (
            "redirect",
            reply(301, None, ""),
            ("retryable", "http_301", Some(300)),
        ),
        (
            "throttled",
            reply(429, Some(7), ""),
            ("retryable", "http_429", Some(7)),
        ),
        (
            "throttled without wait",
            reply(429, None, ""),
            ("retryable", "http_429", None),
        ),
        (
            "request timeout",
            reply(408, None, ""),
            ("retryable", "http_408", None),
        ),
        (
            "server error",
            reply(500, None, "oops"),
            ("retryable", "http_500", None),
        ),
        (
            "unavailable",
            reply(503, Some(30), ""),
            ("retryable", "http_503", Some(30)),
        ),
        (
            "unprocessable",
            reply(422, None, ""),
            ("permanent", "http_422", None),
        ),
        (
            "refused",
            Err(TransportError::NotSent("refused".into())),
            ("retryable", "connect_failed", None),
        ),
        (
            "timed out",
            Err(TransportError::TimedOut("deadline".into())),
            ("unknown", "timeout", None),
        ),
        (
            "reset",
            Err(TransportError::Interrupted("reset".into())),
            ("unknown", "connection_lost", None),
        ),
    ];
    for (name, outcome, (kind, code, retry_after_secs)) in cases {
        let actual = summarise(&classify(outcome));
        assert_eq!(
            actual,
            (kind, code.to_owned(), retry_after_secs),
            "case {name}"
        );
    }
}

#[test]
fn provider_message_is_kept_in_errors() {
    let body = error_body("Unrecognized sender id. Sender ID TESTSHOP is not assigned an account");
    let error = classify(reply(404, None, &body)).unwrap_err();
    let SendError::Permanent { message, .. } = error else {
        panic!("expected Permanent, got {error:?}");
    };
    assert_eq!(
        message,
        "Unrecognized sender id. Sender ID TESTSHOP is not assigned an account"
    );
}

#[test]
fn sender_ids_follow_carrier_rules() {
    let cases = [
        ("DukaBoraShop", false),
        ("Duka Bora", true),
        ("Wanjiku's", false),
        ("DUKABORA", true),
        ("SMSLeopard", true),
        ("SMS_Leopard", false),
        ("A", true),
        ("12345678901", true),
        ("", false),
        ("   ", false),
        (" Duka", false),
        ("Duka-Bora", false),
        ("Dukà", false),
    ];
    for (sender_id, valid) in cases {
        assert_eq!(
            validate_sender_id(sender_id).is_ok(),
            valid,
            "sender ID {sender_id:?}"
        );
    }
}

#[test]
fn long_sender_id_is_rejected_not_truncated() {
    let error = validate_sender_id("DukaBoraShop").unwrap_err();
    let ConfigError::InvalidSenderId { sender_id, .. } = &error else {
        panic!("expected InvalidSenderId, got {error:?}");
    };
    assert_eq!(sender_id, "DukaBoraShop");
    assert!(error.to_string().contains("longer than 11 characters"));
}

fn config() -> SmsLeopardConfig {
    SmsLeopardConfig::new("key", SecretString::from("secret"), "DUKABORA")
}

#[test]
fn status_url_without_secret_is_rejected() {
    let mut config = config();
    config.status_url = Some("https://nudges.example.com/hooks/smsleopard/status".to_owned());
    let error = SmsLeopardChannel::new(config).unwrap_err();
    assert!(
        matches!(error, ConfigError::MissingStatusSecret),
        "{error:?}"
    );
}

#[test]
fn invalid_sender_fails_channel_setup() {
    let mut config = config();
    config.source = "Wanjiku's".to_owned();
    let error = SmsLeopardChannel::new(config).unwrap_err();
    assert!(
        matches!(error, ConfigError::InvalidSenderId { .. }),
        "{error:?}"
    );
}

#[test]
fn empty_credentials_fail_channel_setup() {
    let mut config = config();
    config.api_key = String::new();
    let error = SmsLeopardChannel::new(config).unwrap_err();
    assert!(
        matches!(error, ConfigError::Missing { key: "api_key" }),
        "{error:?}"
    );
}

#[test]
fn secret_stays_out_of_debug_output() {
    let mut config = config();
    config.status_url = Some("https://nudges.example.com/hooks".to_owned());
    config.status_secret = Some(SecretString::from("status-secret-value"));
    let channel = SmsLeopardChannel::new(config).unwrap();
    let printed = format!("{channel:?}");
    assert!(!printed.contains("status-secret-value"));
    assert!(!printed.contains("\"secret\""));
}
