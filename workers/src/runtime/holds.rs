//! Partitions held back for a delayed retry: paused, sought back to the
//! waiting record, and resumed once it is due.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::engine::Engine;
use super::{Handler, LOG_TARGET};

/// A partition held at `offset` until `due`, for a delayed retry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hold {
    pub(super) offset: i64,
    pub(super) due: Instant,
}

pub(super) type PartitionKey = (String, i32);

/// The per-worker loop state that outlives one record.
#[derive(Default)]
pub(super) struct Holds {
    pub(super) held: HashMap<PartitionKey, Hold>,
    /// After a hold ends, the partition must resume at exactly this offset.
    /// A record from further on means the seek did not take: seek again
    /// rather than skip the held record.
    pub(super) resume_at: HashMap<PartitionKey, i64>,
    /// Failed deliveries of records retried in place, by partition and
    /// offset. Kept in memory: after a restart a record starts its ladder
    /// again, which can only add attempts, never skip one.
    pub(super) in_place_attempts: HashMap<(String, i32, i64), u32>,
}

impl Holds {
    pub(super) fn forget_partition(&mut self, key: &PartitionKey) {
        self.held.remove(key);
        self.resume_at.remove(key);
        self.in_place_attempts
            .retain(|(t, p, _), _| !(t == &key.0 && *p == key.1));
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|h| h.due).min()
    }
}

pub(super) const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

impl<H: Handler> Engine<'_, H> {
    /// Holds a partition at `offset` until `due`: pause, seek back, and
    /// let the loop resume it. The other partitions keep flowing.
    pub(super) fn hold(
        &self,
        holds: &mut Holds,
        topic: &str,
        partition: i32,
        offset: i64,
        due: Instant,
    ) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(target: LOG_TARGET, worker = self.name, topic, partition, error = %e, "pause failed");
        }
        if let Err(e) = self
            .consumer
            .seek(topic, partition, Offset::Offset(offset), SEEK_TIMEOUT)
        {
            tracing::warn!(target: LOG_TARGET, worker = self.name, topic, partition, offset, error = %e, "seek failed; the resume check seeks again");
        }
        let key = (topic.to_owned(), partition);
        holds.held.insert(key.clone(), Hold { offset, due });
        holds.resume_at.insert(key, offset);
    }

    pub(super) fn release_due(&self, holds: &mut Holds) {
        let now = Instant::now();
        let due: Vec<PartitionKey> = holds
            .held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(hold) = holds.held.remove(&key) else {
                continue;
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&key.0, key.1);
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::warn!(target: LOG_TARGET, worker = self.name, topic = %key.0, partition = key.1, error = %e, "resume failed");
            }
            tracing::debug!(target: LOG_TARGET, worker = self.name, topic = %key.0, partition = key.1, offset = hold.offset, "partition resumed");
        }
    }
}
