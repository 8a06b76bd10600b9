//! Kafka clients built from the effective settings, and the cluster reads
//! and writes the commands share.
//!
//! librdkafka's metadata and offset calls block, so they run under
//! `block_in_place`; the admin calls are already futures.

pub mod group_position;
pub mod group_survey;
pub mod groups;
pub mod live_groups;
pub mod probe;
pub mod reach;
pub mod reader;
pub mod spans;
pub mod transaction;
pub mod walk;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::Message;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{DEFAULT_BROKERS, Settings};
use crate::exit::{ConnectionError, UsageError};

/// librdkafka settings for any client smmctl makes.
pub fn client_config(settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new();
    let timeout_ms = settings.timeout.value.as_millis().to_string();
    config
        .set("bootstrap.servers", &settings.brokers.value)
        .set("client.id", &settings.client_id.value)
        .set("socket.timeout.ms", &timeout_ms)
        // Fail fast rather than retry the bootstrap servers forever in the
        // background of a command that has already given up.
        .set("reconnect.backoff.max.ms", "1000");
    for (key, value) in &settings.kafka {
        config.set(key, &value.value);
    }
    config
}

/// Settings of the consumer that reads record timestamps: one record per
/// partition is all it needs, and an offset deleted in the meantime must
/// not silently jump to the log end and time a brand-new record.
const TIMESTAMP_READS: &[(&str, &str)] = &[
    ("max.partition.fetch.bytes", "65536"),
    ("auto.offset.reset", "error"),
];

/// A consumer that reads assigned partitions and never subscribes, commits
/// or joins a group. librdkafka wants a group id for `assign`; nothing is
/// ever written under it, so the group never exists on the cluster. It
/// counts what the log holds, committed or not, as Kafka's own tools do.
fn reader_config(base: &ClientConfig, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = base.clone();
    config
        .set("group.id", "_smmctl.reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.wait.max.ms", "50");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
}

/// librdkafka refuses a client when a property is unknown or has a bad
/// value; that is the operator's -X or profile, so it is a usage error.
fn invalid_property(error: KafkaError, what: &str) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(format!(
        "cannot create the Kafka {what}: {error} (check the -X properties and the profile's [kafka] table)"
    )))
}

/// Keeps the last error librdkafka reported on its own, such as a failed
/// SASL handshake or a refused certificate. A request that then times out
/// can say why, instead of only that it timed out.
#[derive(Default)]
pub struct Recorder {
    last_error: std::sync::Mutex<Option<String>>,
}

impl Recorder {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Recorder {
    fn record(&self, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_string());
        }
    }
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka error");
        self.record(reason);
    }

    /// librdkafka reports a failed connection attempt (refused password,
    /// unverifiable certificate, wrong protocol) as a log line, not an
    /// error. The command turns it into its own message, so it is kept
    /// here and printed only with -v.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::info!(facility, message, "librdkafka");
            // "sasl_ssl://host:port/bootstrap: SASL authentication error: …"
            let reason = message
                .split_once("/bootstrap: ")
                .map_or(message, |(_, r)| r);
            self.record(reason);
        } else {
            tracing::debug!(facility, message, "librdkafka");
        }
    }
}

impl ConsumerContext for Recorder {}

/// One client per broker, each bootstrapped from that broker alone, so its
/// metadata requests go there: librdkafka connects to the other brokers
/// only when a request needs them. Right after a topic is created, a broker
/// the controller has not caught up yet still says it does not exist, and
/// this is how a command waits for all of them.
pub struct PerBroker {
    clients: Vec<(BrokerInfo, BaseConsumer<Recorder>)>,
}

impl PerBroker {
    /// Every broker asked at once, so a broker that is down costs `within`
    /// once, not once per broker.
    pub fn metadata(&self, within: Duration) -> Vec<(i32, anyhow::Result<ClusterMetadata>)> {
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let asked: Vec<_> = self
                    .clients
                    .iter()
                    .map(|(b, client)| {
                        let read = scope.spawn(move || {
                            client
                                .fetch_metadata(None, within)
                                .map(|raw| cluster_metadata(&raw))
                                .map_err(|e| {
                                    anyhow::anyhow!(
                                        "broker {} ({}) did not answer: {e}",
                                        b.id,
                                        b.address()
                                    )
                                })
                        });
                        (b.id, read)
                    })
                    .collect();
                asked
                    .into_iter()
                    .map(|(id, read)| {
                        let read = read.join().unwrap_or_else(|_| {
                            Err(anyhow::anyhow!("the metadata request panicked"))
                        });
                        (id, read)
                    })
                    .collect()
            })
        })
    }
}

/// One partition's retained range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// The log start offset: the first offset still retained.
    pub low: i64,
    /// The high watermark: the offset the next record will get.
    pub high: i64,
}

impl Watermarks {
    /// Records retained. Transaction markers and compaction make this an
    /// upper bound, as it is in every tool that counts from watermarks.
    pub fn retained(&self) -> i64 {
        (self.high - self.low).max(0)
    }

    /// Records after a group's position: for a dead-letter topic and the
    /// processing group, the dead letters still waiting. A group with no
    /// commit, or one behind the log start, waits on everything retained.
    pub fn waiting_after(&self, committed: Option<i64>) -> i64 {
        let position = committed.unwrap_or(self.low).max(self.low);
        (self.high - position).max(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub partitions: Vec<i32>,
    /// Partitions without a leader right now; they cannot be read or written.
    pub leaderless: Vec<i32>,
    /// A per-topic error from the broker, in words.
    pub error: Option<String>,
    /// Where each partition's replicas live, in partition order.
    pub layout: Vec<PartitionLayout>,
}

/// One partition's leader and replicas, as the cluster metadata states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    pub partition: i32,
    /// `None` while the partition has no leader.
    pub leader: Option<i32>,
    /// The replica set; its first broker is the preferred leader.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

impl PartitionLayout {
    pub fn preferred_leader(&self) -> Option<i32> {
        self.replicas.first().copied()
    }

    /// Fewer in-sync replicas than replicas: a broker fell behind or is down.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

impl BrokerInfo {
    /// `host:port`, with an IPv6 host in brackets so it parses back.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub brokers: Vec<BrokerInfo>,
    pub topics: BTreeMap<String, TopicMetadata>,
}

/// What happened to one topic or group of a create or delete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    Done,
    /// Creation found the topic already there (someone else made it).
    AlreadyExists,
    Failed(String),
}

pub struct Kafka {
    brokers: String,
    timeout: Duration,
    config: ClientConfig,
    admin: AdminClient<Recorder>,
    /// A consumer that never joins a group: it only asks for offsets.
    offsets: BaseConsumer<Recorder>,
    /// The bootstrap list answered a metadata request: a later timeout is
    /// one broker's, not the cluster's, and the error must say so.
    answered: std::sync::atomic::AtomicBool,
    /// The last metadata read, whose leaders split offset requests.
    last_metadata: std::sync::Mutex<Option<ClusterMetadata>>,
}

impl Kafka {
    /// The clients for one command, kept for the rest of the process.
    ///
    /// They are never torn down: librdkafka's orderly destroy waits for its
    /// broker threads, which costs a command more time than all its round
    /// trips together, and the process is about to exit anyway. Whatever
    /// produces must therefore wait for its deliveries itself.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<&'static Kafka> {
        Ok(Box::leak(Box::new(Kafka::new(settings)?)))
    }

    /// Builds the clients. Nothing touches the network until the first call.
    pub fn new(settings: &Settings) -> anyhow::Result<Kafka> {
        let config = client_config(settings);
        let admin = config
            .create_with_context(Recorder::default())
            .map_err(|e| invalid_property(e, "admin client"))?;
        // One consumer serves offset lookups and timestamp reads, so a
        // command connects twice at most, not once per purpose.
        let offsets = reader_config(&config, TIMESTAMP_READS)
            .create_with_context(Recorder::default())
            .map_err(|e| invalid_property(e, "consumer"))?;
        Ok(Kafka {
            brokers: settings.brokers.value.clone(),
            timeout: settings.timeout.value,
            config,
            admin,
            offsets,
            answered: std::sync::atomic::AtomicBool::new(false),
            last_metadata: std::sync::Mutex::new(None),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The admin client, for the group operations in [`groups`].
    pub fn admin(&self) -> &AdminClient<Recorder> {
        &self.admin
    }

    /// The client to read committed offsets with ([`groups::OffsetsClient`]
    /// says why it is a consumer, not the admin client).
    pub fn offsets_client(&self) -> &BaseConsumer<Recorder> {
        &self.offsets
    }

    /// The settings every client is built from, for commands that need a
    /// producer or consumer of their own.
    pub fn client_config(&self) -> ClientConfig {
        self.config.clone()
    }

    /// The settings for a producer of its own: [`Kafka::client_config`]
    /// with keys placed as the panel's Java services place them.
    pub fn producer_config(&self) -> ClientConfig {
        smm_workers::runtime::producer_config(&self.config)
    }

    /// A consumer of its own for reading assigned partitions (see
    /// [`reader_config`]).
    pub fn reader(&self, extra: &[(&str, &str)]) -> anyhow::Result<BaseConsumer<Recorder>> {
        reader_config(&self.config, extra)
            .create_with_context(Recorder::default())
            .context("cannot create a Kafka consumer")
    }

    /// For each (topic, partition, offset), the timestamp (ms since the
    /// epoch) of the first record at or after that offset: the record a
    /// group committed there reads next. One consumer that joins no group
    /// reads every partition at once; where several offsets of one partition
    /// are wanted it seeks from one to the next rather than reading the
    /// records in between. An offset with no record after it (only
    /// transaction markers left, or no answer in time) is left out.
    pub fn record_timestamps(
        &self,
        positions: &[(String, i32, i64)],
    ) -> anyhow::Result<HashMap<(String, i32, i64), i64>> {
        let mut found = HashMap::new();
        let mut pending: BTreeMap<(String, i32), BTreeSet<i64>> = BTreeMap::new();
        for (topic, partition, offset) in positions {
            pending
                .entry((topic.clone(), *partition))
                .or_default()
                .insert(*offset);
        }
        if pending.is_empty() {
            return Ok(found);
        }
        let consumer = &self.offsets;
        let mut assignment = TopicPartitionList::with_capacity(pending.len());
        for ((topic, partition), offsets) in &pending {
            if let Some(&first) = offsets.first() {
                assignment
                    .add_partition_offset(topic, *partition, Offset::Offset(first))
                    .with_context(|| format!("invalid offset {first} for {topic}/{partition}"))?;
            }
        }
        consumer
            .assign(&assignment)
            .context("cannot assign partitions to read record timestamps")?;
        // A partition whose remaining records are all transaction markers
        // yields nothing, so waiting for every answer could take the whole
        // timeout. Fetch responses carry every partition a broker leads:
        // once records have started to arrive, a quiet second means nothing
        // more is coming.
        let started = Instant::now();
        let deadline = Instant::now() + self.timeout;
        let first_answer_deadline = Instant::now() + self.timeout.min(Duration::from_secs(5));
        let quiet_for = Duration::from_secs(1);
        let mut last_progress: Option<Instant> = None;
        tokio::task::block_in_place(|| {
            while !pending.is_empty() && Instant::now() < deadline {
                match last_progress {
                    Some(at) if at.elapsed() >= quiet_for => break,
                    None if Instant::now() >= first_answer_deadline => break,
                    _ => {}
                }
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let key = (message.topic().to_string(), message.partition());
                let Some(offsets) = pending.get_mut(&key) else {
                    continue;
                };
                let at = message.offset();
                // A record fetched before the last seek: not an answer.
                if offsets.first().is_none_or(|&wanted| at < wanted) {
                    continue;
                }
                let Some(ms) = message.timestamp().to_millis() else {
                    continue;
                };
                last_progress = Some(Instant::now());
                // Everything wanted up to here reads this record next.
                while let Some(&wanted) = offsets.first().filter(|&&w| w <= at) {
                    found.insert((key.0.clone(), key.1, wanted), ms);
                    offsets.remove(&wanted);
                }
                match offsets.first() {
                    Some(&next) => {
                        let _ = consumer.seek(
                            &key.0,
                            key.1,
                            Offset::Offset(next),
                            Duration::from_secs(1),
                        );
                    }
                    None => {
                        pending.remove(&key);
                        let mut done = TopicPartitionList::new();
                        done.add_partition(&key.0, key.1);
                        let _ = consumer.pause(&done);
                    }
                }
            }
            let _ = consumer.unassign();
            tracing::debug!(elapsed = ?started.elapsed(), left = pending.len(), "time lag records read");
        });
        Ok(found)
    }

    /// The brokers and every topic. Also the connection check: every
    /// command that reads the cluster starts here, so an unreachable
    /// cluster gives one clear message and exit code 2.
    pub fn metadata(&self) -> anyhow::Result<ClusterMetadata> {
        // Asked through the consumer, whose queue can be polled afterwards
        // for the reason librdkafka gives (a refused password, an unknown
        // CA), which the failed request itself does not carry.
        let raw = tokio::task::block_in_place(|| {
            self.offsets
                .fetch_metadata(None, self.timeout)
                .inspect_err(|_| {
                    for _ in 0..10 {
                        if self.offsets.poll(Duration::ZERO).is_none() {
                            break;
                        }
                    }
                })
        })
        .map_err(|e| self.unreachable(e))?;
        self.answered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let metadata = cluster_metadata(&raw);
        if let Ok(mut last) = self.last_metadata.lock() {
            *last = Some(metadata.clone());
        }
        Ok(metadata)
    }

    /// A client per broker, for reading the metadata as each of `brokers`
    /// sees it (see [`PerBroker`]).
    pub fn per_broker(&self, brokers: &[BrokerInfo]) -> anyhow::Result<PerBroker> {
        let clients = brokers
            .iter()
            .map(|b| {
                let mut config = self.config.clone();
                config.set("bootstrap.servers", b.address());
                // No group.id: a consumer with one also talks to its group
                // coordinator, and the point is to ask this broker alone.
                let client = config
                    .create_with_context::<_, BaseConsumer<Recorder>>(Recorder::default())
                    .context("cannot create a Kafka consumer")?;
                Ok((b.clone(), client))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(PerBroker { clients })
    }

    /// Low and high watermarks of many partitions, in two batched
    /// ListOffsets requests per leader rather than two
    /// round trips per partition.
    pub fn watermarks(
        &self,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<HashMap<(String, i32), Watermarks>> {
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        // One end after the other, not both at once: with twice the
        // requests in flight while a leader dies, librdkafka's leader
        // lookup aborted the process (an enq_once refcount assertion) in
        // the cluster suite.
        let [earliest] = self.list_offsets_at([Offset::Beginning], partitions)?;
        let [latest] = self.list_offsets_at([Offset::End], partitions)?;
        let mut out = HashMap::with_capacity(partitions.len());
        for key in partitions {
            if let (Some(Offset::Offset(low)), Some(Offset::Offset(high))) =
                (earliest.get(key), latest.get(key))
            {
                out.insert(
                    key.clone(),
                    Watermarks {
                        low: *low,
                        high: *high,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The offset of the first record at or after `at` in each partition,
    /// or `None` where every record is older (the caller decides what that
    /// means). Batched like [`Kafka::watermarks`]. A partition the broker
    /// did not answer for is an error, never "no record": read as that, it
    /// would move a group to the log end or delete a whole partition.
    pub fn offsets_at(
        &self,
        partitions: &[(String, i32)],
        at: jiff::Timestamp,
    ) -> anyhow::Result<HashMap<(String, i32), Option<i64>>> {
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        let [found] = self.list_offsets_at([Offset::Offset(at.as_millisecond())], partitions)?;
        let mut out = HashMap::with_capacity(partitions.len());
        let mut unanswered = Vec::new();
        for key in partitions {
            match found.get(key) {
                Some(Offset::Offset(o)) => {
                    out.insert(key.clone(), Some(*o));
                }
                Some(Offset::End) => {
                    out.insert(key.clone(), None);
                }
                _ => unanswered.push(format!("{}/{}", key.0, key.1)),
            }
        }
        if !unanswered.is_empty() {
            anyhow::bail!(
                "the broker gave no offset by time for {} (leader unavailable?); nothing was changed, try again",
                unanswered.join(", ")
            );
        }
        Ok(out)
    }

    /// `offsets_for_times` sends the "timestamps" it is given as they are,
    /// and ListOffsets reads -2 as earliest and -1 as latest, which is what
    /// `Offset::Beginning` and `Offset::End` encode to. One answer per
    /// entry of `whiches`, every request sent at once.
    fn list_offsets_at<const N: usize>(
        &self,
        whiches: [Offset; N],
        partitions: &[(String, i32)],
    ) -> anyhow::Result<[HashMap<(String, i32), Offset>; N]> {
        // One request per leader and kind, side by side: librdkafka answers
        // a request only once every partition in it has an answer, so a
        // leader that is down would otherwise cost every partition its
        // offsets, not only its own.
        let groups: Vec<Vec<(String, i32)>> = self.by_leader(partitions).into_values().collect();
        let asks: Vec<(usize, &Vec<(String, i32)>)> = (0..N)
            .flat_map(|kind| groups.iter().map(move |group| (kind, group)))
            .collect();
        let answers: Vec<anyhow::Result<TopicPartitionList>> = tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let asked: Vec<_> = asks
                    .iter()
                    .map(|&(kind, group)| {
                        scope.spawn(move || self.list_offsets_of(group, whiches[kind]))
                    })
                    .collect();
                asked
                    .into_iter()
                    .map(|handle| {
                        handle.join().unwrap_or_else(|_| {
                            Err(anyhow::anyhow!("the offsets request panicked"))
                        })
                    })
                    .collect()
            })
        });
        let mut found: [HashMap<(String, i32), Offset>; N] =
            std::array::from_fn(|_| HashMap::new());
        let mut failures: [Vec<(usize, anyhow::Error)>; N] = std::array::from_fn(|_| Vec::new());
        for ((kind, group), answer) in asks.iter().zip(answers) {
            match answer {
                Ok(response) => {
                    for element in response.elements() {
                        if element.error().is_ok() {
                            found[*kind].insert(
                                (element.topic().to_string(), element.partition()),
                                element.offset(),
                            );
                        }
                    }
                }
                Err(e) => failures[*kind].push((group.len(), e)),
            }
        }
        for (out, failed) in found.iter().zip(failures.iter_mut()) {
            // Nothing answered: the error is the answer. Some leaders
            // answered: their partitions are known, the others are left
            // out for the command to show as unknown.
            if out.is_empty() && !failed.is_empty() {
                let (_, e) = failed.swap_remove(0);
                return Err(e.context("unable to list partition offsets"));
            }
            for (partitions, e) in failed.iter() {
                tracing::warn!(partitions, error = %format!("{e:#}"), "a leader gave no offsets");
            }
        }
        Ok(found)
    }

    /// One ListOffsets round for partitions that share a leader, retried
    /// while leadership settles.
    fn list_offsets_of(
        &self,
        partitions: &[(String, i32)],
        which: Offset,
    ) -> anyhow::Result<TopicPartitionList> {
        let mut request = TopicPartitionList::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            request
                .add_partition_offset(topic, *partition, which)
                .with_context(|| format!("invalid partition {topic}/{partition}"))?;
        }
        self.retrying_leader_moves(|left| self.offsets.offsets_for_times(request.clone(), left))
    }

    /// Partitions grouped by their leader in the last metadata read; all in
    /// one group when none was read (the request then goes as one).
    fn by_leader(&self, partitions: &[(String, i32)]) -> BTreeMap<Option<i32>, Vec<(String, i32)>> {
        let known = self.last_metadata.lock().ok().and_then(|m| m.clone());
        let mut groups: BTreeMap<Option<i32>, Vec<(String, i32)>> = BTreeMap::new();
        for key in partitions {
            let leader = known.as_ref().and_then(|m| {
                m.topics
                    .get(&key.0)?
                    .layout
                    .iter()
                    .find(|p| p.partition == key.1)?
                    .leader
            });
            groups.entry(leader).or_default().push(key.clone());
        }
        groups
    }

    /// Retries a blocking call while partition leadership is settling, as
    /// it does for a moment after topics are created or a broker restarts.
    /// Each try gets what is left of the command's timeout, so the retries
    /// together never take longer than one call could.
    fn retrying_leader_moves<T>(
        &self,
        call: impl Fn(Duration) -> KafkaResult<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match call(left.max(Duration::from_millis(100))) {
                Ok(value) => return Ok(value),
                Err(e) if is_leadership_settling(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(self.unreachable(e)),
            }
        }
    }

    /// Creates topics in one request; the result names every topic.
    pub async fn create_topics(
        &self,
        topics: &[(String, i32, i32)],
        configs: &[(&str, String)],
    ) -> anyhow::Result<Vec<(String, AdminOutcome)>> {
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|(name, partitions, replication)| {
                configs.iter().fold(
                    NewTopic::new(name, *partitions, TopicReplication::Fixed(*replication)),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        let results = self
            .admin
            .create_topics(&new_topics, &self.admin_options())
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(outcomes(results))
    }

    pub async fn delete_topics(
        &self,
        names: &[&str],
    ) -> anyhow::Result<Vec<(String, AdminOutcome)>> {
        let results = self
            .admin
            .delete_topics(names, &self.admin_options())
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(outcomes(results))
    }

    pub async fn delete_groups(
        &self,
        names: &[&str],
    ) -> anyhow::Result<Vec<(String, AdminOutcome)>> {
        let results = self
            .admin
            .delete_groups(names, &self.admin_options())
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(outcomes(results))
    }

    /// The current configuration of topics, by topic and key, in one
    /// DescribeConfigs request. A topic the broker could not describe is
    /// left out.
    pub async fn topic_configs(
        &self,
        topics: &[&str],
    ) -> anyhow::Result<HashMap<String, HashMap<String, String>>> {
        if topics.is_empty() {
            return Ok(HashMap::new());
        }
        // A topic named twice makes librdkafka refuse the whole request
        // (BadMessage), so each is asked once.
        let unique: BTreeSet<&str> = topics.iter().copied().collect();
        let specifiers: Vec<ResourceSpecifier> =
            unique.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let results = self
            .admin
            .describe_configs(&specifiers, &self.admin_options())
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(results
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|resource| match &resource.specifier {
                OwnedResourceSpecifier::Topic(name) => Some((
                    name.clone(),
                    resource
                        .entries
                        .iter()
                        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                        .collect(),
                )),
                _ => None,
            })
            .collect())
    }

    /// Deletes every record before each given offset. Returns, per
    /// partition, the new log start or the broker's reason in words.
    pub async fn delete_records(
        &self,
        targets: &[(String, i32, i64)],
    ) -> anyhow::Result<HashMap<(String, i32), Result<i64, String>>> {
        let mut request = TopicPartitionList::with_capacity(targets.len());
        for (topic, partition, before) in targets {
            request
                .add_partition_offset(topic, *partition, Offset::Offset(*before))
                .with_context(|| format!("invalid offset {before} for {topic}/{partition}"))?;
        }
        let response = self
            .admin
            .delete_records(&request, &self.admin_options())
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(response
            .elements()
            .iter()
            .map(|e| {
                let key = (e.topic().to_string(), e.partition());
                let outcome = match (e.error(), e.offset()) {
                    (Err(err), _) => Err(err
                        .rdkafka_error_code()
                        .map(describe_code)
                        .unwrap_or_else(|| err.to_string())),
                    (Ok(()), Offset::Offset(low)) => Ok(low),
                    (Ok(()), other) => Err(format!("unexpected answer {other:?}")),
                };
                (key, outcome)
            })
            .collect())
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    /// Turns a transport-level failure into the one message an operator
    /// needs; other errors pass through with their own words.
    fn unreachable(&self, error: KafkaError) -> anyhow::Error {
        let code = error.rdkafka_error_code();
        let transport = matches!(
            code,
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::SSL
            )
        );
        if !transport {
            return match code {
                Some(code) => anyhow::anyhow!("{}", describe_code(code)),
                None => anyhow::Error::new(error),
            };
        }
        let said = self
            .admin
            .inner()
            .context()
            .last_error()
            .or_else(|| self.offsets.context().last_error());
        // Exit 1, not 2: the cluster is there, part of it is not.
        if self.answered.load(std::sync::atomic::Ordering::Relaxed) {
            return anyhow::anyhow!(
                "the brokers at {} answered, but a partition leader or group coordinator did not within {}: {}{}; a broker may be down (`smmctl health` names it)",
                self.brokers,
                humanize(self.timeout),
                code.map(describe_code).unwrap_or_else(|| error.to_string()),
                said.map(|s| format!(" (last: {s})")).unwrap_or_default(),
            );
        }
        let hint = match said.as_deref() {
            Some(s) if s.contains("uthentication") || s.contains("SASL") => {
                "; check sasl.mechanism, sasl.username and sasl.password"
            }
            // The broker's alert: it wants a client certificate it trusts.
            Some(s)
                if s.contains("alert bad certificate") || s.contains("certificate required") =>
            {
                "; the broker refused the client's certificate: check ssl.certificate.location and ssl.key.location (a certificate signed by a CA the broker trusts)"
            }
            Some(s) if s.contains("SSL") || s.contains("certificate") => {
                "; check ssl.ca.location and that the brokers' certificate names this host"
            }
            Some(s) if s.contains("security.protocol") => "; check security.protocol",
            _ if self.brokers == DEFAULT_BROKERS => {
                "; is the local broker running? (`scripts/kafka start`)"
            }
            _ => "; check --brokers, SMM_BROKERS or the profile, and the -X security settings",
        };
        anyhow::Error::new(ConnectionError::new(format!(
            "cannot reach the Kafka brokers at {} within {}: {}{}{hint}",
            self.brokers,
            humanize(self.timeout),
            code.map(describe_code).unwrap_or_else(|| error.to_string()),
            said.map(|s| format!(" ({s})")).unwrap_or_default(),
        )))
    }
}

/// The brokers, topics and partition layouts of a metadata answer.
fn cluster_metadata(raw: &rdkafka::metadata::Metadata) -> ClusterMetadata {
    let brokers = raw
        .brokers()
        .iter()
        .map(|b| BrokerInfo {
            id: b.id(),
            host: b.host().to_string(),
            port: b.port(),
        })
        .collect();
    let topics = raw
        .topics()
        .iter()
        .map(|t| {
            let mut partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            partitions.sort_unstable();
            let leaderless = t
                .partitions()
                .iter()
                .filter(|p| p.leader() < 0 || p.error().is_some())
                .map(|p| p.id())
                .collect();
            let error = t
                .error()
                .map(|code| describe_code(RDKafkaErrorCode::from(code)));
            let mut layout: Vec<PartitionLayout> = t
                .partitions()
                .iter()
                .map(|p| PartitionLayout {
                    partition: p.id(),
                    leader: (p.leader() >= 0).then_some(p.leader()),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect();
            layout.sort_unstable_by_key(|p| p.partition);
            (
                t.name().to_string(),
                TopicMetadata {
                    name: t.name().to_string(),
                    partitions,
                    leaderless,
                    error,
                    layout,
                },
            )
        })
        .collect();
    ClusterMetadata { brokers, topics }
}

fn is_leadership_settling(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownLeaderEpoch
                | RDKafkaErrorCode::FencedLeaderEpoch
                // A broker the controller fenced is dropped from librdkafka's
                // list while a request to it is outstanding; the partitions
                // have a new leader by the next metadata refresh.
                | RDKafkaErrorCode::DestroyBroker
                | RDKafkaErrorCode::BrokerDestroy
                | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

/// Per-name results of an admin request, in words.
fn outcomes(
    results: Vec<Result<String, (String, RDKafkaErrorCode)>>,
) -> Vec<(String, AdminOutcome)> {
    results
        .into_iter()
        .map(|result| match result {
            Ok(name) => (name, AdminOutcome::Done),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                (name, AdminOutcome::AlreadyExists)
            }
            Err((name, code)) => (name, AdminOutcome::Failed(describe_code(code))),
        })
        .collect()
}

/// Broker and client error codes in words an operator can act on.
pub fn describe_code(code: RDKafkaErrorCode) -> String {
    use RDKafkaErrorCode as C;
    let words = match code {
        C::UnknownTopicOrPartition => "the topic or partition does not exist",
        C::TopicAlreadyExists => "the topic already exists",
        C::TopicAuthorizationFailed => {
            "not authorised for this topic (check the ACLs of the client's principal)"
        }
        C::GroupAuthorizationFailed => "not authorised for this consumer group",
        C::ClusterAuthorizationFailed => "not authorised for cluster operations",
        C::InvalidReplicationFactor => {
            "the replication factor is larger than the number of brokers (pass --replication-factor)"
        }
        C::InvalidPartitions => "invalid partition count",
        C::InvalidConfig => "the broker rejected a topic setting",
        C::PolicyViolation => {
            "the broker's policy rejected the request (deleting records from a compacted topic, or a create-topic policy)"
        }
        C::TopicDeletionDisabled => {
            "topic deletion is disabled on the brokers (delete.topic.enable=false)"
        }
        C::NotController => "the controller moved during the request; try again",
        C::NotLeaderForPartition | C::LeaderNotAvailable => {
            "the partition has no leader right now (a broker is restarting or the topic is new); try again"
        }
        C::AllBrokersDown => "no broker answered",
        C::BrokerTransportFailure => "the connection to the broker failed",
        C::OperationTimedOut | C::RequestTimedOut => "timed out",
        C::Resolve => "the broker host name does not resolve",
        C::Authentication | C::SaslAuthenticationFailed => {
            "authentication failed (check the SASL user and password)"
        }
        C::SSL => "the TLS handshake failed (check the CA and certificates)",
        C::NonEmptyGroup => "the group still has members",
        C::GroupIdNotFound => "the group does not exist",
        C::UnknownMemberId => "the group has live members (stop them first)",
        _ => return format!("{code}"),
    };
    words.to_string()
}

pub fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
