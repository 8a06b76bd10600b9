//! One record's way through a worker: skip what a hold keeps back, find
//! its attempt, run the handler, and make the outcome durable before the
//! offset moves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tracing::Instrument as _;

use super::consumer_context::{RebalanceEvent, WorkerContext};
use super::delivery::copy_headers;
use super::events::{CountedAs, RecordHandled};
use super::holds::{Holds, SEEK_TIMEOUT};
use super::metrics::RecordOutcome;
use super::{Delivery, Handled, Handler, LOG_TARGET, Route, Shared};
use crate::contract::headers;

/// What one worker's loop hands each record through: its routes, its
/// handler, and the clients it shares with the other workers.
pub(super) struct Engine<'w, H> {
    pub(super) name: &'w str,
    pub(super) in_flight: Arc<std::sync::atomic::AtomicI64>,
    pub(super) routes: &'w [Route],
    pub(super) handler: &'w H,
    pub(super) shared: &'w Shared,
    pub(super) consumer: &'w StreamConsumer<WorkerContext>,
}

pub(super) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl<H: Handler> Engine<'_, H> {
    pub(super) fn route_of(&self, topic: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.main_topic == topic || r.is_retry_topic(topic))
    }

    pub(super) fn apply_rebalance(&self, event: RebalanceEvent, holds: &mut Holds) {
        match event {
            RebalanceEvent::Revoked(partitions) => {
                for key in &partitions {
                    holds.forget_partition(key);
                }
                tracing::info!(target: LOG_TARGET,
                    worker = self.name,
                    partitions = partitions.len(),
                    "partitions revoked after draining"
                );
            }
            RebalanceEvent::Assigned(partitions) => {
                // A partition held when it was revoked may come back
                // paused; it starts from the committed offset either way.
                let mut tpl = TopicPartitionList::new();
                for (topic, partition) in &partitions {
                    holds.forget_partition(&(topic.clone(), *partition));
                    tpl.add_partition(topic, *partition);
                }
                if let Err(e) = self.consumer.resume(&tpl) {
                    tracing::debug!(target: LOG_TARGET, worker = self.name, error = %e, "resume after assignment");
                }
                tracing::info!(target: LOG_TARGET,
                    worker = self.name,
                    partitions = partitions.len(),
                    "partitions assigned"
                );
            }
        }
    }

    pub(super) async fn process(&self, message: &BorrowedMessage<'_>, holds: &mut Holds) {
        let topic = message.topic();
        let partition = message.partition();
        let offset = message.offset();
        // The common case holds nothing: skip building keys for it.
        if !(holds.held.is_empty() && holds.resume_at.is_empty()) {
            let key = (topic.to_owned(), partition);
            if holds.held.contains_key(&key) {
                // Fetched before the pause took effect; it comes again later.
                return;
            }
            if let Some(&expected) = holds.resume_at.get(&key) {
                if offset != expected {
                    if offset > expected {
                        let _ = self.consumer.seek(
                            topic,
                            partition,
                            Offset::Offset(expected),
                            SEEK_TIMEOUT,
                        );
                    }
                    return;
                }
                holds.resume_at.remove(&key);
            }
        }

        let started = Instant::now();
        let Some(route) = self.route_of(topic) else {
            tracing::error!(target: LOG_TARGET,
                worker = self.name,
                topic,
                "record from a topic this worker does not route; skipped"
            );
            return;
        };
        let on_retry_topic = route.is_retry_topic(topic);
        let attempt = if on_retry_topic {
            let copied = message.headers().map(copy_headers).unwrap_or_default();
            let meta = headers::RetryMetadata::read(&copied).unwrap_or_default();
            if let Some(due_ms) = meta.due_at_ms {
                let wait = due_ms - now_ms();
                if wait > 0 {
                    // Never earlier than due: hold the partition until then.
                    let due = Instant::now() + Duration::from_millis(wait as u64);
                    self.hold(holds, topic, partition, offset, due);
                    return;
                }
            }
            meta.attempts.unwrap_or(2).max(1)
        } else {
            1
        };
        let attempt = attempt
            + if holds.in_place_attempts.is_empty() {
                0
            } else {
                holds
                    .in_place_attempts
                    .get(&(topic.to_owned(), partition, offset))
                    .copied()
                    .unwrap_or(0)
            };

        let delivery = Delivery {
            topic,
            partition,
            offset,
            timestamp_ms: message.timestamp().to_millis().unwrap_or_else(now_ms),
            key: message.key(),
            payload: message.payload(),
            message,
            attempt,
            correlation: std::sync::OnceLock::new(),
            worker: self.name,
        };
        let span = tracing::info_span!(
            target: LOG_TARGET,
            "record",
            worker = self.name,
            topic,
            partition,
            offset,
            attempt,
            correlation_id = tracing::field::Empty
        );
        if !span.is_disabled() {
            span.record("correlation_id", delivery.correlation_id());
        }
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = self
            .settle(message, &delivery, route, holds)
            .instrument(span)
            .await;
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(outcome) = outcome {
            let counted_as = CountedAs {
                worker: self.name,
                topic: route.main_topic.as_str(),
            };
            RecordHandled {
                outcome,
                took: started.elapsed(),
            }
            .emit(&self.shared.metrics, counted_as);
        }
    }

    /// Runs the handler and makes its outcome durable. `None` when the
    /// record stays where it is (held for an in-place retry, or the worker
    /// is shutting down mid-forward).
    pub(super) async fn settle(
        &self,
        message: &BorrowedMessage<'_>,
        delivery: &Delivery<'_>,
        route: &Route,
        holds: &mut Holds,
    ) -> Option<RecordOutcome> {
        let result = self.handler.handle(delivery).await;
        let outcome = match result {
            Ok(Handled::Applied(event_id)) => {
                self.flush_outbox(Some(event_id)).await?;
                RecordOutcome::Ok
            }
            Ok(Handled::Duplicate(event_id)) => {
                tracing::info!(target: LOG_TARGET, "already applied; acknowledged and skipped");
                self.flush_outbox(Some(event_id)).await?;
                RecordOutcome::Duplicate
            }
            Ok(Handled::Ignored(reason)) => {
                tracing::info!(target: LOG_TARGET, %reason, "ignored");
                RecordOutcome::Ignored
            }
            Err(failure) => {
                if let Some(event_id) = failure.committed {
                    self.flush_outbox(Some(event_id)).await?;
                }
                self.fail(delivery, route, failure, holds).await?
            }
        };
        if !holds.in_place_attempts.is_empty() {
            holds.in_place_attempts.remove(&(
                delivery.topic.to_owned(),
                delivery.partition,
                delivery.offset,
            ));
        }
        self.store_offset(message);
        Some(outcome)
    }

    pub(super) fn store_offset(&self, message: &BorrowedMessage<'_>) {
        // From the message itself: it carries its topic handle, where the
        // (topic, partition, offset) form looks the topic up on every call.
        if let Err(e) = self.consumer.store_offset_from_message(message) {
            // The partition was revoked under us; its next owner repeats
            // the record and dedup absorbs it.
            tracing::warn!(target: LOG_TARGET, worker = self.name, topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %e, "cannot store offset");
        }
    }
}
