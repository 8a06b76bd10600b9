//! `smmctl lag` and `smmctl groups` against the real broker, with exact
//! numbers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

/// Produces `count` records to one partition, each stamped `age` ago.
async fn produce_aged(topic: &str, partition: i32, count: usize, age: Duration) {
    let producer: FutureProducer = client_config().set("linger.ms", "0").create().unwrap();
    let stamp = jiff::Timestamp::now().as_millisecond() - age.as_millis() as i64;
    for i in 0..count {
        let key = format!("k{i}");
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(&key)
                    .payload("v")
                    .timestamp(stamp),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

fn partitions_of<'a>(json: &'a Value, group: &str) -> Vec<&'a Value> {
    json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
        .unwrap_or_else(|| panic!("{group} missing: {json:#}"))["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_is_exact_per_partition_and_uncommitted_partitions_show_a_dash() {
    require_broker();
    let topic = unique("lag-exact");
    let group = unique("lag-exact-group");
    create_topic(&topic, 3).await;
    for p in 0..3 {
        produce_aged(&topic, p, 10, Duration::from_secs(120)).await;
    }
    commit_offsets(&group, &[(&topic, 0, 7), (&topic, 1, 10)]);

    let json = expect_code(&["lag", "--group", &group, "-o", "json"], 0).json();
    assert_schema(&json, "lag");
    let parts = partitions_of(&json, &group);
    let by_partition = |p: i64| parts.iter().find(|x| x["partition"] == p).copied().unwrap();
    let p0 = by_partition(0);
    assert_eq!(
        (
            p0["committed"].as_i64(),
            p0["log_end"].as_i64(),
            p0["lag"].as_i64()
        ),
        (Some(7), Some(10), Some(3))
    );
    let seconds = p0["lag_seconds"].as_f64().unwrap();
    assert!(
        (119.0..180.0).contains(&seconds),
        "record stamped 120 s ago, lag_seconds {seconds}"
    );
    let p1 = by_partition(1);
    assert_eq!(
        (p1["lag"].as_i64(), p1["lag_seconds"].as_f64()),
        (Some(0), Some(0.0))
    );
    let p2 = by_partition(2);
    assert!(
        p2["committed"].is_null() && p2["lag"].is_null() && p2["lag_seconds"].is_null(),
        "{p2:#}"
    );
    assert_eq!(p2["log_end"], 10);
    let g = &json["groups"][0];
    assert_eq!(g["total_lag"], 3);
    assert_eq!(g["over_threshold"], false);
    assert_eq!(g["topics"][0]["uncommitted_partitions"], 1);

    let table = expect_code(&["lag", "--group", &group, "--partitions"], 0);
    let row = |p: &str| -> Vec<String> {
        table
            .stdout
            .lines()
            .find(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.get(1) == Some(&topic.as_str()) && cols.get(2) == Some(&p)
            })
            .unwrap_or_else(|| panic!("no row for partition {p}:\n{}", table.stdout))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(
        &row("0")[..7],
        [group.as_str(), topic.as_str(), "0", "7", "0", "10", "3"]
    );
    assert!(row("0")[7].starts_with("2m"), "LAG-TIME {:?}", row("0"));
    assert_eq!(
        &row("2")[..8],
        [
            group.as_str(),
            topic.as_str(),
            "2",
            "-",
            "0",
            "10",
            "-",
            "-"
        ]
    );
    assert!(
        table.stdout.contains("no committed offset"),
        "{}",
        table.stdout
    );
}

/// Records 0..n on partition 0, record i stamped `i` minutes after `base`.
async fn produce_minutes(topic: &str, n: i64, base: i64) {
    let producer: FutureProducer = client_config().set("linger.ms", "0").create().unwrap();
    for i in 0..n {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(0)
                    .key("k")
                    .payload("v")
                    .timestamp(base + i * 60_000),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_group_is_timed_by_its_own_next_record() {
    require_broker();
    let topic = unique("lag-many-positions");
    create_topic(&topic, 1).await;
    // Record i is stamped 30 − i minutes ago.
    let base = jiff::Timestamp::now().as_millisecond() - 30 * 60_000;
    produce_minutes(&topic, 30, base).await;
    let groups: Vec<(String, i64)> = [5, 10, 20]
        .into_iter()
        .map(|at| (unique(&format!("lag-at-{at}")), at))
        .collect();
    for (group, at) in &groups {
        commit_offsets(group, &[(&topic, 0, *at)]);
    }
    let mut args = vec!["lag", "-o", "json"];
    for (group, _) in &groups {
        args.extend(["--group", group.as_str()]);
    }
    let json = expect_code(&args, 0).json();
    for (group, at) in &groups {
        let p = partitions_of(&json, group)[0];
        assert_eq!(p["lag"].as_i64(), Some(30 - at), "{group}");
        let seconds = p["lag_seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("{group}: {p:#}"));
        let expected = ((30 - at) * 60) as f64;
        assert!(
            (expected - 1.0..expected + 30.0).contains(&seconds),
            "{group} committed at {at}: expected about {expected} s, got {seconds}"
        );
    }
    // The same through describe, which reads all three at once too.
    let names: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
    let mut args = vec!["groups", "describe", "-o", "json"];
    args.extend(&names);
    let json = expect_code(&args, 0).json();
    let seconds: Vec<f64> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["max_lag_seconds"].as_f64().unwrap())
        .collect();
    assert_eq!(seconds.len(), 3);
    assert!(
        seconds.windows(2).all(|w| w[0] != w[1]),
        "three positions, three ages: {seconds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_marker_is_no_record_and_costs_no_timeout() {
    require_broker();
    let topic = unique("lag-marker");
    let group = unique("lag-marker-group");
    create_topic(&topic, 1).await;
    let producer: FutureProducer = client_config()
        .set("transactional.id", unique("lag-marker-tx"))
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    producer
        .commit_transaction(Duration::from_secs(10))
        .unwrap();
    // Offset 0 is the record, offset 1 the commit marker: a group at 1 has
    // lag 1 by the watermarks, and nothing left to read.
    commit_offsets(&group, &[(&topic, 0, 1)]);
    let started = Instant::now();
    let json = expect_code(
        &["lag", "--group", &group, "--timeout", "8s", "-o", "json"],
        0,
    )
    .json();
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
    let p = partitions_of(&json, &group)[0];
    assert_eq!(p["lag"], 1);
    assert!(p["lag_seconds"].is_null(), "{p:#}");
    assert!(
        json["groups"][0]["max_lag_seconds"].is_null(),
        "no figure rather than a partial one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consuming_k_of_n_leaves_n_minus_k() {
    require_broker();
    let topic = unique("lag-consume");
    let group = unique("lag-consume-group");
    create_topic(&topic, 1).await;
    produce_aged(&topic, 0, 50, Duration::ZERO).await;

    let consumer: BaseConsumer = client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut consumed = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumed < 18 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            consumed += 1;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
                .unwrap();
            consumer.commit(&tpl, CommitMode::Sync).unwrap();
        }
    }
    assert_eq!(consumed, 18);
    drop(consumer);

    let json = expect_code(&["lag", "--group", &group, "--summary", "-o", "json"], 0).json();
    assert_eq!(json["groups"][0]["total_lag"], 32);
    assert_eq!(partitions_of(&json, &group)[0]["committed"], 18);
}

fn config_with_threshold(group: &str, max_lag: i64) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smmctl.toml");
    std::fs::write(
        &path,
        format!(
            "profile = \"t\"\n[profiles.t.thresholds.groups.\"{group}\"]\nmax_lag = {max_lag}\n"
        ),
    )
    .unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_over_its_threshold_makes_lag_exit_1() {
    require_broker();
    let topic = unique("lag-threshold");
    let group = unique("lag-threshold-group");
    create_topic(&topic, 1).await;
    produce_aged(&topic, 0, 5, Duration::ZERO).await;
    commit_offsets(&group, &[(&topic, 0, 2)]);

    let (_dir, strict) = config_with_threshold(&group, 3);
    let r = expect_code(&["--config", &strict, "lag", "--group", &group], 1);
    assert!(r.stdout.contains("over threshold 3"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains(&format!("over the lag threshold: {group}")),
        "{}",
        r.stderr
    );

    let (_dir, loose) = config_with_threshold(&group, 4);
    expect_code(&["--config", &loose, "lag", "--group", &group], 0);
    // The panel's default threshold is 1000.
    expect_code(&["lag", "--group", &group], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_by_topic_finds_every_group_reading_it() {
    require_broker();
    let topic = unique("lag-by-topic");
    let (a, b) = (unique("lag-by-topic-a"), unique("lag-by-topic-b"));
    create_topic(&topic, 2).await;
    produce_aged(&topic, 0, 4, Duration::ZERO).await;
    commit_offsets(&a, &[(&topic, 0, 1)]);
    commit_offsets(&b, &[(&topic, 0, 4), (&topic, 1, 0)]);
    let json = expect_code(&["lag", "--topic", &topic, "-o", "json"], 0).json();
    let groups: Vec<&str> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(groups, expected);
    assert_eq!(json["groups"][0]["total_lag"], if a < b { 3 } else { 0 });
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_reports_statuses_from_its_window() {
    require_broker();
    let topic = unique("lag-watch");
    let group = unique("lag-watch-group");
    create_topic(&topic, 1).await;
    produce_aged(&topic, 0, 6, Duration::ZERO).await;
    commit_offsets(&group, &[(&topic, 0, 1)]);
    let r = expect_code(
        &[
            "lag", "--group", &group, "--watch", "300ms", "--window", "2", "--count", "2", "-o",
            "json",
        ],
        0,
    );
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    for line in &lines {
        assert_schema(line, "lag");
    }
    let status = |doc: &Value| {
        doc["groups"][0]["partitions"][0]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // One sample says nothing; two samples of a frozen offset with lag and
    // nobody consuming, a window apart, say the consumer stopped.
    assert_eq!(status(&lines[0]), "UNKNOWN");
    assert_eq!(status(&lines[1]), "STOP");
    assert_eq!(lines[1]["groups"][0]["status"], "STOP");
}

/// A consumer that stays in its group until dropped.
struct LiveMember {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveMember {
    fn join(group: &str, topic: &str, client_id: &str) -> LiveMember {
        let consumer: BaseConsumer = client_config()
            .set("group.id", group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
            assert!(Instant::now() < deadline, "no assignment");
            consumer.poll(Duration::from_millis(100));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                consumer.poll(Duration::from_millis(100));
            }
        });
        LiveMember {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LiveMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_describe_shows_the_members_of_a_live_group() {
    require_broker();
    let topic = unique("groups-live");
    let group = unique("groups-live-group");
    create_topic(&topic, 2).await;
    produce_aged(&topic, 0, 3, Duration::ZERO).await;
    commit_offsets(&group, &[(&topic, 0, 1)]);
    let _member = LiveMember::join(&group, &topic, "describe-me");

    let json = expect_code(&["groups", "describe", &group, "-o", "json"], 0).json();
    assert_schema(&json, "groups-describe");
    let g = &json["groups"][0];
    assert_eq!(g["state"], "Stable");
    assert_eq!(g["members"].as_array().unwrap().len(), 1);
    assert_eq!(g["members"][0]["client_id"], "describe-me");
    assert_eq!(g["members"][0]["assignment"].as_array().unwrap().len(), 2);
    assert_eq!(g["total_lag"], 2);
    for part in g["partitions"].as_array().unwrap() {
        assert_eq!(part["client_id"], "describe-me", "{part:#}");
    }

    let table = expect_code(&["groups", "describe", &group], 0);
    for needle in [
        "COORDINATOR",
        "Stable",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "describe-me",
        "no committed offset on",
    ] {
        let all = format!("{}{}", table.stdout, table.stderr);
        assert!(all.contains(needle), "{needle}:\n{all}");
    }

    let listed = expect_code(&["groups", "list", "--state", "stable", "-o", "json"], 0).json();
    let row = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{group} not listed as stable: {listed:#}"));
    assert_eq!(row["members"], 1);
    assert_eq!(row["seed"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_delete_refuses_a_live_group_and_deletes_an_empty_one() {
    require_broker();
    let topic = unique("groups-delete");
    let group = unique("groups-delete-group");
    create_topic(&topic, 1).await;
    commit_offsets(&group, &[(&topic, 0, 0)]);
    {
        let _member = LiveMember::join(&group, &topic, "still-here");
        let r = expect_code(&["groups", "delete", &group, "--execute", "--yes"], 1);
        assert!(r.stderr.contains("live members"), "{}", r.stderr);
        assert!(r.stderr.contains("still-here"), "{}", r.stderr);
    }
    let listed = expect_code(&["groups", "list", "-o", "json"], 0).json();
    assert!(
        listed["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == group.as_str())
    );

    let r = expect_code(&["groups", "delete", &group], 0);
    assert!(r.stderr.contains("Preview only"), "{}", r.stderr);
    expect_code(&["groups", "delete", &group, "--execute"], 1);
    let r = expect_code(&["groups", "delete", &group, "--execute", "--yes"], 0);
    assert!(r.stdout.contains("deleted"), "{}", r.stdout);
    let listed = expect_code(&["groups", "list", "-o", "json"], 0).json();
    assert!(
        !listed["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == group.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_groups_are_bad_input() {
    require_broker();
    let r = expect_code(&["groups", "describe", &unique("nobody")], 2);
    assert!(r.stderr.contains("no such consumer group"), "{}", r.stderr);
    expect_code(&["groups", "list", "--state", "sleepy"], 2);
}

/// Deletes the records of `topic`/`partition` before `offset`, moving its
/// log start there.
async fn delete_before(topic: &str, partition: i32, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    let done = admin()
        .delete_records(&tpl, &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    assert!(
        done.elements().iter().all(|e| e.error().is_ok()),
        "{done:?}"
    );
}

/// One of the panel's groups, which no other test uses, with a commit on a
/// topic of this test's own, removed again when the test ends.
struct SeedGroupCommit {
    group: &'static str,
    topic: String,
}

impl Drop for SeedGroupCommit {
    fn drop(&mut self) {
        // The group must not keep a commit on a throwaway topic: it would
        // add to the panel group's lag in every later `lag` run.
        let topic = self.topic.clone();
        let group = self.group;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let _ = smmctl::kafka::groups::delete_group_offsets(
                    &admin(),
                    group,
                    &[(topic.clone(), 0), (topic.clone(), 1)],
                    Duration::from_secs(10),
                )
                .await;
                delete_topics(&[&topic]).await;
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panel_group_without_a_commit_lags_by_its_whole_retained_log() {
    require_broker();
    let seed = "offer-assignment-group";
    let topic = unique("lag-nocommit");
    create_topic(&topic, 2).await;
    let _cleanup = SeedGroupCommit {
        group: seed,
        topic: topic.clone(),
    };
    produce_aged(&topic, 0, 5, Duration::ZERO).await;
    produce_aged(&topic, 1, 7, Duration::from_secs(60)).await;
    delete_before(&topic, 1, 2).await;
    commit_offsets(seed, &[(&topic, 0, 5)]);

    // The panel's workers read from the earliest offset: partition 1 holds
    // 5 records they have yet to read.
    let json = expect_code(
        &["lag", "--group", seed, "--topic", &topic, "-o", "json"],
        0,
    )
    .json();
    assert_schema(&json, "lag");
    let parts = partitions_of(&json, seed);
    let p1 = parts.iter().find(|p| p["partition"] == 1).unwrap();
    assert_eq!(
        (
            p1["committed"].as_i64(),
            p1["lag"].as_i64(),
            p1["lag_from"].as_str()
        ),
        (None, Some(5), Some("log_start")),
        "{p1:#}"
    );
    assert!(
        p1["note"].as_str().unwrap().contains("no committed offset"),
        "{p1:#}"
    );
    let seconds = p1["lag_seconds"].as_f64().unwrap();
    assert!((59.0..120.0).contains(&seconds), "lag_seconds {seconds}");
    let g = &json["groups"][0];
    assert_eq!(g["total_lag"], 5);
    assert_eq!(g["topics"][0]["lag"], 5);

    let table = expect_code(
        &["lag", "--group", seed, "--topic", &topic, "--partitions"],
        0,
    );
    let row = table
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("1"))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[3..7], ["-", "2", "7", "5"], "{row}");
    assert!(row.contains("no committed offset"), "{row}");

    let (_dir, strict) = config_with_threshold(seed, 5);
    let r = expect_code(
        &[
            "--config", &strict, "lag", "--group", seed, "--topic", &topic,
        ],
        1,
    );
    assert!(r.stdout.contains("over threshold 5"), "{}", r.stdout);

    // A group that is not the panel's may start at the log end
    // (auto.offset.reset=latest): no figure is made up for it.
    let other = unique("lag-nocommit-group");
    commit_offsets(&other, &[(&topic, 0, 5)]);
    let json = expect_code(&["lag", "--group", &other, "-o", "json"], 0).json();
    let p1 = partitions_of(&json, &other)
        .into_iter()
        .find(|p| p["partition"] == 1)
        .unwrap();
    assert!(p1["lag"].is_null() && p1["lag_from"].is_null(), "{p1:#}");
    assert!(
        p1["note"].as_str().unwrap().contains("auto.offset.reset"),
        "{p1:#}"
    );
    assert_eq!(json["groups"][0]["total_lag"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_past_the_log_end_is_an_anomaly_not_lag_0() {
    require_broker();
    let topic = unique("lag-pastend");
    let group = unique("lag-pastend-group");
    create_topic(&topic, 2).await;
    produce_aged(&topic, 0, 10, Duration::ZERO).await;
    produce_aged(&topic, 1, 10, Duration::ZERO).await;
    commit_offsets(&group, &[(&topic, 0, 25), (&topic, 1, 10)]);

    let r = expect_code(&["lag", "--group", &group, "-o", "json"], 1);
    let json = r.json();
    assert_schema(&json, "lag");
    let parts = partitions_of(&json, &group);
    let p0 = parts.iter().find(|p| p["partition"] == 0).unwrap();
    assert!(p0["lag"].is_null(), "never a made-up 0: {p0:#}");
    assert!(
        p0["note"].as_str().unwrap().contains("15 past the log end"),
        "{p0:#}"
    );
    let g = &json["groups"][0];
    assert_eq!(g["total_lag"], 0);
    assert!(
        g["anomaly"]
            .as_str()
            .unwrap()
            .contains(&format!("{topic}/0")),
        "{g:#}"
    );

    let summary = expect_code(&["lag", "--group", &group, "--summary"], 1);
    assert!(
        summary.stdout.contains("past the log end"),
        "{}",
        summary.stdout
    );
    let watch = expect_code(
        &[
            "lag",
            "--group",
            &group,
            "--watch",
            "1s",
            "--count",
            "1",
            "--partitions",
        ],
        1,
    );
    let row = watch
        .stdout
        .lines()
        .find(|l| l.contains(&topic) && l.split_whitespace().nth(2) == Some("0"))
        .unwrap_or_else(|| panic!("{}", watch.stdout));
    assert!(row.contains("past the log end"), "{row}");
    // The status flags it from the first sample: no history makes a
    // broken position any less broken.
    assert!(row.contains("BROKEN"), "{row}");
}
