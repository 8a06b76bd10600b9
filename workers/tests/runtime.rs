//! The runtime against the real broker: retry ladders, dead letters and
//! Spring's headers, on topics of each test's own so tests run in parallel.
// A test reads best as one story from setup to the last assertion.
#![allow(clippy::too_many_lines)]

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use smm_workers::contract::catalog::{self, retry_policy_for};
use smm_workers::contract::events::{
    Envelope, Event, PaymentConfirmation, PaymentStatus, PaymentWebhookReceived,
};
use smm_workers::contract::headers::{self, decode_big_integer, encode_big_integer};
use smm_workers::runtime::metrics::RecordOutcome;
use smm_workers::runtime::{self, Delivery, Handled, Handler, HandlerFailure, Hop, Route, Worker};
use smm_workers::store::Store;
use smm_workers::workers::payments::Payments;
use smm_workers::workers::webhooks::Webhooks;

/// Fails its first `failures` calls, then succeeds; remembers every call.
struct Flaky {
    failures: u32,
    calls: Mutex<Vec<(Instant, u32, String)>>,
}

impl Handler for Flaky {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let mut calls = self.calls.lock().unwrap();
        calls.push((Instant::now(), delivery.attempt, delivery.topic.to_owned()));
        if calls.len() as u32 <= self.failures {
            return Err(HandlerFailure::retryable(
                "test.Flaky",
                format!("transient failure #{}", calls.len()),
            ));
        }
        Ok(Handled::Ignored("done".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_climbs_the_retry_topics_at_their_delays_with_springs_headers() {
    let main = common::unique("rt-orders");
    let (retry0, retry1, dlt) = (
        format!("{main}-retry-0"),
        format!("{main}-retry-1"),
        format!("{main}-dlt"),
    );
    common::create_topics(&[&main, &retry0, &retry1, &dlt], 1).await;
    // The order-processing ladder, on this test's topics.
    let route = Route {
        main_topic: main.clone(),
        max_attempts: 3,
        hops: vec![
            Hop {
                delay: Duration::from_secs(1),
                topic: Some(retry0.clone()),
            },
            Hop {
                delay: Duration::from_secs(2),
                topic: Some(retry1.clone()),
            },
        ],
        exhausted_topic: Some(dlt.clone()),
        poison_topic: Some(dlt.clone()),
        manual_review: false,
    };
    let handler = Arc::new(Flaky {
        failures: 2,
        calls: Mutex::new(Vec::new()),
    });
    let (shared, stop) = shared(None);
    let metrics = shared.metrics.clone();
    let worker = Worker {
        name: "flaky".into(),
        group: common::unique("rt-group"),
        routes: vec![route],
        handler: SharedHandler(handler.clone()),
    };
    let task = tokio::spawn(runtime::run(worker, shared));

    common::produce(
        &main,
        "order-1",
        b"{\"any\":\"payload\"}",
        &[(headers::CORRELATION_ID, b"corr-flaky")],
    )
    .await;
    wait_until("three attempts", Duration::from_secs(30), || {
        handler.calls.lock().unwrap().len() >= 3
    })
    .await;
    wait_until("the success to be counted", Duration::from_secs(5), || {
        metrics.count("flaky", RecordOutcome::Ignored) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();

    let calls = handler.calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        3,
        "processed once after two failures: {calls:?}"
    );
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        calls.iter().map(|c| c.2.as_str()).collect::<Vec<_>>(),
        [main.as_str(), &retry0, &retry1]
    );
    assert!(
        calls[1].0 - calls[0].0 >= Duration::from_secs(1),
        "retry-0 ran early"
    );
    assert!(
        calls[2].0 - calls[1].0 >= Duration::from_secs(2),
        "retry-1 ran early"
    );

    let source = common::read(&main, 1, Duration::from_secs(10)).remove(0);
    let hop0 = common::read(&retry0, 1, Duration::from_secs(10));
    let hop1 = common::read(&retry1, 1, Duration::from_secs(10));
    assert_eq!((hop0.len(), hop1.len()), (1, 1));
    assert!(
        common::read(&dlt, 1, Duration::from_secs(2)).is_empty(),
        "nothing dead-lettered"
    );
    for (hop, attempts) in [
        (&hop0[0], vec![vec![0, 0, 0, 2]]),
        (&hop1[0], vec![vec![0, 0, 0, 2], vec![0, 0, 0, 3]]),
    ] {
        assert_eq!(hop.key.as_deref(), Some(&b"order-1"[..]));
        assert_eq!(hop.value, source.value);
        assert_eq!(
            hop.header(headers::CORRELATION_ID),
            Some(&b"corr-flaky"[..])
        );
        // Spring's encodings, byte for byte: the first hop's origin, kept.
        assert_eq!(hop.header(headers::ORIGINAL_TOPIC), Some(main.as_bytes()));
        assert_eq!(
            hop.header(headers::ORIGINAL_PARTITION),
            Some(&[0u8, 0, 0, 0][..])
        );
        assert_eq!(
            hop.header(headers::ORIGINAL_OFFSET),
            Some(&0i64.to_be_bytes()[..])
        );
        assert_eq!(
            hop.header(headers::ORIGINAL_TIMESTAMP),
            Some(&source.timestamp_ms.to_be_bytes()[..])
        );
        assert_eq!(
            hop.header(headers::ORIGINAL_TIMESTAMP_TYPE),
            Some(&b"CreateTime"[..])
        );
        assert_eq!(
            hop.all(headers::ORIGINAL_TOPIC).len(),
            1,
            "original-* written once"
        );
        assert_eq!(
            hop.all(headers::RETRY_ATTEMPTS),
            attempts.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert_eq!(
            hop.header(headers::EXCEPTION_FQCN),
            Some(&b"test.Flaky"[..])
        );
        assert_eq!(
            hop.all(headers::EXCEPTION_FQCN).len(),
            1,
            "previous exception headers replaced"
        );
        let due_bytes = hop
            .header(headers::RETRY_BACKOFF_TIMESTAMP)
            .expect("backoff header");
        let due = decode_big_integer(due_bytes).unwrap();
        assert_eq!(
            encode_big_integer(due),
            due_bytes,
            "BigInteger minimal encoding"
        );
        let delay = due - hop.timestamp_ms;
        let expected = if attempts.len() == 1 { 1000 } else { 2000 };
        assert!(
            (expected - 50..=expected + 500).contains(&delay),
            "backoff {delay} ms, expected {expected}"
        );
        let original_ts = hop.header(headers::RETRY_ORIGINAL_TIMESTAMP).unwrap();
        assert_eq!(
            decode_big_integer(original_ts).unwrap(),
            source.timestamp_ms
        );
    }
}

/// Lets a test keep a handle on a handler the runtime owns.
struct SharedHandler<H>(Arc<H>);

impl<H: Handler> Handler for SharedHandler<H> {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        self.0.handle(delivery).await
    }
}

/// Counts and times the calls to the handler it wraps.
struct Counted<H> {
    inner: H,
    calls: Mutex<Vec<Instant>>,
}

impl<H: Handler> Handler for Counted<H> {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        self.calls.lock().unwrap().push(Instant::now());
        self.inner.handle(delivery).await
    }
}

use common::{renamed, shared, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_keeps_failing_reaches_the_dlq_after_exactly_six_attempts() {
    let main = common::unique("rt-confirmations");
    let dlq = format!("{main}.dlq");
    common::create_topics(&[&main, &dlq], 1).await;
    let (url, _dir) = common::fresh_sqlite();
    let store = Store::open(&url).await.unwrap();
    let policy = retry_policy_for(catalog::PAYMENT_CONFIRMATIONS).unwrap();
    let handler = Arc::new(Counted {
        inner: Payments {
            store: store.clone(),
        },
        calls: Mutex::new(Vec::new()),
    });
    let (shared, stop) = shared(Some(store));
    let worker = Worker {
        name: "payments".into(),
        group: common::unique("rt-group"),
        routes: vec![renamed(policy, &main, &dlq)],
        handler: SharedHandler(handler.clone()),
    };
    let task = tokio::spawn(runtime::run(worker, shared));

    // User 4040 is not in the store: retryable every time.
    let confirmation = Envelope::new(
        Event::from(PaymentConfirmation {
            payment_id: common::unique("pay"),
            provider: "cryptomus".into(),
            user_id: 4040,
            order_ids: vec![],
            amount_minor: 1000,
            currency: "USD".into(),
            status: PaymentStatus::Paid,
            confirmed_at: jiff::Timestamp::now(),
        }),
        "corr-permanent",
    );
    common::produce(&main, "4040", &confirmation.to_json(), &[]).await;
    let dead = tokio::task::spawn_blocking({
        let dlq = dlq.clone();
        move || common::read(&dlq, 1, Duration::from_secs(120))
    })
    .await
    .unwrap();
    let _ = stop.send(true);
    task.await.unwrap().unwrap();

    assert_eq!(dead.len(), 1, "dead-lettered once");
    let calls = handler.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), policy.max_attempts as usize, "attempts");
    for (gap, hop) in calls.windows(2).zip(policy.hops) {
        assert!(
            gap[1] - gap[0] >= hop.delay,
            "an in-place retry ran before its {:?}",
            hop.delay
        );
    }
    let record = &dead[0];
    assert_eq!(
        record.value.as_deref(),
        Some(confirmation.to_json().as_slice())
    );
    assert_eq!(
        record.header(headers::EXCEPTION_FQCN),
        Some(&b"smmctl.payments.UnknownUser"[..])
    );
    let message =
        String::from_utf8(record.header(headers::EXCEPTION_MESSAGE).unwrap().to_vec()).unwrap();
    assert!(message.contains("user 4040"), "{message}");
    assert_eq!(
        record.header(headers::ORIGINAL_TOPIC),
        Some(main.as_bytes())
    );
    assert_eq!(
        record.header(headers::ORIGINAL_OFFSET),
        Some(&0i64.to_be_bytes()[..])
    );
    assert_eq!(
        record.header(headers::RETRY_ATTEMPTS),
        Some(&7i32.to_be_bytes()[..]),
        "the next attempt would be the 7th"
    );
    assert_eq!(
        record.header(headers::CORRELATION_ID),
        None,
        "no header was invented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_straight_to_the_dlq_and_the_worker_keeps_going() {
    let main = common::unique("rt-webhooks");
    let dlq = format!("{main}.dlq");
    common::create_topics(&[&main, &dlq], 1).await;
    common::ensure_topic(catalog::PAYMENT_CONFIRMATIONS).await;
    let (url, _dir) = common::fresh_sqlite();
    let store = Store::open(&url).await.unwrap();
    let policy = retry_policy_for(catalog::PAYMENT_WEBHOOKS).unwrap();
    let (shared, stop) = shared(Some(store.clone()));
    let metrics = shared.metrics.clone();
    let api_key = "poison-test-key";
    let worker = Worker {
        name: "webhooks".into(),
        group: common::unique("rt-group"),
        routes: vec![renamed(policy, &main, &dlq)],
        handler: Webhooks {
            store,
            api_key: api_key.into(),
        },
    };
    let task = tokio::spawn(runtime::run(worker, shared));

    let webhook = |body: String| {
        Envelope::new(
            Event::from(PaymentWebhookReceived {
                provider: "cryptomus".into(),
                received_at: jiff::Timestamp::now(),
                body,
                remote_addr: None,
            }),
            "corr-poison",
        )
        .to_json()
    };
    let unknown_type = br#"{"schema_version":1,"event_id":"6f1c1c3e-8f0e-4a43-9a52-3f1f0c1e2d3a","correlation_id":"c","occurred_at":"2026-11-29T00:00:00Z","event_type":"NoSuchEvent","payload":{}}"#;
    let payment = common::unique("pay");
    let good_fields = format!(
        r#"{{"uuid":"{payment}","amount":"5.00","currency":"USD","status":"paid","additional_data":"{{\"user_id\":1}}"}}"#
    );
    let sign = smm_workers::providers::cryptomus::sign(
        &smm_workers::providers::cryptomus::php_json(&serde_json::from_str(&good_fields).unwrap()),
        api_key,
    );
    let good = good_fields.replacen('{', &format!("{{\"sign\":\"{sign}\","), 1);
    let forged = good.replace("5.00", "500.00");
    common::produce(&main, "a", b"{not json", &[]).await;
    common::produce(&main, "b", unknown_type, &[]).await;
    common::produce(&main, "c", &webhook(forged), &[]).await;
    common::produce(&main, "d", &webhook(good), &[]).await;

    wait_until("four records handled", Duration::from_secs(30), || {
        metrics.count("webhooks", RecordOutcome::DeadLettered)
            + metrics.count("webhooks", RecordOutcome::Ok)
            >= 4
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();

    assert_eq!(
        metrics.count("webhooks", RecordOutcome::Retried),
        0,
        "poison is never retried"
    );
    assert_eq!(metrics.count("webhooks", RecordOutcome::Ok), 1);
    let dead = common::read(&dlq, 3, Duration::from_secs(10));
    let classes: Vec<String> = dead
        .iter()
        .map(|r| String::from_utf8(r.header(headers::EXCEPTION_FQCN).unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        classes,
        [
            "smmctl.decode.not_json",
            "smmctl.decode.unknown_event_type",
            "smmctl.webhooks.BadSignature"
        ]
    );
    assert_eq!(dead[2].key.as_deref(), Some(&b"c"[..]));
    let confirmations = common::read(
        catalog::PAYMENT_CONFIRMATIONS,
        usize::MAX,
        Duration::from_secs(3),
    );
    let ours: Vec<_> = confirmations
        .iter()
        .filter(|r| {
            r.value
                .as_deref()
                .is_some_and(|v| String::from_utf8_lossy(v).contains(&payment))
        })
        .collect();
    assert_eq!(ours.len(), 1, "the good webhook confirmed once");
    assert_eq!(
        ours[0].header(headers::CORRELATION_ID),
        Some(&b"corr-poison"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_dead_lettered_without_crashing_the_worker() {
    let main = common::unique("rt-hostile");
    let retry = format!("{main}-retry-0");
    let dlt = format!("{main}-dlt");
    common::create_topics(&[&main, &retry, &dlt], 1).await;
    let (url, _dir) = common::fresh_sqlite();
    let store = Store::open(&url).await.unwrap();
    let route = Route {
        main_topic: main.clone(),
        max_attempts: 2,
        hops: vec![Hop {
            delay: Duration::from_millis(100),
            topic: Some(retry.clone()),
        }],
        exhausted_topic: Some(dlt.clone()),
        poison_topic: Some(dlt.clone()),
        manual_review: false,
    };
    let (shared, stop) = shared(Some(store.clone()));
    let metrics = shared.metrics.clone();
    let worker = Worker {
        name: "payments".into(),
        group: common::unique("rt-group"),
        routes: vec![route],
        handler: Payments { store },
    };
    let task = tokio::spawn(runtime::run(worker, shared));

    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let oversized = vec![b'x'; 900_000];
    common::produce(&main, "deep", nested.as_bytes(), &[]).await;
    common::produce(&main, "big", &oversized, &[]).await;
    let producer: rdkafka::producer::FutureProducer = common::client().create().unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&main)
                .key(&[0xff, 0xfe, 0x00][..])
                .payload("{}"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    // Headers of the wrong length, on the retry topic where they are read.
    common::produce(
        &retry,
        "bad-headers",
        b"not an envelope",
        &[
            (headers::RETRY_ATTEMPTS, &[1, 2, 3]),
            (headers::RETRY_BACKOFF_TIMESTAMP, &[0; 12]),
            (headers::ORIGINAL_PARTITION, &[9]),
            (headers::CORRELATION_ID, &[0xc3, 0x28]),
        ],
    )
    .await;
    wait_until(
        "four hostile records dead-lettered",
        Duration::from_secs(30),
        || metrics.count("payments", RecordOutcome::DeadLettered) >= 4,
    )
    .await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    let dead = common::read(&dlt, 4, Duration::from_secs(10));
    assert_eq!(dead.len(), 4);
    let by_key = |key: &[u8]| {
        dead.iter()
            .find(|r| r.key.as_deref() == Some(key))
            .expect("dead-lettered")
    };
    assert_eq!(
        by_key(b"big").value.as_ref().map(Vec::len),
        Some(900_000),
        "the value is kept whole"
    );
    assert_eq!(by_key(b"deep").value.as_ref().map(Vec::len), Some(200_000));
    by_key(&[0xff, 0xfe, 0x00]);
    let odd = by_key(b"bad-headers");
    assert_eq!(
        odd.header(headers::CORRELATION_ID),
        Some(&[0xc3, 0x28][..]),
        "headers passed on as they came"
    );
}
