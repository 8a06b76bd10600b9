//! A group's position on one topic: where it has committed, and moving it.

use std::collections::BTreeMap;

use super::{Kafka, groups};

/// Offsets `group` has committed on `topic`, by partition.
pub(crate) async fn committed(
    kafka: &Kafka,
    group: &str,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    Ok(
        groups::committed_offsets(kafka.offsets_client(), group, kafka.timeout())
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
