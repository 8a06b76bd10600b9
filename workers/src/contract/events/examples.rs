//! One realistic example of every message type.
//!
//! They are public (not test-only) because integration tests and the traffic
//! simulator publish them; they share ids so that together they read like
//! one order's journey from checkout to delivery.

use jiff::Timestamp;

use super::{
    BinomCampaignCreation, Event, Notification, NotificationChannel, OfferAssignment,
    OfferAssignmentAction, OfferAssignmentEvent, OrderCreatedEvent, OrderProgressUpdated,
    OrderRefundRequested, OrderStatus, OrderStatusChangedEvent, OrderStatusUpdate,
    PaymentConfirmation, PaymentRefundRequested, PaymentStatus, PaymentWebhookReceived, VideoClip,
    VideoProcessingMessage, WeightedOffer, YouTubeOperation, YouTubeTask,
};

const ORDER_ID: i64 = 1042;
const USER_ID: i64 = 77;
const VIDEO_ID: &str = "dQw4w9WgXcQ";
const VIDEO_URL: &str = "https://www.youtube.com/watch?v=dQw4w9WgXcQ";
const PAYMENT_ID: &str = "8b7a1f0e-3c2d-4e5f-9a6b-7c8d9e0f1a2b";
const CAMPAIGN_ID: i64 = 5501;

/// 2026-11-29T10:00:00Z, plus `minutes`; fixed so examples compare equal
/// across runs.
const fn at(minutes: i64) -> Timestamp {
    Timestamp::constant(1_795_946_400 + minutes * 60, 0)
}

impl Event {
    /// A valid example of every variant, in [`EVENT_TYPES`](super::EVENT_TYPES) order.
    pub fn examples() -> Vec<Event> {
        [
            Event::order_examples(),
            Event::payment_examples(),
            Event::fulfilment_examples(),
            Event::notification_examples(),
        ]
        .concat()
    }

    /// The order's own events, from checkout to refund.
    fn order_examples() -> Vec<Event> {
        vec![
            OrderCreatedEvent {
                order_id: ORDER_ID,
                user_id: USER_ID,
                service_id: 12,
                video_url: VIDEO_URL.into(),
                youtube_video_id: VIDEO_ID.into(),
                quantity: 5_000,
                charge_minor: 1_250,
                currency: "USD".into(),
                payment_id: Some(PAYMENT_ID.into()),
            }
            .into(),
            OrderStatusChangedEvent {
                order_id: ORDER_ID,
                user_id: Some(USER_ID),
                from: OrderStatus::Pending,
                to: OrderStatus::Active,
                reason: Some("payment confirmed".into()),
                changed_at: at(3),
            }
            .into(),
            OrderStatusUpdate {
                order_id: ORDER_ID,
                user_id: USER_ID,
                status: OrderStatus::Processing,
                progress_percent: Some(40),
                message: "Your order is being delivered: 2,000 of 5,000 views so far.".into(),
            }
            .into(),
            OrderProgressUpdated {
                order_id: ORDER_ID,
                delivered_quantity: 2_000,
                target_quantity: 5_000,
                percent: 40,
                reported_at: at(90),
                start_count: None,
            }
            .into(),
            OrderRefundRequested {
                refund_id: "rf-1042-1".into(),
                order_id: ORDER_ID,
                user_id: USER_ID,
                amount_minor: 750,
                currency: "USD".into(),
                reason: "partial delivery: 2,000 of 5,000 views".into(),
            }
            .into(),
        ]
    }

    /// The payment's: its webhook, its confirmation and its refund.
    fn payment_examples() -> Vec<Event> {
        vec![
            PaymentWebhookReceived {
                provider: "cryptomus".into(),
                received_at: at(2),
                body: format!(
                    r#"{{"type":"payment","uuid":"{PAYMENT_ID}","order_id":"1042","amount":"12.50","currency":"USD","status":"paid","sign":"3f2a9c"}}"#
                ),
                remote_addr: Some("91.227.144.54".into()),
            }
            .into(),
            PaymentConfirmation {
                payment_id: PAYMENT_ID.into(),
                provider: "cryptomus".into(),
                user_id: USER_ID,
                order_ids: vec![ORDER_ID],
                amount_minor: 1_250,
                currency: "USD".into(),
                status: PaymentStatus::Paid,
                confirmed_at: at(2),
            }
            .into(),
            PaymentRefundRequested {
                refund_id: "prf-1042-1".into(),
                payment_id: PAYMENT_ID.into(),
                provider: "cryptomus".into(),
                user_id: USER_ID,
                amount_minor: 750,
                currency: "USD".into(),
                reason: "customer asked for the undelivered part back".into(),
            }
            .into(),
        ]
    }

    /// Fulfilment's: the video, the YouTube task, the campaign and its offers.
    fn fulfilment_examples() -> Vec<Event> {
        vec![
            VideoProcessingMessage {
                order_id: ORDER_ID,
                youtube_video_id: VIDEO_ID.into(),
                video_url: VIDEO_URL.into(),
                target_views: 5_000,
                start_count: Some(1_523_004),
                clip: Some(VideoClip {
                    start_seconds: 30,
                    duration_seconds: 45,
                }),
            }
            .into(),
            YouTubeTask {
                order_id: ORDER_ID,
                youtube_video_id: VIDEO_ID.into(),
                operation: YouTubeOperation::VerifyViewCount,
            }
            .into(),
            BinomCampaignCreation {
                order_id: ORDER_ID,
                campaign_name: "order-1042-dQw4w9WgXcQ".into(),
                traffic_source_id: 3,
                offers: vec![
                    WeightedOffer {
                        offer_id: 201,
                        weight: 70,
                    },
                    WeightedOffer {
                        offer_id: 202,
                        weight: 30,
                    },
                ],
            }
            .into(),
            OfferAssignment {
                order_id: ORDER_ID,
                offer_id: 201,
                campaign_id: Some(CAMPAIGN_ID),
            }
            .into(),
            OfferAssignmentEvent {
                order_id: ORDER_ID,
                offer_id: 201,
                campaign_id: Some(CAMPAIGN_ID),
                action: OfferAssignmentAction::Assigned,
                at: at(5),
            }
            .into(),
        ]
    }

    /// The customer's notification.
    fn notification_examples() -> Vec<Event> {
        vec![
            Notification {
                notification_id: "ntf-1042-started".into(),
                user_id: USER_ID,
                channel: NotificationChannel::Email {
                    to: "customer@example.com".into(),
                    subject: "Order #1042 has started".into(),
                    body: "We have started delivering 5,000 views to your video.".into(),
                },
            }
            .into(),
        ]
    }
}
