//! The hub: the connected clients, the orders each watches, and the
//! publish that hands an update to each subscriber's queue without
//! waiting on any of them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use axum::extract::ws::{Utf8Bytes, close_code};
use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::contract::events::{Envelope, OrderStatus, OrderStatusUpdate};

/// Updates a client may have waiting before it counts as too slow. A
/// browser that keeps up never has more than a few; 64 absorbs a burst
/// (an order moving through several states at once) without letting a
/// dead tab hold memory for long.
pub const QUEUE_CAPACITY: usize = 64;

/// Orders one connection may watch. A customer's order page watches a
/// handful; the cap keeps one connection from making every publish walk a
/// huge subscription set.
pub const MAX_SUBSCRIPTIONS: usize = 1000;

/// One status update as clients receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "status")]
pub struct StatusMessage {
    pub order_id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub progress_percent: Option<u8>,
    pub message: String,
    pub event_id: Uuid,
    pub correlation_id: String,
    pub occurred_at: Timestamp,
}

impl StatusMessage {
    /// The update with its envelope's identity, for tracing it end to end.
    pub fn new(update: &OrderStatusUpdate, envelope: &Envelope) -> StatusMessage {
        StatusMessage {
            order_id: update.order_id,
            user_id: update.user_id,
            status: update.status,
            progress_percent: update.progress_percent,
            message: update.message.clone(),
            event_id: envelope.event_id,
            correlation_id: envelope.correlation_id.clone(),
            occurred_at: envelope.occurred_at,
        }
    }
}

/// Identifies one connection within a hub.
pub type ClientId = u64;

/// Why the hub let go of a client; its socket closes with this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    pub reason: String,
}

/// A client as the hub registered it: the receiving ends its socket
/// tasks drain.
#[derive(Debug)]
pub struct Registration {
    pub id: ClientId,
    pub updates: mpsc::Receiver<Utf8Bytes>,
    /// Fires when the hub drops the client; closed without a value when the
    /// client is unregistered normally.
    pub disconnected: oneshot::Receiver<Disconnect>,
}

/// What one publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Clients the update was queued for.
    pub delivered: usize,
    /// Clients dropped because their queue was full.
    pub dropped_slow: usize,
    /// Subscribers of the order who are another user, and got nothing.
    pub other_user: usize,
}

/// The hub's counters, as `/ws/health` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HubStats {
    pub connected: usize,
    pub subscriptions: usize,
    pub published: u64,
    /// Updates queued for a client (one per recipient).
    pub delivered: u64,
    pub dropped_slow: u64,
}

struct Client {
    user_id: i64,
    updates: mpsc::Sender<Utf8Bytes>,
    disconnect: oneshot::Sender<Disconnect>,
    orders: HashSet<i64>,
}

#[derive(Default)]
struct Registry {
    clients: HashMap<ClientId, Client>,
    by_order: HashMap<i64, HashSet<ClientId>>,
    subscriptions: usize,
}

impl Registry {
    fn remove(&mut self, id: ClientId) -> Option<Client> {
        let client = self.clients.remove(&id)?;
        for order in &client.orders {
            if let Some(ids) = self.by_order.get_mut(order) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_order.remove(order);
                }
            }
        }
        self.subscriptions -= client.orders.len();
        Some(client)
    }
}

/// Why a subscription change was refused; the client is told this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error(
        "at most {limit} subscriptions per connection; this would make {wanted}, so none were added (unsubscribe from finished orders first)"
    )]
    TooMany { limit: usize, wanted: usize },
    #[error("order id {0} is not a positive integer")]
    BadOrderId(i64),
    #[error("this connection is closing")]
    Gone,
}

/// The connected clients and what each watches. Shared as `Arc<Hub>` by
/// the consumer and the socket tasks; no lock is held across an await.
#[derive(Default)]
pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped_slow: AtomicU64,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        // A panic elsewhere cannot leave the registry half-updated in a
        // way that matters more than refusing every client would.
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a client of `user_id` with an empty subscription set.
    pub fn register(&self, user_id: i64) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (updates_tx, updates) = mpsc::channel(QUEUE_CAPACITY);
        let (disconnect, disconnected) = oneshot::channel();
        self.write().clients.insert(
            id,
            Client {
                user_id,
                updates: updates_tx,
                disconnect,
                orders: HashSet::new(),
            },
        );
        Registration {
            id,
            updates,
            disconnected,
        }
    }

    /// Forgets a client; a no-op when the hub already dropped it.
    pub fn unregister(&self, id: ClientId) {
        self.write().remove(id);
    }

    /// Adds `order_ids` to the client's subscriptions, all or none, and
    /// returns the whole set, sorted.
    pub fn subscribe(&self, id: ClientId, order_ids: &[i64]) -> Result<Vec<i64>, SubscribeError> {
        if let Some(&bad) = order_ids.iter().find(|&&o| o <= 0) {
            return Err(SubscribeError::BadOrderId(bad));
        }
        let mut registry = self.write();
        let registry = &mut *registry;
        let client = registry.clients.get_mut(&id).ok_or(SubscribeError::Gone)?;
        let new: BTreeSet<i64> = order_ids
            .iter()
            .copied()
            .filter(|o| !client.orders.contains(o))
            .collect();
        let wanted = client.orders.len() + new.len();
        if wanted > MAX_SUBSCRIPTIONS {
            return Err(SubscribeError::TooMany {
                limit: MAX_SUBSCRIPTIONS,
                wanted,
            });
        }
        for order in &new {
            client.orders.insert(*order);
            registry.by_order.entry(*order).or_default().insert(id);
        }
        registry.subscriptions += new.len();
        Ok(sorted(&client.orders))
    }

    /// Removes `order_ids` from the client's subscriptions and returns what
    /// is left, sorted. Ids it did not watch are ignored.
    pub fn unsubscribe(&self, id: ClientId, order_ids: &[i64]) -> Result<Vec<i64>, SubscribeError> {
        let mut registry = self.write();
        let registry = &mut *registry;
        let client = registry.clients.get_mut(&id).ok_or(SubscribeError::Gone)?;
        for order in order_ids {
            if client.orders.remove(order) {
                registry.subscriptions -= 1;
                if let Some(ids) = registry.by_order.get_mut(order) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        registry.by_order.remove(order);
                    }
                }
            }
        }
        Ok(sorted(&client.orders))
    }

    /// Queues `update` for every client of its user that watches its
    /// order. Never waits: a client whose queue is full is dropped as too
    /// slow instead.
    pub fn publish(&self, update: &StatusMessage) -> PublishReport {
        self.published.fetch_add(1, Ordering::Relaxed);
        let mut report = PublishReport::default();
        let text = match serde_json::to_string(update) {
            Ok(text) => Utf8Bytes::from(text),
            Err(e) => {
                tracing::error!(error = %e, order_id = update.order_id, "cannot render a status update; no client gets it");
                return report;
            }
        };
        let mut full = Vec::new();
        {
            let registry = self.read();
            let Some(ids) = registry.by_order.get(&update.order_id) else {
                return report;
            };
            for id in ids {
                let Some(client) = registry.clients.get(id) else {
                    continue;
                };
                if client.user_id != update.user_id {
                    report.other_user += 1;
                    continue;
                }
                match client.updates.try_send(text.clone()) {
                    Ok(()) => report.delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let queued = client.updates.max_capacity() - client.updates.capacity();
                        full.push((*id, queued));
                    }
                    // Its socket tasks are ending and will unregister it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        self.delivered
            .fetch_add(report.delivered as u64, Ordering::Relaxed);
        if !full.is_empty() {
            let mut registry = self.write();
            for (id, queued) in full {
                // Another publish may have dropped it between the locks;
                // only the one that removes it counts it.
                let Some(client) = registry.remove(id) else {
                    continue;
                };
                report.dropped_slow += 1;
                tracing::warn!(
                    client = id,
                    user_id = client.user_id,
                    queued,
                    "client too slow; disconnecting it"
                );
                let _ = client.disconnect.send(Disconnect {
                    code: close_code::POLICY,
                    reason: format!("too slow: {queued} updates queued"),
                });
            }
            self.dropped_slow
                .fetch_add(report.dropped_slow as u64, Ordering::Relaxed);
        }
        report
    }

    pub fn stats(&self) -> HubStats {
        let (connected, subscriptions) = {
            let registry = self.read();
            (registry.clients.len(), registry.subscriptions)
        };
        HubStats {
            connected,
            subscriptions,
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped_slow: self.dropped_slow.load(Ordering::Relaxed),
        }
    }
}

fn sorted(orders: &HashSet<i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = orders.iter().copied().collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn update(order_id: i64, user_id: i64, message: &str) -> StatusMessage {
        StatusMessage {
            order_id,
            user_id,
            status: OrderStatus::Active,
            progress_percent: None,
            message: message.into(),
            event_id: Uuid::new_v4(),
            correlation_id: "corr-1".into(),
            occurred_at: at(1_700_000_000),
        }
    }

    #[test]
    fn the_wire_form_is_tagged_status_with_every_field() {
        let message = StatusMessage {
            progress_percent: Some(40),
            ..update(7, 3, "Your order is running")
        };
        let value: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        assert_eq!(
            value,
            json!({
                "type": "status",
                "order_id": 7,
                "user_id": 3,
                "status": "ACTIVE",
                "progress_percent": 40,
                "message": "Your order is running",
                "event_id": message.event_id.to_string(),
                "correlation_id": "corr-1",
                "occurred_at": "2023-11-14T22:13:20Z",
            })
        );
    }

    #[test]
    fn only_subscribers_of_the_orders_user_get_an_update() {
        let hub = Hub::new();
        let mut owner = hub.register(3);
        let mut other_order = hub.register(3);
        let mut other_user = hub.register(4);
        let mut nothing = hub.register(3);
        hub.subscribe(owner.id, &[7, 8]).unwrap();
        hub.subscribe(other_order.id, &[8]).unwrap();
        hub.subscribe(other_user.id, &[7]).unwrap();

        let report = hub.publish(&update(7, 3, "hello"));
        assert_eq!(
            report,
            PublishReport {
                delivered: 1,
                dropped_slow: 0,
                other_user: 1
            }
        );
        let got = owner.updates.try_recv().unwrap();
        assert!(got.as_str().contains("\"message\":\"hello\""), "{got}");
        assert!(owner.updates.try_recv().is_err(), "one update, once");
        assert!(other_order.updates.try_recv().is_err());
        assert!(other_user.updates.try_recv().is_err());
        assert!(nothing.updates.try_recv().is_err());

        assert_eq!(hub.unsubscribe(owner.id, &[7, 99]).unwrap(), vec![8]);
        assert_eq!(hub.publish(&update(7, 3, "again")).delivered, 0);
        assert!(owner.updates.try_recv().is_err(), "unsubscribed");
        assert_eq!(hub.stats().subscriptions, 3);
    }

    #[test]
    fn a_full_queue_drops_only_that_client() {
        let hub = Hub::new();
        let mut stalled = hub.register(3);
        let mut reader = hub.register(3);
        hub.subscribe(stalled.id, &[7]).unwrap();
        hub.subscribe(reader.id, &[7]).unwrap();

        for n in 0..QUEUE_CAPACITY {
            let report = hub.publish(&update(7, 3, &format!("update {n}")));
            assert_eq!(report.delivered, 2);
            assert!(reader.updates.try_recv().is_ok());
        }
        assert!(
            stalled.disconnected.try_recv().is_err(),
            "not dropped while its queue has room"
        );
        let report = hub.publish(&update(7, 3, "one too many"));
        assert_eq!((report.delivered, report.dropped_slow), (1, 1));
        assert_eq!(
            stalled.disconnected.try_recv().unwrap(),
            Disconnect {
                code: 1008,
                reason: format!("too slow: {QUEUE_CAPACITY} updates queued")
            }
        );
        let got = reader.updates.try_recv().unwrap();
        assert!(got.as_str().contains("one too many"));

        // Dropped for good: later updates skip it and count it once.
        let report = hub.publish(&update(7, 3, "after"));
        assert_eq!((report.delivered, report.dropped_slow), (1, 0));
        let stats = hub.stats();
        assert_eq!(stats.connected, 1);
        assert_eq!(stats.subscriptions, 1);
        assert_eq!(stats.dropped_slow, 1);
        assert_eq!(stats.published, QUEUE_CAPACITY as u64 + 2);
        assert_eq!(stats.delivered, 2 * QUEUE_CAPACITY as u64 + 2);
        // What it had queued stays readable; nothing more was added.
        let mut queued = 0;
        while stalled.updates.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE_CAPACITY);
        assert_eq!(hub.subscribe(stalled.id, &[9]), Err(SubscribeError::Gone));
    }

    #[test]
    fn subscriptions_are_capped_all_or_nothing() {
        let hub = Hub::new();
        let client = hub.register(3);
        let first: Vec<i64> = (1..=MAX_SUBSCRIPTIONS as i64 - 1).collect();
        assert_eq!(
            hub.subscribe(client.id, &first).unwrap().len(),
            MAX_SUBSCRIPTIONS - 1
        );
        // Repeats do not count twice.
        assert_eq!(
            hub.subscribe(client.id, &[1, 2]).unwrap().len(),
            MAX_SUBSCRIPTIONS - 1
        );
        let over = [5_000, 5_001];
        assert_eq!(
            hub.subscribe(client.id, &over),
            Err(SubscribeError::TooMany {
                limit: MAX_SUBSCRIPTIONS,
                wanted: MAX_SUBSCRIPTIONS + 1
            })
        );
        assert_eq!(hub.stats().subscriptions, MAX_SUBSCRIPTIONS - 1);
        assert_eq!(
            hub.subscribe(client.id, &[5_000]).unwrap().len(),
            MAX_SUBSCRIPTIONS
        );
        assert_eq!(
            hub.subscribe(client.id, &[0]),
            Err(SubscribeError::BadOrderId(0))
        );
        hub.unregister(client.id);
        let stats = hub.stats();
        assert_eq!((stats.connected, stats.subscriptions), (0, 0));
    }
}
