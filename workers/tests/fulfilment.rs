//! The fulfilment workers in-process against the real broker, a real store
//! and the sandbox's stand-ins, on topics of each test's own.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use smm_testbed::sandbox::{self, SandboxHandle, SandboxOptions};
use smm_workers::contract::catalog::{self, retry_policy_for};
use smm_workers::contract::events::{
    BinomCampaignCreation, Envelope, Event, OrderProgressUpdated, OrderStatus,
    OrderStatusChangedEvent, WeightedOffer, YouTubeOperation, YouTubeTask,
};
use smm_workers::contract::headers;
use smm_workers::providers::binom::BinomApi;
use smm_workers::providers::youtube::{Quota, YouTubeApi};
use smm_workers::runtime::metrics::{Metrics, RecordOutcome};
use smm_workers::runtime::{self, Handler, Route, Worker};
use smm_workers::store::Store;
use smm_workers::store::panel::{self, NewOrder};
use smm_workers::workers::binom::Binom;
use smm_workers::workers::order_state::OrderState;
use smm_workers::workers::progress::Progress;
use smm_workers::workers::youtube::YouTube;
use tokio::sync::watch;

use common::renamed;

struct Harness {
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), runtime::RuntimeError>>,
}

impl Harness {
    fn start<H: Handler>(name: &str, route: Route, handler: H, store: &Store) -> Harness {
        Harness::start_in(&common::unique("group"), name, route, handler, store)
    }

    /// [`Harness::start`] in `group`, where other harnesses may be members
    /// too, as copies of a worker in other processes would be.
    fn start_in<H: Handler>(
        group: &str,
        name: &str,
        route: Route,
        handler: H,
        store: &Store,
    ) -> Harness {
        let (shared, stop) = common::shared(Some(store.clone()));
        let metrics = shared.metrics.clone();
        let worker = Worker {
            name: name.to_owned(),
            group: group.to_owned(),
            routes: vec![route],
            handler,
        };
        Harness {
            metrics,
            stop,
            task: tokio::spawn(runtime::run(worker, shared)),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sandbox_with(options: SandboxOptions) -> (SandboxHandle, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let (handle, _task) = sandbox::start("127.0.0.1:0".parse().unwrap(), options, shutdown)
        .await
        .expect("sandbox");
    (handle, stop)
}

async fn produce_event(topic: &str, key: &str, event: Event) -> Envelope {
    let envelope = Envelope::new(event, common::unique("corr"));
    common::produce(
        topic,
        key,
        &envelope.to_json(),
        &[(headers::CORRELATION_ID, envelope.correlation_id.as_bytes())],
    )
    .await;
    envelope
}

async fn order_in(store: &Store, order_id: i64, user_id: i64) {
    let mut conn = store.pool().acquire().await.unwrap();
    panel::insert_user(&mut conn, user_id, "USD").await.unwrap();
    panel::insert_order(
        &mut conn,
        &NewOrder {
            id: order_id,
            user_id,
            quantity: 100,
            charge_minor: 0,
            currency: "USD",
            payment_id: None,
            video_url: Some("https://youtu.be/dQw4w9WgXcQ"),
            youtube_video_id: Some("dQw4w9WgXcQ"),
        },
    )
    .await
    .unwrap();
}

async fn set_status(store: &Store, order_id: i64, status: OrderStatus) {
    sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
        .bind(status.as_str())
        .bind(order_id)
        .execute(store.pool())
        .await
        .unwrap();
}

/// Calls per quota window, from the sandbox's log of YouTube calls, after
/// checking there was one call per task and no window went over `budget`.
fn calls_per_window(
    sandbox: &SandboxHandle,
    window: Duration,
    tasks: i64,
    budget: i64,
) -> std::collections::BTreeMap<i64, i64> {
    let window_ms = window.as_millis() as i64;
    let mut per_window = std::collections::BTreeMap::new();
    for call in sandbox.calls("youtube") {
        *per_window.entry(call.at_ms / window_ms).or_insert(0) += 1;
    }
    assert_eq!(
        per_window.values().sum::<i64>(),
        tasks,
        "one call per task: {per_window:?}"
    );
    assert!(
        per_window.values().all(|n| *n <= budget),
        "more calls than the budget in a window: {per_window:?}"
    );
    per_window
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_youtube_workers_on_one_postgres_never_spend_more_than_the_budget_together() {
    let (sandbox, _stop_sandbox) = sandbox_with(SandboxOptions::default()).await;
    let url = common::fresh_postgres("yt_shared_quota").await;
    let (main, dlq) = (common::unique("yt-shared"), common::unique("yt-shared-dlq"));
    common::create_topics(&[&main, &dlq], 2).await;
    let (window, budget) = (Duration::from_secs(5), 3);
    let route = renamed(
        retry_policy_for(catalog::YOUTUBE_PROCESSING).unwrap(),
        &main,
        &dlq,
    );
    let tasks = 9_i64;
    for n in 0..tasks {
        let task = YouTubeTask {
            order_id: 300 + n,
            youtube_video_id: format!("shared{n:05}"),
            operation: YouTubeOperation::VerifyViewCount,
        };
        produce_event(&main, &n.to_string(), task.into()).await;
    }
    // Two processes: each its own pool on the one database, sharing only
    // the quota row and the consumer group.
    let group = common::unique("yt-shared-group");
    let mut copies = Vec::new();
    for _ in 0..2 {
        let store = Store::open(&url).await.unwrap();
        let api = YouTubeApi::new(
            &sandbox.url(),
            "sandbox-youtube-key",
            Duration::from_secs(5),
        )
        .unwrap();
        let handler = YouTube {
            store: store.clone(),
            api,
            quota: Quota { budget, window },
        };
        copies.push(Harness::start_in(
            &group,
            "youtube",
            route.clone(),
            handler,
            &store,
        ));
    }
    wait_for(
        "every task, across both copies",
        Duration::from_secs(60),
        || {
            let done: u64 = copies
                .iter()
                .map(|c| c.metrics.count("youtube", RecordOutcome::Ok))
                .sum();
            async move { done == tasks as u64 }
        },
    )
    .await;
    // The two copies together.
    calls_per_window(&sandbox, window, tasks, budget);
    for copy in &copies {
        assert!(
            copy.metrics.count("youtube", RecordOutcome::Ok) > 0,
            "each copy held a partition and did part of the work"
        );
        assert_eq!(
            copy.metrics.count("youtube", RecordOutcome::DeadLettered),
            0
        );
    }
    assert!(
        copies
            .iter()
            .any(|c| c.metrics.count("youtube", RecordOutcome::Throttled) > 0)
    );
    for copy in copies {
        copy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_youtube_quota_holds_the_worker_until_it_resets_and_nothing_is_lost() {
    let (sandbox, _stop_sandbox) = sandbox_with(SandboxOptions::default()).await;
    let (url, _dir) = common::fresh_sqlite();
    let store = Store::open(&url).await.unwrap();
    let (main, dlq) = (common::unique("yt"), common::unique("yt-dlq"));
    common::create_topics(&[&main, &dlq], 1).await;
    let window = Duration::from_secs(6);
    let budget = 3;
    let quota = Quota { budget, window };
    let api = YouTubeApi::new(
        &sandbox.url(),
        "sandbox-youtube-key",
        Duration::from_secs(5),
    )
    .unwrap();
    let route = renamed(
        retry_policy_for(catalog::YOUTUBE_PROCESSING).unwrap(),
        &main,
        &dlq,
    );
    let tasks = 7;
    for n in 0..tasks {
        let task = YouTubeTask {
            order_id: 100 + n,
            youtube_video_id: format!("quota{n:06}"),
            operation: YouTubeOperation::VerifyViewCount,
        };
        produce_event(&main, &n.to_string(), task.into()).await;
    }
    let harness = Harness::start(
        "youtube",
        route,
        YouTube {
            store: store.clone(),
            api,
            quota,
        },
        &store,
    );
    // Done when the worker says so: the last call may have returned
    // before its record is settled.
    wait_for(
        "every task once the quota allowed",
        Duration::from_secs(45),
        || {
            let done = harness.metrics.count("youtube", RecordOutcome::Ok) == tasks as u64;
            async move { done }
        },
    )
    .await;
    let per_window = calls_per_window(&sandbox, window, tasks, budget);
    assert!(
        per_window.len() >= 3,
        "7 calls at 3 a window span 3 windows: {per_window:?}"
    );
    assert!(harness.metrics.count("youtube", RecordOutcome::Throttled) > 0);
    assert_eq!(
        harness.metrics.count("youtube", RecordOutcome::Ok),
        tasks as u64
    );
    assert_eq!(
        harness
            .metrics
            .count("youtube", RecordOutcome::DeadLettered),
        0
    );
    assert!(common::read(&dlq, 1, Duration::from_secs(2)).is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binom_creation_retried_after_a_timeout_makes_exactly_one_campaign() {
    let (sandbox, _stop_sandbox) = sandbox_with(SandboxOptions {
        binom_slow: Duration::from_secs(3),
        ..SandboxOptions::default()
    })
    .await;
    for (url, store, _guard) in common::both_stores("binom").await {
        common::ensure_topic(catalog::OFFER_ASSIGNMENTS).await;
        let (main, dlq) = (common::unique("binom"), common::unique("binom-dlq"));
        common::create_topics(&[&main, &dlq], 1).await;
        let order_id = 4242;
        order_in(&store, order_id, 42).await;
        let name = common::unique("slow-campaign");
        let api =
            BinomApi::new(&sandbox.url(), "sandbox-binom-key", Duration::from_secs(1)).unwrap();
        let route = renamed(
            retry_policy_for(catalog::BINOM_CAMPAIGN_CREATION).unwrap(),
            &main,
            &dlq,
        );
        let request = BinomCampaignCreation {
            order_id,
            campaign_name: name.clone(),
            traffic_source_id: 3,
            offers: vec![
                WeightedOffer {
                    offer_id: 7,
                    weight: 20,
                },
                WeightedOffer {
                    offer_id: 8,
                    weight: 80,
                },
            ],
        };
        let envelope = produce_event(&main, &order_id.to_string(), request.into()).await;
        let harness = Harness::start(
            "binom",
            route,
            Binom {
                store: store.clone(),
                api,
            },
            &store,
        );
        wait_for(
            &format!("{url}: the campaign on the order"),
            Duration::from_secs(30),
            || {
                let store = store.clone();
                async move {
                    let mut conn = store.pool().acquire().await.unwrap();
                    panel::fulfilment(&mut conn, order_id)
                        .await
                        .unwrap()
                        .and_then(|o| o.campaign_id)
                        .is_some()
                }
            },
        )
        .await;
        let made: Vec<_> = sandbox
            .campaigns()
            .into_iter()
            .filter(|c| c.name == name)
            .collect();
        assert_eq!(
            made.len(),
            1,
            "{url}: one campaign, whatever the retries: {made:?}"
        );
        let creates = sandbox
            .calls("binom")
            .iter()
            .filter(|c| c.what == format!("create {name}"))
            .count();
        assert_eq!(
            creates, 1,
            "{url}: the retry looked it up instead of creating it again"
        );
        assert!(
            harness.metrics.count("binom", RecordOutcome::Retried) >= 1,
            "{url}: the timeout was retried"
        );
        let mut conn = store.pool().acquire().await.unwrap();
        let order = panel::fulfilment(&mut conn, order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(order.campaign_id, Some(made[0].id));
        drop(conn);
        // The heaviest offer is assigned, in the campaign, under the same
        // correlation id.
        let assigned = common::read_matching(
            catalog::OFFER_ASSIGNMENTS,
            1,
            Duration::from_secs(10),
            |r| r.header(headers::CORRELATION_ID) == Some(envelope.correlation_id.as_bytes()),
        );
        assert_eq!(assigned.len(), 1, "{url}");
        let sent = Envelope::decode(assigned[0].value.as_deref().unwrap()).unwrap();
        let Event::OfferAssignment(a) = sent.event else {
            panic!("{sent:?}")
        };
        assert_eq!((a.offer_id, a.campaign_id), (8, Some(made[0].id)));
        harness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_never_moves_backwards_and_completes_the_order_through_a_state_event() {
    common::ensure_topic(catalog::ORDER_STATE_UPDATES).await;
    common::ensure_topic(catalog::ORDER_STATUS_UPDATES).await;
    for (url, store, _guard) in common::both_stores("progress").await {
        let (main, dlq) = (common::unique("progress"), common::unique("progress-dlq"));
        common::create_topics(&[&main, &dlq], 1).await;
        let order_id = 5000 + i64::from(url.starts_with("postgres"));
        order_in(&store, order_id, 50).await;
        set_status(&store, order_id, OrderStatus::Processing).await;
        let route = renamed(
            retry_policy_for(catalog::ORDER_PROGRESS).unwrap(),
            &main,
            &dlq,
        );
        let report = |delivered: i64, at: &str| OrderProgressUpdated {
            order_id,
            delivered_quantity: delivered,
            target_quantity: 100,
            percent: u8::try_from(delivered.min(100)).unwrap(),
            reported_at: at.parse().unwrap(),
            start_count: Some(900),
        };
        let mut correlation = String::new();
        for (delivered, at) in [
            (50, "2026-11-29T10:00:02Z"),
            (30, "2026-11-29T10:00:01Z"),
            (50, "2026-11-29T10:00:02Z"),
        ] {
            correlation = produce_event(&main, &order_id.to_string(), report(delivered, at).into())
                .await
                .correlation_id;
        }
        let harness = Harness::start(
            "progress",
            route,
            Progress {
                store: store.clone(),
            },
            &store,
        );
        wait_for("three reports handled", Duration::from_secs(30), || {
            let n = harness.metrics.count("progress", RecordOutcome::Ok);
            async move { n == 3 }
        })
        .await;
        let mut conn = store.pool().acquire().await.unwrap();
        let order = panel::fulfilment(&mut conn, order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (order.delivered_quantity, order.progress_percent),
            (50, 50),
            "{url}: an older, smaller report does not move it back"
        );
        assert_eq!(order.status, OrderStatus::Processing);
        drop(conn);
        let last = produce_event(
            &main,
            &order_id.to_string(),
            report(100, "2026-11-29T10:00:03Z").into(),
        )
        .await;
        let completed = common::read_matching(
            catalog::ORDER_STATE_UPDATES,
            1,
            Duration::from_secs(20),
            |r| r.header(headers::CORRELATION_ID) == Some(last.correlation_id.as_bytes()),
        );
        assert_eq!(
            completed.len(),
            1,
            "{url}: the completion goes through order-state"
        );
        let event = Envelope::decode(completed[0].value.as_deref().unwrap()).unwrap();
        let Event::OrderStatusChangedEvent(change) = event.event else {
            panic!()
        };
        assert_eq!(
            (change.from, change.to),
            (OrderStatus::Processing, OrderStatus::Completed)
        );
        // The progress worker does not apply the transition itself.
        let mut conn = store.pool().acquire().await.unwrap();
        let order = panel::fulfilment(&mut conn, order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(order.delivered_quantity, 100);
        assert_eq!(order.status, OrderStatus::Processing);
        drop(conn);
        // Each moving report told the customer; the repeat did not.
        let shown = common::read_matching(
            catalog::ORDER_STATUS_UPDATES,
            3,
            Duration::from_secs(5),
            |r| r.header(headers::CORRELATION_ID) == Some(correlation.as_bytes()),
        );
        assert!(
            shown.is_empty(),
            "{url}: the repeated report of 50 emitted no update: {}",
            shown.len()
        );
        assert!(common::read(&dlq, 1, Duration::from_secs(1)).is_empty());
        harness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_and_conflicting_transitions_land_in_the_dlt_with_their_reason() {
    common::ensure_topic(catalog::ORDER_STATUS_UPDATES).await;
    common::ensure_topic(catalog::NOTIFICATIONS).await;
    for (url, store, _guard) in common::both_stores("order_state").await {
        let (main, dlt) = (common::unique("state"), common::unique("state-dlt"));
        let retry: Vec<String> = (0..2).map(|i| format!("{main}-retry-{i}")).collect();
        common::create_topics(&[&main, &dlt, &retry[0], &retry[1]], 1).await;
        let mut route = renamed(
            retry_policy_for(catalog::ORDER_STATE_UPDATES).unwrap(),
            &main,
            &dlt,
        );
        for (hop, topic) in route.hops.iter_mut().zip(&retry) {
            hop.topic = Some(topic.clone());
        }
        let (done, fresh) = (6001, 6002);
        order_in(&store, done, 60).await;
        order_in(&store, fresh, 60).await;
        set_status(&store, done, OrderStatus::Completed).await;
        let change = |order_id, from, to| OrderStatusChangedEvent {
            order_id,
            user_id: Some(60),
            from,
            to,
            reason: None,
            changed_at: jiff::Timestamp::now(),
        };
        // Forbidden by the lifecycle whatever the store says.
        produce_event(
            &main,
            "1",
            change(done, OrderStatus::Completed, OrderStatus::Active).into(),
        )
        .await;
        // Legal in itself, but the order has settled.
        produce_event(
            &main,
            "2",
            change(done, OrderStatus::Processing, OrderStatus::Cancelled).into(),
        )
        .await;
        let applied = produce_event(
            &main,
            "3",
            change(fresh, OrderStatus::Pending, OrderStatus::Active).into(),
        )
        .await;
        let harness = Harness::start(
            "order-state",
            route,
            OrderState {
                store: store.clone(),
            },
            &store,
        );

        let dead = common::read(&dlt, 2, Duration::from_secs(30));
        assert_eq!(dead.len(), 2, "{url}");
        let message = |r: &common::Read| {
            String::from_utf8_lossy(r.header(headers::EXCEPTION_MESSAGE).unwrap()).into_owned()
        };
        let fqcn = |r: &common::Read| {
            String::from_utf8_lossy(r.header(headers::EXCEPTION_FQCN).unwrap()).into_owned()
        };
        assert!(
            message(&dead[0]).contains("illegal order status transition COMPLETED -> ACTIVE"),
            "{}",
            message(&dead[0])
        );
        assert_eq!(fqcn(&dead[0]), "smmctl.decode.invalid");
        assert!(
            message(&dead[1]).contains(&format!("order {done} is COMPLETED")),
            "{}",
            message(&dead[1])
        );
        assert_eq!(fqcn(&dead[1]), "smmctl.order_state.IllegalTransition");
        for record in &dead {
            assert_eq!(
                record.header(headers::ORIGINAL_TOPIC),
                Some(main.as_bytes())
            );
        }
        // Nothing was retried: both are poison.
        assert_eq!(
            harness.metrics.count("order-state", RecordOutcome::Retried),
            0
        );

        wait_for(
            "the legal transition applied",
            Duration::from_secs(20),
            || {
                let store = store.clone();
                async move {
                    let mut conn = store.pool().acquire().await.unwrap();
                    panel::fulfilment(&mut conn, fresh)
                        .await
                        .unwrap()
                        .unwrap()
                        .status
                        == OrderStatus::Active
                }
            },
        )
        .await;
        let told = common::read_matching(
            catalog::ORDER_STATUS_UPDATES,
            1,
            Duration::from_secs(10),
            |r| r.header(headers::CORRELATION_ID) == Some(applied.correlation_id.as_bytes()),
        );
        assert_eq!(told.len(), 1, "{url}: the customer hears of it");
        let mut conn = store.pool().acquire().await.unwrap();
        let settled = panel::fulfilment(&mut conn, done).await.unwrap().unwrap();
        assert_eq!(settled.status, OrderStatus::Completed, "{url}: untouched");
        drop(conn);
        harness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_answers_are_classified_as_the_workers_need() {
    use smm_workers::providers::CallError;
    use smm_workers::providers::youtube::LookupError;
    use smm_workers::runtime::FailureKind;
    let (sandbox, _stop) = sandbox_with(SandboxOptions {
        youtube_quota: Some(2),
        ..SandboxOptions::default()
    })
    .await;
    let timeout = Duration::from_secs(5);
    let youtube = YouTubeApi::new(&sandbox.url(), "sandbox-youtube-key", timeout).unwrap();
    let video = youtube.video("dQw4w9WgXcQ").await.unwrap();
    assert_eq!(
        video.view_count,
        Some(sandbox::sandbox_view_count("dQw4w9WgXcQ"))
    );
    assert_eq!(
        youtube.video("x0000000001").await,
        Err(LookupError::NotFound("x0000000001".into()))
    );
    // YouTube's own quota answer, whatever the local budget says.
    assert_eq!(
        youtube.video("dQw4w9WgXcQ").await,
        Err(LookupError::QuotaExceeded)
    );

    // A wrong key holds the worker instead of dead-lettering every record.
    let wrong = YouTubeApi::new(&sandbox.url(), "not-the-key", timeout).unwrap();
    let Err(LookupError::Call(refused)) = wrong.video("dQw4w9WgXcQ").await else {
        panic!("a bad key is a call error")
    };
    assert!(
        matches!(refused, CallError::Unauthorized { status: 400, .. }),
        "{refused:?}"
    );
    let failure = refused.into_failure("smmctl.youtube");
    assert!(failure.retry_after.is_some(), "{failure:?}");
    let binom = BinomApi::new(&sandbox.url(), "not-the-key", timeout).unwrap();
    let failure = binom
        .find("any")
        .await
        .unwrap_err()
        .into_failure("smmctl.binom");
    assert!(failure.retry_after.is_some(), "{failure:?}");
    assert!(
        failure.message.contains("refused the credentials"),
        "{failure:?}"
    );

    // Nothing listening: retried, with a reason that names no URL.
    let gone = YouTubeApi::new("http://127.0.0.1:9", "secret-key-in-query", timeout).unwrap();
    let Err(LookupError::Call(e)) = gone.video("dQw4w9WgXcQ").await else {
        panic!("a refused connection is a call error")
    };
    let failure = e.into_failure("smmctl.youtube");
    assert_eq!(failure.kind, FailureKind::Retryable);
    assert_eq!(failure.retry_after, None);
    assert!(
        !failure.message.contains("secret-key-in-query"),
        "{failure:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_video_cancels_an_unpaid_order_and_refunds_a_paid_one() {
    use smm_workers::contract::events::{OrderCreatedEvent, OrderRefundRequested};
    use smm_workers::workers::orders::Orders;
    common::ensure_topic(catalog::ORDER_STATE_UPDATES).await;
    common::ensure_topic(catalog::ORDER_REFUND).await;
    let (sandbox, _stop) = sandbox_with(SandboxOptions::default()).await;
    for (url, store, _guard) in common::both_stores("rejected").await {
        let (main, dlt) = (common::unique("orders"), common::unique("orders-dlt"));
        let retry: Vec<String> = (0..2).map(|i| format!("{main}-retry-{i}")).collect();
        common::create_topics(&[&main, &dlt, &retry[0], &retry[1]], 1).await;
        let mut route = renamed(
            retry_policy_for(catalog::ORDER_PROCESSING).unwrap(),
            &main,
            &dlt,
        );
        for (hop, topic) in route.hops.iter_mut().zip(&retry) {
            hop.topic = Some(topic.clone());
        }
        let (unpaid, paid, user) = (7101, 7102, 71);
        order_in(&store, unpaid, user).await;
        order_in(&store, paid, user).await;
        sqlx::query("UPDATE orders SET charge_minor = 900, status = 'ACTIVE' WHERE id = $1")
            .bind(paid)
            .execute(store.pool())
            .await
            .unwrap();
        let created = |order_id| OrderCreatedEvent {
            order_id,
            user_id: user,
            service_id: 1,
            video_url: "https://youtu.be/x0000000071".into(),
            youtube_video_id: "x0000000071".into(),
            quantity: 100,
            charge_minor: if order_id == paid { 900 } else { 0 },
            currency: "USD".into(),
            payment_id: None,
        };
        let unpaid_event = Envelope::new(created(unpaid).into(), common::unique("corr"));
        let paid_event = produce_event(&main, "2", created(paid).into()).await;
        for _ in 0..2 {
            // The second copy is a redelivery: rejected again, settled once.
            common::produce(
                &main,
                "1",
                &unpaid_event.to_json(),
                &[(
                    headers::CORRELATION_ID,
                    unpaid_event.correlation_id.as_bytes(),
                )],
            )
            .await;
        }
        let api = YouTubeApi::new(
            &sandbox.url(),
            "sandbox-youtube-key",
            Duration::from_secs(5),
        )
        .unwrap();
        let harness = Harness::start(
            "orders",
            route,
            Orders {
                store: store.clone(),
                youtube: api,
                quota: Quota {
                    budget: 100,
                    window: Duration::from_secs(86_400),
                },
            },
            &store,
        );
        let dead = common::read(&dlt, 3, Duration::from_secs(30));
        assert_eq!(dead.len(), 3, "{url}: every copy reaches the DLT");
        for record in &dead {
            let reason =
                String::from_utf8_lossy(record.header(headers::EXCEPTION_MESSAGE).unwrap())
                    .into_owned();
            assert!(reason.contains("unknown or private"), "{reason}");
        }
        let mut conn = store.pool().acquire().await.unwrap();
        let order = panel::fulfilment(&mut conn, unpaid).await.unwrap().unwrap();
        assert_eq!(
            order.status,
            OrderStatus::Cancelled,
            "{url}: cancelled in the same transaction"
        );
        drop(conn);
        let cancelled = common::read_matching(
            catalog::ORDER_STATE_UPDATES,
            2,
            Duration::from_secs(5),
            |r| r.header(headers::CORRELATION_ID) == Some(unpaid_event.correlation_id.as_bytes()),
        );
        assert_eq!(
            cancelled.len(),
            1,
            "{url}: one state event, however many copies"
        );
        let refund =
            common::read_matching(catalog::ORDER_REFUND, 1, Duration::from_secs(10), |r| {
                r.header(headers::CORRELATION_ID) == Some(paid_event.correlation_id.as_bytes())
            });
        assert_eq!(refund.len(), 1, "{url}: the charged order is refunded");
        let refund = Envelope::decode(refund[0].value.as_deref().unwrap()).unwrap();
        let Event::OrderRefundRequested(OrderRefundRequested {
            amount_minor,
            order_id,
            ..
        }) = refund.event
        else {
            panic!("{refund:?}")
        };
        assert_eq!((order_id, amount_minor), (paid, 900));
        assert_eq!(
            harness.metrics.count("orders", RecordOutcome::Retried),
            0,
            "poison is not retried"
        );
        harness.stop().await;
    }
}
