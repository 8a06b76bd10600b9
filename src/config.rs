//! Effective settings: flags, then `SMM_*` environment variables, then the
//! config file's profile, then built-in defaults.
//!
//! Flags and environment variables are both read by clap, which already
//! lets a flag win over its variable; this module fills whatever they left
//! unset from the file and remembers where each value came from, so
//! `smmctl config show` can say why a setting has the value it has.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smm_workers::contract::catalog::THRESHOLDS;

use crate::exit::UsageError;

pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
pub const DEFAULT_CLIENT_ID: &str = "smmctl";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The config file, as written by the operator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when neither `--profile` nor `SMM_PROFILE` names one.
    pub profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One cluster and the settings that go with it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub brokers: Option<String>,
    pub client_id: Option<String>,
    pub database_url: Option<String>,
    pub metrics_addr: Option<String>,
    pub timeout: Option<String>,
    /// librdkafka properties, passed through untouched (SASL, TLS, …).
    #[serde(default)]
    pub kafka: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub thresholds: ThresholdsFile,
    #[serde(default)]
    pub cryptomus: CryptomusFile,
    /// Where the fulfilment workers reach their outside services; keys are
    /// those of [`PROVIDER_SETTINGS`].
    #[serde(default)]
    pub providers: BTreeMap<String, toml::Value>,
    /// Refuse every command that writes to this cluster: for a production
    /// profile that on-call engineers use to look, not to touch.
    #[serde(default)]
    pub read_only: bool,
    /// Also append the audit trail to the `_smmctl.audit` topic, so every
    /// operator's destructive commands land in one place.
    #[serde(default)]
    pub audit_topic: bool,
}

/// The payment provider the financial workers talk to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptomusFile {
    /// A string, or `{ file = … }` / `{ env = … }` to keep it out of the file.
    pub api_key: Option<toml::Value>,
    pub merchant: Option<String>,
    pub base_url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsFile {
    pub max_lag: Option<i64>,
    pub max_dead_letters: Option<i64>,
    pub max_processing_time_ms: Option<u64>,
    pub max_error_rate: Option<f64>,
    /// Per-group overrides, keyed by group name.
    #[serde(default)]
    pub groups: BTreeMap<String, GroupThresholds>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupThresholds {
    pub max_lag: Option<i64>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "config file",
            Source::Default => "default",
        })
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// What the command line and environment said, before the file is read.
/// `None` means neither gave a value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub brokers: Option<Sourced<String>>,
    pub profile: Option<Sourced<String>>,
    pub config: Option<Sourced<PathBuf>>,
    pub client_id: Option<Sourced<String>>,
    pub database_url: Option<Sourced<String>>,
    pub metrics_addr: Option<Sourced<String>>,
    pub cryptomus_api_key: Option<Sourced<String>>,
    pub cryptomus_merchant: Option<Sourced<String>>,
    pub cryptomus_url: Option<Sourced<String>>,
    /// Provider settings from their `SMM_*` variables, by key.
    pub providers: BTreeMap<&'static str, Sourced<String>>,
    pub timeout: Option<Sourced<Duration>>,
    /// `-X key=value`, in the order given.
    pub kafka: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub max_lag: i64,
    pub max_dead_letters: i64,
    pub max_processing_time: Duration,
    pub max_error_rate: f64,
    pub groups: BTreeMap<String, GroupThresholds>,
    /// The keys the config file set; the rest are the panel's defaults.
    pub from_file: Vec<&'static str>,
}

impl Thresholds {
    /// The lag threshold of one group: its own override, else the default.
    pub fn max_lag_for(&self, group: &str) -> i64 {
        self.groups
            .get(group)
            .and_then(|g| g.max_lag)
            .unwrap_or(self.max_lag)
    }
}

/// The settings every command runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: Option<PathBuf>,
    pub profile: Option<Sourced<String>>,
    pub brokers: Sourced<String>,
    pub client_id: Sourced<String>,
    pub database_url: Sourced<String>,
    pub metrics_addr: Sourced<String>,
    pub timeout: Sourced<Duration>,
    /// librdkafka properties: the profile's, then `-X`, later ones winning.
    pub kafka: BTreeMap<String, Sourced<String>>,
    pub thresholds: Thresholds,
    pub cryptomus: Cryptomus,
    pub providers: Providers,
    /// The profile refuses every command that writes to the cluster.
    pub read_only: bool,
    /// Destructive commands also append their audit line to a topic.
    pub audit_topic: bool,
}

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
}

/// Where the webhook and refund workers reach Cryptomus. The API key is
/// secret: `config show` masks it and no message prints it.
#[derive(Debug, Clone)]
pub struct Cryptomus {
    pub api_key: Option<Sourced<String>>,
    pub merchant: Option<Sourced<String>>,
    pub base_url: Sourced<String>,
}

pub const DEFAULT_CRYPTOMUS_URL: &str = "https://api.cryptomus.com";

impl Settings {
    /// Merges the overrides with the config file they point at (or the XDG
    /// default, when it exists).
    pub fn load(overrides: Overrides) -> Result<Settings, UsageError> {
        let (path, explicit) = match &overrides.config {
            Some(c) => (Some(c.value.clone()), true),
            None => (default_config_path().filter(|p| p.exists()), false),
        };
        let file = match &path {
            Some(p) => read_config_file(p, explicit)?,
            None => ConfigFile::default(),
        };
        Settings::resolve(overrides, path, file)
    }

    fn resolve(
        overrides: Overrides,
        path: Option<PathBuf>,
        file: ConfigFile,
    ) -> Result<Settings, UsageError> {
        let file_name = || {
            path.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no config file)".into())
        };
        let profile = overrides.profile.clone().or_else(|| {
            file.profile.clone().map(|value| Sourced {
                value,
                source: Source::File,
            })
        });
        let chosen = match &profile {
            None => Profile::default(),
            Some(p) => match file.profiles.get(&p.value) {
                Some(found) => found.clone(),
                None => {
                    let known: Vec<_> = file.profiles.keys().map(String::as_str).collect();
                    return Err(UsageError::new(format!(
                        "profile `{}` is not defined in {}; {}",
                        p.value,
                        file_name(),
                        if known.is_empty() {
                            "the file defines no profiles; add a [profiles.NAME] table".to_string()
                        } else {
                            format!("defined profiles: {}", known.join(", "))
                        }
                    )));
                }
            },
        };
        let profile_key = |key: &str| {
            format!(
                "{} (profile `{}`, key `{key}`)",
                file_name(),
                profile.as_ref().map(|p| p.value.as_str()).unwrap_or("")
            )
        };

        let pick = |flag: Option<Sourced<String>>, from_file: Option<String>, default: String| {
            flag.or(from_file.map(|value| Sourced {
                value,
                source: Source::File,
            }))
            .unwrap_or(Sourced {
                value: default,
                source: Source::Default,
            })
        };

        let timeout = match (overrides.timeout, chosen.timeout) {
            (Some(t), _) => t,
            (None, Some(text)) => Sourced {
                value: parse_duration(&text).map_err(|why| {
                    UsageError::new(format!(
                        "invalid timeout in {}: {why}",
                        profile_key("timeout")
                    ))
                })?,
                source: Source::File,
            },
            (None, None) => Sourced {
                value: DEFAULT_TIMEOUT,
                source: Source::Default,
            },
        };

        let mut kafka = BTreeMap::new();
        for (key, value) in &chosen.kafka {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Table(reference) => secret_reference(reference).map_err(|why| {
                    UsageError::new(format!("{}: {why}", profile_key(&format!("kafka.{key}"))))
                })?,
                other => {
                    return Err(UsageError::new(format!(
                        "invalid librdkafka setting in {}: expected a string, number, boolean, \
                         {{ file = \"…\" }} or {{ env = \"…\" }}, found {}",
                        profile_key(&format!("kafka.{key}")),
                        other.type_str()
                    )));
                }
            };
            kafka.insert(
                key.clone(),
                Sourced {
                    value: text,
                    source: Source::File,
                },
            );
        }
        for (key, value) in overrides.kafka {
            kafka.insert(
                key,
                Sourced {
                    value,
                    source: Source::Flag,
                },
            );
        }
        // librdkafka also reads the broker list from its older alias; left
        // open, -X could point a destructive command at another cluster than
        // the one `config show` reports.
        for reserved in ["bootstrap.servers", "metadata.broker.list", "client.id"] {
            if kafka.contains_key(reserved) {
                return Err(UsageError::new(format!(
                    "`{reserved}` cannot be set as a librdkafka property; use {} instead",
                    if reserved == "client.id" {
                        "client_id / SMM_CLIENT_ID"
                    } else {
                        "--brokers / SMM_BROKERS / the profile's `brokers`"
                    }
                )));
            }
        }

        let t = &chosen.thresholds;
        if let Some(rate) = t.max_error_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(UsageError::new(format!(
                "invalid value {rate} in {}: a rate is a fraction between 0 and 1 (0.01 is 1 %)",
                profile_key("thresholds.max_error_rate")
            )));
        }
        for (key, value) in [
            ("max_lag", t.max_lag),
            ("max_dead_letters", t.max_dead_letters),
        ]
        .into_iter()
        .chain(t.groups.values().map(|g| ("groups.*.max_lag", g.max_lag)))
        {
            if let Some(v) = value
                && v < 0
            {
                return Err(UsageError::new(format!(
                    "invalid value {v} in {}: it cannot be negative",
                    profile_key(&format!("thresholds.{key}"))
                )));
            }
        }
        let thresholds = Thresholds {
            max_lag: t.max_lag.unwrap_or(THRESHOLDS.max_lag),
            max_dead_letters: t.max_dead_letters.unwrap_or(THRESHOLDS.max_dead_letters),
            max_processing_time: t
                .max_processing_time_ms
                .map(Duration::from_millis)
                .unwrap_or(THRESHOLDS.max_processing_time),
            max_error_rate: t.max_error_rate.unwrap_or(THRESHOLDS.max_error_rate),
            groups: t.groups.clone(),
            from_file: [
                ("max_lag", t.max_lag.is_some()),
                ("max_dead_letters", t.max_dead_letters.is_some()),
                ("max_processing_time_ms", t.max_processing_time_ms.is_some()),
                ("max_error_rate", t.max_error_rate.is_some()),
            ]
            .into_iter()
            .filter_map(|(key, set)| set.then_some(key))
            .collect(),
        };

        let file_api_key = match &chosen.cryptomus.api_key {
            None => None,
            Some(toml::Value::String(key)) => Some(key.clone()),
            Some(toml::Value::Table(reference)) => {
                Some(secret_reference(reference).map_err(|why| {
                    UsageError::new(format!("{}: {why}", profile_key("cryptomus.api_key")))
                })?)
            }
            Some(other) => {
                return Err(UsageError::new(format!(
                    "invalid value in {}: expected a string, {{ file = \"…\" }} or {{ env = \"…\" }}, found {}",
                    profile_key("cryptomus.api_key"),
                    other.type_str()
                )));
            }
        };
        let from_file = |value: Option<String>| {
            value.map(|value| Sourced {
                value,
                source: Source::File,
            })
        };
        let cryptomus = Cryptomus {
            api_key: overrides.cryptomus_api_key.or(from_file(file_api_key)),
            merchant: overrides
                .cryptomus_merchant
                .or(from_file(chosen.cryptomus.merchant.clone())),
            base_url: pick(
                overrides.cryptomus_url,
                chosen.cryptomus.base_url.clone(),
                DEFAULT_CRYPTOMUS_URL.into(),
            ),
        };

        for key in chosen.providers.keys() {
            if !PROVIDER_SETTINGS.iter().any(|s| s.key == key) {
                let known: Vec<&str> = PROVIDER_SETTINGS.iter().map(|s| s.key).collect();
                return Err(UsageError::new(format!(
                    "unknown setting in {}; known provider settings: {}",
                    profile_key(&format!("providers.{key}")),
                    known.join(", ")
                )));
            }
        }
        let mut providers = Providers::default();
        for spec in PROVIDER_SETTINGS {
            let in_file = match chosen.providers.get(spec.key) {
                None => None,
                Some(toml::Value::String(text)) => Some(text.clone()),
                Some(toml::Value::Integer(n)) => Some(n.to_string()),
                Some(toml::Value::Table(reference)) if spec.secret => {
                    Some(secret_reference(reference).map_err(|why| {
                        UsageError::new(format!(
                            "{}: {why}",
                            profile_key(&format!("providers.{}", spec.key))
                        ))
                    })?)
                }
                Some(other) => {
                    return Err(UsageError::new(format!(
                        "invalid value in {}: expected {}, found {}",
                        profile_key(&format!("providers.{}", spec.key)),
                        if spec.secret {
                            "a string, { file = \"…\" } or { env = \"…\" }"
                        } else {
                            "a string"
                        },
                        other.type_str()
                    )));
                }
            };
            let value = overrides
                .providers
                .get(spec.key)
                .cloned()
                .or(from_file(in_file))
                .or(spec.default.map(|d| Sourced {
                    value: d.to_owned(),
                    source: Source::Default,
                }));
            if let Some(value) = value {
                providers.values.insert(spec.key, value);
            }
        }

        let brokers = pick(overrides.brokers, chosen.brokers, DEFAULT_BROKERS.into());
        if brokers.value.trim().is_empty() {
            return Err(UsageError::new(format!(
                "the broker list (from the {}) is empty; give host:port pairs separated by commas",
                brokers.source
            )));
        }

        Ok(Settings {
            config_file: path.clone(),
            profile,
            brokers,
            client_id: pick(
                overrides.client_id,
                chosen.client_id,
                DEFAULT_CLIENT_ID.into(),
            ),
            database_url: pick(
                overrides.database_url,
                chosen.database_url,
                default_database_url(),
            ),
            metrics_addr: pick(
                overrides.metrics_addr,
                chosen.metrics_addr,
                DEFAULT_METRICS_ADDR.into(),
            ),
            timeout,
            kafka,
            thresholds,
            cryptomus,
            providers,
            read_only: chosen.read_only,
            audit_topic: chosen.audit_topic,
        })
    }
}

/// A value kept out of the config file: `{ file = "/run/secrets/kafka" }`
/// reads a file (one trailing newline dropped), `{ env = "KAFKA_PASSWORD" }`
/// a variable. Errors name the file or variable, never what it holds.
fn secret_reference(reference: &toml::map::Map<String, toml::Value>) -> Result<String, String> {
    let field = |name: &str| reference.get(name).and_then(toml::Value::as_str);
    match (field("file"), field("env"), reference.len()) {
        (Some(path), None, 1) => std::fs::read_to_string(path)
            .map(|text| text.strip_suffix('\n').unwrap_or(&text).to_string())
            .map_err(|e| format!("cannot read the secret file {path}: {e}")),
        (None, Some(var), 1) => {
            std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
        }
        _ => Err("expected { file = \"…\" } or { env = \"…\" }".into()),
    }
}

fn read_config_file(path: &Path, explicit: bool) -> Result<ConfigFile, UsageError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError::new(format!(
            "cannot read the config file {}: {e}{}",
            path.display(),
            if explicit {
                " (given with --config or SMM_CONFIG)"
            } else {
                ""
            }
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        // toml's message already names the line, column and key.
        UsageError::new(format!(
            "invalid config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

/// `$XDG_CONFIG_HOME/smmctl/config.toml`, usually `~/.config/smmctl/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("smmctl").join("config.toml"))
}

/// A SQLite file in the user's state directory, so the local default needs
/// no database server.
pub fn default_database_url() -> String {
    let dir = dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("smmctl");
    format!("sqlite://{}", dir.join("panel.db").display())
}

/// Durations as operators write them: `10s`, `500ms`, `2m`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it like 10s, 500ms or 1m30s"))?;
    if parsed.is_negative() || parsed.is_zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Duration::try_from(parsed).map_err(|_| format!("`{text}` is out of range"))
}

/// Parses one `-X key=value`.
pub fn parse_kafka_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not of the form key=value (for example -X security.protocol=SASL_SSL)"
        )),
    }
}

/// Settings names that hold secrets, in librdkafka and in our own config.
/// When in doubt a value is masked: a hidden setting costs a look at the
/// file, a leaked one costs a rotation.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "api.key",
        "apikey",
        "key.pem",
        "private",
        "credential",
        "jaas",
        "assertion",
    ]
    .iter()
    .any(|s| key.contains(s))
        || key == "sasl.oauthbearer.config"
}

/// Masks the password in a database URL or connection string:
/// `postgres://user:pw@host/db`, `?password=…` query parameters, and libpq's
/// `host=… password=…` form. Passwords may contain `/`, `?` or `#`
/// unescaped, so the user information runs to the last `@`.
pub fn mask_url_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://")
        && let Some(at) = out.rfind('@')
        && at > scheme_end
    {
        let userinfo = &out[scheme_end + 3..at];
        if let Some(colon) = userinfo.find(':') {
            let start = scheme_end + 3 + colon + 1;
            out.replace_range(start..at, "****");
        }
    }
    mask_password_fields(&out)
}

/// `password=…` up to the next `&`, `;` or space, wherever it appears.
fn mask_password_fields(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password=") {
        let value_start = i + found + "password=".len();
        out.push_str(&text[i..value_start]);
        let value_end = text[value_start..]
            .find(['&', ';', ' '])
            .map_or(text.len(), |e| value_start + e);
        out.push_str("****");
        i = value_end;
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        toml::from_str(text).unwrap()
    }

    fn flag(value: &str) -> Option<Sourced<String>> {
        Some(Sourced {
            value: value.into(),
            source: Source::Flag,
        })
    }

    const SAMPLE: &str = r#"
        profile = "staging"

        [profiles.staging]
        brokers = "kafka-staging:9092"
        client_id = "ops"
        timeout = "3s"
        kafka = { "security.protocol" = "SASL_SSL", "sasl.password" = "hunter2", "socket.keepalive.enable" = true }
        thresholds = { max_lag = 5000, groups = { "dlq-processing-group" = { max_lag = 0 } } }

        [profiles.prod]
        brokers = "kafka-prod:9092"
    "#;

    #[test]
    fn the_file_fills_what_flags_and_env_leave_unset() {
        let s = Settings::resolve(Overrides::default(), None, file(SAMPLE)).unwrap();
        assert_eq!(s.brokers.value, "kafka-staging:9092");
        assert_eq!(s.brokers.source, Source::File);
        assert_eq!(s.client_id.value, "ops");
        assert_eq!(s.timeout.value, Duration::from_secs(3));
        assert_eq!(s.kafka["socket.keepalive.enable"].value, "true");
        assert_eq!(s.thresholds.max_lag_for("order-status-group"), 5000);
        assert_eq!(s.thresholds.max_lag_for("dlq-processing-group"), 0);
        assert_eq!(s.metrics_addr.source, Source::Default);
    }

    #[test]
    fn flags_win_over_the_file_and_x_wins_over_profile_properties() {
        let overrides = Overrides {
            brokers: flag("other:9092"),
            profile: flag("staging"),
            kafka: vec![("sasl.password".into(), "from-flag".into())],
            ..Overrides::default()
        };
        let s = Settings::resolve(overrides, None, file(SAMPLE)).unwrap();
        assert_eq!(s.brokers.value, "other:9092");
        assert_eq!(s.brokers.source, Source::Flag);
        assert_eq!(s.kafka["sasl.password"].value, "from-flag");
        assert_eq!(s.kafka["security.protocol"].value, "SASL_SSL");
    }

    #[test]
    fn the_chosen_profile_overrides_the_file_default() {
        let overrides = Overrides {
            profile: flag("prod"),
            ..Overrides::default()
        };
        let s = Settings::resolve(overrides, None, file(SAMPLE)).unwrap();
        assert_eq!(s.brokers.value, "kafka-prod:9092");
        assert!(s.kafka.is_empty());
        assert_eq!(s.thresholds.max_lag, 1000);
    }

    #[test]
    fn an_unknown_profile_names_the_known_ones() {
        let overrides = Overrides {
            profile: flag("qa"),
            ..Overrides::default()
        };
        let err =
            Settings::resolve(overrides, Some("/etc/smm.toml".into()), file(SAMPLE)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("profile `qa` is not defined in /etc/smm.toml"),
            "{text}"
        );
        assert!(text.contains("prod, staging"), "{text}");
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_key() {
        let cases = [
            (
                r#"[profiles.a]
                timeout = "soon""#,
                "key `timeout`",
            ),
            (
                r#"[profiles.a]
                thresholds = { max_error_rate = 5.0 }"#,
                "thresholds.max_error_rate",
            ),
            (
                r#"[profiles.a]
                thresholds = { max_lag = -1 }"#,
                "thresholds.max_lag",
            ),
            (
                r#"[profiles.a]
                kafka = { "bootstrap.servers" = "x:1" }"#,
                "bootstrap.servers",
            ),
            (
                r#"[profiles.a]
                kafka = { "a" = [1] }"#,
                "kafka.a",
            ),
        ];
        for (text, needle) in cases {
            let overrides = Overrides {
                profile: flag("a"),
                ..Overrides::default()
            };
            let err = Settings::resolve(overrides, Some("c.toml".into()), file(text)).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn secrets_can_live_in_files_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "from-a-file\n").unwrap();
        // A variable every process has, so the test need not set one while
        // other tests read the environment.
        let path_var = std::env::var("PATH").unwrap();
        let text = format!(
            "[profiles.a.kafka]\n\"sasl.password\" = {{ file = \"{}\" }}\n\"ssl.key.password\" = {{ env = \"PATH\" }}\n",
            secret.display()
        );
        let overrides = Overrides {
            profile: flag("a"),
            ..Overrides::default()
        };
        let s = Settings::resolve(overrides.clone(), None, file(&text)).unwrap();
        assert_eq!(s.kafka["sasl.password"].value, "from-a-file");
        assert_eq!(s.kafka["ssl.key.password"].value, path_var);

        let missing = "[profiles.a.kafka]\n\"sasl.password\" = { file = \"/nonexistent/pw\" }\n";
        let err = Settings::resolve(overrides.clone(), None, file(missing))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read the secret file /nonexistent/pw"),
            "{err}"
        );
        let unset = "[profiles.a.kafka]\n\"sasl.password\" = { env = \"SMM_TEST_NEVER_SET_42\" }\n";
        let err = Settings::resolve(overrides.clone(), None, file(unset))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SMM_TEST_NEVER_SET_42 is not set"), "{err}");
        let odd = "[profiles.a.kafka]\n\"sasl.password\" = { vault = \"x\" }\n";
        let err = Settings::resolve(overrides, None, file(odd))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected { file"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[profiles.a]\nbrokers = \"x:1\"\nbrokrs = \"y\"\n").unwrap();
        let err = read_config_file(&path, true).unwrap_err().to_string();
        assert!(err.contains("c.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("brokrs"), "{err}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = read_config_file(Path::new("/nonexistent/smm.toml"), true).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/smm.toml"));
    }

    #[test]
    fn durations_parse_as_operators_write_them() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn kafka_properties_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_kafka_property("a.b=c=d"),
            Ok(("a.b".into(), "c=d".into()))
        );
        assert_eq!(parse_kafka_property("a="), Ok(("a".into(), String::new())));
        assert!(parse_kafka_property("=x").is_err());
        assert!(parse_kafka_property("novalue").is_err());
    }

    #[test]
    fn secrets_are_recognised_and_masked() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "cryptomus_api_key",
            "sasl.oauthbearer.assertion.private.key.passphrase",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "security.protocol",
            "sasl.username",
            "ssl.ca.location",
            "ssl.key.location",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
        let cases = [
            (
                "postgres://smm:s3cret@db:5432/panel",
                "postgres://smm:****@db:5432/panel",
            ),
            (
                "postgres://smm:pa/ss@db/panel",
                "postgres://smm:****@db/panel",
            ),
            (
                "postgres://smm:pa#s?s@db/panel",
                "postgres://smm:****@db/panel",
            ),
            ("postgres://smm@db/panel", "postgres://smm@db/panel"),
            (
                "postgres://db/panel?user=smm&password=hunter2&sslmode=require",
                "postgres://db/panel?user=smm&password=****&sslmode=require",
            ),
            (
                "host=db user=smm password=hunter2 dbname=panel",
                "host=db user=smm password=**** dbname=panel",
            ),
            ("sqlite:///var/lib/panel.db", "sqlite:///var/lib/panel.db"),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_url_password(url), masked, "{url}");
        }
    }
}
