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
//! next record cannot be read (no such record any more) there is no figure,
//! and the tables say "-".
//!
//! A partition a group never committed on still has a backlog when the
//! group reads from the earliest offset, as the panel's workers do: they
//! will read everything retained, so their lag there is log end − log
//! start, and it counts towards the group's total and threshold. Other
//! groups may start at the log end instead (`auto.offset.reset=latest`),
//! and smmctl cannot see their setting, so it makes up no figure for them.

pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context as _;
use serde::Serialize;
use smm_workers::contract::catalog;

use crate::config::Thresholds;
use crate::kafka::groups::{self, GroupDescription, GroupMember, GroupState, Node};
use crate::kafka::{ClusterMetadata, Kafka, Watermarks};

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
    /// consumers' `auto.offset.reset` says, which smmctl cannot see: lag
    /// unknown.
    NoCommit,
    /// The group never committed here and reads from the earliest offset
    /// (the panel's workers do), so everything retained is still to read:
    /// the lag counts from the log start.
    NoCommitFromLogStart,
    /// Records the group had not read yet were deleted (retention or
    /// `records delete`). Its consumers will hit an out-of-range error and
    /// reset per `auto.offset.reset`.
    BeforeLogStart { deleted: i64 },
    /// The commit is `beyond` records past the end of the log: the topic
    /// was recreated or truncated. A broken position, not a lag of 0: the
    /// group's consumers will hit OFFSET_OUT_OF_RANGE there and reset per
    /// `auto.offset.reset`, so the lag is unknown.
    PastLogEnd { beyond: i64 },
    /// The group committed on a topic or partition that no longer exists.
    TopicMissing,
    /// The partition exists but the broker did not give its offsets (its
    /// leader is down or moving): lag unknown, not zero.
    OffsetsUnavailable,
    /// The group's commit here could not be read (a transaction's commit
    /// still pending, authorisation, or the coordinator is moving): lag
    /// unknown. [`PartitionLag::commit_error`] says why.
    CommitUnreadable,
}

impl LagNote {
    pub fn describe(&self) -> String {
        match self {
            LagNote::NoCommit => {
                "no committed offset; where the group starts depends on its auto.offset.reset"
                    .into()
            }
            LagNote::NoCommitFromLogStart => {
                "no committed offset: lag counted from the log start".into()
            }
            LagNote::BeforeLogStart { deleted } => {
                format!("{deleted} unread records were deleted before the group read them")
            }
            LagNote::PastLogEnd { beyond } => format!(
                "committed offset is {beyond} past the log end (topic recreated?): its consumers \
                 will hit OFFSET_OUT_OF_RANGE and reset"
            ),
            LagNote::TopicMissing => "partition no longer exists".into(),
            LagNote::OffsetsUnavailable => {
                "the broker gave no offsets (leader unavailable?)".into()
            }
            LagNote::CommitUnreadable => "the committed offset could not be read".into(),
        }
    }

    /// Notes that mean the group's position is broken: something to fix,
    /// whatever the lag.
    pub fn is_anomaly(&self) -> bool {
        matches!(self, LagNote::PastLogEnd { .. })
    }

    /// Notes that mean the figures are incomplete, not merely unusual.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            LagNote::OffsetsUnavailable | LagNote::CommitUnreadable
        )
    }
}

/// Where a group starts reading a partition it has never committed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UncommittedStart {
    /// At the log start (`auto.offset.reset=earliest`).
    LogStart,
    /// Wherever its consumers' `auto.offset.reset` says, unknown here.
    Unknown,
}

impl UncommittedStart {
    /// The panel's workers read from the earliest offset; any other group
    /// may start at the log end, so its start is unknown.
    pub fn of_group(group: &str) -> UncommittedStart {
        if catalog::group_named(group).is_some() {
            UncommittedStart::LogStart
        } else {
            UncommittedStart::Unknown
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
    /// Why the group's commit here could not be read, as the broker said.
    pub commit_error: Option<String>,
}

impl PartitionLag {
    /// The partition in the documented JSON schema of `lag` and
    /// `groups describe`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "lag": self.lag,
            "lag_from": self.lag_from(),
            "lag_seconds": self.lag_seconds,
            "member_id": self.member.as_ref().map(|m| &m.member_id),
            "client_id": self.member.as_ref().map(|m| &m.client_id),
            "host": self.member.as_ref().map(|m| &m.host),
            "note": self.note_text(),
            "commit_error": self.commit_error,
        })
    }

    /// The note in words, with the broker's reason when the commit could
    /// not be read.
    pub fn note_text(&self) -> Option<String> {
        let note = self.note?.describe();
        Some(match &self.commit_error {
            Some(why) => format!("{note}: {why}"),
            None => note,
        })
    }

    /// A partition of the group before its offsets are read, from the
    /// group's OffsetFetch answer for it, if there was one: its commit, or
    /// the error that stands in for it. An error is never "no commit": the
    /// group may well have one.
    pub fn unmeasured(
        topic: String,
        partition: i32,
        fetched: Option<&groups::CommittedOffset>,
        member: Option<Member>,
    ) -> PartitionLag {
        let commit_error = fetched.and_then(|c| c.error.as_ref().map(|e| e.to_string()));
        PartitionLag {
            topic,
            partition,
            committed: fetched
                .filter(|_| commit_error.is_none())
                .and_then(|c| c.offset),
            log_start: None,
            log_end: None,
            lag: None,
            lag_seconds: None,
            member,
            note: commit_error.is_some().then_some(LagNote::CommitUnreadable),
            commit_error,
        }
    }
}

impl PartitionLag {
    /// The group has no commit here, as far as the broker says: not when
    /// the commit could not be read.
    pub fn is_uncommitted(&self) -> bool {
        self.committed.is_none() && self.commit_error.is_none()
    }

    /// What the lag counts from: `commit`, or `log_start` where there is no
    /// commit and the group reads from the earliest offset; `None` when
    /// there is no lag figure.
    pub fn lag_from(&self) -> Option<&'static str> {
        self.lag?;
        Some(if self.note == Some(LagNote::NoCommitFromLogStart) {
            "log_start"
        } else {
            "commit"
        })
    }
}

/// Lag in messages, and a note where it needs explaining. The lag counts
/// from the committed offset, as Kafka's own tool does, even when part of
/// that range has been deleted; the note says how much. Without a commit,
/// it counts from where the group would start, when that is known.
pub fn partition_lag(
    committed: Option<i64>,
    watermarks: Option<Watermarks>,
    uncommitted: UncommittedStart,
) -> (Option<i64>, Option<LagNote>) {
    let Some(committed) = committed else {
        return match (uncommitted, watermarks) {
            (UncommittedStart::LogStart, Some(w)) => {
                (Some(w.high - w.low), Some(LagNote::NoCommitFromLogStart))
            }
            _ => (None, Some(LagNote::NoCommit)),
        };
    };
    let Some(w) = watermarks else {
        return (None, Some(LagNote::TopicMissing));
    };
    if committed > w.high {
        return (
            None,
            Some(LagNote::PastLogEnd {
                beyond: committed - w.high,
            }),
        );
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
    /// Sum over the partitions with a lag figure (a commit, or the log
    /// start for groups that read from the earliest); `None` when none has.
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
    pub members: Vec<GroupMember>,
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

    /// The furthest-behind partition's time lag; `None` when a lagging
    /// partition has no figure, since the maximum of the rest could be a
    /// reassuring lie.
    pub fn max_lag_seconds(&self) -> Option<f64> {
        max_time(self.partitions.iter())
    }

    /// Why the figures are incomplete, if they are: the group could not be
    /// read, or some partitions' offsets could not.
    pub fn incomplete(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        let unknown: Vec<String> = self
            .partitions
            .iter()
            .filter(|p| p.note.is_some_and(|n| n.is_unknown()))
            .map(|p| match &p.commit_error {
                Some(why) => format!("{}/{} ({why})", p.topic, p.partition),
                None => format!("{}/{}", p.topic, p.partition),
            })
            .collect();
        (!unknown.is_empty()).then(|| format!("offsets unreadable on {}", unknown.join(", ")))
    }

    /// Partitions whose committed position is broken, in words.
    pub fn anomaly(&self) -> Option<String> {
        let broken: Vec<String> = self
            .partitions
            .iter()
            .filter(|p| p.note.is_some_and(|n| n.is_anomaly()))
            .map(|p| format!("{}/{}", p.topic, p.partition))
            .collect();
        (!broken.is_empty())
            .then(|| format!("committed offset past the log end on {}", broken.join(", ")))
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
                lag_seconds: max_time(parts.iter().copied()),
                uncommitted_partitions: parts.iter().filter(|p| p.is_uncommitted()).count(),
            })
            .collect()
    }
}

fn sum_known(values: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    values
        .flatten()
        .fold(None, |sum, v| Some(sum.unwrap_or(0) + v))
}

fn max_time<'a>(parts: impl Iterator<Item = &'a PartitionLag>) -> Option<f64> {
    let mut max: Option<f64> = None;
    for p in parts {
        match (p.lag, p.lag_seconds) {
            (Some(lag), None) if lag > 0 => return None,
            (_, Some(s)) => max = Some(max.map_or(s, |m| m.max(s))),
            _ => {}
        }
    }
    max
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
    /// The cluster's groups, when the caller already listed them.
    pub listings: Option<Vec<groups::GroupListing>>,
    /// Whether a broker did not answer that listing, so a group missing
    /// from it may still exist.
    pub listing_partial: bool,
    /// Describe every group, not only those with members (for the
    /// coordinator, which `groups describe` shows).
    pub describe_all: bool,
}

/// Measures lag for the requested groups.
pub async fn collect(
    kafka: &'static Kafka,
    request: &Request,
    thresholds: &Thresholds,
) -> anyhow::Result<Vec<GroupLag>> {
    let started = std::time::Instant::now();
    let metadata = kafka.metadata()?;
    let names: Vec<&str> = request.groups.iter().map(String::as_str).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let answers = Answers::fetch(kafka, request, &names).await?;
    tracing::debug!(
        elapsed = ?started.elapsed(),
        groups = names.len(),
        described = answers.descriptions.len(),
        "committed offsets read and groups described"
    );
    let descriptions: HashMap<&str, &GroupDescription> = answers
        .descriptions
        .iter()
        .map(|d| (d.group_id.as_str(), d))
        .collect();
    let offsets: HashMap<&str, &groups::GroupOffsets> = answers
        .offsets
        .iter()
        .map(|o| (o.group_id.as_str(), o))
        .collect();
    let mut result: Vec<GroupLag> = names
        .iter()
        .map(|&name| {
            let description = descriptions.get(name).copied();
            let group_offsets = offsets.get(name).copied();
            let mut group = GroupLag {
                group: name.to_string(),
                seed: catalog::group_named(name).is_some(),
                state: description
                    .map(|d| d.state)
                    .or_else(|| answers.listed.get(name).copied())
                    .unwrap_or(if answers.listing_partial {
                        GroupState::Unknown
                    } else {
                        GroupState::Dead
                    }),
                assignor: description
                    .map(|d| d.partition_assignor.clone())
                    .unwrap_or_default(),
                coordinator: description.and_then(|d| d.coordinator.clone()),
                members: description.map(|d| d.members.clone()).unwrap_or_default(),
                threshold: thresholds.max_lag_for(name),
                partitions: Vec::new(),
                error: description
                    .and_then(|d| d.error.as_ref().map(|e| e.to_string()))
                    .or_else(|| {
                        group_offsets.and_then(|o| o.error.as_ref().map(|e| e.to_string()))
                    }),
            };
            group.partitions =
                unmeasured_partitions(name, description, group_offsets, &metadata, request);
            group
        })
        .collect();
    fill_offset_lag(kafka, &metadata, &mut result)?;
    tracing::debug!(elapsed = ?started.elapsed(), "watermarks");
    if request.time_lag {
        fill_time_lag(kafka, &mut result)?;
        tracing::debug!(elapsed = ?started.elapsed(), "time lag");
    }
    Ok(result)
}

/// What the brokers said about the groups: their states, committed
/// offsets and members.
struct Answers {
    listed: HashMap<String, GroupState>,
    /// A broker did not answer the listing: a group missing from it may
    /// still exist, on that broker. It is not described either: asking a
    /// coordinator that is going away is what crashes librdkafka's admin
    /// client (an enq_once refcount assertion).
    listing_partial: bool,
    offsets: Vec<groups::GroupOffsets>,
    descriptions: Vec<GroupDescription>,
}

impl Answers {
    async fn fetch(kafka: &Kafka, request: &Request, names: &[&str]) -> anyhow::Result<Answers> {
        let (listings, partial) = match &request.listings {
            Some(known) => (known.clone(), request.listing_partial),
            None => {
                let (listed, unanswered) = groups::list_groups(kafka.admin(), kafka.timeout())
                    .await
                    .context("unable to list the consumer groups")?;
                (listed, !unanswered.is_empty())
            }
        };
        let listed: HashMap<String, GroupState> = listings
            .into_iter()
            .map(|l| (l.group_id, l.state))
            .collect();
        // Describing costs a round trip per group; an Empty group has no
        // members to describe, and a group the listing lacks does not exist.
        // Asking one kind of question at a time is faster than both at once:
        // librdkafka serialises them per coordinator anyway.
        let to_describe: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| {
                request.describe_all || listed.get(*n).is_some_and(|s| *s != GroupState::Empty)
            })
            .collect();
        let offsets = groups::list_group_offsets(kafka.offsets_client(), names, kafka.timeout())
            .await
            .context("unable to read the groups' committed offsets")?;
        let descriptions = if to_describe.is_empty() {
            Vec::new()
        } else {
            groups::describe_groups(kafka.admin(), &to_describe, kafka.timeout())
                .await
                .context("unable to describe the consumer groups")?
        };
        Ok(Answers {
            listed,
            listing_partial: partial,
            offsets,
            descriptions,
        })
    }
}

/// The partitions of one group, with their commits and owners but no lag
/// yet: every partition it committed on or owns, every other partition of
/// those topics, and with `include_catalog_topics` its catalog topics.
fn unmeasured_partitions(
    name: &str,
    description: Option<&GroupDescription>,
    group_offsets: Option<&groups::GroupOffsets>,
    metadata: &ClusterMetadata,
    request: &Request,
) -> Vec<PartitionLag> {
    let wanted_topic =
        |topic: &str| request.topics.is_empty() || request.topics.iter().any(|t| t == topic);
    let mut committed: BTreeMap<(String, i32), Option<&groups::CommittedOffset>> = BTreeMap::new();
    if let Some(o) = group_offsets {
        for c in &o.offsets {
            if wanted_topic(&c.topic) {
                committed.insert((c.topic.clone(), c.partition), Some(c));
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
    if request.include_catalog_topics
        && let Some(seed) = catalog::group_named(name)
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
    committed
        .into_iter()
        .map(|((topic, partition), fetched)| {
            let member = owners.get(&(topic.clone(), partition)).cloned();
            PartitionLag::unmeasured(topic, partition, fetched, member)
        })
        .collect()
}

/// Reads the watermarks of every partition that exists and turns each
/// group's commits into lag, all groups in one batched request.
fn fill_offset_lag(
    kafka: &Kafka,
    metadata: &ClusterMetadata,
    groups: &mut [GroupLag],
) -> anyhow::Result<()> {
    let partitions: Vec<(String, i32)> = groups
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
    for group in groups {
        let start = UncommittedStart::of_group(&group.group);
        for p in &mut group.partitions {
            if p.note == Some(LagNote::CommitUnreadable) {
                continue;
            }
            let key = (p.topic.clone(), p.partition);
            let w = watermarks.get(&key).copied();
            p.log_start = w.map(|w| w.low);
            p.log_end = w.map(|w| w.high);
            (p.lag, p.note) = partition_lag(p.committed, w, start);
            if w.is_none() && partitions.binary_search(&key).is_ok() {
                p.note = Some(LagNote::OffsetsUnavailable);
            }
            if p.lag == Some(0) && p.note.is_none() {
                p.lag_seconds = Some(0.0);
            }
        }
    }
    Ok(())
}

/// Reads the next record each lagging group would read and turns its
/// timestamp into seconds behind.
fn fill_time_lag(kafka: &Kafka, groups: &mut [GroupLag]) -> anyhow::Result<()> {
    // Without a commit, a group that reads from the earliest offset reads
    // the log start next.
    let next_read = |p: &PartitionLag| match (p.lag, p.committed, p.log_start) {
        (Some(lag), Some(committed), Some(low)) if lag > 0 => Some(committed.max(low)),
        (Some(lag), None, Some(low)) if lag > 0 => Some(low),
        _ => None,
    };
    let positions: BTreeSet<(String, i32, i64)> = groups
        .iter()
        .flat_map(|g| &g.partitions)
        .filter_map(|p| next_read(p).map(|at| (p.topic.clone(), p.partition, at)))
        .collect();
    if positions.is_empty() {
        return Ok(());
    }
    let positions: Vec<_> = positions.into_iter().collect();
    let timestamps = kafka.record_timestamps(&positions)?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for p in groups.iter_mut().flat_map(|g| &mut g.partitions) {
        if let Some(at) = next_read(p) {
            let ts = timestamps.get(&(p.topic.clone(), p.partition, at));
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
            (
                Some(12),
                w(0, 10),
                None,
                Some(LagNote::PastLogEnd { beyond: 2 }),
            ),
            (Some(3), None, None, Some(LagNote::TopicMissing)),
        ];
        for (committed, marks, lag, note) in cases {
            assert_eq!(
                partition_lag(committed, marks, UncommittedStart::Unknown),
                (lag, note),
                "{committed:?} {marks:?}"
            );
        }
    }

    #[test]
    fn an_uncommitted_partition_never_becomes_end_minus_minus_one() {
        // The bug class of tools that compute end − (−1).
        assert_eq!(
            partition_lag(None, w(0, 500), UncommittedStart::Unknown).0,
            None
        );
    }

    #[test]
    fn a_group_reading_from_the_earliest_lags_by_the_whole_retained_log_without_a_commit() {
        assert_eq!(
            partition_lag(None, w(40, 100), UncommittedStart::LogStart),
            (Some(60), Some(LagNote::NoCommitFromLogStart))
        );
        assert_eq!(
            partition_lag(None, w(7, 7), UncommittedStart::LogStart),
            (Some(0), Some(LagNote::NoCommitFromLogStart))
        );
        // Only the panel's own groups are known to read from the earliest.
        assert_eq!(
            UncommittedStart::of_group("smm-payment-refunds-group"),
            UncommittedStart::LogStart
        );
        assert_eq!(
            UncommittedStart::of_group("someone-elses-group"),
            UncommittedStart::Unknown
        );
        let mut unread = part("payments", None, None);
        (unread.lag, unread.note) = partition_lag(None, w(0, 1000), UncommittedStart::LogStart);
        let g = group(vec![part("payments", Some(0), Some(0.0)), unread], 1000);
        assert_eq!(g.total_lag(), Some(1000));
        assert!(g.over_threshold());
        assert_eq!(g.partitions[1].lag_from(), Some("log_start"));
        assert_eq!(g.partitions[0].lag_from(), Some("commit"));
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
            commit_error: None,
        }
    }

    fn group(parts: Vec<PartitionLag>, threshold: i64) -> GroupLag {
        GroupLag {
            group: "g".into(),
            seed: false,
            state: GroupState::Empty,
            assignor: String::new(),
            coordinator: None,
            members: Vec::new(),
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
    fn a_commit_past_the_log_end_is_an_anomaly_not_lag_0() {
        let mut broken = part("t", None, None);
        broken.committed = Some(25);
        (broken.lag, broken.note) = partition_lag(Some(25), w(0, 10), UncommittedStart::LogStart);
        assert_eq!(broken.lag, None, "never a made-up 0");
        let g = group(vec![part("t", Some(0), Some(0.0)), broken], 1000);
        assert_eq!(
            g.anomaly().as_deref(),
            Some("committed offset past the log end on t/0")
        );
        assert!(
            group(vec![part("t", Some(3), None)], 1000)
                .anomaly()
                .is_none()
        );
    }

    #[test]
    fn a_commit_that_could_not_be_read_keeps_its_error_and_is_no_missing_commit() {
        let fetched = groups::CommittedOffset {
            topic: "payments".into(),
            partition: 2,
            offset: None,
            metadata: None,
            error: Some(groups::AdminError {
                code: rdkafka::types::RDKafkaErrorCode::UnstableOffsetCommit,
                message: "Broker: There are unstable offsets that need to be cleared".into(),
            }),
        };
        let mut p = PartitionLag::unmeasured("payments".into(), 2, Some(&fetched), None);
        assert_eq!(p.note, Some(LagNote::CommitUnreadable));
        // The lag pass leaves an unreadable commit alone (see collect).
        p.log_start = Some(0);
        p.log_end = Some(10);
        let json = p.to_json();
        assert_eq!(
            json["commit_error"],
            "Broker: There are unstable offsets that need to be cleared"
        );
        assert!(
            json["note"].as_str().unwrap().contains("unstable offsets"),
            "{json:#}"
        );
        assert!(json["lag"].is_null() && json["committed"].is_null());
        let g = group(vec![part("payments", Some(3), None), p], 1000);
        assert_eq!(g.topics()[0].uncommitted_partitions, 0);
        assert!(
            g.incomplete()
                .unwrap()
                .contains("payments/2 (Broker: There are unstable"),
            "{:?}",
            g.incomplete()
        );

        let plain = groups::CommittedOffset {
            error: None,
            offset: Some(7),
            ..fetched
        };
        let p = PartitionLag::unmeasured("payments".into(), 2, Some(&plain), None);
        assert_eq!((p.committed, p.note, p.commit_error), (Some(7), None, None));
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
