//! `smmctl dlq list|inspect|replay|drain`: dead letters, read with the
//! workers' own header contract (`smm_workers::contract::dead_letter`).

pub mod drain;
pub mod inspect;
pub mod list;
pub mod replay;

#[cfg(test)]
mod model;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Headers as _;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use smm_workers::contract::dead_letter::{DeadLetter, Filter, RawRecord};

use crate::Context;
use crate::cli::{DlqCommand, DlqFilterArgs};
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::groups;
use crate::kafka::{ClusterMetadata, Kafka, Watermarks};

pub async fn run(cmd: DlqCommand, ctx: &Context) -> anyhow::Result<ExitStatus> {
    match cmd {
        DlqCommand::List(args) => list::run(args, ctx).await,
        DlqCommand::Inspect(args) => inspect::run(args, ctx).await,
        DlqCommand::Replay(args) => replay::run(args, ctx).await,
        DlqCommand::Drain(args) => drain::run(args, ctx).await,
    }
}

pub(crate) fn filter_of(args: &DlqFilterArgs) -> Filter {
    Filter {
        partitions: args.partition.clone(),
        offsets: args.offset_range,
        since_ms: args.since.map(|t| t.as_millisecond()),
        until_ms: args.until.map(|t| t.as_millisecond()),
        key: args.key.clone(),
        headers: args.header.clone(),
        exception: args.exception.clone(),
        event_type: args.event_type.clone(),
    }
}

/// The topic's partitions, or a usage error naming what exists.
pub(crate) fn partitions_of(
    metadata: &ClusterMetadata,
    topic: &str,
    filter: &Filter,
) -> anyhow::Result<Vec<i32>> {
    let Some(found) = metadata.topics.get(topic) else {
        return Err(UsageError::new(format!(
            "there is no topic {topic} on the cluster; `smmctl dlq list` shows the dead-letter topics"
        ))
        .into());
    };
    let all: Vec<i32> = found.partitions.clone();
    for p in &filter.partitions {
        if !all.contains(p) {
            return Err(UsageError::new(format!(
                "{topic} has no partition {p} (it has {})",
                all.len()
            ))
            .into());
        }
    }
    Ok(all
        .into_iter()
        .filter(|p| filter.wants_partition(*p))
        .collect())
}

/// Offsets `group` has committed on `topic`, by partition.
pub(crate) async fn committed(
    kafka: &Kafka,
    group: &str,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    Ok(
        groups::committed_offsets(kafka.admin(), group, kafka.timeout())
            .await?
            .into_iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), o)| (p, o))
            .collect(),
    )
}

/// Commits `offsets` (topic, partition, offset) for `group`, or says which
/// partition failed. `after` tells the operator what a failure means for
/// them ("a re-run replays this batch again").
pub(crate) async fn move_group(
    kafka: &Kafka,
    group: &str,
    offsets: &[(String, i32, i64)],
    after: &str,
) -> anyhow::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let results = groups::alter_group_offsets(kafka.admin(), group, offsets, kafka.timeout())
        .await
        .map_err(|e| anyhow::anyhow!("cannot move group {group}: {e}; {after}"))?;
    if let Some(failed) = results.iter().find(|r| r.error.is_some()) {
        anyhow::bail!(
            "cannot move group {group} on {}/{}: {}; {after}",
            failed.topic,
            failed.partition,
            failed
                .error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Refuses to move a group that has live members, or whose members cannot
/// be told: the broker would reject the commit, or worse, the members would
/// fight the replay over offsets.
pub(crate) async fn refuse_live_group(kafka: &Kafka, group: &str) -> anyhow::Result<()> {
    groups::refuse_live_group(kafka.admin(), group, kafka.timeout(), MOVE_GROUP).await
}

/// The refusals a live (or undescribable) processing group earns, for a
/// command's guards.
pub(crate) async fn live_group_refusals(kafka: &Kafka, group: &str) -> Vec<String> {
    groups::live_group_refusals(kafka.admin(), &[group], kafka.timeout(), MOVE_GROUP).await
}

const MOVE_GROUP: &str = "move the offsets of";

/// What to read of one partition: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
    /// The partition's log start when the span was taken.
    pub log_start: i64,
}

/// Where a span starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// At the first record an offset range selects: for reading alone.
    Range,
    /// At the group's position, whatever the filters select. A command
    /// that moves the group must see every record it would move past, or
    /// it would mark handled records it never looked at.
    Group,
}

/// From `from` (a group's position, or the log start) to the high
/// watermark as it is now: records arriving later wait for the next run.
pub(crate) fn spans(
    kafka: &Kafka,
    topic: &str,
    partitions: &[i32],
    from: &BTreeMap<i32, i64>,
    filter: &Filter,
    start_at: Start,
) -> anyhow::Result<Vec<Span>> {
    let keys: Vec<(String, i32)> = partitions.iter().map(|p| (topic.to_owned(), *p)).collect();
    let marks = kafka.watermarks(&keys)?;
    let mut out = Vec::new();
    for p in partitions {
        let Some(w) = marks.get(&(topic.to_owned(), *p)) else {
            anyhow::bail!("the broker did not report the offsets of {topic}/{p}; try again");
        };
        if let Some(span) = span_of(*p, *w, from.get(p).copied(), filter.offsets, start_at) {
            out.push(span);
        }
    }
    Ok(out)
}

/// One partition's span, from its watermarks, the group's commit and the
/// offset range.
pub(crate) fn span_of(
    partition: i32,
    marks: Watermarks,
    committed: Option<i64>,
    range: Option<(i64, i64)>,
    start_at: Start,
) -> Option<Span> {
    // A committed offset below the log start (retention removed those
    // records) reads from the log start.
    let mut start = committed.unwrap_or(marks.low).max(marks.low);
    let mut end = marks.high;
    if let Some((first, last)) = range {
        if start_at == Start::Range {
            start = start.max(first);
        }
        end = end.min(last.saturating_add(1));
    }
    (start < end).then_some(Span {
        partition,
        start,
        end,
        log_start: marks.low,
    })
}

/// Reads `spans` in chunks, so a DLQ of millions of records never has to
/// fit in memory. Within a partition, records come in offset order, also
/// across chunks.
pub(crate) struct Reader {
    consumer: rdkafka::consumer::BaseConsumer,
    topic: String,
    open: BTreeMap<i32, i64>,
    idle_limit: Duration,
}

impl Reader {
    pub fn new(kafka: &Kafka, topic: &str, spans: &[Span]) -> anyhow::Result<Reader> {
        // read_committed: a replay that was killed mid-transaction left
        // copies nobody should count, and the same holds for dead letters.
        let consumer = kafka.reader(&[
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "error"),
        ])?;
        if !spans.is_empty() {
            let mut assignment = TopicPartitionList::new();
            for span in spans {
                assignment
                    .add_partition_offset(topic, span.partition, Offset::Offset(span.start))
                    .with_context(|| {
                        format!(
                            "invalid offset {} for {topic}/{}",
                            span.start, span.partition
                        )
                    })?;
            }
            consumer
                .assign(&assignment)
                .with_context(|| format!("cannot read {topic}"))?;
        }
        Ok(Reader {
            consumer,
            topic: topic.to_owned(),
            open: spans.iter().map(|s| (s.partition, s.end)).collect(),
            idle_limit: kafka.timeout().max(Duration::from_secs(5)),
        })
    }

    /// Up to `max` more records, sorted by partition and offset; `None`
    /// once every span has been read to its end.
    pub fn next_chunk(&mut self, max: usize) -> anyhow::Result<Option<Vec<RawRecord>>> {
        if self.open.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut last_progress = Instant::now();
        let topic = self.topic.clone();
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            while !self.open.is_empty() && out.len() < max {
                let mut idle = false;
                match self.consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        last_progress = Instant::now();
                        let partition = message.partition();
                        let Some(&end) = self.open.get(&partition) else {
                            continue;
                        };
                        if message.offset() < end {
                            out.push(RawRecord {
                                topic: topic.clone(),
                                partition,
                                offset: message.offset(),
                                timestamp_ms: message.timestamp().to_millis(),
                                key: message.key().map(<[u8]>::to_vec),
                                value: message.payload().map(<[u8]>::to_vec),
                                headers: message
                                    .headers()
                                    .map(|h| {
                                        h.iter()
                                            .map(|x| {
                                                (
                                                    x.key.to_owned(),
                                                    x.value.unwrap_or_default().to_vec(),
                                                )
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            });
                        }
                        if message.offset() + 1 >= end {
                            self.open.remove(&partition);
                        }
                    }
                    Some(Err(e)) => anyhow::bail!("reading {topic} failed: {e}"),
                    None => idle = true,
                }
                // Transaction markers and aborted records take offsets but
                // yield nothing: the position tells when a partition is
                // done. Asked only when a poll came back empty, since each
                // question is a round trip to librdkafka's thread.
                if !idle {
                    continue;
                }
                if let Ok(positions) = self.consumer.position() {
                    for element in positions.elements() {
                        if let Offset::Offset(at) = element.offset()
                            && self
                                .open
                                .get(&element.partition())
                                .is_some_and(|end| at >= *end)
                        {
                            self.open.remove(&element.partition());
                        }
                    }
                }
                if last_progress.elapsed() > self.idle_limit {
                    let stuck: Vec<String> =
                        self.open.keys().map(|p| format!("{topic}/{p}")).collect();
                    anyhow::bail!(
                        "no records arrived from {} for {}s; the broker may be unavailable",
                        stuck.join(", "),
                        self.idle_limit.as_secs()
                    );
                }
            }
            Ok(())
        })?;
        out.sort_by_key(|r| (r.partition, r.offset));
        Ok(Some(out))
    }

    /// Whether `partition` has been read to the end of its span.
    pub fn finished(&self, partition: i32) -> bool {
        !self.open.contains_key(&partition)
    }
}

/// Reads every record of `spans`, in offset order per partition. `limit`
/// stops early once that many records matched `keep`.
pub(crate) fn read(
    kafka: &Kafka,
    topic: &str,
    spans: &[Span],
    mut keep: impl FnMut(&RawRecord) -> bool,
    limit: Option<usize>,
) -> anyhow::Result<Vec<RawRecord>> {
    let mut out = Vec::new();
    if spans.is_empty() {
        return Ok(out);
    }
    let mut reader = Reader::new(kafka, topic, spans)?;
    while let Some(chunk) = reader.next_chunk(10_000)? {
        out.extend(chunk.into_iter().filter(|r| keep(r)));
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    if let Some(n) = limit {
        out.truncate(n);
    }
    Ok(out)
}

/// A record with its decoded view, and whether the filter selected it.
pub(crate) struct Letter {
    pub raw: RawRecord,
    pub decoded: DeadLetter,
    pub selected: bool,
}

/// `full` decodes payloads and every header for showing; otherwise only
/// what `filter` and routing need.
pub(crate) fn decode_all(records: Vec<RawRecord>, filter: &Filter, full: bool) -> Vec<Letter> {
    records
        .into_iter()
        .map(|raw| {
            let decoded = if full {
                DeadLetter::decode(&raw)
            } else {
                DeadLetter::decode_for(&raw, filter)
            };
            let selected = filter.matches(&raw, &decoded);
            Letter {
                raw,
                decoded,
                selected,
            }
        })
        .collect()
}

/// How far a group may move on one partition, walked record by record in
/// offset order from its position: past every record that was handled,
/// and never past the first one that was not, since nobody handled that
/// one. Replay and drain both move the group this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    start: i64,
    next: i64,
    /// The first record that was not handled.
    pub stopped_at: Option<i64>,
    /// Records handled before the stop.
    pub handled: usize,
    /// Records the filters selected behind the stop: left for later.
    pub held_back: usize,
}

impl Walk {
    pub fn new(start: i64) -> Walk {
        Walk {
            start,
            next: start,
            stopped_at: None,
            handled: 0,
            held_back: 0,
        }
    }

    /// The next record: `handled` when it was replayed, drained or
    /// otherwise dealt with; `selected` when the filters chose it.
    pub fn step(&mut self, offset: i64, handled: bool, selected: bool) {
        if self.stopped_at.is_some() {
            self.held_back += usize::from(selected);
        } else if handled {
            self.handled += 1;
            self.next = offset + 1;
        } else {
            self.stopped_at = Some(offset);
        }
    }

    /// The span was read to `end` with nothing left behind: transaction
    /// markers and compacted gaps up to the end are passed too.
    pub fn read_to(&mut self, end: i64) {
        if self.stopped_at.is_none() {
            self.next = self.next.max(end);
        }
    }

    /// The group's new offset, if it moves at all.
    pub fn moves_to(&self) -> Option<i64> {
        (self.next > self.start).then_some(self.next)
    }
}

/// Where a replay may move the group on each partition, transaction by
/// transaction: which offsets are committed together with the copies.
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    spans: Vec<Span>,
    walks: BTreeMap<i32, Walk>,
    committed: BTreeMap<i32, i64>,
}

impl Positions {
    pub fn new(spans: &[Span]) -> Positions {
        Positions {
            spans: spans.to_vec(),
            walks: spans
                .iter()
                .map(|s| (s.partition, Walk::new(s.start)))
                .collect(),
            committed: BTreeMap::new(),
        }
    }

    /// Whether a record of `partition` was left behind already: a record
    /// after it must not be sent, since the group could never be moved past
    /// it and a later run would send it again.
    pub fn stopped(&self, partition: i32) -> bool {
        self.walks
            .get(&partition)
            .is_some_and(|w| w.stopped_at.is_some())
    }

    /// One record of the chunk, in offset order within its partition.
    pub fn step(&mut self, partition: i32, offset: i64, handled: bool, selected: bool) {
        if let Some(walk) = self.walks.get_mut(&partition) {
            walk.step(offset, handled, selected);
        }
    }

    /// The offsets to commit with this chunk: each partition whose walk
    /// moved since the last commit. `finished` tells whether a partition has
    /// been read to the end of its span.
    pub fn advance(&mut self, finished: impl Fn(i32) -> bool) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for span in &self.spans {
            let Some(walk) = self.walks.get_mut(&span.partition) else {
                continue;
            };
            if finished(span.partition) {
                walk.read_to(span.end);
            }
            if let Some(to) = walk.moves_to()
                && self.committed.get(&span.partition) != Some(&to)
            {
                out.insert(span.partition, to);
            }
        }
        out
    }

    /// The chunk's transaction committed: its offsets are the group's.
    pub fn committed(&mut self, advance: BTreeMap<i32, i64>) {
        self.committed.extend(advance);
    }
}

pub(crate) fn one_line(text: &str, width: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
