//! Test support: a fresh database of each backend per test.
#![allow(dead_code)]

use smm_workers::store::Store;

pub use smm_testbed::scratch::fresh_postgres;

/// A new SQLite file in a directory that lives as long as the returned guard.
pub fn fresh_sqlite() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    (url, dir)
}

/// One store of each backend: the same test runs against both.
pub async fn both_stores(label: &str) -> Vec<(String, Store, Option<tempfile::TempDir>)> {
    let (sqlite_url, dir) = fresh_sqlite();
    let sqlite = Store::open(&sqlite_url).await.expect("open SQLite");
    let pg_url = fresh_postgres(label).await;
    let pg = Store::open(&pg_url).await.expect("open PostgreSQL");
    vec![(sqlite_url, sqlite, Some(dir)), (pg_url, pg, None)]
}

// Kafka helpers for the runtime tests, against the broker `scripts/kafka`
// starts (or SMM_TEST_BROKERS).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

pub fn brokers() -> String {
    std::env::var("SMM_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn client() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    config
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no Kafka broker answers at {} ({e}); start one with `scripts/kafka start`",
                brokers()
            )
        });
    for r in results {
        r.expect("topic created");
    }
}

/// Creates a catalog topic the test writes to, unless it exists, with the
/// catalog's partition count: another count would be drift that
/// `smmctl topics apply` rightly reports.
pub async fn ensure_topic(name: &str) {
    let partitions = smm_workers::contract::catalog::topic_named(name)
        .unwrap_or_else(|| panic!("{name} is not a catalog topic"))
        .partitions;
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
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

pub async fn produce(topic: &str, key: &str, value: &[u8], headers: &[(&str, &[u8])]) {
    let producer: FutureProducer = client().create().expect("producer");
    let mut owned = OwnedHeaders::new();
    for (k, v) in headers {
        owned = owned.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(owned),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce acknowledged");
}

/// A record read back, with its headers in order.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
    pub partition: i32,
    pub offset: i64,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// Reads `topic` from the start until `want` records arrived or `within`
/// passed; returns what it read.
pub fn read(topic: &str, want: usize, within: Duration) -> Vec<Read> {
    read_matching(topic, want, within, |_| true)
}

/// Reads `topic` from the start until `want` records that match `keep`
/// arrived or `within` passed; the catalog's topics hold other tests'
/// records too.
pub fn read_matching(
    topic: &str,
    want: usize,
    within: Duration,
    keep: impl Fn(&Read) -> bool,
) -> Vec<Read> {
    let consumer: BaseConsumer = client()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = std::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let read = Read {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_owned(), x.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                partition: m.partition(),
                offset: m.offset(),
            };
            if keep(&read) {
                out.push(read);
            }
        }
    }
    out
}

/// A catalog retry policy on topics of the test's own.
pub fn renamed(
    policy: &smm_workers::contract::catalog::RetryPolicy,
    main: &str,
    dead_letter: &str,
) -> smm_workers::runtime::Route {
    let mut route = smm_workers::runtime::Route::from(policy);
    route.main_topic = main.to_owned();
    route.exhausted_topic = Some(dead_letter.to_owned());
    route.poison_topic = Some(dead_letter.to_owned());
    route
}

/// What a worker run in process needs, with the sender that stops it.
pub fn shared(
    store: Option<smm_workers::store::Store>,
) -> (
    smm_workers::runtime::Shared,
    tokio::sync::watch::Sender<bool>,
) {
    let client = client();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let shared = smm_workers::runtime::Shared {
        producer: smm_workers::runtime::producer(&client).expect("producer"),
        client,
        store,
        metrics: std::sync::Arc::new(smm_workers::runtime::metrics::Metrics::default()),
        shutdown,
        drain_timeout: Duration::from_secs(5),
    };
    (shared, stop)
}

/// Waits until `done`, checking every 20 ms, failing the test after `within`.
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
