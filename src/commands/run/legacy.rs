//! `smmctl run video --migrate-legacy`: moves the deprecated
//! `video.processing.queue` into `smm.video.processing`, exactly once.
//!
//! Progress is `video-processing-group`'s committed offset on the legacy
//! queue. The copies and that offset go into one Kafka transaction per
//! chunk, so a migration killed at any point and run again copies every
//! record once for read_committed readers, and a second run finds nothing
//! left to move.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use smm_workers::contract::catalog;
use smm_workers::contract::legacy::{self, LEGACY_DEAD_LETTER};

use crate::commands::dlq::{Reader, Start, committed, refuse_live_group, spans};
use crate::kafka::Kafka;

const CHUNK: usize = 1000;

/// What a migration did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub moved: usize,
    pub dead_lettered: usize,
}

pub async fn migrate(kafka: &Kafka, group: &str) -> anyhow::Result<Migration> {
    let topic = catalog::LEGACY_VIDEO_QUEUE;
    let metadata = kafka.metadata()?;
    let Some(found) = metadata.topics.get(topic) else {
        // Nothing was ever written to it here: nothing to move.
        return Ok(Migration::default());
    };
    let partitions = found.partitions.clone();
    refuse_live_group(kafka, group).await?;
    let from = committed(kafka, group, topic).await?;
    let to_read = spans(
        kafka,
        topic,
        &partitions,
        &from,
        &smm_workers::contract::dead_letter::Filter::default(),
        Start::Group,
    )?;
    if to_read.is_empty() {
        return Ok(Migration::default());
    }
    let timeout = kafka.timeout().max(Duration::from_secs(10));
    let mut config = kafka.producer_config();
    // A fixed transactional id: a second migration fences the first, and a
    // new run aborts whatever a killed one left open.
    config
        .set("transactional.id", "smmctl-legacy-video-migration")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("transaction.timeout.ms", "60000");
    let producer: FutureProducer = config
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the migration producer: {e}"))?;
    tokio::task::block_in_place(|| producer.init_transactions(timeout)).map_err(|e| {
        anyhow::anyhow!(
            "the cluster refused a transaction ({e}); the legacy migration needs transactions to move each record exactly once, so nothing was moved"
        )
    })?;
    let group_client: BaseConsumer = {
        let mut c = kafka.client_config();
        c.set("group.id", group).set("enable.auto.commit", "false");
        c.create()
            .map_err(|e| anyhow::anyhow!("cannot create a client for group {group}: {e}"))?
    };
    let Some(group_metadata) = group_client.group_metadata() else {
        anyhow::bail!("no group metadata for {group}; nothing was moved");
    };

    let mut done = Migration::default();
    let mut reader = Reader::new(kafka, topic, &to_read)?;
    while let Some(records) = reader.next_chunk(CHUNK)? {
        producer
            .begin_transaction()
            .map_err(|e| anyhow::anyhow!("cannot begin a transaction: {e}"))?;
        let mut acks = Vec::with_capacity(records.len());
        let mut next = std::collections::BTreeMap::new();
        for record in &records {
            let converted = legacy::migrate(record);
            if converted.refused.is_some() {
                done.dead_lettered += 1;
            } else {
                done.moved += 1;
            }
            let headers = converted.headers.iter().fold(
                OwnedHeaders::new_with_capacity(converted.headers.len()),
                |acc, (k, v)| {
                    acc.insert(Header {
                        key: k,
                        value: Some(v.as_slice()),
                    })
                },
            );
            let mut out = FutureRecord::<[u8], [u8]>::to(converted.topic).headers(headers);
            if let Some(k) = &converted.key {
                out = out.key(k);
            }
            if let Some(v) = &converted.value {
                out = out.payload(v);
            }
            match producer.send_result(out) {
                Ok(ack) => acks.push(ack),
                Err((e, _)) => anyhow::bail!(
                    "cannot send {topic}/{} offset {} to {}: {e}; this chunk is rolled back and a re-run moves it",
                    record.partition,
                    record.offset,
                    converted.topic
                ),
            }
            next.insert(record.partition, record.offset + 1);
        }
        for ack in acks {
            match ack.await {
                Ok(Ok(_)) => {}
                _ => anyhow::bail!(
                    "the broker did not acknowledge a migrated record; this chunk is rolled back and a re-run moves it"
                ),
            }
        }
        for span in &to_read {
            if reader.finished(span.partition) {
                next.insert(span.partition, span.end);
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in &next {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        tokio::task::block_in_place(|| {
            producer.send_offsets_to_transaction(&offsets, &group_metadata, timeout)
        })
        .map_err(|e| anyhow::anyhow!("cannot add {group}'s offsets to the transaction: {e}; this chunk is rolled back and a re-run moves it"))?;
        tokio::task::block_in_place(|| producer.commit_transaction(timeout)).map_err(|e| {
            anyhow::anyhow!("cannot commit the migration transaction: {e}; this chunk is rolled back and a re-run moves it")
        })?;
        tracing::info!(
            moved = done.moved,
            dead_lettered = done.dead_lettered,
            to = catalog::VIDEO_PROCESSING,
            dead_letter = LEGACY_DEAD_LETTER,
            "legacy chunk committed"
        );
    }
    Ok(done)
}
