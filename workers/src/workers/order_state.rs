//! `order-state` (the state consumer of `smm.order.state.updates`): the one
//! place order transitions are enforced. A legal transition is applied to
//! the store; the customer hears of it on `smm.order.status.updates`, and by
//! email where it matters to them.
//!
//! A transition the lifecycle forbids never reaches this handler: decoding
//! validates it, and it goes to the DLT as poison with the reason in its
//! headers. A transition from a state the order is not in is retried,
//! because an earlier event may still be on a retry topic; once the order
//! has settled (COMPLETED or CANCELLED) it never will be, so it goes to the
//! DLT at once.

use crate::contract::catalog;
use crate::contract::events::{
    Notification, NotificationChannel, OrderStatus, OrderStatusChangedEvent, OrderStatusUpdate,
};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::panel::{self, Fulfilment};
use crate::store::{Store, StoreError, Unit};

use super::{emit_event, event_of, known_order};

pub struct OrderState {
    pub store: Store,
}

impl Handler for OrderState {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let change = event_of!(envelope, OrderStatusChangedEvent)?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let order = known_order(unit.conn(), change.order_id, "order_state").await?;
        if order.status == change.from {
            if !panel::transition(&mut unit, order.id, change.from, change.to).await? {
                return Err(HandlerFailure::retryable(
                    "smmctl.order_state.Concurrent",
                    format!("order {} changed while {} was applied", order.id, change.to),
                ));
            }
            unit.audit(
                "order.transition",
                &format!("order:{}", order.id),
                &format!(
                    "{} -> {}{}",
                    change.from,
                    change.to,
                    change
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            )
            .await?;
        } else if order.status != change.to {
            let message = format!(
                "order {} is {}, so {} -> {} cannot apply",
                order.id, order.status, change.from, change.to
            );
            return Err(if order.status.is_terminal() {
                HandlerFailure::poison("smmctl.order_state.IllegalTransition", message)
            } else {
                HandlerFailure::retryable("smmctl.order_state.OutOfOrder", message)
            });
        }
        // Already in the target state means the emitter applied it (the
        // payments worker does, in the transaction that charges); the
        // customer has still not been told.
        tell_customer(&mut unit, &order, change).await?;
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}

async fn tell_customer(
    unit: &mut Unit,
    order: &Fulfilment,
    change: &OrderStatusChangedEvent,
) -> Result<(), StoreError> {
    let message = customer_message(order.id, change.to);
    let update = OrderStatusUpdate {
        order_id: order.id,
        user_id: order.user_id,
        status: change.to,
        progress_percent: u8::try_from(order.progress_percent.clamp(0, 100)).ok(),
        message: message.clone(),
    };
    emit_event(
        unit,
        catalog::ORDER_STATUS_UPDATES,
        order.id,
        update,
        "order-status-update",
        &format!("{}:{}", order.id, change.to),
    )
    .await?;
    // PROCESSING follows ACTIVE within seconds; one email for it is noise.
    if change.to == OrderStatus::Processing {
        return Ok(());
    }
    let Some(email) = panel::user_email(unit.conn(), order.user_id).await? else {
        return Ok(());
    };
    let notification_id = format!("order-{}-{}", order.id, change.to.as_str().to_lowercase());
    let notification = Notification {
        notification_id: notification_id.clone(),
        user_id: order.user_id,
        channel: NotificationChannel::Email {
            to: email,
            subject: format!("Order #{}: {}", order.id, change.to.as_str().to_lowercase()),
            body: format!("{message}\n\nOrder #{}", order.id),
        },
    };
    emit_event(
        unit,
        catalog::NOTIFICATIONS,
        order.user_id,
        notification,
        "notification",
        &notification_id,
    )
    .await
}

fn customer_message(order_id: i64, status: OrderStatus) -> String {
    match status {
        OrderStatus::Pending => format!("Order #{order_id} is waiting for payment."),
        OrderStatus::Active => format!("Order #{order_id} is paid and starting."),
        OrderStatus::Processing => format!("Views for order #{order_id} are being delivered."),
        OrderStatus::Completed => format!("Order #{order_id} is complete."),
        OrderStatus::Cancelled => format!("Order #{order_id} was cancelled."),
    }
}
