//! `smmctl run video --migrate-legacy`: moves the deprecated
//! `video.processing.queue` into `smm.video.processing`, exactly once.
//!
//! Progress is `video-processing-group`'s committed offset on the legacy
//! queue. The copies and that offset go into one Kafka transaction per
//! chunk, so a migration killed at any point and run again copies every
//! record once for read_committed readers, and a second run finds nothing
//! left to move.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use smm_workers::contract::catalog;
use smm_workers::contract::legacy::{self, LEGACY_DEAD_LETTER};

use crate::kafka::Kafka;
use crate::kafka::group_position::committed;
use crate::kafka::live_groups::refuse_to_move_live_group;
use crate::kafka::reader::Reader;
use crate::kafka::spans::{Start, spans};
use crate::kafka::transaction::{
    CommitFailure, TransactionGroup, commit_with_offsets, owned_headers, transactional_config,
};

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
    refuse_to_move_live_group(kafka, group).await?;
    let from = committed(kafka, group, topic).await?;
    let to_read = spans(kafka, topic, &partitions, &from, None, Start::Group)?;
    if to_read.is_empty() {
        return Ok(Migration::default());
    }
    let timeout = kafka.timeout().max(Duration::from_secs(10));
    let producer: FutureProducer = transactional_config(kafka, "smmctl-legacy-video-migration")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the migration producer: {e}"))?;
    tokio::task::block_in_place(|| producer.init_transactions(timeout)).map_err(|e| {
        anyhow::anyhow!(
            "the cluster refused a transaction ({e}); the legacy migration needs transactions to move each record exactly once, so nothing was moved"
        )
    })?;
    let transaction_group = TransactionGroup::new(kafka, group)?;
    let Some(group_metadata) = transaction_group.metadata.as_ref() else {
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
            let mut out = FutureRecord::<[u8], [u8]>::to(converted.topic)
                .headers(owned_headers(&converted.headers));
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
        commit_with_offsets(&producer, topic, &next, Some(group_metadata), timeout).map_err(
            |failure| match failure {
                CommitFailure::InvalidOffset(e) => anyhow::Error::new(e),
                CommitFailure::NoGroupMetadata => {
                    anyhow::anyhow!("no group metadata for {group}; nothing was moved")
                }
                CommitFailure::Offsets(e) => anyhow::anyhow!(
                    "cannot add {group}'s offsets to the transaction: {e}; this chunk is rolled back and a re-run moves it"
                ),
                CommitFailure::Commit(e) => anyhow::anyhow!(
                    "cannot commit the migration transaction: {e}; this chunk is rolled back and a re-run moves it"
                ),
            },
        )?;
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
