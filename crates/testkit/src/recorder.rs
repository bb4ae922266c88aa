//! Machinery every fake shares: the listener on `127.0.0.1:0`, the request log, and the knobs
//! that inject failures and delays in front of the fake's own handlers.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Maximum request body a fake reads. Both providers' send bodies are far smaller.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One request a fake received, recorded before any check or injected failure.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The URL path without the query string, such as `/v1/sms/send`.
    pub path: String,
    /// Header values by lower-case name, with repeated headers joined by `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, a JSON string with the raw text when it is not JSON, and
    /// `null` when it is empty.
    pub body: Value,
    pub at: Instant,
}

impl RecordedRequest {
    /// Returns a header value by name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A response a fake returns in place of its normal handling, set with `fail_next_with`.
#[derive(Debug, Clone)]
pub struct CannedResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Value,
}

impl CannedResponse {
    /// Creates a JSON response with `status`.
    ///
    /// # Panics
    ///
    /// Panics when `status` is not a valid HTTP status code (100 to 999).
    pub fn new(status: u16, body: Value) -> CannedResponse {
        let status = match StatusCode::from_u16(status) {
            Ok(status) => status,
            Err(error) => panic!("invalid HTTP status {status}: {error}"),
        };
        CannedResponse {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a response header, such as `Retry-After`.
    ///
    /// # Panics
    ///
    /// Panics when the name or value is not valid in an HTTP header.
    pub fn with_header(mut self, name: &str, value: &str) -> CannedResponse {
        let parsed = (HeaderName::try_from(name), HeaderValue::from_str(value));
        match parsed {
            (Ok(name), Ok(value)) => self.headers.push((name, value)),
            _ => panic!("invalid header {name}: {value}"),
        }
        self
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// State shared between a fake's handle and its server task.
#[derive(Debug, Default)]
pub(crate) struct Knobs {
    requests: Mutex<Vec<RecordedRequest>>,
    failures: Mutex<VecDeque<CannedResponse>>,
    delay: Mutex<Duration>,
}

impl Knobs {
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn count(&self) -> usize {
        lock(&self.requests).len()
    }

    pub(crate) fn fail_next(&self, times: usize, response: CannedResponse) {
        let mut failures = lock(&self.failures);
        failures.extend(std::iter::repeat_n(response, times));
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        *lock(&self.delay) = delay;
    }
}

/// A running fake server, whose task stops when this is dropped.
#[derive(Debug)]
pub(crate) struct FakeServer {
    pub(crate) address: SocketAddr,
    pub(crate) knobs: Arc<Knobs>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves `router` behind the recording and failure layer.
    ///
    /// # Panics
    ///
    /// Panics when no local port can be bound.
    pub(crate) async fn start(name: &str, router: Router) -> FakeServer {
        let knobs = Arc::new(Knobs::default());
        let router = router.layer(middleware::from_fn_with_state(knobs.clone(), intercept));

        let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
            Ok(listener) => listener,
            Err(error) => panic!("failed to bind fake {name} to 127.0.0.1:0: {error}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => panic!("failed to read the address of fake {name}: {error}"),
        };
        let task = tokio::spawn(async move {
            // The server only stops when the task is aborted, so an error here is the
            // listener failing, which the test notices as refused connections.
            let _ = axum::serve(listener, router).await;
        });
        FakeServer {
            address,
            knobs,
            task,
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records the request, waits out the configured delay, and returns a queued failure in
/// place of the handler's response when there is one.
async fn intercept(State(knobs): State<Arc<Knobs>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let message = format!("failed to read request body: {error}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    lock(&knobs.requests).push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: header_map(&parts.headers),
        body: body_value(&bytes),
        at: Instant::now(),
    });

    let delay = *lock(&knobs.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let failure = lock(&knobs.failures).pop_front();
    if let Some(failure) = failure {
        return failure.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

fn body_value(bytes: &Bytes) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Locks a mutex, ignoring poisoning because a panicking test thread leaves the log usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
