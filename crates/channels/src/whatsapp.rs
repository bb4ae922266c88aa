//! WhatsApp through Meta's Cloud API: configuration, the local checks on text and template
//! messages, and the send call (`POST {base}/{phone_number_id}/messages`).
//!
//! The idempotency key travels as `biz_opaque_callback_data`, which Meta echoes in status
//! webhooks so they can be matched to the message. The Cloud API has no lookup by that key, so
//! [`Channel::lookup`] returns [`Lookup::Unknown`].

mod response;
mod template;
mod text;

use std::time::Duration;

use async_trait::async_trait;
use nudge_core::channel::{
    Channel, ChannelKind, Lookup, MessageKind, OutboundMessage, SendError, SendReceipt,
};
use reqwest::Client;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::ConfigError;
use crate::http;
use crate::outbound::{check_channel, e164_digits, invalid};
pub use template::{ApprovedTemplate, ButtonKind, MAX_TEMPLATE_BODY_CHARS};
use template::{TemplateObject, check_against, check_parameters, find_approved, template_object};
pub use text::{MAX_TEXT_CHARS, split_text};

/// The Graph API base with the version this adapter was written against.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com/v21.0";

/// Default total time for one send request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum bytes of `biz_opaque_callback_data`.
const MAX_CALLBACK_DATA_BYTES: usize = 512;

/// Settings of one WhatsApp business phone number.
#[derive(Debug, Clone)]
pub struct WhatsappConfig {
    /// Graph API base with its version and without a trailing `/`.
    pub base_url: String,
    /// Meta's id of the sending business phone number (not the number itself).
    pub phone_number_id: String,
    /// System-user access token, sent as a bearer token.
    pub access_token: SecretString,
    /// Total time for one request, connection included.
    pub timeout: Duration,
    /// Templates Meta approved for this account. When empty, template sends are not checked
    /// against them.
    pub templates: Vec<ApprovedTemplate>,
}

impl WhatsappConfig {
    /// Creates a configuration for the default Graph API version with no approved templates.
    pub fn new(phone_number_id: &str, access_token: SecretString) -> WhatsappConfig {
        WhatsappConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            phone_number_id: phone_number_id.to_owned(),
            access_token,
            timeout: DEFAULT_TIMEOUT,
            templates: Vec::new(),
        }
    }
}

/// The WhatsApp Cloud API adapter.
#[derive(Debug)]
pub struct WhatsappChannel {
    config: WhatsappConfig,
    messages_url: String,
    client: Client,
}

impl WhatsappChannel {
    /// Checks the configuration, including each approved template, and builds the HTTP client.
    pub fn new(config: WhatsappConfig) -> Result<WhatsappChannel, ConfigError> {
        let base_url = http::base_url("base_url", &config.base_url)?;
        let phone_number_id = config.phone_number_id.trim();
        if phone_number_id.is_empty() {
            return Err(ConfigError::Missing {
                key: "phone_number_id",
            });
        }
        if !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid {
                key: "phone_number_id",
                value: config.phone_number_id.clone(),
                reason: "expected Meta's numeric phone number id".to_owned(),
            });
        }
        if config.access_token.expose_secret().trim().is_empty() {
            return Err(ConfigError::Missing {
                key: "access_token",
            });
        }
        for (position, approved) in config.templates.iter().enumerate() {
            approved.check()?;
            let repeated = config.templates[..position].iter().any(|earlier| {
                earlier.name == approved.name && earlier.language == approved.language
            });
            if repeated {
                return Err(ConfigError::InvalidTemplate {
                    name: approved.name.clone(),
                    language: approved.language.clone(),
                    reason: "it is listed twice".to_owned(),
                });
            }
        }
        let client = http::build_client(config.timeout)?;
        Ok(WhatsappChannel {
            messages_url: format!("{base_url}/{phone_number_id}/messages"),
            config,
            client,
        })
    }

    /// Builds the request body, or the local rule the message breaks.
    fn request_body<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> Result<SendRequest<'a>, SendError> {
        let to = e164_digits(message)?;
        let key = message.idempotency_key.as_str();
        if key.len() > MAX_CALLBACK_DATA_BYTES {
            let text = format!(
                "message {} has an idempotency key over {MAX_CALLBACK_DATA_BYTES} bytes, which \
                 biz_opaque_callback_data cannot carry",
                message.message_id
            );
            return Err(invalid("callback_data_too_long", text));
        }
        let mut request = SendRequest {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to,
            kind: message.kind.as_str(),
            biz_opaque_callback_data: (!key.is_empty()).then_some(key),
            text: None,
            template: None,
        };
        match message.kind {
            MessageKind::Text => request.text = Some(self.text_object(message)?),
            MessageKind::Template => request.template = Some(self.template_object(message)?),
        }
        Ok(request)
    }

    fn text_object<'a>(&self, message: &'a OutboundMessage) -> Result<TextObject<'a>, SendError> {
        if message.body.trim().is_empty() {
            let text = format!("message {} has an empty body", message.message_id);
            return Err(invalid("empty_body", text));
        }
        let length = message.body.chars().count();
        if length > MAX_TEXT_CHARS {
            let text = format!(
                "message {} has {length} characters but WhatsApp text allows {MAX_TEXT_CHARS}, \
                 so split it with split_text or shorten it",
                message.message_id
            );
            return Err(invalid("text_too_long", text));
        }
        Ok(TextObject {
            preview_url: true,
            body: &message.body,
        })
    }

    fn template_object<'a>(
        &self,
        message: &'a OutboundMessage,
    ) -> Result<TemplateObject<'a>, SendError> {
        let Some(template) = &message.template else {
            let text = format!("template message {} has no template", message.message_id);
            return Err(invalid("template_missing", text));
        };
        check_parameters(template)?;
        let approved = find_approved(&self.config.templates, template)?;
        if let Some(approved) = approved {
            check_against(approved, template)?;
        }
        Ok(template_object(template, approved))
    }
}

/// Body of `POST /{phone_number_id}/messages`.
#[derive(Debug, Serialize)]
struct SendRequest<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    /// Digits with the country code and without `+`.
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<TemplateObject<'a>>,
}

#[derive(Debug, Serialize)]
struct TextObject<'a> {
    preview_url: bool,
    body: &'a str,
}

#[async_trait]
impl Channel for WhatsappChannel {
    fn provider(&self) -> &str {
        "whatsapp"
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Whatsapp
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        check_channel(message, ChannelKind::Whatsapp)?;
        let body = self.request_body(message)?;
        let request = self
            .client
            .post(&self.messages_url)
            .bearer_auth(self.config.access_token.expose_secret())
            .json(&body);
        let result = response::classify(http::execute(request).await);
        match &result {
            Ok(receipt) => tracing::debug!(
                message_id = message.message_id,
                provider_message_id = receipt.provider_message_id.as_deref(),
                "WhatsApp accepted the message"
            ),
            Err(error) => tracing::debug!(
                message_id = message.message_id,
                %error,
                "WhatsApp send failed"
            ),
        }
        result
    }

    async fn lookup(&self, _message: &OutboundMessage) -> Lookup {
        Lookup::Unknown
    }
}
