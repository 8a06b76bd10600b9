//! The consumer's callbacks: commits before a rebalance gives partitions
//! up, rebalances queued for the loop, and librdkafka's statistics and
//! logs turned into metrics and tracing lines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

use super::LOG_TARGET;
use super::metrics::Metrics;

/// Broker states in which a connection serves requests: up, or briefly
/// re-authenticating its SASL session.
const CONNECTED: [&str; 2] = ["UP", "REAUTH"];

/// Consumer callbacks: offsets committed before partitions are given up,
/// and librdkafka's statistics turned into lag and broker gauges.
pub(super) struct WorkerContext {
    pub(super) worker: String,
    pub(super) metrics: Arc<Metrics>,
    pub(super) rebalances: Mutex<Vec<RebalanceEvent>>,
    /// The partitions the consumer holds, as of the last rebalance.
    pub(super) assignment: Mutex<BTreeSet<(String, i32)>>,
}

#[derive(Debug)]
pub(super) enum RebalanceEvent {
    Revoked(Vec<(String, i32)>),
    Assigned(Vec<(String, i32)>),
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        let mut lag = BTreeMap::new();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *partition), p.consumer_lag);
                }
            }
        }
        self.metrics.set_lag(&self.worker, lag);
        let connected: BTreeSet<i32> = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && CONNECTED.contains(&b.state.as_str()))
            .map(|b| b.nodeid)
            .collect();
        self.metrics
            .set_broker_up(&self.worker, !connected.is_empty());
        // A partition the worker holds but cannot fetch: its leader died
        // and no other has been elected yet, or the cluster lost the
        // quorum that would elect one. Held means assigned at the last
        // rebalance; librdkafka's statistics also list partitions it only
        // tracks. The broker it fetches from counts too (a follower, with
        // client.rack).
        let held = self
            .assignment
            .lock()
            .map(|held| held.clone())
            .unwrap_or_default();
        let leaderless = statistics
            .topics
            .iter()
            .flat_map(|(topic, t)| {
                t.partitions
                    .iter()
                    .filter(|(partition, p)| {
                        held.contains(&(topic.clone(), **partition))
                            && !connected.contains(&p.leader)
                            && !connected.contains(&p.broker)
                    })
                    .map(move |(partition, _)| (topic.clone(), *partition))
            })
            .collect();
        self.metrics.set_leaderless(&self.worker, leaderless);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.metrics.set_broker_up(&self.worker, false);
        }
        tracing::warn!(target: LOG_TARGET, worker = %self.worker, %error, reason, "Kafka client error");
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::info!(target: LOG_TARGET, worker = %self.worker, facility, message, "librdkafka");
        } else {
            tracing::debug!(target: LOG_TARGET, worker = %self.worker, facility, message, "librdkafka");
        }
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Everything stored is done (records are handled one at a
            // time), so committing here hands the next owner an exact
            // position instead of up to an interval's worth of repeats.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, worker = %self.worker, error = %e, "commit on revoke failed; the next owner may repeat records, which dedup absorbs")
                }
            }
            self.metrics.revoked(&self.worker, tpl.count());
            self.push(RebalanceEvent::Revoked(partitions_of(tpl)));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // With the cooperative assignor a rebalance hands over only the
        // partitions that move, so the gauge is what the consumer holds
        // now, never the size of the last change.
        let held = consumer
            .assignment()
            .map(|tpl| partitions_of(&tpl))
            .unwrap_or_default();
        self.metrics.set_assigned(&self.worker, held.len());
        if let Ok(mut assignment) = self.assignment.lock() {
            *assignment = held.into_iter().collect();
        }
        if let Rebalance::Assign(tpl) = rebalance {
            self.push(RebalanceEvent::Assigned(partitions_of(tpl)));
        }
    }
}

impl WorkerContext {
    pub(super) fn push(&self, event: RebalanceEvent) {
        if let Ok(mut events) = self.rebalances.lock() {
            events.push(event);
        }
    }

    pub(super) fn take(&self) -> Vec<RebalanceEvent> {
        self.rebalances
            .lock()
            .map(|mut events| std::mem::take(&mut *events))
            .unwrap_or_default()
    }
}
