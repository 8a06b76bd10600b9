//! `binom` (the seed's BinomCampaignConsumer): creates the order's traffic
//! campaign in Binom (setup, offers and their weights), stores the campaign
//! id on the order, and asks `offers` to assign the leading offer.
//!
//! Binom does not de-duplicate creations, so the campaign is looked up by
//! name before it is created: a creation that timed out after Binom made
//! it is found on the retry, and no second campaign is made.

use crate::contract::catalog;
use crate::contract::events::OfferAssignment;
use crate::providers::binom::{BinomApi, CampaignOffer, NewCampaign};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel;

use super::{already_applied, emit_event, event_of, known_order_outside_unit};

pub struct Binom {
    pub store: Store,
    pub api: BinomApi,
}

impl Handler for Binom {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let request = event_of!(envelope, BinomCampaignCreation)?;
        if already_applied(&self.store, delivery, envelope.event_id).await? {
            return Ok(Handled::Duplicate(envelope.event_id));
        }
        known_order_outside_unit(&self.store, request.order_id, "binom").await?;
        let classify = |e: crate::providers::CallError| e.into_failure("smmctl.binom");
        let (campaign, created) = match self
            .api
            .find(&request.campaign_name)
            .await
            .map_err(classify)?
        {
            Some(found) => (found, false),
            None => {
                let made = self
                    .api
                    .create(&NewCampaign {
                        name: &request.campaign_name,
                        traffic_source_id: request.traffic_source_id,
                        offers: request.offers.iter().map(CampaignOffer::from).collect(),
                    })
                    .await
                    .map_err(classify)?;
                (made, true)
            }
        };

        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        panel::set_campaign(&mut unit, request.order_id, campaign.id).await?;
        unit.audit(
            if created {
                "binom.campaign_created"
            } else {
                "binom.campaign_found"
            },
            &format!("order:{}", request.order_id),
            &format!("campaign {} `{}`", campaign.id, campaign.name),
        )
        .await?;
        // Validation guarantees at least one offer with weight.
        if let Some(lead) = request.offers.iter().max_by_key(|o| o.weight) {
            emit_event(
                &mut unit,
                catalog::OFFER_ASSIGNMENTS,
                request.order_id,
                OfferAssignment {
                    order_id: request.order_id,
                    offer_id: lead.offer_id,
                    campaign_id: Some(campaign.id),
                },
                "offer-assignment",
                &format!("{}:{}:{}", request.order_id, lead.offer_id, campaign.id),
            )
            .await?;
        }
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}
