//! `webhooks` (the seed's WebhookProcessingService): verify a raw Cryptomus
//! webhook and publish the payment confirmation it stands for. The
//! confirmation's event id comes from the payment uuid, so a webhook the
//! provider sends twice yields one confirmation downstream.

use crate::contract::catalog;
use crate::contract::events::{Envelope, Event, deterministic_event_id};
use crate::providers::cryptomus;
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;

use super::event_of;

pub struct Webhooks {
    pub store: Store,
    /// Never logged: it only ever reaches the signature function.
    pub api_key: String,
}

impl Handler for Webhooks {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let received = event_of!(envelope, PaymentWebhookReceived)?;
        if received.provider != "cryptomus" {
            return Err(HandlerFailure::poison(
                "smmctl.webhooks.UnknownProvider",
                format!("no signature scheme for provider {:?}", received.provider),
            ));
        }
        let webhook = cryptomus::verify(&received.body, &self.api_key)
            .map_err(|e| HandlerFailure::poison(e.class(), e.to_string()))?;
        let confirmation = webhook
            .confirmation(received.received_at)
            .map_err(|e| HandlerFailure::poison(e.class(), e.to_string()))?;
        let Some(confirmation) = confirmation else {
            return Ok(Handled::Ignored(format!(
                "payment {} has status {:?}, which confirms nothing",
                webhook.uuid, webhook.status
            )));
        };
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let id = deterministic_event_id("payment-confirmation", &confirmation.payment_id);
        let key = confirmation.user_id.to_string();
        let out = Envelope::new(Event::from(confirmation), envelope.correlation_id.clone())
            .with_event_id(id);
        if let Err(invalid) = out.validate() {
            return Err(HandlerFailure::poison(
                "smmctl.webhooks.InvalidWebhook",
                format!("the confirmation it yields is invalid: {invalid}"),
            ));
        }
        unit.emit(catalog::PAYMENT_CONFIRMATIONS, Some(&key), &out)
            .await?;
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}
