//! Tests that work on the catalog's fixed topic and group names: `topics
//! apply|list|orphans` and `health`.
//!
//! They take turns through one lock; everything else in the suite uses
//! unique names and runs in parallel.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use smm_workers::contract::catalog::{GROUPS, Role, TOPICS};

/// Held across awaits, so it must be tokio's; unlike std's it is not
/// poisoned when a test fails, so one failure does not fail the rest.
static CATALOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn managed() -> Vec<&'static str> {
    TOPICS
        .iter()
        .filter(|t| t.is_managed())
        .map(|t| t.name)
        .collect()
}

fn list_rows() -> Vec<Value> {
    let r = expect_code(&["topics", "list", "-o", "json"], 0);
    assert_schema(&r.json(), "topics-list");
    r.json()["topics"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_every_catalog_topic_and_a_second_apply_changes_nothing() {
    require_broker();
    let _guard = CATALOG.lock().await;
    let existing = cluster_topics();
    let present: Vec<&str> = managed()
        .into_iter()
        .filter(|n| existing.contains_key(*n))
        .collect();
    delete_topics(&present).await;

    let before = list_rows();
    for name in managed() {
        let r = row(&before, name);
        let expected = if TOPICS
            .iter()
            .any(|t| t.name == name && t.role == Role::Legacy)
        {
            "absent"
        } else {
            "missing"
        };
        assert_eq!(r["status"], expected, "{name}");
    }
    expect_code(&["topics", "list", "--check"], 1);

    let first = expect_code(&["topics", "apply", "-o", "json"], 0).json();
    assert_eq!(first["summary"]["created"], 37, "{first:#}");
    assert_eq!(first["summary"]["failed"], 0);

    let cluster = cluster_topics();
    for t in TOPICS.iter().filter(|t| t.is_managed()) {
        assert_eq!(
            cluster.get(t.name).copied(),
            Some(t.partitions as usize),
            "{}",
            t.name
        );
    }
    let after = list_rows();
    for name in managed() {
        let r = row(&after, name);
        assert_eq!(r["status"], "ok", "{name}");
        assert_eq!(r["partitions"], r["expected_partitions"], "{name}");
        assert_eq!(r["messages"], 0, "{name}");
    }
    expect_code(&["topics", "list", "--check"], 0);

    let second = expect_code(&["topics", "apply"], 0);
    assert_eq!(
        second.stdout.trim(),
        "Nothing to do: all 37 catalog topics exist with the expected partitions."
    );
    let second = expect_code(&["topics", "apply", "-o", "json"], 0).json();
    assert_eq!(second["summary"]["to_create"], 0);
    assert_eq!(second["summary"]["created"], 0);
    assert_eq!(second["summary"]["existing"], 37);
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_topics_with_the_panel_retention_and_compression() {
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    let out = std::process::Command::new("scripts/kafka")
        .args([
            "tool",
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            &brokers(),
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "smm.payment.confirmations",
        ])
        .output()
        .expect("run Kafka's ConfigCommand");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("retention.ms=604800000"), "{text}");
    assert!(text.contains("compression.type=snappy"), "{text}");
    assert!(text.contains("min.insync.replicas=1"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_shows_the_plan_and_changes_nothing() {
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    delete_topics(&["smm.notifications.dlq"]).await;

    let plan = expect_code(&["topics", "apply", "--dry-run"], 0);
    assert!(
        plan.stdout.contains("smm.notifications.dlq"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("dry run"), "{}", plan.stdout);
    assert!(
        plan.stderr.contains("Nothing was changed"),
        "{}",
        plan.stderr
    );
    assert!(!cluster_topics().contains_key("smm.notifications.dlq"));

    let json = expect_code(&["topics", "apply", "--dry-run", "-o", "json"], 0).json();
    let planned: Vec<&str> = json["topics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["action"] == "create")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["smm.notifications.dlq"]);

    let applied = expect_code(&["topics", "apply"], 0);
    assert!(applied.stdout.contains("created"), "{}", applied.stdout);
    assert!(cluster_topics().contains_key("smm.notifications.dlq"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_count_that_differs_is_reported_and_left_alone() {
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    delete_topics(&["smm.offer.assignments.dlq"]).await;
    create_topic("smm.offer.assignments.dlq", 2).await;

    let r = expect_code(&["topics", "apply"], 1);
    assert!(r.stdout.contains("has 2, catalog says 1"), "{}", r.stdout);
    assert!(
        r.stderr.contains("never changes a partition count"),
        "{}",
        r.stderr
    );
    assert_eq!(cluster_topics().get("smm.offer.assignments.dlq"), Some(&2));
    assert_eq!(
        row(&list_rows(), "smm.offer.assignments.dlq")["status"],
        "partitions-differ"
    );
    expect_code(&["topics", "list", "--check"], 1);

    delete_topics(&["smm.offer.assignments.dlq"]).await;
    expect_code(&["topics", "apply"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_counts_messages_from_the_watermarks() {
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    let topic = "smm.offer.assignment.events";
    let before = row(&list_rows(), topic)["messages"].as_i64().unwrap();
    let records: Vec<(&str, &[u8])> = (0..7).map(|_| ("k", &b"{}"[..])).collect();
    produce(topic, None, &records, &[]).await;
    let after = row(&list_rows(), topic)["messages"].as_i64().unwrap();
    assert_eq!(after - before, 7);

    let table = expect_code(&["topics", "list", "--category", "offer-management"], 0);
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with(topic))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            topic,
            "offer-management",
            "main",
            "ok",
            "1",
            "1",
            &after.to_string()
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_finds_strays_typos_and_legacy_topics() {
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    let stray = unique("stray");
    let typo = "smm.order.refnd";
    create_topic(&stray, 1).await;
    if !cluster_topics().contains_key(typo) {
        create_topic(typo, 1).await;
    }

    let json = expect_code(&["topics", "orphans", "-o", "json"], 0).json();
    let rows = json["topics"].as_array().unwrap();
    let find = |name: &str| rows.iter().find(|r| r["name"] == name).cloned();
    let stray_row = find(&stray).expect("stray listed");
    assert_eq!(stray_row["kind"], "orphan");
    assert_eq!(stray_row["messages"], 0);
    let typo_row = find(typo).expect("typo listed");
    assert!(
        typo_row["note"]
            .as_str()
            .unwrap()
            .contains("did you mean smm.order.refund?")
    );
    let legacy = find("video.processing.queue").expect("legacy listed");
    assert_eq!(legacy["kind"], "legacy");
    assert!(
        legacy["note"]
            .as_str()
            .unwrap()
            .contains("migrate to smm.video.processing")
    );
    for r in rows {
        let name = r["name"].as_str().unwrap();
        assert!(!name.starts_with("__"), "internal topic {name} listed");
        assert!(
            TOPICS
                .iter()
                .all(|t| t.name != name || t.role == Role::Legacy),
            "catalog topic {name} listed"
        );
    }
    expect_code(&["topics", "orphans", "--check"], 1);

    delete_topics(&[&stray, typo]).await;
    let json = expect_code(&["topics", "orphans", "-o", "json"], 0).json();
    assert!(
        json["topics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != stray.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_legacy_leaves_deprecated_topics_out() {
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    delete_topics(&["video.processing.queue"]).await;
    let r = expect_code(&["topics", "apply", "--skip-legacy"], 0);
    assert!(r.stdout.starts_with("Nothing to do"), "{}", r.stdout);
    assert!(!cluster_topics().contains_key("video.processing.queue"));
    assert_eq!(
        row(&list_rows(), "video.processing.queue")["status"],
        "absent"
    );
    expect_code(&["topics", "apply"], 0);
    assert!(cluster_topics().contains_key("video.processing.queue"));
}

/// Brings the panel to a healthy state: every topic present, every dead
/// letter topic empty, and each of the nine groups caught up (Empty, with
/// commits at the log end of everything it reads).
async fn make_healthy() {
    expect_code(&["topics", "apply"], 0);
    let dead: Vec<&str> = TOPICS
        .iter()
        .filter(|t| t.is_dead_letter())
        .map(|t| t.name)
        .collect();
    let consumer: BaseConsumer = client_config().create().unwrap();
    let holding: Vec<&str> = dead
        .iter()
        .copied()
        .filter(|t| {
            let (low, high) = consumer
                .fetch_watermarks(t, 0, std::time::Duration::from_secs(10))
                .unwrap();
            high > low
        })
        .collect();
    if !holding.is_empty() {
        delete_topics(&holding).await;
        expect_code(&["topics", "apply"], 0);
    }
    for group in GROUPS {
        let mut at_end = Vec::new();
        for topic in group.topics() {
            let partitions = cluster_topics()[topic];
            for p in 0..partitions as i32 {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, std::time::Duration::from_secs(10))
                    .unwrap();
                at_end.push((topic, p, high));
            }
        }
        commit_offsets(group.name, &at_end);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_goes_from_healthy_to_degraded_when_a_dead_letter_lands() {
    require_broker();
    let _guard = CATALOG.lock().await;
    make_healthy().await;
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("smmctl.prom");
    let prom_arg = prom.display().to_string();

    let healthy = expect_code(&["health", "--prometheus", &prom_arg], 0);
    assert!(
        healthy.stdout.contains("Overall: Healthy"),
        "{}",
        healthy.stdout
    );
    let order_row = healthy
        .stdout
        .lines()
        .find(|l| l.starts_with("Order Processing"))
        .unwrap();
    assert_eq!(
        order_row.split_whitespace().collect::<Vec<_>>(),
        ["Order", "Processing", "15", "0", "0", "Healthy"]
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("smmctl_health_status 0"), "{text}");
    assert!(text.contains("smmctl_dlq_waiting{topic=\"smm.order.refund.dlq\",category=\"order-processing\",critical=\"true\"} 0"), "{text}");

    produce("smm.order.refund.dlq", None, &[("refund-1", b"{}")], &[]).await;
    let degraded = expect_code(&["health", "-o", "json", "--prometheus", &prom_arg], 1);
    let json = degraded.json();
    assert_schema(&json, "health");
    assert_eq!(json["status"], "degraded");
    let order = json["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "order-processing")
        .unwrap();
    assert_eq!(order["dlq_messages"], 1);
    assert_eq!(order["status"], "degraded");
    let payment = json["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "payment")
        .unwrap();
    assert_eq!(payment["status"], "healthy");
    let dead = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "dead letters")
        .unwrap();
    assert_eq!(dead["result"], "fail");
    assert!(
        dead["detail"]
            .as_str()
            .unwrap()
            .contains("CRITICAL (money): smm.order.refund.dlq has 1 waiting (1 retained)"),
        "{dead:#}"
    );
    let producer = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "producer readiness")
        .unwrap();
    assert_eq!(producer["result"], "ok", "{producer:#}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("smmctl_health_status 1"), "{text}");

    // Replayed, the dead letter is handled: it no longer waits, though the
    // topic retains it until retention removes it.
    let fixed = unique("refund-replayed");
    create_topic(&fixed, 1).await;
    expect_code(
        &[
            "dlq",
            "replay",
            "smm.order.refund.dlq",
            "--to",
            &fixed,
            "--execute",
            "--yes",
        ],
        0,
    );
    let healthy = expect_code(&["health", "-o", "json", "--prometheus", &prom_arg], 0).json();
    assert_schema(&healthy, "health");
    let order = healthy["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "order-processing")
        .unwrap();
    assert_eq!(
        (
            &order["status"],
            &order["dlq_messages"],
            &order["dlq_retained"]
        ),
        (&json!("healthy"), &json!(0), &json!(1))
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("smmctl_dlq_waiting{topic=\"smm.order.refund.dlq\",category=\"order-processing\",critical=\"true\"} 0"), "{text}");
    assert!(text.contains("smmctl_dlq_retained{topic=\"smm.order.refund.dlq\",category=\"order-processing\",critical=\"true\"} 1"), "{text}");
    delete_topics(&[&fixed]).await;

    delete_topics(&["smm.order.refund.dlq"]).await;
    expect_code(&["topics", "apply"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_down_when_a_main_topic_is_missing() {
    require_broker();
    let _guard = CATALOG.lock().await;
    make_healthy().await;
    delete_topics(&["smm.notifications"]).await;
    let json = expect_code(&["health", "-o", "json", "--no-produce"], 1).json();
    assert_schema(&json, "health");
    assert_eq!(json["status"], "down");
    let notifications = json["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "notifications")
        .unwrap();
    assert_eq!(notifications["status"], "down");
    assert_eq!(notifications["active_topics"], 1);
    let missing = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "catalog topics")
        .unwrap();
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("smm.notifications"),
        "{missing:#}"
    );
    let produce = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "producer readiness")
        .unwrap();
    assert_eq!(produce["result"], "skipped");
    expect_code(&["topics", "apply"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_reports_settings_that_are_not_the_panels() {
    use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
    require_broker();
    let _guard = CATALOG.lock().await;
    expect_code(&["topics", "apply"], 0);
    let topic = "smm.notifications.dlq";
    assert_eq!(row(&list_rows(), topic)["status"], "ok");
    admin()
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "86400000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let rows = list_rows();
    let r = row(&rows, topic);
    assert_eq!(r["status"], "config-differs", "{r:#}");
    let drift: Vec<&str> = r["config_drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        drift.contains(&"retention.ms is 86400000, catalog says 604800000"),
        "{drift:?}"
    );
    expect_code(&["topics", "list", "--check"], 1);

    delete_topics(&[topic]).await;
    expect_code(&["topics", "apply"], 0);
    // The broker serves the recreated topic's settings a moment after its
    // partitions; wait for them rather than read the old ones.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while row(&list_rows(), topic)["status"] != "ok" {
        assert!(
            std::time::Instant::now() < deadline,
            "{:#}",
            row(&list_rows(), topic)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
