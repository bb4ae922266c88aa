//! `/webhooks/whatsapp`: the WhatsApp Cloud API webhook. `GET` answers Meta's verification
//! handshake; `POST` carries inbound messages and delivery statuses, signed with
//! `X-Hub-Signature-256` over the raw body.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use nudge_core::channel::ChannelKind;
use nudge_core::event::{ChatMessageEvent, ContactInput, Event};
use nudge_core::store::{Incoming, Ingested, ProviderStatus};
use nudge_core::time::{Timestamp, from_millis};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::shopify::header;
use super::value::{array, text};
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::App;

#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Echoes `hub.challenge` when the mode is `subscribe` and the token matches; 403 otherwise.
pub async fn verify(State(app): State<App>, Query(handshake): Query<Handshake>) -> Response {
    let expected = app.config().whatsapp_verify_token.as_ref();
    let matches = match (expected, handshake.verify_token.as_deref()) {
        (Some(expected), Some(given)) => expected
            .expose_secret()
            .as_bytes()
            .ct_eq(given.as_bytes())
            .into(),
        _ => false,
    };
    match (handshake.mode.as_deref(), matches, handshake.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            tracing::info!("WhatsApp webhook verification succeeded");
            (StatusCode::OK, challenge).into_response()
        }
        _ => {
            tracing::warn!("WhatsApp webhook verification rejected: wrong mode or token");
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
    }
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn verify_signature(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `X-Hub-Signature-256` value of a body, for tests and fakes.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC key of any length is valid"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn receive(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_limited(body, &headers, app.config().body_limit, "whatsapp").await?;
    let Some(secret) = &app.config().whatsapp_app_secret else {
        return Err(ApiError::Unauthorized(
            "WhatsApp webhooks are not configured; set whatsapp.app_secret (NUDGE_WHATSAPP_APP_SECRET)".into(),
        ));
    };
    let signature = header(&headers, "x-hub-signature-256")
        .ok_or_else(|| ApiError::Unauthorized("missing X-Hub-Signature-256".into()))?;
    if !verify_signature(secret.expose_secret(), &bytes, signature) {
        metrics::counter!("nudge_webhooks_rejected_total", "provider" => "whatsapp").increment(1);
        tracing::warn!("WhatsApp webhook with a signature that does not match its body");
        return Err(ApiError::Unauthorized(
            "X-Hub-Signature-256 does not match the body".into(),
        ));
    }
    let payload: Value = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request("", format!("body is not valid JSON: {error}")))?;
    let (messages, statuses) = parse(&payload);
    let workspace_id = app.config().webhook_workspace_id;
    let incoming: Vec<Incoming> = messages
        .into_iter()
        .map(|message| Incoming {
            workspace_id,
            source: "whatsapp".into(),
            delivery_id: message.id.clone(),
            event: Event::MessageInbound(message),
        })
        .collect();
    let stored = if incoming.is_empty() {
        Vec::new()
    } else {
        app.0.writer.submit(incoming).await?
    };
    for status in &statuses {
        metrics::counter!("nudge_message_statuses_total", "provider" => "whatsapp", "status" => status.status.clone())
            .increment(1);
    }
    let fresh_statuses = if statuses.is_empty() {
        0
    } else {
        app.store()
            .record_statuses(workspace_id, &statuses, app.clock().now())
            .await?
    };
    Ok(Json(json!({
        "messages": stored.iter().filter(|result| **result == Ingested::Applied).count(),
        "duplicates": stored.iter().filter(|result| **result == Ingested::Duplicate).count(),
        "statuses": fresh_statuses,
    })))
}

/// Reads inbound messages and delivery statuses out of a webhook envelope.
pub fn parse(payload: &Value) -> (Vec<ChatMessageEvent>, Vec<ProviderStatus>) {
    let mut messages = Vec::new();
    let mut statuses = Vec::new();
    for entry in array(payload, "entry") {
        for change in array(entry, "changes") {
            if text(change, &["field"]).as_deref() != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value") else {
                continue;
            };
            let names: HashMap<String, String> = array(value, "contacts")
                .iter()
                .filter_map(|contact| {
                    Some((
                        text(contact, &["wa_id"])?,
                        text(contact, &["profile/name"])?,
                    ))
                })
                .collect();
            for message in array(value, "messages") {
                if let Some(event) = inbound(message, &names) {
                    messages.push(event);
                }
            }
            for status in array(value, "statuses") {
                if let Some(status) = delivery_status(status) {
                    statuses.push(status);
                }
            }
        }
    }
    (messages, statuses)
}

fn seconds(value: &Value, path: &str) -> Option<Timestamp> {
    text(value, &[path])
        .and_then(|raw| raw.parse::<i64>().ok())
        .map(|seconds| from_millis(seconds.saturating_mul(1000)))
}

fn inbound(message: &Value, names: &HashMap<String, String>) -> Option<ChatMessageEvent> {
    let from = text(message, &["from"])?;
    let id = text(message, &["id"])?;
    let occurred_at = seconds(message, "timestamp")?;
    let kind = text(message, &["type"]).unwrap_or_else(|| "unknown".into());
    let body = match kind.as_str() {
        "text" => text(message, &["text/body"]),
        "button" => text(message, &["button/text", "button/payload"]),
        "interactive" => text(
            message,
            &[
                "interactive/button_reply/title",
                "interactive/list_reply/title",
            ],
        ),
        "reaction" => text(message, &["reaction/emoji"]),
        other => text(message, &[&format!("{other}/caption")]),
    }
    .unwrap_or_default();
    Some(ChatMessageEvent {
        id: Some(id),
        occurred_at,
        contact: ContactInput {
            phone: Some(format!("+{}", from.trim_start_matches('+'))),
            first_name: names.get(&from).cloned(),
            ..ContactInput::default()
        },
        channel: ChannelKind::Whatsapp,
        text: body,
        kind: (kind != "text").then_some(kind),
        author: None,
        product: None,
        price: None,
        currency: None,
    })
}

fn delivery_status(status: &Value) -> Option<ProviderStatus> {
    let errors = array(status, "errors");
    Some(ProviderStatus {
        provider_message_id: text(status, &["id"])?,
        status: text(status, &["status"])?,
        error_code: errors.first().and_then(|error| text(error, &["code"])),
        error_title: errors
            .first()
            .and_then(|error| text(error, &["title", "message"])),
        at: seconds(status, "timestamp")?,
    })
}
