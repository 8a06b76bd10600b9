//! Shared by the integration tests: the broker that `scripts/kafka start`
//! runs, unique names so tests never see each other's data, and a way to
//! run the smmctl binary the way an operator would.
#![allow(dead_code)]

pub mod worker_process;

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The broker under test: `SMM_TEST_BROKERS`, else the local default.
pub fn brokers() -> String {
    std::env::var("SMM_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

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
                    "no Kafka broker answers at {} ({e}). Start one with `scripts/kafka start`, \
                     or point SMM_TEST_BROKERS at one.",
                    brokers()
                )
            })
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers())
        .set("socket.timeout.ms", "10000");
    config
}

/// A name no other test (or earlier run) uses: `test.<what>.<random>`.
pub fn unique(what: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("test.{what}.{}", &id[..12])
}

pub fn admin() -> AdminClient<DefaultClientContext> {
    client_config().create().expect("admin client")
}

pub async fn create_topic(name: &str, partitions: i32) {
    let results = admin()
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
    wait_for_topic(name, Some(partitions));
}

pub async fn delete_topics(names: &[&str]) {
    if names.is_empty() {
        return;
    }
    let _ = admin()
        .delete_topics(
            names,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
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
    use rdkafka::consumer::CommitMode;
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

/// The smmctl binary, pointed at the test broker, with no terminal, no
/// config file and no colour, as cron would run it.
pub fn smmctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smmctl"));
    cmd.env("SMM_BROKERS", brokers())
        .env("SMM_CONFIG", "/dev/null")
        .env("NO_COLOR", "1")
        .env_remove("SMM_PROFILE")
        .env_remove("SMM_LOG")
        // Executed destructive commands leave an audit line; the tests'
        // lines go to a file of their own, not the operator's trail.
        .env(
            "SMM_AUDIT_FILE",
            std::env::temp_dir().join("smmctl-tests-audit.jsonl"),
        )
        .stdin(Stdio::null());
    cmd
}

/// What one smmctl run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn run(args: &[&str]) -> Run {
    run_with(smmctl(), args)
}

pub fn run_with(mut cmd: Command, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.args(args).output().expect("run smmctl");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs smmctl and asserts its exit code, showing its output when it differs.
#[track_caller]
pub fn expect_code(args: &[&str], code: i32) -> Run {
    expect_code_with(smmctl(), args, code)
}

/// [`expect_code`] with a command prepared by the caller (extra variables).
#[track_caller]
pub fn expect_code_with(cmd: Command, args: &[&str], code: i32) -> Run {
    let r = run_with(cmd, args);
    assert_eq!(
        r.code,
        code,
        "smmctl {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r
}

/// Schema violations of `doc` against `schemas/<name>.schema.json`, the
/// documented JSON output of a command.
pub fn schema_errors(doc: &serde_json::Value, name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let validator =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} (at {})", e.instance_path))
        .collect()
}

/// Fails the test when `doc` is not what `schemas/<name>.schema.json` says.
#[track_caller]
pub fn assert_schema(doc: &serde_json::Value, name: &str) {
    let errors = schema_errors(doc, name);
    assert!(
        errors.is_empty(),
        "output does not match schemas/{name}.schema.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
}

/// A record read back by [`read_matching`].
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    pub fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Read {
        use rdkafka::Message as _;
        use rdkafka::message::Headers as _;
        Read {
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
        }
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Every record of `topic` whose value or headers contain `needle`, read
/// from the start until the topic is quiet for a second or `within` ends.
pub fn read_matching(topic: &str, needle: &str, within: Duration) -> Vec<Read> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + within;
    let mut last = Instant::now();
    let mut seen_any = false;
    let mut out = Vec::new();
    while Instant::now() < deadline && !(seen_any && last.elapsed() > Duration::from_secs(1)) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        seen_any = true;
        last = Instant::now();
        let read = Read::of(&m);
        let contains = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(needle);
        if read.value.as_deref().is_some_and(contains)
            || read.headers.iter().any(|(_, v)| contains(v))
        {
            out.push(read);
        }
    }
    out
}

/// A fresh panel store of `backend` ("sqlite", in `dir`, or "postgres", a
/// database of its own named after `label`).
pub async fn store_url(backend: &str, dir: &tempfile::TempDir, label: &str) -> String {
    match backend {
        "sqlite" => format!("sqlite://{}", dir.path().join("panel.db").display()),
        _ => smm_testbed::scratch::fresh_postgres(label).await,
    }
}
