//! Effective settings: flags, then `SMM_*` environment variables, then the
//! config file's profile, then built-in defaults.
//!
//! Flags and environment variables are both read by clap, which already
//! lets a flag win over its variable; this module fills whatever they left
//! unset from the file and remembers where each value came from, so
//! `smmctl config show` can say why a setting has the value it has. Each
//! section of the settings resolves itself in its own module, by the rule
//! in [`origin::Combine`].

mod connection;
mod cryptomus;
mod file;
mod kafka;
mod origin;
mod profile;
mod providers;
mod secrets;
mod thresholds;
mod topics;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::UsageError;

pub use self::connection::{DEFAULT_BROKERS, DEFAULT_CLIENT_ID, DEFAULT_TIMEOUT};
pub use self::cryptomus::{Cryptomus, CryptomusFile, CryptomusOverrides, DEFAULT_CRYPTOMUS_URL};
pub use self::file::{ConfigFile, Profile, default_config_path};
pub use self::kafka::parse_kafka_property;
pub use self::origin::{Combine, Origin, Sourced};
pub use self::providers::{PROVIDER_SETTINGS, ProviderSetting, Providers};
pub use self::secrets::{is_secret_key, mask_url_password};
pub use self::thresholds::{GroupThresholds, Thresholds, ThresholdsFile};
pub use self::topics::{TopicSettings, TopicsFile, default_min_insync_replicas};
pub use self::worker::{DEFAULT_METRICS_ADDR, default_database_url};
pub use crate::input::parse_duration;

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
    pub cryptomus: CryptomusOverrides,
    /// Provider settings from their `SMM_*` variables, by key.
    pub providers: BTreeMap<&'static str, Sourced<String>>,
    pub timeout: Option<Sourced<Duration>>,
    /// `-X key=value`, in the order given.
    pub kafka: Vec<(String, String)>,
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
    /// How `topics apply` creates topics, and what `topics list` and
    /// `health` hold them to.
    pub topics: TopicSettings,
    pub cryptomus: Cryptomus,
    pub providers: Providers,
    /// The profile refuses every command that writes to the cluster.
    pub read_only: bool,
    /// Destructive commands also append their audit line to a topic.
    pub audit_topic: bool,
}

impl Settings {
    /// Merges the overrides with the config file they point at (or the XDG
    /// default, when it exists).
    pub fn load(overrides: Overrides) -> Result<Settings, UsageError> {
        let (path, explicit) = match &overrides.config {
            Some(c) => (Some(c.value.clone()), true),
            None => (default_config_path().filter(|p| p.exists()), false),
        };
        let file = match &path {
            Some(p) => file::read_config_file(p, explicit)?,
            None => ConfigFile::default(),
        };
        Settings::resolve(overrides, path, file)
    }

    /// Section by section, in an order that decides which of several wrong
    /// values is reported first.
    fn resolve(
        overrides: Overrides,
        path: Option<PathBuf>,
        file: ConfigFile,
    ) -> Result<Settings, UsageError> {
        let profile = overrides.profile.clone().or_file(file.profile.clone());
        let place = profile::Place::new(path.as_deref(), profile.as_ref());
        let chosen = profile::choose(&file, profile.as_ref(), &place)?;
        let timeout = connection::timeout(overrides.timeout, chosen.timeout.as_deref(), &place)?;
        let kafka = kafka::resolve(&chosen.kafka, overrides.kafka, &place)?;
        let thresholds = Thresholds::resolve(&chosen.thresholds, &place)?;
        let topics = TopicSettings::resolve(&chosen.topics, &place)?;
        let cryptomus = Cryptomus::resolve(overrides.cryptomus, &chosen.cryptomus, &place)?;
        let providers = Providers::resolve(&overrides.providers, &chosen.providers, &place)?;
        let brokers = connection::brokers(overrides.brokers, chosen.brokers)?;
        Ok(Settings {
            config_file: path,
            profile,
            brokers,
            client_id: connection::client_id(overrides.client_id, chosen.client_id),
            database_url: worker::database_url(overrides.database_url, chosen.database_url),
            metrics_addr: worker::metrics_addr(overrides.metrics_addr, chosen.metrics_addr),
            timeout,
            kafka,
            thresholds,
            topics,
            cryptomus,
            providers,
            read_only: chosen.read_only,
            audit_topic: chosen.audit_topic,
        })
    }
}
