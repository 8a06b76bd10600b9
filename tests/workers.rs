//! `smmctl run` end to end: real processes, the real broker, both store
//! backends. The workers use the catalog's topics and groups, so these
//! tests take turns; each first moves the groups past whatever earlier runs
//! left on the topics.
// A test reads best as one story from setup to the last assertion.
#![allow(clippy::too_many_lines)]

mod common;

use common::panel::{assert_every_payment_credited_once, count, seed};
use common::worker_process::{Launch, Running, free_port, skip_old_records, until};

use std::process::{Command, Stdio};
use std::time::Duration;

use smm_testbed::scratch::fresh_postgres;
use smm_workers::contract::catalog;
use smm_workers::contract::events::{Envelope, Event, PaymentConfirmation, PaymentStatus};
use smm_workers::contract::headers;
use smm_workers::store::Store;
use smm_workers::store::panel::{self, NewOrder};
use tokio::sync::Mutex;

static TURN: Mutex<()> = Mutex::const_new(());

use common::worker_process::API_KEY;
const PAYMENTS_GROUP: &str = "smm-payment-confirmations-realtime-group";

/// The broker's catalog topics and a fresh SQLite panel store.
async fn sqlite_panel() -> (tempfile::TempDir, String, Store) {
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, url, store)
}

fn signed_webhook(payment: &str, amount: &str, user: i64, orders: &[i64]) -> String {
    smm_workers::providers::cryptomus::signed_webhook(API_KEY, payment, amount, "USD", user, orders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_ends_as_a_credited_balance_and_an_active_order_on_both_stores() {
    let _turn = TURN.lock().await;
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let url = common::store_url(backend, &dir, "e2e_happy").await;
        let store = Store::open(&url).await.unwrap();
        let (user, order) = (7001, 9001);
        seed(&store, &[user]).await;
        let mut conn = store.pool().acquire().await.unwrap();
        let payment = common::unique("pay");
        panel::insert_order(
            &mut conn,
            &NewOrder {
                id: order,
                user_id: user,
                quantity: 1000,
                charge_minor: 1500,
                currency: "USD",
                payment_id: Some(&payment),
                video_url: None,
                youtube_video_id: None,
            },
        )
        .await
        .unwrap();
        drop(conn);
        skip_old_records(
            PAYMENTS_GROUP,
            &[catalog::PAYMENT_WEBHOOKS, catalog::PAYMENT_CONFIRMATIONS],
        );

        let gateway = free_port();
        let workers = Running::start(
            &["webhook-gateway", "webhooks", "payments"],
            &url,
            Some(gateway),
        );
        // Not ready before the group has given the workers partitions.
        let early = loop {
            if let Some(answer) = workers.get("/health/ready").await {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            early.0, 503,
            "{backend}: ready before assignment: {early:?}"
        );
        workers.wait_ready().await;

        let http = reqwest::Client::new();
        let endpoint = format!("http://127.0.0.1:{gateway}/webhooks/cryptomus");
        let malformed = http
            .post(&endpoint)
            .body("{\"uuid\": 1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            malformed.status().as_u16(),
            400,
            "{backend}: malformed webhook accepted"
        );
        let correlation = common::unique("corr");
        let accepted = http
            .post(&endpoint)
            .header(headers::CORRELATION_ID, &correlation)
            .body(signed_webhook(&payment, "20.00", user, &[order]))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status().as_u16(), 200, "{backend}");

        until(
            "the order to become ACTIVE",
            Duration::from_secs(30),
            || async {
                let mut conn = store.pool().acquire().await.unwrap();
                panel::order(&mut conn, order)
                    .await
                    .unwrap()
                    .unwrap()
                    .status
                    == smm_workers::contract::events::OrderStatus::Active
            },
        )
        .await;
        let mut conn = store.pool().acquire().await.unwrap();
        let balance = panel::user(&mut conn, user)
            .await
            .unwrap()
            .unwrap()
            .balance_minor;
        assert_eq!(
            balance,
            2000 - 1500,
            "{backend}: credited 20.00, charged 15.00"
        );
        assert_eq!(
            panel::ledger_sum(&mut conn, user).await.unwrap(),
            balance,
            "{backend}: ledger = balance"
        );
        drop(conn);
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM ledger").await,
            2,
            "{backend}"
        );
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM payments").await,
            1,
            "{backend}"
        );

        // The same correlation id on every hop.
        for topic in [
            catalog::PAYMENT_WEBHOOKS,
            catalog::PAYMENT_CONFIRMATIONS,
            catalog::ORDER_STATE_UPDATES,
        ] {
            let found = common::read_matching(topic, &correlation, Duration::from_secs(10));
            assert_eq!(
                found.len(),
                1,
                "{backend}: {topic} has {} records of this flow",
                found.len()
            );
            assert_eq!(
                found[0].header(headers::CORRELATION_ID),
                Some(correlation.as_bytes()),
                "{backend}: {topic}"
            );
        }

        let metrics = workers.get("/metrics").await.unwrap().1;
        for family in [
            "smm_worker_records_total",
            "smm_worker_processing_seconds_bucket",
            "smm_worker_in_flight",
            "smm_worker_consumer_lag",
            "smm_worker_error_ratio",
            "smm_worker_broker_up",
        ] {
            assert!(
                metrics.contains(family),
                "{backend}: /metrics lacks {family}"
            );
        }
        assert!(metrics.contains(r#"smm_worker_records_total{worker="payments",topic="smm.payment.confirmations",outcome="ok"} 1"#), "{metrics}");
        let (code, health) = workers.get("/health").await.unwrap();
        assert_eq!(code, 200, "{health}");
        assert!(health.contains("\"ready\":true"), "{health}");
        let mut workers = workers;
        workers.signal("TERM");
        assert_eq!(
            workers.wait_exit(Duration::from_secs(30)),
            Some(0),
            "{backend}: SIGTERM exit code"
        );
    }
}

fn confirmation(payment: &str, user: i64, amount: i64) -> Envelope {
    Envelope::new(
        Event::from(PaymentConfirmation {
            payment_id: payment.to_owned(),
            provider: "cryptomus".into(),
            user_id: user,
            order_ids: vec![],
            amount_minor: amount,
            currency: "USD".into(),
            status: PaymentStatus::Paid,
            confirmed_at: jiff::Timestamp::now(),
        }),
        format!("corr-{payment}"),
    )
    .with_event_id(smm_workers::contract::events::deterministic_event_id(
        "payment-confirmation",
        payment,
    ))
}

/// Produces `count` confirmations for `users` in the background and returns
/// the expected credit per user. Every tenth is sent twice, as a provider
/// resending a webhook would cause.
fn stream_confirmations(
    run: &str,
    users: &[i64],
    count: usize,
    pause_every: usize,
) -> (
    tokio::task::JoinHandle<()>,
    std::collections::BTreeMap<i64, i64>,
) {
    let mut expected = std::collections::BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..count {
        let user = users[i % users.len()];
        let amount = 100 + i as i64;
        *expected.entry(user).or_insert(0) += amount;
        let envelope = confirmation(&format!("{run}-{i}"), user, amount);
        records.push((user.to_string(), envelope.to_json()));
        if i % 10 == 0 {
            records.push((user.to_string(), envelope.to_json()));
        }
    }
    let task = tokio::spawn(async move {
        let producer = common::producer();
        for (i, (key, value)) in records.iter().enumerate() {
            let record = rdkafka::producer::FutureRecord::to(catalog::PAYMENT_CONFIRMATIONS)
                .key(key)
                .payload(value);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            if i % pause_every == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    (task, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_stream_of_2000_payments_credits_each_exactly_once() {
    let _turn = TURN.lock().await;
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    let url = fresh_postgres("e2e_crash").await;
    let store = Store::open(&url).await.unwrap();
    let users: Vec<i64> = (8001..=8010).collect();
    seed(&store, &users).await;
    skip_old_records(PAYMENTS_GROUP, &[catalog::PAYMENT_CONFIRMATIONS]);

    let run = common::unique("crash");
    let (producing, expected) = stream_confirmations(&run, &users, 2000, 50);
    let mut absorbed = 0;
    for round in 0..4 {
        let worker = Running::start(&["payments"], &url, None);
        worker.wait_ready().await;
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        absorbed += worker
            .counter("smm_worker_records_total", "outcome=\"duplicate\"")
            .await;
        worker.signal("KILL");
        let mut worker = worker;
        worker.wait_exit(Duration::from_secs(10));
    }
    producing.await.unwrap();
    let worker = Running::start(&["payments"], &url, None);
    worker.wait_ready().await;
    assert_every_payment_credited_once(&store, &expected, 2000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    absorbed += worker
        .counter("smm_worker_records_total", "outcome=\"duplicate\"")
        .await;
    // 200 resent on purpose, plus whatever the kills made the group repeat.
    assert!(absorbed >= 200, "duplicates absorbed: {absorbed}");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM processed_events").await,
        2000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_and_a_graceful_restart_lose_and_double_nothing() {
    let _turn = TURN.lock().await;
    let (_dir, url, store) = sqlite_panel().await;
    let users: Vec<i64> = (8101..=8106).collect();
    seed(&store, &users).await;
    skip_old_records(PAYMENTS_GROUP, &[catalog::PAYMENT_CONFIRMATIONS]);

    let mut first = Running::start(&["payments"], &url, None);
    let second = Running::start(&["payments"], &url, None);
    first.wait_ready().await;
    second.wait_ready().await;
    let run = common::unique("rebalance");
    let (producing, expected) = stream_confirmations(&run, &users, 600, 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // One member leaves mid-stream; the other takes over its partitions.
    first.signal("TERM");
    assert_eq!(
        first.wait_exit(Duration::from_secs(30)),
        Some(0),
        "drained and exited cleanly"
    );
    producing.await.unwrap();
    assert_every_payment_credited_once(&store, &expected, 600).await;

    let mut second = second;
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(30)), Some(0));
    // After a graceful stop everything is committed: a restart repeats nothing.
    let again = Running::start(&["payments"], &url, None);
    again.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let handled = again
        .counter("smm_worker_records_total", "worker=\"payments\"")
        .await;
    assert_eq!(handled, 0, "records handled again after a graceful restart");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM ledger").await, 600);
}

/// `payments` and `webhooks` share a group. Starts one process running
/// both, then restarts a second process running only `webhooks` twice, and
/// returns how many partitions the rebalances took from the first
/// process's `payments`, which reads another topic.
async fn partner_partitions_revoked(connection: &[String], url: &str) -> u64 {
    skip_old_records(
        PAYMENTS_GROUP,
        &[catalog::PAYMENT_WEBHOOKS, catalog::PAYMENT_CONFIRMATIONS],
    );
    let both = Running::start_with(connection, &["webhooks", "payments"], url, None);
    both.wait_ready().await;
    for _ in 0..2 {
        let mut partner = Running::start_with(connection, &["webhooks"], url, None);
        partner.wait_ready().await;
        partner.signal("TERM");
        assert_eq!(partner.wait_exit(Duration::from_secs(30)), Some(0));
    }
    // The last leave's rebalance has reached the first process once its
    // webhooks worker holds every partition of its topic again.
    until(
        "webhooks to hold all three partitions again",
        Duration::from_secs(30),
        || async {
            both.counter("smm_worker_assigned_partitions", "worker=\"webhooks\"")
                .await
                == 3
        },
    )
    .await;
    assert_eq!(
        both.counter("smm_worker_assigned_partitions", "worker=\"payments\"")
            .await,
        3
    );
    both.counter("smm_worker_partitions_revoked_total", "worker=\"payments\"")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_worker_takes_nothing_from_its_partner_in_a_shared_group() {
    let _turn = TURN.lock().await;
    let (_dir, url, _store) = sqlite_panel().await;
    // The eager range assignor, which the workers used before: each join
    // and leave takes every partition from every member.
    let eager = partner_partitions_revoked(
        &["-X".into(), "partition.assignment.strategy=range".into()],
        &url,
    )
    .await;
    assert!(
        eager >= 3,
        "with the eager assignor the partner loses its partitions: {eager}"
    );
    let cooperative = partner_partitions_revoked(&[], &url).await;
    eprintln!(
        "a partner restarted twice took {eager} partition(s) from payments with range, {cooperative} with cooperative-sticky"
    );
    assert_eq!(
        cooperative, 0,
        "cooperative-sticky: a partner's restart moves none of payments' partitions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_the_same_instance_fences_the_first_which_exits_non_zero() {
    let _turn = TURN.lock().await;
    let (dir, url, _store) = sqlite_panel().await;
    skip_old_records(PAYMENTS_GROUP, &[catalog::PAYMENT_CONFIRMATIONS]);
    let instance = common::unique("fence");
    let flags = ["--instance", instance.as_str()];
    // The shortest session the broker allows, so the static members this
    // leaves behind are gone before the next test resets the group.
    let short_session = ["-X".to_string(), "session.timeout.ms=6000".to_string()];
    let first_log = dir.path().join("first.log");
    let mut first = Running::launch(&Launch {
        connection: &short_session,
        workers: &["payments"],
        database_url: &url,
        args: &flags,
        log: Some(&first_log),
        ..Launch::default()
    });
    first.wait_ready().await;
    let second = Running::launch(&Launch {
        connection: &short_session,
        workers: &["payments"],
        database_url: &url,
        args: &flags,
        ..Launch::default()
    });
    second.wait_ready().await;
    assert_eq!(
        first.wait_exit(Duration::from_secs(30)),
        Some(1),
        "the fenced process exits non-zero"
    );
    let said = std::fs::read_to_string(&first_log).unwrap();
    assert!(
        said.contains(&format!(
            "fenced out of {PAYMENTS_GROUP}: another process joined as static member {instance}-payments"
        )) && said.contains("--instance"),
        "{said}"
    );
    // The newcomer took the member's place and its partitions as they were.
    assert_eq!(
        second
            .counter("smm_worker_assigned_partitions", "worker=\"payments\"")
            .await,
        3
    );
    assert_eq!(
        second
            .counter("smm_worker_partitions_revoked_total", "worker=\"payments\"")
            .await,
        0
    );
}

/// Runs `scripts/kafka` for the broker the tests use: the suite's own,
/// whose state folder `scripts/test` names in SMM_KAFKA_HOME.
fn broker_script(action: &str) {
    let port = common::brokers()
        .rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .expect("SMM_TEST_BROKERS is HOST:PORT");
    let home = std::env::var("SMM_KAFKA_HOME")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.local/kafka-test").into());
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka"))
        .arg(action)
        .env("SMM_KAFKA_PORT", port)
        .env("SMM_KAFKA_HOME", home)
        .stdout(Stdio::null())
        .status()
        .expect("scripts/kafka");
    assert!(status.success(), "scripts/kafka {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_rides_out_a_broker_restart_and_loses_and_doubles_nothing() {
    let _turn = TURN.lock().await;
    let (_dir, url, store) = sqlite_panel().await;
    let users: Vec<i64> = (8201..=8205).collect();
    seed(&store, &users).await;
    skip_old_records(PAYMENTS_GROUP, &[catalog::PAYMENT_CONFIRMATIONS]);

    let worker = Running::start(&["payments"], &url, None);
    worker.wait_ready().await;
    let run = common::unique("restart");
    let (producing, expected) = stream_confirmations(&run, &users, 600, usize::MAX);
    producing.await.unwrap();
    // Mid-stream: some payments are applied, most are not yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker_script("stop");
    let outage = async {
        until("readiness to go false", Duration::from_secs(30), || async {
            matches!(worker.get("/health/ready").await, Some((503, _)))
        })
        .await;
    };
    let down = tokio::time::timeout(Duration::from_secs(35), outage).await;
    broker_script("start");
    assert!(
        down.is_ok(),
        "/health/ready stayed 200 with the broker stopped"
    );
    until(
        "readiness to come back",
        Duration::from_secs(90),
        || async { matches!(worker.get("/health/ready").await, Some((200, _))) },
    )
    .await;
    assert_every_payment_credited_once(&store, &expected, 600).await;
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM processed_events").await,
        600
    );
    let mut worker = worker;
    worker.signal("TERM");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(30)),
        Some(0),
        "still a clean exit after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_that_failed_into_the_dlq_are_applied_once_after_a_replay() {
    let _turn = TURN.lock().await;
    let (_dir, url, store) = sqlite_panel().await;
    let user = 8401;
    seed(&store, &[user]).await;
    skip_old_records("smm-payment-refunds-group", &[catalog::ORDER_REFUND]);
    skip_old_records("dlq-processing-group", &["smm.order.refund.dlq"]);

    let worker = Running::start(&["refunds"], &url, None);
    worker.wait_ready().await;
    // The orders are not in the store yet: every refund fails three times
    // and waits in the DLQ for a person.
    let orders: Vec<i64> = (84010..84015).collect();
    let producer = common::producer();
    for (i, order) in orders.iter().enumerate() {
        let refund = Envelope::new(
            Event::from(smm_workers::contract::events::OrderRefundRequested {
                refund_id: common::unique("refund"),
                order_id: *order,
                user_id: user,
                amount_minor: 100 * (i as i64 + 1),
                currency: "USD".into(),
                reason: "not delivered".into(),
            }),
            format!("corr-refund-{order}"),
        );
        producer
            .send(
                rdkafka::producer::FutureRecord::to(catalog::ORDER_REFUND)
                    .key(&order.to_string())
                    .payload(&refund.to_json()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    until(
        "five refunds dead-lettered",
        Duration::from_secs(60),
        || async {
            worker
                .counter("smm_worker_dead_letters_total", "smm.order.refund.dlq")
                .await
                >= 5
        },
    )
    .await;
    let mut conn = store.pool().acquire().await.unwrap();
    assert_eq!(
        panel::user(&mut conn, user)
            .await
            .unwrap()
            .unwrap()
            .balance_minor,
        0
    );
    // The dependency is fixed: the orders arrive.
    for order in &orders {
        panel::insert_order(
            &mut conn,
            &NewOrder {
                id: *order,
                user_id: user,
                quantity: 100,
                charge_minor: 1000,
                currency: "USD",
                payment_id: None,
                video_url: None,
                youtube_video_id: None,
            },
        )
        .await
        .unwrap();
    }
    drop(conn);

    let replay = common::run(&[
        "dlq",
        "replay",
        "smm.order.refund.dlq",
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    assert_eq!(replay.json()["replayed"], 5);
    until("every refund applied", Duration::from_secs(30), || async {
        let mut conn = store.pool().acquire().await.unwrap();
        panel::user(&mut conn, user)
            .await
            .unwrap()
            .unwrap()
            .balance_minor
            == 1500
    })
    .await;
    // A second replay finds nothing left: the group moved past them.
    let again = common::run(&[
        "dlq",
        "replay",
        "smm.order.refund.dlq",
        "--execute",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["replayed"], 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = store.pool().acquire().await.unwrap();
    assert_eq!(
        panel::user(&mut conn, user)
            .await
            .unwrap()
            .unwrap()
            .balance_minor,
        1500,
        "applied exactly once"
    );
    assert_eq!(panel::ledger_sum(&mut conn, user).await.unwrap(), 1500);
    for order in &orders {
        let o = panel::order(&mut conn, *order).await.unwrap().unwrap();
        assert_eq!(
            o.status,
            smm_workers::contract::events::OrderStatus::Cancelled
        );
    }
    drop(conn);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM refunds").await, 5);
}
