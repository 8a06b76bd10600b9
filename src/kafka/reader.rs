//! Reading a topic's records span by span, in bounded chunks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Headers as _;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use smm_workers::contract::dead_letter::RawRecord;

use super::Kafka;
use super::spans::Span;

/// Reads `spans` in chunks, so a DLQ of millions of records never has to
/// fit in memory. Within a partition, records come in offset order, also
/// across chunks.
pub(crate) struct Reader {
    consumer: rdkafka::consumer::BaseConsumer<super::Recorder>,
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
