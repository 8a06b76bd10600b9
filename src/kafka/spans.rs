//! Which offsets of a topic's partitions a command reads: from a group's
//! position, or an offset range, up to the high watermark.

use std::collections::BTreeMap;

use super::{Kafka, Watermarks};

/// What to read of one partition: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
    /// The partition's log start when the span was taken.
    pub log_start: i64,
}

/// Where a span starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// At the first record an offset range selects: for reading alone.
    Range,
    /// At the group's position, whatever the filters select. A command
    /// that moves the group must see every record it would move past, or
    /// it would mark handled records it never looked at.
    Group,
}

/// From `from` (a group's position, or the log start) to the high
/// watermark as it is now, within the offset range `range` (first and
/// last, inclusive): records arriving later wait for the next run.
pub(crate) fn spans(
    kafka: &Kafka,
    topic: &str,
    partitions: &[i32],
    from: &BTreeMap<i32, i64>,
    range: Option<(i64, i64)>,
    start_at: Start,
) -> anyhow::Result<Vec<Span>> {
    let keys: Vec<(String, i32)> = partitions.iter().map(|p| (topic.to_owned(), *p)).collect();
    let marks = kafka.watermarks(&keys)?;
    let mut out = Vec::new();
    for p in partitions {
        let Some(w) = marks.get(&(topic.to_owned(), *p)) else {
            anyhow::bail!("the broker did not report the offsets of {topic}/{p}; try again");
        };
        if let Some(span) = span_of(*p, *w, from.get(p).copied(), range, start_at) {
            out.push(span);
        }
    }
    Ok(out)
}

/// One partition's span, from its watermarks, the group's commit and the
/// offset range.
pub(crate) fn span_of(
    partition: i32,
    marks: Watermarks,
    committed: Option<i64>,
    range: Option<(i64, i64)>,
    start_at: Start,
) -> Option<Span> {
    // A committed offset below the log start (retention removed those
    // records) reads from the log start.
    let mut start = committed.unwrap_or(marks.low).max(marks.low);
    let mut end = marks.high;
    if let Some((first, last)) = range {
        if start_at == Start::Range {
            start = start.max(first);
        }
        end = end.min(last.saturating_add(1));
    }
    (start < end).then_some(Span {
        partition,
        start,
        end,
        log_start: marks.low,
    })
}
