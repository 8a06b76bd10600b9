//! `topics delete`: preview, confirmation, guards and exit codes.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_shows_what_would_be_lost_and_deletes_nothing() {
    require_broker();
    let topic = unique("delete-preview");
    create_topic(&topic, 2).await;
    produce(
        &topic,
        Some(1),
        &[("a", b"1"), ("b", b"2"), ("c", b"3")],
        &[],
    )
    .await;

    let r = expect_code(&["topics", "delete", &topic], 0);
    let line = r.stdout.lines().find(|l| l.starts_with(&topic)).unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            topic.as_str(),
            "2",
            "3",
            "not",
            "in",
            "catalog",
            "3",
            "messages",
            "will",
            "be",
            "lost"
        ]
    );
    assert!(
        r.stderr.contains("Preview only: nothing was changed"),
        "{}",
        r.stderr
    );
    assert!(cluster_topics().contains_key(&topic));
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_without_a_terminal_and_without_yes_is_refused() {
    require_broker();
    let topic = unique("delete-refused");
    create_topic(&topic, 1).await;
    let r = expect_code(&["topics", "delete", &topic, "--execute"], 1);
    assert!(r.stderr.contains("no terminal to ask on"), "{}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(cluster_topics().contains_key(&topic));
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_with_yes_deletes_and_reports_each_topic() {
    require_broker();
    let a = unique("delete-a");
    let b = unique("delete-b");
    create_topic(&a, 1).await;
    create_topic(&b, 3).await;
    let r = expect_code(
        &[
            "topics",
            "delete",
            &a,
            &b,
            "--execute",
            "--yes",
            "-o",
            "json",
        ],
        0,
    );
    let json = r.json();
    let results: Vec<(&str, &str)> = json["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["result"].as_str().unwrap()))
        .collect();
    let mut expected = vec![(a.as_str(), "deleted"), (b.as_str(), "deleted")];
    expected.sort();
    assert_eq!(results, expected);
    wait_for_topic(&a, None);
    wait_for_topic(&b, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_topics_need_force() {
    require_broker();
    expect_code(&["topics", "apply", "--category", "payment"], 0);
    let r = expect_code(
        &[
            "topics",
            "delete",
            "smm.payment.confirmations",
            "--execute",
            "--yes",
        ],
        1,
    );
    assert!(
        r.stderr
            .contains("smm.payment.confirmations is in the catalog")
            && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert!(cluster_topics().contains_key("smm.payment.confirmations"));

    let preview = expect_code(&["topics", "delete", "smm.payment.confirmations"], 0);
    assert!(
        preview.stdout.contains("needs --force"),
        "{}",
        preview.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_topics_are_bad_input_and_nothing_is_deleted() {
    require_broker();
    let real = unique("delete-known");
    create_topic(&real, 1).await;
    let missing = unique("delete-missing");
    let r = expect_code(
        &["topics", "delete", &real, &missing, "--execute", "--yes"],
        2,
    );
    assert!(
        r.stderr
            .contains(&format!("no such topic on the cluster: {missing}")),
        "{}",
        r.stderr
    );
    assert!(
        cluster_topics().contains_key(&real),
        "the known topic must survive"
    );
    delete_topics(&[&real]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_internal_topics_are_never_deleted() {
    require_broker();
    let r = expect_code(
        &[
            "topics",
            "delete",
            "__consumer_offsets",
            "--execute",
            "--yes",
            "--force",
        ],
        1,
    );
    assert!(r.stderr.contains("internal to Kafka"), "{}", r.stderr);
}
