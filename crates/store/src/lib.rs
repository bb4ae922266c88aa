//! SQLite and PostgreSQL stores for nudge, behind the `Store` trait of `nudge-core`.
//!
//! Both backends share one implementation over sqlx's `Any` driver: queries use `$1`-style
//! parameters, which both databases accept, and plain `BIGINT`/`TEXT` columns. Where the
//! dialects differ (claims with `FOR UPDATE SKIP LOCKED`, advisory locks, the database clock)
//! the code branches on `Backend`. Migrations are kept per backend.

mod apply;
mod chat;
mod connect;
mod keys;
mod links;
mod listen;
mod messages;
mod outbox;
mod report;
mod rows;
mod timers;

use std::time::Duration;

use async_trait::async_trait;
use nudge_core::channel::OutboundMessage;
use nudge_core::engine::Engine;
use nudge_core::store::{
    Claim, ClaimedMessage, ConversationDetail, ConversationSummary, Figures, FireReport,
    FlowFigures, HoldView, Incoming, Ingested, MessagePage, MessageQuery, ProviderStatus,
    SendResult, Store, StoreError, WakeCallback,
};
use nudge_core::time::Timestamp;
use sqlx::AnyPool;

pub use connect::{Backend, ConnectOptions};

/// A store on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    /// Writes go through this pool. On SQLite it holds one connection, so that writers
    /// queue in the pool instead of failing on the database lock.
    write: AnyPool,
    /// Reads that need no transaction.
    read: AnyPool,
    url: String,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Connects to the database named by `url` (`sqlite://…` or `postgres://…`) and applies
    /// pending migrations.
    pub async fn open(url: &str, options: &ConnectOptions) -> Result<SqlStore, StoreError> {
        let store = connect::open(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without applying migrations.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<SqlStore, StoreError> {
        connect::open(url, options).await
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        connect::migrate(self).await
    }

    pub fn kind(&self) -> Backend {
        self.backend
    }

    /// Returns the URL the store was opened with, for components that need their own connection
    /// (PostgreSQL `LISTEN`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes fails with "database
    /// is locked" when another process wrote in between, instead of waiting its turn.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let statement = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        self.write
            .begin_with(statement)
            .await
            .map_err(rows::db_error)
    }

    /// Closes the pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(rows::db_error)?;
        Ok(())
    }

    async fn default_workspace(&self) -> Result<i64, StoreError> {
        keys::default_workspace(self).await
    }

    async fn create_api_key(
        &self,
        workspace_id: i64,
        key_hash: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        keys::create(self, workspace_id, key_hash, label, now).await
    }

    async fn workspace_for_key(&self, key_hash: &str) -> Result<Option<i64>, StoreError> {
        keys::workspace_for(self, key_hash).await
    }

    async fn ingest(
        &self,
        engine: &Engine,
        batch: &[Incoming],
        now: Timestamp,
    ) -> Result<Vec<Ingested>, StoreError> {
        apply::ingest(self, engine, batch, now).await
    }

    async fn fire_due_timers(
        &self,
        engine: &Engine,
        claim: &Claim,
    ) -> Result<FireReport, StoreError> {
        timers::fire_due(self, engine, claim).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        timers::next_due(self).await
    }

    async fn claim_messages(&self, claim: &Claim) -> Result<Vec<ClaimedMessage>, StoreError> {
        outbox::claim(self, claim).await
    }

    async fn finish_send(
        &self,
        message_id: i64,
        result: &SendResult,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        outbox::finish(self, message_id, result, now).await
    }

    async fn release_claims(&self, worker: &str, unsent: &[i64]) -> Result<u64, StoreError> {
        outbox::release(self, worker, unsent).await
    }

    async fn stale_sending(&self, claim: &Claim) -> Result<Vec<ClaimedMessage>, StoreError> {
        outbox::stale(self, claim).await
    }

    async fn list_messages(
        &self,
        workspace_id: i64,
        query: &MessageQuery,
    ) -> Result<MessagePage, StoreError> {
        messages::list(self, workspace_id, query).await
    }

    async fn follow_link(
        &self,
        token: &str,
        record_click: bool,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        links::follow(self, token, record_click, now).await
    }

    async fn record_sandbox_send(
        &self,
        message: &OutboundMessage,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        outbox::record_sandbox(self, message, now).await
    }

    async fn sandbox_has(&self, message_id: i64) -> Result<bool, StoreError> {
        outbox::sandbox_has(self, message_id).await
    }

    async fn record_statuses(
        &self,
        workspace_id: i64,
        statuses: &[ProviderStatus],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        chat::record_statuses(self, workspace_id, statuses, now).await
    }

    async fn list_conversations(
        &self,
        workspace_id: i64,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        chat::list(self, workspace_id, limit).await
    }

    async fn conversation(
        &self,
        workspace_id: i64,
        id: i64,
    ) -> Result<Option<ConversationDetail>, StoreError> {
        chat::detail(self, workspace_id, id).await
    }

    async fn send_agent_message(
        &self,
        engine: &Engine,
        workspace_id: i64,
        conversation_id: i64,
        text: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        chat::send_agent_message(self, engine, workspace_id, conversation_id, text, now).await
    }

    async fn resume_conversation(
        &self,
        workspace_id: i64,
        id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        chat::resume(self, workspace_id, id, now).await
    }

    async fn holds(
        &self,
        workspace_id: i64,
        status: Option<&str>,
    ) -> Result<Vec<HoldView>, StoreError> {
        chat::holds(self, workspace_id, status).await
    }

    async fn resolve_hold(
        &self,
        workspace_id: i64,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        chat::resolve_hold(self, workspace_id, id, resolution, now).await
    }

    async fn switch_to_template(
        &self,
        message_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        chat::switch_to_template(self, message_id, now).await
    }

    async fn notify_wakeup(&self) {
        if self.backend == Backend::Postgres {
            let sent = sqlx::query("SELECT pg_notify('nudge_wakeup', '')")
                .execute(&self.write)
                .await;
            if let Err(error) = sent {
                tracing::debug!(%error, "wake-up notification failed");
            }
        }
    }

    async fn listen_wakeups(&self, on_wake: WakeCallback) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let url = self.url.clone();
        tokio::spawn(async move { listen::run(url, on_wake).await });
        Ok(())
    }

    async fn figures(
        &self,
        workspace_id: i64,
    ) -> Result<(Figures, Vec<(String, FlowFigures)>), StoreError> {
        report::figures(self, workspace_id).await
    }
}

/// How long a claim on due work lasts before another instance may take it over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
