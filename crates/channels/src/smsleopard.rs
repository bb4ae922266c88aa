//! SMS through SMSLeopard (Kenya): configuration, sender ID rules, the send call and the
//! mapping of its responses to [`SendError`].
//!
//! The adapter uses `POST {base}/sms/send` with HTTP Basic auth (API key and secret) and one
//! destination per request. SMSLeopard takes no idempotency key and has no lookup by one, so a
//! send whose response was lost is [`SendError::Unknown`] and [`Channel::lookup`] returns
//! [`Lookup::Unknown`].

use std::time::Duration;

use async_trait::async_trait;
use nudge_core::channel::{
    Channel, ChannelKind, Lookup, MessageKind, OutboundMessage, SendError, SendReceipt,
};
use reqwest::Client;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::http::{self, HttpReply, TransportError};
use crate::outbound::{check_channel, e164_digits, invalid};

/// SMSLeopard's production API base.
pub const DEFAULT_BASE_URL: &str = "https://api.smsleopard.com/v1";

/// Default total time for one send request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum length of an alphanumeric sender ID, set by GSM networks.
pub const MAX_SENDER_ID_CHARS: usize = 11;

/// Wait before retrying after an account failure (bad key, no balance), which passes only
/// once the merchant fixes the account.
const ACCOUNT_RETRY_AFTER_SECS: u64 = 300;

/// Settings of one SMSLeopard account.
#[derive(Debug, Clone)]
pub struct SmsLeopardConfig {
    /// API base without a trailing `/`, such as [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// API key from the SMSLeopard dashboard, the user name of HTTP Basic auth.
    pub api_key: String,
    /// API secret shown once when the key is created, the password of HTTP Basic auth.
    pub api_secret: SecretString,
    /// Sender ID assigned to the account, checked by [`validate_sender_id`].
    pub source: String,
    /// URL SMSLeopard posts delivery reports to.
    pub status_url: Option<String>,
    /// Shared secret sent with `status_url`, and required when `status_url` is set.
    pub status_secret: Option<SecretString>,
    /// Total time for one request, connection included.
    pub timeout: Duration,
}

impl SmsLeopardConfig {
    /// Creates a configuration for the production API with no delivery-report URL.
    pub fn new(api_key: &str, api_secret: SecretString, source: &str) -> SmsLeopardConfig {
        SmsLeopardConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.to_owned(),
            api_secret,
            source: source.to_owned(),
            status_url: None,
            status_secret: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Checks an alphanumeric sender ID: 1 to 11 ASCII letters, digits and spaces, starting and
/// ending with a letter or digit.
///
/// A longer ID is rejected rather than cut short, because gateways have been seen to cancel
/// such messages after reporting them accepted, or to cut the sender to 11 characters without
/// warning. Apostrophes and other punctuation are rejected because carriers have reported
/// interconnect failures with them, which is why GOV.UK Notify bans apostrophes in sender IDs.
///
/// NOTE: SMSLeopard's documentation writes its shared test sender both as `SMS_Leopard`, which
/// this check rejects, and as `SMSLeopard`. Which spellings the API accepts is unconfirmed.
/// Whether an ID is registered with the carriers and assigned to the account is known only to
/// SMSLeopard, which rejects a send from an unassigned ID with HTTP 404.
pub fn validate_sender_id(sender_id: &str) -> Result<(), ConfigError> {
    let reject = |reason| {
        Err(ConfigError::InvalidSenderId {
            sender_id: sender_id.to_owned(),
            reason,
        })
    };
    if sender_id.trim().is_empty() {
        return reject("it is empty, so set the sender ID assigned to the SMSLeopard account");
    }
    if sender_id.chars().count() > MAX_SENDER_ID_CHARS {
        return reject("it is longer than 11 characters, so choose a shorter sender ID");
    }
    if !sender_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ')
    {
        return reject("only ASCII letters, digits and spaces are allowed");
    }
    if sender_id.starts_with(' ') || sender_id.ends_with(' ') {
        return reject("it starts or ends with a space");
    }
    Ok(())
}

/// The SMSLeopard adapter.
#[derive(Debug)]
pub struct SmsLeopardChannel {
    config: SmsLeopardConfig,
    send_url: String,
    client: Client,
}

impl SmsLeopardChannel {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: SmsLeopardConfig) -> Result<SmsLeopardChannel, ConfigError> {
        let base_url = http::base_url("base_url", &config.base_url)?;
        if config.api_key.trim().is_empty() {
            return Err(ConfigError::Missing { key: "api_key" });
        }
        if config.api_secret.expose_secret().trim().is_empty() {
            return Err(ConfigError::Missing { key: "api_secret" });
        }
        validate_sender_id(&config.source)?;
        if let Some(status_url) = &config.status_url {
            http::base_url("status_url", status_url)?;
            let has_secret = config
                .status_secret
                .as_ref()
                .is_some_and(|secret| !secret.expose_secret().is_empty());
            if !has_secret {
                return Err(ConfigError::MissingStatusSecret);
            }
        }
        let client = http::build_client(config.timeout)?;
        Ok(SmsLeopardChannel {
            send_url: format!("{base_url}/sms/send"),
            config,
            client,
        })
    }

    fn request_body<'a>(&'a self, message: &'a OutboundMessage) -> SendRequest<'a> {
        let status_url = self.config.status_url.as_deref();
        let status_secret = status_url
            .and(self.config.status_secret.as_ref())
            .map(|secret| secret.expose_secret());
        SendRequest {
            source: &self.config.source,
            message: &message.body,
            destination: [Destination {
                number: &message.to,
            }],
            status_url,
            status_secret,
        }
    }
}

/// Body of `POST /sms/send` for one destination.
#[derive(Debug, Serialize)]
struct SendRequest<'a> {
    source: &'a str,
    message: &'a str,
    destination: [Destination<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    status_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_secret: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Destination<'a> {
    /// E.164 with `+`, the form the provider's POST example uses.
    number: &'a str,
}

/// Body of the send response, on success and on failure.
#[derive(Debug, Deserialize)]
struct SendResponse {
    success: Option<bool>,
    message: Option<String>,
    recipients: Option<Vec<Recipient>>,
}

#[derive(Debug, Deserialize)]
struct Recipient {
    id: Option<String>,
    status: Option<String>,
}

#[async_trait]
impl Channel for SmsLeopardChannel {
    fn provider(&self) -> &str {
        "smsleopard"
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        check_channel(message, ChannelKind::Sms)?;
        if message.kind != MessageKind::Text {
            let text = format!(
                "message {} is a template, which SMS cannot carry",
                message.message_id
            );
            return Err(invalid("template_on_sms", text));
        }
        if message.body.trim().is_empty() {
            let text = format!("message {} has an empty body", message.message_id);
            return Err(invalid("empty_body", text));
        }
        e164_digits(message)?;

        let request = self
            .client
            .post(&self.send_url)
            .basic_auth(
                &self.config.api_key,
                Some(self.config.api_secret.expose_secret()),
            )
            .json(&self.request_body(message));
        let result = classify(http::execute(request).await);
        match &result {
            Ok(receipt) => tracing::debug!(
                message_id = message.message_id,
                provider_message_id = receipt.provider_message_id.as_deref(),
                "SMSLeopard accepted the message"
            ),
            Err(error) => tracing::debug!(
                message_id = message.message_id,
                %error,
                "SMSLeopard send failed"
            ),
        }
        result
    }

    async fn lookup(&self, _message: &OutboundMessage) -> Lookup {
        Lookup::Unknown
    }
}

/// Maps the outcome of one send request to a receipt or a [`SendError`].
///
/// 400 and 404 (bad sender ID, missing source, invalid number) are permanent. 401, 402 and
/// 403 (bad key, no balance) are retryable after 5 minutes, because nothing was sent and they
/// pass once the account is fixed. 408, 429 and 5xx are retryable after the provider's
/// `Retry-After`. A redirect means the base URL is wrong and is retried like an account
/// failure. Other 4xx are permanent.
fn classify(outcome: Result<HttpReply, TransportError>) -> Result<SendReceipt, SendError> {
    let reply = outcome.map_err(|error| http::transport_failure(&error))?;
    let parsed: Option<SendResponse> = serde_json::from_str(&reply.body).ok();
    if (200..300).contains(&reply.status) {
        return accepted(parsed, &reply.body);
    }

    let code = format!("http_{}", reply.status);
    let message = parsed
        .and_then(|response| response.message)
        .unwrap_or_else(|| http::quote_body(&reply.body));
    let retryable = |retry_after_secs| SendError::Retryable {
        code: code.clone(),
        message: message.clone(),
        retry_after_secs,
    };
    match reply.status {
        401..=403 | 300..=399 => Err(retryable(Some(ACCOUNT_RETRY_AFTER_SECS))),
        408 | 429 | 500..=599 => Err(retryable(reply.retry_after_secs)),
        _ => Err(SendError::Permanent {
            code,
            message,
            opted_out: false,
        }),
    }
}

fn accepted(parsed: Option<SendResponse>, body: &str) -> Result<SendReceipt, SendError> {
    let Some(response) = parsed else {
        // The provider returned success, so the SMS has probably gone out.
        return Err(SendError::Unknown {
            code: "unreadable_response".to_owned(),
            message: format!(
                "SMSLeopard returned success with an unreadable body: {}",
                http::quote_body(body)
            ),
        });
    };
    let provider_message = response.message.unwrap_or_default();
    let first = response
        .recipients
        .unwrap_or_default()
        .into_iter()
        .next()
        .filter(|recipient| recipient.id.is_some());
    match first {
        Some(recipient) if response.success != Some(false) => Ok(SendReceipt {
            provider_message_id: recipient.id,
            status: recipient.status,
        }),
        _ => Err(SendError::Permanent {
            code: "rejected".to_owned(),
            message: format!("SMSLeopard accepted no recipient: {provider_message}"),
            opted_out: false,
        }),
    }
}

#[cfg(test)]
mod tests;
