//! The panel store on both backends: migrations, dedup claims, the outbox
//! and the money invariants.

mod common;

use smm_workers::contract::events::{Envelope, Event, OrderStatus, OrderStatusChangedEvent};
use smm_workers::store::panel::{self, LedgerKind, NewOrder};
use smm_workers::store::{Claim, Store};
use uuid::Uuid;

fn claim(event_id: Uuid) -> Claim<'static> {
    Claim {
        consumer: "payments",
        event_id,
        correlation_id: "corr-1",
        topic: "t",
        partition: 0,
        offset: 7,
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_reopening_keeps_data() {
    for (url, store, _guard) in common::both_stores("reopen").await {
        let mut conn = store.pool().acquire().await.unwrap();
        panel::insert_user(&mut conn, 1, "USD").await.unwrap();
        drop(conn);
        let again = Store::open(&url).await.expect("reopen");
        let mut conn = again.pool().acquire().await.unwrap();
        let user = panel::user(&mut conn, 1).await.unwrap().expect("user kept");
        assert_eq!(user.balance_minor, 0, "{url}");
    }
}

#[tokio::test]
async fn an_event_is_claimed_once_and_a_rolled_back_claim_frees_it() {
    for (url, store, _guard) in common::both_stores("claim").await {
        let id = Uuid::new_v4();
        // Dropped without commit: the claim must not stick.
        let unit = store.begin(claim(id)).await.unwrap().expect("first claim");
        drop(unit);
        let unit = store
            .begin(claim(id))
            .await
            .unwrap()
            .expect("claim after rollback");
        unit.commit().await.unwrap();
        assert!(
            store.begin(claim(id)).await.unwrap().is_none(),
            "{url}: duplicate claimed"
        );
        // Another consumer applies the same event independently.
        let other = Claim {
            consumer: "refunds",
            ..claim(id)
        };
        assert!(store.begin(other).await.unwrap().is_some(), "{url}");
    }
}

#[tokio::test]
async fn ledger_posts_move_the_balance_and_refuse_a_second_line() {
    for (url, store, _guard) in common::both_stores("ledger").await {
        let mut conn = store.pool().acquire().await.unwrap();
        panel::insert_user(&mut conn, 5, "USD").await.unwrap();
        drop(conn);

        let mut unit = store.begin(claim(Uuid::new_v4())).await.unwrap().unwrap();
        assert!(
            panel::post(&mut unit, 5, 1250, "USD", LedgerKind::Payment, "pay-1")
                .await
                .unwrap()
        );
        assert!(
            panel::post(&mut unit, 5, -300, "USD", LedgerKind::OrderCharge, "9")
                .await
                .unwrap()
        );
        assert!(
            !panel::post(&mut unit, 404, 1, "USD", LedgerKind::Payment, "x")
                .await
                .unwrap(),
            "unknown user"
        );
        unit.commit().await.unwrap();

        let mut unit = store.begin(claim(Uuid::new_v4())).await.unwrap().unwrap();
        let second = panel::post(&mut unit, 5, 1250, "USD", LedgerKind::Payment, "pay-1").await;
        assert!(
            second.is_err(),
            "{url}: a second ledger line for pay-1 was accepted"
        );
        drop(unit);

        let mut conn = store.pool().acquire().await.unwrap();
        assert_eq!(
            panel::user(&mut conn, 5)
                .await
                .unwrap()
                .unwrap()
                .balance_minor,
            950,
            "{url}"
        );
        assert_eq!(panel::ledger_sum(&mut conn, 5).await.unwrap(), 950, "{url}");
    }
}

#[tokio::test]
async fn refunds_cannot_exceed_the_charge_and_transitions_need_the_expected_state() {
    for (url, store, _guard) in common::both_stores("refund").await {
        let mut conn = store.pool().acquire().await.unwrap();
        panel::insert_user(&mut conn, 2, "USD").await.unwrap();
        let order = NewOrder {
            id: 20,
            user_id: 2,
            quantity: 1000,
            charge_minor: 500,
            currency: "USD",
            payment_id: Some("pay-20"),
            video_url: None,
            youtube_video_id: None,
        };
        panel::insert_order(&mut conn, &order).await.unwrap();
        drop(conn);

        let mut unit = store.begin(claim(Uuid::new_v4())).await.unwrap().unwrap();
        assert!(panel::reserve_refund(&mut unit, 20, 300).await.unwrap());
        assert!(
            !panel::reserve_refund(&mut unit, 20, 201).await.unwrap(),
            "{url}: over-refund"
        );
        assert!(panel::reserve_refund(&mut unit, 20, 200).await.unwrap());
        assert!(
            panel::transition(&mut unit, 20, OrderStatus::Pending, OrderStatus::Active)
                .await
                .unwrap()
        );
        assert!(
            !panel::transition(&mut unit, 20, OrderStatus::Pending, OrderStatus::Active)
                .await
                .unwrap()
        );
        unit.commit().await.unwrap();

        let mut conn = store.pool().acquire().await.unwrap();
        let order = panel::order(&mut conn, 20).await.unwrap().unwrap();
        assert_eq!(
            (order.status, order.refunded_minor),
            (OrderStatus::Active, 500),
            "{url}"
        );
        let awaiting = panel::orders_awaiting_payment(&mut conn, "pay-20", &[])
            .await
            .unwrap();
        assert!(
            awaiting.is_empty(),
            "{url}: an active order still awaits payment"
        );
    }
}

#[tokio::test]
async fn emitted_events_wait_in_the_outbox_until_marked_sent() {
    for (url, store, _guard) in common::both_stores("outbox").await {
        let id = Uuid::new_v4();
        let mut unit = store.begin(claim(id)).await.unwrap().unwrap();
        for order_id in [1, 2] {
            let event = Event::from(OrderStatusChangedEvent {
                order_id,
                user_id: Some(1),
                from: OrderStatus::Pending,
                to: OrderStatus::Active,
                reason: None,
                changed_at: jiff::Timestamp::now(),
            });
            unit.emit(
                "smm.order.state.updates",
                Some(&order_id.to_string()),
                &Envelope::new(event, "corr-1"),
            )
            .await
            .unwrap();
        }
        unit.commit().await.unwrap();

        let unsent = store.unsent("payments", Some(id)).await.unwrap();
        assert_eq!(unsent.len(), 2, "{url}");
        assert_eq!(
            unsent[0].key.as_deref(),
            Some("1"),
            "{url}: emission order kept"
        );
        assert_eq!(unsent[0].correlation_id, "corr-1");
        assert!(Envelope::decode(unsent[1].payload.as_bytes()).is_ok());
        store.mark_sent(&unsent[0].id).await.unwrap();
        let left = store.unsent("payments", None).await.unwrap();
        assert_eq!(left.len(), 1, "{url}");
        assert_eq!(left[0].key.as_deref(), Some("2"));
    }
}
