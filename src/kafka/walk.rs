//! How far a group may move: past the records a command handled, never
//! past one it did not.

use std::collections::BTreeMap;

use super::spans::Span;

/// How far a group may move on one partition, walked record by record in
/// offset order from its position: past every record that was handled,
/// and never past the first one that was not, since nobody handled that
/// one. Replay and drain both move the group this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    start: i64,
    next: i64,
    /// The first record that was not handled.
    pub stopped_at: Option<i64>,
    /// Records handled before the stop.
    pub handled: usize,
    /// Records the filters selected behind the stop: left for later.
    pub held_back: usize,
}

impl Walk {
    pub fn new(start: i64) -> Walk {
        Walk {
            start,
            next: start,
            stopped_at: None,
            handled: 0,
            held_back: 0,
        }
    }

    /// The next record: `handled` when it was replayed, drained or
    /// otherwise dealt with; `selected` when the filters chose it.
    pub fn step(&mut self, offset: i64, handled: bool, selected: bool) {
        if self.stopped_at.is_some() {
            self.held_back += usize::from(selected);
        } else if handled {
            self.handled += 1;
            self.next = offset + 1;
        } else {
            self.stopped_at = Some(offset);
        }
    }

    /// The span was read to `end` with nothing left behind: transaction
    /// markers and compacted gaps up to the end are passed too.
    pub fn read_to(&mut self, end: i64) {
        if self.stopped_at.is_none() {
            self.next = self.next.max(end);
        }
    }

    /// The group's new offset, if it moves at all.
    pub fn moves_to(&self) -> Option<i64> {
        (self.next > self.start).then_some(self.next)
    }
}

/// Where a replay may move the group on each partition, transaction by
/// transaction: which offsets are committed together with the copies.
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    spans: Vec<Span>,
    walks: BTreeMap<i32, Walk>,
    committed: BTreeMap<i32, i64>,
}

impl Positions {
    pub fn new(spans: &[Span]) -> Positions {
        Positions {
            spans: spans.to_vec(),
            walks: spans
                .iter()
                .map(|s| (s.partition, Walk::new(s.start)))
                .collect(),
            committed: BTreeMap::new(),
        }
    }

    /// Whether a record of `partition` was left behind already: a record
    /// after it must not be sent, since the group could never be moved past
    /// it and a later run would send it again.
    pub fn stopped(&self, partition: i32) -> bool {
        self.walks
            .get(&partition)
            .is_some_and(|w| w.stopped_at.is_some())
    }

    /// One record of the chunk, in offset order within its partition.
    pub fn step(&mut self, partition: i32, offset: i64, handled: bool, selected: bool) {
        if let Some(walk) = self.walks.get_mut(&partition) {
            walk.step(offset, handled, selected);
        }
    }

    /// The offsets to commit with this chunk: each partition whose walk
    /// moved since the last commit. `finished` tells whether a partition has
    /// been read to the end of its span.
    pub fn advance(&mut self, finished: impl Fn(i32) -> bool) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for span in &self.spans {
            let Some(walk) = self.walks.get_mut(&span.partition) else {
                continue;
            };
            if finished(span.partition) {
                walk.read_to(span.end);
            }
            if let Some(to) = walk.moves_to()
                && self.committed.get(&span.partition) != Some(&to)
            {
                out.insert(span.partition, to);
            }
        }
        out
    }

    /// The chunk's transaction committed: its offsets are the group's.
    pub fn committed(&mut self, advance: BTreeMap<i32, i64>) {
        self.committed.extend(advance);
    }
}
