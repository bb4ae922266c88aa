//! Configuration errors of the adapters, raised when a channel is built so a bad setting
//! fails at start or when the merchant saves it, never at send time.

/// A provider setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is empty.
    #[error("{key} is missing")]
    Missing { key: &'static str },

    /// A setting has a value the adapter cannot use.
    #[error("invalid {key} {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },

    /// An SMS sender ID that carriers would reject or cut short.
    #[error("invalid sender ID {sender_id:?}: {reason}")]
    InvalidSenderId {
        sender_id: String,
        reason: &'static str,
    },

    /// A delivery-report URL without the secret SMSLeopard requires with it.
    #[error("status_url is set but status_secret is missing, so set both or neither")]
    MissingStatusSecret,

    /// A local copy of an approved WhatsApp template that cannot be checked against.
    #[error("invalid approved template {name:?} ({language}): {reason}")]
    InvalidTemplate {
        name: String,
        language: String,
        reason: String,
    },

    /// The HTTP client could not be built, for example because TLS failed to initialise.
    #[error("failed to build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}
