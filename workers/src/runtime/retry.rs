//! Where a failed record goes: held for the limit that throttled it,
//! retried in place, forwarded to a retry topic, dead-lettered, or
//! dropped, as its route's ladder says.

use std::time::{Duration, Instant};

use super::engine::{Engine, now_ms};
use super::events::{
    CountedAs, RecordDeadLettered, RecordDropped, RecordForwarded, RecordRetriedInPlace,
    RecordThrottled,
};
use super::holds::Holds;
use super::metrics::RecordOutcome;
use super::{Delivery, Handler, HandlerFailure, Next, Route};
use crate::contract::headers;

/// Marks a dead letter that waits for a person. The value says why.
pub const MANUAL_REVIEW_HEADER: &str = "x-smm-manual-review";

impl<H: Handler> Engine<'_, H> {
    pub(super) async fn fail(
        &self,
        delivery: &Delivery<'_>,
        route: &Route,
        failure: HandlerFailure,
        holds: &mut Holds,
    ) -> Option<RecordOutcome> {
        let counted_as = CountedAs {
            worker: self.name,
            topic: route.main_topic.as_str(),
        };
        if let Some(wait) = failure.retry_after {
            self.throttle(delivery, &failure, wait, holds, counted_as);
            return None;
        }
        let next = route.next(delivery.attempt, failure.kind);
        let source = headers::FailedRecord {
            topic: delivery.topic,
            partition: delivery.partition,
            offset: delivery.offset,
            timestamp_ms: delivery.timestamp_ms,
            timestamp_type: headers::CREATE_TIME,
        };
        let exception = headers::Exception {
            fqcn: &failure.class,
            cause_fqcn: failure.cause.as_deref(),
            message: &failure.message,
            stacktrace: None,
        };
        match next {
            Next::RetryInPlace { delay, attempt } => {
                let retried = RecordRetriedInPlace {
                    failure: &failure,
                    next_attempt: attempt,
                    delay,
                };
                retried.emit(&self.shared.metrics, counted_as);
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
                RecordForwarded {
                    failure: &failure,
                    to: &topic,
                    next_attempt: attempt,
                }
                .emit();
                self.send(&topic, delivery.key, delivery.payload, &out)
                    .await?;
                Some(RecordOutcome::Retried)
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
                let dead_lettered = RecordDeadLettered {
                    failure: &failure,
                    to: &topic,
                    manual_review,
                    attempts: delivery.attempt,
                };
                dead_lettered.emit();
                self.send(&topic, delivery.key, delivery.payload, &out)
                    .await?;
                dead_lettered.count(&self.shared.metrics, counted_as);
                Some(RecordOutcome::DeadLettered)
            }
            Next::Drop => {
                RecordDropped {
                    failure: &failure,
                    attempts: delivery.attempt,
                }
                .emit();
                Some(RecordOutcome::Dropped)
            }
        }
    }

    /// A limit refused the work: the partition waits in place, the attempt
    /// unspent, for as long as the limit lasts.
    fn throttle(
        &self,
        delivery: &Delivery<'_>,
        failure: &HandlerFailure,
        wait: Duration,
        holds: &mut Holds,
        counted_as: CountedAs<'_>,
    ) {
        RecordThrottled { failure, wait }.emit(&self.shared.metrics, counted_as);
        self.hold(
            holds,
            delivery.topic,
            delivery.partition,
            delivery.offset,
            Instant::now() + wait,
        );
    }
}
