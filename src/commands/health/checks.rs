//! The checks of `smmctl health`, each judged from what was read off the
//! cluster.

use std::time::Duration;

use smm_workers::contract::catalog::{self, HEALTH_TOPIC, TOPICS, Topic};

use super::categories::required;
use super::model::{CategoryHealth, Check, CheckResult, DeadLetters, Health};
use crate::kafka::ClusterMetadata;
use crate::kafka::groups::GroupState;
use crate::lag::{GroupLag, format_seconds};

pub(super) fn group_state_check(groups: &[GroupLag]) -> Check {
    let bad: Vec<String> = groups
        .iter()
        .filter(|g| !matches!(g.state, GroupState::Stable | GroupState::Empty))
        .map(|g| {
            if g.state == GroupState::Dead {
                format!("{} does not exist (Dead)", g.group)
            } else {
                format!("{} is {}", g.group, g.state.as_str())
            }
        })
        .collect();
    if bad.is_empty() {
        Check {
            check: "consumer groups",
            result: CheckResult::Ok,
            detail: format!("all {} panel groups are Stable or Empty", groups.len()),
        }
    } else {
        Check {
            check: "consumer groups",
            result: CheckResult::Fail,
            detail: format!(
                "{} of {} not Stable or Empty: {}",
                bad.len(),
                groups.len(),
                bad.join("; ")
            ),
        }
    }
}

/// Every partition of the topics an active group reads has an owner. The
/// topics are the catalog's for the group plus any a member holds.
pub(super) fn assignment_check(groups: &[GroupLag], metadata: &ClusterMetadata) -> Check {
    let mut unassigned = Vec::new();
    let mut checked = 0;
    for g in groups.iter().filter(|g| !g.members.is_empty()) {
        checked += 1;
        let mut missing = 0;
        let mut topics: Vec<String> = catalog::group_named(&g.group)
            .map(|s| s.topics().iter().map(|t| t.to_string()).collect())
            .unwrap_or_default();
        topics.extend(
            g.partitions
                .iter()
                .filter(|p| p.member.is_some())
                .map(|p| p.topic.clone()),
        );
        topics.sort();
        topics.dedup();
        for topic in &topics {
            let Some(meta) = metadata.topics.get(topic) else {
                continue;
            };
            for &p in &meta.partitions {
                let owned = g
                    .partitions
                    .iter()
                    .any(|x| &x.topic == topic && x.partition == p && x.member.is_some());
                if !owned {
                    missing += 1;
                }
            }
        }
        if missing > 0 {
            unassigned.push(format!("{}: {missing} partition(s) unassigned", g.group));
        }
    }
    if unassigned.is_empty() {
        Check {
            check: "partition assignment",
            result: CheckResult::Ok,
            detail: if checked == 0 {
                "no panel group has active members".into()
            } else {
                format!("every partition of {checked} active group(s) is assigned")
            },
        }
    } else {
        Check {
            check: "partition assignment",
            result: CheckResult::Fail,
            detail: unassigned.join("; "),
        }
    }
}

/// The three checks read from the groups, when the groups could not be read.
pub(super) fn unknown_group_checks(detail: &str) -> [Check; 3] {
    ["consumer groups", "partition assignment", "consumer lag"].map(|check| Check {
        check,
        result: CheckResult::Unknown,
        detail: detail.to_string(),
    })
}

pub(super) fn lag_check(groups: &[GroupLag]) -> Check {
    let unknown: Vec<String> = groups
        .iter()
        .filter_map(|g| g.incomplete().map(|why| format!("{}: {why}", g.group)))
        .collect();
    let over: Vec<String> = groups
        .iter()
        .filter(|g| g.over_threshold())
        .map(|g| {
            format!(
                "{} lags {} (threshold {}{})",
                g.group,
                g.total_lag().unwrap_or(0),
                g.threshold,
                g.max_lag_seconds()
                    .map(|s| format!(", {} behind", format_seconds(s)))
                    .unwrap_or_default()
            )
        })
        .collect();
    if over.is_empty() && !unknown.is_empty() {
        return Check {
            check: "consumer lag",
            result: CheckResult::Warn,
            detail: format!("could not measure every group: {}", unknown.join("; ")),
        };
    }
    if over.is_empty() {
        let worst = groups
            .iter()
            .filter_map(|g| g.total_lag().map(|l| (l, g.group.as_str())))
            .max();
        Check {
            check: "consumer lag",
            result: CheckResult::Ok,
            detail: match worst {
                Some((0, _)) => "every panel group is caught up".into(),
                Some((lag, group)) => {
                    format!("every group under its threshold (largest: {group} at {lag})")
                }
                None => "no committed offsets to measure".into(),
            },
        }
    } else {
        Check {
            check: "consumer lag",
            result: CheckResult::Fail,
            detail: over.join("; "),
        }
    }
}

pub(super) fn missing_topics_check(metadata: &ClusterMetadata) -> Check {
    let required: Vec<&Topic> = TOPICS.iter().filter(|t| required(t)).collect();
    let missing: Vec<&str> = required
        .iter()
        .filter(|t| !metadata.topics.contains_key(t.name))
        .map(|t| t.name)
        .collect();
    Check {
        check: "catalog topics",
        result: if missing.is_empty() {
            CheckResult::Ok
        } else {
            CheckResult::Fail
        },
        detail: if missing.is_empty() {
            format!("{} of {} present", required.len(), required.len())
        } else {
            format!(
                "{} missing (create them with `smmctl topics apply`): {}",
                missing.len(),
                missing.join(", ")
            )
        },
    }
}

pub(super) fn dead_letter_check(dead: &[DeadLetters], max: i64) -> Check {
    // A topic that could not be counted may hold anything: never "empty".
    let uncounted: Vec<&str> = dead
        .iter()
        .filter(|d| d.waiting.is_none())
        .map(|d| d.topic)
        .collect();
    let waiting: Vec<&DeadLetters> = dead
        .iter()
        .filter(|d| d.waiting.is_some_and(|m| m > max))
        .collect();
    if waiting.is_empty() && uncounted.is_empty() {
        return Check {
            check: "dead letters",
            result: CheckResult::Ok,
            detail: {
                let retained: i64 = dead.iter().filter_map(|d| d.retained).sum();
                let judged = if max == 0 {
                    format!("no dead letter waiting in {} topics", dead.len())
                } else {
                    format!("at most {max} waiting in each of {} topics", dead.len())
                };
                format!("{judged} ({retained} retained, handled)")
            },
        };
    }
    if waiting.is_empty() {
        return Check {
            check: "dead letters",
            result: CheckResult::Fail,
            detail: format!("could not count {}", uncounted.join(", ")),
        };
    }
    let describe = |d: &&DeadLetters| {
        format!(
            "{} has {} waiting ({} retained)",
            d.topic,
            d.waiting.unwrap_or(0),
            crate::output::or_dash(d.retained)
        )
    };
    let critical: Vec<String> = waiting
        .iter()
        .filter(|d| d.critical)
        .map(describe)
        .collect();
    let other: Vec<String> = waiting
        .iter()
        .filter(|d| !d.critical)
        .map(describe)
        .collect();
    let mut parts = Vec::new();
    if !critical.is_empty() {
        parts.push(format!("CRITICAL (money): {}", critical.join(", ")));
    }
    if !other.is_empty() {
        parts.push(other.join(", "));
    }
    Check {
        check: "dead letters",
        result: if critical.is_empty() {
            CheckResult::Warn
        } else {
            CheckResult::Fail
        },
        detail: format!("{}; review with `smmctl dlq inspect`", parts.join("; ")),
    }
}

/// Whether a record could be produced to the health topic and read back:
/// `None` when the probe was not run.
pub(super) fn producer_check(
    producer: Option<&anyhow::Result<Duration>>,
    read_only: bool,
) -> Check {
    match producer {
        None => Check {
            check: "producer readiness",
            result: CheckResult::Skipped,
            detail: if read_only {
                "skipped (read-only profile)".into()
            } else {
                "skipped (--no-produce)".into()
            },
        },
        Some(Ok(latency)) => Check {
            check: "producer readiness",
            result: CheckResult::Ok,
            detail: format!(
                "test record produced to {HEALTH_TOPIC} and read back in {} ms",
                latency.as_millis()
            ),
        },
        Some(Err(e)) => Check {
            check: "producer readiness",
            result: CheckResult::Fail,
            detail: format!("{e:#}"),
        },
    }
}

/// The worst category's health, and at least degraded when a check warns
/// or fails.
pub(super) fn overall_health(categories: &[CategoryHealth], checks: &[Check]) -> Health {
    let worst_category = categories
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Health::Healthy);
    let failing = checks.iter().any(|c| {
        matches!(
            c.result,
            CheckResult::Warn | CheckResult::Fail | CheckResult::Unknown
        )
    });
    if worst_category == Health::Healthy && failing {
        Health::Degraded
    } else {
        worst_category
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_in_financial_topics_fail_the_check() {
        let dead = [
            DeadLetters {
                topic: "smm.order.refund.dlq",
                category: "order-processing",
                critical: true,
                waiting: Some(2),
                retained: Some(5),
            },
            DeadLetters {
                topic: "smm.notifications.dlq",
                category: "notifications",
                critical: false,
                waiting: Some(1),
                retained: Some(1),
            },
        ];
        let check = dead_letter_check(&dead, 0);
        assert_eq!(check.result, CheckResult::Fail);
        assert!(
            check
                .detail
                .contains("CRITICAL (money): smm.order.refund.dlq has 2 waiting (5 retained)"),
            "{}",
            check.detail
        );
        let check = dead_letter_check(&dead[1..], 0);
        assert_eq!(check.result, CheckResult::Warn);
        assert_eq!(dead_letter_check(&dead[1..], 5).result, CheckResult::Ok);
    }
}
