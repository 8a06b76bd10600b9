//! Running a worker in the test's own process, on the shared runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smm_workers::contract::catalog::RetryPolicy;
use smm_workers::runtime::metrics::Metrics;
use smm_workers::runtime::{Route, Shared};
use smm_workers::store::Store;
use tokio::sync::watch;

use crate::kafka::bare_client_config;

/// A catalog retry policy on topics of the test's own.
pub fn renamed(policy: &RetryPolicy, main: &str, dead_letter: &str) -> Route {
    let mut route = Route::from(policy);
    route.main_topic = main.to_owned();
    route.exhausted_topic = Some(dead_letter.to_owned());
    route.poison_topic = Some(dead_letter.to_owned());
    route
}

/// What a worker run in process needs, with the sender that stops it.
pub fn shared(store: Option<Store>) -> (Shared, watch::Sender<bool>) {
    let client = bare_client_config();
    let (stop, shutdown) = watch::channel(false);
    let shared = Shared {
        producer: smm_workers::runtime::producer(&client).expect("producer"),
        client,
        store,
        metrics: Arc::new(Metrics::default()),
        shutdown,
        drain_timeout: Duration::from_secs(5),
        instance: None,
    };
    (shared, stop)
}

/// Waits until `done`, checking every 20 ms, failing the test after `within`.
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
