//! Order lifecycle messages.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ValidationError;
use super::validate::{
    currency, http_url, id, non_empty, non_negative, optional_non_empty, percent, positive,
    youtube_video_id,
};

/// Where an order is in its lifecycle.
///
/// The wire spelling is SCREAMING_CASE because that is what the panel's
/// database and the existing producers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Active,
    Processing,
    Completed,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Active,
        OrderStatus::Processing,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Active => "ACTIVE",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Terminal orders have been settled with the customer (delivered or
    /// refunded), so no further change may be applied to them.
    pub const fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Completed | OrderStatus::Cancelled)
    }

    /// Whether `self → to` is a legal step.
    ///
    /// The source document describes the happy path as
    /// PENDING → ACTIVE → PROCESSING → COMPLETED/CANCELLED, which read
    /// literally would allow cancelling only while processing. Refunds,
    /// however, cancel orders that never started processing (unpaid, or paid
    /// but rejected before delivery), so cancellation is allowed from every
    /// non-terminal state. Nothing leaves COMPLETED or CANCELLED, and a
    /// self-transition is rejected because it signals a duplicated or
    /// replayed command rather than a real change.
    pub const fn can_transition_to(self, to: OrderStatus) -> bool {
        use OrderStatus::{Active, Cancelled, Completed, Pending, Processing};
        matches!(
            (self, to),
            (Pending, Active)
                | (Active, Processing)
                | (Processing, Completed)
                | (Pending | Active | Processing, Cancelled)
        )
    }

    /// The states reachable in one step, for error messages and UIs.
    pub fn next_states(self) -> impl Iterator<Item = OrderStatus> {
        Self::ALL
            .into_iter()
            .filter(move |to| self.can_transition_to(*to))
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer placed an order; the processing pipeline starts from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreatedEvent {
    pub order_id: i64,
    pub user_id: i64,
    pub service_id: i64,
    pub video_url: String,
    pub youtube_video_id: String,
    pub quantity: i64,
    pub charge_minor: i64,
    pub currency: String,
    /// The provider payment the order waits for; `None` when it was paid
    /// from the balance and can start at once.
    pub payment_id: Option<String>,
}

impl OrderCreatedEvent {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        id("user_id", self.user_id)?;
        id("service_id", self.service_id)?;
        http_url("video_url", &self.video_url)?;
        youtube_video_id("youtube_video_id", &self.youtube_video_id)?;
        positive("quantity", self.quantity)?;
        // Zero is allowed: promotional and admin-created orders are free.
        non_negative("charge_minor", self.charge_minor)?;
        currency("currency", &self.currency)?;
        optional_non_empty("payment_id", self.payment_id.as_deref())
    }
}

/// The authoritative record of a state change, consumed by the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusChangedEvent {
    pub order_id: i64,
    /// Optional because system-initiated changes (timeouts, provider
    /// callbacks) are emitted by workers that only know the order.
    pub user_id: Option<i64>,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub reason: Option<String>,
    pub changed_at: Timestamp,
}

impl OrderStatusChangedEvent {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        if let Some(user_id) = self.user_id {
            id("user_id", user_id)?;
        }
        if self.from.can_transition_to(self.to) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.from.next_states().map(OrderStatus::as_str).collect();
        let hint = if allowed.is_empty() {
            format!("{} is terminal and cannot change", self.from)
        } else {
            format!(
                "from {} the order may only move to {}",
                self.from,
                allowed.join(" or ")
            )
        };
        Err(ValidationError::new(
            "to",
            format!(
                "illegal order status transition {} -> {}; {hint}",
                self.from, self.to
            ),
        ))
    }
}

/// A customer-facing notice for the UI/WebSocket, separate from
/// [`OrderStatusChangedEvent`] so UI wording can change without touching the
/// authoritative state stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusUpdate {
    pub order_id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub progress_percent: Option<u8>,
    pub message: String,
}

impl OrderStatusUpdate {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        id("user_id", self.user_id)?;
        if let Some(progress) = self.progress_percent {
            percent("progress_percent", progress)?;
        }
        // The customer sees this text verbatim; a blank toast is a bug.
        non_empty("message", &self.message)
    }
}

/// Delivery progress as reported by the traffic side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderProgressUpdated {
    pub order_id: i64,
    /// May exceed `target_quantity`: providers over-deliver, and rejecting
    /// the report would hide real numbers.
    pub delivered_quantity: i64,
    pub target_quantity: i64,
    /// Capped at 100 even when over-delivered, because it drives a progress
    /// bar.
    pub percent: u8,
    pub reported_at: Timestamp,
    /// The view count delivery is measured from, so the read model can
    /// show it without asking the store. Absent from older producers.
    #[serde(default)]
    pub start_count: Option<i64>,
}

impl OrderProgressUpdated {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        non_negative("delivered_quantity", self.delivered_quantity)?;
        positive("target_quantity", self.target_quantity)?;
        if let Some(start_count) = self.start_count {
            non_negative("start_count", start_count)?;
        }
        percent("percent", self.percent)
    }
}

/// A request to refund (part of) an order to the customer's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefundRequested {
    /// Idempotency key: the refund worker applies each refund id once.
    pub refund_id: String,
    pub order_id: i64,
    pub user_id: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
}

impl OrderRefundRequested {
    pub fn validate(&self) -> Result<(), ValidationError> {
        non_empty("refund_id", &self.refund_id)?;
        id("order_id", self.order_id)?;
        id("user_id", self.user_id)?;
        positive("amount_minor", self.amount_minor)?;
        currency("currency", &self.currency)?;
        // Money moves: support needs to know why.
        non_empty("reason", &self.reason)
    }
}
