//! The refund workers on the real broker: `refunds` against both store
//! backends, `payment-refunds` against a provider API served over loopback
//! HTTP by the test.
// A test reads best as one story from setup to the last assertion.
#![allow(clippy::too_many_lines)]

mod common;

use common::{shared, wait_until};

fn renamed_from(main_topic: &str, main: &str, dead_letter: &str) -> Route {
    common::renamed(
        retry_policy_for(main_topic).expect("catalog policy"),
        main,
        dead_letter,
    )
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use smm_workers::contract::catalog::{self, retry_policy_for};
use smm_workers::contract::events::{
    Envelope, Event, OrderRefundRequested, OrderStatus, PaymentRefundRequested,
};
use smm_workers::contract::headers;
use smm_workers::providers::cryptomus::{self, RefundApi};
use smm_workers::runtime::metrics::RecordOutcome;
use smm_workers::runtime::{self, MANUAL_REVIEW_HEADER, Route, Worker};
use smm_workers::store::Store;
use smm_workers::store::panel::{self, NewOrder};
use smm_workers::workers::payment_refunds::PaymentRefunds;
use smm_workers::workers::refunds::Refunds;

fn refund(refund_id: &str, order_id: i64, user_id: i64, amount: i64) -> Envelope {
    Envelope::new(
        Event::from(OrderRefundRequested {
            refund_id: refund_id.into(),
            order_id,
            user_id,
            amount_minor: amount,
            currency: "USD".into(),
            reason: "under-delivered".into(),
        }),
        format!("corr-{refund_id}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_credit_once_cancel_the_order_and_send_over_refunds_to_manual_review() {
    common::ensure_topic(catalog::ORDER_STATE_UPDATES).await;
    for (url, store, _guard) in common::both_stores("refunds").await {
        let main = common::unique("fin-refund");
        let dlq = format!("{main}.dlq");
        common::create_topics(&[&main, &dlq], 1).await;
        let mut conn = store.pool().acquire().await.unwrap();
        panel::insert_user(&mut conn, 31, "USD").await.unwrap();
        panel::insert_order(
            &mut conn,
            &NewOrder {
                id: 310,
                user_id: 31,
                quantity: 500,
                charge_minor: 1000,
                currency: "USD",
                payment_id: None,
                video_url: None,
                youtube_video_id: None,
            },
        )
        .await
        .unwrap();
        drop(conn);
        let (shared, stop) = shared(Some(store.clone()));
        let metrics = shared.metrics.clone();
        let worker = Worker {
            name: "refunds".into(),
            group: common::unique("fin-group"),
            routes: vec![renamed_from(catalog::ORDER_REFUND, &main, &dlq)],
            handler: Refunds {
                store: store.clone(),
            },
        };
        let task = tokio::spawn(runtime::run(worker, shared));

        let first_id = common::unique("refund");
        let first = refund(&first_id, 310, 31, 600);
        let over = refund(&common::unique("refund"), 310, 31, 500);
        common::produce(&main, "310", &first.to_json(), &[]).await;
        common::produce(&main, "310", &over.to_json(), &[]).await;
        common::produce(&main, "310", &first.to_json(), &[]).await;
        wait_until("three refunds handled", Duration::from_secs(30), || {
            metrics.count("refunds", RecordOutcome::Ok)
                + metrics.count("refunds", RecordOutcome::DeadLettered)
                + metrics.count("refunds", RecordOutcome::Duplicate)
                >= 3
        })
        .await;
        let _ = stop.send(true);
        task.await.unwrap().unwrap();

        assert_eq!(metrics.count("refunds", RecordOutcome::Ok), 1, "{url}");
        assert_eq!(
            metrics.count("refunds", RecordOutcome::Duplicate),
            1,
            "{url}"
        );
        assert_eq!(
            metrics.count("refunds", RecordOutcome::Retried),
            0,
            "{url}: manual review is never retried"
        );
        let mut conn = store.pool().acquire().await.unwrap();
        assert_eq!(
            panel::user(&mut conn, 31)
                .await
                .unwrap()
                .unwrap()
                .balance_minor,
            600,
            "{url}"
        );
        assert_eq!(
            panel::ledger_sum(&mut conn, 31).await.unwrap(),
            600,
            "{url}"
        );
        let order = panel::order(&mut conn, 310).await.unwrap().unwrap();
        assert_eq!(
            (order.status, order.refunded_minor),
            (OrderStatus::Cancelled, 600),
            "{url}"
        );
        let audits: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'refund.credited'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(audits, 1, "{url}");
        drop(conn);

        let dead = common::read(&dlq, 1, Duration::from_secs(10));
        assert_eq!(dead.len(), 1, "{url}");
        assert_eq!(dead[0].value.as_deref(), Some(over.to_json().as_slice()));
        assert_eq!(
            dead[0].header(headers::EXCEPTION_FQCN),
            Some(&b"smmctl.refunds.ExceedsCharge"[..])
        );
        let review = String::from_utf8(
            dead[0]
                .header(MANUAL_REVIEW_HEADER)
                .expect("flagged")
                .to_vec(),
        )
        .unwrap();
        assert!(review.contains("more than what is left"), "{review}");

        let cancelled = common::read(
            catalog::ORDER_STATE_UPDATES,
            usize::MAX,
            Duration::from_secs(3),
        );
        let ours: Vec<_> = cancelled
            .iter()
            .filter(|r| {
                r.header(headers::CORRELATION_ID) == Some(format!("corr-{first_id}").as_bytes())
            })
            .collect();
        assert_eq!(ours.len(), 1, "{url}: one state event for the cancellation");
        let event = Envelope::decode(ours[0].value.as_deref().unwrap()).unwrap();
        match event.event {
            Event::OrderStatusChangedEvent(e) => {
                assert_eq!((e.order_id, e.to), (310, OrderStatus::Cancelled))
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A provider refund API: per payment id, a script of answers; records
/// every request it gets.
#[derive(Clone, Default)]
struct Provider {
    seen: Arc<Mutex<Vec<(String, HeaderMap, String)>>>,
}

async fn provider_answer(
    provider: Provider,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let payment = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["uuid"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let earlier = {
        let mut seen = provider.seen.lock().unwrap();
        let earlier = seen.iter().filter(|(p, _, _)| *p == payment).count();
        seen.push((payment.clone(), headers, body));
        earlier
    };
    match payment.as_str() {
        p if p.starts_with("flaky") && earlier < 2 => {
            (StatusCode::BAD_GATEWAY, "upstream down".into())
        }
        p if p.starts_with("slow") && earlier == 0 => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, "{\"state\":0}".into())
        }
        p if p.starts_with("refused") => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "{\"message\":\"payment already refunded\"}".into(),
        ),
        _ => (StatusCode::OK, "{\"state\":0,\"result\":[]}".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_refunds_retry_5xx_and_timeouts_and_dead_letter_a_4xx() {
    let provider = Provider::default();
    let app = Router::new().route(
        "/v1/payment/refund",
        post({
            let provider = provider.clone();
            move |headers: HeaderMap, body: String| provider_answer(provider.clone(), headers, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let main = common::unique("fin-payment-refunds");
    let dlq = format!("{main}.dlq");
    common::create_topics(&[&main, &dlq], 1).await;
    let (url, _dir) = common::fresh_sqlite();
    let store = Store::open(&url).await.unwrap();
    let api = RefundApi::new(
        &base,
        "merchant-7",
        "refund-api-key",
        Duration::from_millis(800),
    )
    .unwrap();
    let (shared, stop) = shared(Some(store.clone()));
    let metrics = shared.metrics.clone();
    let worker = Worker {
        name: "payment-refunds".into(),
        group: common::unique("fin-group"),
        routes: vec![renamed_from(catalog::PAYMENT_REFUNDS, &main, &dlq)],
        handler: PaymentRefunds {
            store: store.clone(),
            api,
        },
    };
    let task = tokio::spawn(runtime::run(worker, shared));

    let request = |payment: &str| {
        Envelope::new(
            Event::from(PaymentRefundRequested {
                refund_id: format!("refund-of-{payment}"),
                payment_id: payment.into(),
                provider: "cryptomus".into(),
                user_id: 5,
                amount_minor: 1234,
                currency: "USD".into(),
                reason: "customer asked".into(),
            }),
            format!("corr-{payment}"),
        )
    };
    let (flaky, slow, refused, fine) = (
        common::unique("flaky"),
        common::unique("slow"),
        common::unique("refused"),
        common::unique("fine"),
    );
    for payment in [&flaky, &slow, &refused, &fine] {
        common::produce(&main, payment, &request(payment).to_json(), &[]).await;
    }
    wait_until("four refunds settled", Duration::from_secs(60), || {
        metrics.count("payment-refunds", RecordOutcome::Ok)
            + metrics.count("payment-refunds", RecordOutcome::DeadLettered)
            >= 4
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();

    assert_eq!(metrics.count("payment-refunds", RecordOutcome::Ok), 3);
    assert_eq!(
        metrics.count("payment-refunds", RecordOutcome::DeadLettered),
        1
    );
    let seen = provider.seen.lock().unwrap().clone();
    let calls = |p: &str| seen.iter().filter(|(x, _, _)| x == p).collect::<Vec<_>>();
    assert_eq!(
        calls(&flaky).len(),
        3,
        "two 502s, then success on the third and last attempt"
    );
    assert_eq!(calls(&slow).len(), 2, "a timeout, then a retry");
    assert_eq!(calls(&refused).len(), 1, "a 4xx is not retried");
    assert_eq!(calls(&fine).len(), 1);
    for (payment, headers, body) in &seen {
        assert_eq!(
            headers["idempotency-key"],
            format!("refund-of-{payment}").as_str(),
            "the same key on every try"
        );
        assert_eq!(headers["merchant"], "merchant-7");
        assert_eq!(
            headers["sign"],
            cryptomus::sign(&body.replace('/', "\\/"), "refund-api-key").as_str()
        );
        assert!(body.contains("\"amount\":\"12.34\""), "{body}");
    }
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM refunds WHERE kind = 'provider' AND status = 'refunded'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(recorded, 3);
    let dead = common::read(&dlq, 1, Duration::from_secs(10));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(refused.as_bytes()));
    assert_eq!(
        dead[0].header(headers::EXCEPTION_FQCN),
        Some(&b"smmctl.payment_refunds.ProviderRefused"[..])
    );
    let message =
        String::from_utf8(dead[0].header(headers::EXCEPTION_MESSAGE).unwrap().to_vec()).unwrap();
    assert!(
        message.contains("422") && message.contains("already refunded"),
        "{message}"
    );
}
