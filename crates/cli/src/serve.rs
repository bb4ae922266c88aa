//! `nudge serve`: the server and its workers, until SIGTERM or Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use nudge_core::store::Store;
use nudge_core::time::{Clock, SystemClock};
use nudge_server::{App, AppConfig, WorkerConfig, workers};
use nudge_store::Backend;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::wiring;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (sets `listen`, NUDGE_LISTEN) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Database URL, sqlite://PATH or postgres://… (sets `database_url`, NUDGE_DATABASE_URL)
    /// [default: sqlite://data/nudge.db].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Folder of flow files (sets `flows`, NUDGE_FLOWS) [default: the built-in flows].
    #[arg(long, value_name = "DIR")]
    flows: Option<PathBuf>,
    /// Public base URL for short links (sets `public_url`, NUDGE_PUBLIC_URL)
    /// [default: http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

pub async fn run(config_file: Option<&Path>, args: ServeArgs) -> anyhow::Result<()> {
    crate::commands::init_logging();
    let mut overrides = Vec::new();
    if let Some(listen) = args.listen {
        overrides.push(("listen", listen));
    }
    if let Some(database) = args.database {
        overrides.push(("database_url", database));
    }
    if let Some(flows) = args.flows {
        overrides.push(("flows", flows.display().to_string()));
    }
    if let Some(public_url) = args.public_url {
        overrides.push(("public_url", public_url));
    }
    let config = config::load(config_file, &overrides)?;
    let flows = wiring::load_flows(config.flows.as_deref())?;
    wiring::check_templates(&flows, &config.whatsapp.templates)?;
    let store = Arc::new(wiring::open_store(&config.database_url).await?);
    let backend = store.kind();
    let engine = Arc::new(wiring::engine(&config, flows)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dyn_store: Arc<dyn Store> = store.clone();
    let channels = wiring::channels(&config, dyn_store.clone(), clock.clone())?;
    let app_config = app_config(&config, backend);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr().map(|addr| addr.to_string()).unwrap_or_default(),
        database = %wiring::redact(&config.database_url),
        backend = backend.as_str(),
        flows = engine.flows.all().len(),
        sms = %config.sms.provider,
        instance = %app_config.workers.instance,
        "nudge started"
    );
    let grace = app_config.workers.shutdown_grace;
    let app = App::new(dyn_store, engine, clock, channels, app_config);
    let shutdown = CancellationToken::new();
    let workers = workers::spawn(&app, shutdown.clone());
    tokio::spawn(stop_on_signal(shutdown.clone()));
    nudge_server::serve(app, listener, shutdown.clone()).await?;
    tracing::info!("HTTP server stopped; waiting for workers");
    if tokio::time::timeout(grace + std::time::Duration::from_secs(5), workers.join())
        .await
        .is_err()
    {
        tracing::warn!("workers did not stop within the grace period");
    }
    store.close().await;
    tracing::info!("nudge stopped");
    Ok(())
}

fn app_config(config: &Config, backend: Backend) -> AppConfig {
    let section = &config.workers;
    let mut shopify_secrets = Vec::new();
    shopify_secrets.extend(config.shopify.webhook_secret.clone());
    shopify_secrets.extend(config.shopify.previous_webhook_secret.clone());
    AppConfig {
        shopify_secrets,
        woocommerce_secret: config.woocommerce.webhook_secret.clone(),
        whatsapp_verify_token: config.whatsapp.verify_token.clone(),
        whatsapp_app_secret: config.whatsapp.app_secret.clone(),
        workers: WorkerConfig {
            instance: section
                .instance
                .clone()
                .unwrap_or_else(|| WorkerConfig::default().instance),
            poll_interval: Config::duration(&section.poll_interval),
            timer_batch: section.timer_batch.max(1),
            send_concurrency: section.send_concurrency.max(1),
            max_attempts: section.max_attempts.max(1),
            shutdown_grace: Config::duration(&section.shutdown_grace),
            timer_lease: Config::duration(&section.timer_lease),
            send_lease: Config::duration(&section.send_lease),
            send_timeout: Config::duration(&section.send_timeout),
            database_clock: section
                .database_clock
                .unwrap_or(backend == Backend::Postgres),
        },
        ..AppConfig::default()
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("interrupt received; stopping"),
            _ = term.recv() => tracing::info!("SIGTERM received; stopping: no new claims, finishing in-flight sends"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        tracing::info!("interrupt received; stopping");
    }
    shutdown.cancel();
}
