//! How `topics apply` creates the catalog's topics on this cluster: a
//! profile's `topics` table over the panel's development defaults.
//!
//! A replicated cluster needs a min ISR above one: with one, a write is
//! acknowledged by the leader alone, and a leader that dies right after
//! loses a payment the gateway already confirmed. Left unset, the min ISR
//! follows the replication factor: a majority of the replicas from three
//! up (2 of 3, 3 of 5), and 1 below, where a majority would block every
//! write while one broker of two is down.

use serde::Deserialize;
use smm_workers::contract::catalog::TOPIC_DEFAULTS;

use crate::exit::UsageError;

use super::origin::{Combine, Origin, Sourced};
use super::profile::Place;

/// The `topics` table of a profile.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsFile {
    pub replication_factor: Option<i32>,
    pub min_insync_replicas: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub replication_factor: Sourced<i32>,
    pub min_insync_replicas: Sourced<i32>,
}

/// The min ISR that goes with a replication factor when none is set.
pub fn default_min_insync_replicas(replication_factor: i32) -> i32 {
    if replication_factor >= 3 {
        replication_factor / 2 + 1
    } else {
        1
    }
}

impl TopicSettings {
    pub fn resolve(file: &TopicsFile, place: &Place) -> Result<TopicSettings, UsageError> {
        for (key, value) in [
            ("replication_factor", file.replication_factor),
            ("min_insync_replicas", file.min_insync_replicas),
        ] {
            if let Some(v) = value.filter(|&v| v < 1) {
                return Err(UsageError::new(format!(
                    "invalid value {v} in {}: it must be at least 1",
                    place.key(&format!("topics.{key}"))
                )));
            }
        }
        let settings = TopicSettings::with(
            None.or_file(file.replication_factor)
                .or_default(TOPIC_DEFAULTS.replication_factor),
            file.min_insync_replicas,
        );
        settings.check().map_err(|why| {
            UsageError::new(format!(
                "invalid {}: {why}",
                place.key("topics.min_insync_replicas")
            ))
        })?;
        Ok(settings)
    }

    /// A replication factor and, if given, its min ISR; otherwise the
    /// default that goes with the factor.
    fn with(replication_factor: Sourced<i32>, min_isr: Option<i32>) -> TopicSettings {
        let derived = Sourced::new(
            default_min_insync_replicas(replication_factor.value),
            Origin::Default,
        );
        TopicSettings {
            min_insync_replicas: min_isr.map_or(derived, |v| Sourced::new(v, Origin::File)),
            replication_factor,
        }
    }

    /// These settings with `topics apply`'s flags over them. A factor given
    /// alone brings its own default min ISR, never the profile's min ISR
    /// for another factor.
    pub fn with_flags(
        &self,
        replication_factor: Option<i32>,
        min_insync_replicas: Option<i32>,
    ) -> Result<TopicSettings, UsageError> {
        let factor_given = replication_factor.is_some();
        let mut settings = match replication_factor {
            Some(rf) => TopicSettings::with(Sourced::new(rf, Origin::Flag), None),
            None => self.clone(),
        };
        if let Some(min_isr) = min_insync_replicas {
            settings.min_insync_replicas = Sourced::new(min_isr, Origin::Flag);
        }
        settings.check().map_err(|why| {
            let flags = if factor_given {
                "--min-insync-replicas and --replication-factor"
            } else {
                "--min-insync-replicas"
            };
            UsageError::new(format!("invalid {flags}: {why}"))
        })?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        let (rf, min_isr) = (
            self.replication_factor.value,
            self.min_insync_replicas.value,
        );
        if min_isr > rf {
            return Err(format!(
                "min.insync.replicas {min_isr} is above the replication factor {rf}, so no write with acks=all could ever succeed"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_min_isr_follows_the_replication_factor_unless_set() {
        assert_eq!(default_min_insync_replicas(1), 1);
        assert_eq!(default_min_insync_replicas(2), 1);
        assert_eq!(default_min_insync_replicas(3), 2);
        assert_eq!(default_min_insync_replicas(5), 3);
        let place = Place::new(None, None);
        let profile = TopicSettings::resolve(
            &TopicsFile {
                replication_factor: Some(3),
                min_insync_replicas: None,
            },
            &place,
        )
        .unwrap();
        assert_eq!(profile.min_insync_replicas.value, 2);
        let flagged = profile.with_flags(Some(1), None).unwrap();
        assert_eq!(flagged.min_insync_replicas.value, 1);
        let flagged = profile.with_flags(None, Some(3)).unwrap();
        assert_eq!(
            (
                flagged.replication_factor.value,
                flagged.min_insync_replicas.value
            ),
            (3, 3)
        );
    }

    #[test]
    fn a_min_isr_above_the_replication_factor_is_refused_naming_the_key() {
        let place = Place::new(None, None);
        let err = TopicSettings::resolve(
            &TopicsFile {
                replication_factor: Some(3),
                min_insync_replicas: Some(4),
            },
            &place,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("key `topics.min_insync_replicas`"),
            "{err}"
        );
        let defaults = TopicSettings::resolve(&TopicsFile::default(), &place).unwrap();
        let err = defaults.with_flags(None, Some(2)).unwrap_err();
        assert!(err.to_string().contains("--min-insync-replicas"), "{err}");
        assert!(
            err.to_string().contains("above the replication factor 1"),
            "{err}"
        );
        let err = TopicSettings::resolve(
            &TopicsFile {
                replication_factor: Some(0),
                min_insync_replicas: None,
            },
            &place,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("topics.replication_factor"),
            "{err}"
        );
    }
}
