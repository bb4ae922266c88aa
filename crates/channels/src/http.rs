//! HTTP plumbing the provider adapters share: building the client, running one request into
//! either a reply or a transport failure that records whether the request may have reached the
//! provider, and reading `Retry-After`.

use std::error::Error as _;
use std::time::Duration;

use jiff::Timestamp;
use jiff::fmt::rfc2822::DateTimeParser;
use nudge_core::channel::SendError;
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, RequestBuilder};

use crate::error::ConfigError;

/// Maximum characters of a provider's body quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;

/// A provider's HTTP response, reduced to what classification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpReply {
    pub status: u16,
    /// `Retry-After` in seconds, from either its seconds or its HTTP-date form.
    pub retry_after_secs: Option<u64>,
    pub body: String,
}

/// A request that produced no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// No connection was made (refused, DNS, TLS, connect timeout), so the provider cannot
    /// have seen the request.
    NotSent(String),
    /// The request timed out after the connection was made, so it may have been processed.
    TimedOut(String),
    /// The connection broke after it was made, so the request may have been processed.
    Interrupted(String),
}

/// Builds a client with a total `timeout` per request and no redirects.
///
/// Redirects are off because a redirected POST could be replayed as a GET elsewhere. The
/// connect timeout is half the total, so that a host that cannot be reached fails as a
/// connect error (known not sent) before the total timeout makes the outcome unknown.
pub(crate) fn build_client(timeout: Duration) -> Result<Client, ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::Invalid {
            key: "timeout",
            value: "0s".to_owned(),
            reason: "must be greater than zero".to_owned(),
        });
    }
    Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout / 2)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("nudge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ConfigError::HttpClient)
}

/// Checks a provider base URL and returns it without a trailing `/`.
pub(crate) fn base_url(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason,
    };
    let url = reqwest::Url::parse(value).map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("expected an http or https URL".to_owned()));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// Sends a request and reads the whole response.
pub(crate) async fn execute(request: RequestBuilder) -> Result<HttpReply, TransportError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let retry_after_secs = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, Timestamp::now()));

    let body = match response.text().await {
        Ok(body) => body,
        // An accepted send whose body was lost may still have gone out.
        Err(error) if status.is_success() => return Err(transport_error(error)),
        // A failure status is enough to classify the response without its body.
        Err(_) => String::new(),
    };
    Ok(HttpReply {
        status: status.as_u16(),
        retry_after_secs,
        body,
    })
}

/// Maps a transport failure to the send outcome every provider shares.
pub(crate) fn transport_failure(error: &TransportError) -> SendError {
    match error {
        TransportError::NotSent(detail) => SendError::Retryable {
            code: "connect_failed".to_owned(),
            message: format!("failed to connect to the provider: {detail}"),
            retry_after_secs: None,
        },
        TransportError::TimedOut(detail) => SendError::Unknown {
            code: "timeout".to_owned(),
            message: format!("the request timed out waiting for the provider: {detail}"),
        },
        TransportError::Interrupted(detail) => SendError::Unknown {
            code: "connection_lost".to_owned(),
            message: format!("the connection broke before the provider responded: {detail}"),
        },
    }
}

/// Parses `Retry-After` as seconds or as an HTTP-date, which counts from `now`.
pub(crate) fn parse_retry_after(value: &str, now: Timestamp) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    let at = DateTimeParser::new().parse_timestamp(value).ok()?;
    let seconds = at.as_second().saturating_sub(now.as_second());
    Some(u64::try_from(seconds).unwrap_or(0))
}

/// Returns the start of a response body for an error message.
pub(crate) fn quote_body(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "empty response body".to_owned();
    }
    let mut quoted: String = trimmed.chars().take(MAX_QUOTED_CHARS).collect();
    if trimmed.chars().count() > MAX_QUOTED_CHARS {
        quoted.push('…');
    }
    quoted
}

fn transport_error(error: reqwest::Error) -> TransportError {
    let detail = error_chain(&error);
    // A builder error fails before any connection, so it is as safe to retry as a refused
    // connection, and a connect timeout is a connect error too.
    if error.is_connect() || error.is_builder() {
        TransportError::NotSent(detail)
    } else if error.is_timeout() {
        TransportError::TimedOut(detail)
    } else {
        TransportError::Interrupted(detail)
    }
}

/// Joins an error and its sources, because reqwest's own message omits the cause.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: Timestamp = "2026-01-15T07:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(7));
        assert_eq!(parse_retry_after(" 120 ", now), Some(120));
        assert_eq!(
            parse_retry_after("Thu, 15 Jan 2026 07:01:30 GMT", now),
            Some(90)
        );
        assert_eq!(
            parse_retry_after("Thu, 15 Jan 2026 06:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn base_url_drops_trailing_slash() {
        let url = base_url("base_url", "https://api.smsleopard.com/v1/").unwrap();
        assert_eq!(url, "https://api.smsleopard.com/v1");
    }

    #[test]
    fn base_url_rejects_other_schemes() {
        assert!(base_url("base_url", "ftp://example.com").is_err());
        assert!(base_url("base_url", "not a url").is_err());
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let error = build_client(Duration::ZERO).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { key: "timeout", .. }));
    }

    #[test]
    fn long_bodies_are_cut_when_quoted() {
        let quoted = quote_body(&"x".repeat(1000));
        assert_eq!(quoted.chars().count(), MAX_QUOTED_CHARS + 1);
        assert_eq!(quote_body("  "), "empty response body");
    }
}
