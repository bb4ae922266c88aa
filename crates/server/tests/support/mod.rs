//! `TestApp`: the real server on 127.0.0.1:0 with a fresh database, a clock the test moves,
//! and the sandbox channel (or a provider fake). Workers do not run in the background; the
//! test calls `run_due` after moving the clock, so nothing waits on a timer.

#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use nudge_core::channel::{Channel, ChannelKind};
use nudge_core::engine::{CheckoutState, Engine, Settings};
use nudge_core::flow::{Flow, FlowSet};
use nudge_core::store::Store;
use nudge_core::time::{Clock, ManualClock, Timestamp};
use nudge_server::workers::{dispatcher, scheduler};
use nudge_server::{App, AppConfig, Channels, WorkerConfig};
use nudge_store::{ConnectOptions, SqlStore};
use nudge_testkit::TestDb;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use nudge_testkit::{databases, shared_data, shared_json};

pub const SHOPIFY_SECRET: &str = "shpss_test_secret";
pub const WOO_SECRET: &str = "woo_test_secret";
pub const WHATSAPP_VERIFY_TOKEN: &str = "verify-me-please";
pub const WHATSAPP_APP_SECRET: &str = "whatsapp_app_secret_for_tests";

/// A cart flow that goes idle after 2 s, with two SMS steps 20 minutes apart.
pub const CART_FLOW: &str = r#"
name = "cart-recovery"
trigger = "cart_abandoned"
idle = "2s"
quiet_hours = "off"
holdout = 0
attribution_window = "5d"

[[steps]]
wait = "0s"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting! [Link]"

[[steps]]
wait = "20m"
channel = "sms"
text = "Last call for your [Product Name], [Name]: [Link]"
"#;

pub struct TestApp {
    pub db: &'static str,
    pub base: String,
    pub app: App,
    pub store: Arc<SqlStore>,
    pub clock: Arc<ManualClock>,
    pub api_key: String,
    /// Secret that the server verifies Shopify webhooks with, and that `shopify` signs with.
    pub shopify_secret: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    _database: Option<TestDb>,
}

pub struct Options {
    pub flows: Vec<String>,
    pub start: Timestamp,
    pub settings: Settings,
    /// An SMS channel to use instead of the sandbox.
    pub sms: Option<Arc<dyn Channel>>,
    /// A WhatsApp channel to use instead of the sandbox.
    pub whatsapp: Option<Arc<dyn Channel>>,
    pub body_limit: usize,
    /// Shopify webhook secret, or `SHOPIFY_SECRET` when `None`.
    pub shopify_secret: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flows: vec![CART_FLOW.to_string()],
            start: "2026-01-15T07:05:00Z".parse().unwrap(),
            settings: Settings::default(),
            sms: None,
            whatsapp: None,
            body_limit: 10 * 1024 * 1024,
            shopify_secret: None,
        }
    }
}

impl TestApp {
    pub async fn spawn(database: TestDb) -> TestApp {
        TestApp::spawn_with(database, Options::default()).await
    }

    pub async fn spawn_with(database: TestDb, options: Options) -> TestApp {
        let mut app = TestApp::spawn_on(database.name, &database.url.clone(), options).await;
        app._database = Some(database);
        app
    }

    /// An app on an existing database, which outlives the app (for restart tests).
    pub async fn spawn_on(name: &'static str, url: &str, options: Options) -> TestApp {
        let store = Arc::new(
            SqlStore::open(url, &ConnectOptions::default())
                .await
                .unwrap_or_else(|error| panic!("open {name}: {error}")),
        );
        let clock = Arc::new(ManualClock::new(options.start));
        let flows = options
            .flows
            .iter()
            .enumerate()
            .map(|(index, text)| Flow::parse(text, &format!("test-{index}.toml")).unwrap())
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let engine = Arc::new(Engine::new(
            FlowSet::new(flows).unwrap(),
            Settings {
                public_url: base.clone(),
                ..options.settings
            },
        ));
        let dyn_store: Arc<dyn Store> = store.clone();
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let sandbox = |kind| -> Arc<dyn Channel> {
            Arc::new(nudge_channels::SandboxChannel::new(
                kind,
                dyn_store.clone(),
                dyn_clock.clone(),
            ))
        };
        let channels = Channels {
            sms: options.sms.unwrap_or_else(|| sandbox(ChannelKind::Sms)),
            whatsapp: Some(
                options
                    .whatsapp
                    .unwrap_or_else(|| sandbox(ChannelKind::Whatsapp)),
            ),
        };
        let shopify_secret = options
            .shopify_secret
            .unwrap_or_else(|| SHOPIFY_SECRET.to_string());
        let config = AppConfig {
            shopify_secrets: vec![shopify_secret.clone().into()],
            woocommerce_secret: Some(WOO_SECRET.to_string().into()),
            whatsapp_verify_token: Some(WHATSAPP_VERIFY_TOKEN.to_string().into()),
            whatsapp_app_secret: Some(WHATSAPP_APP_SECRET.to_string().into()),
            body_limit: options.body_limit,
            workers: WorkerConfig {
                instance: format!("test-{name}"),
                ..WorkerConfig::default()
            },
            ..AppConfig::default()
        };
        let app = App::new(dyn_store.clone(), engine, dyn_clock, channels, config);
        let shutdown = CancellationToken::new();
        tokio::spawn(nudge_server::serve(app.clone(), listener, shutdown.clone()));
        let key = "nk_test_key_for_this_app";
        let hash = nudge_server::auth::hash_key(key);
        if store.workspace_for_key(&hash).await.unwrap().is_none() {
            store
                .create_api_key(1, &hash, "test", options.start)
                .await
                .unwrap();
        }
        TestApp {
            db: name,
            base,
            app,
            store,
            clock,
            api_key: key.to_string(),
            shopify_secret,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            shutdown,
            _database: None,
        }
    }

    /// Fires every due timer and sends every due message, until nothing is left to do now.
    pub async fn run_due(&self) {
        let never = CancellationToken::new();
        loop {
            let fired = scheduler::fire_once(&self.app).await.unwrap();
            let sent = dispatcher::dispatch_once(&self.app, &never).await.unwrap();
            if fired.claimed == 0 && sent.claimed == 0 {
                break;
            }
        }
    }

    /// Moves the clock and runs what became due.
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.run_due().await;
    }

    pub async fn post_events(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts raw bytes to a Shopify webhook signed with `secret`.
    pub async fn shopify_raw(
        &self,
        topic: &str,
        body: &[u8],
        webhook_id: &str,
        signature: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/shopify", self.base))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Hmac-Sha256", signature)
            .header("X-Shopify-Webhook-Id", webhook_id)
            .header("X-Shopify-Shop-Domain", "test-shop.myshopify.com")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn shopify(&self, topic: &str, body: &Value, webhook_id: &str) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = nudge_server::webhooks::sign_base64(&self.shopify_secret, &bytes);
        self.shopify_raw(topic, &bytes, webhook_id, &signature)
            .await
    }

    pub async fn woocommerce(&self, topic: &str, body: &Value) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).unwrap();
        self.http
            .post(format!("{}/webhooks/woocommerce", self.base))
            .header("Content-Type", "application/json")
            .header("X-WC-Webhook-Topic", topic)
            .header(
                "X-WC-Webhook-Signature",
                nudge_server::webhooks::sign_base64(WOO_SECRET, &bytes),
            )
            .header("X-WC-Webhook-Delivery-ID", "d-1")
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/messages` with a query string such as `status=sent`.
    pub async fn messages(&self, query: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/messages?{query}", self.base))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.db);
        response.json().await.unwrap()
    }

    /// Messages that actually went out.
    pub async fn sent(&self) -> Vec<Value> {
        self.messages("status=sent&limit=500").await["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn figures(&self) -> nudge_core::store::Figures {
        self.store.figures(1).await.unwrap().0
    }

    /// Rows in the event log, to show that rejected requests stored nothing.
    pub async fn stored_events(&self) -> i64 {
        self.rows_in("events").await
    }

    /// Counts the rows of one table, such as `orders` or `timers`.
    pub async fn rows_in(&self, table: &str) -> i64 {
        use sqlx::Row;
        let pool = self.read_pool().await;
        let row = sqlx::query(&format!("SELECT COUNT(*) AS row_count FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        let count: i64 = row.try_get("row_count").unwrap();
        pool.close().await;
        count
    }

    /// Loads a checkout's stored state by the source's checkout id. The HTTP API does not
    /// expose checkouts, so this reads the `checkouts` table.
    pub async fn checkout(&self, external_id: &str) -> Option<CheckoutState> {
        use sqlx::Row;
        let pool = self.read_pool().await;
        let row = sqlx::query("SELECT data FROM checkouts WHERE external_id = $1")
            .bind(external_id)
            .fetch_optional(&pool)
            .await
            .unwrap();
        pool.close().await;
        row.map(|row| {
            let data: String = row.try_get("data").unwrap();
            serde_json::from_str(&data).unwrap()
        })
    }

    /// Lists every run, oldest first. The HTTP API does not expose runs, so this reads the
    /// `runs` table.
    pub async fn runs(&self) -> Vec<RunRow> {
        use sqlx::Row;
        let pool = self.read_pool().await;
        let rows = sqlx::query(
            "SELECT subject_id, status, exit_reason, credited_order, ended_at FROM runs ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.iter()
            .map(|row| RunRow {
                checkout: row.try_get("subject_id").unwrap(),
                status: row.try_get("status").unwrap(),
                exit_reason: row.try_get("exit_reason").unwrap(),
                credited_order: row.try_get("credited_order").unwrap(),
                ended_at: row
                    .try_get::<Option<i64>, _>("ended_at")
                    .unwrap()
                    .map(nudge_core::time::from_millis),
            })
            .collect()
    }

    async fn read_pool(&self) -> sqlx::AnyPool {
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(self.store.url())
            .await
            .unwrap()
    }
}

/// One row of the `runs` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// The source's id of the checkout the run is about.
    pub checkout: String,
    /// `active`, `finished` or `exited`.
    pub status: String,
    pub exit_reason: Option<String>,
    /// The order credited to the run's messages.
    pub credited_order: Option<String>,
    pub ended_at: Option<Timestamp>,
}

impl TestApp {
    /// Starts the background timer and send workers, as `nudge serve` does.
    pub fn start_workers(&self) -> nudge_server::workers::Workers {
        nudge_server::workers::spawn(&self.app, self.shutdown.clone())
    }

    /// Stops the server and its workers and closes the database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.store.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The Shopify checkout example with a given token and update time.
pub fn shopify_checkout(token: &str, updated_at: &str) -> Value {
    let mut body = shared_json("providers/payloads/shopify_checkouts_create.json");
    body["token"] = Value::from(token);
    body["updated_at"] = Value::from(updated_at);
    body["created_at"] = Value::from(updated_at);
    body
}

pub fn shopify_order(id: u64, checkout_token: &str, created_at: &str) -> Value {
    let mut body = shared_json("providers/payloads/shopify_orders_create.json");
    body["id"] = Value::from(id);
    body["checkout_token"] = Value::from(checkout_token);
    body["created_at"] = Value::from(created_at);
    body
}

impl TestApp {
    /// Every provider call the sandbox recorded, repeats included.
    pub async fn sandbox_sends(&self) -> i64 {
        self.rows_in("sandbox_outbox").await
    }
}

impl TestApp {
    /// Clicks recorded on short links.
    pub async fn count_clicks(&self) -> i64 {
        self.rows_in("clicks").await
    }
}
