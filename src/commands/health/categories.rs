//! The health of each topic category of the catalog, and the dead letters
//! it counts.

use std::collections::{BTreeMap, HashMap};

use smm_workers::contract::catalog::{self, Category, Role, TOPICS, Topic};

use super::cluster::{ClusterHealth, TopicReplication};
use super::model::{CategoryHealth, DeadLetters, Health};
use crate::kafka::{ClusterMetadata, Watermarks};
use crate::lag::GroupLag;

/// Dead letters waiting and retained per dead-letter topic of the catalog,
/// judged against `positions`, the processing group's commits (`None` when
/// they could not be read, and then what waits is unknown).
fn dead_letter_counts(
    name: &str,
    metadata: &ClusterMetadata,
    watermarks: &HashMap<(String, i32), Watermarks>,
    positions: Option<&BTreeMap<(String, i32), i64>>,
) -> (Option<i64>, Option<i64>) {
    let Some(topic) = metadata.topics.get(name) else {
        return (None, None);
    };
    let (mut waiting, mut retained) = (Some(0i64), Some(0i64));
    for &p in &topic.partitions {
        let key = (name.to_string(), p);
        match watermarks.get(&key) {
            Some(w) => {
                retained = retained.map(|r| r + w.retained());
                waiting = match positions {
                    Some(at) => waiting.map(|n| n + w.waiting_after(at.get(&key).copied())),
                    None => None,
                };
            }
            None => {
                retained = None;
                waiting = None;
            }
        }
    }
    (waiting, retained)
}

pub(super) fn dead_letters(
    metadata: &ClusterMetadata,
    watermarks: &HashMap<(String, i32), Watermarks>,
    positions: Option<&BTreeMap<(String, i32), i64>>,
) -> Vec<DeadLetters> {
    TOPICS
        .iter()
        .filter(|t| t.is_dead_letter() && metadata.topics.contains_key(t.name))
        .map(|t| {
            let (waiting, retained) = dead_letter_counts(t.name, metadata, watermarks, positions);
            DeadLetters {
                topic: t.name,
                category: t.category.slug(),
                critical: t.critical,
                waiting,
                retained,
            }
        })
        .collect()
}

/// Topics whose absence is a problem: everything but Kafka's own (created on
/// first use) and the deprecated legacy ones.
pub(super) fn required(topic: &Topic) -> bool {
    !matches!(topic.role, Role::System | Role::Legacy)
}

pub(super) fn categories(
    metadata: &ClusterMetadata,
    dead: &[DeadLetters],
    groups: &[GroupLag],
    cluster: &ClusterHealth,
    max_dead_letters: i64,
) -> Vec<CategoryHealth> {
    Category::ALL
        .into_iter()
        .filter(|c| *c != Category::System)
        .map(|category| {
            let topics: Vec<&Topic> = catalog::topics_in(category).collect();
            let active = topics
                .iter()
                .filter(|t| metadata.topics.contains_key(t.name))
                .count();
            let in_category: Vec<&DeadLetters> = dead
                .iter()
                .filter(|d| d.category == category.slug())
                .collect();
            let dlq: Option<i64> = in_category
                .iter()
                .try_fold(0i64, |sum, d| d.waiting.map(|m| sum + m));
            let dlq_retained: Option<i64> = in_category
                .iter()
                .try_fold(0i64, |sum, d| d.retained.map(|m| sum + m));
            let mut status = Health::Healthy;
            let mut reasons = Vec::new();
            for t in topics.iter().filter(|t| required(t)) {
                match metadata.topics.get(t.name) {
                    None if t.role == Role::Main => {
                        status = status.max(Health::Down);
                        reasons.push(format!("main topic {} is missing", t.name));
                    }
                    None => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!("{} is missing", t.name));
                    }
                    Some(m) if !m.leaderless.is_empty() && t.role == Role::Main => {
                        status = status.max(Health::Down);
                        reasons.push(format!(
                            "{} has partitions without a leader: {:?}",
                            t.name, m.leaderless
                        ));
                    }
                    Some(m) if !m.leaderless.is_empty() => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!(
                            "{} has partitions without a leader: {:?}",
                            t.name, m.leaderless
                        ));
                    }
                    Some(_) => {}
                }
                if let Some(r) = cluster.topics.iter().find(|r| r.topic == t.name) {
                    let leaderless_said = metadata
                        .topics
                        .get(t.name)
                        .is_some_and(|m| !m.leaderless.is_empty());
                    if let Some((worst, reason)) = replication_reason(r, t.role, leaderless_said) {
                        status = status.max(worst);
                        reasons.push(reason);
                    }
                }
            }
            // Each dead-letter topic against the threshold, as the dead
            // letters check does, so the two never disagree.
            for d in &in_category {
                match d.waiting {
                    Some(n) if n > max_dead_letters => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!("{} has {n} dead letter(s) waiting", d.topic));
                    }
                    Some(_) => {}
                    None => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!("{} could not be counted", d.topic));
                    }
                }
            }
            // A group over its threshold degrades every category in which
            // it has lag, however the lag is spread across topics.
            for g in groups.iter().filter(|g| g.over_threshold()) {
                let reads_category = g.topics().iter().any(|t| {
                    catalog::topic_named(&t.topic)
                        .is_some_and(|c| c.category == category && !c.is_dead_letter())
                        && t.lag.is_some_and(|l| l > 0)
                });
                if reads_category {
                    status = status.max(Health::Degraded);
                    reasons.push(format!(
                        "{} lags {} (threshold {})",
                        g.group,
                        g.total_lag().unwrap_or(0),
                        g.threshold
                    ));
                }
            }
            CategoryHealth {
                category: category.slug(),
                title: category.title(),
                active_topics: active,
                catalog_topics: topics.len(),
                dlq_messages: dlq,
                dlq_retained,
                status,
                reasons,
            }
        })
        .collect()
}

/// What a topic's missing replicas mean for its category. Writes with
/// acks=all fail under min ISR, so on a main or money topic that is Down;
/// a partition whose leader is down cannot be read or written at all.
fn replication_reason(
    r: &TopicReplication,
    role: Role,
    leaderless_said: bool,
) -> Option<(Health, String)> {
    let stopping = if r.essential || role == Role::Main {
        Health::Down
    } else {
        Health::Degraded
    };
    if !r.offline.is_empty() && !leaderless_said {
        Some((
            stopping,
            format!(
                "{} has partitions whose leader is down: {:?}",
                r.topic, r.offline
            ),
        ))
    } else if !r.under_min_isr.is_empty() {
        Some((
            stopping,
            format!(
                "{} has partitions under min.insync.replicas={} (acks=all writes fail): {:?}",
                r.topic,
                r.min_insync_replicas.unwrap_or_default(),
                r.under_min_isr
            ),
        ))
    } else if !r.under_replicated.is_empty() {
        Some((
            Health::Degraded,
            format!(
                "{} has under-replicated partitions: {:?}",
                r.topic, r.under_replicated
            ),
        ))
    } else {
        None
    }
}
