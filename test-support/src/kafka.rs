//! The broker under test: clients for it, topics, records written and
//! offsets committed the way the tests need them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The broker under test: `SMM_TEST_BROKERS`, else the local default.
pub fn brokers() -> String {
    std::env::var("SMM_TEST_BROKERS").unwrap_or_else(|_| SUITE_BROKER.to_string())
}

/// The suite's own broker, which `scripts/test` starts: never the local
/// system's broker on 9092, whose workers are live members of the
/// catalog's groups and whose topics hold an operator's data.
pub const SUITE_BROKER: &str = "127.0.0.1:19092";

/// Panics with instructions when no broker answers, once per test binary,
/// instead of letting every test time out on its own.
pub fn require_broker() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let consumer: BaseConsumer = client_config()
            .create()
            .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "no Kafka broker answers at {} ({e}). Run the suite with `scripts/test`, \
                     which starts its own broker; start that broker by hand with \
                     `SMM_KAFKA_HOME=.local/kafka-test SMM_KAFKA_PORT=19092 scripts/kafka start`; \
                     or point SMM_TEST_BROKERS at one.",
                    brokers()
                )
            })
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Only the broker address: the settings a worker under test starts from,
/// with librdkafka's defaults for everything else.
pub fn bare_client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    config
}

/// The test's own clients: a broker that stops answering fails the call
/// after ten seconds rather than librdkafka's minute.
pub fn client_config() -> ClientConfig {
    let mut config = bare_client_config();
    config.set("socket.timeout.ms", "10000");
    config
}

pub fn admin() -> AdminClient<DefaultClientContext> {
    client_config().create().expect("admin client")
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)))
}

/// Creates the topics and waits until every partition has a leader.
pub async fn create_topics(names: &[&str], partitions: i32) {
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin()
        .create_topics(&topics, &admin_options())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no Kafka broker answers at {} ({e}); start one with `scripts/kafka start`",
                brokers()
            )
        });
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
    for name in names {
        wait_for_topic(name, Some(partitions));
    }
}

pub async fn create_topic(name: &str, partitions: i32) {
    create_topics(&[name], partitions).await;
}

/// Creates a catalog topic the test writes to, unless it exists, with the
/// catalog's partition count: another count would be drift that
/// `smmctl topics apply` rightly reports.
pub async fn ensure_topic(name: &str) {
    let partitions = smm_workers::contract::catalog::topic_named(name)
        .unwrap_or_else(|| panic!("{name} is not a catalog topic"))
        .partitions;
    let results = admin()
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &admin_options(),
        )
        .await
        .expect("create topic request");
    for r in results {
        if let Err((topic, code)) = r {
            assert_eq!(
                code,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "{topic}"
            );
        }
    }
}

pub async fn delete_topics(names: &[&str]) {
    if names.is_empty() {
        return;
    }
    let _ = admin()
        .delete_topics(names, &admin_options())
        .await
        .expect("delete_topics");
    for name in names {
        wait_for_topic(name, None);
    }
}

/// Partition counts of the cluster's topics, by name.
pub fn cluster_topics() -> std::collections::BTreeMap<String, usize> {
    let consumer: BaseConsumer = client_config().create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

/// Waits until the topic has `partitions` (with leaders), or is gone when
/// `None`: creates and deletes reach the brokers a moment after they return.
pub fn wait_for_topic(name: &str, partitions: Option<i32>) {
    let consumer: BaseConsumer = client_config().create().expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = consumer
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == name && t.error().is_none())
                    .filter(|t| t.partitions().iter().all(|p| p.leader() >= 0))
                    .map(|t| t.partitions().len() as i32)
            });
        if seen == partitions {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: expected {partitions:?} partitions, see {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn producer() -> FutureProducer {
    client_config()
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

/// Produces records and waits for every acknowledgement.
pub async fn produce(
    topic: &str,
    partition: Option<i32>,
    records: &[(&str, &[u8])],
    headers: &[(&str, &[u8])],
) {
    let producer = producer();
    for (key, value) in records {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = FutureRecord::to(topic).key(*key).payload(*value).headers(h);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// Produces one record, on the partition its key picks, and waits for the
/// acknowledgement.
pub async fn produce_one(topic: &str, key: &str, value: &[u8], headers: &[(&str, &[u8])]) {
    produce(topic, None, &[(key, value)], headers).await;
}

/// The log start and end of one partition.
pub fn watermarks(topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = client_config().create().expect("consumer");
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("watermarks of {topic}/{partition}: {e}"))
}

/// The offsets `group` has committed on `topic`, by partition.
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let answer = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match answer.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
        .collect()
}

/// Commits offsets for a group without joining it, as a consumer that
/// stopped would have left them: the group ends up Empty.
pub fn commit_offsets(group: &str, offsets: &[(&str, i32, i64)]) {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, partition, offset) in offsets {
        tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*offset))
            .expect("partition");
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}
