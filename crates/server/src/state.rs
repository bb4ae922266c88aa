//! Shared state of the server: the store, the engine, the clock, the providers, and the
//! settings that requests and workers read.

use std::sync::Arc;
use std::time::Duration;

use nudge_core::channel::{Channel, ChannelKind};
use nudge_core::engine::Engine;
use nudge_core::store::Store;
use nudge_core::time::Clock;
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::auth::KeyCache;
use crate::ingest::IngestWriter;

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Secrets that may sign Shopify webhooks: the current one first, then a previous one
    /// still accepted during a rotation.
    pub shopify_secrets: Vec<SecretString>,
    pub woocommerce_secret: Option<SecretString>,
    /// The token Meta sends in the webhook verification handshake.
    pub whatsapp_verify_token: Option<SecretString>,
    /// The Meta app secret that signs WhatsApp webhooks (`X-Hub-Signature-256`).
    pub whatsapp_app_secret: Option<SecretString>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The workspace that store webhooks belong to.
    pub webhook_workspace_id: i64,
    pub workers: WorkerConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            shopify_secrets: Vec::new(),
            woocommerce_secret: None,
            whatsapp_verify_token: None,
            whatsapp_app_secret: None,
            body_limit: 10 * 1024 * 1024,
            webhook_workspace_id: 1,
            workers: WorkerConfig::default(),
        }
    }
}

/// Settings of the timer and send workers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name recorded on claims; unique per process.
    pub instance: String,
    /// Maximum wait between two looks at the database, whatever the wake-ups.
    pub poll_interval: Duration,
    pub timer_batch: usize,
    pub timer_lease: Duration,
    /// Messages claimed and sent at once.
    pub send_concurrency: usize,
    /// How long a claimed message stays `sending` before reconciliation may look at it;
    /// longer than any provider call.
    pub send_lease: Duration,
    pub send_timeout: Duration,
    pub max_attempts: u32,
    /// Judge due-ness by the database's clock (PostgreSQL) instead of the process clock.
    pub database_clock: bool,
    /// Time allowed for in-flight sends at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            instance: format!("nudge-{}", std::process::id()),
            poll_interval: Duration::from_millis(500),
            timer_batch: 500,
            timer_lease: Duration::from_secs(30),
            send_concurrency: 16,
            send_lease: Duration::from_secs(120),
            send_timeout: Duration::from_secs(15),
            max_attempts: 5,
            database_clock: false,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// The providers messages go out through.
#[derive(Clone)]
pub struct Channels {
    pub sms: Arc<dyn Channel>,
    pub whatsapp: Option<Arc<dyn Channel>>,
}

impl Channels {
    pub fn for_kind(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        match kind {
            ChannelKind::Sms => Some(&self.sms),
            ChannelKind::Whatsapp => self.whatsapp.as_ref(),
        }
    }
}

/// Signals that wake the workers before their next poll.
#[derive(Debug, Default)]
pub struct Wakeups {
    pub timers: Notify,
    pub dispatch: Notify,
}

impl Wakeups {
    pub fn all(&self) {
        self.timers.notify_one();
        self.dispatch.notify_one();
    }
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub channels: Channels,
    pub config: AppConfig,
    pub writer: IngestWriter,
    pub keys: KeyCache,
    pub wake: Arc<Wakeups>,
    pub unknown_topics: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The running application, cheap to clone.
#[derive(Clone)]
pub struct App(pub(crate) Arc<Inner>);

impl App {
    /// Builds the app and starts its ingest writer. Call `workers::spawn` to start the
    /// timer and send workers.
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<Engine>,
        clock: Arc<dyn Clock>,
        channels: Channels,
        config: AppConfig,
    ) -> App {
        // Installed now, so that counts from before the first scrape of /metrics are kept.
        let _ = crate::metrics::handle();
        let wake = Arc::new(Wakeups::default());
        let writer =
            IngestWriter::start(store.clone(), engine.clone(), clock.clone(), wake.clone());
        App(Arc::new(Inner {
            store,
            engine,
            clock,
            channels,
            config,
            writer,
            keys: KeyCache::default(),
            wake,
            unknown_topics: Default::default(),
        }))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.0.engine
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    pub fn channels(&self) -> &Channels {
        &self.0.channels
    }

    pub fn config(&self) -> &AppConfig {
        &self.0.config
    }

    /// Wakes the workers, for example after a test moved the clock.
    pub fn wake(&self) {
        self.0.wake.all();
    }

    pub(crate) fn wakeups(&self) -> &Arc<Wakeups> {
        &self.0.wake
    }
}
