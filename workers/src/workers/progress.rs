//! `progress` (the progress tracking service): delivered quantity and
//! percentage go to the order, never backwards, and an order that reaches
//! 100 % is completed through a state event, so `order-state` stays the one
//! place transitions happen.

use crate::contract::catalog;
use crate::contract::events::{OrderStatus, OrderStatusUpdate};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel;

use super::{emit_event, emit_transition, event_of, known_order};

pub struct Progress {
    pub store: Store,
}

impl Handler for Progress {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let progress = event_of!(envelope, OrderProgressUpdated)?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let order = known_order(unit.conn(), progress.order_id, "progress").await?;
        if order.status.is_terminal() {
            // A late report for a settled order changes nothing the
            // customer sees; the claim is kept so it is not retried.
            unit.audit(
                "progress.ignored",
                &format!("order:{}", order.id),
                &format!("order is {}", order.status),
            )
            .await?;
            unit.commit().await?;
            return Ok(Handled::Applied(envelope.event_id));
        }
        let percent = i64::from(progress.percent);
        let moved =
            panel::record_progress(&mut unit, order.id, progress.delivered_quantity, percent)
                .await?;
        // Told to the customer only once order-state has applied
        // PROCESSING: it published ACTIVE and PROCESSING when it applied
        // them, so this update can never arrive before them and move the
        // customer's status back.
        if moved && order.status == OrderStatus::Processing {
            let shown = percent.max(order.progress_percent);
            emit_event(
                &mut unit,
                catalog::ORDER_STATUS_UPDATES,
                order.id,
                OrderStatusUpdate {
                    order_id: order.id,
                    user_id: order.user_id,
                    status: OrderStatus::Processing,
                    progress_percent: u8::try_from(shown.clamp(0, 100)).ok(),
                    message: format!(
                        "{} of {} views delivered for order #{}.",
                        progress.delivered_quantity.max(order.delivered_quantity),
                        order.quantity,
                        order.id
                    ),
                },
                "order-progress-update",
                &format!("{}:{}", order.id, progress.delivered_quantity),
            )
            .await?;
        }
        let done =
            progress.percent >= 100 || progress.delivered_quantity >= progress.target_quantity;
        if done {
            // From PROCESSING whatever the store says now: delivery is
            // under way by definition, and if PROCESSING has not been
            // applied yet, `order-state` retries this until it has.
            emit_transition(
                &mut unit,
                order.id,
                order.user_id,
                OrderStatus::Processing,
                OrderStatus::Completed,
                &format!(
                    "delivered {} of {}",
                    progress.delivered_quantity, progress.target_quantity
                ),
            )
            .await?;
        }
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}
