//! `smmctl dlq` against the real broker, on topics and groups of each
//! test's own: Spring-written headers, filters, unresolvable destinations,
//! drain and archive replay, and a replay killed mid-run.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use smm_workers::headers;

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
                .timestamp(1_764_410_460_100)
                .headers(owned),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    const WRITTEN: &str = "2025-11-29T10:01:00.100Z";
    const ORIGINAL: &str = "2025-11-29T10:00:50.010Z";

    let docs = inspect_json(&dlq, &[]);
    assert_eq!(docs[0]["timestamp"], WRITTEN);
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
    assert!(table.contains(WRITTEN), "{table}");
    let verbose = expect_code(&["dlq", "inspect", &dlq, "-v"], 0).stdout;
    assert!(
        verbose.contains(&format!("time:        {WRITTEN}")),
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
    assert_eq!(grouped["groups"][0]["first_at"], WRITTEN);
    assert_eq!(grouped["groups"][0]["last_at"], WRITTEN);
    let grouped = expect_code(&["dlq", "inspect", &dlq, "--group-by", "exception"], 0).stdout;
    assert!(grouped.contains(WRITTEN), "{grouped}");
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
