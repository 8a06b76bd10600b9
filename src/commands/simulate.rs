//! `smmctl simulate`: realistic traffic through the whole system, then the
//! orders followed in the store until they settle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use smm_workers::contract::catalog;
use smm_workers::contract::events::{
    BinomCampaignCreation, Envelope, Event, OrderCreatedEvent, OrderStatus,
    OrderStatusChangedEvent, WeightedOffer,
};
use smm_workers::contract::headers;
use smm_workers::store::panel::{self, NewOrder};
use smm_workers::store::{Store, redact_url};

use crate::Context;
use crate::cli::SimulateArgs;
use crate::exit::{ConnectionError, ExitStatus, UsageError};
use crate::kafka::client_config;

/// What an order is given to go wrong, and where it should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// YouTube fails the first check: one retry, then completion.
    FlakyVideo,
    /// YouTube does not know the video: the orders DLT, and the order is
    /// cancelled with its money back on the balance.
    UnknownVideo,
    /// The webhook's signature is wrong: the webhooks DLQ; never paid.
    ForgedSignature,
    /// An extra state event the lifecycle forbids: the state DLT; the
    /// order itself completes.
    IllegalTransition,
}

impl Fault {
    const ROTATION: [Fault; 4] = [
        Fault::FlakyVideo,
        Fault::UnknownVideo,
        Fault::ForgedSignature,
        Fault::IllegalTransition,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::None => "-",
            Fault::FlakyVideo => "flaky video (retried)",
            Fault::UnknownVideo => "unknown video → smm.order.processing-dlt, refunded",
            Fault::ForgedSignature => "forged webhook → smm.payment.webhooks.dlq",
            Fault::IllegalTransition => "illegal event → smm.order.state.updates-dlt",
        }
    }

    fn expected(self) -> OrderStatus {
        match self {
            Fault::UnknownVideo => OrderStatus::Cancelled,
            Fault::ForgedSignature => OrderStatus::Pending,
            _ => OrderStatus::Completed,
        }
    }

    /// Whether the order's state alone shows it got where it should.
    fn settled(self, order: &panel::Fulfilment) -> bool {
        match self {
            Fault::UnknownVideo => order.status == OrderStatus::Cancelled && !order.verified,
            Fault::ForgedSignature => order.status == OrderStatus::Pending && order.verified,
            _ => order.status == OrderStatus::Completed,
        }
    }

    fn video_id(self, n: i64) -> String {
        let digits = n.rem_euclid(100_000_000);
        match self {
            Fault::FlakyVideo => format!("flaky{:06}", digits % 1_000_000),
            Fault::UnknownVideo => format!("x{digits:010}"),
            _ => format!("sim{digits:08}"),
        }
    }
}

struct Planned {
    order_id: i64,
    user_id: i64,
    fault: Fault,
    correlation_id: String,
}

const CHARGE_MINOR: i64 = 500;
const QUANTITY: i64 = 1000;

pub async fn run(args: SimulateArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    crate::commands::flow::ensure_writable(ctx, "smmctl simulate")?;
    let settings = &ctx.settings;
    let api_key = settings.cryptomus.api_key.as_ref().ok_or_else(|| {
        UsageError::new(
            "simulate signs its webhooks with the Cryptomus API key the webhooks worker checks: \
             set SMM_CRYPTOMUS_API_KEY, or api_key in the profile's [cryptomus] table",
        )
    })?;
    let gateway = args.gateway.trim_end_matches('/').to_owned();
    if !(gateway.starts_with("http://") || gateway.starts_with("https://")) {
        return Err(UsageError::new(format!(
            "--gateway `{gateway}` must be an http:// or https:// URL, like http://127.0.0.1:8080"
        ))
        .into());
    }
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| settings.database_url.value.clone());
    let store = Store::open_within(&database_url, settings.timeout.value)
        .await
        .map_err(|e| {
            ConnectionError::new(format!(
                "{e}. Check --database-url / SMM_DATABASE_URL ({})",
                redact_url(&database_url)
            ))
        })?;
    let producer: FutureProducer = {
        let mut config = smm_workers::runtime::producer_config(&client_config(settings));
        config.set("enable.idempotence", "true").set("acks", "all");
        config
            .create()
            .map_err(|e| UsageError::new(format!("cannot create the Kafka producer: {e}")))?
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;

    let (plan, faults_given) = plan_orders(&args);

    let started = Instant::now();
    for order in &plan {
        send_order(&store, &producer, &http, &gateway, &api_key.value, order).await?;
    }
    ctx.printer.note(&format!(
        "sent {} order(s) ({} with a fault) through {gateway}; correlation ids sim-<order id>",
        plan.len(),
        faults_given
    ));
    if args.no_wait {
        return Ok(ExitStatus::Success);
    }

    let last = follow(&store, &plan, started + args.wait).await?;
    let elapsed = started.elapsed();
    let all_settled = report(ctx, &plan, &last, elapsed)?;
    Ok(if all_settled {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// One order per `--orders`, every `1 / --fail-rate`-th given the next
/// fault of the rotation; also returns how many got a fault.
fn plan_orders(args: &SimulateArgs) -> (Vec<Planned>, usize) {
    // Ids from the clock, so runs never collide with each other or with
    // the panel's own orders (which count up from 1).
    let base = args
        .first_order_id
        .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond() * 100);
    let every = if args.fail_rate > 0.0 {
        (1.0 / args.fail_rate).round().max(1.0) as u32
    } else {
        0
    };
    let mut plan = Vec::new();
    let mut faults_given = 0usize;
    for i in 0..args.orders {
        let faulty = every > 0 && (i + 1) % every == 0;
        let fault = if faulty {
            let f = Fault::ROTATION[faults_given % Fault::ROTATION.len()];
            faults_given += 1;
            f
        } else {
            Fault::None
        };
        let order_id = base + i64::from(i);
        plan.push(Planned {
            order_id,
            user_id: order_id,
            fault,
            correlation_id: format!("sim-{order_id}"),
        });
    }
    (plan, faults_given)
}

/// Reads the orders back from the store until every one has settled or
/// the deadline has passed; returns the last state seen of each.
async fn follow(
    store: &Store,
    plan: &[Planned],
    deadline: Instant,
) -> anyhow::Result<BTreeMap<i64, panel::Fulfilment>> {
    let mut last: BTreeMap<i64, panel::Fulfilment> = BTreeMap::new();
    loop {
        let mut conn = store.pool().acquire().await?;
        for order in plan {
            if let Some(found) = panel::fulfilment(&mut conn, order.order_id).await? {
                last.insert(order.order_id, found);
            }
        }
        drop(conn);
        let settled = plan
            .iter()
            .filter(|o| last.get(&o.order_id).is_some_and(|f| o.fault.settled(f)))
            .count();
        if settled == plan.len() || Instant::now() >= deadline {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints where each order got to; returns whether all settled.
fn report(
    ctx: &Context,
    plan: &[Planned],
    last: &BTreeMap<i64, panel::Fulfilment>,
    elapsed: Duration,
) -> anyhow::Result<bool> {
    let mut all_settled = true;
    let rows: Vec<serde_json::Value> = plan
        .iter()
        .map(|o| {
            let found = last.get(&o.order_id);
            let settled = found.is_some_and(|f| o.fault.settled(f));
            all_settled &= settled;
            json!({
                "order_id": o.order_id,
                "fault": o.fault.name(),
                "expected": o.fault.expected().as_str(),
                "status": found.map(|f| f.status.as_str()),
                "settled": settled,
                "start_count": found.and_then(|f| f.start_count),
                "delivered": found.map(|f| f.delivered_quantity),
                "campaign_id": found.and_then(|f| f.campaign_id),
                "correlation_id": o.correlation_id,
            })
        })
        .collect();
    if ctx.printer.is_json() {
        ctx.printer.json(&json!({
            "orders": rows,
            "elapsed_ms": elapsed.as_millis() as u64,
            "settled": all_settled,
        }))?;
    } else {
        let mut table = ctx.printer.table([
            "ORDER",
            "FAULT",
            "EXPECTED",
            "STATUS",
            "START",
            "DELIVERED",
            "CAMPAIGN",
        ]);
        for row in &rows {
            let text = |key: &str| match &row[key] {
                serde_json::Value::Null => "-".to_owned(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            table.add_row(vec![
                text("order_id"),
                text("fault"),
                text("expected"),
                text("status"),
                text("start_count"),
                text("delivered"),
                text("campaign_id"),
            ]);
        }
        ctx.printer.print_table(&table);
        ctx.printer.note(&if all_settled {
            format!(
                "every order reached its expected state in {:.1}s",
                elapsed.as_secs_f64()
            )
        } else {
            format!(
                "some orders had not reached their expected state after {:.0}s: are the workers \
                 running (smmctl run all) against this store and broker? smmctl health and \
                 smmctl dlq list show where records stopped",
                elapsed.as_secs_f64()
            )
        });
    }
    Ok(all_settled)
}

async fn send_order(
    store: &Store,
    producer: &FutureProducer,
    http: &reqwest::Client,
    gateway: &str,
    api_key: &str,
    order: &Planned,
) -> anyhow::Result<()> {
    let video_id = order.fault.video_id(order.order_id);
    let video_url = format!("https://www.youtube.com/watch?v={video_id}");
    let payment_id = uuid::Uuid::new_v4().to_string();
    let mut conn = store.pool().acquire().await?;
    panel::insert_user(&mut conn, order.user_id, "USD").await?;
    panel::set_user_email(
        &mut conn,
        order.user_id,
        &format!("customer{}@example.test", order.user_id),
    )
    .await?;
    panel::insert_order(
        &mut conn,
        &NewOrder {
            id: order.order_id,
            user_id: order.user_id,
            quantity: QUANTITY,
            charge_minor: CHARGE_MINOR,
            currency: "USD",
            payment_id: Some(&payment_id),
            video_url: Some(&video_url),
            youtube_video_id: Some(&video_id),
        },
    )
    .await?;
    drop(conn);

    let created = OrderCreatedEvent {
        order_id: order.order_id,
        user_id: order.user_id,
        service_id: 1,
        video_url: video_url.clone(),
        youtube_video_id: video_id.clone(),
        quantity: QUANTITY,
        charge_minor: CHARGE_MINOR,
        currency: "USD".into(),
        payment_id: Some(payment_id.clone()),
    };
    publish(producer, catalog::ORDER_PROCESSING, order, created.into()).await?;
    let campaign = BinomCampaignCreation {
        order_id: order.order_id,
        campaign_name: format!("sim-order-{}", order.order_id),
        traffic_source_id: 1,
        offers: vec![
            WeightedOffer {
                offer_id: 11,
                weight: 70,
            },
            WeightedOffer {
                offer_id: 12,
                weight: 30,
            },
        ],
    };
    publish(
        producer,
        catalog::BINOM_CAMPAIGN_CREATION,
        order,
        campaign.into(),
    )
    .await?;
    if order.fault == Fault::IllegalTransition {
        // Nothing leaves COMPLETED: every consumer must refuse this.
        let illegal = OrderStatusChangedEvent {
            order_id: order.order_id,
            user_id: Some(order.user_id),
            from: OrderStatus::Completed,
            to: OrderStatus::Active,
            reason: Some("simulated illegal transition".into()),
            changed_at: jiff::Timestamp::now(),
        };
        publish(
            producer,
            catalog::ORDER_STATE_UPDATES,
            order,
            illegal.into(),
        )
        .await?;
    }

    let signing_key = if order.fault == Fault::ForgedSignature {
        "not-the-merchant-key"
    } else {
        api_key
    };
    let amount = format!("{}.{:02}", CHARGE_MINOR / 100, CHARGE_MINOR % 100);
    let body = smm_workers::providers::cryptomus::signed_webhook(
        signing_key,
        &payment_id,
        &amount,
        "USD",
        order.user_id,
        &[order.order_id],
    );
    let url = format!("{gateway}/webhooks/cryptomus");
    let answer = http
        .post(&url)
        .header(headers::CORRELATION_ID, &order.correlation_id)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ConnectionError::new(format!(
                "cannot reach the webhook gateway at {url}: {e}. Is `smmctl run all` (or run webhook-gateway) running? Give its address with --gateway"
            ))
        })?;
    if !answer.status().is_success() {
        anyhow::bail!(
            "the webhook gateway answered {} for order {}'s payment: {}",
            answer.status(),
            order.order_id,
            answer.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn publish(
    producer: &FutureProducer,
    topic: &str,
    order: &Planned,
    event: Event,
) -> anyhow::Result<()> {
    let envelope = Envelope::new(event, order.correlation_id.clone());
    let payload = envelope.to_json();
    let key = order.order_id.to_string();
    let record =
        FutureRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: headers::CORRELATION_ID,
                value: Some(order.correlation_id.as_bytes()),
            }));
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("cannot publish to {topic}: {e}"))?;
    Ok(())
}
