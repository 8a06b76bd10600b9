//! smmctl against a real three-node cluster while its brokers fail.
//!
//! These need the cluster `scripts/kafka cluster` runs, so they are left
//! out of a plain `cargo test`; `scripts/test` starts the cluster and runs
//! them after the rest of the suite (`--ignored`). Each test kills nodes,
//! so they hold the cluster one at a time and leave it whole again.

mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use smm_test_support::cluster;

const PAYMENTS_GROUP: &str = "smm-payment-confirmations-realtime-group";

/// smmctl pointed at the cluster through a profile that creates topics
/// with replication factor 3 and leaves min ISR to follow it (2).
fn smmctl() -> Command {
    let mut cmd = common::smmctl();
    cmd.env("SMM_CONFIG", profile_file())
        .env("SMM_PROFILE", "cluster")
        .env_remove("SMM_BROKERS");
    cmd
}

fn profile_file() -> &'static str {
    static FILE: OnceLock<String> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("smmctl-cluster-{}.toml", std::process::id()));
        let text = format!(
            "[profiles.cluster]\nbrokers = \"{}\"\n\n[profiles.cluster.topics]\nreplication_factor = 3\n\n\
             [profiles.strict]\nbrokers = \"{}\"\n\n[profiles.strict.topics]\nreplication_factor = 3\nmin_insync_replicas = 3\n",
            cluster::brokers(),
            cluster::brokers()
        );
        std::fs::write(&path, text).expect("write the cluster profile");
        path.display().to_string()
    })
}

fn run(args: &[&str]) -> common::Run {
    common::run_with(smmctl(), args)
}

#[track_caller]
fn expect(args: &[&str], code: i32) -> common::Run {
    common::expect_code_with(smmctl(), args, code)
}

/// The catalog applied to the cluster once, by whichever test comes first.
fn catalog_applied() -> &'static common::Run {
    static APPLIED: OnceLock<common::Run> = OnceLock::new();
    APPLIED.get_or_init(|| expect(&["topics", "apply", "-o", "json"], 0))
}

/// `health -o json --timeout 5s`, its exit code, JSON and how long it took.
fn health_within_deadline() -> (i32, Value, Duration) {
    let started = Instant::now();
    let r = run(&["health", "-o", "json", "--timeout", "5s"]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "health took {took:?}, more than --timeout 5s plus one second\n{}\n{}",
        r.stdout,
        r.stderr
    );
    let json = r.json();
    (r.code, json, took)
}

fn broker(health: &Value, id: i64) -> &Value {
    health["cluster"]["brokers"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == id))
        .unwrap_or_else(|| panic!("no broker {id} in {health:#}"))
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {health:#}"))
}

fn is_down(broker: &Value) -> bool {
    !(broker["registered"] == true && broker["answering"] == true)
}

#[test]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
fn topics_apply_uses_the_profiles_replication_and_every_broker_knows_the_topics_at_once() {
    let _cluster = cluster::exclusive();
    catalog_applied();
    // Two catalog topics gone, then made again: the check below runs right
    // after an apply that created something, whatever ran before.
    let gone = ["smm.notifications", "smm.notifications.dlq"];
    let mut delete = vec!["topics", "delete", "--execute", "--yes", "--force"];
    delete.extend(gone);
    expect(&delete, 0);
    // Deletion reaches every broker a moment later; three reads in a row
    // that miss both topics make an apply that sees them unlikely.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing_in_a_row = 0;
    while missing_in_a_row < 3 {
        assert!(
            Instant::now() < deadline,
            "{gone:?} still listed 30 s after their deletion"
        );
        let list = expect(&["topics", "list", "-o", "json"], 0).json();
        let missing = list["topics"].as_array().unwrap().iter().filter(|t| {
            gone.contains(&t["name"].as_str().unwrap_or_default()) && t["status"] == "missing"
        });
        missing_in_a_row = if missing.count() == gone.len() {
            missing_in_a_row + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(200));
    }
    let applied = expect(&["topics", "apply", "-o", "json"], 0).json();
    assert_eq!(applied["summary"]["created"], 2, "{applied:#}");
    assert_eq!(applied["replication_factor"], 3, "{applied:#}");
    assert_eq!(applied["min_insync_replicas"], 2, "{applied:#}");

    // Right after apply, from any broker: nothing missing, nothing different.
    for _ in 0..5 {
        let list = expect(&["topics", "list", "--check", "-o", "json"], 0).json();
        assert_eq!(list["problems"], 0, "{list:#}");
    }
    // A profile that wants min ISR 3 sees every managed topic differ.
    let mut strict = smmctl();
    strict.env("SMM_PROFILE", "strict");
    let r = common::expect_code_with(strict, &["topics", "list", "--check", "-o", "json"], 1);
    let differing = r.json()["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "smm.payment.confirmations")
        .cloned()
        .unwrap();
    assert_eq!(differing["status"], "config-differs", "{differing:#}");
    assert!(
        differing["config_drift"][0]
            .as_str()
            .unwrap()
            .contains("min.insync.replicas is 2, profile says 3"),
        "{differing:#}"
    );
    let r = run(&[
        "topics",
        "apply",
        "--replication-factor",
        "2",
        "--min-insync-replicas",
        "3",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--min-insync-replicas"), "{}", r.stderr);
}

#[test]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
fn with_one_node_killed_health_names_it_within_its_deadline_and_lag_still_answers() {
    let _cluster = cluster::exclusive();
    catalog_applied();
    cluster::kill_node(3);

    // At once, before the controller fences it: lag answers with what the
    // other brokers said.
    let lag = run(&["lag", "--all-groups", "--timeout", "5s"]);
    assert!(
        matches!(lag.code, 0 | 1),
        "lag exited {}: {}",
        lag.code,
        lag.stderr
    );
    cluster::start_node(3);
    cluster::wait_until_fully_replicated(Duration::from_secs(120));
    cluster::kill_node(3);

    // At once, before the controller fences it: still listed, refusing.
    let (code, health, _) = health_within_deadline();
    assert_eq!(code, 1, "{health:#}");
    assert!(is_down(broker(&health, 3)), "{health:#}");
    assert!(
        health["cluster"]["under_replicated"].as_i64().unwrap() > 0,
        "{health:#}"
    );
    let brokers = check(&health, "brokers")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(brokers.contains("broker 3"), "{brokers}");

    // Once fenced: gone from the metadata, still named, its partitions
    // counted as under-replicated.
    std::thread::sleep(Duration::from_secs(5));
    let (code, health, _) = health_within_deadline();
    assert_eq!(code, 1, "{health:#}");
    let down = broker(&health, 3);
    assert!(is_down(down), "{health:#}");
    assert!(down["replicas"].as_i64().unwrap() > 0, "{health:#}");
    assert!(
        health["cluster"]["under_replicated"].as_i64().unwrap() > 0,
        "{health:#}"
    );
    assert_eq!(health["cluster"]["offline"], 0, "{health:#}");
    assert_eq!(health["status"], "degraded", "{health:#}");
    let replication = check(&health, "replication");
    assert_eq!(replication["result"], "warn", "{replication:#}");

    let lag = run(&["lag", "--all-groups", "--timeout", "5s"]);
    assert!(
        matches!(lag.code, 0 | 1),
        "lag exited {}:\n{}\n{}",
        lag.code,
        lag.stdout,
        lag.stderr
    );

    cluster::start_node(3);
    cluster::wait_until_fully_replicated(Duration::from_secs(120));
    let (_, health, _) = health_within_deadline();
    assert_eq!(health["cluster"]["under_replicated"], 0, "{health:#}");
    assert!(!is_down(broker(&health, 3)), "{health:#}");
}

#[test]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
fn with_two_nodes_killed_health_says_down_and_no_command_blames_the_bootstrap_list() {
    let _cluster = cluster::exclusive();
    catalog_applied();
    cluster::kill_node(2);
    cluster::kill_node(3);
    std::thread::sleep(Duration::from_secs(5));

    let (code, health, _) = health_within_deadline();
    assert_eq!(code, 1, "{health:#}");
    assert!(
        is_down(broker(&health, 2)) && is_down(broker(&health, 3)),
        "{health:#}"
    );
    assert_eq!(health["status"], "down", "{health:#}");
    for args in [
        &["topics", "list", "--timeout", "5s"][..],
        &["lag", "--all-groups", "--timeout", "5s"][..],
    ] {
        let r = run(args);
        assert_ne!(
            r.code,
            2,
            "smmctl {} exited 2:\n{}\n{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        assert!(
            !r.stderr.contains("cannot reach the Kafka brokers"),
            "{}",
            r.stderr
        );
    }

    cluster::start_node(2);
    cluster::start_node(3);
    cluster::wait_until_fully_replicated(Duration::from_secs(120));
}

/// Commits offset 0 of `smm.payment.confirmations` for each group, on the
/// cluster, so each has a coordinator and committed offsets to read.
fn commit_on_cluster(groups: &[String]) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    for group in groups {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster::brokers())
            .set("group.id", group)
            .create()
            .expect("a consumer on the cluster");
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets
            .add_partition_offset("smm.payment.confirmations", 0, rdkafka::Offset::Offset(0))
            .unwrap();
        consumer
            .commit(&offsets, CommitMode::Sync)
            .unwrap_or_else(|e| panic!("commit for {group}: {e}"));
    }
}

#[test]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
fn reading_committed_offsets_while_their_coordinator_dies_never_crashes() {
    let _cluster = cluster::exclusive();
    catalog_applied();
    // Enough groups that every node coordinates some of them.
    let groups: Vec<String> = (0..12)
        .map(|_| smm_test_support::unique_id("coord"))
        .collect();
    commit_on_cluster(&groups);
    let mut lag = vec!["lag", "-o", "json", "--timeout", "3s"];
    for g in &groups {
        lag.extend(["--group", g.as_str()]);
    }
    let health = ["health", "-o", "json", "--timeout", "3s", "--no-produce"];
    let mut runs = 0;
    for node in 1..=3 {
        cluster::kill_node(node);
        // The window in which coordinators move: a read may be answered
        // NOT_COORDINATOR, which used to crash the process. Several runs
        // side by side, again and again, to meet it.
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            let side_by_side: Vec<_> = [&lag[..], &lag[..], &health[..], &health[..]]
                .into_iter()
                .map(|args| {
                    let mut cmd = smmctl();
                    cmd.args(args)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped());
                    (args.join(" "), cmd.spawn().expect("start smmctl"))
                })
                .collect();
            for (args, child) in side_by_side {
                let out = child.wait_with_output().expect("wait for smmctl");
                runs += 1;
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "smmctl {args} ended with {} while node {node} was down:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        cluster::start_node(node);
        cluster::wait_until_fully_replicated(Duration::from_secs(120));
    }
    assert!(runs >= 24, "only {runs} runs");
}

/// The node that leads the most partitions of `topics` right now.
fn leader_of_most(topics: &[&str]) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster::brokers())
        .create()
        .expect("a client for the cluster");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("cluster metadata");
    let mut led = std::collections::BTreeMap::<i32, usize>::new();
    for t in metadata
        .topics()
        .iter()
        .filter(|t| topics.contains(&t.name()))
    {
        for p in t.partitions() {
            *led.entry(p.leader()).or_default() += 1;
        }
    }
    let (id, _) = led.into_iter().max_by_key(|(_, n)| *n).expect("leaders");
    usize::try_from(id).expect("a node id")
}

/// Posts a signed webhook until the gateway answers 200, as the payment
/// provider resends one it got no 200 for. Returns how many tries it took.
async fn post_until_accepted(http: &reqwest::Client, endpoint: &str, body: String) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut tries = 0;
    loop {
        tries += 1;
        let answer = http.post(endpoint).body(body.clone()).send().await;
        if answer.as_ref().is_ok_and(|a| a.status().as_u16() == 200) {
            return tries;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway refused a webhook for 90 s: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `count` signed payment webhooks spread over `users`, every tenth sent
/// twice as a provider resends, and the credit each user is owed.
fn signed_webhooks(
    run: &str,
    users: &[i64],
    count: usize,
) -> (Vec<String>, std::collections::BTreeMap<i64, i64>) {
    let mut expected = std::collections::BTreeMap::new();
    let mut bodies = Vec::new();
    for i in 0..count {
        let user = users[i % users.len()];
        let cents = 100 + i as i64;
        *expected.entry(user).or_insert(0) += cents;
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        let body = smm_workers::providers::cryptomus::signed_webhook(
            common::worker_process::API_KEY,
            &format!("{run}-{i}"),
            &amount,
            "USD",
            user,
            &[],
        );
        if i % 10 == 0 {
            bodies.push(body.clone());
        }
        bodies.push(body);
    }
    (bodies, expected)
}

/// Samples `/health/ready` every 100 ms until `watching` turns false, and
/// returns when, since `since`, it was not 200, with what it said.
fn sample_readiness(
    metrics: String,
    watching: std::sync::Arc<std::sync::atomic::AtomicBool>,
    since: Instant,
) -> tokio::task::JoinHandle<Vec<(Duration, String)>> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let mut not_ready = Vec::new();
        while watching.load(std::sync::atomic::Ordering::Relaxed) {
            // A sample the server did not answer says nothing about
            // readiness; only its answers are kept.
            let answer = match http.get(format!("{metrics}/health/ready")).send().await {
                Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
                Err(_) => None,
            };
            if let Some((status, said)) = answer
                && status != 200
            {
                not_ready.push((since.elapsed(), said.trim().to_string()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        not_ready
    })
}

/// What happens to the cluster a third of the way through the payments.
#[derive(Clone, Copy, Debug)]
enum Storm {
    /// The node leading most payment partitions is SIGKILLed and restarted
    /// once every payment is credited.
    LeaderKilled,
    /// Two of three nodes are SIGKILLed: under min ISR 2 nothing can be
    /// written and the controller quorum is gone. One comes back after
    /// `back_after`, the other once every payment is credited.
    TwoNodesDown { back_after: Duration },
}

/// Sends `payments` signed webhooks through the gateway of one
/// `run webhook-gateway webhooks payments` process on the cluster and a
/// PostgreSQL store, with `storm` a third of the way through; checks each
/// payment is credited exactly once and nothing is dead-lettered, and
/// prints what it measured.
#[expect(
    clippy::print_stderr,
    reason = "what the run measured belongs in the test's output"
)]
async fn payments_through_a_storm(storm: Storm, payments: usize) {
    use common::panel::{assert_every_payment_credited_once, count, seed};
    use common::worker_process::{Running, free_port, skip_old_records_with, until};
    use smm_workers::contract::catalog;

    catalog_applied();
    let dir = tempfile::tempdir().unwrap();
    let url = common::store_url("postgres", &dir, "cluster_storm").await;
    let store = smm_workers::store::Store::open(&url).await.unwrap();
    let users: Vec<i64> = (9101..=9120).collect();
    seed(&store, &users).await;
    // Past whatever an earlier run left on the topics.
    skip_old_records_with(
        smmctl,
        PAYMENTS_GROUP,
        &[catalog::PAYMENT_WEBHOOKS, catalog::PAYMENT_CONFIRMATIONS],
    );

    let gateway = free_port();
    let brokers = ["--brokers".to_string(), cluster::brokers()];
    let workers = Running::start_with(
        &brokers,
        &["webhook-gateway", "webhooks", "payments"],
        &url,
        Some(gateway),
    );
    workers.wait_ready().await;
    let leader = leader_of_most(&[catalog::PAYMENT_WEBHOOKS, catalog::PAYMENT_CONFIRMATIONS]);
    let victims: Vec<usize> = match storm {
        Storm::LeaderKilled => vec![leader],
        Storm::TwoNodesDown { .. } => (1..=3).filter(|&n| n != 1).collect(),
    };

    // Readiness, sampled all along: when it was 503, and for how long.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    // One clock for the samples and the kill.
    let started = Instant::now();
    let sampler = sample_readiness(workers.metrics.clone(), watching.clone(), started);

    let run = smm_test_support::unique_id("storm");
    let endpoint = format!("http://127.0.0.1:{gateway}/webhooks/cryptomus");
    let http = reqwest::Client::new();
    let (bodies, expected) = signed_webhooks(&run, &users, payments);
    let mut retried = 0;
    let mut killed_at = None;
    let mut comeback = None;
    for (n, chunk) in bodies.chunks(16).enumerate() {
        if n * 16 >= bodies.len() / 3 && killed_at.is_none() {
            for &node in &victims {
                cluster::kill_node(node);
            }
            killed_at = Some(started.elapsed());
            if let Storm::TwoNodesDown { back_after } = storm {
                let first = victims[0];
                comeback = Some(tokio::task::spawn_blocking(move || {
                    std::thread::sleep(back_after);
                    cluster::start_node(first);
                }));
            }
        }
        let posts = chunk
            .iter()
            .map(|b| post_until_accepted(&http, &endpoint, b.clone()));
        for tries in futures_util::future::join_all(posts).await {
            retried += tries - 1;
        }
    }
    let posted_in = started.elapsed();
    assert_every_payment_credited_once(&store, &expected, payments as i64).await;
    let credited_in = started.elapsed();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM processed_events").await,
        2 * payments as i64
    );
    if let Some(comeback) = comeback {
        comeback.await.unwrap();
    }
    until("readiness", Duration::from_secs(60), || async {
        matches!(workers.get("/health/ready").await, Some((200, _)))
    })
    .await;
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let not_ready = sampler.await.unwrap();
    let dead_letters = workers.counter("smm_worker_dead_letters_total", "").await;
    eprintln!(
        "{storm:?}: nodes {victims:?} killed at {killed_at:?}; {payments} payments posted in {posted_in:?} \
         ({retried} posts retried), all credited once by {credited_in:?}; /health/ready not 200 for {} samples \
         of 100 ms, first {:?}, last {:?}; {dead_letters} dead letters",
        not_ready.len(),
        not_ready.first(),
        not_ready.last()
    );
    assert_eq!(
        dead_letters, 0,
        "a record was dead-lettered because of the broker"
    );
    assert!(
        not_ready
            .iter()
            .all(|(_, why)| why.starts_with("not ready: ") && why.len() > "not ready: ".len()),
        "/health/ready did not say why: {not_ready:?}"
    );
    if let (Storm::LeaderKilled, Some(killed)) = (storm, killed_at) {
        // 503 while the dead node's partitions had no reachable leader,
        // and only then: a new leader is elected within seconds.
        assert!(
            not_ready
                .iter()
                .any(|(_, why)| why.contains("no reachable leader for smm.payment.")),
            "/health/ready never said a partition lost its leader: {not_ready:?}"
        );
        assert!(
            not_ready
                .iter()
                .all(|(at, _)| *at >= killed && *at < killed + Duration::from_secs(15)),
            "/health/ready was 503 outside the leader's election: {not_ready:?}"
        );
    }

    for node in victims {
        cluster::start_node(node);
    }
    cluster::wait_until_fully_replicated(Duration::from_secs(120));
    let mut workers = workers;
    workers.signal("TERM");
    assert_eq!(workers.wait_exit(Duration::from_secs(30)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
#[expect(
    clippy::await_holding_lock,
    reason = "the cluster lock is held for the whole test, on purpose: no other test may kill a node meanwhile"
)]
async fn payments_through_the_gateway_are_credited_once_while_their_leader_is_killed() {
    let _cluster = cluster::exclusive();
    payments_through_a_storm(Storm::LeaderKilled, 5000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
#[expect(
    clippy::await_holding_lock,
    reason = "the cluster lock is held for the whole test, on purpose: no other test may kill a node meanwhile"
)]
async fn payments_under_min_isr_wait_and_are_credited_once_when_a_broker_returns() {
    let _cluster = cluster::exclusive();
    payments_through_a_storm(
        Storm::TwoNodesDown {
            back_after: Duration::from_secs(20),
        },
        2000,
    )
    .await;
}

/// Stores `bodies` on the webhooks topic as the gateway would, keyed by
/// payment, so a backlog waits before any worker starts.
async fn queue_webhooks(bodies: &[(String, String)]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
    use smm_workers::contract::{catalog, headers};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster::brokers())
        .set("linger.ms", "20")
        .create()
        .expect("a producer for the cluster");
    let sends = bodies.iter().map(|(payment, body)| {
        let correlation = format!("corr-{payment}");
        let payload =
            smm_workers::servers::gateway::received_webhook(body, &correlation, None).to_json();
        let producer = &producer;
        async move {
            let record = FutureRecord::to(catalog::PAYMENT_WEBHOOKS)
                .key(payment)
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: headers::CORRELATION_ID,
                    value: Some(correlation.as_bytes()),
                }));
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    });
    for sent in futures_util::future::join_all(sends).await {
        sent.expect("a queued webhook");
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
}

/// Partitions rebalances have taken from `member`'s workers so far.
async fn revoked_from(member: &common::worker_process::Running) -> u64 {
    member
        .counter("smm_worker_partitions_revoked_total", "")
        .await
}

/// A small deterministic generator: which process dies next.
fn next_victim(state: &mut u64, of: usize) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % of as u64) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/test runs it"]
#[expect(
    clippy::await_holding_lock,
    reason = "the cluster lock is held for the whole test, on purpose: no other test may kill a node meanwhile"
)]
async fn three_processes_drain_payments_while_a_random_one_is_killed_every_few_seconds() {
    use common::panel::{assert_every_payment_credited_once, count, seed};
    use common::worker_process::{Launch, Running, skip_old_records_with, until};
    use smm_workers::contract::catalog;

    const PAYMENTS: usize = 10_000;
    let _cluster = cluster::exclusive();
    catalog_applied();
    let url = smm_testbed::scratch::fresh_postgres("cluster_scale_out").await;
    let store = smm_workers::store::Store::open(&url).await.unwrap();
    // Enough users that the confirmations, keyed by user, spread evenly.
    let users: Vec<i64> = (9201..=9800).collect();
    seed(&store, &users).await;
    skip_old_records_with(
        smmctl,
        PAYMENTS_GROUP,
        &[catalog::PAYMENT_WEBHOOKS, catalog::PAYMENT_CONFIRMATIONS],
    );
    let run = smm_test_support::unique_id("scale");
    let (bodies, expected) = signed_webhooks(&run, &users, PAYMENTS);
    let keyed: Vec<(String, String)> = bodies
        .into_iter()
        .map(|body| {
            let fields: Value = serde_json::from_str(&body).unwrap();
            (fields["uuid"].as_str().unwrap().to_owned(), body)
        })
        .collect();
    queue_webhooks(&keyed).await;

    let connection = ["--brokers".to_string(), cluster::brokers()];
    let instances: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("{run}-{n}"))
        .collect();
    let start = |instance: &str| {
        Running::launch(&Launch {
            connection: &connection,
            workers: &["webhooks", "payments"],
            database_url: &url,
            args: &["--instance", instance],
            ..Launch::default()
        })
    };
    let credited = || async { count(&store, "SELECT COUNT(*) FROM payments").await };
    let started = Instant::now();
    let mut members: Vec<Running> = instances.iter().map(|i| start(i)).collect();
    // Revocations count from the moment the group has settled: the joins
    // at start move partitions, and that is not what this measures.
    for member in &members {
        member.wait_ready().await;
    }
    let mut baseline = Vec::new();
    for member in &members {
        baseline.push(revoked_from(member).await);
    }
    // A killed process's counters die with it: each is read before its
    // kill and added here.
    let (mut revoked, mut dead_letters) = (0, 0);
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    // Per kill: which process, and how long after its restart it held
    // partitions again and handled a record. Kills stop with a quarter of
    // the payments left, so a restarted process still has work waiting.
    let mut resumed_after = Vec::new();
    while credited().await < 3 * PAYMENTS as i64 / 4 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let victim = next_victim(&mut state, members.len());
        revoked += revoked_from(&members[victim]).await - baseline[victim];
        dead_letters += members[victim]
            .counter("smm_worker_dead_letters_total", "")
            .await;
        members[victim].signal("KILL");
        members[victim].wait_exit(Duration::from_secs(10));
        // A supervisor's restart delay.
        tokio::time::sleep(Duration::from_millis(500)).await;
        members[victim] = start(&instances[victim]);
        let restarted = Instant::now();
        let member = &members[victim];
        until(
            "the restarted process to work again",
            Duration::from_secs(10),
            || async {
                let holds = member.counter("smm_worker_assigned_partitions", "").await > 0;
                let handled = member.counter("smm_worker_records_total", "").await > 0;
                holds && handled
            },
        )
        .await;
        resumed_after.push((victim, restarted.elapsed()));
        baseline[victim] = revoked_from(member).await;
    }
    assert_every_payment_credited_once(&store, &expected, PAYMENTS as i64).await;
    let drained_in = started.elapsed();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM processed_events").await,
        2 * PAYMENTS as i64,
        "one claim per webhook and one per confirmation"
    );
    for (member, base) in members.iter().zip(&baseline) {
        revoked += revoked_from(member).await - base;
        dead_letters += member.counter("smm_worker_dead_letters_total", "").await;
    }
    let slowest = resumed_after
        .iter()
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    eprintln!(
        "scale-out: {PAYMENTS} payments (+{} resent) drained by 3 processes in {drained_in:?} with {} SIGKILLs; \
         each restarted process worked again after at most {slowest:?} ({resumed_after:?}); \
         partitions revoked from the running processes: {revoked}; dead letters: {dead_letters}",
        PAYMENTS / 10,
        resumed_after.len()
    );
    assert!(
        resumed_after.len() >= 3,
        "the run saw {} kills",
        resumed_after.len()
    );
    assert_eq!(
        revoked, 0,
        "a restart with the same --instance takes no partition from anyone"
    );
    assert_eq!(dead_letters, 0);
    for member in &mut members {
        member.signal("TERM");
        assert_eq!(member.wait_exit(Duration::from_secs(30)), Some(0));
    }
}
