//! Consumer lag, in messages and in time, for many groups at once.
//!
//! One snapshot costs a fixed number of round trips whatever the number of
//! groups and partitions: one metadata request, one DescribeGroups for all
//! groups, the groups' OffsetFetch requests in flight together, two batched
//! ListOffsets requests, and, for time lag, one fetch from every lagging
//! partition by a single consumer that joins no group.
//!
//! Time lag is `now − timestamp of the next record the group would read`.
//! Unlike estimating it from the rate at which offsets grow, this needs no
//! history, gives no nonsense on quiet topics, and stays right when a group
//! re-reads old data. A group that is caught up is 0 s behind; where the
//! next record cannot be read (no commit, no such record any more) there is
//! no figure, and the tables say "-".

pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use smm_workers::catalog;

use crate::config::Thresholds;
use crate::kafka::groups::{self, GroupDescription, GroupState, Node};
use crate::kafka::{Kafka, Watermarks};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub instance_id: Option<String>,
}

/// Why a partition's lag is unusual, or missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LagNote {
    /// The group never committed here; it will start wherever its
    /// consumers' `auto.offset.reset` says.
    NoCommit,
    /// Records the group had not read yet were deleted (retention or
    /// `records delete`). Its consumers will hit an out-of-range error and
    /// reset per `auto.offset.reset`.
    BeforeLogStart { deleted: i64 },
    /// The commit is beyond the end of the log: the topic was recreated or
    /// truncated.
    PastLogEnd,
    /// The group committed on a topic or partition that no longer exists.
    TopicMissing,
}

impl LagNote {
    pub fn describe(&self) -> String {
        match self {
            LagNote::NoCommit => "no committed offset".into(),
            LagNote::BeforeLogStart { deleted } => {
                format!("{deleted} unread records were deleted before the group read them")
            }
            LagNote::PastLogEnd => "committed offset is past the log end (topic recreated?)".into(),
            LagNote::TopicMissing => "partition no longer exists".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_start: Option<i64>,
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub member: Option<Member>,
    pub note: Option<LagNote>,
}

/// Lag in messages, and a note where it needs explaining. The lag counts
/// from the committed offset, as Kafka's own tool does, even when part of
/// that range has been deleted; the note says how much.
pub fn partition_lag(
    committed: Option<i64>,
    watermarks: Option<Watermarks>,
) -> (Option<i64>, Option<LagNote>) {
    let Some(committed) = committed else {
        return (None, Some(LagNote::NoCommit));
    };
    let Some(w) = watermarks else {
        return (None, Some(LagNote::TopicMissing));
    };
    if committed > w.high {
        return (Some(0), Some(LagNote::PastLogEnd));
    }
    let lag = w.high - committed;
    if committed < w.low {
        return (
            Some(lag),
            Some(LagNote::BeforeLogStart {
                deleted: w.low - committed,
            }),
        );
    }
    (Some(lag), None)
}

/// Lag of one topic within a group.
#[derive(Debug, Clone, Serialize)]
pub struct TopicLag {
    pub topic: String,
    pub partitions: usize,
    /// Sum over the partitions that have a commit; `None` when none has.
    pub lag: Option<i64>,
    /// The furthest-behind partition's time lag.
    pub lag_seconds: Option<f64>,
    pub uncommitted_partitions: usize,
}

#[derive(Debug, Clone)]
pub struct GroupLag {
    pub group: String,
    /// One of the panel's nine groups.
    pub seed: bool,
    pub state: GroupState,
    pub assignor: String,
    pub coordinator: Option<Node>,
    pub members: usize,
    pub threshold: i64,
    pub partitions: Vec<PartitionLag>,
    /// A failure to read this group, in words; its partitions are then
    /// incomplete.
    pub error: Option<String>,
}

impl GroupLag {
    pub fn total_lag(&self) -> Option<i64> {
        sum_known(self.partitions.iter().map(|p| p.lag))
    }

    pub fn max_lag_seconds(&self) -> Option<f64> {
        max_known(self.partitions.iter().map(|p| p.lag_seconds))
    }

    /// The panel alerts at lag ≥ its threshold (healthy is "< 1000").
    pub fn over_threshold(&self) -> bool {
        self.total_lag().is_some_and(|lag| lag >= self.threshold)
    }

    pub fn topics(&self) -> Vec<TopicLag> {
        let mut by_topic: BTreeMap<&str, Vec<&PartitionLag>> = BTreeMap::new();
        for p in &self.partitions {
            by_topic.entry(p.topic.as_str()).or_default().push(p);
        }
        by_topic
            .into_iter()
            .map(|(topic, parts)| TopicLag {
                topic: topic.to_string(),
                partitions: parts.len(),
                lag: sum_known(parts.iter().map(|p| p.lag)),
                lag_seconds: max_known(parts.iter().map(|p| p.lag_seconds)),
                uncommitted_partitions: parts.iter().filter(|p| p.committed.is_none()).count(),
            })
            .collect()
    }
}

fn sum_known(values: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    values
        .flatten()
        .fold(None, |sum, v| Some(sum.unwrap_or(0) + v))
}

fn max_known(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().fold(None, |max: Option<f64>, v| {
        Some(max.map_or(v, |m| m.max(v)))
    })
}

/// What to measure.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub groups: Vec<String>,
    /// Only these topics; empty means every topic.
    pub topics: Vec<String>,
    /// Also show, for the panel's groups, catalog topics they read but have
    /// never committed on: a topic nobody consumes is worth seeing.
    pub include_catalog_topics: bool,
    pub time_lag: bool,
}

/// Measures lag for the requested groups.
pub async fn collect(
    kafka: &Kafka,
    request: &Request,
    thresholds: &Thresholds,
) -> anyhow::Result<Vec<GroupLag>> {
    let metadata = kafka.metadata()?;
    let names: Vec<&str> = request.groups.iter().map(String::as_str).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let (descriptions, offsets) = tokio::try_join!(
        async {
            groups::describe_groups(kafka.admin(), &names, kafka.timeout())
                .await
                .map_err(|e| anyhow::anyhow!("unable to describe the consumer groups: {e}"))
        },
        async {
            groups::list_group_offsets(kafka.admin(), &names, kafka.timeout())
                .await
                .map_err(|e| anyhow::anyhow!("unable to read the groups' committed offsets: {e}"))
        },
    )?;
    let descriptions: HashMap<&str, &GroupDescription> = descriptions
        .iter()
        .map(|d| (d.group_id.as_str(), d))
        .collect();
    let offsets: HashMap<&str, &groups::GroupOffsets> =
        offsets.iter().map(|o| (o.group_id.as_str(), o)).collect();
    let wanted_topic =
        |topic: &str| request.topics.is_empty() || request.topics.iter().any(|t| t == topic);

    let mut result = Vec::with_capacity(names.len());
    for &name in &names {
        let description = descriptions.get(name);
        let group_offsets = offsets.get(name);
        let mut committed: BTreeMap<(String, i32), Option<i64>> = BTreeMap::new();
        if let Some(o) = group_offsets {
            for c in &o.offsets {
                if wanted_topic(&c.topic) {
                    committed.insert((c.topic.clone(), c.partition), c.offset);
                }
            }
        }
        let mut owners: HashMap<(String, i32), Member> = HashMap::new();
        if let Some(d) = description {
            for m in &d.members {
                for (topic, partition) in &m.assignment {
                    if wanted_topic(topic) {
                        committed.entry((topic.clone(), *partition)).or_insert(None);
                    }
                    owners.insert(
                        (topic.clone(), *partition),
                        Member {
                            member_id: m.member_id.clone(),
                            client_id: m.client_id.clone(),
                            host: m.host.clone(),
                            instance_id: m.group_instance_id.clone(),
                        },
                    );
                }
            }
        }
        // Every partition of a topic the group reads, not only those it
        // committed on: a partition it never committed on is exactly what
        // an operator needs to see.
        let touched: BTreeSet<String> = committed.keys().map(|(t, _)| t.clone()).collect();
        for topic in touched {
            if let Some(t) = metadata.topics.get(&topic) {
                for &p in &t.partitions {
                    committed.entry((topic.clone(), p)).or_insert(None);
                }
            }
        }
        let seed = catalog::group_named(name);
        if request.include_catalog_topics
            && let Some(seed) = seed
        {
            for topic in seed.topics() {
                if !wanted_topic(topic) {
                    continue;
                }
                if let Some(t) = metadata.topics.get(topic) {
                    for &p in &t.partitions {
                        committed.entry((topic.to_string(), p)).or_insert(None);
                    }
                }
            }
        }
        let error = description
            .and_then(|d| d.error.as_ref().map(|e| e.to_string()))
            .or_else(|| group_offsets.and_then(|o| o.error.as_ref().map(|e| e.to_string())));
        result.push(GroupLag {
            group: name.to_string(),
            seed: seed.is_some(),
            state: description.map(|d| d.state).unwrap_or(GroupState::Unknown),
            assignor: description
                .map(|d| d.partition_assignor.clone())
                .unwrap_or_default(),
            coordinator: description.and_then(|d| d.coordinator.clone()),
            members: description.map(|d| d.members.len()).unwrap_or(0),
            threshold: thresholds.max_lag_for(name),
            partitions: committed
                .into_iter()
                .map(|((topic, partition), committed)| {
                    let member = owners.get(&(topic.clone(), partition)).cloned();
                    PartitionLag {
                        topic,
                        partition,
                        committed,
                        log_start: None,
                        log_end: None,
                        lag: None,
                        lag_seconds: None,
                        member,
                        note: None,
                    }
                })
                .collect(),
            error,
        });
    }

    let partitions: Vec<(String, i32)> = result
        .iter()
        .flat_map(|g| g.partitions.iter().map(|p| (p.topic.clone(), p.partition)))
        .filter(|(topic, partition)| {
            metadata
                .topics
                .get(topic)
                .is_some_and(|t| t.partitions.contains(partition))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let watermarks = kafka.watermarks(&partitions)?;
    for group in &mut result {
        for p in &mut group.partitions {
            let w = watermarks.get(&(p.topic.clone(), p.partition)).copied();
            p.log_start = w.map(|w| w.low);
            p.log_end = w.map(|w| w.high);
            (p.lag, p.note) = partition_lag(p.committed, w);
            if p.lag == Some(0) {
                p.lag_seconds = Some(0.0);
            }
        }
    }

    if request.time_lag {
        fill_time_lag(kafka, &mut result)?;
    }
    Ok(result)
}

/// Reads the next record each lagging group would read, once per distinct
/// position, and turns its timestamp into seconds behind.
fn fill_time_lag(kafka: &Kafka, groups: &mut [GroupLag]) -> anyhow::Result<()> {
    let mut positions: BTreeSet<(String, i32, i64)> = BTreeSet::new();
    for p in groups.iter().flat_map(|g| &g.partitions) {
        if let (Some(lag), Some(committed), Some(low)) = (p.lag, p.committed, p.log_start)
            && lag > 0
        {
            positions.insert((p.topic.clone(), p.partition, committed.max(low)));
        }
    }
    if positions.is_empty() {
        return Ok(());
    }
    // Several groups may sit at different offsets of one partition; one
    // consumer can only be at one place per partition, so read each
    // partition from its smallest wanted offset and reuse what fits.
    let mut earliest: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (topic, partition, offset) in &positions {
        earliest
            .entry((topic.clone(), *partition))
            .and_modify(|o| *o = (*o).min(*offset))
            .or_insert(*offset);
    }
    let first: Vec<(String, i32, i64)> = earliest
        .iter()
        .map(|((t, p), o)| (t.clone(), *p, *o))
        .collect();
    let timestamps = kafka.record_timestamps(&first)?;
    let exact: Vec<(String, i32, i64)> = positions
        .iter()
        .filter(|(t, p, o)| earliest.get(&(t.clone(), *p)) != Some(o))
        .cloned()
        .collect();
    let later = kafka.record_timestamps(&exact)?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for p in groups.iter_mut().flat_map(|g| &mut g.partitions) {
        if let (Some(lag), Some(committed), Some(low)) = (p.lag, p.committed, p.log_start)
            && lag > 0
        {
            let at = committed.max(low);
            let key = (p.topic.clone(), p.partition);
            let ts = if earliest.get(&key) == Some(&at) {
                timestamps.get(&key)
            } else {
                later.get(&key)
            };
            // Producer clocks can run ahead; never report negative lag.
            p.lag_seconds = ts.map(|&ts| ((now_ms - ts).max(0) as f64) / 1000.0);
        }
    }
    Ok(())
}

/// Seconds as people read them: 0s, 45s, 3m12s, 2h05m, 3d04h.
pub fn format_seconds(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(low: i64, high: i64) -> Option<Watermarks> {
        Some(Watermarks { low, high })
    }

    #[test]
    fn lag_counts_from_the_commit_and_explains_the_odd_cases() {
        let cases = [
            (Some(7), w(0, 10), Some(3), None),
            (Some(10), w(0, 10), Some(0), None),
            (Some(0), w(0, 0), Some(0), None),
            (None, w(0, 10), None, Some(LagNote::NoCommit)),
            (
                Some(2),
                w(5, 10),
                Some(8),
                Some(LagNote::BeforeLogStart { deleted: 3 }),
            ),
            (Some(12), w(0, 10), Some(0), Some(LagNote::PastLogEnd)),
            (Some(3), None, None, Some(LagNote::TopicMissing)),
        ];
        for (committed, marks, lag, note) in cases {
            assert_eq!(
                partition_lag(committed, marks),
                (lag, note),
                "{committed:?} {marks:?}"
            );
        }
    }

    #[test]
    fn an_uncommitted_partition_never_becomes_end_minus_minus_one() {
        // The bug class of tools that compute end − (−1).
        assert_eq!(partition_lag(None, w(0, 500)).0, None);
    }

    fn part(topic: &str, lag: Option<i64>, secs: Option<f64>) -> PartitionLag {
        PartitionLag {
            topic: topic.into(),
            partition: 0,
            committed: lag.map(|_| 1),
            log_start: Some(0),
            log_end: Some(10),
            lag,
            lag_seconds: secs,
            member: None,
            note: None,
        }
    }

    fn group(parts: Vec<PartitionLag>, threshold: i64) -> GroupLag {
        GroupLag {
            group: "g".into(),
            seed: false,
            state: GroupState::Empty,
            assignor: String::new(),
            coordinator: None,
            members: 0,
            threshold,
            partitions: parts,
            error: None,
        }
    }

    #[test]
    fn totals_ignore_unknown_partitions_and_thresholds_are_inclusive() {
        let g = group(
            vec![
                part("a", Some(600), Some(4.0)),
                part("a", None, None),
                part("b", Some(400), Some(9.5)),
            ],
            1000,
        );
        assert_eq!(g.total_lag(), Some(1000));
        assert_eq!(g.max_lag_seconds(), Some(9.5));
        assert!(g.over_threshold(), "lag 1000 is not < 1000");
        let topics = g.topics();
        assert_eq!(topics.len(), 2);
        assert_eq!(
            (topics[0].lag, topics[0].uncommitted_partitions),
            (Some(600), 1)
        );

        let quiet = group(vec![part("a", None, None)], 1000);
        assert_eq!(quiet.total_lag(), None);
        assert!(!quiet.over_threshold());
        assert!(!group(vec![part("a", Some(999), None)], 1000).over_threshold());
    }

    #[test]
    fn seconds_read_like_durations() {
        assert_eq!(format_seconds(0.2), "0s");
        assert_eq!(format_seconds(45.0), "45s");
        assert_eq!(format_seconds(192.0), "3m12s");
        assert_eq!(format_seconds(7500.0), "2h05m");
        assert_eq!(format_seconds(273600.0), "3d04h");
    }
}
