//! `smmctl dlq list|inspect|replay|drain`: dead letters, read with the
//! workers' own header contract (`smm_workers::contract::dead_letter`).

pub mod drain;
pub mod inspect;
pub mod list;
pub mod replay;

#[cfg(test)]
mod model;

use smm_workers::contract::dead_letter::{DeadLetter, Filter, RawRecord};

use crate::Context;
use crate::cli::{DlqCommand, DlqFilterArgs};
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::ClusterMetadata;

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

pub(crate) fn one_line(text: &str, width: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
