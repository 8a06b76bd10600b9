//! `orders` (the seed's OrderEventConsumer): a new order's video is checked
//! on YouTube, its start view count captured, and, once paid, the order
//! becomes ACTIVE and its video work is queued.
//!
//! The YouTube call happens before the store unit opens: a slow API must
//! not hold a transaction (SQLite has one writer), and a record already
//! applied is recognised before it spends quota.

use crate::contract::catalog;
use crate::contract::events::{
    Envelope, OrderCreatedEvent, OrderRefundRequested, OrderStatus, deterministic_event_id,
};
use crate::providers::youtube::{self, LIST_COST, LookupError, Quota, Spend, YouTubeApi};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::panel::{self, Fulfilment, NewOrder};
use crate::store::{Store, Unit};

use super::{
    activate, already_applied, apply_transition, emit_event, event_of, known_order,
    start_video_work,
};

pub struct Orders {
    pub store: Store,
    pub youtube: YouTubeApi,
    pub quota: Quota,
}

impl Handler for Orders {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let created = event_of!(envelope, OrderCreatedEvent)?;
        if already_applied(&self.store, delivery, envelope.event_id).await? {
            return Ok(Handled::Duplicate(envelope.event_id));
        }
        let video = match check_video(
            &self.store,
            &self.youtube,
            &self.quota,
            &created.youtube_video_id,
        )
        .await
        {
            Ok(video) => video,
            // Only YouTube's verdict on the video itself settles the order;
            // any other refusal (a bad request, a wrong URL) is ours to fix,
            // and the record waits in the DLT for a replay.
            Err(rejected) if rejected.class == VIDEO_UNAVAILABLE => {
                return self.reject(delivery, &envelope, created, rejected).await;
            }
            Err(other) => return Err(other),
        };
        let Some(view_count) = video.view_count else {
            let hidden = HandlerFailure::poison(
                "smmctl.orders.ViewCountHidden",
                format!(
                    "video {} hides its view count, so delivery for order {} cannot be measured",
                    video.id, created.order_id
                ),
            );
            return self.reject(delivery, &envelope, created, hidden).await;
        };

        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        record_order(&mut unit, created).await?;
        panel::record_verification(&mut unit, created.order_id, Some(view_count), &video.title)
            .await?;
        let order = owned_order(&mut unit, created).await?;
        unit.audit(
            "order.verified",
            &format!("order:{}", order.id),
            &format!("video {} has {view_count} views", video.id),
        )
        .await?;
        match order.status {
            OrderStatus::Pending => {
                let paid = match &order.payment_id {
                    None => true,
                    Some(payment) => panel::payment_recorded(unit.conn(), payment).await?,
                };
                if paid {
                    activate(&mut unit, &order, "video verified").await?;
                } else {
                    unit.audit(
                        "order.awaiting_payment",
                        &format!("order:{}", order.id),
                        "verified; the payments worker activates it when the payment is confirmed",
                    )
                    .await?;
                }
            }
            // Paid before the check finished: the payment could not queue
            // the video work, so it is queued now.
            OrderStatus::Active => start_video_work(&mut unit, &order).await?,
            OrderStatus::Processing | OrderStatus::Completed | OrderStatus::Cancelled => {}
        }
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}

impl Orders {
    /// A video YouTube rejects can never be delivered, so the order is
    /// settled with the customer here, and the record still goes to the
    /// DLT with the reason: an unpaid order is cancelled at once (in this
    /// transaction, so a payment arriving later finds nothing to charge and
    /// stays on the balance); a charged one gets a refund request, which
    /// the refunds worker credits and cancels.
    ///
    /// The unit claims the rejection, not the event: a redelivered record
    /// is rejected again and still reaches the DLT, without settling twice.
    async fn reject(
        &self,
        delivery: &Delivery<'_>,
        envelope: &Envelope,
        created: &OrderCreatedEvent,
        rejected: HandlerFailure,
    ) -> Result<Handled, HandlerFailure> {
        let rejection = deterministic_event_id("order-rejection", &envelope.event_id.to_string());
        let Some(mut unit) = self.store.begin(delivery.claim(rejection)).await? else {
            return Err(rejected.after_committing(rejection));
        };
        // Recording the order updates its row, which holds it for this
        // unit: a payment racing to activate it waits, and the status read
        // next is the latest committed one.
        record_order(&mut unit, created).await?;
        let order = owned_order(&mut unit, created).await?;
        let reason = format!("video rejected: {}", rejected.message);
        match order.status {
            OrderStatus::Pending => {
                apply_transition(
                    &mut unit,
                    order.id,
                    order.user_id,
                    OrderStatus::Pending,
                    OrderStatus::Cancelled,
                    &reason,
                )
                .await?;
            }
            OrderStatus::Active => {
                let refund_id = format!("order-{}-video-rejected", order.id);
                let refund = OrderRefundRequested {
                    refund_id: refund_id.clone(),
                    order_id: order.id,
                    user_id: order.user_id,
                    amount_minor: order.charge_minor - order.refunded_minor,
                    currency: order.currency.clone(),
                    reason: reason.clone(),
                };
                if refund.amount_minor > 0 {
                    emit_event(
                        &mut unit,
                        catalog::ORDER_REFUND,
                        order.id,
                        refund,
                        "order-refund",
                        &refund_id,
                    )
                    .await?;
                } else {
                    // A free order: nothing to give back.
                    apply_transition(
                        &mut unit,
                        order.id,
                        order.user_id,
                        OrderStatus::Active,
                        OrderStatus::Cancelled,
                        &reason,
                    )
                    .await?;
                }
            }
            OrderStatus::Processing | OrderStatus::Completed | OrderStatus::Cancelled => {}
        }
        unit.audit("order.rejected", &format!("order:{}", order.id), &reason)
            .await?;
        unit.commit().await?;
        Err(rejected.after_committing(rejection))
    }
}

/// The panel's order service normally wrote the order already; an order
/// known only from its event is recorded from it.
async fn record_order(unit: &mut Unit, created: &OrderCreatedEvent) -> Result<(), HandlerFailure> {
    if panel::user(unit.conn(), created.user_id).await?.is_none() {
        return Err(HandlerFailure::retryable(
            "smmctl.orders.UnknownUser",
            format!(
                "order {} is for user {}, who is not in the panel store",
                created.order_id, created.user_id
            ),
        ));
    }
    panel::insert_order(
        unit.conn(),
        &NewOrder {
            id: created.order_id,
            user_id: created.user_id,
            quantity: created.quantity,
            charge_minor: created.charge_minor,
            currency: &created.currency,
            payment_id: created.payment_id.as_deref(),
            video_url: Some(&created.video_url),
            youtube_video_id: Some(&created.youtube_video_id),
        },
    )
    .await?;
    panel::set_correlation(unit, created.order_id).await?;
    Ok(())
}

/// The order as the store has it, refused if the event names another
/// owner: a producer mixing up orders must not move someone else's.
async fn owned_order(
    unit: &mut Unit,
    created: &OrderCreatedEvent,
) -> Result<Fulfilment, HandlerFailure> {
    let order = known_order(unit.conn(), created.order_id, "orders").await?;
    if order.user_id != created.user_id {
        return Err(HandlerFailure::poison(
            "smmctl.orders.OwnerMismatch",
            format!(
                "order {} belongs to user {} in the store, the event says user {}",
                order.id, order.user_id, created.user_id
            ),
        ));
    }
    Ok(order)
}

/// The class of YouTube's verdict that a video is unknown or private.
const VIDEO_UNAVAILABLE: &str = "smmctl.youtube.VideoUnavailable";

/// One `videos.list` call, charged to the quota first. An exhausted quota
/// holds the record until the quota resets: it never fails it.
pub(super) async fn check_video(
    store: &Store,
    api: &YouTubeApi,
    quota: &Quota,
    video_id: &str,
) -> Result<youtube::Video, HandlerFailure> {
    if let Spend::Exhausted { resets_at } = quota.spend(store, LIST_COST).await? {
        return Err(quota_failure(resets_at, "the daily unit budget is spent"));
    }
    match api.video(video_id).await {
        Ok(video) => Ok(video),
        Err(LookupError::NotFound(id)) => Err(HandlerFailure::poison(
            VIDEO_UNAVAILABLE,
            format!("video {id} is unknown or private: YouTube returned no item for it"),
        )),
        Err(LookupError::QuotaExceeded) => {
            let resets_at = quota.exhaust(store).await?;
            Err(quota_failure(resets_at, "YouTube answered quotaExceeded"))
        }
        Err(LookupError::Call(e)) => Err(e.into_failure("smmctl.youtube")),
    }
}

pub(super) fn quota_failure(resets_at: jiff::Timestamp, why: &str) -> HandlerFailure {
    HandlerFailure::throttled(
        "smmctl.youtube.QuotaExhausted",
        format!("YouTube quota: {why}; waiting until it resets at {resets_at}"),
        youtube::wait_until(resets_at),
    )
}
