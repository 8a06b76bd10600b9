//! `smmctl records delete` against the real broker: every mode, the new log
//! start, what a consumer sees afterwards, and the guards.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

/// `partitions` partitions with records 0..10 each, record i stamped
/// `base + i minutes`, an hour ago.
async fn topic_with_records(name: &str, partitions: i32) -> i64 {
    create_topic(name, partitions).await;
    let base = jiff::Timestamp::now().as_millisecond() - 3_600_000;
    let producer: FutureProducer = client_config().set("linger.ms", "0").create().unwrap();
    for p in 0..partitions {
        for i in 0..10i64 {
            let key = format!("{p}-{i}");
            producer
                .send(
                    FutureRecord::to(name)
                        .partition(p)
                        .key(&key)
                        .payload("v")
                        .timestamp(base + i * 60_000),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    }
    base
}

/// The log start offset of each partition, via smmctl's own JSON.
fn log_starts(topic: &str) -> Vec<i64> {
    let json = expect_code(
        &[
            "records",
            "delete",
            "--topic",
            topic,
            "--before-offset",
            "0",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_schema(&json, "records-delete");
    json["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_start"].as_i64().unwrap())
        .collect()
}

/// Offsets a fresh consumer reads from the beginning of one partition.
fn read_offsets(topic: &str, partition: i32) -> Vec<i64> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                seen.push(m.offset());
                if m.offset() == 9 {
                    break;
                }
            }
            _ if seen.last() == Some(&9) => break,
            _ => {}
        }
    }
    seen
}

fn delete(args: &[&str], code: i32) -> Run {
    let mut all = vec!["records", "delete"];
    all.extend_from_slice(args);
    expect_code(&all, code)
}

#[tokio::test(flavor = "multi_thread")]
async fn before_offset_moves_the_log_start_and_readers_never_see_deleted_records() {
    require_broker();
    let topic = unique("records-offset");
    topic_with_records(&topic, 2).await;
    let r = delete(
        &[
            "--topic",
            &topic,
            "--partition",
            "1",
            "--before-offset",
            "4",
            "--execute",
            "--yes",
            "-o",
            "json",
        ],
        0,
    );
    let json = r.json();
    let rows = json["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["partition"].as_i64(),
            rows[0]["new_log_start"].as_i64()
        ),
        (Some(1), Some(4))
    );
    assert_eq!(rows[0]["result"], "deleted");
    assert_eq!(log_starts(&topic), [0, 4]);
    assert_eq!(read_offsets(&topic, 1), (4..10).collect::<Vec<_>>());
    assert_eq!(read_offsets(&topic, 0), (0..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn time_based_modes_cut_at_the_first_record_at_or_after_the_time() {
    require_broker();
    let topic = unique("records-time");
    let base = topic_with_records(&topic, 1).await;
    // 3.5 minutes after the first record: records 0..=3 are older.
    let at = jiff::Timestamp::from_millisecond(base + 210_000)
        .unwrap()
        .to_string();
    delete(
        &[
            "--topic",
            &topic,
            "--before-datetime",
            &at,
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(log_starts(&topic), [4]);
    // Now is base + 60 minutes; older than 54.5 minutes is before base + 5.5: records up to 5.
    delete(
        &[
            "--topic",
            &topic,
            "--older-than",
            "54m30s",
            "--execute",
            "--yes",
        ],
        0,
    );
    let start = log_starts(&topic)[0];
    assert!(start == 6 || start == 7, "clock drift tolerance: {start}");
    assert_eq!(read_offsets(&topic, 0).first().copied(), Some(start));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_empties_the_partitions() {
    require_broker();
    let topic = unique("records-all");
    topic_with_records(&topic, 3).await;
    delete(&["--topic", &topic, "--all", "--execute", "--yes"], 0);
    assert_eq!(log_starts(&topic), [10, 10, 10]);
    assert!(read_offsets(&topic, 2).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn files_in_kafka_json_and_csv_form() {
    require_broker();
    let topic = unique("records-file");
    topic_with_records(&topic, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("delete.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":2}},{{"topic":"{topic}","partition":2,"offset":-1}}],"version":1}}"#
        ),
    )
    .unwrap();
    delete(
        &["--from-file", json.to_str().unwrap(), "--execute", "--yes"],
        0,
    );
    assert_eq!(log_starts(&topic), [2, 0, 10]);
    let csv = dir.path().join("delete.csv");
    std::fs::write(&csv, format!("topic,partition,offset\n{topic},1,5\n")).unwrap();
    delete(
        &["--from-file", csv.to_str().unwrap(), "--execute", "--yes"],
        0,
    );
    assert_eq!(log_starts(&topic), [2, 5, 10]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_deletes_nothing_and_names_groups_that_would_lose_records() {
    require_broker();
    let topic = unique("records-unread");
    let group = unique("records-unread-group");
    topic_with_records(&topic, 1).await;
    commit_offsets(&group, &[(&topic, 0, 2)]);

    let preview = delete(&["--topic", &topic, "--before-offset", "5"], 0);
    assert!(
        preview.stdout.contains(&format!("{group} has not read 3")),
        "{}",
        preview.stdout
    );
    assert!(
        preview
            .stderr
            .contains(&format!("group {group} would lose 3 unprocessed record(s)")),
        "{}",
        preview.stderr
    );
    assert!(
        preview.stderr.contains("Preview only: nothing was changed"),
        "{}",
        preview.stderr
    );
    assert_eq!(log_starts(&topic), [0]);

    let refused = delete(
        &[
            "--topic",
            &topic,
            "--before-offset",
            "5",
            "--execute",
            "--yes",
        ],
        1,
    );
    assert!(
        refused.stderr.contains("refusing without --force"),
        "{}",
        refused.stderr
    );
    assert_eq!(log_starts(&topic), [0]);

    // Records the group has read can go without --force.
    delete(
        &[
            "--topic",
            &topic,
            "--before-offset",
            "2",
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(log_starts(&topic), [2]);
    delete(
        &[
            "--topic",
            &topic,
            "--before-offset",
            "5",
            "--execute",
            "--yes",
            "--force",
        ],
        0,
    );
    assert_eq!(log_starts(&topic), [5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_and_without_yes_it_is_refused() {
    require_broker();
    let topic = unique("records-noterm");
    topic_with_records(&topic, 1).await;
    let r = delete(&["--topic", &topic, "--all", "--execute"], 1);
    assert!(r.stderr.contains("no terminal"), "{}", r.stderr);
    assert_eq!(log_starts(&topic), [0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn financial_and_main_topics_need_force() {
    require_broker();
    let money = format!("smm.payment.{}", unique("guard"));
    topic_with_records(&money, 1).await;
    let r = delete(
        &[
            "--topic",
            &money,
            "--before-offset",
            "3",
            "--execute",
            "--yes",
        ],
        1,
    );
    assert!(r.stderr.contains("is a financial topic"), "{}", r.stderr);
    assert_eq!(log_starts(&money), [0]);
    delete(
        &[
            "--topic",
            &money,
            "--before-offset",
            "3",
            "--execute",
            "--yes",
            "--force",
        ],
        0,
    );
    assert_eq!(log_starts(&money), [3]);

    expect_code(&["topics", "apply", "--category", "offer-management"], 0);
    let main = "smm.offer.assignment.events";
    produce(main, None, &[("k", b"{}")], &[]).await;
    let before = log_starts(main);
    let r = delete(&["--topic", main, "--all", "--execute", "--yes"], 1);
    assert!(
        r.stderr.contains("is a main topic of the panel"),
        "{}",
        r.stderr
    );
    assert_eq!(log_starts(main), before, "nothing may be deleted");

    // A file naming a financial topic among others is refused as a whole.
    let plain = unique("records-plain");
    topic_with_records(&plain, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.csv");
    std::fs::write(&file, format!("{plain},0,2\n{money},0,5\n")).unwrap();
    let r = delete(
        &["--from-file", file.to_str().unwrap(), "--execute", "--yes"],
        1,
    );
    assert!(r.stderr.contains("is a financial topic"), "{}", r.stderr);
    assert_eq!(log_starts(&plain), [0]);
    assert_eq!(log_starts(&money), [3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_group_that_has_not_committed_yet_still_counts_as_unread() {
    require_broker();
    let topic = unique("records-live");
    let group = unique("records-live-group");
    topic_with_records(&topic, 1).await;
    let consumer: BaseConsumer = client_config()
        .set("group.id", &group)
        .set("client.id", "reader-in-progress")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().unwrap().count() == 0 {
        assert!(Instant::now() < deadline);
        consumer.poll(Duration::from_millis(100));
    }
    let preview = delete(&["--topic", &topic, "--all"], 0);
    assert!(
        preview.stderr.contains(&format!(
            "group {group} would lose 10 unprocessed record(s)"
        )) && preview
            .stderr
            .contains("live member owns it, no commit yet"),
        "{}",
        preview.stderr
    );
    let r = delete(&["--topic", &topic, "--all", "--execute", "--yes"], 1);
    assert!(
        r.stderr.contains("refusing without --force"),
        "{}",
        r.stderr
    );
    drop(consumer);
    assert_eq!(log_starts(&topic), [0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2_and_deletes_nothing() {
    require_broker();
    let topic = unique("records-bad");
    topic_with_records(&topic, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"partitions":[{"topic":"t","partition":0,"offset":-7}],"version":1}"#,
    )
    .unwrap();
    let missing = unique("records-missing");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--topic", &topic, "--before-datetime", "last tuesday"],
            "not a point in time",
        ),
        (
            vec!["--topic", &topic, "--older-than", "a while"],
            "not a duration",
        ),
        (vec!["--topic", &missing, "--all"], "does not exist"),
        (
            vec!["--topic", &topic, "--partition", "4", "--all"],
            "does not exist",
        ),
        (vec!["--topic", &topic, "--before-offset", "-3"], "-3"),
        (
            vec!["--topic", &topic, "--all", "--before-offset", "3"],
            "cannot be used with",
        ),
        (
            vec!["--from-file", bad.to_str().unwrap()],
            "offset -7 is negative",
        ),
        (vec!["--topic", &topic], "required"),
    ];
    for (args, needle) in cases {
        let mut all = args.clone();
        all.extend(["--execute", "--yes", "--force"]);
        let r = delete(&all, 2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    assert_eq!(log_starts(&topic), [0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_and_result_tables_are_exact() {
    require_broker();
    let topic = unique("records-table");
    topic_with_records(&topic, 2).await;
    let cells = |text: &str| -> Vec<String> {
        text.replace(&topic, "TOPIC")
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let preview = delete(&["--topic", &topic, "--before-offset", "3"], 0);
    assert_eq!(
        cells(&preview.stdout),
        [
            "TOPIC PARTITION LOG-START NEW-LOG-START RECORDS LOG-END NOTE",
            "TOPIC 0 0 3 3 10",
            "TOPIC 1 0 3 3 10",
        ]
    );
    let done = delete(
        &[
            "--topic",
            &topic,
            "--before-offset",
            "3",
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(
        cells(&done.stdout),
        [
            "TOPIC PARTITION LOG-START NEW-LOG-START RECORDS LOG-END NOTE",
            "TOPIC 0 0 3 3 10",
            "TOPIC 1 0 3 3 10",
            "",
            "TOPIC PARTITION LOG-START NEW-LOG-START RECORDS LOG-END RESULT NOTE",
            "TOPIC 0 0 3 3 10 deleted",
            "TOPIC 1 0 3 3 10 deleted",
        ]
    );
    let json: Value = delete(&["--topic", &topic, "--all", "-o", "json"], 0).json();
    assert_eq!(json["partitions"][0]["log_start"], 3);
    assert_eq!(json["partitions"][0]["records"], 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_the_broker_refuses_is_reported_and_exits_1() {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    require_broker();
    // Kafka refuses DeleteRecords on compacted topics.
    let compacted = unique("records-compacted");
    admin()
        .create_topics(
            &[NewTopic::new(&compacted, 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    wait_for_topic(&compacted, Some(1));
    produce(
        &compacted,
        None,
        &[("a", b"1"), ("b", b"2"), ("c", b"3")],
        &[],
    )
    .await;
    let plain = unique("records-plain-ok");
    topic_with_records(&plain, 1).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("both.csv");
    std::fs::write(&file, format!("{plain},0,4\n{compacted},0,2\n")).unwrap();
    let r = delete(
        &[
            "--from-file",
            file.to_str().unwrap(),
            "--execute",
            "--yes",
            "-o",
            "json",
        ],
        1,
    );
    let json = r.json();
    assert_schema(&json, "records-delete");
    let result = |topic: &str| {
        json["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["topic"] == topic)
            .map(|p| p["result"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(result(&plain), "deleted");
    assert!(
        result(&compacted).starts_with("failed: the broker's policy rejected"),
        "{json:#}"
    );
    assert_eq!(log_starts(&plain), [4]);
    assert_eq!(log_starts(&compacted), [0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_records_refuses_a_deletion_that_grew_too_large() {
    require_broker();
    let topic = unique("records-limit");
    topic_with_records(&topic, 2).await;
    let preview = delete(&["--topic", &topic, "--all", "--max-records", "15"], 0);
    assert!(
        preview
            .stderr
            .contains("20 record(s) would be deleted, more than --max-records 15"),
        "{}",
        preview.stderr
    );
    let r = delete(
        &[
            "--topic",
            &topic,
            "--all",
            "--max-records",
            "15",
            "--execute",
            "--yes",
        ],
        1,
    );
    assert!(
        r.stderr.contains("more than --max-records 15"),
        "{}",
        r.stderr
    );
    assert_eq!(log_starts(&topic), [0, 0]);
    delete(
        &[
            "--topic",
            &topic,
            "--all",
            "--max-records",
            "20",
            "--execute",
            "--yes",
        ],
        0,
    );
    assert_eq!(log_starts(&topic), [10, 10]);
}
