//! `offers` (the seed's OfferEventConsumer): maps an order to its Binom
//! offer, associates the campaign, and records the change on
//! `smm.offer.assignment.events` for the audit trail and the read model.

use crate::contract::catalog;
use crate::contract::events::{OfferAssignmentAction, OfferAssignmentEvent};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel;

use super::{emit_event, event_of, known_order};

pub struct Offers {
    pub store: Store,
}

impl Handler for Offers {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let assignment = event_of!(envelope, OfferAssignment)?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let order = known_order(unit.conn(), assignment.order_id, "offers").await?;
        let campaign_id = assignment.campaign_id.or(order.campaign_id);
        let action = match order.offer_id {
            None => OfferAssignmentAction::Assigned,
            Some(current) if current == assignment.offer_id && order.campaign_id == campaign_id => {
                unit.commit().await?;
                return Ok(Handled::Applied(envelope.event_id));
            }
            Some(_) => OfferAssignmentAction::Reassigned,
        };
        panel::set_offer(&mut unit, order.id, assignment.offer_id, campaign_id).await?;
        unit.audit(
            "offer.assigned",
            &format!("order:{}", order.id),
            &format!(
                "offer {} in campaign {}",
                assignment.offer_id,
                campaign_id.map_or_else(|| "-".to_owned(), |c| c.to_string())
            ),
        )
        .await?;
        emit_event(
            &mut unit,
            catalog::OFFER_ASSIGNMENT_EVENTS,
            order.id,
            OfferAssignmentEvent {
                order_id: order.id,
                offer_id: assignment.offer_id,
                campaign_id,
                action,
                at: jiff::Timestamp::now(),
            },
            "offer-assignment-event",
            &envelope.event_id.to_string(),
        )
        .await?;
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}
