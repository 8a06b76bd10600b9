//! `payments` (the seed's PaymentConfirmationConsumer): a confirmed payment
//! becomes a ledger line and a balance credit, and the orders waiting for
//! it are charged and activated. Idempotent on the event id and, through
//! the ledger's unique key, on the payment id.

use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel::{self, LedgerKind};

use super::{activate, event_of};

pub struct Payments {
    pub store: Store,
}

impl Handler for Payments {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let payment = event_of!(envelope, PaymentConfirmation)?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let recorded = panel::record_payment(
            &mut unit,
            &payment.payment_id,
            &payment.provider,
            payment.user_id,
            payment.amount_minor,
            &payment.currency,
            match payment.status {
                crate::contract::events::PaymentStatus::Paid => "paid",
                crate::contract::events::PaymentStatus::PaidOver => "paid_over",
            },
        )
        .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                // The same payment under another event id (a webhook
                // confirmed twice by different producers): keep the claim,
                // change nothing else.
                unit.audit(
                    "payment.duplicate",
                    &payment.payment_id,
                    "already recorded under another event id",
                )
                .await?;
                unit.commit().await?;
                return Ok(Handled::Duplicate(envelope.event_id));
            }
            // The payments row references the user: a foreign key failure
            // means the user is not in the store (yet).
            Err(_) if panel::user(unit.conn(), payment.user_id).await?.is_none() => {
                return Err(unknown_user(payment.user_id, &payment.payment_id));
            }
            Err(e) => return Err(e.into()),
        }
        if !panel::post(
            &mut unit,
            payment.user_id,
            payment.amount_minor,
            &payment.currency,
            LedgerKind::Payment,
            &payment.payment_id,
        )
        .await?
        {
            return Err(unknown_user(payment.user_id, &payment.payment_id));
        }
        unit.audit(
            "payment.credited",
            &format!("user:{}", payment.user_id),
            &format!(
                "{} {} from payment {}",
                payment.amount_minor, payment.currency, payment.payment_id
            ),
        )
        .await?;

        let orders =
            panel::orders_awaiting_payment(unit.conn(), &payment.payment_id, &payment.order_ids)
                .await?;
        for order in orders {
            if order.user_id != payment.user_id {
                unit.audit(
                    "order.not_activated",
                    &format!("order:{}", order.id),
                    &format!(
                        "payment {} is from user {}, the order belongs to user {}",
                        payment.payment_id, payment.user_id, order.user_id
                    ),
                )
                .await?;
                continue;
            }
            activate(
                &mut unit,
                &order,
                &format!("paid by {}", payment.payment_id),
            )
            .await?;
        }
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}

/// The user may not have reached this store yet; worth retrying, and after
/// the ladder it waits in the DLQ for a person.
fn unknown_user(user_id: i64, payment_id: &str) -> HandlerFailure {
    HandlerFailure::retryable(
        "smmctl.payments.UnknownUser",
        format!("payment {payment_id} is for user {user_id}, who is not in the panel store"),
    )
}
