//! The Kafka side of a consume–copy–commit loop, as `dlq replay` and the
//! legacy video migration run it: a transactional producer, the group whose
//! offsets each transaction carries, the copies' headers, and the commit
//! that moves the group together with the copies.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::Kafka;

/// Settings of a producer whose copies and a group's offsets commit in one
/// transaction. A fixed `transactional_id` makes a second run fence the
/// first, and a new run abort whatever a killed one left open.
pub(crate) fn transactional_config(kafka: &Kafka, transactional_id: &str) -> ClientConfig {
    let mut config = kafka.producer_config();
    config
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("transaction.timeout.ms", "60000");
    config
}

/// A client that names a group without joining it, for the metadata a
/// transaction commits the group's offsets under.
pub(crate) struct TransactionGroup {
    /// Kept as long as the metadata is used: dropping a client destroys it,
    /// which waits on its broker threads.
    _client: BaseConsumer,
    pub metadata: Option<ConsumerGroupMetadata>,
}

impl TransactionGroup {
    pub fn new(kafka: &Kafka, group: &str) -> anyhow::Result<TransactionGroup> {
        let mut config = kafka.client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        let client: BaseConsumer = config
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create a client for group {group}: {e}"))?;
        let metadata = client.group_metadata();
        Ok(TransactionGroup {
            _client: client,
            metadata,
        })
    }
}

/// A copy's headers as the producer takes them.
pub(crate) fn owned_headers(headers: &[(String, Vec<u8>)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |acc, (key, value)| {
            acc.insert(Header {
                key,
                value: Some(value.as_slice()),
            })
        },
    )
}

/// Which step of [`commit_with_offsets`] failed; the caller words it, since
/// what a failure means depends on what it was copying.
#[derive(Debug)]
pub(crate) enum CommitFailure {
    /// An offset that cannot go into a request at all.
    InvalidOffset(KafkaError),
    /// Offsets to commit, but no group metadata to commit them under.
    NoGroupMetadata,
    /// The broker did not take the group's offsets into the transaction.
    Offsets(KafkaError),
    /// The transaction itself did not commit.
    Commit(KafkaError),
}

/// Adds the group's new offsets on `topic` (by partition) to the open
/// transaction, if there are any, and commits it: the copies and the
/// group's move become visible together, or neither does.
pub(crate) fn commit_with_offsets(
    producer: &FutureProducer,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    group: Option<&ConsumerGroupMetadata>,
    timeout: Duration,
) -> Result<(), CommitFailure> {
    if !offsets.is_empty() {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(CommitFailure::InvalidOffset)?;
        }
        let group = group.ok_or(CommitFailure::NoGroupMetadata)?;
        tokio::task::block_in_place(|| producer.send_offsets_to_transaction(&list, group, timeout))
            .map_err(CommitFailure::Offsets)?;
    }
    tokio::task::block_in_place(|| producer.commit_transaction(timeout))
        .map_err(CommitFailure::Commit)
}
