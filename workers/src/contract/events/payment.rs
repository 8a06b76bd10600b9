//! Payment provider messages.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ValidationError;
use super::validate::{currency, id, non_empty, positive};

/// A provider webhook exactly as it arrived, before any interpretation.
///
/// Capturing it first means a bug in the confirmation logic can be fixed and
/// the webhooks replayed, instead of asking the provider to resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentWebhookReceived {
    /// Provider name such as `"cryptomus"`; selects the signature scheme.
    pub provider: String,
    pub received_at: Timestamp,
    /// The provider's raw JSON body, byte for byte. It stays a string rather
    /// than a nested JSON value because signature verification hashes the
    /// exact bytes, and re-serializing would change key order or whitespace.
    pub body: String,
    pub remote_addr: Option<String>,
}

impl PaymentWebhookReceived {
    pub fn validate(&self) -> Result<(), ValidationError> {
        non_empty("provider", &self.provider)?;
        // Checked without trimming: the bytes are what the signature covers.
        if self.body.is_empty() {
            return Err(ValidationError::new("body", "must not be empty"));
        }
        Ok(())
    }
}

/// Provider states that mean the money has arrived.
///
/// Only settled states exist here on purpose: pending or failed payments are
/// not confirmations and must never reach the confirmation topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Paid,
    /// The customer sent more than invoiced; the surplus goes to the balance.
    PaidOver,
}

/// A verified payment, published after the webhook's signature checked out.
///
/// Build its envelope id with
/// [`deterministic_event_id`](super::deterministic_event_id) from
/// `payment_id` so a webhook delivered twice yields one confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentConfirmation {
    /// The provider's payment uuid.
    pub payment_id: String,
    pub provider: String,
    pub user_id: i64,
    /// May be empty: a balance top-up pays for no order.
    pub order_ids: Vec<i64>,
    pub amount_minor: i64,
    pub currency: String,
    pub status: PaymentStatus,
    pub confirmed_at: Timestamp,
}

impl PaymentConfirmation {
    pub fn validate(&self) -> Result<(), ValidationError> {
        non_empty("payment_id", &self.payment_id)?;
        non_empty("provider", &self.provider)?;
        id("user_id", self.user_id)?;
        for (index, order_id) in self.order_ids.iter().enumerate() {
            id(&format!("order_ids[{index}]"), *order_id)?;
        }
        positive("amount_minor", self.amount_minor)?;
        currency("currency", &self.currency)
    }
}

/// A request to send money back through the provider (as opposed to
/// [`OrderRefundRequested`](super::OrderRefundRequested), which credits the
/// panel balance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefundRequested {
    /// Idempotency key, also sent to the provider so retries do not pay twice.
    pub refund_id: String,
    pub payment_id: String,
    pub provider: String,
    pub user_id: i64,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
}

impl PaymentRefundRequested {
    pub fn validate(&self) -> Result<(), ValidationError> {
        non_empty("refund_id", &self.refund_id)?;
        non_empty("payment_id", &self.payment_id)?;
        non_empty("provider", &self.provider)?;
        id("user_id", self.user_id)?;
        positive("amount_minor", self.amount_minor)?;
        currency("currency", &self.currency)?;
        non_empty("reason", &self.reason)
    }
}
