//! The panel's workers, one module each, and the table `smmctl run` reads.

pub mod binom;
pub mod cqrs;
pub mod notifications;
pub mod offers;
pub mod order_state;
pub mod orders;
pub mod payment_refunds;
pub mod payments;
pub mod progress;
pub mod refunds;
pub mod video;
pub mod webhooks;
pub mod youtube;

use crate::contract::catalog::{self, RetryPolicy, retry_policy_for};
use crate::contract::events::{
    Envelope, Event, OrderStatus, OrderStatusChangedEvent, VideoProcessingMessage,
    deterministic_event_id,
};
use crate::runtime::{HandlerFailure, Route};
use crate::store::panel::{self, Fulfilment, LedgerKind};
use crate::store::{StoreError, Unit};

/// What `smmctl run` can start: each consumer in [`WORKERS`] and the
/// webhook gateway, which serves HTTP and consumes nothing.
///
/// The one place a worker's identity lives: the table, the handlers that
/// `smmctl run` builds and the providers a worker needs all match on it, so
/// a new worker the rest forgets fails to compile rather than to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    Webhooks,
    Payments,
    Refunds,
    PaymentRefunds,
    Orders,
    OrderState,
    Progress,
    Websocket,
    Video,
    Youtube,
    Binom,
    Offers,
    Notifications,
    Cqrs,
    WebhookGateway,
}

impl WorkerKind {
    /// Every kind, in the order `smmctl run all` starts them and `--help`
    /// lists them: the consumers as in [`WORKERS`], then the gateway.
    pub const ALL: [WorkerKind; 15] = [
        WorkerKind::Webhooks,
        WorkerKind::Payments,
        WorkerKind::Refunds,
        WorkerKind::PaymentRefunds,
        WorkerKind::Orders,
        WorkerKind::OrderState,
        WorkerKind::Progress,
        WorkerKind::Websocket,
        WorkerKind::Video,
        WorkerKind::Youtube,
        WorkerKind::Binom,
        WorkerKind::Offers,
        WorkerKind::Notifications,
        WorkerKind::Cqrs,
        WorkerKind::WebhookGateway,
    ];

    /// The name operators type after `smmctl run` and see in `--list`.
    pub const fn name(self) -> &'static str {
        match self {
            WorkerKind::Webhooks => "webhooks",
            WorkerKind::Payments => "payments",
            WorkerKind::Refunds => "refunds",
            WorkerKind::PaymentRefunds => "payment-refunds",
            WorkerKind::Orders => "orders",
            WorkerKind::OrderState => "order-state",
            WorkerKind::Progress => "progress",
            WorkerKind::Websocket => "websocket",
            WorkerKind::Video => "video",
            WorkerKind::Youtube => "youtube",
            WorkerKind::Binom => "binom",
            WorkerKind::Offers => "offers",
            WorkerKind::Notifications => "notifications",
            WorkerKind::Cqrs => "cqrs",
            WorkerKind::WebhookGateway => "webhook-gateway",
        }
    }

    /// The consumer's row in [`WORKERS`]; `None` for the gateway, which
    /// reads no topic.
    pub fn info(self) -> Option<&'static WorkerInfo> {
        WORKERS.iter().find(|w| w.kind == self)
    }

    /// Verifies webhook signatures or signs refund requests with the
    /// Cryptomus API key.
    pub const fn needs_cryptomus_key(self) -> bool {
        matches!(self, WorkerKind::Webhooks | WorkerKind::PaymentRefunds)
    }

    /// Calls Cryptomus's refund API, which also needs the merchant id.
    pub const fn needs_refund_api(self) -> bool {
        matches!(self, WorkerKind::PaymentRefunds)
    }

    /// Calls the YouTube Data API within the daily quota.
    pub const fn needs_youtube(self) -> bool {
        matches!(self, WorkerKind::Orders | WorkerKind::Youtube)
    }

    /// Starts deliveries with the delivery provider and polls their progress.
    pub const fn needs_delivery(self) -> bool {
        matches!(self, WorkerKind::Video)
    }

    /// Creates campaigns through the Binom API.
    pub const fn needs_binom(self) -> bool {
        matches!(self, WorkerKind::Binom)
    }

    /// Serves WebSocket clients on an address of its own, with signed tokens.
    pub const fn needs_websocket_listener(self) -> bool {
        matches!(self, WorkerKind::Websocket)
    }

    /// Sends email, SMS or push through at least one configured channel.
    pub const fn needs_notification_channels(self) -> bool {
        matches!(self, WorkerKind::Notifications)
    }
}

impl std::fmt::Display for WorkerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`WorkerKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no worker is called `{0}`")]
pub struct UnknownWorker(pub String);

impl std::str::FromStr for WorkerKind {
    type Err = UnknownWorker;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        WorkerKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| UnknownWorker(name.to_owned()))
    }
}

/// A worker as `smmctl run --list` shows it.
#[derive(Debug, Clone, Copy)]
pub struct WorkerInfo {
    pub kind: WorkerKind,
    /// The seed's name for the consumer this worker replaces.
    pub replaces: &'static str,
    pub group: &'static str,
    /// Main topics; each brings its retry topics from the catalog.
    pub topics: &'static [&'static str],
    /// Topics its follow-up events go to.
    pub emits: &'static [&'static str],
    pub summary: &'static str,
    pub ladder: Ladder,
}

/// Which retry policies a worker's topics follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ladder {
    /// The topic's own ladder from the catalog.
    Catalog,
    /// The read model's: in place, never parking records on topics that
    /// belong to other consumers.
    ReadModel,
}

impl WorkerInfo {
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    pub fn policies(&self) -> Vec<&'static RetryPolicy> {
        self.topics
            .iter()
            .filter_map(|t| match self.ladder {
                Ladder::Catalog => retry_policy_for(t),
                Ladder::ReadModel => catalog::READ_MODEL_POLICIES
                    .iter()
                    .find(|p| p.main_topic == *t),
            })
            .collect()
    }

    pub fn routes(&self) -> Vec<Route> {
        self.policies().into_iter().map(Route::from).collect()
    }
}

pub static WORKERS: &[WorkerInfo] = &[
    WorkerInfo {
        kind: WorkerKind::Webhooks,
        replaces: "WebhookProcessingService",
        group: "smm-payment-confirmations-realtime-group",
        topics: &[catalog::PAYMENT_WEBHOOKS],
        emits: &[catalog::PAYMENT_CONFIRMATIONS],
        summary: "verify Cryptomus webhooks and publish payment confirmations",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Payments,
        replaces: "PaymentConfirmationConsumer",
        group: "smm-payment-confirmations-realtime-group",
        topics: &[catalog::PAYMENT_CONFIRMATIONS],
        emits: &[catalog::ORDER_STATE_UPDATES],
        summary: "credit balances, record the ledger, activate paid orders",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Refunds,
        replaces: "RefundProcessingService",
        group: "smm-payment-refunds-group",
        topics: &[catalog::ORDER_REFUND],
        emits: &[catalog::ORDER_STATE_UPDATES],
        summary: "refund orders to the balance, audit, cancel the order",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::PaymentRefunds,
        replaces: "PaymentRefundConsumer",
        group: "smm-payment-refunds-group",
        topics: &[catalog::PAYMENT_REFUNDS],
        emits: &[],
        summary: "refund payments through the provider's refund API",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Orders,
        replaces: "OrderEventConsumer",
        group: "smm-order-processing-group",
        topics: &[catalog::ORDER_PROCESSING],
        emits: &[catalog::ORDER_STATE_UPDATES, catalog::VIDEO_PROCESSING],
        summary: "check the video on YouTube, capture the start count, activate paid orders",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::OrderState,
        replaces: "OrderStateManagementService",
        group: "order-status-group",
        topics: &[catalog::ORDER_STATE_UPDATES],
        emits: &[catalog::ORDER_STATUS_UPDATES, catalog::NOTIFICATIONS],
        summary: "enforce and apply order transitions, tell the customer",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Progress,
        replaces: "ProgressTrackingService",
        group: "order-status-group",
        topics: &[catalog::ORDER_PROGRESS],
        emits: &[catalog::ORDER_STATUS_UPDATES, catalog::ORDER_STATE_UPDATES],
        summary: "apply delivery progress, never backwards; complete orders at 100 %",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Websocket,
        replaces: "WebSocketNotificationService",
        group: "websocket-notification-group",
        topics: &[catalog::ORDER_STATUS_UPDATES],
        emits: &[],
        summary: "push order status updates to subscribed WebSocket clients",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Video,
        replaces: "VideoProcessingConsumerService",
        group: "video-processing-group",
        topics: &[catalog::VIDEO_PROCESSING],
        emits: &[catalog::ORDER_STATE_UPDATES, catalog::ORDER_PROGRESS],
        summary: "start view delivery with the provider and report its progress",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Youtube,
        replaces: "YouTubeProcessingService",
        group: "video-processing-group",
        topics: &[catalog::YOUTUBE_PROCESSING],
        emits: &[],
        summary: "view count checks and channel lookups within the daily API quota",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Binom,
        replaces: "BinomCampaignConsumer",
        group: "offer-assignment-group",
        topics: &[catalog::BINOM_CAMPAIGN_CREATION],
        emits: &[catalog::OFFER_ASSIGNMENTS],
        summary: "create the order's Binom campaign once, with its offers and weights",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Offers,
        replaces: "OfferEventConsumer",
        group: "offer-assignment-group",
        topics: &[catalog::OFFER_ASSIGNMENTS],
        emits: &[catalog::OFFER_ASSIGNMENT_EVENTS],
        summary: "map orders to Binom offers and campaigns, with an audit event",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Notifications,
        replaces: "NotificationService",
        group: "websocket-notification-group",
        topics: &[catalog::NOTIFICATIONS],
        emits: &[],
        summary: "send email over SMTP, SMS and push through their providers",
        ladder: Ladder::Catalog,
    },
    WorkerInfo {
        kind: WorkerKind::Cqrs,
        replaces: "CQRS read model",
        group: "cqrs-read-model-group",
        topics: &[
            catalog::ORDER_STATE_UPDATES,
            catalog::ORDER_PROGRESS,
            catalog::OFFER_ASSIGNMENT_EVENTS,
        ],
        emits: &[],
        summary: "keep the order read model; --rebuild replays it from the start",
        ladder: Ladder::ReadModel,
    },
];

/// The envelope's event as `Event::$variant`, or poison naming what came
/// instead.
macro_rules! event_of {
    ($envelope:expr, $variant:ident) => {
        crate::workers::expect_event(
            &$envelope,
            |e| match e {
                crate::contract::events::Event::$variant(inner) => Some(inner),
                _ => None,
            },
            stringify!($variant),
        )
    };
}
pub(crate) use event_of;

/// The order a record is about. Missing is worth retrying: the panel
/// writes the order before it publishes about it, so it is usually this
/// store that lags.
async fn known_order(
    conn: &mut sqlx::AnyConnection,
    order_id: i64,
    worker_class: &str,
) -> Result<Fulfilment, HandlerFailure> {
    panel::fulfilment(conn, order_id).await?.ok_or_else(|| {
        HandlerFailure::retryable(
            format!("smmctl.{worker_class}.UnknownOrder"),
            format!("order {order_id} is not in the panel store"),
        )
    })
}

/// [`known_order`] on a connection of its own, for handlers that call a
/// provider before they open their unit.
async fn known_order_outside_unit(
    store: &crate::store::Store,
    order_id: i64,
    worker_class: &str,
) -> Result<Fulfilment, HandlerFailure> {
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    known_order(&mut conn, order_id, worker_class).await
}

/// Whether this worker applied `event_id` already: checked before a
/// provider call, so a redelivered record neither calls twice nor spends
/// quota.
async fn already_applied(
    store: &crate::store::Store,
    delivery: &crate::runtime::Delivery<'_>,
    event_id: uuid::Uuid,
) -> Result<bool, HandlerFailure> {
    Ok(store.is_processed(delivery.worker, event_id).await?)
}

/// Insists on one event type: another type on this topic is a producer
/// bug, so it is poison, not a retry.
pub(crate) fn expect_event<'e, T>(
    envelope: &'e Envelope,
    pick: impl FnOnce(&'e Event) -> Option<&'e T>,
    wanted: &str,
) -> Result<&'e T, HandlerFailure> {
    pick(&envelope.event).ok_or_else(|| {
        HandlerFailure::poison(
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

/// Queues a follow-up event whose id derives from `natural_key`, so the
/// same fact emitted twice collapses at its consumers.
async fn emit_event(
    unit: &mut Unit,
    topic: &str,
    key: i64,
    event: impl Into<Event>,
    namespace: &str,
    natural_key: &str,
) -> Result<(), StoreError> {
    let envelope = Envelope::new(event.into(), unit.correlation_id().to_owned())
        .with_event_id(deterministic_event_id(namespace, natural_key));
    unit.emit(topic, Some(&key.to_string()), &envelope).await
}

/// Moves an order from `from` to `to` in the store and queues its state
/// event, in one unit. `false` when the order was no longer in `from`,
/// which leaves it and the event stream untouched.
async fn apply_transition(
    unit: &mut Unit,
    order_id: i64,
    user_id: i64,
    from: OrderStatus,
    to: OrderStatus,
    reason: &str,
) -> Result<bool, StoreError> {
    if !panel::transition(unit, order_id, from, to).await? {
        return Ok(false);
    }
    emit_transition(unit, order_id, user_id, from, to, reason).await?;
    Ok(true)
}

/// Charges a pending order to its owner's balance and makes it ACTIVE,
/// with its state event, and starts its video work if the video is already
/// checked. `false` when the order was no longer pending or the balance is
/// short (audited), with nothing changed.
///
/// The transition comes first: its conditional update takes the order's
/// row, so an order cancelled meanwhile is never charged, and the debit
/// only passes while the balance covers it, so two orders racing for the
/// same money cannot overdraw it.
async fn activate(unit: &mut Unit, order: &Fulfilment, reason: &str) -> Result<bool, StoreError> {
    if order.status != OrderStatus::Pending
        || !panel::transition(unit, order.id, OrderStatus::Pending, OrderStatus::Active).await?
    {
        return Ok(false);
    }
    let charged = order.charge_minor == 0
        || panel::charge(
            unit,
            order.user_id,
            order.charge_minor,
            &order.currency,
            LedgerKind::OrderCharge,
            &order.id.to_string(),
        )
        .await?;
    if !charged {
        // Back to where it was, inside the same transaction: the order
        // waits for money, and nothing else of this unit depends on it.
        panel::transition(unit, order.id, OrderStatus::Active, OrderStatus::Pending).await?;
        let balance = panel::user(unit.conn(), order.user_id)
            .await?
            .map_or(0, |u| u.balance_minor);
        unit.audit(
            "order.not_activated",
            &format!("order:{}", order.id),
            &format!(
                "balance {balance} is below the charge {}",
                order.charge_minor
            ),
        )
        .await?;
        return Ok(false);
    }
    emit_transition(
        unit,
        order.id,
        order.user_id,
        OrderStatus::Pending,
        OrderStatus::Active,
        reason,
    )
    .await?;
    // Read again: the verification may have committed while this unit
    // waited for the order's row.
    if let Some(current) = panel::fulfilment(unit.conn(), order.id).await? {
        start_video_work(unit, &current).await?;
    }
    Ok(true)
}

/// Queues the order's video work once it is both paid (ACTIVE) and
/// checked on YouTube. Whichever of the two happens second sends it; the
/// id derived from the order makes a repeat harmless.
async fn start_video_work(unit: &mut Unit, order: &Fulfilment) -> Result<(), StoreError> {
    let ready = order.status == OrderStatus::Active && order.verified;
    let (Some(video_url), Some(video_id)) = (&order.video_url, &order.youtube_video_id) else {
        return Ok(());
    };
    if !ready {
        return Ok(());
    }
    let message = VideoProcessingMessage {
        order_id: order.id,
        youtube_video_id: video_id.clone(),
        video_url: video_url.clone(),
        target_views: order.quantity,
        start_count: order.start_count,
        clip: None,
    };
    emit_event(
        unit,
        catalog::VIDEO_PROCESSING,
        order.id,
        message,
        "video-processing",
        &order.id.to_string(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_but_the_gateway_has_one_row_in_table_order() {
        let consumers: Vec<WorkerKind> = WorkerKind::ALL
            .into_iter()
            .filter(|kind| *kind != WorkerKind::WebhookGateway)
            .collect();
        let rows: Vec<WorkerKind> = WORKERS.iter().map(|w| w.kind).collect();
        assert_eq!(rows, consumers);
        assert!(WorkerKind::WebhookGateway.info().is_none());
    }

    #[test]
    fn names_parse_back_to_their_kind() {
        for kind in WorkerKind::ALL {
            assert_eq!(kind.name().parse::<WorkerKind>(), Ok(kind));
        }
        assert!("all".parse::<WorkerKind>().is_err());
    }

    #[test]
    fn every_worker_uses_a_seed_group_and_catalog_topics() {
        for worker in WORKERS {
            assert!(
                catalog::group_named(worker.group).is_some(),
                "{}",
                worker.name()
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
                worker.name()
            );
        }
    }
}
