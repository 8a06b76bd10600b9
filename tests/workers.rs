//! `smmctl run` end to end: real processes, the real broker, both store
//! backends. The workers use the catalog's topics and groups, so these
//! tests take turns; each first moves the groups past whatever earlier runs
//! left on the topics.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smm_workers::catalog;
use smm_workers::events::{Envelope, Event, PaymentConfirmation, PaymentStatus};
use smm_workers::headers;
use smm_workers::store::Store;
use smm_workers::store::panel::{self, NewOrder};
use smm_workers::store::scratch::fresh_postgres;
use tokio::sync::Mutex;

static TURN: Mutex<()> = Mutex::const_new(());

const API_KEY: &str = "e2e-cryptomus-key";
const PAYMENTS_GROUP: &str = "smm-payment-confirmations-realtime-group";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Running {
    child: Child,
    metrics: String,
}

impl Running {
    fn start(workers: &[&str], database_url: &str, gateway_port: Option<u16>) -> Running {
        let metrics_port = free_port();
        let mut cmd: Command = common::smmctl();
        cmd.arg("run")
            .args(workers)
            .args(["--database-url", database_url])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--drain-timeout", "10s"])
            .env("SMM_CRYPTOMUS_API_KEY", API_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(port) = gateway_port {
            cmd.args(["--gateway-addr", &format!("127.0.0.1:{port}")]);
        }
        Running {
            child: cmd.spawn().expect("start smmctl run"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.metrics)).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = self.get("/health/ready").await {
                return;
            }
            assert!(Instant::now() < deadline, "the workers never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A counter's value summed over its label sets.
    async fn counter(&self, family: &str, label: &str) -> u64 {
        let Some((_, text)) = self.get("/metrics").await else {
            return 0;
        };
        text.lines()
            .filter(|l| l.starts_with(family) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "smmctl run did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    /// Leaves the group cleanly when it can, so the next test's offset
    /// reset does not find a lingering member.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moves `group` to the end of `topics`, so records earlier tests left
/// there are not this test's business.
fn skip_old_records(group: &str, topics: &[&str]) {
    let mut args = vec![
        "offsets",
        "reset",
        "--group",
        group,
        "--to-latest",
        "--execute",
        "--yes",
    ];
    for t in topics {
        args.extend(["--topic", t]);
    }
    // Waits out members a killed worker left behind until their session
    // expires.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = common::run(&args);
        if run.code == 0 {
            return;
        }
        assert!(
            run.stderr.contains("live member") && Instant::now() < deadline,
            "offsets reset failed: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

async fn seed(store: &Store, users: &[i64]) {
    let mut conn = store.pool().acquire().await.unwrap();
    for user in users {
        panel::insert_user(&mut conn, *user, "USD").await.unwrap();
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn signed_webhook(payment: &str, amount: &str, user: i64, orders: &[i64]) -> String {
    let additional = serde_json::json!({ "user_id": user, "order_ids": orders }).to_string();
    let mut body = serde_json::json!({
        "type": "payment",
        "uuid": payment,
        "order_id": format!("invoice/{payment}"),
        "amount": amount,
        "currency": "USD",
        "status": "paid",
        "additional_data": additional,
    });
    let sign = smm_workers::cryptomus::sign(&smm_workers::cryptomus::php_json(&body), API_KEY);
    body["sign"] = serde_json::Value::String(sign);
    body.to_string()
}

async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_ends_as_a_credited_balance_and_an_active_order_on_both_stores() {
    let _turn = TURN.lock().await;
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            "sqlite" => format!("sqlite://{}", dir.path().join("panel.db").display()),
            _ => fresh_postgres("e2e_happy").await,
        };
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
                    == smm_workers::events::OrderStatus::Active
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
    .with_event_id(smm_workers::events::deterministic_event_id(
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

async fn assert_every_payment_credited_once(
    store: &Store,
    expected: &std::collections::BTreeMap<i64, i64>,
    payments: i64,
) {
    until(
        "every payment to be recorded",
        Duration::from_secs(120),
        || async { count(store, "SELECT COUNT(*) FROM payments").await >= payments },
    )
    .await;
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM payments").await,
        payments
    );
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM ledger").await,
        payments,
        "one ledger line per payment"
    );
    let mut conn = store.pool().acquire().await.unwrap();
    for (user, credit) in expected {
        let balance = panel::user(&mut conn, *user)
            .await
            .unwrap()
            .unwrap()
            .balance_minor;
        assert_eq!(balance, *credit, "user {user}: balance");
        assert_eq!(
            panel::ledger_sum(&mut conn, *user).await.unwrap(),
            *credit,
            "user {user}: ledger sum"
        );
    }
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
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store = Store::open(&url).await.unwrap();
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
