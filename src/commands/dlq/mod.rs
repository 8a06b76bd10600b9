//! `smmctl dlq list|inspect|replay|drain`: dead letters, read with the
//! workers' own header contract (`smm_workers::dead_letter`).

pub mod drain;
pub mod inspect;
pub mod list;
pub mod replay;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Headers as _;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use smm_workers::dead_letter::{DeadLetter, Filter, RawRecord};

use crate::Context;
use crate::cli::{DlqCommand, DlqFilterArgs};
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::groups;
use crate::kafka::{ClusterMetadata, Kafka};

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
    groups::refuse_live_group(kafka.admin(), group, kafka.timeout(), "move the offsets of").await
}

/// What to read of one partition: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// From `from` (a group's position, or the log start) to the high
/// watermark as it is now: records arriving later wait for the next run.
pub(crate) fn spans(
    kafka: &Kafka,
    topic: &str,
    partitions: &[i32],
    from: &BTreeMap<i32, i64>,
    filter: &Filter,
) -> anyhow::Result<Vec<Span>> {
    let keys: Vec<(String, i32)> = partitions.iter().map(|p| (topic.to_owned(), *p)).collect();
    let marks = kafka.watermarks(&keys)?;
    let mut out = Vec::new();
    for p in partitions {
        let Some(w) = marks.get(&(topic.to_owned(), *p)) else {
            anyhow::bail!("the broker did not report the offsets of {topic}/{p}; try again");
        };
        // A committed offset below the log start (retention removed those
        // records) reads from the log start.
        let mut start = from.get(p).copied().unwrap_or(w.low).max(w.low);
        let mut end = w.high;
        if let Some((first, last)) = filter.offsets {
            start = start.max(first);
            end = end.min(last.saturating_add(1));
        }
        if start < end {
            out.push(Span {
                partition: *p,
                start,
                end,
            });
        }
    }
    Ok(out)
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

/// Per partition, the offset the group may move to: just past the longest
/// run of handled records from where it started, so no record it has not
/// handled is ever marked handled.
pub(crate) fn handled_prefix(
    spans: &[Span],
    letters: &[Letter],
    handled: impl Fn(&Letter) -> bool,
) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for span in spans {
        let mut next = span.start;
        let mut blocked = false;
        for letter in letters.iter().filter(|l| l.raw.partition == span.partition) {
            if blocked {
                break;
            }
            if handled(letter) {
                next = letter.raw.offset + 1;
            } else {
                blocked = true;
            }
        }
        // Nothing unhandled in the span: skip markers and gaps to its end.
        if !blocked {
            next = span.end;
        }
        if next > span.start {
            out.insert(span.partition, next);
        }
    }
    out
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
