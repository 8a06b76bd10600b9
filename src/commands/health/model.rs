//! What `smmctl health` reports: the overall health, per topic category,
//! and the checks behind it.

use std::time::Duration;

use serde::Serialize;

use super::cluster::ClusterHealth;
use crate::lag::GroupLag;
use crate::output::Tone;

/// Everything one run found, for the table, the JSON and the metrics.
pub struct Report {
    pub overall: Health,
    pub categories: Vec<CategoryHealth>,
    pub checks: Vec<Check>,
    pub dead_letters: Vec<DeadLetters>,
    pub groups: Vec<GroupLag>,
    pub cluster: ClusterHealth,
    /// The probe's round trip; `None` when it was not run.
    pub producer: Option<anyhow::Result<Duration>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Down,
}

impl Health {
    pub(super) fn label(self, fancy: bool) -> &'static str {
        match (self, fancy) {
            (Health::Healthy, true) => "✅ Healthy",
            (Health::Degraded, true) => "⚠️ Degraded",
            (Health::Down, true) => "❌ Down",
            (Health::Healthy, false) => "Healthy",
            (Health::Degraded, false) => "Degraded",
            (Health::Down, false) => "Down",
        }
    }

    pub(super) fn tone(self) -> Tone {
        match self {
            Health::Healthy => Tone::Good,
            Health::Degraded => Tone::Warn,
            Health::Down => Tone::Bad,
        }
    }

    pub(super) fn gauge(self) -> i64 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Down => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Ok,
    Warn,
    Fail,
    /// The check's broker did not answer by its deadline.
    Unknown,
    Skipped,
}

impl CheckResult {
    pub(super) fn tone(self) -> Tone {
        match self {
            CheckResult::Ok => Tone::Good,
            CheckResult::Warn => Tone::Warn,
            CheckResult::Fail => Tone::Bad,
            CheckResult::Unknown => Tone::Warn,
            CheckResult::Skipped => Tone::Plain,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub result: CheckResult,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryHealth {
    pub category: &'static str,
    pub title: &'static str,
    pub active_topics: usize,
    pub catalog_topics: usize,
    /// Dead letters waiting in the category's dead-letter topics: records
    /// after the processing group's position.
    pub dlq_messages: Option<i64>,
    /// Everything those topics retain, handled or not.
    pub dlq_retained: Option<i64>,
    pub status: Health,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    pub topic: &'static str,
    pub category: &'static str,
    pub critical: bool,
    /// Records after the processing group's position: not handled yet.
    pub waiting: Option<i64>,
    /// Records the topic holds, handled or not.
    pub retained: Option<i64>,
}
