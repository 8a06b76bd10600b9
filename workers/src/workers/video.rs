//! `video` (the seed's VideoProcessingConsumerService): starts view
//! delivery with the delivery provider, moves the order to PROCESSING, and
//! reports progress to `smm.order.progress`, both from the start answer and
//! from a poller that asks the provider how far each delivery has come.
//!
//! Failures climb the manual retry topic `smm.video.processing.retry` and
//! end in `smm.video.processing.retry.dlq`.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::contract::catalog;
use crate::contract::events::{
    Envelope, Event, OrderProgressUpdated, OrderStatus, deterministic_event_id,
};
use crate::contract::headers;
use crate::providers::delivery::{DeliveryApi, DeliveryState, StartDelivery};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel::{self, Fulfilment};

use super::{already_applied, emit_event, emit_transition, event_of, known_order_outside_unit};

pub struct Video {
    pub store: Store,
    pub delivery: DeliveryApi,
}

impl Handler for Video {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let work = event_of!(envelope, VideoProcessingMessage)?;
        if already_applied(&self.store, delivery, envelope.event_id).await? {
            return Ok(Handled::Duplicate(envelope.event_id));
        }
        let order = known_order_outside_unit(&self.store, work.order_id, "video").await?;
        if order.status.is_terminal() || order.status == OrderStatus::Pending {
            return Ok(Handled::Ignored(format!(
                "order {} is {}; no delivery is started for it",
                order.id, order.status
            )));
        }
        // The provider keys deliveries by order, so a start retried after
        // a timeout returns the delivery the first attempt made.
        let started = self
            .delivery
            .start(&StartDelivery {
                order_id: order.id,
                youtube_video_id: &work.youtube_video_id,
                video_url: &work.video_url,
                quantity: work.target_views,
                start_count: work.start_count.or(order.start_count),
                clip: work.clip,
            })
            .await
            .map_err(|e| e.into_failure("smmctl.video.DeliveryProvider"))?;

        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        panel::set_delivery(&mut unit, order.id, &started.delivery_id).await?;
        unit.audit(
            "delivery.started",
            &format!("order:{}", order.id),
            &format!(
                "delivery {} for {} views",
                started.delivery_id, work.target_views
            ),
        )
        .await?;
        if order.status == OrderStatus::Active {
            emit_transition(
                &mut unit,
                order.id,
                order.user_id,
                OrderStatus::Active,
                OrderStatus::Processing,
                &format!("delivery {} started", started.delivery_id),
            )
            .await?;
        }
        let report = progress_of(&order, &started);
        emit_event(
            &mut unit,
            catalog::ORDER_PROGRESS,
            order.id,
            report,
            "order-progress",
            &format!("{}:{}", order.id, started.delivered),
        )
        .await?;
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}

fn progress_of(order: &Fulfilment, state: &DeliveryState) -> OrderProgressUpdated {
    let target = order.quantity.max(1);
    let percent = (state.delivered.max(0).saturating_mul(100) / target).min(100);
    OrderProgressUpdated {
        order_id: order.id,
        delivered_quantity: state.delivered.max(0),
        target_quantity: target,
        percent: u8::try_from(percent).unwrap_or(100),
        reported_at: jiff::Timestamp::now(),
        start_count: order.start_count,
    }
}

/// Asks the provider how far each running delivery has come and reports
/// what moved, until shutdown. A report is keyed by (order, delivered), so
/// two pollers, or a poll repeated after a crash, produce duplicates the
/// progress worker drops.
pub async fn poll_progress(
    store: Store,
    api: DeliveryApi,
    producer: FutureProducer,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|down| *down) => return,
            () = tokio::time::sleep(every) => {}
        }
        let mut after_id = 0;
        loop {
            let page = match store.pool().acquire().await {
                Ok(mut conn) => panel::deliveries_in_progress(&mut conn, after_id, PAGE).await,
                Err(e) => Err(e.into()),
            };
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "progress poller cannot read the store; trying again");
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after_id = last.id;
            let full = page.len() as i64 == PAGE;
            report_progress(&api, &producer, page).await;
            if !full || *shutdown.borrow() {
                break;
            }
        }
    }
}

const PAGE: i64 = 200;

/// Asks the provider about each delivery and reports what moved.
async fn report_progress(api: &DeliveryApi, producer: &FutureProducer, running: Vec<Fulfilment>) {
    for order in running {
        let Some(delivery_id) = &order.delivery_id else {
            continue;
        };
        let state = match api.state(delivery_id).await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(order = order.id, delivery = %delivery_id, error = %e, "cannot read delivery progress; asking again next round");
                continue;
            }
        };
        if state.delivered <= order.delivered_quantity {
            continue;
        }
        let report = progress_of(&order, &state);
        let correlation_id = order
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("order-{}", order.id));
        let envelope = Envelope::new(Event::from(report), correlation_id.clone()).with_event_id(
            deterministic_event_id(
                "order-progress",
                &format!("{}:{}", order.id, state.delivered),
            ),
        );
        let payload = envelope.to_json();
        let key = order.id.to_string();
        let record = FutureRecord::to(catalog::ORDER_PROGRESS)
            .key(&key)
            .payload(&payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: headers::CORRELATION_ID,
                value: Some(correlation_id.as_bytes()),
            }));
        if let Err((e, _)) = producer.send(record, Duration::from_secs(10)).await {
            tracing::warn!(order = order.id, error = %e, "progress report not sent; the next round sends it");
        }
    }
}
