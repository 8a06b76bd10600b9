//! `cqrs` (the read model consumer): one row per order, built only from
//! events (state changes, progress and offer assignments), so it can be
//! thrown away and rebuilt from the topics with `smmctl run cqrs --rebuild`.
//!
//! Every field merges in a way that does not depend on the order events
//! arrive in or on how often: the status only moves forward in the
//! lifecycle, counts only grow, times keep their latest. That is what makes
//! the rebuilt model equal the incrementally built one, and why this worker
//! needs no dedup table: applying an event twice changes nothing.

use jiff::Timestamp;
use sqlx::{AnyConnection, Row as _};

use crate::contract::events::{Event, OrderStatus};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::{Store, StoreError};

pub struct ReadModel {
    pub store: Store,
}

/// One order as the read model shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub order_id: i64,
    pub user_id: Option<i64>,
    pub status: String,
    pub delivered_quantity: i64,
    pub target_quantity: Option<i64>,
    pub progress_percent: i64,
    pub start_count: Option<i64>,
    pub campaign_id: Option<i64>,
    pub offer_id: Option<i64>,
    pub assigned_at: Option<String>,
    pub last_update: String,
}

/// Where a status sits in the lifecycle; the model keeps the furthest.
fn rank(status: &str) -> u8 {
    match status {
        "PENDING" => 0,
        "ACTIVE" => 1,
        "PROCESSING" => 2,
        "COMPLETED" | "CANCELLED" => 3,
        _ => 0,
    }
}

fn later(current: &str, candidate: Timestamp) -> String {
    match current.parse::<Timestamp>() {
        Ok(t) if t >= candidate => current.to_owned(),
        _ => candidate.to_string(),
    }
}

fn advance(view: &mut OrderView, status: OrderStatus) {
    if rank(status.as_str()) > rank(&view.status) {
        view.status = status.as_str().to_owned();
    }
}

/// Folds one event into the order's row.
fn apply(view: &mut OrderView, event: &Event) {
    match event {
        Event::OrderStatusChangedEvent(change) => {
            if view.user_id.is_none() {
                view.user_id = change.user_id;
            }
            advance(view, change.to);
            view.last_update = later(&view.last_update, change.changed_at);
        }
        Event::OrderProgressUpdated(progress) => {
            // Progress means delivery started, whether or not the
            // PROCESSING event has been read yet.
            advance(view, OrderStatus::Processing);
            view.delivered_quantity = view.delivered_quantity.max(progress.delivered_quantity);
            view.progress_percent = view.progress_percent.max(i64::from(progress.percent));
            view.target_quantity = Some(progress.target_quantity);
            if view.start_count.is_none() {
                view.start_count = progress.start_count;
            }
            view.last_update = later(&view.last_update, progress.reported_at);
        }
        Event::OfferAssignmentEvent(assigned) => {
            let newer = view
                .assigned_at
                .as_deref()
                .and_then(|a| a.parse::<Timestamp>().ok())
                .is_none_or(|a| assigned.at >= a);
            if newer {
                view.offer_id = Some(assigned.offer_id);
                if assigned.campaign_id.is_some() {
                    view.campaign_id = assigned.campaign_id;
                }
                view.assigned_at = Some(assigned.at.to_string());
            }
            view.last_update = later(&view.last_update, assigned.at);
        }
        _ => {}
    }
}

fn order_of(event: &Event) -> Option<(i64, Timestamp)> {
    match event {
        Event::OrderStatusChangedEvent(e) => Some((e.order_id, e.changed_at)),
        Event::OrderProgressUpdated(e) => Some((e.order_id, e.reported_at)),
        Event::OfferAssignmentEvent(e) => Some((e.order_id, e.at)),
        _ => None,
    }
}

const COLUMNS: &str = "order_id, user_id, status, delivered_quantity, target_quantity, \
     progress_percent, start_count, campaign_id, offer_id, assigned_at, last_update";

fn view_of(row: &sqlx::any::AnyRow) -> Result<OrderView, sqlx::Error> {
    Ok(OrderView {
        order_id: row.try_get("order_id")?,
        user_id: row.try_get("user_id")?,
        status: row.try_get("status")?,
        delivered_quantity: row.try_get("delivered_quantity")?,
        target_quantity: row.try_get("target_quantity")?,
        progress_percent: row.try_get("progress_percent")?,
        start_count: row.try_get("start_count")?,
        campaign_id: row.try_get("campaign_id")?,
        offer_id: row.try_get("offer_id")?,
        assigned_at: row.try_get("assigned_at")?,
        last_update: row.try_get("last_update")?,
    })
}

pub async fn view(
    conn: &mut AnyConnection,
    order_id: i64,
) -> Result<Option<OrderView>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM order_read_model WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(view_of).transpose()?)
}

/// The whole model, by order id.
pub async fn all_views(store: &Store) -> Result<Vec<OrderView>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM order_read_model ORDER BY order_id"
    ))
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(view_of).collect::<Result<_, _>>()?)
}

/// Empties the model before a rebuild.
pub async fn clear(store: &Store) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM order_read_model")
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

impl Handler for ReadModel {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let Some((order_id, at)) = order_of(&envelope.event) else {
            return Ok(Handled::Ignored(format!(
                "{} does not feed the read model",
                envelope.event_type()
            )));
        };
        // A store that fails is waited for, however long: the model has
        // no dead letter, and skipping an event would leave it wrong until
        // the next rebuild.
        self.fold(order_id, at, &envelope.event)
            .await
            .map_err(|e| {
                HandlerFailure::throttled(
                    "smmctl.cqrs.StoreUnavailable",
                    format!("cannot fold the event into order {order_id}'s row: {e}"),
                    STORE_RETRY,
                )
            })?;
        Ok(Handled::Applied(envelope.event_id))
    }
}

const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl ReadModel {
    async fn fold(&self, order_id: i64, at: Timestamp, event: &Event) -> Result<(), StoreError> {
        let mut tx = self.store.pool().begin().await?;
        sqlx::query(
            "INSERT INTO order_read_model (order_id, status, last_update) VALUES ($1, 'PENDING', $2) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(at.to_string())
        .execute(&mut *tx)
        .await?;
        // Taking the row's lock before reading it: another process of the
        // group may be folding an event of another topic into this order.
        sqlx::query("UPDATE order_read_model SET order_id = order_id WHERE order_id = $1")
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        let Some(mut current) = view(&mut tx, order_id).await? else {
            // Inserted above and never deleted but by a rebuild, which
            // runs before the worker starts.
            return Ok(());
        };
        let before = current.clone();
        apply(&mut current, event);
        if current != before {
            sqlx::query(
                "UPDATE order_read_model SET user_id = $1, status = $2, delivered_quantity = $3, \
                 target_quantity = $4, progress_percent = $5, start_count = $6, campaign_id = $7, \
                 offer_id = $8, assigned_at = $9, last_update = $10 WHERE order_id = $11",
            )
            .bind(current.user_id)
            .bind(&current.status)
            .bind(current.delivered_quantity)
            .bind(current.target_quantity)
            .bind(current.progress_percent)
            .bind(current.start_count)
            .bind(current.campaign_id)
            .bind(current.offer_id)
            .bind(&current.assigned_at)
            .bind(&current.last_update)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::events::{OrderProgressUpdated, OrderStatusChangedEvent};

    fn blank() -> OrderView {
        OrderView {
            order_id: 1,
            user_id: None,
            status: "PENDING".into(),
            delivered_quantity: 0,
            target_quantity: None,
            progress_percent: 0,
            start_count: None,
            campaign_id: None,
            offer_id: None,
            assigned_at: None,
            last_update: "2026-11-29T10:00:00Z".into(),
        }
    }

    fn change(from: OrderStatus, to: OrderStatus, at: &str) -> Event {
        Event::from(OrderStatusChangedEvent {
            order_id: 1,
            user_id: Some(9),
            from,
            to,
            reason: None,
            changed_at: at.parse().unwrap(),
        })
    }

    fn progress(delivered: i64, at: &str) -> Event {
        Event::from(OrderProgressUpdated {
            order_id: 1,
            delivered_quantity: delivered,
            target_quantity: 100,
            percent: u8::try_from(delivered.min(100)).unwrap(),
            reported_at: at.parse().unwrap(),
            start_count: Some(500),
        })
    }

    #[test]
    fn any_order_and_any_repetition_of_events_gives_the_same_row() {
        let events = [
            change(
                OrderStatus::Pending,
                OrderStatus::Active,
                "2026-11-29T10:00:01Z",
            ),
            change(
                OrderStatus::Active,
                OrderStatus::Processing,
                "2026-11-29T10:00:02Z",
            ),
            progress(40, "2026-11-29T10:00:03Z"),
            progress(100, "2026-11-29T10:00:04Z"),
            change(
                OrderStatus::Processing,
                OrderStatus::Completed,
                "2026-11-29T10:00:05Z",
            ),
        ];
        let mut forward = blank();
        for e in &events {
            apply(&mut forward, e);
        }
        let mut shuffled = blank();
        for i in [4, 2, 0, 3, 1, 2, 4, 0] {
            apply(&mut shuffled, &events[i]);
        }
        assert_eq!(forward, shuffled);
        assert_eq!(forward.status, "COMPLETED");
        assert_eq!(forward.delivered_quantity, 100);
        assert_eq!(forward.start_count, Some(500));
        assert_eq!(forward.user_id, Some(9));
        assert_eq!(forward.last_update, "2026-11-29T10:00:05Z");
    }
}
