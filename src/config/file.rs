//! The config file as the operator writes it, and where it is found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::UsageError;

use super::cryptomus::CryptomusFile;
use super::thresholds::ThresholdsFile;
use super::topics::TopicsFile;

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
    /// Replication factor and min ISR for the topics `topics apply` makes.
    #[serde(default)]
    pub topics: TopicsFile,
    #[serde(default)]
    pub cryptomus: CryptomusFile,
    /// Where the fulfilment workers reach their outside services; keys are
    /// those of [`super::PROVIDER_SETTINGS`].
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

/// `explicit` says the path was given with `--config` or `SMM_CONFIG`,
/// which the error then mentions.
pub fn read_config_file(path: &Path, explicit: bool) -> Result<ConfigFile, UsageError> {
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

/// "invalid value in FILE (profile …, key …): expected …, found …": a
/// profile key holding a TOML type it cannot take.
pub fn wrong_type(
    what: &str,
    key: &str,
    place: &super::profile::Place,
    expected: &str,
    found: &toml::Value,
) -> UsageError {
    UsageError::new(format!(
        "invalid {what} in {}: expected {expected}, found {}",
        place.key(key),
        found.type_str()
    ))
}
