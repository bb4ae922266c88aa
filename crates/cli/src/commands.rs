//! The small commands: `migrate`, `api-key create`, `flows check`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use nudge_core::channel::ChannelKind;
use nudge_core::engine::{CheckoutState, CheckoutStatus, Settings, fields_for_checkout, fit_sms};
use nudge_core::event::Item;
use nudge_core::flow::Flow;
use nudge_core::store::Store;
use nudge_core::time::{Clock, SystemClock, format_duration};
use tracing_subscriber::EnvFilter;

use crate::config;
use crate::wiring;

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL, sqlite://PATH or postgres://… (sets `database_url`, NUDGE_DATABASE_URL)
    /// [default: sqlite://data/nudge.db].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for the default workspace and print it once on stdout; only its
    /// hash is stored.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A note stored with the key, such as who uses it.
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Validate a folder of flow files (and their WhatsApp templates against
    /// `whatsapp.templates` of the configuration) and print each step rendered with sample
    /// data.
    Check {
        /// Folder of *.toml flow files.
        dir: PathBuf,
    },
}

/// Logs to stderr, filtered by `NUDGE_LOG` or `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = std::env::var("NUDGE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

fn database_url(config_file: Option<&Path>, args: DatabaseArgs) -> anyhow::Result<String> {
    let overrides: Vec<(&str, String)> = args
        .database
        .map(|url| ("database_url", url))
        .into_iter()
        .collect();
    Ok(config::load(config_file, &overrides)?.database_url)
}

pub async fn migrate(config_file: Option<&Path>, args: DatabaseArgs) -> anyhow::Result<()> {
    init_logging();
    let url = database_url(config_file, args)?;
    let store = wiring::open_store(&url).await?;
    eprintln!(
        "migrations applied to {} ({})",
        wiring::redact(&url),
        store.kind().as_str()
    );
    store.close().await;
    Ok(())
}

pub async fn api_key(config_file: Option<&Path>, command: ApiKeyCommand) -> anyhow::Result<()> {
    let ApiKeyCommand::Create { database, label } = command;
    let url = database_url(config_file, database)?;
    let store = wiring::open_store(&url).await?;
    let workspace = store.default_workspace().await?;
    let key = nudge_server::auth::new_key();
    store
        .create_api_key(
            workspace,
            &nudge_server::auth::hash_key(&key),
            &label,
            SystemClock.now(),
        )
        .await?;
    store.close().await;
    println!("{key}");
    Ok(())
}

pub fn flows(config_file: Option<&Path>, command: FlowsCommand) -> anyhow::Result<()> {
    let FlowsCommand::Check { dir } = command;
    let flows = wiring::load_flows(Some(&dir))?;
    let config = config::load(config_file, &[])?;
    wiring::check_templates(&flows, &config.whatsapp.templates)?;
    let settings = Settings {
        shop_name: Some(
            config
                .shop
                .name
                .clone()
                .unwrap_or_else(|| "Duka Bora".into()),
        ),
        ..Settings::default()
    };
    let mut over_limit = 0;
    for flow in flows.all() {
        over_limit += print_flow(flow, &settings);
    }
    anyhow::ensure!(
        over_limit == 0,
        "{over_limit} step(s) do not fit their max_segments even with the product name shortened; shorten the fixed text"
    );
    println!("{} flow(s) valid in {}", flows.all().len(), dir.display());
    Ok(())
}

fn sample_checkout() -> CheckoutState {
    let now = SystemClock.now();
    CheckoutState {
        id: "sample".into(),
        cart_token: None,
        status: CheckoutStatus::Abandoned,
        unreachable: None,
        opened_at: now,
        last_activity_at: now,
        snapshot_at: now,
        phone: nudge_core::phone::Phone::parse("0700000001", "KE").ok(),
        invalid_phone: None,
        email: None,
        customer_id: None,
        first_name: Some("Amina".into()),
        last_name: Some("Wanjiru".into()),
        sms_consent: Some(true),
        timezone: None,
        items: vec![Item {
            product_id: Some("1".into()),
            title: "Test Kettle 1.7L".into(),
            variant: Some("Silver".into()),
            quantity: 1,
            price: Some("4850".parse().unwrap_or_default()),
            image_url: None,
        }],
        total: Some("4850".parse().unwrap_or_default()),
        currency: Some("KES".into()),
        recovery_url: Some("https://shop.example/checkouts/sample/recover".into()),
        locale: None,
        completed_by: None,
    }
}

/// Prints a flow's settings and steps; returns how many steps do not fit `max_segments`.
fn print_flow(flow: &Flow, settings: &Settings) -> usize {
    let mut over_limit = 0;
    let quiet = flow
        .quiet_hours
        .map(|hours| {
            format!(
                "{}-{}",
                hours.start.strftime("%H:%M"),
                hours.end.strftime("%H:%M")
            )
        })
        .unwrap_or_else(|| "off".into());
    let cap = flow
        .frequency_cap
        .map(|cap| format!("{} per {}", cap.max, format_duration(cap.per)))
        .unwrap_or_else(|| "off".into());
    println!("{} ({})", flow.name, flow.source);
    println!(
        "  trigger {}, idle {}, quiet hours {quiet}, holdout {} %, attribution window {}, frequency cap {cap}{}",
        flow.trigger.as_str(),
        format_duration(flow.idle),
        flow.holdout,
        format_duration(flow.attribution_window),
        if flow.enabled { "" } else { ", DISABLED" },
    );
    let checkout = sample_checkout();
    let token = "Ab3xQ9K2mP";
    let link = format!("{}/r/{token}", settings.public_url);
    let fields = fields_for_checkout(&checkout, &flow.fallbacks, settings, Some((&link, token)));
    for step in &flow.steps {
        println!(
            "  step {} after {}, {}:",
            step.index + 1,
            format_duration(step.wait),
            step.channel.as_str()
        );
        if let Some(text) = &step.text {
            match fit_sms(text, &fields, step.max_segments) {
                Ok(sms) => {
                    println!("    {}", sms.text);
                    if step.channel == ChannelKind::Sms {
                        println!(
                            "    {}, {} segment(s), {} characters{}",
                            sms.encoding.as_str(),
                            sms.segments,
                            sms.text.chars().count(),
                            if sms.over_limit {
                                ", OVER max_segments"
                            } else {
                                ""
                            }
                        );
                        over_limit += usize::from(sms.over_limit);
                    }
                }
                Err(error) => println!("    cannot render: {error}"),
            }
        }
        if let Some(template) = &step.template {
            let render = |parts: &[nudge_core::template::Template]| {
                parts
                    .iter()
                    .map(|part| {
                        part.render(&fields)
                            .unwrap_or_else(|error| format!("<{error}>"))
                    })
                    .collect::<Vec<_>>()
            };
            println!(
                "    template {} ({}), body parameters {:?}{}",
                template.name,
                template.language,
                render(&template.body),
                if template.buttons.is_empty() {
                    String::new()
                } else {
                    format!(", button parameters {:?}", render(&template.buttons))
                }
            );
        }
        if let Some(fallback) = step.fallback {
            println!(
                "    falls back to {} outside the WhatsApp window",
                fallback.as_str()
            );
        }
    }
    over_limit
}
