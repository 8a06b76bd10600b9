//! The panel's tables as the workers use them: balances, orders, payments,
//! the ledger and refunds. Each write takes the [`Unit`] of the event that
//! causes it, so it commits with that event's dedup claim.

use jiff::Timestamp;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::{StoreError, Unit};
use crate::contract::events::OrderStatus;

/// What a ledger line is for. Its `reference` (payment id, order id, refund
/// id) is unique per kind, so no line can be written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    Payment,
    OrderCharge,
    Refund,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Payment => "payment",
            LedgerKind::OrderCharge => "order_charge",
            LedgerKind::Refund => "refund",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub balance_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub charge_minor: i64,
    pub refunded_minor: i64,
    pub currency: String,
    pub payment_id: Option<String>,
}

/// A new order as the panel's order service creates it.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub id: i64,
    pub user_id: i64,
    pub quantity: i64,
    pub charge_minor: i64,
    pub currency: &'a str,
    pub payment_id: Option<&'a str>,
    pub video_url: Option<&'a str>,
    pub youtube_video_id: Option<&'a str>,
}

fn now() -> String {
    Timestamp::now().to_string()
}

fn parse_status(text: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            StoreError::Query(sqlx::Error::Decode(
                format!("unknown order status {text:?} in the store").into(),
            ))
        })
}

pub async fn insert_user(
    conn: &mut AnyConnection,
    id: i64,
    currency: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, balance_minor, currency, created_at) VALUES ($1, 0, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(currency)
    .bind(now())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_order(
    conn: &mut AnyConnection,
    order: &NewOrder<'_>,
) -> Result<(), StoreError> {
    let at = now();
    sqlx::query(
        "INSERT INTO orders (id, user_id, quantity, charge_minor, currency, status, payment_id, \
         video_url, youtube_video_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(order.id)
    .bind(order.user_id)
    .bind(order.quantity)
    .bind(order.charge_minor)
    .bind(order.currency)
    .bind(OrderStatus::Pending.as_str())
    .bind(order.payment_id)
    .bind(order.video_url)
    .bind(order.youtube_video_id)
    .bind(&at)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn user(conn: &mut AnyConnection, id: i64) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT id, balance_minor, currency FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(User {
            id: row.try_get("id")?,
            balance_minor: row.try_get("balance_minor")?,
            currency: row.try_get("currency")?,
        })
    })
    .transpose()
}

pub async fn order(conn: &mut AnyConnection, id: i64) -> Result<Option<Order>, StoreError> {
    let row = sqlx::query(
        "SELECT id, user_id, status, charge_minor, refunded_minor, currency, payment_id \
         FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        let status: String = row.try_get("status")?;
        Ok(Order {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            status: parse_status(&status)?,
            charge_minor: row.try_get("charge_minor")?,
            refunded_minor: row.try_get("refunded_minor")?,
            currency: row.try_get("currency")?,
            payment_id: row.try_get("payment_id")?,
        })
    })
    .transpose()
}

/// Pending orders a payment pays for: those it names, and those created
/// with its payment id.
pub async fn orders_awaiting_payment(
    conn: &mut AnyConnection,
    payment_id: &str,
    order_ids: &[i64],
) -> Result<Vec<Fulfilment>, StoreError> {
    let mut found = Vec::new();
    let rows =
        sqlx::query("SELECT id FROM orders WHERE payment_id = $1 AND status = $2 ORDER BY id")
            .bind(payment_id)
            .bind(OrderStatus::Pending.as_str())
            .fetch_all(&mut *conn)
            .await?;
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect::<Result<_, _>>()?;
    for id in order_ids {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    for id in ids {
        if let Some(order) = fulfilment(conn, id).await?
            && order.status == OrderStatus::Pending
        {
            found.push(order);
        }
    }
    Ok(found)
}

/// Adds a signed amount to a balance with its ledger line. Fails with a
/// unique violation if the line exists, which cannot happen behind the
/// dedup claim and would mean a bug worth stopping for.
pub async fn post(
    unit: &mut Unit,
    user_id: i64,
    amount_minor: i64,
    currency: &str,
    kind: LedgerKind,
    reference: &str,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE users SET balance_minor = balance_minor + $1 WHERE id = $2")
        .bind(amount_minor)
        .bind(user_id)
        .execute(unit.conn())
        .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    ledger_line(unit, user_id, amount_minor, currency, kind, reference).await?;
    Ok(true)
}

/// Takes `amount_minor` from a balance, with its ledger line, only if the
/// balance covers it. The check and the debit are one statement, so two
/// charges racing for the same money cannot both pass. `false` when the
/// balance is short (or the user unknown), and nothing changed.
pub async fn charge(
    unit: &mut Unit,
    user_id: i64,
    amount_minor: i64,
    currency: &str,
    kind: LedgerKind,
    reference: &str,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE users SET balance_minor = balance_minor - $1 WHERE id = $2 AND balance_minor >= $1",
    )
    .bind(amount_minor)
    .bind(user_id)
    .execute(unit.conn())
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    ledger_line(unit, user_id, -amount_minor, currency, kind, reference).await?;
    Ok(true)
}

async fn ledger_line(
    unit: &mut Unit,
    user_id: i64,
    amount_minor: i64,
    currency: &str,
    kind: LedgerKind,
    reference: &str,
) -> Result<(), StoreError> {
    let event_id = unit.event_id().to_string();
    sqlx::query(
        "INSERT INTO ledger (id, user_id, amount_minor, currency, kind, reference, event_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(user_id)
    .bind(amount_minor)
    .bind(currency)
    .bind(kind.as_str())
    .bind(reference)
    .bind(event_id)
    .bind(now())
    .execute(unit.conn())
    .await?;
    Ok(())
}

/// Records a confirmed payment. `false` when it was recorded before, by
/// another event id carrying the same payment.
#[allow(clippy::too_many_arguments)]
pub async fn record_payment(
    unit: &mut Unit,
    payment_id: &str,
    provider: &str,
    user_id: i64,
    amount_minor: i64,
    currency: &str,
    status: &str,
) -> Result<bool, StoreError> {
    let event_id = unit.event_id().to_string();
    let inserted = sqlx::query(
        "INSERT INTO payments (payment_id, provider, user_id, amount_minor, currency, status, confirmed_at, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(payment_id)
    .bind(provider)
    .bind(user_id)
    .bind(amount_minor)
    .bind(currency)
    .bind(status)
    .bind(now())
    .bind(event_id)
    .execute(unit.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Moves an order from `from` to `to`; `false` when it was no longer in
/// `from`, which leaves it untouched.
pub async fn transition(
    unit: &mut Unit,
    order_id: i64,
    from: OrderStatus,
    to: OrderStatus,
) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(to.as_str())
            .bind(now())
            .bind(order_id)
            .bind(from.as_str())
            .execute(unit.conn())
            .await?;
    Ok(updated.rows_affected() == 1)
}

/// Adds `amount_minor` to what was refunded of an order, unless that would
/// refund more than was charged. `false` when refused.
pub async fn reserve_refund(
    unit: &mut Unit,
    order_id: i64,
    amount_minor: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE orders SET refunded_minor = refunded_minor + $1, updated_at = $2 \
         WHERE id = $3 AND refunded_minor + $1 <= charge_minor",
    )
    .bind(amount_minor)
    .bind(now())
    .bind(order_id)
    .execute(unit.conn())
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A refund's row: to the balance (`kind` "balance") or through the
/// payment provider ("provider").
#[derive(Debug, Clone)]
pub struct RefundRow<'a> {
    pub refund_id: &'a str,
    pub kind: &'a str,
    pub order_id: Option<i64>,
    pub payment_id: Option<&'a str>,
    pub user_id: i64,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub provider_reference: Option<&'a str>,
}

pub async fn record_refund(unit: &mut Unit, refund: &RefundRow<'_>) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO refunds (refund_id, kind, order_id, payment_id, user_id, amount_minor, currency, \
         status, reason, provider_reference, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (refund_id) DO NOTHING",
    )
    .bind(refund.refund_id)
    .bind(refund.kind)
    .bind(refund.order_id)
    .bind(refund.payment_id)
    .bind(refund.user_id)
    .bind(refund.amount_minor)
    .bind(refund.currency)
    .bind(refund.status)
    .bind(refund.reason)
    .bind(refund.provider_reference)
    .bind(now())
    .execute(unit.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The sum of a user's ledger lines, which must always equal their balance.
pub async fn ledger_sum(conn: &mut AnyConnection, user_id: i64) -> Result<i64, StoreError> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount_minor) AS BIGINT) FROM ledger WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(sum.unwrap_or(0))
}

/// An order with what fulfilment needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fulfilment {
    pub id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub quantity: i64,
    pub charge_minor: i64,
    pub refunded_minor: i64,
    pub currency: String,
    pub payment_id: Option<String>,
    pub video_url: Option<String>,
    pub youtube_video_id: Option<String>,
    pub start_count: Option<i64>,
    pub verified: bool,
    pub delivered_quantity: i64,
    pub progress_percent: i64,
    pub delivery_id: Option<String>,
    pub campaign_id: Option<i64>,
    pub offer_id: Option<i64>,
    pub correlation_id: Option<String>,
}

const FULFILMENT_COLUMNS: &str = "id, user_id, status, quantity, charge_minor, refunded_minor, currency, payment_id, \
     video_url, youtube_video_id, start_count, verified_at, delivered_quantity, progress_percent, \
     delivery_id, campaign_id, offer_id, correlation_id";

fn fulfilment_of(row: &sqlx::any::AnyRow) -> Result<Fulfilment, StoreError> {
    let status: String = row.try_get("status")?;
    let verified_at: Option<String> = row.try_get("verified_at")?;
    Ok(Fulfilment {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: parse_status(&status)?,
        quantity: row.try_get("quantity")?,
        charge_minor: row.try_get("charge_minor")?,
        refunded_minor: row.try_get("refunded_minor")?,
        currency: row.try_get("currency")?,
        payment_id: row.try_get("payment_id")?,
        video_url: row.try_get("video_url")?,
        youtube_video_id: row.try_get("youtube_video_id")?,
        start_count: row.try_get("start_count")?,
        verified: verified_at.is_some(),
        delivered_quantity: row.try_get("delivered_quantity")?,
        progress_percent: row.try_get("progress_percent")?,
        delivery_id: row.try_get("delivery_id")?,
        campaign_id: row.try_get("campaign_id")?,
        offer_id: row.try_get("offer_id")?,
        correlation_id: row.try_get("correlation_id")?,
    })
}

pub async fn fulfilment(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Fulfilment>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {FULFILMENT_COLUMNS} FROM orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(fulfilment_of).transpose()
}

/// Orders whose delivery is under way and not yet complete, for the
/// progress poller: a page of them after `after_id`, by id, so every
/// delivery gets its turn however many there are.
pub async fn deliveries_in_progress(
    conn: &mut AnyConnection,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Fulfilment>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {FULFILMENT_COLUMNS} FROM orders WHERE delivery_id IS NOT NULL \
         AND status IN ('ACTIVE', 'PROCESSING') AND progress_percent < 100 AND id > $1 \
         ORDER BY id LIMIT $2"
    ))
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(fulfilment_of).collect()
}

pub async fn user_email(conn: &mut AnyConnection, id: i64) -> Result<Option<String>, StoreError> {
    let email: Option<Option<String>> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(email.flatten().filter(|e| !e.trim().is_empty()))
}

pub async fn set_user_email(
    conn: &mut AnyConnection,
    id: i64,
    email: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
        .bind(email)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a payment has been recorded.
pub async fn payment_recorded(
    conn: &mut AnyConnection,
    payment_id: &str,
) -> Result<bool, StoreError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT payment_id FROM payments WHERE payment_id = $1")
            .bind(payment_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Records the YouTube check. The start count is kept from the first check:
/// delivery is measured from the count when the order started.
pub async fn record_verification(
    unit: &mut Unit,
    order_id: i64,
    view_count: Option<i64>,
    title: &str,
) -> Result<bool, StoreError> {
    let at = now();
    let updated = sqlx::query(
        "UPDATE orders SET start_count = COALESCE(start_count, $1), video_title = $2, \
         verified_at = COALESCE(verified_at, $3), last_view_count = $1, last_view_count_at = $3, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(view_count)
    .bind(title)
    .bind(&at)
    .bind(order_id)
    .execute(unit.conn())
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn record_view_count(
    unit: &mut Unit,
    order_id: i64,
    view_count: Option<i64>,
) -> Result<bool, StoreError> {
    let at = now();
    let updated = sqlx::query(
        "UPDATE orders SET last_view_count = $1, last_view_count_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(view_count)
    .bind(&at)
    .bind(order_id)
    .execute(unit.conn())
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn set_delivery(
    unit: &mut Unit,
    order_id: i64,
    delivery_id: &str,
) -> Result<(), StoreError> {
    let correlation_id = unit.correlation_id().to_owned();
    sqlx::query(
        "UPDATE orders SET delivery_id = $1, correlation_id = COALESCE(correlation_id, $2), \
         updated_at = $3 WHERE id = $4",
    )
    .bind(delivery_id)
    .bind(correlation_id)
    .bind(now())
    .bind(order_id)
    .execute(unit.conn())
    .await?;
    Ok(())
}

pub async fn set_correlation(unit: &mut Unit, order_id: i64) -> Result<(), StoreError> {
    let correlation_id = unit.correlation_id().to_owned();
    sqlx::query("UPDATE orders SET correlation_id = COALESCE(correlation_id, $1) WHERE id = $2")
        .bind(correlation_id)
        .bind(order_id)
        .execute(unit.conn())
        .await?;
    Ok(())
}

/// Applies delivery progress, never backwards: a report older or smaller
/// than what is recorded changes nothing. `true` when it moved.
pub async fn record_progress(
    unit: &mut Unit,
    order_id: i64,
    delivered: i64,
    percent: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE orders SET \
         delivered_quantity = CASE WHEN delivered_quantity < $1 THEN $1 ELSE delivered_quantity END, \
         progress_percent = CASE WHEN progress_percent < $2 THEN $2 ELSE progress_percent END, \
         updated_at = $3 \
         WHERE id = $4 AND (delivered_quantity < $1 OR progress_percent < $2)",
    )
    .bind(delivered)
    .bind(percent)
    .bind(now())
    .bind(order_id)
    .execute(unit.conn())
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn set_campaign(
    unit: &mut Unit,
    order_id: i64,
    campaign_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET campaign_id = $1, updated_at = $2 WHERE id = $3")
        .bind(campaign_id)
        .bind(now())
        .bind(order_id)
        .execute(unit.conn())
        .await?;
    Ok(())
}

pub async fn set_offer(
    unit: &mut Unit,
    order_id: i64,
    offer_id: i64,
    campaign_id: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE orders SET offer_id = $1, campaign_id = COALESCE($2, campaign_id), updated_at = $3 \
         WHERE id = $4",
    )
    .bind(offer_id)
    .bind(campaign_id)
    .bind(now())
    .bind(order_id)
    .execute(unit.conn())
    .await?;
    Ok(())
}
