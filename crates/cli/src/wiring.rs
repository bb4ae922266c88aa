//! Building the parts from configuration: the store, the engine, the channels.

use std::sync::Arc;

use anyhow::Context;
use nudge_channels::{
    SandboxChannel, SmsLeopardChannel, SmsLeopardConfig, WhatsappChannel, WhatsappConfig,
};
use nudge_core::channel::{Channel, ChannelKind};
use nudge_core::engine::{Engine, Settings};
use nudge_core::flow::FlowSet;
use nudge_core::money::MoneyStyle;
use nudge_core::store::Store;
use nudge_core::time::Clock;
use nudge_server::Channels;
use nudge_store::{ConnectOptions, SqlStore};

use crate::config::Config;

/// Loads the flows of a folder, or the built-in ones.
pub fn load_flows(dir: Option<&std::path::Path>) -> anyhow::Result<FlowSet> {
    match dir {
        Some(dir) => {
            FlowSet::load_dir(dir).map_err(|error| anyhow::anyhow!("invalid flow: {error}"))
        }
        None => {
            FlowSet::built_in().map_err(|error| anyhow::anyhow!("invalid built-in flow: {error}"))
        }
    }
}

pub fn settings(config: &Config) -> anyhow::Result<Settings> {
    let money_style = match config.shop.money_style.as_deref() {
        Some("full") => MoneyStyle::Full,
        _ => MoneyStyle::Compact,
    };
    Ok(Settings {
        public_url: config.public_url.trim_end_matches('/').to_string(),
        default_region: config.default_region.clone(),
        default_timezone: jiff::tz::TimeZone::get(&config.timezone)
            .with_context(|| format!("timezone: {:?} is not an IANA time zone", config.timezone))?,
        shop_name: config.shop.name.clone(),
        shop_url: config.shop.url.clone(),
        money_style,
        locale: config.shop.locale.clone(),
        assume_reachable: false,
        require_sms_consent: config.consent.require_sms_opt_in,
        default_currency: config.shop.currency.clone().unwrap_or_else(|| "KES".into()),
        keywords: keywords(config),
    })
}

fn keywords(config: &Config) -> nudge_core::reply::Keywords {
    fn words(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }
    nudge_core::reply::Keywords::default().with_extra(
        &words(&config.replies.opt_out),
        &words(&config.replies.opt_in),
        &words(&config.replies.affirmative),
    )
}

pub fn engine(config: &Config, flows: FlowSet) -> anyhow::Result<Engine> {
    Ok(Engine::new(flows, settings(config)?))
}

pub async fn open_store(url: &str) -> anyhow::Result<SqlStore> {
    SqlStore::open(url, &ConnectOptions::default())
        .await
        .with_context(|| format!("cannot open database {}", redact(url)))
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

pub fn channels(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Channels> {
    let sms: Arc<dyn Channel> = match config.sms.provider.as_str() {
        "smsleopard" => {
            let section = &config.smsleopard;
            let mut leopard = SmsLeopardConfig::new(
                section.api_key.as_deref().unwrap_or_default(),
                section
                    .api_secret
                    .clone()
                    .unwrap_or_else(|| String::new().into()),
                section.source.as_deref().unwrap_or_default(),
            );
            leopard.base_url = section.base_url.trim_end_matches('/').to_string();
            leopard.status_url = section.status_url.clone();
            leopard.status_secret = section.status_secret.clone();
            leopard.timeout = Config::duration(&section.timeout);
            Arc::new(
                SmsLeopardChannel::new(leopard)
                    .map_err(|error| anyhow::anyhow!("smsleopard: {error}"))?,
            )
        }
        _ => Arc::new(SandboxChannel::new(
            ChannelKind::Sms,
            store.clone(),
            clock.clone(),
        )),
    };
    let whatsapp: Arc<dyn Channel> = match config.whatsapp.provider.as_str() {
        "cloud" => {
            let section = &config.whatsapp;
            let mut cloud = WhatsappConfig::new(
                section.phone_number_id.as_deref().unwrap_or_default(),
                section
                    .access_token
                    .clone()
                    .unwrap_or_else(|| String::new().into()),
            );
            cloud.base_url = section.base_url.trim_end_matches('/').to_string();
            cloud.timeout = Config::duration(&section.timeout);
            cloud.templates = section.templates.clone();
            Arc::new(
                WhatsappChannel::new(cloud)
                    .map_err(|error| anyhow::anyhow!("whatsapp: {error}"))?,
            )
        }
        _ => Arc::new(SandboxChannel::new(ChannelKind::Whatsapp, store, clock)),
    };
    Ok(Channels {
        sms,
        whatsapp: Some(whatsapp),
    })
}

/// Checks the WhatsApp templates of every flow against the approved list, so that a name
/// Meta does not know or a wrong parameter count stops the start instead of failing sends.
/// With no approved list configured, nothing is checked.
pub fn check_templates(
    flows: &FlowSet,
    approved: &[nudge_channels::ApprovedTemplate],
) -> anyhow::Result<()> {
    if approved.is_empty() {
        return Ok(());
    }
    for flow in flows.all() {
        for step in &flow.steps {
            let Some(template) = &step.template else {
                continue;
            };
            let at = format!(
                "flow {} ({}), steps[{}].template",
                flow.name, flow.source, step.index
            );
            let Some(known) = approved
                .iter()
                .find(|known| known.name == template.name && known.language == template.language)
            else {
                anyhow::bail!(
                    "{at}: {:?} in language {:?} is not in whatsapp.templates",
                    template.name,
                    template.language
                );
            };
            let counts = [
                ("params", template.body.len(), known.body_params()),
                ("header", template.header.len(), known.header_params),
                (
                    "buttons",
                    template.buttons.len(),
                    known.dynamic_button_indexes().len(),
                ),
            ];
            for (key, given, expected) in counts {
                anyhow::ensure!(
                    given == expected,
                    "{at}.{key}: {given} given, but the approved template {:?} takes {expected}",
                    template.name
                );
            }
        }
    }
    Ok(())
}
