//! The whole panel end to end: `smmctl run all` against the real broker,
//! each store backend and the sandbox's stand-ins, driven by
//! `smmctl simulate`, watched over WebSocket and SMTP. The workers use the
//! catalog's topics and groups, so these tests take turns.
// A test reads best as one story from setup to the last assertion.
#![allow(clippy::too_many_lines)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::worker_process::{API_KEY, Running, free_port, skip_old_records};
use futures_util::{SinkExt as _, StreamExt as _};
use smm_testbed::sandbox::{self, SandboxHandle, SandboxOptions};
use smm_testbed::smtp_sink::SmtpSink;
use smm_workers::contract::catalog;
use smm_workers::contract::events::{Envelope, Event, VideoProcessingMessage};
use smm_workers::contract::headers;
use smm_workers::servers::websocket;
use smm_workers::store::Store;
use smm_workers::store::panel;
use smm_workers::workers::{WORKERS, cqrs};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

static TURN: Mutex<()> = Mutex::const_new(());

const WS_SECRET: &str = "e2e-websocket-token-secret";

/// Moves every worker's group past what earlier runs left on its topics.
fn skip_everything_old() {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for worker in WORKERS {
        for policy in worker.policies() {
            by_group
                .entry(worker.group)
                .or_default()
                .extend(policy.consumed_topics());
        }
    }
    for (group, mut topics) in by_group {
        topics.sort_unstable();
        topics.dedup();
        skip_old_records(group, &topics);
    }
}

struct Panel {
    workers: Running,
    gateway: u16,
    ws: u16,
    sandbox: SandboxHandle,
    _stop_sandbox: tokio::sync::watch::Sender<bool>,
    mail: SmtpSink,
}

async fn start_panel(url: &str, workers: &[&str]) -> Panel {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (sandbox, _task) = sandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            delivery_duration: Duration::from_secs(3),
            ..SandboxOptions::default()
        },
        shutdown,
    )
    .await
    .unwrap();
    let mail = SmtpSink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (gateway, ws) = (free_port(), free_port());
    let env = provider_env(&sandbox, &mail, ws);
    let workers = Running::start_full(&[], workers, url, Some(gateway), &env);
    workers.wait_ready().await;
    Panel {
        workers,
        gateway,
        ws,
        sandbox,
        _stop_sandbox: stop,
        mail,
    }
}

fn provider_env(sandbox: &SandboxHandle, mail: &SmtpSink, ws: u16) -> Vec<(&'static str, String)> {
    let url = sandbox.url();
    vec![
        ("SMM_YOUTUBE_URL", url.clone()),
        ("SMM_YOUTUBE_API_KEY", "sandbox-youtube-key".into()),
        ("SMM_DELIVERY_URL", url.clone()),
        ("SMM_DELIVERY_POLL_INTERVAL", "500ms".into()),
        ("SMM_BINOM_URL", url.clone()),
        ("SMM_BINOM_API_KEY", "sandbox-binom-key".into()),
        ("SMM_SMS_URL", format!("{url}/notify/sms")),
        ("SMM_PUSH_URL", format!("{url}/notify/push")),
        ("SMM_SMTP_URL", mail.url()),
        ("SMM_WS_ADDR", format!("127.0.0.1:{ws}")),
        ("SMM_WS_TOKEN_SECRET", WS_SECRET.into()),
        ("SMM_PROVIDER_TIMEOUT", "5s".into()),
        ("SMM_CRYPTOMUS_MERCHANT", "e2e-merchant".into()),
        ("SMM_CRYPTOMUS_URL", format!("{url}/cryptomus")),
    ]
}

fn simulate(panel: &Panel, url: &str, extra: &[&str]) -> common::Run {
    let mut cmd = common::smmctl();
    cmd.env("SMM_CRYPTOMUS_API_KEY", API_KEY);
    let gateway = format!("http://127.0.0.1:{}", panel.gateway);
    let mut args = vec![
        "simulate",
        "--gateway",
        &gateway,
        "--database-url",
        url,
        "--wait",
        "90s",
        "-o",
        "json",
    ];
    args.extend(extra);
    common::run_with(cmd, &args)
}

/// A WebSocket client of `user` subscribed to `order`, collecting what it
/// receives.
async fn watch_order(
    ws_port: u16,
    user: i64,
    order: i64,
) -> tokio::task::JoinHandle<Vec<serde_json::Value>> {
    let token = websocket::mint_token(
        WS_SECRET.as_bytes(),
        user,
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
    );
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{ws_port}/ws?token={token}"))
            .await
            .expect("connect to the websocket worker");
    socket
        .send(Message::text(
            serde_json::json!({ "type": "subscribe", "order_ids": [order] }).to_string(),
        ))
        .await
        .unwrap();
    let subscribed = socket.next().await.unwrap().unwrap();
    assert!(
        subscribed.to_text().unwrap().contains("subscribed"),
        "{subscribed:?}"
    );
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(1), socket.next()).await
            else {
                if seen
                    .iter()
                    .any(|m: &serde_json::Value| m["status"] == "COMPLETED")
                {
                    break;
                }
                continue;
            };
            if let Ok(text) = message.to_text()
                && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            {
                seen.push(value);
            }
        }
        seen
    })
}

async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn order_base() -> i64 {
    // Unique per run, far from the ids other tests use.
    jiff::Timestamp::now().as_millisecond() * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_order_goes_from_webhook_to_completed_on_both_stores() {
    let _turn = TURN.lock().await;
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let url = common::store_url(backend, &dir, "e2e_fulfilment").await;
        skip_everything_old();
        let panel = start_panel(&url, &["all"]).await;
        let order = order_base();
        let correlation = format!("sim-{order}");
        let client = watch_order(panel.ws, order, order).await;
        let (_, scraped) = panel
            .workers
            .get("/metrics")
            .await
            .expect("/metrics answers");
        assert!(scraped.contains("\nsmm_websocket_clients 1\n"), "{scraped}");
        assert!(
            scraped.contains("\nsmm_websocket_subscriptions 1\n"),
            "{scraped}"
        );

        let run = simulate(
            &panel,
            &url,
            &["--orders", "1", "--first-order-id", &order.to_string()],
        );
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.stdout, run.stderr);
        let report = run.json();
        common::assert_schema(&report, "simulate");
        assert_eq!(report["orders"][0]["status"], "COMPLETED", "{report}");

        // Every status change reached the WebSocket client, in order.
        let seen = tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .expect("the client saw COMPLETED")
            .unwrap();
        let mut statuses: Vec<String> = Vec::new();
        for message in &seen {
            assert_eq!(message["type"], "status", "{message}");
            assert_eq!(message["correlation_id"], correlation.as_str());
            let status = message["status"].as_str().unwrap().to_owned();
            if statuses.last() != Some(&status) {
                statuses.push(status);
            }
        }
        assert_eq!(
            statuses,
            ["ACTIVE", "PROCESSING", "COMPLETED"],
            "{backend}: {seen:#?}"
        );

        // The customer's emails arrived at the SMTP server.
        let to = format!("customer{order}@example.test");
        until("the emails", Duration::from_secs(20), || {
            let n = panel
                .mail
                .mails()
                .iter()
                .filter(|m| m.to.contains(&to))
                .count();
            async move { n >= 2 }
        })
        .await;
        let subjects: Vec<String> = panel
            .mail
            .mails()
            .iter()
            .filter(|m| m.to.contains(&to))
            .filter_map(|m| m.header("Subject"))
            .collect();
        assert!(
            subjects.iter().any(|s| s.contains("active")),
            "{subjects:?}"
        );
        assert!(
            subjects.iter().any(|s| s.contains("completed")),
            "{subjects:?}"
        );

        // The read model matches the store.
        let store = Store::open(&url).await.unwrap();
        until(
            "the read model to catch up",
            Duration::from_secs(30),
            || {
                let store = store.clone();
                async move {
                    let mut conn = store.pool().acquire().await.unwrap();
                    let stored = panel::fulfilment(&mut conn, order).await.unwrap().unwrap();
                    let view = cqrs::view(&mut conn, order).await.unwrap();
                    view.as_ref().is_some_and(|v| {
                        v.status == stored.status.as_str()
                            && v.delivered_quantity == stored.delivered_quantity
                            && v.progress_percent == stored.progress_percent
                            && v.start_count == stored.start_count
                            && v.campaign_id == stored.campaign_id
                            && v.offer_id == stored.offer_id
                            && v.campaign_id.is_some()
                    })
                }
            },
        )
        .await;
        let stored = {
            let mut conn = store.pool().acquire().await.unwrap();
            panel::fulfilment(&mut conn, order).await.unwrap().unwrap()
        };
        assert_eq!(stored.status.as_str(), "COMPLETED");
        assert_eq!(
            stored.start_count,
            Some(sandbox::sandbox_view_count(&format!(
                "sim{:08}",
                order.rem_euclid(100_000_000)
            )))
        );
        assert_eq!(stored.delivered_quantity, 1000);

        // One correlation id on every record along the way.
        for topic in [
            catalog::PAYMENT_WEBHOOKS,
            catalog::PAYMENT_CONFIRMATIONS,
            catalog::ORDER_PROCESSING,
            catalog::ORDER_STATE_UPDATES,
            catalog::ORDER_STATUS_UPDATES,
            catalog::VIDEO_PROCESSING,
            catalog::ORDER_PROGRESS,
            catalog::BINOM_CAMPAIGN_CREATION,
            catalog::OFFER_ASSIGNMENTS,
            catalog::OFFER_ASSIGNMENT_EVENTS,
            catalog::NOTIFICATIONS,
        ] {
            let about_order =
                common::read_matching(topic, &order.to_string(), Duration::from_secs(10));
            let carried: Vec<_> = about_order
                .iter()
                .filter(|r| {
                    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                        .into_owned();
                    value.contains(&correlation) || value.contains(&format!("\"order_id\":{order}"))
                })
                .collect();
            assert!(
                !carried.is_empty(),
                "{backend}: no record about order {order} on {topic}"
            );
            for record in carried {
                assert_eq!(
                    record.header(headers::CORRELATION_ID),
                    Some(correlation.as_bytes()),
                    "{backend}: {topic}"
                );
                let envelope = Envelope::decode(record.value.as_deref().unwrap()).unwrap();
                assert_eq!(envelope.correlation_id, correlation, "{backend}: {topic}");
            }
        }
        // The sandbox saw one delivery and one campaign for it.
        assert_eq!(
            panel
                .sandbox
                .deliveries()
                .iter()
                .filter(|d| d.order_id == order)
                .count(),
            1
        );
        if backend == "sqlite" {
            faults_land_where_they_should(&panel, &url).await;
            rebuilt_read_model_equals_the_incremental_one(panel, &url).await;
        }
    }
}

/// `simulate --fail-rate 1` gives four orders one fault each.
async fn faults_land_where_they_should(panel: &Panel, url: &str) {
    let first = order_base() + 100;
    let run = simulate(
        panel,
        url,
        &[
            "--orders",
            "4",
            "--fail-rate",
            "1",
            "--first-order-id",
            &first.to_string(),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    common::assert_schema(&report, "simulate");
    let faults: Vec<&str> = report["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["fault"].as_str().unwrap())
        .collect();
    assert!(faults[0].starts_with("flaky"), "{faults:?}");
    let corr = |n: i64| format!("sim-{}", first + n);
    // The flaky video climbed the retry topic, then completed.
    assert_eq!(
        common::read_matching(
            "smm.order.processing-retry-0",
            &corr(0),
            Duration::from_secs(10)
        )
        .len(),
        1
    );
    assert_eq!(report["orders"][0]["status"], "COMPLETED");
    let dlt = common::read_matching(
        "smm.order.processing-dlt",
        &corr(1),
        Duration::from_secs(10),
    );
    assert_eq!(dlt.len(), 1);
    assert!(
        String::from_utf8_lossy(dlt[0].header(headers::EXCEPTION_MESSAGE).unwrap())
            .contains("unknown or private")
    );
    // The rejected order is cancelled and its money is the customer's
    // again, whether the payment came before the rejection or after.
    assert_eq!(report["orders"][1]["status"], "CANCELLED");
    let store = Store::open(url).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let customer = first + 1;
    let balance = panel::user(&mut conn, customer)
        .await
        .unwrap()
        .unwrap()
        .balance_minor;
    let ledger = panel::ledger_sum(&mut conn, customer).await.unwrap();
    assert_eq!(
        (balance, ledger),
        (500, 500),
        "the payment is back on the balance"
    );
    let forged = common::read_matching(
        "smm.payment.webhooks.dlq",
        &corr(2),
        Duration::from_secs(10),
    );
    assert_eq!(forged.len(), 1);
    let illegal = common::read_matching(
        "smm.order.state.updates-dlt",
        &corr(3),
        Duration::from_secs(10),
    );
    assert_eq!(illegal.len(), 1);
    let reason = String::from_utf8_lossy(illegal[0].header(headers::EXCEPTION_MESSAGE).unwrap())
        .into_owned();
    assert!(
        reason.contains("illegal order status transition COMPLETED -> ACTIVE"),
        "{reason}"
    );
    assert_eq!(
        report["orders"][3]["status"], "COMPLETED",
        "the order itself is untouched"
    );
}

async fn rebuilt_read_model_equals_the_incremental_one(panel: Panel, url: &str) {
    let store = Store::open(url).await.unwrap();
    let incremental = cqrs::all_views(&store).await.unwrap();
    assert!(incremental.len() >= 5, "{incremental:?}");
    drop(panel);
    let mut rebuild = Running::start(&["cqrs", "--rebuild"], url, None);
    rebuild.wait_ready().await;
    let wanted: BTreeMap<i64, cqrs::OrderView> =
        incremental.into_iter().map(|v| (v.order_id, v)).collect();
    // The rebuild replays every event the topics hold, other tests' too;
    // the orders this store built incrementally must come out the same.
    until(
        "the rebuild to reproduce every row",
        Duration::from_secs(60),
        || {
            let store = store.clone();
            let wanted = wanted.clone();
            async move {
                let rebuilt: BTreeMap<i64, cqrs::OrderView> = cqrs::all_views(&store)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| (v.order_id, v))
                    .collect();
                wanted
                    .iter()
                    .all(|(id, view)| rebuilt.get(id) == Some(view))
            }
        },
    )
    .await;
    until(
        "the rebuild to reach the end of its topics",
        Duration::from_secs(60),
        || async {
            let lag = common::run(&[
                "lag",
                "--group",
                "cqrs-read-model-group",
                "--summary",
                "-o",
                "json",
            ]);
            lag.json()["groups"][0]["total_lag"] == 0
        },
    )
    .await;
    let rebuilt: BTreeMap<i64, cqrs::OrderView> = cqrs::all_views(&store)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.order_id, v))
        .collect();
    for (id, view) in &wanted {
        assert_eq!(rebuilt.get(id), Some(view), "order {id}");
    }
    rebuild.signal("TERM");
    assert_eq!(rebuild.wait_exit(Duration::from_secs(30)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_queue_moves_exactly_once_even_when_migrated_twice() {
    let _turn = TURN.lock().await;
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    leave_no_video_backlog();
    let base = order_base();
    let marker = format!("legacy-{base}");
    for n in 0..5 {
        let body = serde_json::json!({
            "orderId": base + n,
            "videoId": "dQw4w9WgXcQ",
            "videoUrl": "https://youtu.be/dQw4w9WgXcQ",
            "targetViews": 100,
        })
        .to_string();
        common::produce(
            catalog::LEGACY_VIDEO_QUEUE,
            None,
            &[(&marker, body.as_bytes())],
            &[(headers::CORRELATION_ID, marker.as_bytes())],
        )
        .await;
    }
    let modern = Envelope::new(
        Event::from(VideoProcessingMessage {
            order_id: base + 5,
            youtube_video_id: "dQw4w9WgXcQ".into(),
            video_url: "https://youtu.be/dQw4w9WgXcQ".into(),
            target_views: 100,
            start_count: None,
            clip: None,
        }),
        "legacy-envelope",
    );
    let modern = modern.to_json();
    common::produce(
        catalog::LEGACY_VIDEO_QUEUE,
        None,
        &[(&marker, &modern), (&marker, b"<xml>not a message</xml>")],
        &[(headers::CORRELATION_ID, marker.as_bytes())],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let env = vec![("SMM_DELIVERY_URL", "http://127.0.0.1:9".to_owned())];
    for run in 1..=2 {
        let mut worker = Running::start_full(&[], &["video", "--migrate-legacy"], &url, None, &env);
        // Ready only after the migration, which runs before the worker.
        worker.wait_ready().await;
        worker.signal("TERM");
        assert_eq!(
            worker.wait_exit(Duration::from_secs(30)),
            Some(0),
            "run {run}"
        );
    }
    let moved = common::read_matching(catalog::VIDEO_PROCESSING, &marker, Duration::from_secs(10));
    let moved: Vec<_> = moved
        .iter()
        .filter(|r| r.key.as_deref() == Some(marker.as_bytes()))
        .collect();
    assert_eq!(
        moved.len(),
        6,
        "five bare messages and one envelope, once each"
    );
    let mut orders: Vec<i64> = moved
        .iter()
        .map(|r| {
            let envelope = Envelope::decode(r.value.as_deref().unwrap()).unwrap();
            let Event::VideoProcessingMessage(m) = envelope.event else {
                panic!()
            };
            m.order_id
        })
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, (0..6).map(|n| base + n).collect::<Vec<_>>());
    let refused = common::read_matching(
        smm_workers::contract::legacy::LEGACY_DEAD_LETTER,
        &marker,
        Duration::from_secs(10),
    );
    let refused: Vec<_> = refused
        .iter()
        .filter(|r| r.key.as_deref() == Some(marker.as_bytes()))
        .collect();
    assert_eq!(refused.len(), 1, "the unreadable record, once");
    assert!(
        String::from_utf8_lossy(refused[0].header(headers::EXCEPTION_MESSAGE).unwrap())
            .contains("not migrated")
    );
    leave_no_video_backlog();
}

/// The migrated records name orders no store has; later runs of the video
/// worker (other tests, a local `scripts/up` on this broker) should not
/// have to wade through them.
fn leave_no_video_backlog() {
    skip_old_records(
        "video-processing-group",
        &[
            catalog::LEGACY_VIDEO_QUEUE,
            catalog::VIDEO_PROCESSING,
            catalog::VIDEO_PROCESSING_RETRY,
        ],
    );
}

/// The legacy queue's lag for `video-processing-group`, or `None` before
/// the group has committed anything there.
fn legacy_lag() -> Option<i64> {
    let lag = common::run(&[
        "lag",
        "--group",
        "video-processing-group",
        "--topic",
        catalog::LEGACY_VIDEO_QUEUE,
        "-o",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&lag.stdout).ok()?;
    let topic = doc["groups"][0]["topics"]
        .as_array()?
        .iter()
        .find(|t| t["topic"] == catalog::LEGACY_VIDEO_QUEUE)?
        .clone();
    if topic["uncommitted_partitions"].as_i64() != Some(0) {
        return None;
    }
    topic["lag"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_migration_killed_mid_way_and_run_again_moves_every_record_once() {
    let _turn = TURN.lock().await;
    common::require_broker();
    common::expect_code(&["topics", "apply"], 0);
    leave_no_video_backlog();
    let base = order_base();
    let marker = format!("legacy-kill-{base}");
    let total: i64 = 40_000;
    let producer = common::producer();
    for n in 0..total {
        let body = serde_json::json!({
            "order_id": base + n,
            "youtube_video_id": "dQw4w9WgXcQ",
            "video_url": "https://youtu.be/dQw4w9WgXcQ",
            "target_views": 100,
        })
        .to_string();
        let key = (base + n).to_string();
        let _ = producer.send_result(
            rdkafka::producer::FutureRecord::to(catalog::LEGACY_VIDEO_QUEUE)
                .key(&key)
                .payload(&body)
                .headers(
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: headers::CORRELATION_ID,
                        value: Some(marker.as_bytes()),
                    }),
                ),
        );
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(60)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let env = vec![("SMM_DELIVERY_URL", "http://127.0.0.1:9".to_owned())];
    let mut first = Running::start_full(&[], &["video", "--migrate-legacy"], &url, None, &env);
    // Killed as soon as one chunk's transaction has committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if legacy_lag().is_some_and(|lag| lag < total) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the migration never committed a chunk"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal("KILL");
    let _ = first.wait_exit(Duration::from_secs(10));
    let left = legacy_lag().unwrap_or(total);
    eprintln!("the killed migration left {left} of {total} records");
    assert!(
        left > 0,
        "the migration finished before it was killed; give it more records"
    );

    let mut second = Running::start_full(&[], &["video", "--migrate-legacy"], &url, None, &env);
    second.wait_ready().await;
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(30)), Some(0));
    assert_eq!(legacy_lag(), Some(0));

    let moved = common::read_matching(catalog::VIDEO_PROCESSING, &marker, Duration::from_secs(60));
    let mut orders = std::collections::BTreeSet::new();
    let mut twice = 0;
    for record in &moved {
        let envelope = Envelope::decode(record.value.as_deref().unwrap()).unwrap();
        let Event::VideoProcessingMessage(m) = envelope.event else {
            panic!()
        };
        if !orders.insert(m.order_id) {
            twice += 1;
        }
    }
    assert_eq!(
        orders.len() as i64,
        total,
        "every record moved (the kill left {left})"
    );
    assert_eq!(twice, 0, "none moved twice");
}
