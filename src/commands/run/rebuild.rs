//! `smmctl run cqrs --rebuild`: throws the read model away and replays it
//! from the earliest offset of every topic it folds in.
//!
//! The group is moved back first and the rows cleared second: a crash in
//! between leaves old rows that the replay folds over (every merge is
//! idempotent), where the other order could leave an empty model with the
//! group at the end of its topics.

use smm_workers::store::Store;
use smm_workers::workers::WorkerInfo;

use crate::exit::UsageError;
use crate::kafka::Kafka;
use crate::kafka::group_position::move_group;
use crate::kafka::live_groups::refuse_to_move_live_group;

pub async fn rebuild(
    kafka: &Kafka,
    info: &WorkerInfo,
    store: &Store,
    force: bool,
) -> anyhow::Result<u64> {
    refuse_to_move_live_group(kafka, info.group).await?;
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
    // A partition whose leader did not answer would keep its old position
    // while the model is cleared: the rebuilt model would lack its orders.
    let unanswered: Vec<String> = keys
        .iter()
        .filter(|k| !marks.contains_key(*k))
        .map(|(t, p)| format!("{t}/{p}"))
        .collect();
    if !unanswered.is_empty() {
        anyhow::bail!(
            "no offsets from the broker for {} (its leader did not answer); nothing was changed, try again",
            unanswered.join(", ")
        );
    }
    // Retention (7 days on the panel's topics) deletes the oldest events;
    // orders seen only in those would vanish from a rebuilt model.
    let trimmed: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            marks
                .get(k)
                .filter(|w| w.low > 0)
                .map(|w| format!("{}/{} starts at offset {}", k.0, k.1, w.low))
        })
        .collect();
    if !trimmed.is_empty() && !force {
        return Err(UsageError::new(format!(
            "retention has deleted early events ({}), so a rebuild would drop the orders seen \
             only in those. Nothing was changed. Add --force to rebuild from what remains.",
            trimmed.join(", ")
        ))
        .into());
    }
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
    smm_workers::workers::cqrs::clear(store).await.map_err(|e| {
        anyhow::anyhow!(
            "the group was moved to the start but the old rows could not be cleared ({e}); the rebuild folds the replay over them, which converges to the same model"
        )
    })
}
