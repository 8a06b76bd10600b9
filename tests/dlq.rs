//! `smmctl dlq` against the real broker, on topics and groups of each
//! test's own: Spring-written headers, filters, unresolvable destinations,
//! drain and archive replay, and a replay killed mid-run.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use smm_workers::contract::headers;

/// The headers Spring Kafka's DeadLetterPublishingRecoverer writes for a
/// record of `original` that failed on its third delivery, byte for byte.
fn spring_headers(original: &str, class: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (headers::ORIGINAL_TOPIC.into(), original.as_bytes().to_vec()),
        (headers::ORIGINAL_PARTITION.into(), vec![0, 0, 0, 2]),
        (
            headers::ORIGINAL_OFFSET.into(),
            vec![0, 0, 0, 0, 0, 0, 0x01, 0x00],
        ),
        (
            headers::ORIGINAL_TIMESTAMP.into(),
            1_764_410_400_000i64.to_be_bytes().to_vec(),
        ),
        (
            headers::ORIGINAL_TIMESTAMP_TYPE.into(),
            b"CreateTime".to_vec(),
        ),
        (headers::EXCEPTION_FQCN.into(), class.as_bytes().to_vec()),
        (
            headers::EXCEPTION_MESSAGE.into(),
            format!("{class}: it failed").into_bytes(),
        ),
        (headers::RETRY_ATTEMPTS.into(), vec![0, 0, 0, 2]),
        (headers::RETRY_ATTEMPTS.into(), vec![0, 0, 0, 3]),
        (
            headers::RETRY_BACKOFF_TIMESTAMP.into(),
            vec![0x01, 0x9a, 0xcf, 0x0e, 0x1d, 0x00],
        ),
    ]
}

/// What a plain DeadLetterPublishingRecoverer (no retry topics) writes.
fn plain_recoverer_headers(original: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            headers::DLT_ORIGINAL_TOPIC.into(),
            original.as_bytes().to_vec(),
        ),
        (headers::DLT_ORIGINAL_PARTITION.into(), vec![0, 0, 0, 0]),
        (
            headers::DLT_ORIGINAL_OFFSET.into(),
            9i64.to_be_bytes().to_vec(),
        ),
        (
            headers::DLT_EXCEPTION_FQCN.into(),
            b"java.lang.IllegalStateException".to_vec(),
        ),
        (
            headers::DLT_EXCEPTION_MESSAGE.into(),
            b"plain failure".to_vec(),
        ),
    ]
}

async fn produce_letter(topic: &str, key: &str, value: &[u8], headers: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    produce(topic, Some(0), &[(key, value)], &refs).await;
}

/// A main topic, its `.dlq` and a processing group, all new.
async fn topics_and_group(prefix: &str, partitions: i32) -> (String, String, String) {
    let original = unique(prefix);
    let dlq = format!("{original}.dlq");
    create_topic(&original, partitions).await;
    create_topic(&dlq, partitions).await;
    (original, dlq, unique("it-dlq-group"))
}

/// Reads `topic` with read_committed, as the workers do.
fn read_committed(topic: &str, want: usize, within: Duration) -> Vec<Read> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while Instant::now() < deadline && out.len() < want {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(Read::of(&m));
        }
    }
    // A short extra wait: more than `want` would be a duplicate.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(Read::of(&m));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_decodes_spring_headers_and_json_lines_follow_the_schema() {
    require_broker();
    let original = unique("it-orders");
    let dlq = format!("{original}-dlt");
    create_topic(&dlq, 1).await;
    produce_letter(
        &dlq,
        "order-1",
        br#"{"not":"an envelope"}"#,
        &spring_headers(&original, "java.net.SocketTimeoutException"),
    )
    .await;
    produce_letter(
        &dlq,
        "order-2",
        b"\xff\xfe",
        &plain_recoverer_headers(&original),
    )
    .await;

    let lines = run(&["dlq", "inspect", &dlq, "-o", "json"]);
    assert_eq!(lines.code, 0, "{}", lines.stderr);
    let docs: Vec<serde_json::Value> = lines
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    for doc in &docs {
        assert_schema(doc, "dlq-inspect");
    }
    let spring = &docs[0];
    assert_eq!(spring["original"]["topic"], original.as_str());
    assert_eq!(spring["original"]["partition"], 2);
    assert_eq!(spring["original"]["offset"], 256);
    assert_eq!(spring["original"]["timestamp"], "2025-11-29T10:00:00.000Z");
    assert_eq!(spring["attempts"], 2);
    assert_eq!(
        spring["exception"]["class"],
        "java.net.SocketTimeoutException"
    );
    let backoff = spring["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == headers::RETRY_BACKOFF_TIMESTAMP)
        .unwrap();
    assert_eq!(backoff["value"], 1_764_410_400_000i64);
    assert_eq!(backoff["date"], "2025-11-29T10:00:00.000Z");
    let plain = &docs[1];
    assert_eq!(plain["plain_recoverer"], true);
    assert_eq!(plain["original"]["offset"], 9);
    assert_eq!(plain["payload"]["base64"], "//4=");

    let table = run(&["dlq", "inspect", &dlq]);
    assert!(
        table.stdout.contains(&format!("{original}/2@256")),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("java.net.SocketTimeoutException"),
        "{}",
        table.stdout
    );
    let verbose = run(&["dlq", "inspect", &dlq, "-v", "--limit", "1"]);
    assert!(
        verbose
            .stdout
            .contains("retry_topic-backoff-timestamp = 1764410400000 (2025-11-29T10:00:00.000Z)"),
        "{}",
        verbose.stdout
    );
    let grouped = run(&[
        "dlq",
        "inspect",
        &dlq,
        "--group-by",
        "exception",
        "-o",
        "json",
    ])
    .json();
    assert_eq!(grouped["records"], 2);
    assert_eq!(grouped["groups"].as_array().unwrap().len(), 2);
    let filtered = run(&[
        "dlq",
        "inspect",
        &dlq,
        "--exception",
        "illegalstate",
        "-o",
        "json",
    ]);
    assert_eq!(filtered.stdout.lines().count(), 1, "{}", filtered.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exception_filter_replays_only_matching_records_and_unresolvable_ones_exit_1() {
    require_broker();
    let (original, dlq, group) = topics_and_group("it-refunds", 1).await;
    for i in 0..3 {
        produce_letter(
            &dlq,
            &format!("t{i}"),
            b"{}",
            &spring_headers(&original, "java.util.concurrent.TimeoutException"),
        )
        .await;
    }
    produce_letter(
        &dlq,
        "npe",
        b"{}",
        &spring_headers(&original, "java.lang.NullPointerException"),
    )
    .await;
    produce_letter(
        &dlq,
        "orphan",
        b"{}",
        &[(
            headers::EXCEPTION_FQCN.into(),
            b"java.util.concurrent.TimeoutException".to_vec(),
        )],
    )
    .await;

    let preview = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--exception",
        "Timeout",
        "-o",
        "json",
    ]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    let preview = preview.json();
    assert_schema(&preview, "dlq-replay");
    assert_eq!(preview["destinations"][&original], 3);
    assert_eq!(preview["executed"], false);
    assert!(
        read_committed(&original, 1, Duration::from_secs(2)).is_empty(),
        "a preview sent something"
    );

    let done = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--exception",
        "Timeout",
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(
        done.code, 1,
        "an unresolvable record makes it exit 1: {}",
        done.stderr
    );
    let done = done.json();
    assert_schema(&done, "dlq-replay");
    assert_eq!(done["replayed"], 3);
    assert_eq!(done["guarantee"], "transactional");
    let skipped = done["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["offset"], 4);
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("kafka_original-topic")
    );
    let copies = read_committed(&original, 3, Duration::from_secs(10));
    let keys: Vec<_> = copies
        .iter()
        .map(|r| String::from_utf8(r.key.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(
        keys,
        ["t0", "t1", "t2"],
        "only the TimeoutException records"
    );
    let lineage = &copies[0];
    assert_eq!(lineage.header(headers::REPLAY_COUNT), Some(&b"1"[..]));
    assert_eq!(lineage.header(headers::DLQ_TOPIC), Some(dlq.as_bytes()));
    assert_eq!(lineage.header(headers::DLQ_OFFSET), Some(&b"0"[..]));
    assert_eq!(
        lineage.header(headers::ORIGINAL_OFFSET),
        Some(&[0, 0, 0, 0, 0, 0, 1, 0][..]),
        "headers kept"
    );
    // The group moved past the replayed run and stopped at the NPE.
    let again = run(&["dlq", "replay", &dlq, "--group", &group, "-o", "json"]).json();
    assert_eq!(
        again["destinations"][&original], 1,
        "only the NPE is left to replay: {again}"
    );
    assert_eq!(
        again["skipped"].as_array().unwrap().len(),
        1,
        "and the orphan"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_archives_and_moves_the_group_and_the_archive_replays() {
    require_broker();
    let (original, dlq, group) = topics_and_group("it-webhooks", 1).await;
    for i in 0..4 {
        produce_letter(
            &dlq,
            &format!("k{i}"),
            format!("{{\"n\":{i}}}").as_bytes(),
            &spring_headers(&original, "x.Bad"),
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("drained.jsonl");
    let archive_arg = archive.to_str().unwrap();
    let preview = run(&[
        "dlq",
        "drain",
        &dlq,
        "--group",
        &group,
        "--archive",
        archive_arg,
    ]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(!archive.exists(), "a preview wrote the archive");
    let refused = run(&[
        "dlq",
        "drain",
        &dlq,
        "--group",
        &group,
        "--archive",
        archive_arg,
        "--execute",
    ]);
    assert_eq!(
        refused.code, 1,
        "no terminal and no --yes: {}",
        refused.stderr
    );

    let drained = run(&[
        "dlq",
        "drain",
        &dlq,
        "--group",
        &group,
        "--archive",
        archive_arg,
        "--delete",
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(drained.code, 0, "{}", drained.stderr);
    let drained = drained.json();
    assert_eq!(drained["archived"], 4);
    assert_eq!(drained["committed"]["0"], 4);
    assert_eq!(drained["deleted_before"]["0"], 4);
    let lines = std::fs::read_to_string(&archive).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let listed = run(&["dlq", "list", "--group", &group, "-o", "json"]).json();
    let ours = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == dlq.as_str())
        .expect("listed");
    assert_eq!(
        (ours["retained"].as_i64(), ours["waiting"].as_i64()),
        (Some(0), Some(0))
    );

    let replayed = run(&[
        "dlq",
        "replay",
        "--from-file",
        archive_arg,
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(replayed.code, 0, "{}", replayed.stderr);
    let copies = read_committed(&original, 4, Duration::from_secs(10));
    assert_eq!(copies.len(), 4);
    assert_eq!(
        copies[3].value.as_deref(),
        Some(&b"{\"n\":3}"[..]),
        "the archive restored the records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_list_flags_a_financial_dead_letter_and_counts_what_is_waiting() {
    require_broker();
    let dlq = format!("smm.payment.{}.dlq", unique("it"));
    let group = unique("it-dlq-group");
    create_topic(&dlq, 2).await;
    produce_letter(
        &dlq,
        "p",
        b"{}",
        &spring_headers("smm.payment.confirmations", "x.Failed"),
    )
    .await;
    let listed = run(&["dlq", "list", "--group", &group, "-o", "json"]);
    assert_eq!(
        listed.code, 1,
        "a financial DLQ with a pending record: {}",
        listed.stderr
    );
    let doc = listed.json();
    assert_schema(&doc, "dlq-list");
    let ours = doc["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == dlq.as_str())
        .expect("listed");
    assert_eq!(ours["critical"], true);
    assert_eq!(ours["in_catalog"], false);
    assert_eq!(ours["waiting"], 1);
    assert!(ours["newest_age_seconds"].as_i64().unwrap() < 120);
    for name in [
        "smm.order.refund.dlq",
        "smm.payment.confirmations.dlq",
        "smm.order.processing-dlt",
    ] {
        assert!(
            doc["topics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["topic"] == name),
            "{name} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_killed_mid_run_and_run_again_delivers_every_record_once() {
    require_broker();
    let (original, dlq, group) = topics_and_group("it-kill", 3).await;
    let producer = producer();
    let headers = spring_headers(&original, "x.Transient");
    for i in 0..3000 {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in &headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let key = format!("k{i}");
        let _ = producer.send_result(
            rdkafka::producer::FutureRecord::to(&dlq)
                .key(&key)
                .payload("{}")
                .headers(h)
                .partition(i % 3),
        );
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();

    let args = [
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--rate",
        "1500",
        // Many transactions, so the kill lands between committed ones.
        "--batch",
        "200",
        "--execute",
        "--yes",
    ];
    let mut first = smmctl()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    first.kill().unwrap();
    first.wait().unwrap();
    let partial = read_committed(&original, 3000, Duration::from_secs(3)).len();
    eprintln!("the killed replay had committed {partial} copies");
    assert!(
        partial < 3000,
        "the replay finished before it was killed ({partial}); slow it down"
    );
    let second = run(&args);
    assert_eq!(second.code, 0, "{}", second.stderr);

    let copies = read_committed(&original, 3000, Duration::from_secs(20));
    let mut seen = std::collections::BTreeSet::new();
    let mut duplicates = 0;
    for copy in &copies {
        if !seen.insert(copy.key.clone()) {
            duplicates += 1;
        }
    }
    assert_eq!(
        seen.len(),
        3000,
        "every record arrived (partial run had {partial})"
    );
    assert_eq!(duplicates, 0, "with transactions, none twice");
}

/// Inspects `topic` as JSON lines with `extra` arguments.
fn inspect_json(topic: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["dlq", "inspect", topic, "-o", "json"];
    args.extend(extra);
    let r = expect_code(&args, 0);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_filter_matches_the_last_value_of_a_repeated_header() {
    require_broker();
    let original = unique("it-attempts");
    let dlq = format!("{original}-dlt");
    create_topic(&dlq, 1).await;
    // retry_topic-attempts is 2, then 3: the record is on its third delivery.
    produce_letter(&dlq, "a", b"{}", &spring_headers(&original, "x.Failed")).await;

    let current = inspect_json(&dlq, &["--header", "retry_topic-attempts=3"]);
    assert_eq!(current.len(), 1, "the last value selects it");
    let earlier = inspect_json(&dlq, &["--header", "retry_topic-attempts=2"]);
    assert!(
        earlier.is_empty(),
        "an earlier hop's value does not: {earlier:?}"
    );
}

const WRAPPER: &str = "org.springframework.kafka.listener.ListenerExecutionFailedException";

/// A failure as Spring reports it from a listener: the wrapper class, and
/// the root cause in its own header (3.x) or only in the stack trace.
fn wrapped_failure(
    original: &str,
    cause_header: Option<&str>,
    message: &str,
    stacktrace: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (headers::ORIGINAL_TOPIC.into(), original.as_bytes().to_vec()),
        (headers::EXCEPTION_FQCN.into(), WRAPPER.as_bytes().to_vec()),
        (
            headers::EXCEPTION_MESSAGE.into(),
            message.as_bytes().to_vec(),
        ),
        (
            headers::EXCEPTION_STACKTRACE.into(),
            stacktrace.as_bytes().to_vec(),
        ),
    ];
    if let Some(cause) = cause_header {
        h.push((
            headers::EXCEPTION_CAUSE_FQCN.into(),
            cause.as_bytes().to_vec(),
        ));
    }
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exception_column_and_grouping_show_the_root_cause_not_the_wrapper() {
    require_broker();
    let original = unique("it-wrapped");
    let dlq = format!("{original}-dlt");
    create_topic(&dlq, 1).await;
    let timeout_trace = format!(
        "{WRAPPER}: Listener method threw exception\n\tat org.springframework.kafka.listener.Adapter.invoke(Adapter.java:1)\n\
         Caused by: java.net.SocketTimeoutException: Read timed out\n\tat java.net.Socket.read(Socket.java:1)\n"
    );
    for key in ["t1", "t2"] {
        produce_letter(
            &dlq,
            key,
            b"{}",
            &wrapped_failure(
                &original,
                Some("java.net.SocketTimeoutException"),
                "Listener method threw exception; Read timed out",
                &timeout_trace,
            ),
        )
        .await;
    }
    // No cause header (Spring before 2.8): the stack trace names the
    // cause, and the deepest "Caused by:" is the root.
    let nested_trace = format!(
        "{WRAPPER}: Listener method threw exception\n\tat org.springframework.kafka.listener.Adapter.invoke(Adapter.java:1)\n\
         Caused by: com.example.orders.OrderRejected: order 7 rejected\n\tat com.example.orders.Listener.on(Listener.java:9)\n\
         Caused by: java.lang.IllegalStateException: balance below zero\n\tat com.example.orders.Ledger.take(Ledger.java:3)\n\t... 4 more\n"
    );
    produce_letter(
        &dlq,
        "s",
        b"{}",
        &wrapped_failure(
            &original,
            None,
            "Listener method threw exception",
            &nested_trace,
        ),
    )
    .await;

    let table = expect_code(&["dlq", "inspect", &dlq], 0).stdout;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in &rows[..2] {
        assert!(row.contains("java.net.SocketTimeoutException"), "{table}");
    }
    assert!(
        rows[2].contains("java.lang.IllegalStateException"),
        "{table}"
    );
    assert!(
        !table.contains("ListenerExecutionFailedException"),
        "{table}"
    );

    let grouped = expect_code(
        &[
            "dlq",
            "inspect",
            &dlq,
            "--group-by",
            "exception",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    let groups: Vec<(String, i64)> = grouped["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["exception_class"].as_str().unwrap().to_owned(),
                g["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("java.net.SocketTimeoutException".to_owned(), 2),
            ("java.lang.IllegalStateException".to_owned(), 1),
        ]
    );
    let grouped_table = expect_code(&["dlq", "inspect", &dlq, "--group-by", "exception"], 0);
    assert!(
        !grouped_table
            .stdout
            .contains("ListenerExecutionFailedException"),
        "{}",
        grouped_table.stdout
    );

    // The wrapper stays visible where every detail is shown.
    let docs = inspect_json(&dlq, &[]);
    assert_eq!(docs[2]["exception"]["class"], WRAPPER);
    assert_eq!(
        docs[2]["exception"]["root_cause"],
        "java.lang.IllegalStateException"
    );
    assert_eq!(
        docs[0]["exception"]["root_cause"],
        "java.net.SocketTimeoutException"
    );
    for doc in &docs {
        assert_schema(doc, "dlq-inspect");
    }
    let verbose = expect_code(&["dlq", "inspect", &dlq, "-v", "--offset-range", "2-2"], 0).stdout;
    assert!(
        verbose
            .lines()
            .any(|l| l.starts_with("exception:") && l.contains(WRAPPER)),
        "{verbose}"
    );
    assert!(
        verbose
            .lines()
            .any(|l| l.starts_with("cause:") && l.contains("java.lang.IllegalStateException")),
        "{verbose}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_output_shows_text_headers_as_text_and_the_stack_trace_once() {
    require_broker();
    let original = unique("it-verbose");
    let dlq = format!("{original}-dlt");
    create_topic(&dlq, 1).await;
    let trace = "java.lang.IllegalStateException: bad\n\tat com.example.orders.Ledger.take(Ledger.java:3)\n";
    let mut h = spring_headers(&original, "java.lang.IllegalStateException");
    h.push((
        headers::EXCEPTION_STACKTRACE.into(),
        trace.as_bytes().to_vec(),
    ));
    h.push((headers::CORRELATION_ID.into(), b"corr-verbose".to_vec()));
    h.push(("x-binary".into(), vec![0xff, 0x00, 0x01]));
    produce_letter(&dlq, "v", b"{}", &h).await;

    let out = expect_code(&["dlq", "inspect", &dlq, "-v"], 0).stdout;
    assert!(out.contains("  x-correlation-id = corr-verbose\n"), "{out}");
    assert!(
        out.contains(&format!("  kafka_original-topic = {original}\n")),
        "{out}"
    );
    assert!(out.contains("  x-binary = base64:/wAB\n"), "{out}");
    assert!(!out.contains("{\"text\""), "text shown as JSON:\n{out}");
    assert_eq!(
        out.matches("com.example.orders.Ledger.take").count(),
        1,
        "the stack trace once:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_times_print_with_three_millisecond_digits() {
    require_broker();
    let original = unique("it-times");
    let dlq = format!("{original}-dlt");
    create_topic(&dlq, 1).await;
    let mut h = spring_headers(&original, "x.Failed");
    // 10:00:50.010, whose trailing zero a shortest format would drop.
    for (name, value) in h.iter_mut() {
        if name == headers::ORIGINAL_TIMESTAMP {
            *value = 1_764_410_450_010i64.to_be_bytes().to_vec();
        }
    }
    // Written a minute ago at .100: recent, so retention (7 days on the
    // test broker) cannot remove it while the test reads it.
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let written_ms = now_ms - now_ms % 1000 - 60_000 + 100;
    let producer = producer();
    let mut owned = rdkafka::message::OwnedHeaders::new();
    for (k, v) in &h {
        owned = owned.insert(rdkafka::message::Header {
            key: k,
            value: Some(v.as_slice()),
        });
    }
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&dlq)
                .key("t")
                .payload("{}")
                .partition(0)
                .timestamp(written_ms)
                .headers(owned),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let written = jiff::Timestamp::from_millisecond(written_ms).unwrap();
    let written = format!("{written:.3}");
    assert!(written.ends_with(".100Z"), "{written}");
    const ORIGINAL: &str = "2025-11-29T10:00:50.010Z";

    let docs = inspect_json(&dlq, &[]);
    assert_eq!(docs[0]["timestamp"], written.as_str());
    assert_eq!(docs[0]["original"]["timestamp"], ORIGINAL);
    let header = docs[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == headers::ORIGINAL_TIMESTAMP)
        .unwrap();
    assert_eq!(header["date"], ORIGINAL);
    assert_schema(&docs[0], "dlq-inspect");

    let table = expect_code(&["dlq", "inspect", &dlq], 0).stdout;
    assert!(table.contains(&written), "{table}");
    let verbose = expect_code(&["dlq", "inspect", &dlq, "-v"], 0).stdout;
    assert!(
        verbose.contains(&format!("time:        {written}")),
        "{verbose}"
    );
    assert!(verbose.contains(&format!("({ORIGINAL})")), "{verbose}");
    let grouped = expect_code(
        &[
            "dlq",
            "inspect",
            &dlq,
            "--group-by",
            "exception",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(grouped["groups"][0]["first_at"], written.as_str());
    assert_eq!(grouped["groups"][0]["last_at"], written.as_str());
    let grouped = expect_code(&["dlq", "inspect", &dlq, "--group-by", "exception"], 0).stdout;
    assert!(grouped.contains(written.as_str()), "{grouped}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_original_carries_the_timestamp_type_and_consumer_group() {
    require_broker();
    let original = unique("it-origin");
    let dlq = format!("{original}-dlt");
    create_topic(&dlq, 1).await;
    let mut spring = spring_headers(&original, "x.Failed");
    spring.push((
        headers::ORIGINAL_CONSUMER_GROUP.into(),
        b"order-processing-group".to_vec(),
    ));
    produce_letter(&dlq, "s", b"{}", &spring).await;
    let mut plain = plain_recoverer_headers(&original);
    plain.push((
        headers::DLT_ORIGINAL_TIMESTAMP_TYPE.into(),
        b"LogAppendTime".to_vec(),
    ));
    plain.push((
        headers::DLT_ORIGINAL_CONSUMER_GROUP.into(),
        b"refund-group".to_vec(),
    ));
    produce_letter(&dlq, "p", b"{}", &plain).await;
    produce_letter(&dlq, "none", b"{}", &[]).await;

    let docs = inspect_json(&dlq, &[]);
    assert_eq!(docs.len(), 3);
    for doc in &docs {
        assert_schema(doc, "dlq-inspect");
    }
    assert_eq!(docs[0]["original"]["timestamp_type"], "CreateTime");
    assert_eq!(
        docs[0]["original"]["consumer_group"],
        "order-processing-group"
    );
    assert_eq!(docs[1]["original"]["timestamp_type"], "LogAppendTime");
    assert_eq!(docs[1]["original"]["consumer_group"], "refund-group");
    assert!(docs[2]["original"]["timestamp_type"].is_null());
    assert!(docs[2]["original"]["consumer_group"].is_null());

    let verbose = expect_code(&["dlq", "inspect", &dlq, "-v", "--limit", "1"], 0).stdout;
    assert!(
        verbose.contains("origin time: 2025-11-29T10:00:00.000Z (CreateTime)\n"),
        "{verbose}"
    );
    assert!(
        verbose.contains("group:       order-processing-group\n"),
        "{verbose}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_list_finds_dead_letter_topics_by_every_spring_suffix() {
    require_broker();
    let base = unique("it-suffix");
    let dead = [
        format!("{base}.DLT"),
        format!("{base}-dlt"),
        format!("{base}.dlt"),
        format!("{base}.dlq"),
    ];
    let live = format!("{base}-retry-0");
    for name in dead.iter().chain([&live]) {
        create_topic(name, 1).await;
    }
    let listed = run(&["dlq", "list", "-o", "json"]);
    assert!(listed.code <= 1, "{}", listed.stderr);
    let doc = listed.json();
    assert_schema(&doc, "dlq-list");
    let names: Vec<&str> = doc["topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["topic"].as_str())
        .collect();
    for name in &dead {
        assert!(names.contains(&name.as_str()), "{name} missing: {names:?}");
    }
    assert!(
        !names.contains(&live.as_str()),
        "{live} is not a dead letter"
    );
}

/// A record read back with the partition it landed on.
struct Placed {
    key: String,
    partition: i32,
}

/// Every record of `topic`, read from the start of each partition with
/// `isolation` until `want` arrived and the topic stayed quiet a moment.
fn read_placed(topic: &str, want: usize, within: Duration, isolation: &str) -> Vec<Placed> {
    use rdkafka::Message as _;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut settle: Option<Instant> = None;
    while Instant::now() < deadline {
        if out.len() >= want {
            let until = *settle.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
            if Instant::now() >= until {
                break;
            }
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(Placed {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                partition: m.partition(),
            });
        }
    }
    out
}

/// Runs one of Kafka's own Java tools (a real Java client) from the jars
/// `scripts/kafka` resolves, with `stdin` as its input.
fn kafka_tool(class: &str, args: &[&str], stdin: &str) {
    use std::io::Write as _;
    let mut child =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka"))
            .arg("tool")
            .arg(class)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scripts/kafka tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{class} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `spring_headers` for a record that came from `partition` of `original`.
fn spring_headers_from(original: &str, partition: i32) -> Vec<(String, Vec<u8>)> {
    spring_headers(original, "x.Transient")
        .into_iter()
        .map(|(k, v)| {
            if k == headers::ORIGINAL_PARTITION {
                (k, partition.to_be_bytes().to_vec())
            } else {
                (k, v)
            }
        })
        .collect()
}

/// A dead letter to produce: key, value and headers.
type Letter = (String, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Produces `letters` to partition 0 of `topic`, in order, with one
/// producer.
async fn produce_letters(topic: &str, letters: &[Letter]) {
    let producer = producer();
    for (key, value, headers) in letters {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        producer
            .send(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(key)
                    .payload(value)
                    .headers(h)
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// The offset below which read_committed readers of `topic`/`partition`
/// may read (the last stable offset), and the high watermark.
fn stable_and_high(topic: &str, partition: i32) -> (i64, i64) {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let watermark = |isolation: &str| {
        let consumer: BaseConsumer = client_config()
            .set("group.id", unique("marks"))
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap()
            .1
    };
    (watermark("read_committed"), watermark("read_uncommitted"))
}

/// Waits up to `within` for no open transaction on `topic`/`partition`:
/// the last stable offset has caught up with the high watermark.
fn no_open_transaction(topic: &str, partition: i32, within: Duration) -> (i64, i64) {
    let deadline = Instant::now() + within;
    loop {
        let (stable, high) = stable_and_high(topic, partition);
        if stable == high || Instant::now() >= deadline {
            return (stable, high);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_copy_lands_on_the_partition_a_java_producer_picks_for_its_key() {
    require_broker();
    // The original had 4 partitions and the destination has 3, so the
    // original partition cannot be kept: the key decides, as in Java.
    let (original, dlq, group) = topics_and_group("it-murmur", 1).await;
    delete_topics(&[&original]).await;
    create_topic(&original, 4).await;
    let to = unique("it-murmur-to");
    let java = unique("it-murmur-java");
    create_topic(&to, 3).await;
    create_topic(&java, 3).await;
    let keys: Vec<String> = (0..60).map(|i| format!("order-{i}")).collect();
    let letters: Vec<_> = keys
        .iter()
        .map(|k| (k.clone(), b"{}".to_vec(), spring_headers_from(&original, 1)))
        .collect();
    produce_letters(&dlq, &letters).await;
    let lines: String = keys.iter().map(|k| format!("{k}:{{}}\n")).collect();
    kafka_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &brokers(),
            "--topic",
            &java,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        &lines,
    );
    let done = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--to",
        &to,
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let by_java: std::collections::BTreeMap<String, i32> =
        read_placed(&java, 60, Duration::from_secs(20), "read_committed")
            .into_iter()
            .map(|p| (p.key, p.partition))
            .collect();
    let by_smmctl: std::collections::BTreeMap<String, i32> =
        read_placed(&to, 60, Duration::from_secs(20), "read_committed")
            .into_iter()
            .map(|p| (p.key, p.partition))
            .collect();
    assert_eq!(by_java.len(), 60, "the Java producer wrote every key");
    assert_eq!(by_smmctl, by_java, "smmctl and Java place each key alike");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_keeps_the_original_partition_when_the_partition_counts_match() {
    require_broker();
    let (original, dlq, group) = topics_and_group("it-keep", 1).await;
    delete_topics(&[&original]).await;
    create_topic(&original, 4).await;
    let letters: Vec<_> = (0..20)
        .map(|i| {
            (
                format!("k{i}"),
                b"{}".to_vec(),
                spring_headers_from(&original, i % 4),
            )
        })
        .collect();
    produce_letters(&dlq, &letters).await;
    let done = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--execute",
        "--yes",
    ]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let copies = read_placed(&original, 20, Duration::from_secs(20), "read_committed");
    assert_eq!(copies.len(), 20);
    for copy in &copies {
        let i: i32 = copy.key[1..].parse().unwrap();
        assert_eq!(
            copy.partition,
            i % 4,
            "{} left its original partition",
            copy.key
        );
    }

    // Without an origin header, a record's own partition stands in, here
    // for a topic of 4 partitions replayed --to another of 4.
    let source = unique("it-keep-source");
    let to = unique("it-keep-to");
    create_topic(&source, 4).await;
    create_topic(&to, 4).await;
    for p in 0..4 {
        produce(&source, Some(p), &[(&format!("s{p}"), b"{}")], &[]).await;
    }
    let moved = run(&[
        "dlq",
        "replay",
        &source,
        "--group",
        &group,
        "--to",
        &to,
        "--execute",
        "--yes",
    ]);
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    let copies = read_placed(&to, 4, Duration::from_secs(20), "read_committed");
    assert_eq!(copies.len(), 4);
    for copy in &copies {
        assert_eq!(
            copy.key,
            format!("s{}", copy.partition),
            "{} moved partition",
            copy.key
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_replay_never_holds_a_transaction_open_for_long() {
    require_broker();
    let (original, dlq, group) = topics_and_group("it-slow", 1).await;
    let letters: Vec<_> = (0..200)
        .map(|i| {
            (
                format!("k{i}"),
                b"{}".to_vec(),
                spring_headers_from(&original, 0),
            )
        })
        .collect();
    produce_letters(&dlq, &letters).await;

    // A read_committed reader sees the copies of a transaction when it
    // commits: the time between two such moments is at least as long as
    // the transaction that ends at the second one was open.
    let watch = {
        let original = original.clone();
        std::thread::spawn(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer as _};
            let consumer: BaseConsumer = client_config()
                .set("group.id", unique("watch"))
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .set("fetch.wait.max.ms", "50")
                .create()
                .unwrap();
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset(&original, 0, rdkafka::Offset::Beginning)
                .unwrap();
            consumer.assign(&tpl).unwrap();
            let started = Instant::now();
            let mut seen = Vec::new();
            while seen.len() < 200 && started.elapsed() < Duration::from_secs(120) {
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(20)) {
                    seen.push(Instant::now());
                }
            }
            seen
        })
    };
    let started = Instant::now();
    let done = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--rate",
        "10",
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    let took = started.elapsed();
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(done.json()["replayed"], 200);
    let seen = watch.join().unwrap();
    assert_eq!(seen.len(), 200, "every copy became visible");
    let mut commits = vec![started];
    for at in &seen {
        if at.duration_since(*commits.last().unwrap()) > Duration::from_millis(300) {
            commits.push(*at);
        }
    }
    let gaps: Vec<f64> = commits
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    eprintln!(
        "--rate 10 over 200 records took {:.1}s; seconds between visible commits: {gaps:.1?}",
        took.as_secs_f64()
    );
    let longest = gaps.iter().copied().fold(0.0, f64::max);
    assert!(
        longest < 10.0,
        "a transaction stayed open up to {longest:.1}s: {gaps:.1?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_stopped_by_sigterm_aborts_its_open_transaction_and_a_rerun_completes_it() {
    require_broker();
    let (original, dlq, group) = topics_and_group("it-term", 1).await;
    let letters: Vec<_> = (0..60)
        .map(|i| {
            (
                format!("k{i}"),
                b"{}".to_vec(),
                spring_headers_from(&original, 0),
            )
        })
        .collect();
    produce_letters(&dlq, &letters).await;
    let args = [
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--rate",
        "10",
        "--execute",
        "--yes",
    ];
    let child = smmctl()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a copy is in the log that read_committed readers cannot
    // see yet: a transaction is open right now.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (stable, high) = stable_and_high(&original, 0);
        if high > stable {
            break;
        }
        assert!(Instant::now() < deadline, "no transaction ever opened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The workspace forbids `unsafe`, so the signal goes through kill(1).
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        stopped.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "it stops on its own, having cleaned up: {stderr}"
    );
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    // Aborting does not take the copies out of the log: read_uncommitted
    // readers (the Java client's default) have seen them or will. What it
    // buys is that the transaction ends now rather than when the broker's
    // 60 s transaction timeout expires, so read_committed readers of the
    // destination (the live workers) are not held up behind it.
    let (stable, high) = no_open_transaction(&original, 0, Duration::from_secs(5));
    assert_eq!(stable, high, "a transaction is still open on {original}/0");
    let uncommitted = read_placed(&original, 60, Duration::from_secs(5), "read_uncommitted").len();
    let committed = read_placed(&original, 60, Duration::from_secs(5), "read_committed").len();
    eprintln!(
        "after SIGTERM: {committed} committed copies, {} aborted ones visible to read_uncommitted readers",
        uncommitted - committed
    );
    assert!(uncommitted >= committed);

    let second = run(&args);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let copies = read_placed(&original, 60, Duration::from_secs(20), "read_committed");
    let keys: std::collections::BTreeSet<_> = copies.iter().map(|c| c.key.clone()).collect();
    assert_eq!(keys.len(), 60, "every record arrived");
    assert_eq!(copies.len(), 60, "none twice for read_committed readers");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_that_fails_mid_batch_aborts_its_transaction() {
    require_broker();
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let (original, dlq, group) = topics_and_group("it-fail", 1).await;
    delete_topics(&[&original]).await;
    // The destination takes small records only: the second copy is refused
    // by the broker after the first was written in the same transaction.
    admin()
        .create_topics(
            &[NewTopic::new(&original, 1, TopicReplication::Fixed(1))
                .set("max.message.bytes", "2048")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    wait_for_topic(&original, Some(1));
    let letters = vec![
        (
            "small".to_string(),
            b"{}".to_vec(),
            spring_headers_from(&original, 0),
        ),
        (
            "large".to_string(),
            vec![b'x'; 8000],
            spring_headers_from(&original, 0),
        ),
    ];
    produce_letters(&dlq, &letters).await;
    // The rate spaces the two sends, so the first is written on its own.
    let failed = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--rate",
        "2",
        "--execute",
        "--yes",
    ]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let (stable, high) = stable_and_high(&original, 0);
    assert!(high > 0, "the small copy was written");
    let (stable_later, high_later) = no_open_transaction(&original, 0, Duration::from_secs(5));
    assert_eq!(
        stable_later, high_later,
        "the failed batch is still open (stable {stable}, high {high}): {}",
        failed.stderr
    );
    assert!(
        read_committed(&original, 1, Duration::from_secs(2)).is_empty(),
        "the small copy was rolled back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_retry_resolves_spring_retry_topics_from_the_cluster() {
    require_broker();
    let group = unique("it-dlq-group");
    // (main topic, dead-letter suffix, retry topics on the cluster, expected)
    let base = unique("it-ladder");
    let cases = [
        ("a", "-dlt", vec!["-retry-1", "-retry-0"], Some("-retry-0")),
        (
            "b",
            ".DLT",
            vec!["-retry-2000", "-retry-1000", "-retry-500"],
            Some("-retry-500"),
        ),
        ("c", "-dlq", vec!["-retry"], Some("-retry")),
        ("d", "-dlt", vec![], None),
    ];
    for (name, dlt_suffix, retries, expected) in cases {
        let main = format!("{base}-{name}");
        let dlt = format!("{main}{dlt_suffix}");
        create_topic(&dlt, 1).await;
        for r in &retries {
            create_topic(&format!("{main}{r}"), 1).await;
        }
        produce_letter(&dlt, "k", b"{}", &spring_headers(&main, "x.Bad")).await;
        let preview = run(&[
            "dlq",
            "replay",
            &dlt,
            "--group",
            &group,
            "--to-first-retry",
            "-o",
            "json",
        ])
        .json();
        assert_schema(&preview, "dlq-replay");
        match expected {
            Some(suffix) => assert_eq!(
                preview["destinations"][format!("{main}{suffix}")],
                1,
                "{dlt}: {preview}"
            ),
            None => {
                let reason = preview["skipped"][0]["reason"].as_str().unwrap_or_default();
                for looked in [
                    format!("{main}-retry-0"),
                    format!("{main}-retry"),
                    format!("{main}-retry-<delay>"),
                ] {
                    assert!(reason.contains(&looked), "{dlt}: {reason}");
                }
            }
        }
    }

    // And the copy goes there, due at once as a fresh first retry.
    let main = format!("{base}-a");
    let done = run(&[
        "dlq",
        "replay",
        &format!("{main}-dlt"),
        "--group",
        &group,
        "--to-first-retry",
        "--execute",
        "--yes",
    ]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let copies = read_committed(&format!("{main}-retry-0"), 1, Duration::from_secs(10));
    assert_eq!(copies.len(), 1);
    assert_eq!(
        copies[0].header(headers::RETRY_ATTEMPTS),
        Some(&[0, 0, 0, 2][..]),
        "a fresh first retry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_help_and_the_report_say_exactly_once_holds_only_for_read_committed_readers() {
    require_broker();
    let help = run(&["dlq", "replay", "--help"]);
    assert_eq!(help.code, 0);
    let help = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("read_committed readers only"), "{help}");
    assert!(help.contains("read_uncommitted readers"), "{help}");

    let (original, dlq, group) = topics_and_group("it-wording", 1).await;
    produce_letter(&dlq, "k", b"{}", &spring_headers(&original, "x.Bad")).await;
    let done = run(&[
        "dlq",
        "replay",
        &dlq,
        "--group",
        &group,
        "--execute",
        "--yes",
    ]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stderr.contains("read_committed readers only")
            && done.stderr.contains("read_uncommitted readers"),
        "{}",
        done.stderr
    );
}
