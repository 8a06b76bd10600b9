//! A model-based test of how replay and drain select dead letters and move
//! the processing group: random partition contents (with offsets that hold
//! no record, as transaction markers leave), random group positions,
//! filters, offset ranges, batch sizes and deletes, and a kill at a random
//! step, run through the same planning code the commands use.
//!
//! The invariants, after every step:
//! - the group only moves past records that were replayed or archived;
//! - every deleted record is in an archive;
//! - no record is replayed twice for read_committed readers, whatever was
//!   killed along the way.
//!
//! CI runs a fixed seed. For a longer local run:
//! `SMM_MODEL_CASES=20000 SMM_MODEL_SEED=$RANDOM cargo test --lib dlq::model`.

use std::collections::BTreeSet;

use super::drain::plan_partition;
use crate::kafka::Watermarks;
use crate::kafka::spans::{Start, span_of};
use crate::kafka::walk::Positions;

/// xorshift64*: small, seedable, and good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A record's failure class: 0–2 are ordinary, 3 has no destination a
/// replay can resolve, so a replay reports it as skipped.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: i64,
    class: u8,
}

const UNRESOLVABLE: u8 = 3;

#[derive(Debug, Default)]
struct World {
    records: Vec<Record>,
    high: i64,
    log_start: i64,
    group: Option<i64>,
    /// Offsets in some archive.
    archived: BTreeSet<i64>,
    /// Offsets replayed, and so handled.
    replayed: BTreeSet<i64>,
    /// Copies visible to read_committed readers, in order.
    copies: Vec<i64>,
}

/// Which records a command's filters select.
#[derive(Debug, Clone)]
struct Filter {
    classes: Vec<u8>,
    range: Option<(i64, i64)>,
}

impl Filter {
    fn selects(&self, r: &Record) -> bool {
        self.classes.contains(&r.class)
            && self
                .range
                .is_none_or(|(first, last)| r.offset >= first && r.offset <= last)
    }
}

impl World {
    fn marks(&self) -> Watermarks {
        Watermarks {
            low: self.log_start,
            high: self.high,
        }
    }

    fn produce(&mut self, rng: &mut Rng) {
        for _ in 0..rng.below(12) {
            // A transaction marker takes an offset and leaves no record.
            if rng.chance(15) {
                self.high += 1;
            }
            self.records.push(Record {
                offset: self.high,
                class: rng.below(4) as u8,
            });
            self.high += 1;
        }
    }

    fn in_range(&self, from: i64, to: i64) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| r.offset >= from && r.offset < to)
            .copied()
            .collect()
    }

    /// `dlq drain`, killed after `kill_after` of its three steps (archive,
    /// move the group, delete) when given.
    fn drain(&mut self, filter: &Filter, delete: bool, kill_after: Option<u8>) {
        let Some(span) = span_of(0, self.marks(), self.group, filter.range, Start::Group) else {
            return;
        };
        let read_from = if delete { span.log_start } else { span.start };
        let letters: Vec<(i64, bool)> = self
            .in_range(read_from, span.end)
            .iter()
            .map(|r| (r.offset, filter.selects(r)))
            .collect();
        let plan = plan_partition(&span, self.group, &letters, delete);
        let Some(moves_to) = plan.moves_to else {
            return;
        };
        let archive: Vec<i64> = letters
            .iter()
            .filter(|(offset, selected)| {
                if *offset < span.start {
                    plan.deletes_before.is_some()
                } else {
                    *offset < moves_to && *selected
                }
            })
            .map(|(offset, _)| *offset)
            .collect();
        assert_eq!(archive.len(), plan.drained + plan.already_handled);
        if archive.is_empty() || kill_after == Some(0) {
            return;
        }
        self.archived.extend(&archive);
        if kill_after == Some(1) {
            return;
        }
        self.group = Some(moves_to);
        if kill_after == Some(2) {
            return;
        }
        if let Some(before) = plan.deletes_before {
            self.log_start = self.log_start.max(before);
        }
    }

    /// `dlq replay` in transactions of `batch` records, killed during
    /// transaction `kill_at` when given: that transaction's copies and
    /// offsets are aborted together.
    fn replay(&mut self, filter: &Filter, batch: usize, kill_at: Option<usize>) {
        let Some(span) = span_of(0, self.marks(), self.group, filter.range, Start::Group) else {
            return;
        };
        let records = self.in_range(span.start, span.end);
        let mut progress = Positions::new(&[span]);
        let chunks: Vec<&[Record]> = records.chunks(batch.max(1)).collect();
        let last = chunks.len().saturating_sub(1);
        // A span with no record left (markers only) still moves the group.
        let chunks = if chunks.is_empty() {
            vec![&records[..]]
        } else {
            chunks
        };
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut sent = Vec::new();
            for r in chunk {
                let selected = filter.selects(r);
                let handled = selected && r.class != UNRESOLVABLE && !progress.stopped(0);
                progress.step(0, r.offset, handled, selected);
                if handled {
                    sent.push(r.offset);
                }
            }
            let advance = progress.advance(|_| i == last);
            if kill_at == Some(i) {
                return;
            }
            self.copies.extend(&sent);
            self.replayed.extend(&sent);
            if let Some(&to) = advance.get(&0) {
                self.group = Some(to);
            }
            progress.committed(advance);
        }
    }

    fn check(&self, history: &[String]) {
        let position = self.group.unwrap_or(self.log_start).max(self.log_start);
        for r in &self.records {
            if r.offset < position {
                assert!(
                    self.replayed.contains(&r.offset) || self.archived.contains(&r.offset),
                    "the group passed offset {} that was neither replayed nor archived\n{history:#?}",
                    r.offset
                );
            }
            if r.offset < self.log_start {
                assert!(
                    self.archived.contains(&r.offset),
                    "offset {} was deleted but is in no archive\n{history:#?}",
                    r.offset
                );
            }
        }
        let unique: BTreeSet<i64> = self.copies.iter().copied().collect();
        assert_eq!(
            unique.len(),
            self.copies.len(),
            "a record was replayed twice: {:?}\n{history:#?}",
            self.copies
        );
    }
}

fn random_filter(rng: &mut Rng, high: i64) -> Filter {
    let mut classes: Vec<u8> = (0..4).filter(|_| rng.chance(60)).collect();
    if classes.is_empty() {
        classes.push(rng.below(4) as u8);
    }
    let range = rng.chance(40).then(|| {
        let first = rng.below(high.max(1) as u64 + 2) as i64;
        let last = first + rng.below(10) as i64;
        (first, last)
    });
    Filter { classes, range }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn replays_and_drains_never_pass_lose_or_repeat_a_dead_letter() {
    let cases = env_number("SMM_MODEL_CASES", 2_000);
    let seed = env_number("SMM_MODEL_SEED", 20_261_203_u64);
    let mut rng = Rng(seed | 1);
    for case in 0..cases {
        let mut world = World::default();
        let mut history = vec![format!("seed {seed}, case {case}")];
        world.produce(&mut rng);
        if rng.chance(30) {
            // A group that handled the records before its position in an
            // earlier run.
            let at = rng.below(world.high as u64 + 1) as i64;
            world.group = Some(at);
            let before: Vec<i64> = world.in_range(0, at).iter().map(|r| r.offset).collect();
            world.replayed.extend(before);
        }
        for _ in 0..rng.below(8) + 1 {
            let filter = random_filter(&mut rng, world.high);
            match rng.below(3) {
                0 => {
                    world.produce(&mut rng);
                    history.push("produce".to_string());
                }
                1 => {
                    let delete = rng.chance(50);
                    let kill = rng.chance(30).then(|| rng.below(3) as u8);
                    history.push(format!("drain {filter:?} delete={delete} kill={kill:?}"));
                    world.drain(&filter, delete, kill);
                }
                _ => {
                    let batch = rng.below(5) as usize + 1;
                    let kill = rng.chance(30).then(|| rng.below(4) as usize);
                    history.push(format!("replay {filter:?} batch={batch} kill={kill:?}"));
                    world.replay(&filter, batch, kill);
                }
            }
            history.push(format!(
                "  -> group {:?}, log start {}, high {}",
                world.group, world.log_start, world.high
            ));
            world.check(&history);
        }
    }
}
