//! `smmctl offsets reset` against the real broker: every mode to exact
//! offsets, harmless previews, live groups refused, undo.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A topic of `partitions` partitions with records 0..10 on each, record i
/// stamped at `base + i minutes`, and a group committed at `committed`.
struct Fixture {
    topic: String,
    group: String,
    base_ms: i64,
    _state: tempfile::TempDir,
}

impl Fixture {
    async fn new(partitions: i32, committed: &[(i32, i64)]) -> Fixture {
        require_broker();
        let topic = unique("offsets");
        let group = unique("offsets-group");
        create_topic(&topic, partitions).await;
        let base_ms = jiff::Timestamp::now().as_millisecond() - 3_600_000;
        let producer: FutureProducer = client_config().set("linger.ms", "0").create().unwrap();
        for p in 0..partitions {
            for i in 0..10i64 {
                producer
                    .send(
                        FutureRecord::to(&topic)
                            .partition(p)
                            .key("k")
                            .payload("v")
                            .timestamp(base_ms + i * 60_000),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap();
            }
        }
        let fixture = Fixture {
            topic,
            group,
            base_ms,
            _state: tempfile::tempdir().unwrap(),
        };
        if !committed.is_empty() {
            fixture.commit(committed);
        }
        fixture
    }

    fn commit(&self, offsets: &[(i32, i64)]) {
        let offsets: Vec<(&str, i32, i64)> = offsets
            .iter()
            .map(|&(p, o)| (self.topic.as_str(), p, o))
            .collect();
        commit_offsets(&self.group, &offsets);
    }

    /// The group's committed offsets, by partition; absent where none.
    fn committed(&self) -> BTreeMap<i32, i64> {
        let json = expect_code(
            &["lag", "--group", &self.group, "--no-time", "-o", "json"],
            0,
        )
        .json();
        json["groups"][0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["committed"].is_null())
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap() as i32,
                    p["committed"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// smmctl with the undo files kept in this fixture's own state folder.
    fn run(&self, args: &[&str], code: i32) -> Run {
        let mut cmd = smmctl();
        cmd.env("XDG_STATE_HOME", self._state.path());
        expect_code_with(cmd, args, code)
    }

    /// Restores the offsets an undo file holds, as its header says to.
    fn restore(&self, undo: &str) {
        self.run(
            &[
                "offsets",
                "reset",
                "--group",
                &self.group,
                "--from-file",
                undo,
                "--execute",
                "--yes",
            ],
            0,
        );
    }

    fn reset(&self, target: &[&str]) -> Run {
        let mut args = vec![
            "offsets",
            "reset",
            "--group",
            &self.group,
            "--topic",
            &self.topic,
        ];
        args.extend_from_slice(target);
        args.extend(["--execute", "--yes"]);
        self.run(&args, 0)
    }
}

/// The undo file a reset named on stderr.
fn undo_file(r: &Run) -> String {
    r.stderr
        .lines()
        .find_map(|l| l.strip_prefix("undo file: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no undo file named:\n{}", r.stderr))
        .to_string()
}

fn map(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    pairs.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mode_lands_on_exact_offsets() {
    let f = Fixture::new(2, &[(0, 4), (1, 6)]).await;
    f.reset(&["--to-earliest"]);
    assert_eq!(f.committed(), map(&[(0, 0), (1, 0)]));
    f.reset(&["--to-latest"]);
    assert_eq!(f.committed(), map(&[(0, 10), (1, 10)]));
    f.reset(&["--to-offset", "3"]);
    assert_eq!(f.committed(), map(&[(0, 3), (1, 3)]));
    f.reset(&["--shift-by", "4"]);
    assert_eq!(f.committed(), map(&[(0, 7), (1, 7)]));
    f.reset(&["--shift-by", "-2"]);
    assert_eq!(f.committed(), map(&[(0, 5), (1, 5)]));
    let r = f.reset(&["--to-current"]);
    assert!(r.stdout.contains("already there"), "{}", r.stdout);
    assert_eq!(f.committed(), map(&[(0, 5), (1, 5)]));

    // Record i is stamped base + i minutes: 2.5 minutes after base is record 3.
    let at = jiff::Timestamp::from_millisecond(f.base_ms + 150_000)
        .unwrap()
        .to_string();
    f.reset(&["--to-datetime", &at]);
    assert_eq!(f.committed(), map(&[(0, 3), (1, 3)]));
    // Now is base + 60 minutes, so 55 minutes ago is base + 5 minutes: record 5.
    f.reset(&["--by-duration", "55m"]);
    let c = f.committed();
    assert!(
        c.values().all(|&o| o == 5 || o == 6),
        "clock drift tolerance: {c:?}"
    );
    // Nothing that recent: the log end, noted.
    let r = f.reset(&["--by-duration", "1m"]);
    assert!(
        r.stdout.contains("no record at or after that time"),
        "{}",
        r.stdout
    );
    assert_eq!(f.committed(), map(&[(0, 10), (1, 10)]));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.csv");
    std::fs::write(
        &file,
        format!(
            "topic,partition,offset\n{t},0,2\n{g},{t},1,8\n",
            t = f.topic,
            g = f.group
        ),
    )
    .unwrap();
    f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--from-file",
            file.to_str().unwrap(),
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(f.committed(), map(&[(0, 2), (1, 8)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_and_out_of_range_targets() {
    let f = Fixture::new(3, &[(0, 1), (1, 1), (2, 1)]).await;
    let spec = format!("{}:0,2", f.topic);
    f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--topic",
            &spec,
            "--to-offset",
            "9",
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(f.committed(), map(&[(0, 9), (1, 1), (2, 9)]));

    let r = f.reset(&["--to-offset", "50"]);
    assert!(
        r.stdout.contains("clamped to the log end (asked for 50)"),
        "{}",
        r.stdout
    );
    assert_eq!(f.committed(), map(&[(0, 10), (1, 10), (2, 10)]));

    let r = f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--topic",
            &f.topic,
            "--to-offset",
            "50",
            "--strict",
            "--execute",
            "--yes",
        ],
        2,
    );
    assert!(r.stderr.contains("--strict"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_changes_nothing() {
    let f = Fixture::new(2, &[(0, 4)]).await;
    for target in [
        &["--to-earliest"][..],
        &["--to-latest"],
        &["--shift-by", "-3"],
        &["--to-offset", "8"],
    ] {
        let mut args = vec!["offsets", "reset", "--group", &f.group, "--all-topics"];
        args.extend_from_slice(target);
        let r = f.run(&args, 0);
        assert!(
            r.stderr.contains("Preview only: nothing was changed"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(f.committed(), map(&[(0, 4)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_group_is_refused_and_nothing_changes() {
    let f = Fixture::new(1, &[(0, 4)]).await;
    let consumer: BaseConsumer = client_config()
        .set("group.id", &f.group)
        .set("client.id", "live-one")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&f.topic]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while consumer.assignment().unwrap().count() == 0 {
        assert!(std::time::Instant::now() < deadline);
        consumer.poll(Duration::from_millis(100));
    }
    let r = f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--topic",
            &f.topic,
            "--to-earliest",
            "--execute",
            "--yes",
        ],
        1,
    );
    assert!(r.stderr.contains("live member"), "{}", r.stderr);
    assert!(r.stderr.contains("live-one"), "{}", r.stderr);
    assert!(r.stderr.contains("Nothing was changed"), "{}", r.stderr);
    drop(consumer);
    assert_eq!(f.committed(), map(&[(0, 4)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_restores_the_exact_prior_offsets_even_where_there_were_none() {
    let f = Fixture::new(3, &[(0, 4), (1, 7)]).await;
    let before = f.committed();
    assert_eq!(before, map(&[(0, 4), (1, 7)]));
    let r = f.reset(&["--to-latest"]);
    assert_eq!(f.committed(), map(&[(0, 10), (1, 10), (2, 10)]));
    let undo = undo_file(&r);
    assert!(
        undo.starts_with(f._state.path().to_str().unwrap()),
        "{undo}"
    );
    let text = std::fs::read_to_string(&undo).unwrap();
    assert!(text.contains(&format!("\n{},2,-\n", f.topic)), "{text}");

    f.restore(&undo);
    assert_eq!(
        f.committed(),
        before,
        "partition 2 had no commit and must have none again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_a_plan_that_applies_as_a_file() {
    let f = Fixture::new(2, &[(0, 1), (1, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    let plan_arg = plan.to_str().unwrap();
    f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--all-topics",
            "--shift-by",
            "3",
            "--export",
            plan_arg,
        ],
        0,
    );
    assert_eq!(
        f.committed(),
        map(&[(0, 1), (1, 1)]),
        "export is not execute"
    );
    f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--from-file",
            plan_arg,
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(f.committed(), map(&[(0, 4), (1, 4)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_without_a_terminal_needs_yes() {
    let f = Fixture::new(1, &[(0, 4)]).await;
    let r = f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
        1,
    );
    assert!(r.stderr.contains("no terminal"), "{}", r.stderr);
    assert_eq!(f.committed(), map(&[(0, 4)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2_and_changes_nothing() {
    let f = Fixture::new(1, &[(0, 4)]).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{},0,3\n{},zero,1\n", f.topic, f.topic)).unwrap();
    let bad_arg = bad.to_str().unwrap();
    let missing_topic = unique("missing");
    let missing_partition = format!("{}:7", f.topic);
    let g = f.group.as_str();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--topic", &f.topic, "--to-datetime", "yesterday"],
            "not a point in time",
        ),
        (
            vec!["--topic", &f.topic, "--by-duration", "soon"],
            "not a duration",
        ),
        (
            vec!["--topic", &missing_topic, "--to-earliest"],
            "does not exist",
        ),
        (
            vec!["--topic", &missing_partition, "--to-earliest"],
            "partition 7",
        ),
        (vec!["--topic", &f.topic, "--to-offset", "-4"], "-4"),
        (
            vec!["--topic", &f.topic, "--to-earliest", "--to-latest"],
            "cannot be used with",
        ),
        (vec!["--topic", &f.topic], "required"),
        (
            vec!["--from-file", bad_arg],
            "line 2: partition `zero` is not a number",
        ),
        (vec!["--to-earliest"], "choose the partitions"),
        (
            vec!["--category", "nope", "--to-earliest"],
            "unknown category",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["offsets", "reset", "--group", g];
        args.extend(extra.iter().copied());
        args.extend(["--execute", "--yes"]);
        let r = f.run(&args, 2);
        assert!(r.stderr.contains(needle), "{extra:?}: {}", r.stderr);
    }
    assert_eq!(f.committed(), map(&[(0, 4)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_and_result_tables_are_exact() {
    let f = Fixture::new(2, &[(0, 4)]).await;
    // Names are unique per run, so compare cell by cell with them replaced.
    let cells = |text: &str| -> Vec<String> {
        text.replace(&f.group, "GROUP")
            .replace(&f.topic, "TOPIC")
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let json: serde_json::Value = serde_json::from_str(
        &f.run(
            &[
                "offsets",
                "reset",
                "--group",
                &f.group,
                "--all-topics",
                "--to-offset",
                "6",
                "-o",
                "json",
            ],
            0,
        )
        .stdout,
    )
    .unwrap();
    assert_schema(&json, "offsets-reset");
    let preview = f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--all-topics",
            "--to-offset",
            "6",
        ],
        0,
    );
    assert_eq!(
        cells(&preview.stdout),
        [
            "GROUP TOPIC PARTITION CURRENT LOG-START LOG-END NEW NOTE",
            "GROUP TOPIC 0 4 0 10 6 skips 2",
            "GROUP TOPIC 1 - 0 10 6 first commit: skips up to 6",
        ]
    );
    let applied = f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--all-topics",
            "--to-offset",
            "6",
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(
        cells(&applied.stdout),
        [
            "GROUP TOPIC PARTITION CURRENT LOG-START LOG-END NEW NOTE",
            "GROUP TOPIC 0 4 0 10 6 skips 2",
            "GROUP TOPIC 1 - 0 10 6 first commit: skips up to 6",
            "",
            "GROUP TOPIC PARTITION CURRENT LOG-START LOG-END NEW RESULT NOTE",
            "GROUP TOPIC 0 4 0 10 6 ok skips 2",
            "GROUP TOPIC 1 - 0 10 6 ok first commit: skips up to 6",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undo_file_reads_back_whatever_the_group_is_called() {
    let mut f = Fixture::new(1, &[]).await;
    f.group = format!("{},with comma #and hash", unique("odd"));
    f.commit(&[(0, 3)]);
    let r = f.reset(&["--to-latest"]);
    assert_eq!(f.committed(), map(&[(0, 10)]));
    let undo = undo_file(&r);
    f.restore(&undo);
    assert_eq!(f.committed(), map(&[(0, 3)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_commit_at_the_log_end_skips_the_whole_retained_backlog() {
    let f = Fixture::new(1, &[]).await;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&f.topic, 0, rdkafka::Offset::Offset(3))
        .unwrap();
    admin()
        .delete_records(&tpl, &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    let preview = |extra: &[&str]| {
        let mut args = vec![
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--topic",
            &f.topic,
            "--to-latest",
        ];
        args.extend_from_slice(extra);
        f.run(&args, 0)
    };
    let json = preview(&["-o", "json"]).json();
    assert_schema(&json, "offsets-reset");
    let row = &json["partitions"][0];
    assert_eq!(
        (
            row["current"].as_i64(),
            row["new"].as_i64(),
            row["skips"].as_i64(),
            row["rereads"].as_i64()
        ),
        (None, Some(10), Some(7), Some(0)),
        "{row:#}"
    );
    let notes = row["notes"].to_string();
    assert!(notes.contains("first commit"), "{notes}");
    assert!(notes.contains("skips up to 7"), "{notes}");
    let table = preview(&[]);
    assert!(table.stdout.contains("skips up to 7"), "{}", table.stdout);
    assert!(!table.stdout.contains("skips 0"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_hidden_by_a_pending_transaction_is_refused() {
    use rdkafka::producer::Producer;
    let f = Fixture::new(2, &[(0, 3), (1, 3)]).await;
    // A transactional commit of 6 on partition 0, still open: the group's
    // real position there is unknown until the transaction ends.
    let member: BaseConsumer = client_config()
        .set("group.id", &f.group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = member.group_metadata().unwrap();
    let producer: FutureProducer = client_config()
        .set("transactional.id", unique("offsets-pending-tx"))
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    producer.begin_transaction().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&f.topic, 0, rdkafka::Offset::Offset(6))
        .unwrap();
    producer
        .send_offsets_to_transaction(&tpl, &metadata, Duration::from_secs(10))
        .unwrap();

    let r = f.run(
        &[
            "offsets",
            "reset",
            "--group",
            &f.group,
            "--topic",
            &f.topic,
            "--to-earliest",
            "--execute",
            "--yes",
        ],
        1,
    );
    assert!(
        r.stderr.contains(&format!("{}/0", f.topic)),
        "names the partition: {}",
        r.stderr
    );
    assert!(
        r.stderr.to_lowercase().contains("unstable"),
        "names the error: {}",
        r.stderr
    );
    assert!(r.stderr.contains("Nothing was changed"), "{}", r.stderr);
    assert!(!r.stderr.contains("undo file:"), "{}", r.stderr);
    producer.abort_transaction(Duration::from_secs(10)).unwrap();
    assert_eq!(f.committed(), map(&[(0, 3), (1, 3)]));
}
