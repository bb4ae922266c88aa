//! Real `nudge serve` processes for the fault tests. Each runs on its own port against one
//! database, writes its stderr to a log file, and is killed when its guard is dropped. The
//! module also has the PostgreSQL queries, event bodies and polling helpers the tests share.

#![allow(dead_code)]

pub mod cluster;

use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nudge_testkit::{FakeSmsLeopard, POSTGRES_VAR, REQUIRE_POSTGRES_VAR};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The binary under test, built by Cargo for this test target.
pub const NUDGE: &str = env!("CARGO_BIN_EXE_nudge");
/// The Shopify client secret the instances verify webhooks with.
pub const SHOPIFY_SECRET: &str = "shpss_fault_test_secret";
pub const LEOPARD_KEY: &str = "fault-test-key";
pub const LEOPARD_SECRET: &str = "fault-test-secret";

/// Maximum wait for `GET /readyz` to return 200 after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Interval between two polls.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Returns the base URL of the PostgreSQL server named by `NUDGE_TEST_POSTGRES_URL`, or
/// `None` after printing that the test is skipped.
///
/// # Panics
///
/// Panics when the variable is missing and `NUDGE_REQUIRE_POSTGRES=1`.
pub fn postgres_base() -> Option<String> {
    match std::env::var(POSTGRES_VAR) {
        Ok(base) if !base.is_empty() => Some(base),
        _ if std::env::var(REQUIRE_POSTGRES_VAR).as_deref() == Ok("1") => {
            panic!("{REQUIRE_POSTGRES_VAR}=1 but {POSTGRES_VAR} is not set")
        }
        _ => {
            // Past the test harness's output capture, so the skip shows in a normal run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: this test needs PostgreSQL; set {POSTGRES_VAR}=postgres://USER@HOST:PORT/DB to run it"
            );
            None
        }
    }
}

/// Creates an empty database on the server of `NUDGE_TEST_POSTGRES_URL` and returns its URL,
/// or `None` when the test is skipped.
pub async fn fresh_database() -> Option<String> {
    let base = postgres_base()?;
    Some(nudge_testkit::fresh_postgres(&base).await)
}

/// Returns a port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Writes flow files into a new temporary folder.
pub fn flow_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a flow folder");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a flow file");
    }
    dir
}

/// Returns a cart flow with one SMS step.
pub fn sms_flow(name: &str, idle: &str, wait: &str) -> String {
    format!(
        r#"name = "{name}"
trigger = "cart_abandoned"
idle = "{idle}"
quiet_hours = "off"
holdout = 0

[[steps]]
wait = "{wait}"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting: [Link]"
"#
    )
}

/// Returns a cart flow with one WhatsApp step, which the instances send through the sandbox.
/// A cart has no open 24-hour customer-service window, so the template goes, not the text.
pub fn whatsapp_flow(name: &str, idle: &str) -> String {
    format!(
        r#"name = "{name}"
trigger = "cart_abandoned"
idle = "{idle}"
quiet_hours = "off"
holdout = 0

[[steps]]
wait = "0s"
channel = "whatsapp"
text = "Hi [Name], your cart is saved for you: [Link]"
template = {{ name = "cart_reminder", language = "en", params = ["[First Name]", "[Link]"] }}
"#
    )
}

/// Creates an API key for the default workspace with `nudge api-key create`, which also
/// applies the migrations.
pub async fn create_api_key(database: &str) -> String {
    let mut command = tokio::process::Command::new(NUDGE);
    command.args(["api-key", "create", "--database", database]);
    for (key, _) in std::env::vars() {
        if key.starts_with("NUDGE_") {
            command.env_remove(key);
        }
    }
    let output = command.output().await.expect("run nudge api-key create");
    assert!(
        output.status.success(),
        "nudge api-key create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("API key is UTF-8")
        .trim()
        .to_string()
}

/// How to start one `nudge serve` process.
#[derive(Clone)]
pub struct Spec {
    /// `workers.instance`, recorded on claims.
    pub name: String,
    pub database: String,
    pub flows: PathBuf,
    /// `NUDGE_*` variables beyond the database, flows and instance name.
    pub env: Vec<(String, String)>,
    logs: Arc<tempfile::TempDir>,
}

impl Spec {
    pub fn new(database: &str, flows: &Path) -> Spec {
        Spec {
            name: "nudge-a".into(),
            database: database.to_string(),
            flows: flows.to_path_buf(),
            env: vec![("NUDGE_SHOPIFY_WEBHOOK_SECRET".into(), SHOPIFY_SECRET.into())],
            logs: Arc::new(tempfile::tempdir().expect("create a log folder")),
        }
    }

    /// Returns the same setup under another instance name.
    pub fn named(&self, name: &str) -> Spec {
        Spec {
            name: name.to_string(),
            ..self.clone()
        }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Spec {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sends SMS through `fake` instead of the sandbox.
    pub fn with_fake(self, fake: &FakeSmsLeopard) -> Spec {
        self.with_env("NUDGE_SMS_PROVIDER", "smsleopard")
            .with_env("NUDGE_SMSLEOPARD_BASE_URL", &fake.base_url())
            .with_env("NUDGE_SMSLEOPARD_API_KEY", LEOPARD_KEY)
            .with_env("NUDGE_SMSLEOPARD_API_SECRET", LEOPARD_SECRET)
            .with_env("NUDGE_SMSLEOPARD_SOURCE", "DUKABORA")
    }
}

/// A running `nudge serve` process, killed with SIGKILL when dropped.
pub struct Instance {
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub log: PathBuf,
    child: Option<Child>,
    /// Keeps the log folder while the process runs, even when the `Spec` is gone.
    _logs: Arc<tempfile::TempDir>,
}

impl Instance {
    /// Starts `nudge serve` on a free port and waits until `GET /readyz` returns 200.
    ///
    /// # Panics
    ///
    /// Panics with the end of the log when the process exits or does not become ready.
    pub async fn start(spec: &Spec) -> Instance {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let base = format!("http://{address}");
        let log = next_log_path(spec.logs.path(), &spec.name);
        let stderr = File::create(&log).expect("create a log file");
        let mut command = Command::new(NUDGE);
        command
            .args(["serve", "--listen", &address, "--database", &spec.database])
            .arg("--flows")
            .arg(&spec.flows)
            .args(["--public-url", &base])
            .current_dir(spec.logs.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        // Inherited NUDGE_* variables (such as NUDGE_TEST_POSTGRES_URL) are unknown keys to
        // the configuration, which rejects them.
        for (key, _) in std::env::vars() {
            if key.starts_with("NUDGE_") {
                command.env_remove(key);
            }
        }
        command
            .env("NUDGE_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .env("NUDGE_WORKERS_INSTANCE", &spec.name);
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start nudge serve");
        let mut instance = Instance {
            name: spec.name.clone(),
            base,
            log,
            child: Some(child),
            _logs: spec.logs.clone(),
        };
        instance.wait_ready().await;
        instance
    }

    async fn wait_ready(&mut self) {
        let client = http_client();
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit_status() {
                panic!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            let ready = client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if ready {
                return;
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "{} not ready after {READY_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("instance is running").id()
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM with `kill -TERM PID`, without waiting.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit and returns its status.
    ///
    /// # Panics
    ///
    /// Panics when it is still running after `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit_status() {
                self.child = None;
                return status;
            }
            if started.elapsed() > deadline {
                panic!(
                    "{} still running {deadline:?} after it was told to stop:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the whole log the process wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Returns the Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = http_client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200, "{}: GET /metrics", self.name);
        response.text().await.expect("read /metrics")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- last log lines of {} ({}) ---\n{}",
                self.name,
                self.log.display(),
                self.log_tail(30)
            );
        }
        self.kill();
    }
}

/// Starts two instances at once.
pub async fn start_two(first: &Spec, second: &Spec) -> (Instance, Instance) {
    tokio::join!(Instance::start(first), Instance::start(second))
}

/// Returns a log file name not used yet by this instance name, so a restart keeps the first
/// log.
fn next_log_path(dir: &Path, name: &str) -> PathBuf {
    (1..)
        .map(|run| dir.join(format!("{name}-{run}.log")))
        .find(|path| !path.exists())
        .expect("a free log file name")
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build an HTTP client")
}

/// Sums the samples of a Prometheus metric whose labels include every `name="value"` pair
/// in `labels`.
pub fn metric_total(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let rest = series.strip_prefix(metric).unwrap_or("?");
            (rest.is_empty() || rest.starts_with('{'))
                && labels
                    .iter()
                    .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .fold(0.0, |total, value| total + value)
}

/// Returns the current time in RFC 3339, as shops send it.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Returns a Kenyan mobile number in E.164 form, distinct for each `index` below 10^8.
pub fn phone(index: usize) -> String {
    format!("+2547{index:08}")
}

/// Returns a `checkout.updated` body for `POST /v1/events`.
pub fn checkout_event(id: &str, phone: &str, occurred_at: &str) -> Value {
    json!({
        "type": "checkout.updated",
        "id": id,
        "occurred_at": occurred_at,
        "contact": { "phone": phone, "first_name": "Amina" },
        "items": [{ "product_id": "p1", "title": "Test Kettle 1.7L", "quantity": 1, "price": "4850.00" }],
        "total": "4850.00",
        "currency": "KES",
        "recovery_url": format!("https://shop.example/cart/{id}")
    })
}

/// Posts events to `POST /v1/events` and returns the status and the JSON body (`null` when
/// the body is not JSON).
pub async fn post_events(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Returns the Shopify checkout example with its own token, phone, customer and update time.
pub fn shopify_checkout(token: &str, phone: &str, customer_id: u64, updated_at: &str) -> Value {
    let mut body = nudge_testkit::shared_json("providers/payloads/shopify_checkouts_create.json");
    body["token"] = json!(token);
    body["cart_token"] = json!(format!("cart-{token}"));
    body["email"] = json!(format!("{token}@example.com"));
    body["created_at"] = json!(updated_at);
    body["updated_at"] = json!(updated_at);
    body["abandoned_checkout_url"] = json!(format!("https://shop.example/checkouts/{token}"));
    for path in [
        "/phone",
        "/sms_marketing_phone",
        "/billing_address/phone",
        "/shipping_address/phone",
        "/customer/phone",
    ] {
        if let Some(field) = body.pointer_mut(path) {
            *field = json!(phone);
        }
    }
    body["customer"]["id"] = json!(customer_id);
    body["customer"]["email"] = json!(format!("{token}@example.com"));
    body
}

/// An HTTP response as the tests inspect it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The JSON body, or `null` when the body is not JSON.
    pub body: Value,
}

/// Posts a signed Shopify webhook with the given topic and `X-Shopify-Webhook-Id`.
pub async fn post_shopify(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    body: &[u8],
    webhook_id: &str,
) -> Result<Answer, reqwest::Error> {
    let signature = nudge_server::webhooks::sign_base64(SHOPIFY_SECRET, body);
    let response = client
        .post(format!("{base}/webhooks/shopify"))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Hmac-Sha256", signature)
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Shop-Domain", "test-shop.myshopify.com")
        .body(body.to_vec())
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .expect("connect to the test database")
}

/// Runs a query that returns one `BIGINT`, such as a `COUNT(*)`.
pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Runs a query that returns rows of one text column and one `BIGINT` column.
pub async fn pairs(pool: &PgPool, sql: &str) -> Vec<(String, i64)> {
    sqlx::query_as::<_, (String, i64)>(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Runs a query that returns rows of one text column.
pub async fn texts(pool: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Polls `check` until it returns `Ok`, printing its progress now and then.
///
/// # Panics
///
/// Panics with the last progress when `deadline` passes first.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(progress) if started.elapsed() > deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last state: {progress}")
            }
            Err(progress) => {
                if last_report.elapsed() > Duration::from_secs(15) {
                    eprintln!("waiting for {what}: {progress}");
                    last_report = Instant::now();
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Runs the fault tests one at a time: each starts several processes and loads the machine,
/// and a test that stops a database must not overlap another test's deadline.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
