//! The outside services of the fulfilment workers: the profile's
//! `providers` table and the `SMM_*` variable of each setting.

use std::collections::BTreeMap;

use crate::exit::UsageError;

use super::file::wrong_type;
use super::origin::{Origin, Sourced};
use super::profile::Place;
use super::secrets::read_secret;

/// One setting of the `[providers]` table.
#[derive(Debug, Clone, Copy)]
pub struct ProviderSetting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: Option<&'static str>,
    /// Masked by `config show`; may be given as `{ file = … }` or
    /// `{ env = … }` in the file.
    pub secret: bool,
}

const fn setting(
    key: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    secret: bool,
) -> ProviderSetting {
    ProviderSetting {
        key,
        env,
        default,
        secret,
    }
}

/// The outside services of the fulfilment workers, in `config show` order.
pub const PROVIDER_SETTINGS: &[ProviderSetting] = &[
    setting(
        "youtube_url",
        "SMM_YOUTUBE_URL",
        Some("https://www.googleapis.com"),
        false,
    ),
    setting("youtube_api_key", "SMM_YOUTUBE_API_KEY", None, true),
    setting(
        "youtube_daily_quota",
        "SMM_YOUTUBE_DAILY_QUOTA",
        Some("10000"),
        false,
    ),
    setting(
        "youtube_quota_window",
        "SMM_YOUTUBE_QUOTA_WINDOW",
        Some("24h"),
        false,
    ),
    setting("delivery_url", "SMM_DELIVERY_URL", None, false),
    setting("delivery_api_key", "SMM_DELIVERY_API_KEY", None, true),
    setting(
        "delivery_poll_interval",
        "SMM_DELIVERY_POLL_INTERVAL",
        Some("5s"),
        false,
    ),
    setting("binom_url", "SMM_BINOM_URL", None, false),
    setting("binom_api_key", "SMM_BINOM_API_KEY", None, true),
    setting("smtp_url", "SMM_SMTP_URL", None, true),
    setting(
        "mail_from",
        "SMM_MAIL_FROM",
        Some("SMM Panel <noreply@smm-panel.local>"),
        false,
    ),
    setting("sms_url", "SMM_SMS_URL", None, false),
    setting("push_url", "SMM_PUSH_URL", None, false),
    setting("notify_api_key", "SMM_NOTIFY_API_KEY", None, true),
    setting("http_timeout", "SMM_PROVIDER_TIMEOUT", Some("10s"), false),
    setting("ws_addr", "SMM_WS_ADDR", Some("127.0.0.1:8090"), false),
    setting("ws_token_secret", "SMM_WS_TOKEN_SECRET", None, true),
];

/// The `[providers]` settings in effect, each with where it came from.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    values: BTreeMap<&'static str, Sourced<String>>,
}

impl Providers {
    pub fn get(&self, key: &str) -> Option<&Sourced<String>> {
        self.values.get(key)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|s| s.value.as_str())
    }

    /// A setting a worker cannot start without; the error names both ways
    /// to set it.
    pub fn require(&self, key: &str, needed_by: &str) -> Result<&str, UsageError> {
        self.value(key).ok_or_else(|| {
            let env = PROVIDER_SETTINGS
                .iter()
                .find(|s| s.key == key)
                .map_or("", |s| s.env);
            UsageError::new(format!(
                "{needed_by} needs `{key}`: set {env}, or {key} in the profile's [providers] table"
            ))
        })
    }

    /// Each setting from its variable, else the profile, else its default;
    /// a key the table should not have is refused, as a typo would be lost.
    pub fn resolve(
        from_env: &BTreeMap<&'static str, Sourced<String>>,
        from_file: &BTreeMap<String, toml::Value>,
        place: &Place,
    ) -> Result<Providers, UsageError> {
        refuse_unknown(from_file, place)?;
        let mut providers = Providers::default();
        for spec in PROVIDER_SETTINGS {
            let in_file = match from_file.get(spec.key) {
                Some(value) => Some(file_text(spec, value, place)?),
                None => None,
            };
            let value = from_env
                .get(spec.key)
                .cloned()
                .or(in_file.map(|value| Sourced::new(value, Origin::File)))
                .or(spec
                    .default
                    .map(|d| Sourced::new(d.to_owned(), Origin::Default)));
            if let Some(value) = value {
                providers.values.insert(spec.key, value);
            }
        }
        Ok(providers)
    }
}

fn refuse_unknown(
    from_file: &BTreeMap<String, toml::Value>,
    place: &Place,
) -> Result<(), UsageError> {
    for key in from_file.keys() {
        if !PROVIDER_SETTINGS.iter().any(|s| s.key == key) {
            let known: Vec<&str> = PROVIDER_SETTINGS.iter().map(|s| s.key).collect();
            return Err(UsageError::new(format!(
                "unknown setting in {}; known provider settings: {}",
                place.key(&format!("providers.{key}")),
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Text and whole numbers; a secret may also be kept out of the file.
fn file_text(
    spec: &ProviderSetting,
    value: &toml::Value,
    place: &Place,
) -> Result<String, UsageError> {
    let key = format!("providers.{}", spec.key);
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Table(reference) if spec.secret => read_secret(reference, place, &key),
        other => Err(wrong_type(
            "value",
            &key,
            place,
            if spec.secret {
                "a string, { file = \"…\" } or { env = \"…\" }"
            } else {
                "a string"
            },
            other,
        )),
    }
}
