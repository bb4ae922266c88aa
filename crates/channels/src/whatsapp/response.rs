//! Mapping the WhatsApp Cloud API's responses to a receipt or a [`SendError`].
//!
//! Failures are classified by the Graph error code (`error.code`), never by the message text,
//! which Meta rewords freely. The code is kept as the [`SendError`] code, such as `"131047"`.

use nudge_core::channel::{SendError, SendReceipt};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{self, HttpReply, TransportError};

/// Wait before retrying after an invalid or expired access token, which passes only once the
/// merchant replaces the token.
const TOKEN_RETRY_AFTER_SECS: u64 = 300;

/// Graph codes of failures that sending the same message again cannot fix.
const PERMANENT_CODES: [i64; 6] = [
    131047, // more than 24 hours since the customer's last message
    132000, // template parameter count mismatch
    132001, // template name or language does not exist
    131026, // message undeliverable (not on WhatsApp, old client)
    131051, // unsupported message type
    100,    // invalid parameter
];

/// Graph codes of throttling and transient failures.
const RETRYABLE_CODES: [i64; 4] = [
    130429, // throughput limit of the phone number
    131048, // spam rate limit
    131056, // pair rate limit (same business to the same user too fast)
    131000, // generic internal error
];

/// The recipient stopped marketing messages from this business.
const OPTED_OUT_CODE: i64 = 131050;

/// Invalid or expired access token.
const TOKEN_CODE: i64 = 190;

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    id: String,
    message_status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

#[derive(Debug, Deserialize)]
struct GraphError {
    message: Option<String>,
    /// A number in every documented response. It is read loosely so a string form still classifies.
    code: Option<Value>,
}

/// Maps the outcome of one send request to a receipt or a [`SendError`].
///
/// Any 5xx is retryable. Otherwise the Graph code decides: 131050 is a permanent opt-out, the
/// template, window and payload codes are permanent, throttling codes are retryable after the
/// provider's `Retry-After`, and 190 (token) is retryable after 5 minutes. Without a known
/// code, 408 and 429 are retryable, a redirect is retried like a token failure (the base URL is
/// wrong), and other statuses are permanent.
pub(crate) fn classify(
    outcome: Result<HttpReply, TransportError>,
) -> Result<SendReceipt, SendError> {
    let reply = outcome.map_err(|error| http::transport_failure(&error))?;
    if (200..300).contains(&reply.status) {
        return accepted(&reply.body);
    }

    let graph_error = serde_json::from_str::<ErrorEnvelope>(&reply.body)
        .ok()
        .map(|envelope| envelope.error);
    let graph_code = graph_error
        .as_ref()
        .and_then(|error| error.code.as_ref())
        .and_then(|code| code.as_i64().or_else(|| code.as_str()?.parse().ok()));
    let code = match graph_code {
        Some(graph_code) => graph_code.to_string(),
        None => format!("http_{}", reply.status),
    };
    let message = graph_error
        .and_then(|error| error.message)
        .unwrap_or_else(|| http::quote_body(&reply.body));

    let retryable = |retry_after_secs| SendError::Retryable {
        code: code.clone(),
        message: message.clone(),
        retry_after_secs,
    };
    let permanent = |opted_out| SendError::Permanent {
        code: code.clone(),
        message: message.clone(),
        opted_out,
    };
    let error = match (reply.status, graph_code) {
        (500..=599, _) => retryable(reply.retry_after_secs),
        (_, Some(OPTED_OUT_CODE)) => permanent(true),
        (_, Some(TOKEN_CODE)) => retryable(Some(TOKEN_RETRY_AFTER_SECS)),
        (_, Some(code)) if PERMANENT_CODES.contains(&code) => permanent(false),
        (_, Some(code)) if RETRYABLE_CODES.contains(&code) => retryable(reply.retry_after_secs),
        (408 | 429, _) => retryable(reply.retry_after_secs),
        (300..=399, _) => retryable(Some(TOKEN_RETRY_AFTER_SECS)),
        _ => permanent(false),
    };
    Err(error)
}

fn accepted(body: &str) -> Result<SendReceipt, SendError> {
    let first = serde_json::from_str::<SendResponse>(body)
        .ok()
        .and_then(|response| response.messages.into_iter().next());
    match first {
        Some(sent) => Ok(SendReceipt {
            provider_message_id: Some(sent.id),
            status: sent.message_status,
        }),
        // The provider returned success, so the message has probably been accepted.
        None => Err(SendError::Unknown {
            code: "unreadable_response".to_owned(),
            message: format!(
                "WhatsApp returned success without a message id: {}",
                http::quote_body(body)
            ),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reply(
        status: u16,
        retry_after_secs: Option<u64>,
        body: &str,
    ) -> Result<HttpReply, TransportError> {
        Ok(HttpReply {
            status,
            retry_after_secs,
            body: body.to_owned(),
        })
    }

    fn graph(code: i64) -> String {
        serde_json::json!({
            "error": {"message": "text varies", "type": "OAuthException", "code": code,
                      "fbtrace_id": "TESTTRACE"}
        })
        .to_string()
    }

    type Outcome = Result<HttpReply, TransportError>;

    /// The expected outcome, code, retry wait and opt-out flag of a case.
    type Expected = (&'static str, &'static str, Option<u64>, bool);

    /// Reduces a classification to its outcome, code, retry wait and opt-out flag.
    fn summarise(
        result: &Result<SendReceipt, SendError>,
    ) -> (&'static str, String, Option<u64>, bool) {
        match result {
            Ok(receipt) => (
                "sent",
                receipt.provider_message_id.clone().unwrap_or_default(),
                None,
                false,
            ),
            Err(SendError::Retryable {
                code,
                retry_after_secs,
                ..
            }) => ("retryable", code.clone(), *retry_after_secs, false),
            Err(SendError::Permanent {
                code, opted_out, ..
            }) => ("permanent", code.clone(), None, *opted_out),
            Err(SendError::Unknown { code, .. }) => ("unknown", code.clone(), None, false),
            Err(SendError::Invalid { code, .. }) => ("invalid", code.clone(), None, false),
        }
    }

    #[test]
    fn responses_classify_by_graph_code() {
        let sent = r#"{"messaging_product":"whatsapp","contacts":[{"input":"254700000001","wa_id":"254700000001"}],
            "messages":[{"id":"wamid.TEST1","message_status":"accepted"}]}"#;
        let string_code = r#"{"error":{"message":"x","code":"131047"}}"#;
        let cases: Vec<(&str, Outcome, Expected)> = vec![
            (
                "accepted",
                reply(200, None, sent),
                ("sent", "wamid.TEST1", None, false),
            ),
            (
                "no message id",
                reply(200, None, r#"{"messages":[]}"#),
                ("unknown", "unreadable_response", None, false),
            ),
            (
                "outside 24 h window",
                reply(400, None, &graph(131047)),
                ("permanent", "131047", None, false),
            ),
            (
                "code as string",
                reply(400, None, string_code),
                ("permanent", "131047", None, false),
            ),
            (
                "parameter mismatch",
                reply(400, None, &graph(132000)),
                ("permanent", "132000", None, false),
            ),
            (
                "template missing",
                reply(404, None, &graph(132001)),
                ("permanent", "132001", None, false),
            ),
            (
                "undeliverable",
                reply(400, None, &graph(131026)),
                ("permanent", "131026", None, false),
            ),
            (
                "unsupported type",
                reply(400, None, &graph(131051)),
                ("permanent", "131051", None, false),
            ),
            (
                "invalid parameter",
                reply(400, None, &graph(100)),
                ("permanent", "100", None, false),
            ),
            (
                "opted out",
                reply(400, None, &graph(131050)),
                ("permanent", "131050", None, true),
            ),
            (
                "throughput",
                reply(400, Some(2), &graph(130429)),
                ("retryable", "130429", Some(2), false),
            ),
            (
                "spam limit",
                reply(400, None, &graph(131048)),
                ("retryable", "131048", None, false),
            ),
            (
                "pair limit",
                reply(400, Some(6), &graph(131056)),
                ("retryable", "131056", Some(6), false),
            ),
            (
                "internal error",
                reply(400, None, &graph(131000)),
                ("retryable", "131000", None, false),
            ),
            (
                "token",
                reply(401, None, &graph(190)),
                ("retryable", "190", Some(300), false),
            ),
            (
                "server error with code",
                reply(500, Some(9), &graph(131047)),
                ("retryable", "131047", Some(9), false),
            ),
            (
                "bare server error",
                reply(502, None, "Bad Gateway"),
                ("retryable", "http_502", None, false),
            ),
            (
                "unknown code",
                reply(400, None, &graph(131049)),
                ("permanent", "131049", None, false),
            ),
            (
                "bare forbidden",
                reply(403, None, ""),
                ("permanent", "http_403", None, false),
            ),
            (
                "bare throttle",
                reply(429, Some(4), ""),
                ("retryable", "http_429", Some(4), false),
            ),
            (
                "redirect",
                reply(302, None, ""),
                ("retryable", "http_302", Some(300), false),
            ),
            (
                "refused",
                Err(TransportError::NotSent("refused".into())),
                ("retryable", "connect_failed", None, false),
            ),
            (
                "timed out",
                Err(TransportError::TimedOut("deadline".into())),
                ("unknown", "timeout", None, false),
            ),
            (
                "reset",
                Err(TransportError::Interrupted("reset".into())),
                ("unknown", "connection_lost", None, false),
            ),
        ];
        for (name, outcome, (kind, code, retry_after_secs, opted_out)) in cases {
            let actual = summarise(&classify(outcome));
            let expected = (kind, code.to_owned(), retry_after_secs, opted_out);
            assert_eq!(actual, expected, "case {name}");
        }
    }

    #[test]
    fn receipt_keeps_message_status() {
        let body =
            r#"{"messages":[{"id":"wamid.X","message_status":"held_for_quality_assessment"}]}"#;
        let receipt = classify(reply(200, None, body)).unwrap();
        assert_eq!(
            receipt.status.as_deref(),
            Some("held_for_quality_assessment")
        );
    }
}
