//! `smmctl dlq list`: every dead-letter topic, how much it holds, how old
//! its records are, and how much the processing group has not handled yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use smm_workers::contract::catalog::{self, TOPICS};

use crate::Context;
use crate::cli::DlqListArgs;
use crate::exit::ExitStatus;
use crate::kafka::groups;
use crate::kafka::{ClusterMetadata, Kafka, Watermarks};
use crate::output::or_dash;

#[derive(Debug, Serialize)]
struct DeadLetterTopicRow {
    topic: String,
    category: Option<&'static str>,
    critical: bool,
    in_catalog: bool,
    exists: bool,
    /// Records the topic holds, handled or not.
    retained: Option<i64>,
    /// Dead letters waiting: records after the processing group's position,
    /// the same count `health` judges.
    waiting: Option<i64>,
    oldest_at: Option<String>,
    newest_at: Option<String>,
    oldest_age_seconds: Option<i64>,
    newest_age_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
struct DlqListReport {
    group: String,
    topics: Vec<DeadLetterTopicRow>,
    /// Financial dead letters waiting; above 0 the exit code is 1.
    critical_waiting: i64,
}

/// `3d4h`, `5m`, `12s`: the two largest units, enough to see at a glance.
pub(crate) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m{}s", s % 60),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// A cluster topic named like a dead-letter topic, in any case: Spring
/// Kafka's DeadLetterPublishingRecoverer names its topics `<topic>.DLT`,
/// the retry topics' default is `-dlt`, and the panel's own are `.dlq`.
fn named_like_dead_letter(topic: &str) -> bool {
    catalog::looks_like_dead_letter(&topic.to_ascii_lowercase())
}

pub async fn run(args: DlqListArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let survey = Survey::take(kafka, &args.group).await?;
    let topics: Vec<DeadLetterTopicRow> =
        survey.names.iter().map(|name| survey.row(name)).collect();
    let critical_waiting = topics
        .iter()
        .filter(|r| r.critical)
        .filter_map(|r| r.waiting)
        .sum();
    let report = DlqListReport {
        group: args.group.clone(),
        topics,
        critical_waiting,
    };
    if ctx.printer.is_json() {
        ctx.printer.json(&report)?;
    } else {
        print_list(&report, ctx);
    }
    let uncounted: Vec<&str> = report
        .topics
        .iter()
        .filter(|r| r.exists && r.waiting.is_none())
        .map(|r| r.topic.as_str())
        .collect();
    if !uncounted.is_empty() {
        ctx.printer.warn(&format!(
            "could not count {} (a partition leader did not answer; `smmctl health` names the broker)",
            uncounted.join(", ")
        ));
    }
    if critical_waiting > 0 {
        ctx.printer.warn(&format!(
            "{critical_waiting} financial dead letter(s) waiting: review them with `smmctl dlq inspect`"
        ));
    }
    Ok(if critical_waiting > 0 || !uncounted.is_empty() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The catalog's dead-letter topics, then the cluster's other topics named
/// like one, in name order.
fn dead_letter_topic_names(metadata: &ClusterMetadata) -> Vec<String> {
    let mut names: Vec<String> = TOPICS
        .iter()
        .filter(|t| t.is_dead_letter())
        .map(|t| t.name.to_owned())
        .collect();
    let extra: BTreeSet<&String> = metadata
        .topics
        .keys()
        .filter(|t| named_like_dead_letter(t) && !names.contains(t))
        .collect();
    names.extend(extra.into_iter().cloned());
    names
}

/// What the cluster says about the dead-letter topics: their partitions'
/// watermarks, the group's commits on them, and the times of the oldest
/// and newest record each partition holds.
struct Survey {
    names: Vec<String>,
    metadata: ClusterMetadata,
    marks: HashMap<(String, i32), Watermarks>,
    committed: BTreeMap<(String, i32), i64>,
    stamps: HashMap<(String, i32, i64), i64>,
    now_ms: i64,
}

impl Survey {
    async fn take(kafka: &Kafka, group: &str) -> anyhow::Result<Survey> {
        let metadata = kafka.metadata()?;
        let names = dead_letter_topic_names(&metadata);
        let mut partitions = Vec::new();
        for name in &names {
            if let Some(t) = metadata.topics.get(name) {
                partitions.extend(t.partitions.iter().map(|p| (name.clone(), *p)));
            }
        }
        let marks = kafka.watermarks(&partitions)?;
        let committed =
            groups::committed_offsets(kafka.offsets_client(), group, kafka.timeout()).await?;
        let mut ends = Vec::new();
        for (key, w) in &marks {
            if w.high > w.low {
                ends.push((key.0.clone(), key.1, w.low));
                ends.push((key.0.clone(), key.1, w.high - 1));
            }
        }
        let stamps = kafka.record_timestamps(&ends)?;
        Ok(Survey {
            names,
            metadata,
            marks,
            committed,
            stamps,
            now_ms: jiff::Timestamp::now().as_millisecond(),
        })
    }

    fn row(&self, name: &str) -> DeadLetterTopicRow {
        let known = catalog::topic_named(name);
        let mut row = DeadLetterTopicRow {
            topic: name.to_owned(),
            category: known.map(|t| t.category.slug()),
            critical: known.map_or_else(|| catalog::is_financial_name(name), |t| t.is_financial()),
            in_catalog: known.is_some(),
            exists: false,
            retained: None,
            waiting: None,
            oldest_at: None,
            newest_at: None,
            oldest_age_seconds: None,
            newest_age_seconds: None,
        };
        let Some(topic) = self.metadata.topics.get(name) else {
            return row;
        };
        let (mut retained, mut waiting) = (0i64, 0i64);
        let (mut oldest, mut newest): (Option<i64>, Option<i64>) = (None, None);
        row.exists = true;
        for p in &topic.partitions {
            let key = (name.to_owned(), *p);
            // A partition whose leader did not answer makes the topic's
            // counts unknown: a sum without it would be a made-up number.
            let Some(w) = self.marks.get(&key) else {
                return row;
            };
            retained += w.retained();
            waiting += w.waiting_after(self.committed.get(&key).copied());
            if let Some(ts) = self.stamps.get(&(name.to_owned(), *p, w.low)) {
                oldest = Some(oldest.map_or(*ts, |o| o.min(*ts)));
            }
            if let Some(ts) = self.stamps.get(&(name.to_owned(), *p, w.high - 1)) {
                newest = Some(newest.map_or(*ts, |n| n.max(*ts)));
            }
        }
        // Three millisecond digits, as `dlq inspect` prints them.
        let at = |ms: Option<i64>| ms.and_then(smm_workers::contract::dead_letter::format_time);
        let age_seconds = |ms: Option<i64>| ms.map(|ms| (self.now_ms - ms) / 1000);
        row.retained = Some(retained);
        row.waiting = Some(waiting);
        row.oldest_at = at(oldest);
        row.newest_at = at(newest);
        row.oldest_age_seconds = age_seconds(oldest);
        row.newest_age_seconds = age_seconds(newest);
        row
    }
}

fn print_list(report: &DlqListReport, ctx: &Context) {
    let mut table = ctx.printer.table([
        "TOPIC", "CATEGORY", "CRITICAL", "WAITING", "RETAINED", "OLDEST", "NEWEST",
    ]);
    for row in &report.topics {
        table.add_row(vec![
            row.topic.clone(),
            or_dash(row.category),
            if row.critical {
                "yes".into()
            } else {
                "-".into()
            },
            if row.exists {
                or_dash(row.waiting)
            } else {
                "missing".into()
            },
            or_dash(row.retained),
            or_dash(row.oldest_age_seconds.map(age)),
            or_dash(row.newest_age_seconds.map(age)),
        ]);
    }
    ctx.printer.print_table(&table);
    ctx.printer.note(&format!(
        "WAITING counts the records after the position of group {} (what `health` judges); RETAINED all the topic holds. `smmctl dlq inspect TOPIC` shows them",
        report.group
    ));
}

#[cfg(test)]
mod tests {
    use super::{age, named_like_dead_letter};

    #[test]
    fn dead_letter_topics_are_found_by_every_suffix_in_any_case() {
        for name in [
            "orders.DLT",
            "orders-DLT",
            "orders.dlt",
            "orders-dlt",
            "orders.dlq",
            "orders.DLQ",
        ] {
            assert!(named_like_dead_letter(name), "{name}");
        }
        for name in ["orders", "orders-retry-0", "DLT.orders", "orders.DLTX"] {
            assert!(!named_like_dead_letter(name), "{name}");
        }
    }

    #[test]
    fn ages_show_the_two_largest_units() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(125), "2m5s");
        assert_eq!(age(3 * 3600 + 120), "3h2m");
        assert_eq!(age(2 * 86_400 + 5 * 3600), "2d5h");
        assert_eq!(age(-5), "0s");
    }
}
