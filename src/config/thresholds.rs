//! The health and lag thresholds: the panel's defaults, and a profile's
//! `thresholds` table over them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smm_workers::contract::catalog::THRESHOLDS;

use crate::exit::UsageError;

use super::profile::Place;

/// The `thresholds` table of a profile.
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

    /// The profile's thresholds over the panel's defaults, once they make
    /// sense.
    pub fn resolve(t: &ThresholdsFile, place: &Place) -> Result<Thresholds, UsageError> {
        check(t, place)?;
        Ok(Thresholds {
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
        })
    }
}

/// A rate is a fraction, and no count can be negative.
fn check(t: &ThresholdsFile, place: &Place) -> Result<(), UsageError> {
    if let Some(rate) = t.max_error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Err(UsageError::new(format!(
            "invalid value {rate} in {}: a rate is a fraction between 0 and 1 (0.01 is 1 %)",
            place.key("thresholds.max_error_rate")
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
                place.key(&format!("thresholds.{key}"))
            )));
        }
    }
    Ok(())
}
