//! A local fake of the SMSLeopard SMS API (`POST /v1/sms/send` and
//! `GET /v1/delivery_reports/{id}`), checking credentials and body shape as the provider's
//! documentation describes them.
//!
//! NOTE: SMSLeopard documents only the 400 (missing sender) and 404 (unknown sender) error
//! texts. The 401 and invalid-number responses here follow the same `{success, message,
//! recipients}` shape, but their status codes and wording are this fake's choice.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::recorder::{CannedResponse, FakeServer, RecordedRequest, lock};

/// Top-level keys the send endpoint accepts.
const SEND_KEYS: [&str; 6] = [
    "source",
    "message",
    "destination",
    "multi",
    "status_url",
    "status_secret",
];

/// Setup of a [`FakeSmsLeopard`].
#[derive(Debug, Clone, Default)]
pub struct FakeSmsLeopardOptions {
    pub api_key: String,
    pub api_secret: String,
    /// Sender IDs assigned to the account, compared without regard to case as the provider
    /// does. `None` accepts any non-empty sender ID.
    pub sender_ids: Option<Vec<String>>,
}

/// A running fake of the SMSLeopard API.
#[derive(Debug)]
pub struct FakeSmsLeopard {
    server: FakeServer,
}

#[derive(Debug)]
struct FakeState {
    expected_authorization: String,
    sender_ids: Option<Vec<String>>,
    issued_ids: Mutex<HashSet<String>>,
}

impl FakeSmsLeopard {
    /// Starts a fake that accepts these credentials and any sender ID.
    pub async fn start(api_key: &str, api_secret: &str) -> FakeSmsLeopard {
        FakeSmsLeopard::start_with(FakeSmsLeopardOptions {
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
            sender_ids: None,
        })
        .await
    }

    /// Starts a fake with the given credentials and assigned sender IDs.
    pub async fn start_with(options: FakeSmsLeopardOptions) -> FakeSmsLeopard {
        let credentials = format!("{}:{}", options.api_key, options.api_secret);
        let state = Arc::new(FakeState {
            expected_authorization: format!("Basic {}", STANDARD.encode(credentials)),
            sender_ids: options.sender_ids,
            issued_ids: Mutex::new(HashSet::new()),
        });
        let router = Router::new()
            .route("/v1/sms/send", post(send))
            .route("/v1/delivery_reports/{id}", get(delivery_report))
            .fallback(not_found)
            .with_state(state);
        FakeSmsLeopard {
            server: FakeServer::start("SMSLeopard", router).await,
        }
    }

    /// Returns the API base, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.address)
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

    /// Responds to the next `times` requests with `response` instead of handling them.
    pub fn fail_next_with(&self, times: usize, response: CannedResponse) {
        self.server.knobs.fail_next(times, response);
    }

    /// Holds every later response for `delay` before sending it.
    pub fn set_delay(&self, delay: Duration) {
        self.server.knobs.set_delay(delay);
    }
}

async fn send(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, "Invalid API key or secret");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return failure(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/json",
        );
    }
    let request: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "Request body must be a JSON object",
            );
        }
    };
    let numbers = match check_send(&state, &request) {
        Ok(numbers) => numbers,
        Err((status, message)) => return failure(status, &message),
    };

    let mut recipients = Vec::new();
    for number in &numbers {
        let id = uuid::Uuid::new_v4().to_string();
        lock(&state.issued_ids).insert(id.clone());
        recipients.push(json!({"id": id, "cost": 0.9, "number": number, "status": "queued"}));
    }
    let summary = format!(
        "Sent to {count}/{count}. Cost KES {cost:.2}",
        count = numbers.len(),
        cost = 0.9 * numbers.len() as f64
    );
    let response = json!({"success": true, "message": summary, "recipients": recipients});
    (StatusCode::CREATED, axum::Json(response)).into_response()
}

/// Checks a send body and returns the destination numbers, or the status and message the
/// provider would reject it with.
fn check_send(
    state: &FakeState,
    request: &Map<String, Value>,
) -> Result<Vec<String>, (StatusCode, String)> {
    let bad_request = |message: String| (StatusCode::BAD_REQUEST, message);
    if let Some(key) = request
        .keys()
        .find(|key| !SEND_KEYS.contains(&key.as_str()))
    {
        return Err(bad_request(format!("Unknown field {key}")));
    }

    let source = non_empty_str(request.get("source"))
        .ok_or_else(|| bad_request("Source (sender id) is not defined".to_owned()))?;
    let assigned = state.sender_ids.as_deref();
    if assigned.is_some_and(|ids| !ids.iter().any(|id| id.eq_ignore_ascii_case(source))) {
        let message =
            format!("Unrecognized sender id. Sender ID {source} is not assigned an account");
        return Err((StatusCode::NOT_FOUND, message));
    }
    if non_empty_str(request.get("message")).is_none() {
        return Err(bad_request("Message must be a non-empty string".to_owned()));
    }
    let multi = match request.get("multi") {
        None => false,
        Some(Value::Bool(multi)) => *multi,
        Some(_) => return Err(bad_request("multi must be a boolean".to_owned())),
    };
    if request.contains_key("status_url") {
        if non_empty_str(request.get("status_url")).is_none() {
            return Err(bad_request(
                "status_url must be a non-empty string".to_owned(),
            ));
        }
        if non_empty_str(request.get("status_secret")).is_none() {
            return Err(bad_request(
                "status_secret is required with status_url".to_owned(),
            ));
        }
    }

    let Some(Value::Array(destinations)) = request.get("destination") else {
        return Err(bad_request(
            "Destination must be a list of numbers".to_owned(),
        ));
    };
    if destinations.is_empty() {
        return Err(bad_request("Destination must not be empty".to_owned()));
    }
    destinations
        .iter()
        .map(|destination| check_destination(destination, multi).map_err(bad_request))
        .collect()
}

fn check_destination(destination: &Value, multi: bool) -> Result<String, String> {
    let Value::Object(fields) = destination else {
        return Err("Each destination must be an object with a number".to_owned());
    };
    let allowed: &[&str] = if multi {
        &["number", "message"]
    } else {
        &["number"]
    };
    if let Some(key) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!("Unknown destination field {key}"));
    }
    if multi && non_empty_str(fields.get("message")).is_none() {
        return Err("Each destination needs a message when multi is true".to_owned());
    }
    let number = fields.get("number").and_then(Value::as_str).unwrap_or("");
    if !is_e164(number) {
        return Err(format!(
            "Invalid phone number {number:?}: expected + and 8 to 15 digits"
        ));
    }
    Ok(number.to_owned())
}

async fn delivery_report(
    State(state): State<Arc<FakeState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, "Invalid API key or secret");
    }
    if !lock(&state.issued_ids).contains(&id) {
        return failure(StatusCode::NOT_FOUND, "Delivery report not found");
    }
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    // The provider documents 201 for this GET as well.
    let report = json!({"id": id, "reason": "", "status": "DELIVRD", "time": time});
    (StatusCode::CREATED, axum::Json(report)).into_response()
}

async fn not_found() -> Response {
    failure(StatusCode::NOT_FOUND, "Not found")
}

fn is_authorized(state: &FakeState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == state.expected_authorization.as_bytes())
}

fn failure(status: StatusCode, message: &str) -> Response {
    let body = json!({"success": false, "message": message, "recipients": null});
    (status, axum::Json(body)).into_response()
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
}

/// E.164 as the fake accepts it: `+` followed by 8 to 15 digits.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}
