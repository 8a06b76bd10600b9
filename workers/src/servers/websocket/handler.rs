//! The worker side: each order status update consumed is fanned out to
//! the hub's clients.

use std::sync::Arc;

use super::hub::{Hub, StatusMessage};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::workers::event_of;

/// Pushes each `OrderStatusUpdate` to the connected clients. Needs no
/// store: an update is a notice about state the store already holds, and
/// a client that missed one reloads the order.
pub struct StatusFanOut {
    pub hub: Arc<Hub>,
}

impl Handler for StatusFanOut {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let update = event_of!(envelope, OrderStatusUpdate)?;
        let report = self.hub.publish(&StatusMessage::new(update, &envelope));
        tracing::debug!(
            order_id = update.order_id,
            delivered = report.delivered,
            dropped_slow = report.dropped_slow,
            "status update fanned out"
        );
        Ok(Handled::Applied(envelope.event_id))
    }
}
