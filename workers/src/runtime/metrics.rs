//! What the workers count, and its Prometheus text rendering.
//!
//! The runtime's events (`runtime::events`) count here as they log. The
//! numbers serve the panel's alert rules: lag under
//! 1000, no dead letters, processing under 500 ms, errors under 1 %.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the processing-time histogram, in seconds. Dense around
/// the 500 ms target so a drift towards it shows before it is crossed.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordOutcome {
    Ok,
    /// Already applied before; acknowledged and skipped.
    Duplicate,
    /// Not for this worker (a webhook status that confirms nothing, say).
    Ignored,
    Retried,
    DeadLettered,
    /// Failed for good on a topic without a dead letter.
    Dropped,
    /// Held back by a rate or quota limit; delivered again once it lifts,
    /// without using up an attempt.
    Throttled,
}

impl RecordOutcome {
    pub const ALL: [RecordOutcome; 7] = [
        RecordOutcome::Ok,
        RecordOutcome::Duplicate,
        RecordOutcome::Ignored,
        RecordOutcome::Retried,
        RecordOutcome::DeadLettered,
        RecordOutcome::Dropped,
        RecordOutcome::Throttled,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Ok => "ok",
            RecordOutcome::Duplicate => "duplicate",
            RecordOutcome::Ignored => "ignored",
            RecordOutcome::Retried => "retried",
            RecordOutcome::DeadLettered => "dead_lettered",
            RecordOutcome::Dropped => "dropped",
            RecordOutcome::Throttled => "throttled",
        }
    }

    fn is_error(self) -> bool {
        matches!(
            self,
            RecordOutcome::Retried | RecordOutcome::DeadLettered | RecordOutcome::Dropped
        )
    }
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct WorkerState {
    /// Per source topic, one count per [`RecordOutcome`] in `RecordOutcome::ALL` order:
    /// keyed by topic alone so the hot path looks up by `&str` without
    /// allocating.
    processed: BTreeMap<String, [u64; RecordOutcome::ALL.len()]>,
    dead_letters: BTreeMap<(String, String), u64>,
    timing: Histogram,
    /// Shared with the worker's loop, which moves it twice per record
    /// without taking the lock.
    in_flight: Arc<AtomicI64>,
    lag: BTreeMap<(String, i32), i64>,
    assigned: usize,
    /// Partitions taken from the worker by rebalances since start: with
    /// the cooperative assignor, only those that really moved.
    revoked: u64,
    broker_up: bool,
    /// Assigned partitions whose leader is unknown or not connected.
    leaderless: Vec<(String, i32)>,
}

#[derive(Default)]
pub struct Metrics {
    workers: Mutex<BTreeMap<String, WorkerState>>,
    /// Metric families a component renders itself (the WebSocket hub's
    /// clients), appended to every scrape.
    extra: Mutex<Vec<RenderFamilies>>,
}

type RenderFamilies = Box<dyn Fn(&mut String) + Send + Sync>;

/// A worker's readiness, as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub worker: String,
    pub assigned_partitions: usize,
    pub broker_up: bool,
    /// Assigned partitions that cannot be read now: no leader is known,
    /// or the leader's broker is not connected.
    pub leaderless: Vec<(String, i32)>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why the worker is not ready, in words; `None` when it is.
    pub fn not_ready_because(&self) -> Option<String> {
        match (self.broker_up, self.assigned_partitions) {
            (false, _) => Some(format!("{}: no broker answers", self.worker)),
            (true, 0) => Some(format!(
                "{}: no partitions assigned (the group is rebalancing, or its coordinator is unreachable)",
                self.worker
            )),
            (true, _) if !self.leaderless.is_empty() => {
                const NAMED: usize = 5;
                let mut named: Vec<String> = self
                    .leaderless
                    .iter()
                    .take(NAMED)
                    .map(|(topic, partition)| format!("{topic}/{partition}"))
                    .collect();
                if self.leaderless.len() > NAMED {
                    named.push(format!("and {} more", self.leaderless.len() - NAMED));
                }
                Some(format!(
                    "{}: no reachable leader for {}",
                    self.worker,
                    named.join(", ")
                ))
            }
            (true, _) => None,
        }
    }
}

impl Metrics {
    fn with<R>(&self, worker: &str, f: impl FnOnce(&mut WorkerState) -> R) -> R {
        // A panic while holding the lock leaves counters that are still
        // numbers; keep serving them rather than failing every later call.
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(state) = workers.get_mut(worker) {
            return f(state);
        }
        f(workers.entry(worker.to_owned()).or_default())
    }

    pub fn register(&self, worker: &str) {
        self.with(worker, |_| ());
    }

    pub fn record(&self, worker: &str, topic: &str, outcome: RecordOutcome, took: Duration) {
        self.with(worker, |w| {
            match w.processed.get_mut(topic) {
                Some(counts) => counts[outcome.index()] += 1,
                None => {
                    let mut counts = [0; RecordOutcome::ALL.len()];
                    counts[outcome.index()] = 1;
                    w.processed.insert(topic.to_owned(), counts);
                }
            }
            let seconds = took.as_secs_f64();
            for (bound, count) in BUCKETS.iter().zip(w.timing.counts.iter_mut()) {
                if seconds <= *bound {
                    *count += 1;
                }
            }
            w.timing.count += 1;
            w.timing.sum += seconds;
        });
    }

    pub fn dead_lettered(&self, worker: &str, source: &str, dead_letter: &str) {
        self.with(worker, |w| {
            *w.dead_letters
                .entry((source.to_owned(), dead_letter.to_owned()))
                .or_default() += 1;
        });
    }

    /// The in-flight gauge of `worker`, to move without locking.
    pub fn in_flight(&self, worker: &str) -> Arc<AtomicI64> {
        self.with(worker, |w| w.in_flight.clone())
    }

    pub fn set_lag(&self, worker: &str, lag: BTreeMap<(String, i32), i64>) {
        self.with(worker, |w| w.lag = lag);
    }

    pub fn set_assigned(&self, worker: &str, partitions: usize) {
        self.with(worker, |w| w.assigned = partitions);
    }

    pub fn revoked(&self, worker: &str, partitions: usize) {
        self.with(worker, |w| w.revoked += partitions as u64);
    }

    pub fn set_broker_up(&self, worker: &str, up: bool) {
        self.with(worker, |w| w.broker_up = up);
    }

    pub fn set_leaderless(&self, worker: &str, partitions: Vec<(String, i32)>) {
        self.with(worker, |w| w.leaderless = partitions);
    }

    /// Deliveries of `worker` so far by outcome, for tests and `/health`.
    pub fn count(&self, worker: &str, outcome: RecordOutcome) -> u64 {
        self.with(worker, |w| {
            w.processed
                .values()
                .map(|counts| counts[outcome.index()])
                .sum()
        })
    }

    pub fn readiness(&self) -> Vec<Readiness> {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        workers
            .iter()
            .map(|(name, w)| Readiness {
                worker: name.clone(),
                assigned_partitions: w.assigned,
                broker_up: w.broker_up,
                leaderless: w.leaderless.clone(),
            })
            .collect()
    }

    /// Adds a component's own families to every scrape. `render` writes
    /// complete `# HELP`/`# TYPE` blocks.
    pub fn add_families(&self, render: impl Fn(&mut String) + Send + Sync + 'static) {
        self.extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(render));
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        render_records_total(&mut out, &workers);
        render_processing_seconds(&mut out, &workers);
        render_in_flight(&mut out, &workers);
        render_consumer_lag(&mut out, &workers);
        render_dead_letters_total(&mut out, &workers);
        render_error_ratio(&mut out, &workers);
        render_assigned_partitions(&mut out, &workers);
        render_revoked_partitions(&mut out, &workers);
        render_broker_up(&mut out, &workers);
        drop(workers);
        for render in self
            .extra
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            render(&mut out);
        }
        out
    }
}

/// The `# HELP` and `# TYPE` lines that open a metric family.
fn family_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_records_total(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_records_total",
        "counter",
        "Records handled, by worker, source topic and outcome (ok, duplicate, ignored, retried, dead_lettered, dropped, throttled).",
    );
    for (worker, w) in workers.iter() {
        let rows = w.processed.iter().flat_map(|(topic, counts)| {
            RecordOutcome::ALL
                .iter()
                .zip(counts)
                .filter(|(_, n)| **n > 0)
                .map(move |(outcome, n)| (topic, outcome, n))
        });
        for (topic, outcome, n) in rows {
            let _ = writeln!(
                out,
                "smm_worker_records_total{{worker=\"{}\",topic=\"{}\",outcome=\"{}\"}} {n}",
                escape(worker),
                escape(topic),
                outcome.as_str()
            );
        }
    }
}

fn render_processing_seconds(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_processing_seconds",
        "histogram",
        "Time from a record's arrival to its acknowledgement, forwards included.",
    );
    for (worker, w) in workers.iter() {
        let worker = escape(worker);
        for (bound, count) in BUCKETS.iter().zip(w.timing.counts) {
            let _ = writeln!(
                out,
                "smm_worker_processing_seconds_bucket{{worker=\"{worker}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "smm_worker_processing_seconds_bucket{{worker=\"{worker}\",le=\"+Inf\"}} {}",
            w.timing.count
        );
        let _ = writeln!(
            out,
            "smm_worker_processing_seconds_sum{{worker=\"{worker}\"}} {}",
            w.timing.sum
        );
        let _ = writeln!(
            out,
            "smm_worker_processing_seconds_count{{worker=\"{worker}\"}} {}",
            w.timing.count
        );
    }
}

fn render_in_flight(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_in_flight",
        "gauge",
        "Records being handled right now.",
    );
    for (worker, w) in workers.iter() {
        let _ = writeln!(
            out,
            "smm_worker_in_flight{{worker=\"{}\"}} {}",
            escape(worker),
            w.in_flight.load(Ordering::Relaxed)
        );
    }
}

fn render_consumer_lag(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_consumer_lag",
        "gauge",
        "Records behind the high watermark per assigned partition, from librdkafka's statistics.",
    );
    for (worker, w) in workers.iter() {
        for ((topic, partition), lag) in &w.lag {
            let _ = writeln!(
                out,
                "smm_worker_consumer_lag{{worker=\"{}\",topic=\"{}\",partition=\"{partition}\"}} {lag}",
                escape(worker),
                escape(topic)
            );
        }
    }
}

fn render_dead_letters_total(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_dead_letters_total",
        "counter",
        "Records forwarded to a DLT or DLQ, by source and dead-letter topic. Any increase deserves an alert.",
    );
    for (worker, w) in workers.iter() {
        for ((source, dead_letter), n) in &w.dead_letters {
            let _ = writeln!(
                out,
                "smm_worker_dead_letters_total{{worker=\"{}\",topic=\"{}\",dead_letter_topic=\"{}\"}} {n}",
                escape(worker),
                escape(source),
                escape(dead_letter)
            );
        }
    }
}

fn render_error_ratio(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_error_ratio",
        "gauge",
        "Failed deliveries (retried, dead-lettered or dropped) over all deliveries since start; alert above 0.01.",
    );
    for (worker, w) in workers.iter() {
        let total: u64 = w.processed.values().flatten().sum();
        let failed: u64 = w
            .processed
            .values()
            .flat_map(|counts| RecordOutcome::ALL.iter().zip(counts))
            .filter(|(o, _)| o.is_error())
            .map(|(_, n)| n)
            .sum();
        let ratio = if total == 0 {
            0.0
        } else {
            failed as f64 / total as f64
        };
        let _ = writeln!(
            out,
            "smm_worker_error_ratio{{worker=\"{}\"}} {ratio}",
            escape(worker)
        );
    }
}

fn render_assigned_partitions(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_assigned_partitions",
        "gauge",
        "Partitions assigned to the worker's consumer.",
    );
    for (worker, w) in workers.iter() {
        let _ = writeln!(
            out,
            "smm_worker_assigned_partitions{{worker=\"{}\"}} {}",
            escape(worker),
            w.assigned
        );
    }
}

fn render_revoked_partitions(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_partitions_revoked_total",
        "counter",
        "Partitions rebalances took from the worker's consumer; a partner's restart adds none.",
    );
    for (worker, w) in workers.iter() {
        let _ = writeln!(
            out,
            "smm_worker_partitions_revoked_total{{worker=\"{}\"}} {}",
            escape(worker),
            w.revoked
        );
    }
}

fn render_broker_up(out: &mut String, workers: &BTreeMap<String, WorkerState>) {
    family_header(
        out,
        "smm_worker_broker_up",
        "gauge",
        "1 while the worker's consumer has a broker connection.",
    );
    for (worker, w) in workers.iter() {
        let _ = writeln!(
            out,
            "smm_worker_broker_up{{worker=\"{}\"}} {}",
            escape(worker),
            u8::from(w.broker_up)
        );
    }
}

/// Label values are topic and worker names, but a cluster may hold a topic
/// named with a quote or backslash; escape as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_is_not_ready_says_why() {
        let worker = |assigned_partitions, broker_up| Readiness {
            worker: "payments".into(),
            assigned_partitions,
            broker_up,
            leaderless: Vec::new(),
        };
        assert_eq!(worker(3, true).not_ready_because(), None);
        assert_eq!(
            worker(3, false).not_ready_because().as_deref(),
            Some("payments: no broker answers")
        );
        assert!(
            worker(0, true)
                .not_ready_because()
                .is_some_and(|why| why.starts_with("payments: no partitions assigned"))
        );
        let leaderless = |n: i32| Readiness {
            leaderless: (0..n)
                .map(|p| ("smm.payment.confirmations".to_owned(), p))
                .collect(),
            ..worker(3, true)
        };
        assert_eq!(
            leaderless(2).not_ready_because().as_deref(),
            Some(
                "payments: no reachable leader for smm.payment.confirmations/0, smm.payment.confirmations/1"
            )
        );
        assert!(!leaderless(1).ready());
        assert!(
            leaderless(7)
                .not_ready_because()
                .is_some_and(|why| why.ends_with("smm.payment.confirmations/4, and 2 more"))
        );
    }

    #[test]
    fn renders_counters_histogram_and_ratio() {
        let m = Metrics::default();
        m.record(
            "payments",
            "smm.payment.confirmations",
            RecordOutcome::Ok,
            Duration::from_millis(3),
        );
        m.record(
            "payments",
            "smm.payment.confirmations",
            RecordOutcome::Ok,
            Duration::from_millis(700),
        );
        m.record(
            "payments",
            "smm.payment.confirmations",
            RecordOutcome::Retried,
            Duration::from_millis(1),
        );
        m.record(
            "payments",
            "smm.payment.confirmations",
            RecordOutcome::Duplicate,
            Duration::from_millis(1),
        );
        m.dead_lettered(
            "payments",
            "smm.payment.confirmations",
            "smm.payment.confirmations.dlq",
        );
        let text = m.render();
        for line in [
            "smm_worker_records_total{worker=\"payments\",topic=\"smm.payment.confirmations\",outcome=\"ok\"} 2",
            "smm_worker_records_total{worker=\"payments\",topic=\"smm.payment.confirmations\",outcome=\"duplicate\"} 1",
            "smm_worker_processing_seconds_bucket{worker=\"payments\",le=\"0.005\"} 3",
            "smm_worker_processing_seconds_bucket{worker=\"payments\",le=\"0.5\"} 3",
            "smm_worker_processing_seconds_bucket{worker=\"payments\",le=\"1\"} 4",
            "smm_worker_processing_seconds_bucket{worker=\"payments\",le=\"+Inf\"} 4",
            "smm_worker_processing_seconds_count{worker=\"payments\"} 4",
            "smm_worker_dead_letters_total{worker=\"payments\",topic=\"smm.payment.confirmations\",dead_letter_topic=\"smm.payment.confirmations.dlq\"} 1",
            "smm_worker_error_ratio{worker=\"payments\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(m.count("payments", RecordOutcome::Ok), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
