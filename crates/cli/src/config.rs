//! Configuration: compiled defaults, then an optional `nudge.toml`, then `NUDGE_*`
//! environment variables, then the command-line flags of the run. Every key is documented in
//! `nudge.example.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::Deserialize;

/// Sections whose keys are written `NUDGE_<SECTION>_<KEY>` in the environment.
const SECTIONS: &[&str] = &[
    "shop",
    "consent",
    "shopify",
    "woocommerce",
    "sms",
    "smsleopard",
    "workers",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    pub listen: String,
    /// `sqlite://PATH` (the embedded default) or `postgres://USER@HOST/DB`.
    pub database_url: String,
    /// Folder of flow files; the built-in flows when unset.
    pub flows: Option<PathBuf>,
    /// Public base URL of this server, used in short links.
    pub public_url: String,
    /// ISO 3166 region for phone numbers written without a country code.
    pub default_region: String,
    /// IANA time zone for quiet hours when a contact's own is unknown.
    pub timezone: String,
    pub shop: ShopConfig,
    pub consent: ConsentConfig,
    pub replies: RepliesConfig,
    pub shopify: ShopifyConfig,
    pub woocommerce: WoocommerceConfig,
    pub whatsapp: WhatsappSection,
    pub sms: SmsConfig,
    pub smsleopard: SmsLeopardSection,
    pub workers: WorkersSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://data/nudge.db".into(),
            flows: None,
            public_url: "http://127.0.0.1:8080".into(),
            default_region: "KE".into(),
            timezone: "Africa/Nairobi".into(),
            shop: ShopConfig::default(),
            consent: ConsentConfig::default(),
            replies: RepliesConfig::default(),
            shopify: ShopifyConfig::default(),
            woocommerce: WoocommerceConfig::default(),
            whatsapp: WhatsappSection::default(),
            sms: SmsConfig::default(),
            smsleopard: SmsLeopardSection::default(),
            workers: WorkersSection::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopConfig {
    /// Shop name for `[Shop]`.
    pub name: Option<String>,
    /// Link target for checkouts without a recovery URL.
    pub url: Option<String>,
    /// BCP 47 locale for number formatting, such as `en-KE`.
    pub locale: Option<String>,
    /// `compact` drops a zero fraction (`KES 4,850`); `full` keeps it (`KES 4,850.00`).
    pub money_style: Option<String>,
    /// ISO 4217 currency of prices written without one in chats ("2500/-").
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentConfig {
    /// Send SMS only to shoppers who opted in; otherwise only an explicit refusal blocks.
    pub require_sms_opt_in: bool,
}

/// Words added to the built-in reply keywords, for a market's language.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepliesConfig {
    /// Extra words that opt a customer out when they start a short reply, such as "ACHA".
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    /// Extra words that mean yes to a hold question.
    pub affirmative: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhatsappSection {
    /// `sandbox` records WhatsApp messages without sending them; `cloud` sends through the
    /// WhatsApp Cloud API.
    pub provider: String,
    /// Token Meta sends in the webhook verification handshake.
    pub verify_token: Option<SecretString>,
    /// Meta app secret that signs webhooks.
    pub app_secret: Option<SecretString>,
    pub base_url: String,
    pub phone_number_id: Option<String>,
    pub access_token: Option<SecretString>,
    /// Time allowed for one request to the Graph API.
    pub timeout: String,
    /// The approved templates, as Meta approved them, so parameters are checked before
    /// sending.
    pub templates: Vec<nudge_channels::ApprovedTemplate>,
}

impl Default for WhatsappSection {
    fn default() -> Self {
        WhatsappSection {
            provider: "sandbox".into(),
            verify_token: None,
            app_secret: None,
            base_url: "https://graph.facebook.com/v21.0".into(),
            phone_number_id: None,
            access_token: None,
            timeout: "10s".into(),
            templates: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopifyConfig {
    /// The app's client secret that signs webhooks.
    pub webhook_secret: Option<SecretString>,
    /// The secret before a rotation, accepted until removed.
    pub previous_webhook_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WoocommerceConfig {
    pub webhook_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `sandbox` (records messages, sends nothing) or `smsleopard`.
    pub provider: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: "sandbox".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsLeopardSection {
    pub base_url: String,
    pub api_key: Option<String>,
    pub api_secret: Option<SecretString>,
    /// Sender ID assigned to the account.
    pub source: Option<String>,
    pub status_url: Option<String>,
    pub status_secret: Option<SecretString>,
    /// Time allowed for one provider request, as a duration such as `10s`.
    pub timeout: String,
}

impl Default for SmsLeopardSection {
    fn default() -> Self {
        SmsLeopardSection {
            base_url: "https://api.smsleopard.com/v1".into(),
            api_key: None,
            api_secret: None,
            source: None,
            status_url: None,
            status_secret: None,
            timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersSection {
    /// Maximum pause between two looks at the database.
    pub poll_interval: String,
    pub timer_batch: usize,
    pub send_concurrency: usize,
    pub max_attempts: u32,
    /// Time allowed for in-flight sends after a stop signal.
    pub shutdown_grace: String,
    /// How long a claim on due timers lasts; a crashed instance's claims return after it.
    pub timer_lease: String,
    /// How long a message may stay `sending` before it is reconciled; longer than
    /// `send_timeout`.
    pub send_lease: String,
    /// Time allowed for one provider call.
    pub send_timeout: String,
    /// Judge due-ness by the database's clock; on by default for PostgreSQL.
    pub database_clock: Option<bool>,
    /// Name of this instance on claims; defaults to the host name and process id.
    pub instance: Option<String>,
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            poll_interval: "500ms".into(),
            timer_batch: 500,
            send_concurrency: 16,
            max_attempts: 5,
            shutdown_grace: "20s".into(),
            timer_lease: "30s".into(),
            send_lease: "120s".into(),
            send_timeout: "15s".into(),
            database_clock: None,
            instance: None,
        }
    }
}

/// Loads the layers. `file` is an explicit config file; without one, `nudge.toml` in the
/// working folder is read if it exists. `overrides` are `(key, value)` pairs from flags.
pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> anyhow::Result<Config> {
    let mut figment = Figment::new();
    match file {
        Some(path) => {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        None => figment = figment.merge(Toml::file("nudge.toml")),
    }
    figment = figment.merge(
        Env::prefixed("NUDGE_")
            .map(|key| env_key(key.as_str()).into())
            .ignore(&["log"]),
    );
    for (key, value) in overrides {
        figment = figment.merge(Serialized::default(key, value));
    }
    let config: Config = figment
        .extract()
        .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
    config.validate()?;
    Ok(config)
}

/// `SHOPIFY_WEBHOOK_SECRET` becomes `shopify.webhook_secret`; top-level keys stay as they are.
fn env_key(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    for section in SECTIONS {
        if let Some(rest) = lower.strip_prefix(&format!("{section}_")) {
            return format!("{section}.{rest}");
        }
    }
    lower
}

impl Config {
    fn validate(&self) -> anyhow::Result<()> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|error| {
                anyhow::anyhow!("listen: {:?} is not ADDRESS:PORT: {error}", self.listen)
            })?;
        let public = url::Url::parse(&self.public_url).map_err(|error| {
            anyhow::anyhow!("public_url: {:?} is not a URL: {error}", self.public_url)
        })?;
        anyhow::ensure!(
            matches!(public.scheme(), "http" | "https"),
            "public_url: must start with http:// or https://"
        );
        jiff::tz::TimeZone::get(&self.timezone).map_err(|_| {
            anyhow::anyhow!("timezone: {:?} is not an IANA time zone", self.timezone)
        })?;
        nudge_core::phone::Phone::parse("+254700000001", &self.default_region).map_err(|_| {
            anyhow::anyhow!(
                "default_region: {:?} is not an ISO 3166 region",
                self.default_region
            )
        })?;
        for (key, value) in [
            ("workers.poll_interval", &self.workers.poll_interval),
            ("workers.shutdown_grace", &self.workers.shutdown_grace),
            ("workers.timer_lease", &self.workers.timer_lease),
            ("workers.send_lease", &self.workers.send_lease),
            ("workers.send_timeout", &self.workers.send_timeout),
            ("smsleopard.timeout", &self.smsleopard.timeout),
            ("whatsapp.timeout", &self.whatsapp.timeout),
        ] {
            nudge_core::time::parse_duration(value)
                .map_err(|error| anyhow::anyhow!("{key}: {error}"))?;
        }
        anyhow::ensure!(
            Config::duration(&self.workers.send_lease)
                > Config::duration(&self.workers.send_timeout),
            "workers.send_lease: must be longer than workers.send_timeout, or a slow send could be reconciled while it runs"
        );
        if Config::duration(&self.workers.shutdown_grace)
            < Config::duration(&self.workers.send_timeout)
        {
            tracing::warn!(
                "workers.shutdown_grace is shorter than workers.send_timeout: a send still running at shutdown may be cut off and end as unknown"
            );
        }
        match self.shop.money_style.as_deref() {
            None | Some("compact") | Some("full") => {}
            Some(other) => {
                anyhow::bail!("shop.money_style: {other:?} is not \"compact\" or \"full\"")
            }
        }
        if let Some(currency) = &self.shop.currency {
            anyhow::ensure!(
                nudge_core::money::is_known_currency(currency),
                "shop.currency: {currency:?} is not an upper-case ISO 4217 code such as KES"
            );
        }
        match self.whatsapp.provider.as_str() {
            "sandbox" => {}
            "cloud" => {
                anyhow::ensure!(
                    self.whatsapp.phone_number_id.is_some(),
                    "whatsapp.phone_number_id: required when whatsapp.provider = \"cloud\""
                );
                anyhow::ensure!(
                    self.whatsapp.access_token.is_some(),
                    "whatsapp.access_token: required when whatsapp.provider = \"cloud\""
                );
            }
            other => anyhow::bail!("whatsapp.provider: {other:?} is not \"sandbox\" or \"cloud\""),
        }
        if self.smsleopard.status_url.is_some() {
            tracing::warn!(
                "smsleopard.status_url is set, but nudge has no route for SMSLeopard delivery reports yet; they will not be recorded"
            );
        }
        match self.sms.provider.as_str() {
            "sandbox" => {}
            "smsleopard" => {
                anyhow::ensure!(
                    self.smsleopard.api_key.is_some(),
                    "smsleopard.api_key: required when sms.provider = \"smsleopard\""
                );
                anyhow::ensure!(
                    self.smsleopard.api_secret.is_some(),
                    "smsleopard.api_secret: required when sms.provider = \"smsleopard\""
                );
                anyhow::ensure!(
                    self.smsleopard.source.is_some(),
                    "smsleopard.source: required when sms.provider = \"smsleopard\""
                );
            }
            other => anyhow::bail!("sms.provider: {other:?} is not \"sandbox\" or \"smsleopard\""),
        }
        Ok(())
    }

    pub fn duration(text: &str) -> Duration {
        nudge_core::time::parse_duration(text).unwrap_or(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_keys_map_to_sections() {
        assert_eq!(env_key("SHOPIFY_WEBHOOK_SECRET"), "shopify.webhook_secret");
        assert_eq!(env_key("DATABASE_URL"), "database_url");
        assert_eq!(env_key("PUBLIC_URL"), "public_url");
        assert_eq!(env_key("WORKERS_POLL_INTERVAL"), "workers.poll_interval");
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn invalid_values_name_their_key() {
        let config = Config {
            listen: "nowhere".into(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("listen:")
        );
        let config = Config {
            sms: SmsConfig {
                provider: "smsleopard".into(),
            },
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("smsleopard.api_key:")
        );
    }
}
