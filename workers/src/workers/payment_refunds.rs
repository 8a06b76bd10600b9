//! `payment-refunds` (the seed's PaymentRefundConsumer): send money back
//! through the payment provider's refund API. 5xx and timeouts are retried
//! (the refund id travels as the provider's idempotency key, so a retry
//! cannot pay twice); a 4xx goes to the DLQ with the provider's answer.

use crate::providers::cryptomus::{ProviderError, RefundApi};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel::{self, RefundRow};

use super::event_of;

pub struct PaymentRefunds {
    pub store: Store,
    pub api: RefundApi,
}

impl Handler for PaymentRefunds {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let refund = event_of!(envelope, PaymentRefundRequested)?;
        // The claim is taken after the call, so no transaction stays open
        // across the network; a repeat before then only repeats the call,
        // which the idempotency key makes harmless.
        if self
            .store
            .is_processed(delivery.worker, envelope.event_id)
            .await?
        {
            return Ok(Handled::Duplicate(envelope.event_id));
        }
        let answer = self
            .api
            .refund(
                &refund.refund_id,
                &refund.payment_id,
                refund.amount_minor,
                &refund.currency,
            )
            .await
            .map_err(|e| match e {
                ProviderError::Unavailable(_) => HandlerFailure::retryable(
                    "smmctl.payment_refunds.ProviderUnavailable",
                    e.to_string(),
                ),
                ProviderError::Refused { .. } => {
                    HandlerFailure::poison("smmctl.payment_refunds.ProviderRefused", e.to_string())
                }
            })?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        panel::record_refund(
            &mut unit,
            &RefundRow {
                refund_id: &refund.refund_id,
                kind: "provider",
                order_id: None,
                payment_id: Some(&refund.payment_id),
                user_id: refund.user_id,
                amount_minor: refund.amount_minor,
                currency: &refund.currency,
                status: "refunded",
                reason: &refund.reason,
                provider_reference: Some(&answer),
            },
        )
        .await?;
        unit.audit(
            "refund.provider",
            &format!("payment:{}", refund.payment_id),
            &format!(
                "refund {}: {} {} returned through {}",
                refund.refund_id, refund.amount_minor, refund.currency, refund.provider
            ),
        )
        .await?;
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}
