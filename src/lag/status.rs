//! Burrow-style evaluation of a partition's recent history, for
//! `lag --watch`.
//!
//! Kafka does not say when a group last committed, only what it committed,
//! so the rules read what `--watch` can observe: the committed offset, the
//! lag, and whether a live member owns the partition. That last signal is
//! what tells a consumer that is stuck (STALL) from one that is gone (STOP),
//! and it spares slow topics Burrow's well-known false STOPs: a partition
//! with no new records has no lag, and no lag is always OK.
//!
//! The rules, strongest first:
//! - BROKEN: the latest committed offset is past the log end, a position
//!   the group's consumers cannot read from; no history needed.
//! - REWIND: the committed offset went backwards inside the window.
//! - STOP: lag > 0, nobody owns the partition, and the committed offset has
//!   not moved for the whole window, which spans at least the configured
//!   window time.
//! - STALL: lag > 0 and the committed offset has not moved for the whole
//!   window, although a member owns the partition.
//! - WARN: the committed offset moves, but the lag grew at every sample of
//!   the window; or it is frozen with lag, but not yet for a whole window.
//! - OK: anything else, and always when the latest lag is zero.
//!
//! With fewer than two samples nothing can be said yet: `Unknown`, shown as
//! "-". A group's status is the worst of its partitions'.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Unknown,
    Ok,
    Warn,
    Stall,
    Stop,
    Rewind,
    Broken,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Unknown => "-",
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Stall => "STALL",
            Status::Stop => "STOP",
            Status::Rewind => "REWIND",
            Status::Broken => "BROKEN",
        }
    }

    /// The worst of several statuses, as a group's is its worst partition's.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max().unwrap_or(Status::Unknown)
    }
}

/// One observation of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since any fixed origin; only differences matter.
    pub at_ms: u64,
    pub committed: Option<i64>,
    pub lag: Option<i64>,
    /// A live member of the group owns the partition.
    pub owned: bool,
    /// The committed offset is past the log end.
    pub broken: bool,
}

/// Evaluates a window of samples, oldest first. `window_ms` is the span
/// the window is meant to cover; STOP needs at least that much history.
pub fn evaluate(window: &[Sample], window_ms: u64) -> Status {
    if window.last().is_some_and(|s| s.broken) {
        return Status::Broken;
    }
    let committed: Vec<i64> = window.iter().filter_map(|s| s.committed).collect();
    if committed.windows(2).any(|pair| pair[1] < pair[0]) {
        return Status::Rewind;
    }
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return Status::Unknown;
    };
    if window.len() < 2 {
        return Status::Unknown;
    }
    let latest_lag = match last.lag {
        Some(lag) => lag,
        // No commit, or no watermarks: nothing to judge.
        None => return Status::Unknown,
    };
    if latest_lag <= 0 {
        return Status::Ok;
    }
    let unmoved =
        committed.len() == window.len() && committed.windows(2).all(|pair| pair[0] == pair[1]);
    if unmoved {
        // Frozen, but not yet for a whole window: too early to call it a
        // stall or a stop, but worth a look.
        if last.at_ms.saturating_sub(first.at_ms) < window_ms {
            return Status::Warn;
        }
        return if last.owned {
            Status::Stall
        } else {
            Status::Stop
        };
    }
    let lags: Option<Vec<i64>> = window.iter().map(|s| s.lag).collect();
    if let Some(lags) = lags
        && lags.windows(2).all(|pair| pair[1] > pair[0])
    {
        return Status::Warn;
    }
    Status::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (committed offset, lag, owned by a live member)
    type Point = (Option<i64>, Option<i64>, bool);

    /// Builds a window from points, one per second.
    fn window(points: &[Point]) -> Vec<Sample> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(committed, lag, owned))| Sample {
                at_ms: i as u64 * 1000,
                committed,
                lag,
                owned,
                broken: false,
            })
            .collect()
    }

    #[test]
    fn statuses_follow_the_documented_rules() {
        use Status::*;
        let c = Some;
        let cases: &[(&str, Vec<Point>, u64, Status)] = &[
            ("no samples", vec![], 1000, Unknown),
            ("one sample", vec![(c(5), c(3), true)], 1000, Unknown),
            (
                "caught up",
                vec![(c(5), c(0), true), (c(9), c(0), true)],
                1000,
                Ok,
            ),
            (
                "caught up at the end wins over a stall",
                vec![(c(5), c(3), true), (c(5), c(0), true)],
                1000,
                Ok,
            ),
            (
                "moving and lag shrinking",
                vec![(c(1), c(9), true), (c(5), c(5), true), (c(9), c(1), true)],
                1000,
                Ok,
            ),
            (
                "moving, lag flat",
                vec![(c(1), c(5), true), (c(6), c(5), true), (c(11), c(5), true)],
                1000,
                Ok,
            ),
            (
                "moving but lag grows every time",
                vec![(c(1), c(5), true), (c(2), c(8), true), (c(3), c(12), true)],
                1000,
                Warn,
            ),
            (
                "lag grows then dips",
                vec![(c(1), c(5), true), (c(2), c(8), true), (c(9), c(7), true)],
                1000,
                Ok,
            ),
            (
                "owned, offset frozen, lag > 0",
                vec![(c(4), c(2), true), (c(4), c(6), true), (c(4), c(9), true)],
                1000,
                Stall,
            ),
            (
                "unowned and frozen for the whole window",
                vec![
                    (c(4), c(2), false),
                    (c(4), c(6), false),
                    (c(4), c(9), false),
                ],
                2000,
                Stop,
            ),
            (
                "unowned and frozen, but not for a whole window yet",
                vec![(c(4), c(2), false), (c(4), c(6), false)],
                5000,
                Warn,
            ),
            (
                "offset went backwards",
                vec![(c(10), c(0), true), (c(3), c(7), true)],
                1000,
                Rewind,
            ),
            (
                "rewind beats everything, even a later catch-up",
                vec![(c(10), c(2), true), (c(3), c(9), true), (c(20), c(0), true)],
                1000,
                Rewind,
            ),
            (
                "no commit yet",
                vec![(None, None, true), (None, None, true)],
                1000,
                Unknown,
            ),
            (
                "first commit arrives",
                vec![(None, None, true), (c(3), c(4), true)],
                1000,
                Ok,
            ),
        ];
        for (name, points, window_ms, expected) in cases {
            assert_eq!(evaluate(&window(points), *window_ms), *expected, "{name}");
        }
    }

    #[test]
    fn a_commit_past_the_log_end_is_broken_from_the_first_sample() {
        let broken = Sample {
            at_ms: 0,
            committed: Some(25),
            lag: None,
            owned: false,
            broken: true,
        };
        assert_eq!(evaluate(&[broken], 1000), Status::Broken);
        let mut fixed = broken;
        fixed.broken = false;
        fixed.lag = Some(0);
        fixed.at_ms = 1000;
        assert_eq!(evaluate(&[broken, fixed], 1000), Status::Ok);
        assert_eq!(
            Status::worst([Status::Rewind, Status::Broken]),
            Status::Broken
        );
    }

    #[test]
    fn a_group_is_as_bad_as_its_worst_partition() {
        use Status::*;
        assert_eq!(Status::worst([Ok, Warn, Ok]), Warn);
        assert_eq!(Status::worst([Ok, Stall, Rewind, Stop]), Rewind);
        assert_eq!(Status::worst([Unknown, Ok]), Ok);
        assert_eq!(Status::worst([]), Unknown);
    }
}
