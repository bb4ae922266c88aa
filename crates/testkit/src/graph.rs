//! A local fake of the WhatsApp Cloud API send endpoint
//! (`POST /{version}/{phone_number_id}/messages`), checking the bearer token and the text and
//! template body shapes Meta documents.
//!
//! NOTE: Meta does not document which error code each malformed field returns. This fake
//! rejects every shape error with HTTP 400 and code 100 (invalid parameter), an unsupported
//! message type with 131051, and a wrong token with HTTP 401 and code 190.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::recorder::{CannedResponse, FakeServer, RecordedRequest};

/// Maximum characters of a text message body.
const MAX_TEXT_CHARS: usize = 4096;
/// Maximum bytes of `biz_opaque_callback_data`.
const MAX_CALLBACK_DATA_BYTES: usize = 512;

/// A running fake of the WhatsApp Cloud API.
#[derive(Debug)]
pub struct FakeGraph {
    server: FakeServer,
}

#[derive(Debug)]
struct FakeState {
    phone_number_id: String,
    expected_authorization: String,
    next_wamid: AtomicU64,
}

impl FakeGraph {
    /// Starts a fake for one business phone number that accepts one access token.
    pub async fn start(phone_number_id: &str, token: &str) -> FakeGraph {
        let state = Arc::new(FakeState {
            phone_number_id: phone_number_id.to_owned(),
            expected_authorization: format!("Bearer {token}"),
            next_wamid: AtomicU64::new(1),
        });
        let router = Router::new()
            .route("/{version}/{phone_number_id}/messages", post(send))
            .fallback(not_found)
            .with_state(state);
        FakeGraph {
            server: FakeServer::start("Graph API", router).await,
        }
    }

    /// Returns the API base with its version, `http://127.0.0.1:PORT/v21.0`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v21.0", self.server.address)
    }

    /// Returns the socket address the fake listens on.
    pub fn address(&self) -> SocketAddr {
        self.server.address
    }

    /// Returns every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.knobs.requests()
    }

    /// Returns the number of requests received so far.
    pub fn count(&self) -> usize {
        self.server.knobs.count()
    }

    /// Responds to the next `times` requests with `status` and `body` instead of handling them.
    pub fn fail_next(&self, times: usize, status: u16, body: Value) {
        self.fail_next_with(times, CannedResponse::new(status, body));
    }

    /// Responds to the next `times` requests with the Graph error envelope and `graph_code`.
    pub fn fail_next_with_code(&self, times: usize, http_status: u16, graph_code: u64) {
        let body = graph_error(graph_code, "failure injected by the fake");
        self.fail_next(times, http_status, body);
    }

    /// Responds to the next `times` requests with `response` instead of handling them.
    pub fn fail_next_with(&self, times: usize, response: CannedResponse) {
        self.server.knobs.fail_next(times, response);
    }

    /// Holds every later response for `delay` before sending it.
    pub fn set_delay(&self, delay: Duration) {
        self.server.knobs.set_delay(delay);
    }
}

/// Builds the Graph API error envelope with `code`.
pub fn graph_error(code: u64, message: &str) -> Value {
    json!({
        "error": {
            "message": format!("(#{code}) {message}"),
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "FAKETRACE0000000001"
        }
    })
}

async fn send(
    State(state): State<Arc<FakeState>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == state.expected_authorization.as_bytes());
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token");
    }
    if !version.starts_with('v') {
        return error(StatusCode::BAD_REQUEST, 100, "Unknown API version");
    }
    if phone_number_id != state.phone_number_id {
        let message = format!("Object with ID '{phone_number_id}' does not exist");
        return error(StatusCode::BAD_REQUEST, 100, &message);
    }
    let request: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return error(StatusCode::BAD_REQUEST, 100, "Body must be a JSON object"),
    };
    let to = match check_send(&request) {
        Ok(to) => to,
        Err((code, message)) => return error(StatusCode::BAD_REQUEST, code, &message),
    };

    let serial = state.next_wamid.fetch_add(1, Ordering::SeqCst);
    let response = json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.FAKE{serial}"), "message_status": "accepted"}]
    });
    (StatusCode::OK, axum::Json(response)).into_response()
}

/// Checks a send body and returns the recipient, or the Graph code and message to reject it.
fn check_send(request: &Map<String, Value>) -> Result<String, (u64, String)> {
    let invalid = |message: &str| (100, message.to_owned());
    if request.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(invalid("messaging_product must be \"whatsapp\""));
    }
    let recipient_type = request.get("recipient_type");
    if recipient_type.is_some_and(|kind| kind.as_str() != Some("individual")) {
        return Err(invalid("recipient_type must be \"individual\""));
    }
    let to = request.get("to").and_then(Value::as_str).unwrap_or("");
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("to must be the phone number's digits without '+'"));
    }
    if let Some(data) = request.get("biz_opaque_callback_data") {
        let fits = data
            .as_str()
            .is_some_and(|text| text.len() <= MAX_CALLBACK_DATA_BYTES);
        if !fits {
            return Err(invalid(
                "biz_opaque_callback_data must be a string of 512 bytes at most",
            ));
        }
    }
    match request.get("type").and_then(Value::as_str) {
        Some("text") => check_text(request.get("text")).map_err(|message| invalid(&message))?,
        Some("template") => {
            check_template(request.get("template")).map_err(|message| invalid(&message))?;
        }
        Some(other) => return Err((131051, format!("Unsupported message type {other}"))),
        None => return Err(invalid("type is missing")),
    }
    Ok(to.to_owned())
}

fn check_text(text: Option<&Value>) -> Result<(), String> {
    let body = text
        .and_then(|text| text.get("body"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if body.trim().is_empty() {
        return Err("text.body must be a non-empty string".to_owned());
    }
    if body.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "text.body is longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    Ok(())
}

fn check_template(template: Option<&Value>) -> Result<(), String> {
    let Some(template) = template else {
        return Err("template is missing".to_owned());
    };
    let name = template.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return Err("template.name is missing".to_owned());
    }
    let code = template
        .pointer("/language/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    if code.is_empty() {
        return Err("template.language.code is missing".to_owned());
    }
    let components = match template.get("components") {
        None => return Ok(()),
        Some(Value::Array(components)) => components,
        Some(_) => return Err("template.components must be a list".to_owned()),
    };
    components.iter().try_for_each(check_component)
}

fn check_component(component: &Value) -> Result<(), String> {
    let kind = component.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "header" | "body" => {}
        "button" => {
            let index = component.get("index").and_then(Value::as_str).unwrap_or("");
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return Err("button index must be a string of digits".to_owned());
            }
            if component.get("sub_type").and_then(Value::as_str).is_none() {
                return Err("button sub_type is missing".to_owned());
            }
        }
        other => return Err(format!("unknown component type {other:?}")),
    }
    let Some(Value::Array(parameters)) = component.get("parameters") else {
        return Err(format!("{kind} component needs a parameters list"));
    };
    for parameter in parameters {
        let is_text = parameter.get("type").and_then(Value::as_str) == Some("text");
        let text = parameter.get("text").and_then(Value::as_str).unwrap_or("");
        if !is_text || text.trim().is_empty() {
            return Err(format!(
                "{kind} parameters must be {{type: text, text: non-empty}}"
            ));
        }
    }
    Ok(())
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, 100, "Unknown path")
}

fn error(status: StatusCode, code: u64, message: &str) -> Response {
    (status, axum::Json(graph_error(code, message))).into_response()
}
