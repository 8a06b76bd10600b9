//! `refunds` (the seed's RefundProcessingService): an order refund credits
//! the user's balance, writes the audit log and cancels the order. A refund
//! larger than what is left of the order's charge is refused and waits in
//! the refund DLQ for a person; so does one that fails three times.

use crate::contract::events::OrderStatus;
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel::{self, LedgerKind, RefundRow};

use super::{apply_transition, event_of};

pub struct Refunds {
    pub store: Store,
}

impl Handler for Refunds {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let refund = event_of!(envelope, OrderRefundRequested)?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let Some(order) = panel::order(unit.conn(), refund.order_id).await? else {
            return Err(HandlerFailure::retryable(
                "smmctl.refunds.UnknownOrder",
                format!(
                    "refund {} is for order {}, which is not in the panel store",
                    refund.refund_id, refund.order_id
                ),
            ));
        };
        if order.user_id != refund.user_id {
            return Err(HandlerFailure::manual_review(
                "smmctl.refunds.WrongUser",
                format!(
                    "refund {} names user {}, but order {} belongs to user {}",
                    refund.refund_id, refund.user_id, order.id, order.user_id
                ),
            ));
        }
        if !panel::reserve_refund(&mut unit, order.id, refund.amount_minor).await? {
            return Err(HandlerFailure::manual_review(
                "smmctl.refunds.ExceedsCharge",
                format!(
                    "refund {} of {} {} is more than what is left of order {}'s charge ({} of {} already refunded)",
                    refund.refund_id,
                    refund.amount_minor,
                    refund.currency,
                    order.id,
                    order.refunded_minor,
                    order.charge_minor
                ),
            ));
        }
        if !panel::post(
            &mut unit,
            refund.user_id,
            refund.amount_minor,
            &refund.currency,
            LedgerKind::Refund,
            &refund.refund_id,
        )
        .await?
        {
            return Err(HandlerFailure::retryable(
                "smmctl.refunds.UnknownUser",
                format!("user {} is not in the panel store", refund.user_id),
            ));
        }
        panel::record_refund(
            &mut unit,
            &RefundRow {
                refund_id: &refund.refund_id,
                kind: "balance",
                order_id: Some(order.id),
                payment_id: order.payment_id.as_deref(),
                user_id: refund.user_id,
                amount_minor: refund.amount_minor,
                currency: &refund.currency,
                status: "credited",
                reason: &refund.reason,
                provider_reference: None,
            },
        )
        .await?;
        unit.audit(
            "refund.credited",
            &format!("order:{}", order.id),
            &format!(
                "refund {}: {} {} to user {} ({})",
                refund.refund_id,
                refund.amount_minor,
                refund.currency,
                refund.user_id,
                refund.reason
            ),
        )
        .await?;
        // Read again: reserving the refund updated the row and holds it,
        // so this is the status no other worker can change under us (the
        // first read may predate a move to PROCESSING).
        let status = panel::order(unit.conn(), order.id)
            .await?
            .map_or(order.status, |o| o.status);
        // A completed order keeps its state (a partial refund for
        // under-delivery); a cancelled one is already where it should be.
        if status.can_transition_to(OrderStatus::Cancelled)
            && !apply_transition(
                &mut unit,
                order.id,
                order.user_id,
                status,
                OrderStatus::Cancelled,
                &format!("refunded: {}", refund.reason),
            )
            .await?
        {
            return Err(HandlerFailure::retryable(
                "smmctl.refunds.Concurrent",
                format!(
                    "order {} changed while refund {} was applied",
                    order.id, refund.refund_id
                ),
            ));
        }
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}
