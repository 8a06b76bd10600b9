//! `smmctl run cqrs --rebuild`: throws the read model away and replays it
//! from the earliest offset of every topic it folds in.
//!
//! The group is moved back first and the rows cleared second: a crash in
//! between leaves old rows that the replay folds over (every merge is
//! idempotent), where the other order could leave an empty model with the
//! group at the end of its topics.

use smm_workers::store::Store;
use smm_workers::worker::WorkerInfo;

use crate::commands::dlq::{move_group, refuse_live_group};
use crate::kafka::Kafka;

pub async fn rebuild(kafka: &Kafka, info: &WorkerInfo, store: &Store) -> anyhow::Result<u64> {
    refuse_live_group(kafka, info.group).await?;
    let metadata = kafka.metadata()?;
    let mut keys = Vec::new();
    for topic in info.topics {
        for p in metadata
            .topics
            .get(*topic)
            .map(|t| t.partitions.clone())
            .unwrap_or_default()
        {
            keys.push(((*topic).to_owned(), p));
        }
    }
    let marks = kafka.watermarks(&keys)?;
    let earliest: Vec<(String, i32, i64)> = keys
        .iter()
        .filter_map(|k| marks.get(k).map(|w| (k.0.clone(), k.1, w.low)))
        .collect();
    move_group(
        kafka,
        info.group,
        &earliest,
        "the read model was not touched; run the rebuild again",
    )
    .await?;
    smm_workers::worker::cqrs::clear(store).await.map_err(|e| {
        anyhow::anyhow!(
            "the group was moved to the start but the old rows could not be cleared ({e}); the rebuild folds the replay over them, which converges to the same model"
        )
    })
}
