//! Where a failed record goes: held for the limit that throttled it,
//! retried in place, forwarded to a retry topic, dead-lettered, or
//! dropped, as its route's ladder says.

use std::time::{Duration, Instant};

use super::engine::{Engine, now_ms};
use super::holds::Holds;
use super::metrics::Outcome;
use super::{Delivery, Failure, Handler, LOG_TARGET, Next, Route};
use crate::contract::headers;

/// Marks a dead letter that waits for a person. The value says why.
pub const MANUAL_REVIEW_HEADER: &str = "x-smm-manual-review";

impl<H: Handler> Engine<'_, H> {
    pub(super) async fn fail(
        &self,
        delivery: &Delivery<'_>,
        route: &Route,
        failure: Failure,
        holds: &mut Holds,
    ) -> Option<Outcome> {
        if let Some(wait) = failure.retry_after {
            tracing::warn!(target: LOG_TARGET, class = %failure.class, message = %failure.message, wait_s = wait.as_secs(), "throttled; holding the partition until the limit lifts");
            self.hold(
                holds,
                delivery.topic,
                delivery.partition,
                delivery.offset,
                Instant::now() + wait,
            );
            self.shared.metrics.record(
                self.name,
                route.main_topic.as_str(),
                Outcome::Throttled,
                Duration::ZERO,
            );
            return None;
        }
        let next = route.next(delivery.attempt, failure.kind);
        let source = headers::Source {
            topic: delivery.topic,
            partition: delivery.partition,
            offset: delivery.offset,
            timestamp_ms: delivery.timestamp_ms,
            timestamp_type: headers::CREATE_TIME,
        };
        let exception = headers::Failure {
            fqcn: &failure.class,
            cause_fqcn: failure.cause.as_deref(),
            message: &failure.message,
            stacktrace: None,
        };
        match next {
            Next::RetryInPlace { delay, attempt } => {
                tracing::warn!(target: LOG_TARGET, class = %failure.class, message = %failure.message, next_attempt = attempt, delay_ms = delay.as_millis() as u64, "failed; retrying in place");
                holds.in_place_attempts.insert(
                    (
                        delivery.topic.to_owned(),
                        delivery.partition,
                        delivery.offset,
                    ),
                    attempt - 1,
                );
                self.hold(
                    holds,
                    delivery.topic,
                    delivery.partition,
                    delivery.offset,
                    Instant::now() + delay,
                );
                self.shared.metrics.record(
                    self.name,
                    route.main_topic.as_str(),
                    Outcome::Retried,
                    Duration::ZERO,
                );
                None
            }
            Next::Forward {
                topic,
                delay,
                attempt,
            } => {
                let due = now_ms() + delay.as_millis() as i64;
                let out =
                    headers::forward(&delivery.headers(), &source, &exception, attempt, Some(due));
                tracing::warn!(target: LOG_TARGET, class = %failure.class, message = %failure.message, to = %topic, next_attempt = attempt, "failed; forwarded to retry topic");
                self.send(&topic, delivery.key, delivery.payload, &out)
                    .await?;
                Some(Outcome::Retried)
            }
            Next::DeadLetter {
                topic,
                manual_review,
            } => {
                let mut out = headers::forward(
                    &delivery.headers(),
                    &source,
                    &exception,
                    delivery.attempt.saturating_add(1),
                    None,
                );
                if manual_review {
                    out.retain(|(k, _)| k != MANUAL_REVIEW_HEADER);
                    out.push((
                        MANUAL_REVIEW_HEADER.to_owned(),
                        failure.message.clone().into_bytes(),
                    ));
                }
                tracing::error!(target: LOG_TARGET, class = %failure.class, message = %failure.message, to = %topic, manual_review, attempts = delivery.attempt, "dead-lettered");
                self.send(&topic, delivery.key, delivery.payload, &out)
                    .await?;
                self.shared
                    .metrics
                    .dead_lettered(self.name, route.main_topic.as_str(), &topic);
                Some(Outcome::DeadLettered)
            }
            Next::Drop => {
                tracing::error!(target: LOG_TARGET, class = %failure.class, message = %failure.message, attempts = delivery.attempt, "failed for good; this topic has no dead letter, so the record is dropped");
                Some(Outcome::Dropped)
            }
        }
    }
}
