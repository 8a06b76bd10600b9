//! The three-node cluster `scripts/kafka cluster` runs, for the tests of
//! brokers failing: its addresses, and killing and restarting its nodes.
//!
//! The tests that use it change the whole cluster (they kill nodes), so
//! they hold [`exclusive`] for their whole run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The cluster's bootstrap list, `SMM_TEST_CLUSTER_BROKERS`. Panics with
/// instructions when it is not set or no node answers.
pub fn brokers() -> String {
    std::env::var("SMM_TEST_CLUSTER_BROKERS").unwrap_or_else(|_| {
        panic!(
            "SMM_TEST_CLUSTER_BROKERS is not set. The cluster tests run from `scripts/test`, \
             which starts the three-node cluster; by hand: `scripts/kafka cluster start`, then \
             SMM_TEST_CLUSTER_BROKERS=$(scripts/kafka cluster brokers) cargo test --test cluster -- --ignored"
        )
    })
}

/// The address of node `n` (1 to 3): the cluster's bootstrap list names
/// them in order.
pub fn node_address(n: usize) -> String {
    brokers()
        .split(',')
        .nth(n - 1)
        .unwrap_or_else(|| panic!("the cluster has no node {n}: {}", brokers()))
        .to_string()
}

/// One test at a time may change the cluster, and each starts from a whole
/// one: a test that failed half way may have left a node down.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    cluster(&["start"]);
    guard
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("kafka")
}

fn cluster(args: &[&str]) {
    let status = Command::new(script())
        .arg("cluster")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run scripts/kafka cluster {}: {e}", args.join(" ")));
    assert!(
        status.success(),
        "scripts/kafka cluster {} failed",
        args.join(" ")
    );
}

/// SIGKILLs node `n`: a crash, with its data kept.
pub fn kill_node(n: usize) {
    cluster(&["kill-node", &n.to_string()]);
}

/// Starts node `n` again and waits until it serves.
pub fn start_node(n: usize) {
    cluster(&["start-node", &n.to_string()]);
}

/// Waits until every partition of the cluster has its full ISR again, so
/// the next test starts from a whole cluster. Panics after `within`.
pub fn wait_until_fully_replicated(within: Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("a client for the cluster");
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match consumer.fetch_metadata(None, Duration::from_secs(5)) {
            Ok(metadata) => {
                let short: Vec<String> = metadata
                    .topics()
                    .iter()
                    .flat_map(|t| {
                        t.partitions()
                            .iter()
                            .filter(|p| p.isr().len() < p.replicas().len() || p.leader() < 0)
                            .map(move |p| format!("{}/{}", t.name(), p.id()))
                    })
                    .collect();
                if metadata.brokers().len() == 3 && short.is_empty() {
                    return;
                }
                last = format!(
                    "{} brokers; short of replicas: {short:?}",
                    metadata.brokers().len()
                );
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the cluster did not heal within {within:?}: {last}");
}
