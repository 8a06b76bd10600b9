//! The destructive commands' shared flow against the real broker: what a
//! drain may delete, the guards it shares with `records delete`, the audit
//! trail, and read-only profiles.

mod common;

use std::path::Path;

use common::*;
use smm_workers::contract::headers;

/// A dead letter as Spring writes it, failing with `class`.
fn letter_headers(class: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (headers::ORIGINAL_TOPIC, b"smm.test.original".to_vec()),
        (headers::EXCEPTION_FQCN, class.as_bytes().to_vec()),
        (
            headers::EXCEPTION_MESSAGE,
            format!("{class}: it failed").into_bytes(),
        ),
    ]
}

async fn produce_letters(topic: &str, classes: &[&str]) {
    let producer = producer();
    for (n, class) in classes.iter().enumerate() {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in letter_headers(class) {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let value = format!("{{\"n\":{n}}}");
        producer
            .send(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(&format!("k{n}"))
                    .payload(value.as_bytes())
                    .partition(0)
                    .headers(h),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// A new one-partition dead-letter topic holding letters failing with
/// `classes`, and a processing group of its own.
async fn dead_letters(what: &str, classes: &[&str]) -> (String, String) {
    let dlq = format!("{}.dlq", unique(what));
    create_topic(&dlq, 1).await;
    produce_letters(&dlq, classes).await;
    (dlq, unique("drain-group"))
}

/// `dlq drain DLQ --group GROUP --archive ARCHIVE`, then `extra`.
fn drain_args<'a>(
    dlq: &'a str,
    group: &'a str,
    archive: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "dlq",
        "drain",
        dlq,
        "--group",
        group,
        "--archive",
        archive.to_str().expect("a UTF-8 temporary path"),
    ];
    args.extend_from_slice(extra);
    args
}

fn archive_offsets(path: &Path) -> Vec<(i64, bool)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["offset"].as_i64().unwrap(),
                v["already_handled"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn with_audit(file: &Path) -> std::process::Command {
    let mut cmd = smmctl();
    cmd.env("SMM_AUDIT_FILE", file);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_of_a_range_behind_unhandled_records_deletes_and_archives_nothing() {
    require_broker();
    let (dlq, group) = dead_letters("drain-range", &["x.Bad"; 200]).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.jsonl");
    let archive_arg = archive.to_str().unwrap();
    let drain = |extra: &[&str]| {
        let mut args = vec![
            "dlq",
            "drain",
            &dlq,
            "--group",
            &group,
            "--archive",
            archive_arg,
            "--delete",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };

    // The group has no commit: it is at the log start, and offsets 0-99
    // are records nobody handled.
    let preview = drain(&["--offset-range", "100-150"]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    let preview = preview.json();
    assert_schema(&preview, "dlq-drain");
    let plan = &preview["partitions"][0];
    assert_eq!(plan["group_at"], serde_json::Value::Null);
    assert_eq!(plan["moves_to"], serde_json::Value::Null);
    assert_eq!(plan["stopped_at"], 0);
    assert_eq!(plan["held_back"], 51);
    assert_eq!(plan["deletes_before"], serde_json::Value::Null);

    let executed = drain(&["--offset-range", "100-150", "--execute", "--yes"]);
    assert_eq!(executed.code, 1, "held back records: {}", executed.stderr);
    assert_eq!(watermarks(&dlq, 0), (0, 200), "nothing may be deleted");
    assert!(!archive.exists(), "nothing was drained, so no archive");
    assert_eq!(committed_offsets(&group, &dlq, 1), vec![None]);

    // From the group's position, the same range drains, and everything the
    // delete removes is in the archive.
    let executed = drain(&["--offset-range", "0-150", "--execute", "--yes"]);
    assert_eq!(executed.code, 0, "{}", executed.stderr);
    let report = executed.json();
    assert_schema(&report, "dlq-drain");
    assert_eq!(report["archived"], 151);
    assert_eq!(report["deleted_before"]["0"], 151);
    assert_eq!(watermarks(&dlq, 0), (151, 200));
    assert_eq!(committed_offsets(&group, &dlq, 1), vec![Some(151)]);
    let archived = archive_offsets(&archive);
    assert_eq!(
        archived,
        (0..151).map(|o| (o, false)).collect::<Vec<_>>(),
        "every deleted record is in the archive"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_stops_the_group_at_the_first_record_it_leaves_and_says_so() {
    require_broker();
    let dlq = format!("{}.dlq", unique("drain-gap"));
    let group = unique("drain-group");
    create_topic(&dlq, 1).await;
    produce_letters(
        &dlq,
        &["x.PaidByHand", "x.PaidByHand", "x.Other", "x.PaidByHand"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("gap.jsonl");
    let r = run(&[
        "dlq",
        "drain",
        &dlq,
        "--group",
        &group,
        "--exception",
        "PaidByHand",
        "--archive",
        archive.to_str().unwrap(),
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 1, "a partial drain exits 1: {}", r.stderr);
    let report = r.json();
    assert_eq!(report["drained"], 2);
    assert_eq!(report["held_back"], 1);
    assert_eq!(report["partitions"][0]["stopped_at"], 2);
    assert_eq!(committed_offsets(&group, &dlq, 1), vec![Some(2)]);
    assert_eq!(
        archive_offsets(&archive),
        vec![(0, false), (1, false)],
        "only what the group moved past is archived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_delete_keeps_the_guards_of_records_delete() {
    require_broker();
    let dir = tempfile::tempdir().unwrap();

    // A financial dead-letter topic needs --force.
    let money = format!("smm.payment.{}.dlq", unique("drain"));
    let group = unique("drain-group");
    create_topic(&money, 1).await;
    produce_letters(&money, &["x.Bad"; 3]).await;
    let archive = dir.path().join("money.jsonl");
    let args = drain_args(
        &money,
        &group,
        &archive,
        &["--delete", "--execute", "--yes"],
    );
    let refused = expect_code(&args, 1);
    assert!(refused.stderr.contains("financial"), "{}", refused.stderr);
    assert_eq!(watermarks(&money, 0), (0, 3));
    assert!(!archive.exists());
    assert_eq!(committed_offsets(&group, &money, 1), vec![None]);
    let mut forced = args.to_vec();
    forced.push("--force");
    expect_code(&forced, 0);
    assert_eq!(watermarks(&money, 0), (3, 3));

    // Another group that has not read the records stops the delete.
    let dlq = format!("{}.dlq", unique("drain-unread"));
    create_topic(&dlq, 1).await;
    produce_letters(&dlq, &["x.Bad"; 4]).await;
    let reader = unique("other-reader");
    commit_offsets(&reader, &[(&dlq, 0, 1)]);
    let archive = dir.path().join("unread.jsonl");
    let refused = expect_code(
        &drain_args(&dlq, &group, &archive, &["--delete", "--execute", "--yes"]),
        1,
    );
    assert!(refused.stderr.contains(&reader), "{}", refused.stderr);
    assert_eq!(watermarks(&dlq, 0), (0, 4));
    assert!(!archive.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executed_command_leaves_one_audit_line_and_a_preview_none() {
    require_broker();
    let (dlq, group) = dead_letters("audit", &["x.Bad"; 2]).await;
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("state").join("audit.jsonl");
    let archive = dir.path().join("a.jsonl");
    let mut args = drain_args(&dlq, &group, &archive, &["-X", "sasl.password=hunter2"]);
    expect_code_with(with_audit(&trail), &args, 0);
    assert!(!trail.exists(), "a preview wrote the audit trail");
    args.extend(["--execute", "--yes"]);
    expect_code_with(with_audit(&trail), &args, 0);

    let text = std::fs::read_to_string(&trail).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.contains("hunter2"),
        "a secret reached the trail: {text}"
    );
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["command"], "dlq drain");
    assert_eq!(line["exit_code"], 0);
    assert_eq!(line["plan"]["partitions"][0]["moves_to"], 2);
    assert_eq!(line["result"]["committed"]["0"], 2);
    assert!(line["user"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(line["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(
        line["command_line"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == "sasl.password=****"),
        "{line}"
    );

    let listed = expect_code_with(
        with_audit(&trail),
        &["audit", "--command", "dlq", "--since", "1h", "-o", "json"],
        0,
    )
    .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let none = expect_code_with(
        with_audit(&trail),
        &["audit", "--command", "offsets reset", "-o", "json"],
        0,
    )
    .json();
    assert_eq!(none.as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trail_that_cannot_be_written_stops_the_command_before_it_changes_anything() {
    require_broker();
    let (dlq, group) = dead_letters("audit-fail", &["x.Bad"; 2]).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.jsonl");
    // A path below a regular file can never be created.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let r = expect_code_with(
        with_audit(&blocker.join("audit.jsonl")),
        &drain_args(&dlq, &group, &archive, &["--delete", "--execute", "--yes"]),
        1,
    );
    assert!(r.stderr.contains("audit trail"), "{}", r.stderr);
    assert_eq!(watermarks(&dlq, 0), (0, 2));
    assert!(!archive.exists());
    assert_eq!(committed_offsets(&group, &dlq, 1), vec![None]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_profile_refuses_every_destructive_command() {
    require_broker();
    let topic = unique("read-only");
    let dlq = format!("{topic}.dlq");
    let group = unique("read-only-group");
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    produce(&topic, Some(0), &[("k", b"v"), ("k", b"v")], &[]).await;
    produce_letters(&dlq, &["x.Bad"; 2]).await;
    commit_offsets(&group, &[(&topic, 0, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"prod\"\n[profiles.prod]\nbrokers = \"{}\"\nread_only = true\n",
            brokers()
        ),
    )
    .unwrap();
    let archive = dir.path().join("a.jsonl");
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "offsets",
            "reset",
            "--group",
            &group,
            "--topic",
            &topic,
            "--to-latest",
        ],
        vec!["records", "delete", "--topic", &topic, "--all", "--force"],
        vec!["groups", "delete", &group],
        vec!["topics", "delete", &topic, "--force"],
        vec!["dlq", "replay", &dlq, "--to", &topic],
        vec!["dlq", "drain", &dlq, "--archive", archive.to_str().unwrap()],
    ];
    for command in commands {
        let mut cmd = smmctl();
        cmd.env("SMM_CONFIG", &config);
        // A preview reads only, and is allowed.
        expect_code_with(cmd, &command, 0);
        let mut cmd = smmctl();
        cmd.env("SMM_CONFIG", &config);
        let mut args = command.clone();
        args.extend(["--execute", "--yes"]);
        let r = expect_code_with(cmd, &args, 1);
        assert!(
            r.stderr.contains("read-only") && r.stderr.contains("prod"),
            "{}: {}",
            command.join(" "),
            r.stderr
        );
    }
    assert_eq!(watermarks(&topic, 0), (0, 2));
    assert_eq!(watermarks(&dlq, 0), (0, 2));
    assert_eq!(committed_offsets(&group, &topic, 1), vec![Some(1)]);
    assert!(!archive.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_fails_part_way_leaves_its_error_in_the_audit_trail() {
    require_broker();
    let (dlq, group) = dead_letters("audit-error", &["x.Bad"; 2]).await;
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    // The archive must be new: an existing file stops the drain after it
    // was confirmed, before the group moves.
    let archive = dir.path().join("taken.jsonl");
    std::fs::write(&archive, b"somebody else's\n").unwrap();
    let r = expect_code_with(
        with_audit(&trail),
        &drain_args(&dlq, &group, &archive, &["--execute", "--yes"]),
        2,
    );
    assert!(r.stderr.contains("must not exist yet"), "{}", r.stderr);
    assert_eq!(committed_offsets(&group, &dlq, 1), vec![None]);
    let text = std::fs::read_to_string(&trail).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["exit_code"], 2);
    assert!(
        line["result"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("must not exist yet")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_drain_archive_sends_only_what_was_drained() {
    require_broker();
    let dlq = format!("{}.dlq", unique("drain-archive"));
    let to = unique("drain-archive-to");
    let group = unique("drain-group");
    create_topic(&dlq, 1).await;
    create_topic(&to, 1).await;
    produce_letters(&dlq, &["x.Bad"; 4]).await;
    // Offsets 0 and 1 were replayed by an earlier run.
    commit_offsets(&group, &[(&dlq, 0, 2)]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.jsonl");
    let archive_arg = archive.to_str().unwrap();
    expect_code(
        &drain_args(&dlq, &group, &archive, &["--delete", "--execute", "--yes"]),
        0,
    );
    assert_eq!(watermarks(&dlq, 0), (4, 4));
    assert_eq!(
        archive_offsets(&archive),
        vec![(0, true), (1, true), (2, false), (3, false)],
        "everything deleted is archived, what was handled before is marked"
    );
    let replayed = expect_code(
        &[
            "dlq",
            "replay",
            "--from-file",
            archive_arg,
            "--to",
            &to,
            "--execute",
            "--yes",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(replayed["replayed"], 2, "{replayed:#}");
    let copies: Vec<String> = read_matching(&to, "\"n\"", std::time::Duration::from_secs(10))
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(copies, ["{\"n\":2}", "{\"n\":3}"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_of_a_live_group_is_refused_in_its_preview_and_changes_nothing() {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    require_broker();
    let (dlq, group) = dead_letters("drain-live", &["x.Bad"; 2]).await;
    let member: BaseConsumer = client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    member.subscribe(&[&dlq]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the member never joined"
        );
        let _ = member.poll(std::time::Duration::from_millis(200));
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.jsonl");
    let args = drain_args(&dlq, &group, &archive, &["--delete"]);
    let preview = expect_code(&args, 0);
    assert!(
        preview.stderr.contains("--execute will refuse") && preview.stderr.contains("live members"),
        "{}",
        preview.stderr
    );
    let mut execute = args.to_vec();
    execute.extend(["--execute", "--yes"]);
    let refused = expect_code(&execute, 1);
    assert!(
        refused.stderr.contains("live members"),
        "{}",
        refused.stderr
    );
    assert_eq!(watermarks(&dlq, 0), (0, 2));
    assert!(!archive.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_never_sends_what_its_group_cannot_move_past() {
    require_broker();
    let dlq = format!("{}.dlq", unique("replay-gap"));
    let to = unique("replay-gap-to");
    let group = unique("replay-group");
    create_topic(&dlq, 1).await;
    create_topic(&to, 1).await;
    produce_letters(&dlq, &["x.Timeout", "x.Poison", "x.Timeout"]).await;
    let args = [
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--exception",
        "Timeout",
        "--to",
        &to,
        "--execute",
        "--yes",
        "-o",
        "json",
    ];
    // Twice in a row: offset 2 waits behind offset 1 both times, and is
    // never sent, so the second run cannot send it again.
    for run_number in 0..2 {
        let r = expect_code(&args, 1);
        let report = r.json();
        assert_schema(&report, "dlq-replay");
        assert_eq!(report["held_back"], 1, "{report:#}");
        assert_eq!(report["replayed"], 1 - run_number, "{report:#}");
        assert_eq!(committed_offsets(&group, &dlq, 1), vec![Some(1)]);
    }
    let preview = expect_code(&args[..9], 0);
    assert!(preview.stderr.contains("wait behind"), "{}", preview.stderr);
    let copies = read_matching(&to, "\"n\"", std::time::Duration::from_secs(10));
    assert_eq!(copies.len(), 1, "offset 0 once, offset 2 never");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_with_audit_topic_sends_each_line_to_the_audit_topic_too() {
    require_broker();
    let (dlq, group) = dead_letters("audit-topic", &["x.Bad"; 1]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"ops\"\n[profiles.ops]\nbrokers = \"{}\"\naudit_topic = true\n",
            brokers()
        ),
    )
    .unwrap();
    let archive = dir.path().join("a.jsonl");
    let mut cmd = with_audit(&dir.path().join("audit.jsonl"));
    cmd.env("SMM_CONFIG", &config);
    expect_code_with(
        cmd,
        &drain_args(&dlq, &group, &archive, &["--execute", "--yes"]),
        0,
    );
    let lines = read_matching("_smmctl.audit", &dlq, std::time::Duration::from_secs(15));
    assert_eq!(lines.len(), 1, "one line for the drain on the audit topic");
    let line: serde_json::Value =
        serde_json::from_slice(lines[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(line["command"], "dlq drain");
    assert_eq!(line["profile"], "ops");
}

#[test]
fn a_missing_topic_or_a_wrong_flag_exits_2_and_leaves_no_audit_line() {
    require_broker();
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let missing = unique("missing");
    for (args, names) in [
        (
            vec!["dlq", "drain", missing.as_str(), "--execute", "--yes"],
            missing.as_str(),
        ),
        (
            vec!["dlq", "replay", missing.as_str(), "--execute", "--yes"],
            missing.as_str(),
        ),
        (
            vec!["dlq", "drain", missing.as_str(), "--delte", "--execute"],
            "--delte",
        ),
    ] {
        let r = expect_code_with(with_audit(&trail), &args, 2);
        assert!(r.stderr.contains(names), "{}", r.stderr);
    }
    assert!(
        !trail.exists(),
        "nothing was executed, so nothing is audited"
    );
}
