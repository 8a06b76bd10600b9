//! The runtime every worker shares: consume, hand each record to the
//! worker's handler, retry or dead-letter what fails, and store the offset
//! only once the outcome is durable.
//!
//! Records are handled one at a time per worker, in partition order. That
//! is what makes "store the offset after the work" mean what it says: when
//! offset N is stored, every record before it on that partition is done.
//! It also drains revoked partitions for free: rebalance callbacks run
//! inside `recv`, which is only called between records.
//!
//! Delivery is at least once. The store's dedup claim, in the same
//! transaction as the handler's effects, makes it effectively once; the
//! outbox carries follow-up events across a crash between the commit and
//! their send.

pub mod http;
pub mod metrics;
pub mod route;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::contract::events::{DecodeError, Envelope};
use crate::contract::headers::{self, Headers};
use crate::store::{Claim, Store, StoreError};
use metrics::{Metrics, Outcome};
pub use route::{FailureKind, Hop, Next, Route};

/// Marks a dead letter that waits for a person. The value says why.
pub const MANUAL_REVIEW_HEADER: &str = "x-smm-manual-review";

/// Why a handler could not apply a record. `class` is what the
/// `kafka_exception-fqcn` header carries, so operators can group dead
/// letters by it (`smmctl dlq inspect --group-by exception`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub class: String,
    pub message: String,
    pub cause: Option<String>,
    /// Set when a limit (an API quota) refused the work: the record waits
    /// in place this long and is tried again without spending an attempt,
    /// however long the limit lasts. Never dead-lettered for it.
    pub retry_after: Option<Duration>,
    /// The handler committed effects for this event before it failed it
    /// (a rejected order it cancelled, say): its outbox is sent before the
    /// record is routed, as for an applied one.
    pub committed: Option<Uuid>,
}

impl Failure {
    pub fn retryable(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Retryable,
            class: class.into(),
            message: message.into(),
            cause: None,
            retry_after: None,
            committed: None,
        }
    }

    pub fn throttled(
        class: impl Into<String>,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Failure {
        Failure {
            retry_after: Some(retry_after),
            ..Failure::retryable(class, message)
        }
    }

    pub fn poison(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Poison,
            ..Failure::retryable(class, message)
        }
    }

    pub fn manual_review(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::ManualReview,
            ..Failure::retryable(class, message)
        }
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Failure {
        self.cause = Some(cause.into());
        self
    }

    /// Marks the event's own effects as committed; see [`Failure::committed`].
    pub fn after_committing(mut self, event_id: Uuid) -> Failure {
        self.committed = Some(event_id);
        self
    }
}

impl From<DecodeError> for Failure {
    fn from(error: DecodeError) -> Failure {
        Failure::poison(format!("smmctl.decode.{}", error.kind()), error.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        let failure = if error.is_transient() {
            Failure::retryable("smmctl.store.Unavailable", error.to_string())
        } else {
            // A constraint or schema error will not fix itself, but it is
            // the store that is wrong, not necessarily the record: a person
            // must look before anything is retried.
            Failure::manual_review("smmctl.store.Rejected", error.to_string())
        };
        failure.with_cause("sqlx::Error")
    }
}

/// What a handler did with a record it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Applied now. The events it emitted are sent before the offset moves.
    Applied(Uuid),
    /// Applied before; any of its emitted events still unsent are sent now.
    Duplicate(Uuid),
    /// Not for this worker; acknowledged with the reason.
    Ignored(String),
}

/// One record as a handler sees it.
pub struct Delivery<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The record, for its headers: librdkafka parses a record's headers
    /// (and allocates for them) only when first asked, which a handler that
    /// never looks at them, and a log level that records no span, never do.
    message: &'a BorrowedMessage<'a>,
    /// Which delivery this is: 1 on the main topic, then one more per retry.
    pub attempt: u32,
    /// A `String`, not a borrow: a cell over a borrow would make the
    /// delivery invariant in its lifetime, which handlers cannot accept.
    correlation: std::sync::OnceLock<String>,
    pub worker: &'a str,
}

impl Delivery<'_> {
    /// A copy of the record's headers, in order.
    pub fn headers(&self) -> Headers {
        self.message.headers().map(copy_headers).unwrap_or_default()
    }

    /// The `x-correlation-id` header, else the envelope's correlation id,
    /// else empty (never made up).
    pub fn correlation_id(&self) -> &str {
        self.correlation
            .get_or_init(|| correlation_of(self.message.headers(), self.payload).into_owned())
    }

    /// The record's envelope; a record that is not one is poison.
    pub fn envelope(&self) -> Result<Envelope, Failure> {
        let payload = self.payload.ok_or_else(|| {
            Failure::poison(
                "smmctl.decode.empty_value",
                "the record has no value (a tombstone); the panel never sends one",
            )
        })?;
        Ok(Envelope::decode(payload)?)
    }

    /// The dedup claim for `event_id` by this worker.
    pub fn claim(&self, event_id: Uuid) -> Claim<'_> {
        Claim {
            consumer: self.worker,
            event_id,
            correlation_id: self.correlation_id(),
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
        }
    }
}

pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        delivery: &'a Delivery<'a>,
    ) -> impl Future<Output = Result<Handled, Failure>> + Send + 'a;
}

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
}

/// The partitioner of every producer the project creates. The panel's Java
/// services place a keyed record by the murmur2 hash of its key, as the Java
/// client does; librdkafka's default (`consistent_random`) hashes with
/// CRC32, which puts the same key on another partition, so a key's records
/// would split across partitions and lose their order. Keyless records go
/// to a random partition.
pub const PARTITIONER: &str = "murmur2_random";

/// `client` made into a producer's settings: keys are placed as the Java
/// client places them ([`PARTITIONER`]). A `partitioner` the operator set
/// (with -X or a profile) is left as it is: that is a deliberate choice.
pub fn producer_config(client: &ClientConfig) -> ClientConfig {
    let mut config = client.clone();
    if config.get("partitioner").is_none() {
        config.set("partitioner", PARTITIONER);
    }
    config
}

/// A producer for forwards and follow-up events: idempotent, acknowledged
/// by every in-sync replica, and quick to send because each send is awaited.
pub fn producer(client: &ClientConfig) -> Result<FutureProducer, KafkaError> {
    let mut config = producer_config(client);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "snappy")
        .set("message.timeout.ms", "30000");
    config.create()
}

/// Consumer callbacks: offsets committed before partitions are given up,
/// and librdkafka's statistics turned into lag and broker gauges.
struct WorkerContext {
    worker: String,
    metrics: Arc<Metrics>,
    rebalances: Mutex<Vec<RebalanceEvent>>,
}

#[derive(Debug)]
enum RebalanceEvent {
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
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.metrics.set_broker_up(&self.worker, up);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.metrics.set_broker_up(&self.worker, false);
        }
        tracing::warn!(worker = %self.worker, %error, reason, "Kafka client error");
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::info!(worker = %self.worker, facility, message, "librdkafka");
        } else {
            tracing::debug!(worker = %self.worker, facility, message, "librdkafka");
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
                    tracing::warn!(worker = %self.worker, error = %e, "commit on revoke failed; the next owner may repeat records, which dedup absorbs")
                }
            }
            self.push(RebalanceEvent::Revoked(partitions_of(tpl)));
            self.metrics.set_assigned(&self.worker, 0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.metrics.set_assigned(&self.worker, tpl.count());
            self.push(RebalanceEvent::Assigned(partitions_of(tpl)));
        }
    }
}

impl WorkerContext {
    fn push(&self, event: RebalanceEvent) {
        if let Ok(mut events) = self.rebalances.lock() {
            events.push(event);
        }
    }

    fn take(&self) -> Vec<RebalanceEvent> {
        self.rebalances
            .lock()
            .map(|mut events| std::mem::take(&mut *events))
            .unwrap_or_default()
    }
}

/// A partition held at `offset` until `due`, for a delayed retry.
#[derive(Debug, Clone, Copy)]
struct Hold {
    offset: i64,
    due: Instant,
}

type PartitionKey = (String, i32);

/// The per-worker loop state that outlives one record.
#[derive(Default)]
struct Holds {
    held: HashMap<PartitionKey, Hold>,
    /// After a hold ends, the partition must resume at exactly this offset.
    /// A record from further on means the seek did not take: seek again
    /// rather than skip the held record.
    resume_at: HashMap<PartitionKey, i64>,
    /// Failed deliveries of records retried in place, by partition and
    /// offset. Kept in memory: after a restart a record starts its ladder
    /// again, which can only add attempts, never skip one.
    in_place_attempts: HashMap<(String, i32, i64), u32>,
}

impl Holds {
    fn forget_partition(&mut self, key: &PartitionKey) {
        self.held.remove(key);
        self.resume_at.remove(key);
        self.in_place_attempts
            .retain(|(t, p, _), _| !(t == &key.0 && *p == key.1));
    }

    fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|h| h.due).min()
    }
}

const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

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
    let context = WorkerContext {
        worker: name.clone(),
        metrics: shared.metrics.clone(),
        rebalances: Mutex::new(Vec::new()),
    };
    let mut config = shared.client.clone();
    config
        .set("group.id", &group)
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
        config.set("session.timeout.ms", "10000");
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
                worker: name.clone(),
                what: "consumer",
                source,
            })?;
    let topics: Vec<&str> = routes.iter().flat_map(Route::consumed_topics).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| RuntimeError::Subscribe {
            worker: name.clone(),
            topics: topics.join(", "),
            source,
        })?;
    tracing::info!(worker = %name, %group, topics = %topics.join(","), "worker started");

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
                engine.release_due(&mut holds);
                continue;
            }
        };
        for event in consumer.context().take() {
            engine.apply_rebalance(event, &mut holds);
        }
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                // Fetch errors are reported, and librdkafka retries on its
                // own; a fatal one means the client is unusable.
                tracing::warn!(worker = %name, error = %e, "consume error");
                if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                    break;
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
                tracing::warn!(
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

    // Whatever was stored is done; commit it before leaving the group so
    // the next owner starts exactly after it.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(worker = %name, error = %e, "final commit failed; records after the last commit are delivered again, and dedup absorbs them")
        }
    }
    consumer.unsubscribe();
    shared.metrics.set_assigned(&name, 0);
    tracing::info!(worker = %name, "worker stopped");
    Ok(())
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

struct Engine<'w, H> {
    name: &'w str,
    in_flight: Arc<std::sync::atomic::AtomicI64>,
    routes: &'w [Route],
    handler: &'w H,
    shared: &'w Shared,
    consumer: &'w StreamConsumer<WorkerContext>,
}

/// The correlation id: the header if the producer set one, else the
/// envelope's, else none (an empty string, never made up).
fn correlation_of<'m>(
    headers: Option<&'m BorrowedHeaders>,
    payload: Option<&[u8]>,
) -> std::borrow::Cow<'m, str> {
    let from_header = headers.and_then(|h| {
        h.iter()
            .filter(|header| header.key == headers::CORRELATION_ID)
            .filter_map(|header| std::str::from_utf8(header.value?).ok())
            .last()
    });
    if let Some(id) = from_header {
        return std::borrow::Cow::Borrowed(id);
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        correlation_id: Option<String>,
    }
    payload
        .and_then(|p| serde_json::from_slice::<Peek>(p).ok())
        .and_then(|p| p.correlation_id)
        .unwrap_or_default()
        .into()
}

fn copy_headers(headers: &BorrowedHeaders) -> Headers {
    headers
        .iter()
        .map(|header| {
            (
                header.key.to_owned(),
                header.value.map(<[u8]>::to_vec).unwrap_or_default(),
            )
        })
        .collect()
}

fn owned_headers(headers: &Headers) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |acc, (k, v)| {
            acc.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            })
        },
    )
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl<H: Handler> Engine<'_, H> {
    fn route_of(&self, topic: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.main_topic == topic || r.is_retry_topic(topic))
    }

    fn apply_rebalance(&self, event: RebalanceEvent, holds: &mut Holds) {
        match event {
            RebalanceEvent::Revoked(partitions) => {
                for key in &partitions {
                    holds.forget_partition(key);
                }
                tracing::info!(
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
                    tracing::debug!(worker = self.name, error = %e, "resume after assignment");
                }
                tracing::info!(
                    worker = self.name,
                    partitions = partitions.len(),
                    "partitions assigned"
                );
            }
        }
    }

    /// Holds a partition at `offset` until `due`: pause, seek back, and
    /// let the loop resume it. The other partitions keep flowing.
    fn hold(&self, holds: &mut Holds, topic: &str, partition: i32, offset: i64, due: Instant) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(worker = self.name, topic, partition, error = %e, "pause failed");
        }
        if let Err(e) = self
            .consumer
            .seek(topic, partition, Offset::Offset(offset), SEEK_TIMEOUT)
        {
            tracing::warn!(worker = self.name, topic, partition, offset, error = %e, "seek failed; the resume check seeks again");
        }
        let key = (topic.to_owned(), partition);
        holds.held.insert(key.clone(), Hold { offset, due });
        holds.resume_at.insert(key, offset);
    }

    fn release_due(&self, holds: &mut Holds) {
        let now = Instant::now();
        let due: Vec<PartitionKey> = holds
            .held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(hold) = holds.held.remove(&key) else {
                continue;
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&key.0, key.1);
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::warn!(worker = self.name, topic = %key.0, partition = key.1, error = %e, "resume failed");
            }
            tracing::debug!(worker = self.name, topic = %key.0, partition = key.1, offset = hold.offset, "partition resumed");
        }
    }

    async fn process(&self, message: &BorrowedMessage<'_>, holds: &mut Holds) {
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
            tracing::error!(
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
            self.shared.metrics.record(
                self.name,
                route.main_topic.as_str(),
                outcome,
                started.elapsed(),
            );
        }
    }

    /// Runs the handler and makes its outcome durable. `None` when the
    /// record stays where it is (held for an in-place retry, or the worker
    /// is shutting down mid-forward).
    async fn settle(
        &self,
        message: &BorrowedMessage<'_>,
        delivery: &Delivery<'_>,
        route: &Route,
        holds: &mut Holds,
    ) -> Option<Outcome> {
        let result = self.handler.handle(delivery).await;
        let outcome = match result {
            Ok(Handled::Applied(event_id)) => {
                self.flush_outbox(Some(event_id)).await?;
                Outcome::Ok
            }
            Ok(Handled::Duplicate(event_id)) => {
                tracing::info!("already applied; acknowledged and skipped");
                self.flush_outbox(Some(event_id)).await?;
                Outcome::Duplicate
            }
            Ok(Handled::Ignored(reason)) => {
                tracing::info!(%reason, "ignored");
                Outcome::Ignored
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

    async fn fail(
        &self,
        delivery: &Delivery<'_>,
        route: &Route,
        failure: Failure,
        holds: &mut Holds,
    ) -> Option<Outcome> {
        if let Some(wait) = failure.retry_after {
            tracing::warn!(class = %failure.class, message = %failure.message, wait_s = wait.as_secs(), "throttled; holding the partition until the limit lifts");
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
                tracing::warn!(class = %failure.class, message = %failure.message, next_attempt = attempt, delay_ms = delay.as_millis() as u64, "failed; retrying in place");
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
                tracing::warn!(class = %failure.class, message = %failure.message, to = %topic, next_attempt = attempt, "failed; forwarded to retry topic");
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
                tracing::error!(class = %failure.class, message = %failure.message, to = %topic, manual_review, attempts = delivery.attempt, "dead-lettered");
                self.send(&topic, delivery.key, delivery.payload, &out)
                    .await?;
                self.shared
                    .metrics
                    .dead_lettered(self.name, route.main_topic.as_str(), &topic);
                Some(Outcome::DeadLettered)
            }
            Next::Drop => {
                tracing::error!(class = %failure.class, message = %failure.message, attempts = delivery.attempt, "failed for good; this topic has no dead letter, so the record is dropped");
                Some(Outcome::Dropped)
            }
        }
    }

    fn store_offset(&self, message: &BorrowedMessage<'_>) {
        // From the message itself: it carries its topic handle, where the
        // (topic, partition, offset) form looks the topic up on every call.
        if let Err(e) = self.consumer.store_offset_from_message(message) {
            // The partition was revoked under us; its next owner repeats
            // the record and dedup absorbs it.
            tracing::warn!(worker = self.name, topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %e, "cannot store offset");
        }
    }

    /// Sends one record and waits for the broker's acknowledgement, trying
    /// again until it comes or the worker shuts down (`None`).
    async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &Headers,
    ) -> Option<()> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(owned_headers(headers));
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            match self
                .shared
                .producer
                .send(record, Duration::from_secs(5))
                .await
            {
                Ok(_) => return Some(()),
                Err((e, _)) => {
                    tracing::warn!(worker = self.name, topic, error = %e, "send not acknowledged; trying again (the source offset stays put)");
                }
            }
            if *self.shared.shutdown.borrow() {
                return None;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Sends the follow-up events still in the outbox: those of `event_id`,
    /// or at start every unsent one this worker left behind.
    async fn flush_outbox(&self, event_id: Option<Uuid>) -> Option<()> {
        let Some(store) = self.shared.store.as_ref() else {
            return Some(());
        };
        let mut backoff = Duration::from_millis(200);
        let pending = loop {
            match store.unsent(self.name, event_id).await {
                Ok(rows) => break rows,
                Err(e) => {
                    tracing::warn!(worker = self.name, error = %e, "cannot read the outbox; trying again");
                    if *self.shared.shutdown.borrow() {
                        return None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        for row in pending {
            let headers = vec![(
                headers::CORRELATION_ID.to_owned(),
                row.correlation_id.clone().into_bytes(),
            )];
            self.send(
                &row.topic,
                row.key.as_deref().map(str::as_bytes),
                Some(row.payload.as_bytes()),
                &headers,
            )
            .await?;
            // A crash here sends the event again on the next delivery; its
            // event id lets the consumer drop the repeat.
            if let Err(e) = store.mark_sent(&row.id).await {
                tracing::warn!(worker = self.name, error = %e, "cannot mark an outbox row sent; it may be sent again");
            }
        }
        Some(())
    }
}

/// Stops the workers on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot listen for SIGTERM/SIGINT; stop the workers with SIGKILL");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: draining"),
                _ = int.recv() => tracing::info!("SIGINT: draining"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_place_keys_with_murmur2_unless_the_operator_chose_otherwise() {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:9092");
        assert_eq!(
            producer_config(&client).get("partitioner"),
            Some("murmur2_random")
        );
        client.set("partitioner", "consistent_random");
        assert_eq!(
            producer_config(&client).get("partitioner"),
            Some("consistent_random")
        );
    }
}
