//! `smmctl health --prometheus`: the run's figures in the Prometheus text
//! format, for node_exporter's textfile collector.

use std::path::Path;

use anyhow::Context as _;

use super::cluster::ClusterHealth;
use super::model::{CheckResult, DeadLetters, Report};
use crate::lag::GroupLag;

pub(super) fn failed_run_metrics(reached: bool) -> String {
    let mut out = String::new();
    run_gauges(&mut out, reached, false);
    last_run_gauge(&mut out);
    out
}

/// Whether the brokers answered and every check was computed.
fn run_gauges(out: &mut String, broker_up: bool, run_ok: bool) {
    gauge(
        out,
        "smmctl_health_broker_up",
        "1 when the brokers answered.",
        &[(vec![], f64::from(u8::from(broker_up)))],
    );
    gauge(
        out,
        "smmctl_health_run_ok",
        "1 when smmctl health computed every check.",
        &[(vec![], f64::from(u8::from(run_ok)))],
    );
}

fn last_run_gauge(out: &mut String) {
    gauge(
        out,
        "smmctl_health_last_run_timestamp_seconds",
        "When smmctl health last ran.",
        &[(vec![], now_seconds())],
    );
}

fn now_seconds() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

pub(super) fn metrics(report: &Report) -> String {
    let Report {
        overall,
        categories,
        checks,
        dead_letters: dead,
        groups,
        cluster,
        producer,
    } = report;
    let mut out = String::new();
    run_gauges(&mut out, true, true);
    gauge(
        &mut out,
        "smmctl_health_status",
        "Overall health: 0 healthy, 1 degraded, 2 down.",
        &[(vec![], overall.gauge() as f64)],
    );
    let rows: Vec<_> = categories
        .iter()
        .map(|c| {
            (
                vec![("category", c.category.to_string())],
                c.status.gauge() as f64,
            )
        })
        .collect();
    gauge(
        &mut out,
        "smmctl_health_category_status",
        "Health of a topic category: 0 healthy, 1 degraded, 2 down.",
        &rows,
    );
    let rows: Vec<_> = checks
        .iter()
        .filter(|c| c.result != CheckResult::Skipped)
        .map(|c| {
            (
                vec![("check", c.check.to_string())],
                f64::from(u8::from(c.result == CheckResult::Ok)),
            )
        })
        .collect();
    gauge(
        &mut out,
        "smmctl_health_check_ok",
        "1 when the check passed.",
        &rows,
    );
    dead_letter_gauges(&mut out, dead);
    group_gauges(&mut out, groups);
    cluster_gauges(&mut out, cluster);
    if let Some(Ok(latency)) = producer {
        gauge(
            &mut out,
            "smmctl_health_producer_roundtrip_seconds",
            "Time to produce the test record and read it back.",
            &[(vec![], latency.as_secs_f64())],
        );
    }
    last_run_gauge(&mut out);
    out
}

/// Waiting and retained dead letters per dead-letter topic.
fn dead_letter_gauges(out: &mut String, dead: &[DeadLetters]) {
    let dead_gauge = |count: fn(&DeadLetters) -> Option<i64>| -> Vec<_> {
        dead.iter()
            .filter_map(|d| {
                count(d).map(|m| {
                    (
                        vec![
                            ("topic", d.topic.to_string()),
                            ("category", d.category.to_string()),
                            ("critical", d.critical.to_string()),
                        ],
                        m as f64,
                    )
                })
            })
            .collect()
    };
    gauge(
        out,
        "smmctl_dlq_waiting",
        "Dead letters waiting: records of a dead-letter topic after the position of dlq-processing-group.",
        &dead_gauge(|d| d.waiting),
    );
    gauge(
        out,
        "smmctl_dlq_retained",
        "Records a dead-letter topic retains, handled or not.",
        &dead_gauge(|d| d.retained),
    );
}

/// Brokers up, partitions short of replicas, and where leadership sits.
fn cluster_gauges(out: &mut String, cluster: &ClusterHealth) {
    let rows: Vec<_> = cluster
        .brokers
        .iter()
        .map(|b| {
            (
                vec![
                    ("broker", b.id.to_string()),
                    ("address", b.address.clone().unwrap_or_default()),
                ],
                f64::from(u8::from(!b.is_down())),
            )
        })
        .collect();
    gauge(
        out,
        "smmctl_cluster_broker_up",
        "1 when the broker is registered and accepts connections.",
        &rows,
    );
    let rows: Vec<_> = cluster
        .leaders
        .iter()
        .map(|(id, n)| (vec![("broker", id.to_string())], *n as f64))
        .collect();
    gauge(
        out,
        "smmctl_cluster_broker_leader_partitions",
        "Partitions the broker leads.",
        &rows,
    );
    for (name, help, value) in [
        (
            "smmctl_cluster_under_replicated_partitions",
            "Partitions whose in-sync replicas are fewer than their replicas.",
            cluster.under_replicated,
        ),
        (
            "smmctl_cluster_under_min_isr_partitions",
            "Partitions with fewer in-sync replicas than min.insync.replicas: acks=all writes fail.",
            cluster.under_min_isr,
        ),
        (
            "smmctl_cluster_offline_partitions",
            "Partitions without a leader that answers.",
            cluster.offline,
        ),
        (
            "smmctl_cluster_not_preferred_leader_partitions",
            "Partitions led by a broker other than their preferred leader.",
            cluster.not_preferred_leader,
        ),
    ] {
        gauge(out, name, help, &[(vec![], value as f64)]);
    }
    let rows: Vec<_> = cluster
        .topics
        .iter()
        .map(|t| {
            (
                vec![("topic", t.topic.clone())],
                t.under_replicated.len() as f64,
            )
        })
        .collect();
    gauge(
        out,
        "smmctl_topic_under_replicated_partitions",
        "Under-replicated partitions of a topic that has any.",
        &rows,
    );
}

/// Each consumer group's lag, in records and in time.
fn group_gauges(out: &mut String, groups: &[GroupLag]) {
    let rows: Vec<_> = groups
        .iter()
        .filter_map(|g| {
            g.total_lag()
                .map(|l| (vec![("group", g.group.clone())], l as f64))
        })
        .collect();
    gauge(
        out,
        "smmctl_consumergroup_lag",
        "Total lag of a consumer group, in messages.",
        &rows,
    );
    let rows: Vec<_> = groups
        .iter()
        .filter_map(|g| {
            g.max_lag_seconds()
                .map(|s| (vec![("group", g.group.clone())], s))
        })
        .collect();
    gauge(
        out,
        "smmctl_consumergroup_lag_seconds",
        "How far behind a consumer group is in time (its furthest partition).",
        &rows,
    );
}

/// One gauge in the Prometheus text format.
fn gauge(out: &mut String, name: &str, help: &str, rows: &[(Vec<(&str, String)>, f64)]) {
    if rows.is_empty() {
        return;
    }
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, value) in rows {
        if labels.is_empty() {
            out.push_str(&format!("{name} {value}\n"));
        } else {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}=\"{}\"",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                    )
                })
                .collect();
            out.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
        }
    }
}

/// The textfile collector may read at any moment: write beside the target
/// and rename, so it never sees half a file.
pub(super) fn write_textfile(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_escape_label_values() {
        let mut out = String::new();
        gauge(
            &mut out,
            "m",
            "help",
            &[(vec![("topic", "a\"b\\c".to_string())], 2.0)],
        );
        assert_eq!(
            out,
            "# HELP m help\n# TYPE m gauge\nm{topic=\"a\\\"b\\\\c\"} 2\n"
        );
    }

    #[test]
    fn an_empty_gauge_writes_nothing() {
        let mut out = String::new();
        gauge(&mut out, "m", "help", &[]);
        assert!(out.is_empty());
    }
}
