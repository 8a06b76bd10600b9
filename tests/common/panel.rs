//! The panel store as the end-to-end tests check it: users to pay, and
//! every payment credited exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use smm_workers::store::Store;
use smm_workers::store::panel;

use super::worker_process::until;

pub async fn seed(store: &Store, users: &[i64]) {
    let mut conn = store.pool().acquire().await.unwrap();
    for user in users {
        panel::insert_user(&mut conn, *user, "USD").await.unwrap();
    }
}

pub async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Waits until `payments` payments are recorded, then checks there are no
/// more, one ledger line each, and every user's balance and ledger sum.
pub async fn assert_every_payment_credited_once(
    store: &Store,
    expected: &BTreeMap<i64, i64>,
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
