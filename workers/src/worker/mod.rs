//! The panel's workers, one module each, and the table `smmctl run` reads.

pub mod notifications;
pub mod payment_refunds;
pub mod payments;
pub mod refunds;
pub mod webhooks;

use crate::catalog::{self, RetryPolicy, retry_policy_for};
use crate::events::{
    Envelope, Event, OrderStatus, OrderStatusChangedEvent, deterministic_event_id,
};
use crate::runtime::{Failure, Route};
use crate::store::{StoreError, Unit};

/// A worker as `smmctl run --list` shows it.
#[derive(Debug, Clone, Copy)]
pub struct WorkerInfo {
    pub name: &'static str,
    /// The seed's name for the consumer this worker replaces.
    pub replaces: &'static str,
    pub group: &'static str,
    /// Main topics; each brings its retry topics from the catalog.
    pub topics: &'static [&'static str],
    /// Topics its follow-up events go to.
    pub emits: &'static [&'static str],
    pub summary: &'static str,
}

impl WorkerInfo {
    pub fn policies(&self) -> Vec<&'static RetryPolicy> {
        self.topics
            .iter()
            .filter_map(|t| retry_policy_for(t))
            .collect()
    }

    pub fn routes(&self) -> Vec<Route> {
        self.policies().into_iter().map(Route::from).collect()
    }
}

pub static WORKERS: &[WorkerInfo] = &[
    WorkerInfo {
        name: "webhooks",
        replaces: "WebhookProcessingService",
        group: "smm-payment-confirmations-realtime-group",
        topics: &[catalog::PAYMENT_WEBHOOKS],
        emits: &[catalog::PAYMENT_CONFIRMATIONS],
        summary: "verify Cryptomus webhooks and publish payment confirmations",
    },
    WorkerInfo {
        name: "payments",
        replaces: "PaymentConfirmationConsumer",
        group: "smm-payment-confirmations-realtime-group",
        topics: &[catalog::PAYMENT_CONFIRMATIONS],
        emits: &[catalog::ORDER_STATE_UPDATES],
        summary: "credit balances, record the ledger, activate paid orders",
    },
    WorkerInfo {
        name: "refunds",
        replaces: "RefundProcessingService",
        group: "smm-payment-refunds-group",
        topics: &[catalog::ORDER_REFUND],
        emits: &[catalog::ORDER_STATE_UPDATES],
        summary: "refund orders to the balance, audit, cancel the order",
    },
    WorkerInfo {
        name: "payment-refunds",
        replaces: "PaymentRefundConsumer",
        group: "smm-payment-refunds-group",
        topics: &[catalog::PAYMENT_REFUNDS],
        emits: &[],
        summary: "refund payments through the provider's refund API",
    },
];

pub fn worker_named(name: &str) -> Option<&'static WorkerInfo> {
    WORKERS.iter().find(|w| w.name == name)
}

/// Insists on one event type: another type on this topic is a producer
/// bug, so it is poison, not a retry.
fn expect_event<'e, T>(
    envelope: &'e Envelope,
    pick: impl FnOnce(&'e Event) -> Option<&'e T>,
    wanted: &str,
) -> Result<&'e T, Failure> {
    pick(&envelope.event).ok_or_else(|| {
        Failure::poison(
            "smmctl.decode.unexpected_event_type",
            format!("expected {wanted}, found {}", envelope.event_type()),
        )
    })
}

/// Queues the state event for an order transition, with an id derived from
/// the transition so that a repeat collapses downstream.
async fn emit_transition(
    unit: &mut Unit,
    order_id: i64,
    user_id: i64,
    from: OrderStatus,
    to: OrderStatus,
    reason: &str,
) -> Result<(), StoreError> {
    let event = Event::from(OrderStatusChangedEvent {
        order_id,
        user_id: Some(user_id),
        from,
        to,
        reason: Some(reason.to_owned()),
        changed_at: jiff::Timestamp::now(),
    });
    let id = deterministic_event_id("order-status", &format!("{order_id}:{to}"));
    let envelope = Envelope::new(event, unit.correlation_id().to_owned()).with_event_id(id);
    unit.emit(
        catalog::ORDER_STATE_UPDATES,
        Some(&order_id.to_string()),
        &envelope,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_uses_a_seed_group_and_catalog_topics() {
        for worker in WORKERS {
            assert!(
                catalog::group_named(worker.group).is_some(),
                "{}",
                worker.name
            );
            let group_topics = catalog::group_named(worker.group).unwrap().topics();
            for route in worker.routes() {
                for topic in route.consumed_topics() {
                    assert!(catalog::topic_named(topic).is_some(), "{topic}");
                    assert!(
                        group_topics.contains(&topic),
                        "{topic} not read by {}",
                        worker.group
                    );
                }
            }
            assert_eq!(
                worker.policies().len(),
                worker.topics.len(),
                "{}",
                worker.name
            );
        }
    }
}
