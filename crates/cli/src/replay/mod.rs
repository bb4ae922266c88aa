//! `nudge replay`: the engine over a historical event log, on a virtual clock, with the
//! sandbox channel and a throwaway database. Every contact counts as reachable and
//! consenting. The JSON report goes to stdout and progress to stderr.
//!
//! Timers due at or before an event's time fire before that event, each at its own due time,
//! and the messages they queue are sent at that same instant.

mod chats;
mod jsonl;
mod rees46;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nudge_core::engine::{Engine, Settings};
use nudge_core::event::Event;
use nudge_core::flow::FlowSet;
use nudge_core::store::{Incoming, Store};
use nudge_core::time::{Clock, ManualClock, Timestamp};
use nudge_server::workers::{dispatcher, scheduler};
use nudge_server::{App, AppConfig, WorkerConfig};
use nudge_store::{ConnectOptions, SqlStore};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::wiring;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// REES46 / Open CDP e-commerce event logs (event_time, event_type, product_id, price,
    /// user_id, user_session, ...).
    Rees46,
    /// One `/v1/events` body (an event or an array of events) per line.
    Jsonl,
    /// Customer-care conversations, one message per row (conversation_id, role,
    /// datetime_utc, text, ...).
    Chats,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Input format.
    #[arg(long, value_enum)]
    format: Format,
    /// Input files, replayed together in time order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Folder of flow files [default: the built-in flows].
    #[arg(long, value_name = "DIR")]
    flows: Option<PathBuf>,
}

/// One point of the input: the events that happen at `at`, and how many input rows they
/// came from.
pub struct Step {
    pub at: Timestamp,
    pub events: Vec<Event>,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let flows = wiring::load_flows(args.flows.as_deref())?;
    let (steps, rows) = match args.format {
        Format::Rees46 => rees46::read(&args.files)?,
        Format::Jsonl => jsonl::read(&args.files)?,
        Format::Chats => chats::read(&args.files)?,
    };
    let mut replayer = Replayer::start(flows).await?;
    let total = steps.len();
    let progress = progress_bar(total as u64);
    for (index, step) in steps.into_iter().enumerate() {
        replayer.apply(step).await?;
        progress.set_position(index as u64 + 1);
        if !progress.is_hidden() {
            continue;
        }
        if (index + 1) % 1000 == 0 {
            eprintln!("replayed {} of {total} input steps", index + 1);
        }
    }
    progress.finish_and_clear();
    let mut report = replayer.finish().await?;
    if let Value::Object(map) = &mut report {
        map.insert(
            "format".into(),
            json!(format!("{:?}", args.format).to_lowercase()),
        );
        map.insert("events".into(), json!(rows));
        map.insert(
            "files".into(),
            json!(
                args.files
                    .iter()
                    .map(|file| file.display().to_string())
                    .collect::<Vec<_>>()
            ),
        );
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn progress_bar(length: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events {elapsed}") {
        bar.set_style(style);
    }
    bar
}

/// The engine, a throwaway store and a virtual clock.
pub struct Replayer {
    app: App,
    store: Arc<SqlStore>,
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    /// Events applied so far, numbering each one's delivery.
    deliveries: u64,
    _dir: tempfile::TempDir,
}

impl Replayer {
    pub async fn start(flows: FlowSet) -> anyhow::Result<Replayer> {
        let dir = tempfile::tempdir()
            .context("cannot create a temporary folder for the replay database")?;
        let url = format!("sqlite://{}/replay.db", dir.path().display());
        let options = ConnectOptions {
            sqlite_unsynced: true,
            ..ConnectOptions::default()
        };
        let store = Arc::new(SqlStore::open(&url, &options).await?);
        let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
        let engine = Arc::new(Engine::new(
            flows,
            Settings {
                assume_reachable: true,
                ..Settings::default()
            },
        ));
        let dyn_store: Arc<dyn Store> = store.clone();
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let channels = nudge_server::Channels {
            sms: Arc::new(nudge_channels::SandboxChannel::new(
                nudge_core::channel::ChannelKind::Sms,
                dyn_store.clone(),
                dyn_clock.clone(),
            )),
            whatsapp: Some(Arc::new(nudge_channels::SandboxChannel::new(
                nudge_core::channel::ChannelKind::Whatsapp,
                dyn_store.clone(),
                dyn_clock.clone(),
            ))),
        };
        let config = AppConfig {
            workers: WorkerConfig {
                instance: "replay".into(),
                send_concurrency: 64,
                ..WorkerConfig::default()
            },
            ..AppConfig::default()
        };
        let app = App::new(dyn_store, engine, dyn_clock, channels, config);
        Ok(Replayer {
            app,
            store,
            clock,
            shutdown: CancellationToken::new(),
            deliveries: 0,
            _dir: dir,
        })
    }

    /// Fires every timer due at or before `until`, each at its own due time.
    pub async fn advance_to(&mut self, until: Timestamp) -> anyhow::Result<()> {
        loop {
            let due = self.store.next_due().await?;
            let Some(due) = due.filter(|due| *due <= until) else {
                break;
            };
            self.clock.set(due.max(self.clock.now()));
            loop {
                let fired = scheduler::fire_once(&self.app).await?;
                let sent = dispatcher::dispatch_once(&self.app, &self.shutdown).await?;
                if fired.claimed == 0 && sent.claimed == 0 {
                    break;
                }
            }
        }
        self.clock.set(until.max(self.clock.now()));
        Ok(())
    }

    pub async fn apply(&mut self, step: Step) -> anyhow::Result<()> {
        self.advance_to(step.at).await?;
        if step.events.is_empty() {
            return Ok(());
        }
        // Every input row is its own delivery, even when two rows look alike.
        let incoming: Vec<Incoming> = step
            .events
            .into_iter()
            .map(|event| {
                self.deliveries += 1;
                Incoming {
                    workspace_id: 1,
                    source: "replay".into(),
                    delivery_id: Some(format!("replay:{}", self.deliveries)),
                    event,
                }
            })
            .collect();
        self.store
            .ingest(self.app.engine(), &incoming, self.clock.now())
            .await?;
        Ok(())
    }

    /// Builds the report of what happened up to the last event; later steps stay pending.
    pub async fn finish(self) -> anyhow::Result<Value> {
        let (total, per_flow) = self.store.figures(1).await?;
        let mut report = serde_json::to_value(&total)?;
        if let Value::Object(map) = &mut report {
            let flows: serde_json::Map<String, Value> = per_flow
                .into_iter()
                .map(|(name, figures)| Ok((name, serde_json::to_value(figures)?)))
                .collect::<Result<_, serde_json::Error>>()?;
            map.insert("flows".into(), Value::Object(flows));
        }
        self.store.close().await;
        Ok(report)
    }
}
