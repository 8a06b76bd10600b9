//! The consumer loop: subscribe, take records one at a time, hand each to
//! the engine, and on shutdown drain, commit and leave the group.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;

use super::consumer_context::WorkerContext;
use super::engine::Engine;
use super::holds::Holds;
use super::metrics::Metrics;
use super::{Handler, LOG_TARGET, Route};
use crate::store::Store;

/// One worker: its name (also its dedup consumer name), its consumer group
/// and the routes it consumes.
pub struct Worker<H> {
    pub name: String,
    pub group: String,
    pub routes: Vec<Route>,
    pub handler: H,
}

/// What every worker in a process shares.
#[derive(Clone)]
pub struct Shared {
    pub client: ClientConfig,
    pub producer: FutureProducer,
    pub store: Option<Store>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    /// How long in-flight work may run on after a shutdown signal.
    pub drain_timeout: Duration,
    /// This process's stable name (`--instance`): with it every worker is
    /// a static member of its group, `{instance}-{worker}`.
    pub instance: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "cannot create the Kafka {what} for worker {worker}: {source} (check -X and the profile's [kafka] table)"
    )]
    Client {
        worker: String,
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("worker {worker} cannot subscribe to {topics}: {source}")]
    Subscribe {
        worker: String,
        topics: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "worker {worker} was fenced out of {group}: another process joined as static member {member}. \
         Give each process its own --instance"
    )]
    Fenced {
        worker: String,
        group: String,
        member: String,
    },
    #[error("worker {worker} stopped on a fatal Kafka error: {reason}")]
    Fatal { worker: String, reason: String },
}

/// Runs `worker` until the shutdown signal, then commits and leaves the
/// group. Returns early only when its Kafka clients cannot be created.
pub async fn run<H: Handler>(worker: Worker<H>, shared: Shared) -> Result<(), RuntimeError> {
    let Worker {
        name,
        group,
        routes,
        handler,
    } = worker;
    shared.metrics.register(&name);
    let consumer = subscribe(&name, &group, &routes, &shared)?;

    let engine = Engine {
        name: &name,
        in_flight: shared.metrics.in_flight(&name),
        routes: &routes,
        handler: &handler,
        shared: &shared,
        consumer: &consumer,
    };
    let mut holds = Holds::default();
    let mut shutdown = shared.shutdown.clone();
    engine.flush_outbox(None).await;

    loop {
        if *shutdown.borrow() {
            break;
        }
        // Checked here as well as in the select below: while records keep
        // arriving the select never gets to its timer branch.
        if holds.next_due().is_some_and(|due| due <= Instant::now()) {
            apply_rebalances(&engine, &consumer, &mut holds);
            engine.release_due(&mut holds);
        }
        let wake = holds.next_due();
        // Records first: when one is ready the other branches are never
        // polled, which keeps the per-record path free of waiter
        // registrations; the flag above still stops the loop promptly.
        let message = tokio::select! {
            biased;
            message = consumer.recv() => message,
            _ = shutdown.changed() => break,
            _ = sleep_until(wake) => {
                apply_rebalances(&engine, &consumer, &mut holds);
                engine.release_due(&mut holds);
                continue;
            }
        };
        apply_rebalances(&engine, &consumer, &mut holds);
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                // Fetch errors are reported, and librdkafka retries on its
                // own; a fatal one means the client is unusable.
                tracing::warn!(target: LOG_TARGET, worker = %name, error = %e, "consume error");
                if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                    // The client is unusable: nothing more is committed,
                    // and its partitions go to whoever holds the group.
                    consumer.unsubscribe();
                    shared.metrics.set_assigned(&name, 0);
                    return Err(fatal(&consumer, &name, &group, shared.instance.as_deref()));
                }
                continue;
            }
        };
        let mut drained = std::pin::pin!(engine.process(&message, &mut holds));
        // Most records settle without waiting on anything; only a record
        // that does wait needs the drain deadline raced against it.
        if poll_once(drained.as_mut()).await.is_ready() {
            continue;
        }
        let mut stop = shutdown.clone();
        let deadline = async {
            let _ = stop.wait_for(|down| *down).await;
            tokio::time::sleep(shared.drain_timeout).await;
        };
        tokio::select! {
            () = drained => {}
            () = deadline => {
                tracing::warn!(target: LOG_TARGET,
                    worker = %name,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    "drain timeout: leaving the record in flight uncommitted; it is delivered again on restart"
                );
                break;
            }
        }
    }

    commit_and_leave(&consumer, &name, &shared.metrics);
    Ok(())
}

/// The worker's consumer, configured and subscribed to its routes' topics.
#[expect(
    clippy::result_large_err,
    reason = "the same error `run` returns, once per worker at start"
)]
fn subscribe(
    name: &str,
    group: &str,
    routes: &[Route],
    shared: &Shared,
) -> Result<StreamConsumer<WorkerContext>, RuntimeError> {
    let context = WorkerContext {
        worker: name.to_owned(),
        metrics: shared.metrics.clone(),
        rebalances: Mutex::new(Vec::new()),
        assignment: Mutex::new(BTreeSet::new()),
    };
    let mut config = shared.client.clone();
    config
        .set("group.id", group)
        .set("client.id", format!("smmctl-{name}"))
        // Offsets are stored by hand after each record's outcome is
        // durable; librdkafka commits what is stored every second.
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        // A new group reads from the start: a payment sent before the
        // worker first ran must still be credited.
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "1000");
    // A worker that dies without leaving the group holds its partitions
    // until the session times out; 10 s instead of Kafka's 45 s bounds how
    // long a crashed worker's partitions wait. -X can still set it.
    if shared.client.get("session.timeout.ms").is_none() {
        config.set(
            "session.timeout.ms",
            session_timeout_ms(shared.instance.is_some()),
        );
    }
    if let Some(instance) = &shared.instance {
        config.set("group.instance.id", static_member(instance, name));
    }
    // Six of the panel's groups hold two workers reading different topics;
    // with an eager assignor, one worker's restart would stop its partner
    // too. Cooperative-sticky moves only the partitions that change hands.
    if shared.client.get("partition.assignment.strategy").is_none() {
        config.set("partition.assignment.strategy", "cooperative-sticky");
    }
    // librdkafka stops fetching for fetch.queue.backoff.ms (1 s by default)
    // whenever its local queue is full, which a worker catching up on a
    // backlog hits at once; it then drains the queue in a fraction of that
    // second and sits idle for the rest.
    if shared.client.get("fetch.queue.backoff.ms").is_none() {
        config.set("fetch.queue.backoff.ms", "10");
    }
    let consumer: StreamConsumer<WorkerContext> =
        config
            .create_with_context(context)
            .map_err(|source| RuntimeError::Client {
                worker: name.to_owned(),
                what: "consumer",
                source,
            })?;
    let topics: Vec<&str> = routes.iter().flat_map(Route::consumed_topics).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| RuntimeError::Subscribe {
            worker: name.to_owned(),
            topics: topics.join(", "),
            source,
        })?;
    tracing::info!(target: LOG_TARGET, worker = %name, %group, topics = %topics.join(","), "worker started");
    Ok(consumer)
}

/// How long the group waits for a member that stopped heartbeating.
///
/// A dynamic member that crashed holds its partitions until then, so it is
/// short. A static member that restarts takes its partitions straight back
/// without a rebalance, so its timeout only has to cover a restart: long
/// enough for a supervisor's restart delay and start-up, short enough that
/// a member that never returns is replaced within half a minute.
fn session_timeout_ms(static_member: bool) -> &'static str {
    if static_member { "30000" } else { "10000" }
}

/// The `group.instance.id` of `worker` in process `instance`: one process
/// runs two workers of some groups, and each must be its own member.
pub fn static_member(instance: &str, worker: &str) -> String {
    format!("{instance}-{worker}")
}

/// What stopped the consumer for good, in the operator's terms.
fn fatal(
    consumer: &StreamConsumer<WorkerContext>,
    name: &str,
    group: &str,
    instance: Option<&str>,
) -> RuntimeError {
    let cause = consumer.client().fatal_error();
    match (cause, instance) {
        (Some((RDKafkaErrorCode::FencedInstanceId, _)), Some(instance)) => RuntimeError::Fenced {
            worker: name.to_owned(),
            group: group.to_owned(),
            member: static_member(instance, name),
        },
        (Some((code, reason)), _) => RuntimeError::Fatal {
            worker: name.to_owned(),
            reason: format!("{reason} ({code:?})"),
        },
        (None, _) => RuntimeError::Fatal {
            worker: name.to_owned(),
            reason: "the consumer reported a fatal error".into(),
        },
    }
}

/// Commits what was stored and leaves the group.
fn commit_and_leave(consumer: &StreamConsumer<WorkerContext>, name: &str, metrics: &Metrics) {
    // Whatever was stored is done; commit it before leaving the group so
    // the next owner starts exactly after it.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, worker = %name, error = %e, "final commit failed; records after the last commit are delivered again, and dedup absorbs them")
        }
    }
    consumer.unsubscribe();
    metrics.set_assigned(name, 0);
    tracing::info!(target: LOG_TARGET, worker = %name, "worker stopped");
}

/// Applies the rebalances the consumer's callbacks queued. Before a hold
/// is released as well as before a record: resuming a partition that a
/// rebalance has already taken away would make librdkafka track it again.
fn apply_rebalances<H: Handler>(
    engine: &Engine<'_, H>,
    consumer: &StreamConsumer<WorkerContext>,
    holds: &mut Holds,
) {
    for event in consumer.context().take() {
        engine.apply_rebalance(event, holds);
    }
}

/// Polls a future once, without waiting.
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
