//! What the runtime reports about each record, one struct per event. Each
//! writes its tracing line and bumps its metric in one place, so the line an
//! operator reads and the number an alert watches cannot drift apart.
//!
//! A record forwarded to a retry topic or dropped is counted once the
//! engine has settled it, with its processing time ([`RecordHandled`]); the
//! events that hold a partition count themselves, as nothing settles them.

use std::time::Duration;

use super::metrics::{Metrics, RecordOutcome};
use super::{HandlerFailure, LOG_TARGET};

/// Which worker and which route (by its main topic) an event counts for.
#[derive(Clone, Copy)]
pub(super) struct CountedAs<'a> {
    pub(super) worker: &'a str,
    pub(super) topic: &'a str,
}

/// A limit (an API quota) refused the work: the partition waits in place
/// without spending an attempt.
pub(super) struct RecordThrottled<'a> {
    pub(super) failure: &'a HandlerFailure,
    pub(super) wait: Duration,
}

impl RecordThrottled<'_> {
    pub(super) fn emit(&self, metrics: &Metrics, counted_as: CountedAs<'_>) {
        tracing::warn!(target: LOG_TARGET, class = %self.failure.class, message = %self.failure.message, wait_s = self.wait.as_secs(), "throttled; holding the partition until the limit lifts");
        count(
            metrics,
            counted_as,
            RecordOutcome::Throttled,
            Duration::ZERO,
        );
    }
}

/// A failed record waits on its own partition for its next attempt.
pub(super) struct RecordRetriedInPlace<'a> {
    pub(super) failure: &'a HandlerFailure,
    pub(super) next_attempt: u32,
    pub(super) delay: Duration,
}

impl RecordRetriedInPlace<'_> {
    pub(super) fn emit(&self, metrics: &Metrics, counted_as: CountedAs<'_>) {
        tracing::warn!(target: LOG_TARGET, class = %self.failure.class, message = %self.failure.message, next_attempt = self.next_attempt, delay_ms = self.delay.as_millis() as u64, "failed; retrying in place");
        count(metrics, counted_as, RecordOutcome::Retried, Duration::ZERO);
    }
}

/// A failed record goes to a retry topic; counted when it is settled.
pub(super) struct RecordForwarded<'a> {
    pub(super) failure: &'a HandlerFailure,
    pub(super) to: &'a str,
    pub(super) next_attempt: u32,
}

impl RecordForwarded<'_> {
    pub(super) fn emit(&self) {
        tracing::warn!(target: LOG_TARGET, class = %self.failure.class, message = %self.failure.message, to = %self.to, next_attempt = self.next_attempt, "failed; forwarded to retry topic");
    }
}

/// A record that ran out of attempts, or may never pass, goes to its dead
/// letter.
pub(super) struct RecordDeadLettered<'a> {
    pub(super) failure: &'a HandlerFailure,
    pub(super) to: &'a str,
    pub(super) manual_review: bool,
    pub(super) attempts: u32,
}

impl RecordDeadLettered<'_> {
    /// The line is written as the record leaves; the dead letter is counted
    /// by [`RecordDeadLettered::count`] only once the broker has it, since a
    /// shutdown during the send leaves the record to be delivered again.
    pub(super) fn emit(&self) {
        tracing::error!(target: LOG_TARGET, class = %self.failure.class, message = %self.failure.message, to = %self.to, manual_review = self.manual_review, attempts = self.attempts, "dead-lettered");
    }

    pub(super) fn count(&self, metrics: &Metrics, counted_as: CountedAs<'_>) {
        metrics.dead_lettered(counted_as.worker, counted_as.topic, self.to);
    }
}

/// A record failed for good on a topic without a dead letter; counted when
/// it is settled.
pub(super) struct RecordDropped<'a> {
    pub(super) failure: &'a HandlerFailure,
    pub(super) attempts: u32,
}

impl RecordDropped<'_> {
    pub(super) fn emit(&self) {
        tracing::error!(target: LOG_TARGET, class = %self.failure.class, message = %self.failure.message, attempts = self.attempts, "failed for good; this topic has no dead letter, so the record is dropped");
    }
}

/// A record settled: its outcome and the time from its arrival to its
/// acknowledgement.
pub(super) struct RecordHandled {
    pub(super) outcome: RecordOutcome,
    pub(super) took: Duration,
}

impl RecordHandled {
    pub(super) fn emit(&self, metrics: &Metrics, counted_as: CountedAs<'_>) {
        count(metrics, counted_as, self.outcome, self.took);
    }
}

fn count(metrics: &Metrics, counted_as: CountedAs<'_>, outcome: RecordOutcome, took: Duration) {
    metrics.record(counted_as.worker, counted_as.topic, outcome, took);
}
