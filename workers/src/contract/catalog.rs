//! The panel's topics, consumer groups, retry ladders and thresholds, as one
//! typed table.
//!
//! Every name here is the exact name the panel's services use. The commands
//! (`topics`, `lag`, `health`, `dlq`) and the workers read this table, so a
//! topic cannot be spelled two ways inside smmctl.
//!
//! Where the panel's own description contradicts itself, the choice made is
//! written next to the data it affects:
//! - Its health table counts 14 order topics and 7 video topics, but it lists
//!   15 order topics and 9 video topics (the legacy `video.processing.*`
//!   three included). The catalog holds every listed topic; health counts
//!   what exists on the cluster instead of repeating the static numbers.
//! - Its "standard retry pattern" has three retries (1 s, 2 s, 4 s), while
//!   `smm.order.processing` says "3 attempts" and has exactly two retry topics.
//!   A topic's own entry wins: order processing retries twice, and the
//!   standard ladder applies to topics that describe no ladder of their own.
//! - Payment confirmations and refunds have no retry topics, so their
//!   retries happen in place on the partition they came from.

use std::time::Duration;

/// The categories of the panel's health table, plus Kafka's internal topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    OrderProcessing,
    Payment,
    VideoProcessing,
    BinomIntegration,
    OfferManagement,
    Notifications,
    System,
}

impl Category {
    /// In the order the panel's health table lists them.
    pub const ALL: [Category; 7] = [
        Category::OrderProcessing,
        Category::Payment,
        Category::VideoProcessing,
        Category::BinomIntegration,
        Category::OfferManagement,
        Category::Notifications,
        Category::System,
    ];

    /// The heading used by the panel's health table.
    pub fn title(self) -> &'static str {
        match self {
            Category::OrderProcessing => "Order Processing",
            Category::Payment => "Payment",
            Category::VideoProcessing => "Video Processing",
            Category::BinomIntegration => "Binom Integration",
            Category::OfferManagement => "Offer Management",
            Category::Notifications => "Notifications",
            Category::System => "System",
        }
    }

    /// A short, shell-friendly name for flags and JSON.
    pub fn slug(self) -> &'static str {
        match self {
            Category::OrderProcessing => "order-processing",
            Category::Payment => "payment",
            Category::VideoProcessing => "video-processing",
            Category::BinomIntegration => "binom-integration",
            Category::OfferManagement => "offer-management",
            Category::Notifications => "notifications",
            Category::System => "system",
        }
    }

    /// Accepts the slug or the title, in any case.
    pub fn parse(text: &str) -> Option<Category> {
        let wanted = text.trim().to_ascii_lowercase().replace([' ', '_'], "-");
        Category::ALL.into_iter().find(|c| c.slug() == wanted)
    }
}

/// What a topic is for, which decides how commands treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A topic that producers write business events to.
    Main,
    /// A delayed retry hop in a non-blocking retry ladder.
    Retry,
    /// Where records go once their retries are exhausted (`-dlt`).
    DeadLetterTopic,
    /// A dead-letter queue for failures needing review (`.dlq`).
    DeadLetterQueue,
    /// A retry topic that is replayed on purpose rather than on a timer.
    ManualRetry,
    /// Deprecated; kept until its records are migrated to `replaced_by`.
    Legacy,
    /// Managed by Kafka itself; never created or deleted by smmctl.
    System,
}

impl Role {
    pub fn slug(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Retry => "retry",
            Role::DeadLetterTopic => "dlt",
            Role::DeadLetterQueue => "dlq",
            Role::ManualRetry => "manual-retry",
            Role::Legacy => "legacy",
            Role::System => "system",
        }
    }
}

/// One topic of the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: &'static str,
    pub category: Category,
    pub role: Role,
    pub partitions: i32,
    pub purpose: &'static str,
    pub producer: Option<&'static str>,
    pub consumer: Option<&'static str>,
    pub message_type: Option<&'static str>,
    /// A dead letter here is money: a payment not credited or a refund not
    /// paid. The panel marks the order-refund and payment-confirmation DLQs
    /// critical; the payment-refund and webhook DLQs carry money just the
    /// same, so they are treated alike.
    pub critical: bool,
    /// The main topic a retry or dead-letter topic belongs to.
    pub parent: Option<&'static str>,
    /// For legacy topics: where their traffic moved.
    pub replaced_by: Option<&'static str>,
}

impl Topic {
    /// Retry and dead-letter topics, legacy ones included.
    pub fn is_dead_letter(&self) -> bool {
        matches!(self.role, Role::DeadLetterTopic | Role::DeadLetterQueue)
            || (self.role == Role::Legacy && looks_like_dead_letter(self.name))
    }

    /// Topics smmctl creates with `topics apply`: everything but Kafka's own.
    pub fn is_managed(&self) -> bool {
        self.role != Role::System
    }

    /// Topics whose loss or deletion moves money: everything under
    /// `smm.payment.` and the order refunds.
    pub fn is_financial(&self) -> bool {
        is_financial_name(self.name)
    }
}

/// True for names that carry money, whether or not the catalog knows them.
pub fn is_financial_name(name: &str) -> bool {
    name.starts_with("smm.payment.") || name.starts_with("smm.order.refund")
}

/// Dead-letter naming used by the panel's services and by Spring Kafka.
pub fn looks_like_dead_letter(name: &str) -> bool {
    name.ends_with(".dlq") || name.ends_with("-dlt") || name.ends_with(".dlt")
}

const fn topic(name: &'static str, category: Category, role: Role, purpose: &'static str) -> Topic {
    Topic {
        name,
        category,
        role,
        partitions: 1,
        purpose,
        producer: None,
        consumer: None,
        message_type: None,
        critical: false,
        parent: None,
        replaced_by: None,
    }
}

const fn main_topic(
    name: &'static str,
    category: Category,
    partitions: i32,
    purpose: &'static str,
    producer: Option<&'static str>,
    consumer: Option<&'static str>,
    message_type: Option<&'static str>,
) -> Topic {
    Topic {
        partitions,
        producer,
        consumer,
        message_type,
        ..topic(name, category, Role::Main, purpose)
    }
}

const fn child(
    name: &'static str,
    category: Category,
    role: Role,
    parent: &'static str,
    purpose: &'static str,
) -> Topic {
    Topic {
        parent: Some(parent),
        ..topic(name, category, role, purpose)
    }
}

const fn critical(topic: Topic) -> Topic {
    Topic {
        critical: true,
        ..topic
    }
}

const fn legacy(topic: Topic, replaced_by: &'static str) -> Topic {
    Topic {
        replaced_by: Some(replaced_by),
        ..topic
    }
}

// Names that code refers to directly. Everything else is found by looking
// the catalog up.
pub const ORDER_PROCESSING: &str = "smm.order.processing";
pub const ORDER_STATE_UPDATES: &str = "smm.order.state.updates";
pub const ORDER_STATUS_UPDATES: &str = "smm.order.status.updates";
pub const ORDER_PROGRESS: &str = "smm.order.progress";
pub const ORDER_REFUND: &str = "smm.order.refund";
pub const PAYMENT_CONFIRMATIONS: &str = "smm.payment.confirmations";
pub const PAYMENT_REFUNDS: &str = "smm.payment.refunds";
pub const PAYMENT_WEBHOOKS: &str = "smm.payment.webhooks";
pub const VIDEO_PROCESSING: &str = "smm.video.processing";
pub const VIDEO_PROCESSING_RETRY: &str = "smm.video.processing.retry";
pub const YOUTUBE_PROCESSING: &str = "smm.youtube.processing";
pub const LEGACY_VIDEO_QUEUE: &str = "video.processing.queue";
pub const BINOM_CAMPAIGN_CREATION: &str = "smm.binom.campaign.creation";
pub const OFFER_ASSIGNMENTS: &str = "smm.offer.assignments";
pub const OFFER_ASSIGNMENT_EVENTS: &str = "smm.offer.assignment.events";
pub const NOTIFICATIONS: &str = "smm.notifications";

/// Where `smmctl health` proves the brokers accept and serve records. Not a
/// panel topic; the leading underscore marks it internal, as Kafka's own.
pub const HEALTH_TOPIC: &str = "_smmctl.health";
/// The group whose position says which dead letters are handled: `dlq
/// replay` and `dlq drain` move it, and a dead letter after it is waiting.
pub const DLQ_PROCESSING_GROUP: &str = "dlq-processing-group";

use Category::*;
use Role::*;

/// Every topic of the panel, in the order its documentation lists them.
pub static TOPICS: &[Topic] = &[
    topic(
        "__consumer_offsets",
        Category::System,
        Role::System,
        "Kafka's store of committed consumer offsets",
    ),
    topic(
        "__transaction_state",
        Category::System,
        Role::System,
        "Kafka's transaction coordinator log",
    ),
    // Order processing.
    main_topic(
        ORDER_PROCESSING,
        OrderProcessing,
        3,
        "New orders: YouTube verification, status to ACTIVE, start count capture",
        Some("OrderService"),
        Some("OrderEventConsumer"),
        Some("OrderCreatedEvent"),
    ),
    child(
        "smm.order.processing-retry-0",
        OrderProcessing,
        Retry,
        ORDER_PROCESSING,
        "First retry of order processing, after 1 s",
    ),
    child(
        "smm.order.processing-retry-1",
        OrderProcessing,
        Retry,
        ORDER_PROCESSING,
        "Second retry of order processing, after 2 s",
    ),
    child(
        "smm.order.processing-dlt",
        OrderProcessing,
        DeadLetterTopic,
        ORDER_PROCESSING,
        "Order processing that failed every retry; needs manual intervention",
    ),
    child(
        "smm.order.processing.dlq",
        OrderProcessing,
        DeadLetterQueue,
        ORDER_PROCESSING,
        "Order processing failures for review",
    ),
    main_topic(
        ORDER_STATE_UPDATES,
        OrderProcessing,
        3,
        "Order status changes through the lifecycle",
        Some("OrderService, OrderStateManagementService"),
        Some("OrderEventConsumer"),
        Some("OrderStatusChangedEvent"),
    ),
    child(
        "smm.order.state.updates-retry-1000",
        OrderProcessing,
        Retry,
        ORDER_STATE_UPDATES,
        "First retry of state updates, after 1000 ms",
    ),
    child(
        "smm.order.state.updates-retry-2000",
        OrderProcessing,
        Retry,
        ORDER_STATE_UPDATES,
        "Second retry of state updates, after 2000 ms",
    ),
    child(
        "smm.order.state.updates-dlt",
        OrderProcessing,
        DeadLetterTopic,
        ORDER_STATE_UPDATES,
        "State updates that failed every retry; review for consistency",
    ),
    child(
        "smm.order.state.updates.dlq",
        OrderProcessing,
        DeadLetterQueue,
        ORDER_STATE_UPDATES,
        "State update failures for review",
    ),
    main_topic(
        ORDER_STATUS_UPDATES,
        OrderProcessing,
        1,
        "Real-time order status notifications for the UI and customers",
        Some("OrderStateManagementService"),
        Some("WebSocket notification service"),
        Some("OrderStatusUpdate"),
    ),
    main_topic(
        ORDER_PROGRESS,
        OrderProcessing,
        1,
        "Order fulfilment progress: percentage and delivered quantity",
        Some("VideoProcessingConsumerService"),
        Some("Progress tracking service"),
        Some("OrderProgressUpdated"),
    ),
    child(
        "smm.order.progress.dlq",
        OrderProcessing,
        DeadLetterQueue,
        ORDER_PROGRESS,
        "Failed progress updates",
    ),
    main_topic(
        ORDER_REFUND,
        OrderProcessing,
        1,
        "Order refunds: balance credit and audit log",
        Some("OrderService"),
        Some("RefundProcessingService"),
        Some("OrderRefundRequested"),
    ),
    critical(child(
        "smm.order.refund.dlq",
        OrderProcessing,
        DeadLetterQueue,
        ORDER_REFUND,
        "Failed refund processing (financial impact)",
    )),
    // Payments.
    main_topic(
        PAYMENT_CONFIRMATIONS,
        Payment,
        3,
        "Payment confirmations: balance update, order activation, transaction record",
        Some("WebhookController"),
        Some("PaymentConfirmationConsumer"),
        Some("PaymentConfirmation"),
    ),
    critical(child(
        "smm.payment.confirmations.dlq",
        Payment,
        DeadLetterQueue,
        PAYMENT_CONFIRMATIONS,
        "Failed payment confirmations (revenue impact)",
    )),
    main_topic(
        PAYMENT_REFUNDS,
        Payment,
        1,
        "Refunds to the payment provider",
        Some("RefundService"),
        Some("PaymentRefundConsumer"),
        Some("PaymentRefundRequested"),
    ),
    critical(child(
        "smm.payment.refunds.dlq",
        Payment,
        DeadLetterQueue,
        PAYMENT_REFUNDS,
        "Failed payment refunds",
    )),
    main_topic(
        PAYMENT_WEBHOOKS,
        Payment,
        3,
        "Raw webhooks from payment providers",
        Some("WebhookController"),
        Some("WebhookProcessingService"),
        Some("PaymentWebhookReceived"),
    ),
    critical(child(
        "smm.payment.webhooks.dlq",
        Payment,
        DeadLetterQueue,
        PAYMENT_WEBHOOKS,
        "Failed webhook processing",
    )),
    // Video processing.
    main_topic(
        VIDEO_PROCESSING,
        VideoProcessing,
        2,
        "YouTube video work: clips, automation, view delivery",
        Some("OrderService"),
        Some("VideoProcessingConsumerService"),
        Some("VideoProcessingMessage"),
    ),
    child(
        VIDEO_PROCESSING_RETRY,
        VideoProcessing,
        ManualRetry,
        VIDEO_PROCESSING,
        "Retries of video processing, manual with backoff",
    ),
    child(
        "smm.video.processing.dlq",
        VideoProcessing,
        DeadLetterQueue,
        VIDEO_PROCESSING,
        "Failed video processing tasks",
    ),
    child(
        "smm.video.processing.retry.dlq",
        VideoProcessing,
        DeadLetterQueue,
        VIDEO_PROCESSING_RETRY,
        "Video retries that failed every attempt",
    ),
    main_topic(
        YOUTUBE_PROCESSING,
        VideoProcessing,
        1,
        "YouTube API work: quota management, view count verification, channel operations",
        Some("OrderService"),
        Some("YouTube processing service"),
        Some("YouTubeTask"),
    ),
    child(
        "smm.youtube.processing.dlq",
        VideoProcessing,
        DeadLetterQueue,
        YOUTUBE_PROCESSING,
        "Failed YouTube operations",
    ),
    legacy(
        topic(
            LEGACY_VIDEO_QUEUE,
            VideoProcessing,
            Legacy,
            "Legacy video processing queue (deprecated)",
        ),
        VIDEO_PROCESSING,
    ),
    legacy(
        child(
            "video.processing.queue.dlq",
            VideoProcessing,
            Legacy,
            LEGACY_VIDEO_QUEUE,
            "Legacy DLQ of the video queue",
        ),
        "smm.video.processing.dlq",
    ),
    legacy(
        topic(
            "video.processing.dlq",
            VideoProcessing,
            Legacy,
            "Legacy video DLQ",
        ),
        "smm.video.processing.dlq",
    ),
    // Binom.
    main_topic(
        BINOM_CAMPAIGN_CREATION,
        BinomIntegration,
        1,
        "Campaign creation in the Binom tracker: setup, offers, traffic distribution",
        Some("BinomService"),
        Some("BinomCampaignConsumer"),
        Some("BinomCampaignCreation"),
    ),
    child(
        "smm.binom.campaign.creation.dlq",
        BinomIntegration,
        DeadLetterQueue,
        BINOM_CAMPAIGN_CREATION,
        "Failed Binom campaign creation",
    ),
    // Offers.
    main_topic(
        OFFER_ASSIGNMENTS,
        OfferManagement,
        3,
        "Offer assignment to orders: Binom offer mapping, campaign association",
        Some("OfferAssignmentService"),
        Some("OfferEventConsumer"),
        Some("OfferAssignment"),
    ),
    main_topic(
        OFFER_ASSIGNMENT_EVENTS,
        OfferManagement,
        1,
        "Offer assignment audit trail and analytics",
        Some("OfferEventConsumer"),
        None,
        Some("OfferAssignmentEvent"),
    ),
    child(
        "smm.offer.assignments.dlq",
        OfferManagement,
        DeadLetterQueue,
        OFFER_ASSIGNMENTS,
        "Failed offer assignments",
    ),
    // Notifications.
    main_topic(
        NOTIFICATIONS,
        Notifications,
        1,
        "Email, SMS and push notifications",
        None,
        Some("NotificationService"),
        Some("Notification"),
    ),
    child(
        "smm.notifications.dlq",
        Notifications,
        DeadLetterQueue,
        NOTIFICATIONS,
        "Failed notifications",
    ),
];

/// Looks a topic up by its exact name.
pub fn topic_named(name: &str) -> Option<&'static Topic> {
    TOPICS.iter().find(|t| t.name == name)
}

/// The topics of one category, in catalog order.
pub fn topics_in(category: Category) -> impl Iterator<Item = &'static Topic> {
    TOPICS.iter().filter(move |t| t.category == category)
}

/// One delayed retry. `topic` is `None` when the retry happens in place: the
/// partition waits, then the same record is handled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryHop {
    pub delay: Duration,
    pub topic: Option<&'static str>,
}

/// How failures of one main topic are retried and where they end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub main_topic: &'static str,
    /// Counts the first attempt, as Spring Kafka's `maxAttempts` does, so a
    /// policy with three attempts has two hops.
    pub max_attempts: u32,
    pub hops: &'static [RetryHop],
    /// Where a record goes after its last attempt. `None` only for topics
    /// whose records are notifications of state kept elsewhere.
    pub exhausted_topic: Option<&'static str>,
    /// Where a record that can never succeed (malformed, unknown type,
    /// failed validation, bad signature) goes at once.
    pub poison_topic: Option<&'static str>,
    /// Exhausted records wait for a person and are never retried on their
    /// own.
    pub manual_review: bool,
}

impl RetryPolicy {
    /// The hop after `attempt` failed attempts, or `None` when they are used
    /// up. `attempt` counts from 1.
    pub fn hop_after(&self, attempt: u32) -> Option<&'static RetryHop> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        self.hops.get(attempt as usize - 1)
    }

    /// The topics this policy's worker must read: the main topic and every
    /// retry topic, each once.
    pub fn consumed_topics(&self) -> Vec<&'static str> {
        let mut topics = vec![self.main_topic];
        for hop in self.hops {
            if let Some(t) = hop.topic
                && !topics.contains(&t)
            {
                topics.push(t);
            }
        }
        topics
    }
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn in_place(delay: Duration) -> RetryHop {
    RetryHop { delay, topic: None }
}

const fn via(delay: Duration, topic: &'static str) -> RetryHop {
    RetryHop {
        delay,
        topic: Some(topic),
    }
}

/// The panel's standard pattern for topics without a ladder of their own:
/// retries after 1 s, 2 s and 4 s, then the dead letter.
pub const STANDARD_BACKOFF: &[RetryHop] =
    &[in_place(secs(1)), in_place(secs(2)), in_place(secs(4))];

const fn standard(main_topic: &'static str, dead_letter: &'static str) -> RetryPolicy {
    RetryPolicy {
        main_topic,
        max_attempts: 4,
        hops: STANDARD_BACKOFF,
        exhausted_topic: Some(dead_letter),
        poison_topic: Some(dead_letter),
        manual_review: false,
    }
}

/// Refunds stop after three attempts and wait for a person.
const REFUND_BACKOFF: &[RetryHop] = &[in_place(secs(1)), in_place(secs(2))];

const fn manual_review_refund(main_topic: &'static str, dlq: &'static str) -> RetryPolicy {
    RetryPolicy {
        main_topic,
        max_attempts: 3,
        hops: REFUND_BACKOFF,
        exhausted_topic: Some(dlq),
        poison_topic: Some(dlq),
        manual_review: true,
    }
}

pub static RETRY_POLICIES: &[RetryPolicy] = &[
    RetryPolicy {
        main_topic: ORDER_PROCESSING,
        max_attempts: 3,
        hops: &[
            via(secs(1), "smm.order.processing-retry-0"),
            via(secs(2), "smm.order.processing-retry-1"),
        ],
        exhausted_topic: Some("smm.order.processing-dlt"),
        poison_topic: Some("smm.order.processing-dlt"),
        manual_review: false,
    },
    RetryPolicy {
        main_topic: ORDER_STATE_UPDATES,
        max_attempts: 3,
        hops: &[
            via(
                Duration::from_millis(1000),
                "smm.order.state.updates-retry-1000",
            ),
            via(
                Duration::from_millis(2000),
                "smm.order.state.updates-retry-2000",
            ),
        ],
        exhausted_topic: Some("smm.order.state.updates-dlt"),
        poison_topic: Some("smm.order.state.updates-dlt"),
        manual_review: false,
    },
    // "5 retries with longer backoff". In place, because there is no
    // payment retry topic, and because keeping a user's payments in order
    // on their partition matters more than throughput here.
    RetryPolicy {
        main_topic: PAYMENT_CONFIRMATIONS,
        max_attempts: 6,
        hops: &[
            in_place(secs(2)),
            in_place(secs(4)),
            in_place(secs(8)),
            in_place(secs(16)),
            in_place(secs(32)),
        ],
        exhausted_topic: Some("smm.payment.confirmations.dlq"),
        poison_topic: Some("smm.payment.confirmations.dlq"),
        manual_review: false,
    },
    manual_review_refund(ORDER_REFUND, "smm.order.refund.dlq"),
    manual_review_refund(PAYMENT_REFUNDS, "smm.payment.refunds.dlq"),
    standard(PAYMENT_WEBHOOKS, "smm.payment.webhooks.dlq"),
    standard(ORDER_PROGRESS, "smm.order.progress.dlq"),
    // Video failures are parked on the manual retry topic with the standard
    // backoff; what fails there too ends in the retry DLQ.
    RetryPolicy {
        main_topic: VIDEO_PROCESSING,
        max_attempts: 4,
        hops: &[
            via(secs(1), VIDEO_PROCESSING_RETRY),
            via(secs(2), VIDEO_PROCESSING_RETRY),
            via(secs(4), VIDEO_PROCESSING_RETRY),
        ],
        exhausted_topic: Some("smm.video.processing.retry.dlq"),
        poison_topic: Some("smm.video.processing.dlq"),
        manual_review: false,
    },
    standard(YOUTUBE_PROCESSING, "smm.youtube.processing.dlq"),
    standard(BINOM_CAMPAIGN_CREATION, "smm.binom.campaign.creation.dlq"),
    standard(OFFER_ASSIGNMENTS, "smm.offer.assignments.dlq"),
    standard(NOTIFICATIONS, "smm.notifications.dlq"),
    // Status updates only tell the UI about state the store already holds,
    // and the panel gives them no dead letter: a failed push is retried,
    // then logged and counted.
    RetryPolicy {
        main_topic: ORDER_STATUS_UPDATES,
        max_attempts: 4,
        hops: STANDARD_BACKOFF,
        exhausted_topic: None,
        poison_topic: None,
        manual_review: false,
    },
];

/// The read model's ladder for each topic it folds in. The model is
/// rebuildable from the topics, so a record that still fails after a long
/// in-place ladder is logged and skipped rather than parked: the retry and
/// dead-letter topics of these main topics belong to their own consumers.
pub static READ_MODEL_POLICIES: &[RetryPolicy] = &[
    read_model(ORDER_STATE_UPDATES),
    read_model(ORDER_PROGRESS),
    read_model(OFFER_ASSIGNMENT_EVENTS),
];

const READ_MODEL_BACKOFF: &[RetryHop] = &[
    in_place(secs(1)),
    in_place(secs(2)),
    in_place(secs(4)),
    in_place(secs(8)),
    in_place(secs(16)),
    in_place(secs(30)),
];

const fn read_model(main_topic: &'static str) -> RetryPolicy {
    RetryPolicy {
        main_topic,
        max_attempts: 7,
        hops: READ_MODEL_BACKOFF,
        exhausted_topic: None,
        poison_topic: None,
        manual_review: false,
    }
}

pub fn retry_policy_for(main_topic: &str) -> Option<&'static RetryPolicy> {
    RETRY_POLICIES.iter().find(|p| p.main_topic == main_topic)
}

/// Which topics a consumer group reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupTopics {
    Listed(&'static [&'static str]),
    /// Every dead-letter topic the catalog knows.
    AllDeadLetters,
}

/// One of the panel's consumer groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub name: &'static str,
    pub purpose: &'static str,
    pub reads: GroupTopics,
}

impl ConsumerGroup {
    pub fn topics(&self) -> Vec<&'static str> {
        match self.reads {
            GroupTopics::Listed(names) => names.to_vec(),
            GroupTopics::AllDeadLetters => TOPICS
                .iter()
                .filter(|t| t.is_dead_letter())
                .map(|t| t.name)
                .collect(),
        }
    }
}

/// The panel's nine consumer groups.
///
/// The panel names nine groups but more consumers than that. Consumers
/// without a group of their own share the seed group closest to their
/// purpose, so every consumer stays visible to `lag` and `health`:
/// webhooks join real-time payments, order refunds join refunds, progress
/// joins order status, YouTube joins video, Binom joins offers and
/// notifications join the notification group.
pub static GROUPS: &[ConsumerGroup] = &[
    ConsumerGroup {
        name: "smm-order-processing-group",
        purpose: "Processes new orders",
        reads: GroupTopics::Listed(&[
            ORDER_PROCESSING,
            "smm.order.processing-retry-0",
            "smm.order.processing-retry-1",
        ]),
    },
    ConsumerGroup {
        name: "order-status-group",
        purpose: "Handles status changes",
        reads: GroupTopics::Listed(&[
            ORDER_STATE_UPDATES,
            "smm.order.state.updates-retry-1000",
            "smm.order.state.updates-retry-2000",
            ORDER_PROGRESS,
        ]),
    },
    ConsumerGroup {
        name: "smm-payment-confirmations-realtime-group",
        purpose: "Real-time payment processing",
        reads: GroupTopics::Listed(&[PAYMENT_WEBHOOKS, PAYMENT_CONFIRMATIONS]),
    },
    ConsumerGroup {
        name: "smm-payment-refunds-group",
        purpose: "Refund processing",
        reads: GroupTopics::Listed(&[PAYMENT_REFUNDS, ORDER_REFUND]),
    },
    ConsumerGroup {
        name: "video-processing-group",
        purpose: "Video/YouTube processing",
        reads: GroupTopics::Listed(&[VIDEO_PROCESSING, VIDEO_PROCESSING_RETRY, YOUTUBE_PROCESSING]),
    },
    ConsumerGroup {
        name: "offer-assignment-group",
        purpose: "Offer assignments",
        reads: GroupTopics::Listed(&[OFFER_ASSIGNMENTS, BINOM_CAMPAIGN_CREATION]),
    },
    ConsumerGroup {
        name: "websocket-notification-group",
        purpose: "WebSocket updates",
        reads: GroupTopics::Listed(&[ORDER_STATUS_UPDATES, NOTIFICATIONS]),
    },
    ConsumerGroup {
        name: DLQ_PROCESSING_GROUP,
        purpose: "DLQ message recovery",
        reads: GroupTopics::AllDeadLetters,
    },
    ConsumerGroup {
        name: "cqrs-read-model-group",
        purpose: "CQRS read model updates",
        reads: GroupTopics::Listed(&[ORDER_STATE_UPDATES, ORDER_PROGRESS, OFFER_ASSIGNMENT_EVENTS]),
    },
];

pub fn group_named(name: &str) -> Option<&'static ConsumerGroup> {
    GROUPS.iter().find(|g| g.name == name)
}

/// Topic settings the panel uses for every topic it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDefaults {
    pub retention: Duration,
    pub compression: &'static str,
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
}

impl TopicDefaults {
    /// The broker-side topic configs to create topics with.
    pub fn configs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("retention.ms", self.retention.as_millis().to_string()),
            ("compression.type", self.compression.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
        ]
    }
}

/// Seven days, snappy, replication factor 1 (the panel's development default).
pub const TOPIC_DEFAULTS: TopicDefaults = TopicDefaults {
    retention: Duration::from_secs(7 * 24 * 3600),
    compression: "snappy",
    replication_factor: 1,
    min_insync_replicas: 1,
};

/// The panel's producer tuning, as librdkafka settings.
pub const PRODUCER_TUNING: &[(&str, &str)] = &[
    ("batch.size", "16384"),
    ("linger.ms", "100"),
    ("queue.buffering.max.kbytes", "32768"),
    ("message.max.bytes", "1048576"),
    ("compression.type", "snappy"),
];

/// The panel's alert thresholds ("Key Metrics").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Lag at or above this many messages is over the threshold.
    pub max_lag: i64,
    /// More dead letters than this raises an alert.
    pub max_dead_letters: i64,
    pub max_processing_time: Duration,
    /// A fraction: 0.01 is 1 %.
    pub max_error_rate: f64,
}

pub const THRESHOLDS: Thresholds = Thresholds {
    max_lag: 1000,
    max_dead_letters: 0,
    max_processing_time: Duration::from_millis(500),
    max_error_rate: 0.01,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn holds_the_37_panel_topics_and_the_2_internal_ones() {
        let managed = TOPICS.iter().filter(|t| t.is_managed()).count();
        assert_eq!(managed, 37);
        assert_eq!(TOPICS.len(), 39);
    }

    #[test]
    fn topic_names_are_unique() {
        let names: HashSet<_> = TOPICS.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TOPICS.len());
    }

    #[test]
    fn partition_counts_follow_the_panel() {
        let three = [
            ORDER_PROCESSING,
            ORDER_STATE_UPDATES,
            PAYMENT_CONFIRMATIONS,
            PAYMENT_WEBHOOKS,
            OFFER_ASSIGNMENTS,
        ];
        for t in TOPICS {
            let expected = if three.contains(&t.name) {
                3
            } else if t.name == VIDEO_PROCESSING {
                2
            } else {
                1
            };
            assert_eq!(t.partitions, expected, "{}", t.name);
        }
    }

    #[test]
    fn category_counts_as_listed_by_the_panel() {
        let count = |c| topics_in(c).count();
        // The panel's health table says 14 and 7; see the module comment.
        assert_eq!(count(OrderProcessing), 15);
        assert_eq!(count(Payment), 6);
        assert_eq!(count(VideoProcessing), 9);
        assert_eq!(count(BinomIntegration), 2);
        assert_eq!(count(OfferManagement), 3);
        assert_eq!(count(Notifications), 2);
    }

    #[test]
    fn parents_and_replacements_name_catalog_topics() {
        for t in TOPICS {
            for other in t.parent.iter().chain(t.replaced_by.iter()) {
                assert!(
                    topic_named(other).is_some(),
                    "{} points at unknown {}",
                    t.name,
                    other
                );
            }
        }
    }

    #[test]
    fn every_policy_is_consistent_with_the_catalog() {
        for p in RETRY_POLICIES {
            assert_eq!(
                topic_named(p.main_topic).map(|t| t.role),
                Some(Main),
                "{}",
                p.main_topic
            );
            assert_eq!(p.hops.len() as u32, p.max_attempts - 1, "{}", p.main_topic);
            for hop in p.hops {
                if let Some(name) = hop.topic {
                    let role = topic_named(name).map(|t| t.role);
                    assert!(matches!(role, Some(Retry | ManualRetry)), "{name}");
                }
            }
            for dead in p.exhausted_topic.iter().chain(p.poison_topic.iter()) {
                assert!(
                    topic_named(dead).is_some_and(|t| t.is_dead_letter()),
                    "{dead}"
                );
            }
        }
    }

    #[test]
    fn every_consumed_main_topic_has_a_policy() {
        for t in TOPICS
            .iter()
            .filter(|t| t.role == Main && t.consumer.is_some())
        {
            assert!(retry_policy_for(t.name).is_some(), "{}", t.name);
        }
    }

    #[test]
    fn order_processing_retries_twice_after_1_and_2_seconds() {
        let p = retry_policy_for(ORDER_PROCESSING).unwrap();
        assert_eq!(
            p.hop_after(1).map(|h| (h.delay, h.topic)),
            Some((secs(1), Some("smm.order.processing-retry-0")))
        );
        assert_eq!(
            p.hop_after(2).map(|h| (h.delay, h.topic)),
            Some((secs(2), Some("smm.order.processing-retry-1")))
        );
        assert_eq!(p.hop_after(3), None);
        assert_eq!(p.hop_after(0), None);
        assert_eq!(p.exhausted_topic, Some("smm.order.processing-dlt"));
    }

    #[test]
    fn payment_confirmations_retry_five_times_with_growing_backoff() {
        let p = retry_policy_for(PAYMENT_CONFIRMATIONS).unwrap();
        assert_eq!(p.hops.len(), 5);
        assert!(p.hops.windows(2).all(|w| w[0].delay < w[1].delay));
        assert!(p.hops[0].delay > STANDARD_BACKOFF[0].delay);
    }

    #[test]
    fn refunds_wait_for_review_after_three_attempts() {
        for main in [ORDER_REFUND, PAYMENT_REFUNDS] {
            let p = retry_policy_for(main).unwrap();
            assert_eq!(p.max_attempts, 3);
            assert!(p.manual_review);
        }
    }

    #[test]
    fn groups_are_the_panel_nine_and_read_catalog_topics() {
        assert_eq!(GROUPS.len(), 9);
        for g in GROUPS {
            assert!(!g.topics().is_empty(), "{}", g.name);
            for t in g.topics() {
                assert!(topic_named(t).is_some(), "{} reads unknown {t}", g.name);
            }
        }
    }

    #[test]
    fn every_consumed_topic_belongs_to_a_group() {
        for p in RETRY_POLICIES {
            for t in p.consumed_topics() {
                assert!(
                    GROUPS.iter().any(|g| g.topics().contains(&t)),
                    "{t} has no group"
                );
            }
        }
    }

    #[test]
    fn dlq_processing_group_reads_every_dead_letter() {
        let g = group_named("dlq-processing-group").unwrap();
        let topics = g.topics();
        assert!(topics.contains(&"smm.order.refund.dlq"));
        assert!(topics.contains(&"smm.order.processing-dlt"));
        assert!(topics.contains(&"video.processing.dlq"));
        assert!(!topics.contains(&ORDER_REFUND));
    }

    #[test]
    fn critical_topics_are_financial_dead_letters() {
        let critical: Vec<_> = TOPICS
            .iter()
            .filter(|t| t.critical)
            .map(|t| t.name)
            .collect();
        assert!(critical.contains(&"smm.order.refund.dlq"));
        assert!(critical.contains(&"smm.payment.confirmations.dlq"));
        for name in critical {
            let t = topic_named(name).unwrap();
            assert!(t.is_dead_letter() && t.is_financial(), "{name}");
        }
    }

    #[test]
    fn dead_letter_names_are_recognised() {
        for name in ["a.dlq", "a-dlt", "a.dlt"] {
            assert!(looks_like_dead_letter(name));
        }
        for name in [
            "smm.order.processing",
            "dlq.orders",
            "smm.order.processing-retry-0",
        ] {
            assert!(!looks_like_dead_letter(name));
        }
    }

    #[test]
    fn categories_parse_from_slug_and_title() {
        assert_eq!(Category::parse("Order Processing"), Some(OrderProcessing));
        assert_eq!(Category::parse("payment"), Some(Payment));
        assert_eq!(Category::parse("binom_integration"), Some(BinomIntegration));
        assert_eq!(Category::parse("nope"), None);
    }

    #[test]
    fn legacy_topics_point_at_their_replacement() {
        let queue = topic_named(LEGACY_VIDEO_QUEUE).unwrap();
        assert_eq!(queue.role, Legacy);
        assert_eq!(queue.replaced_by, Some(VIDEO_PROCESSING));
    }

    #[test]
    fn every_event_goes_to_the_main_topic_that_names_its_type() {
        use crate::contract::events::{EVENT_TYPES, Event};
        for event in Event::examples() {
            let topic = topic_named(event.default_topic());
            assert_eq!(topic.map(|t| t.role), Some(Main), "{}", event.event_type());
            assert_eq!(topic.and_then(|t| t.message_type), Some(event.event_type()));
        }
        for t in TOPICS.iter().filter_map(|t| t.message_type) {
            assert!(EVENT_TYPES.contains(&t), "{t} has no event definition");
        }
    }

    #[test]
    fn defaults_are_seven_days_of_snappy() {
        let configs = TOPIC_DEFAULTS.configs();
        assert!(configs.contains(&("retention.ms", "604800000".to_string())));
        assert!(configs.contains(&("compression.type", "snappy".to_string())));
        assert_eq!(THRESHOLDS.max_lag, 1000);
    }
}
