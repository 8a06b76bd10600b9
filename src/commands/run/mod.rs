//! `smmctl run <worker>…`: the panel's workers on the shared runtime, with
//! `/metrics` and `/health`, until SIGTERM or SIGINT.

mod legacy;
mod providers;
mod rebuild;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use smm_workers::contract::catalog::RetryPolicy;
use smm_workers::providers::cryptomus::RefundApi;
use smm_workers::runtime::metrics::Metrics;
use smm_workers::runtime::{self, Handler, Shared, Worker};
use smm_workers::servers::gateway;
use smm_workers::servers::websocket::{self, Hub, StatusFanOut};
use smm_workers::store::{Store, StoreError, redact_url};
use smm_workers::workers::binom::Binom;
use smm_workers::workers::cqrs::ReadModel;
use smm_workers::workers::notifications::Notifications;
use smm_workers::workers::offers::Offers;
use smm_workers::workers::order_state::OrderState;
use smm_workers::workers::orders::Orders;
use smm_workers::workers::payment_refunds::PaymentRefunds;
use smm_workers::workers::payments::Payments;
use smm_workers::workers::progress::Progress;
use smm_workers::workers::refunds::Refunds;
use smm_workers::workers::video::{Video, poll_progress};
use smm_workers::workers::webhooks::Webhooks;
use smm_workers::workers::youtube::YouTube;
use smm_workers::workers::{WORKERS, WorkerInfo, worker_named};
use tokio::task::JoinSet;

use crate::Context;
use crate::cli::{RunArgs, WorkerName};
use crate::exit::{ConnectionError, ExitStatus, UsageError};
use crate::kafka::{Kafka, client_config, humanize};

pub async fn run(args: RunArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    if args.list {
        return list(ctx);
    }
    crate::commands::flow::ensure_writable(ctx, "smmctl run (the workers produce and commit)")?;
    let selected = expand(&args.workers);
    let consumers: Vec<&'static WorkerInfo> = selected
        .iter()
        .filter_map(|name| worker_named(name))
        .collect();
    let with_gateway = selected.contains(&"webhook-gateway");
    let settings = &ctx.settings;

    // Everything an operator can get wrong is checked before anything
    // starts, so a bad flag fails fast with exit 2 and touches nothing.
    let metrics_addr = parse_addr(
        "metrics address (--metrics-addr / SMM_METRICS_ADDR)",
        args.metrics_addr
            .as_deref()
            .unwrap_or(&settings.metrics_addr.value),
    )?;
    let gateway_addr = if with_gateway {
        Some(parse_addr(
            "gateway address (--gateway-addr / SMM_GATEWAY_ADDR)",
            &args.gateway_addr,
        )?)
    } else {
        None
    };
    let needs_key = selected
        .iter()
        .any(|n| matches!(*n, "webhooks" | "payment-refunds"));
    let api_key = match (&settings.cryptomus.api_key, needs_key) {
        (Some(key), _) => Some(key.value.clone()),
        (None, false) => None,
        (None, true) => {
            return Err(UsageError::new(
                "the webhooks and payment-refunds workers need the Cryptomus API key: set \
                 SMM_CRYPTOMUS_API_KEY, or api_key in the profile's [cryptomus] table \
                 (a string, { file = \"…\" } or { env = \"…\" })",
            )
            .into());
        }
    };
    let refund_api = if selected.contains(&"payment-refunds") {
        let merchant = settings.cryptomus.merchant.as_ref().ok_or_else(|| {
            UsageError::new(
                "the payment-refunds worker needs the Cryptomus merchant id: set \
                 SMM_CRYPTOMUS_MERCHANT, or merchant in the profile's [cryptomus] table",
            )
        })?;
        let base_url = &settings.cryptomus.base_url.value;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(UsageError::new(format!(
                "the Cryptomus base URL `{base_url}` ({}) must start with http:// or https://",
                settings.cryptomus.base_url.source
            ))
            .into());
        }
        Some(
            RefundApi::new(
                base_url,
                &merchant.value,
                api_key.as_deref().unwrap_or_default(),
                settings.timeout.value.max(Duration::from_secs(10)),
            )
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for Cryptomus: {e}"))?,
        )
    } else {
        None
    };
    if args.rebuild && !selected.contains(&"cqrs") {
        return Err(UsageError::new("--rebuild rebuilds the read model: run it with the cqrs worker (`smmctl run cqrs --rebuild`)").into());
    }
    if args.force && !args.rebuild {
        return Err(UsageError::new("--force only overrides --rebuild's retention check").into());
    }
    if args.migrate_legacy && !selected.contains(&"video") {
        return Err(UsageError::new("--migrate-legacy feeds the video worker: run it with video (`smmctl run video --migrate-legacy`)").into());
    }
    let clients = providers::build(&selected, settings)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| settings.database_url.value.clone());

    if !consumers.is_empty() {
        smm_workers::store::backend_of(&database_url).map_err(|e| store_error(e, &database_url))?;
    }

    let kafka = Kafka::connect(settings)?;
    let metadata = kafka.metadata()?;
    let missing = needed_topics(&consumers, with_gateway)
        .into_iter()
        .filter(|t| !metadata.topics.contains_key(*t))
        .collect::<Vec<_>>();
    if !missing.is_empty() {
        return Err(UsageError::new(format!(
            "the cluster at {} lacks topics these workers read or write: {}. \
             Create them with `smmctl topics apply`.",
            settings.brokers.value,
            missing.join(", ")
        ))
        .into());
    }

    let store = if consumers.is_empty() {
        None
    } else {
        Some(
            Store::open_within(&database_url, settings.timeout.value)
                .await
                .map_err(|e| store_error(e, &database_url))?,
        )
    };

    if args.migrate_legacy {
        let done = legacy::migrate(kafka, "video-processing-group").await?;
        ctx.printer.note(&format!(
            "legacy migration: moved {} record(s) from {} to {}{}",
            done.moved,
            smm_workers::contract::catalog::LEGACY_VIDEO_QUEUE,
            smm_workers::contract::catalog::VIDEO_PROCESSING,
            if done.dead_lettered > 0 {
                format!(
                    "; {} unreadable record(s) went to {}",
                    done.dead_lettered,
                    smm_workers::contract::legacy::LEGACY_DEAD_LETTER
                )
            } else {
                String::new()
            }
        ));
    }
    if args.rebuild
        && let (Some(store), Some(info)) = (&store, worker_named("cqrs"))
    {
        let cleared = rebuild::rebuild(kafka, info, store, args.force).await?;
        ctx.printer.note(&format!(
            "read model cleared ({cleared} row(s)); cqrs-read-model-group moved to the earliest offsets, rebuilding"
        ));
    }

    let client = client_config(settings);
    let producer = runtime::producer(&client).map_err(|e| {
        UsageError::new(format!(
            "cannot create the Kafka producer: {e} (check -X and the profile's [kafka] table)"
        ))
    })?;
    let (stop, shutdown) = runtime::shutdown_on_signals();
    let metrics = Arc::new(Metrics::default());
    let metrics_server = runtime::http::serve(metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .map_err(|e| listen_error("metrics", metrics_addr, &e))?;
    let gateway_server = match gateway_addr {
        Some(addr) => Some(
            gateway::serve(addr, producer.clone(), shutdown.clone())
                .await
                .map_err(|e| listen_error("webhook gateway", addr, &e))?,
        ),
        None => None,
    };

    let shared = Shared {
        client,
        producer,
        store: store.clone(),
        metrics,
        shutdown: shutdown.clone(),
        drain_timeout: args.drain_timeout,
    };
    let mut tasks = JoinSet::new();
    let mut pollers = Vec::new();
    let mut ws_addr = None;
    for info in &consumers {
        let store = store
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the store is open for consumers"))?;
        match info.name {
            "webhooks" => spawn(
                &mut tasks,
                info,
                Webhooks {
                    store,
                    api_key: api_key.clone().unwrap_or_default(),
                },
                &shared,
            ),
            "payments" => spawn(&mut tasks, info, Payments { store }, &shared),
            "orders" => {
                let (youtube, quota) = needs(&clients.youtube)?;
                spawn(
                    &mut tasks,
                    info,
                    Orders {
                        store,
                        youtube,
                        quota,
                    },
                    &shared,
                )
            }
            "youtube" => {
                let (api, quota) = needs(&clients.youtube)?;
                spawn(&mut tasks, info, YouTube { store, api, quota }, &shared)
            }
            "order-state" => spawn(&mut tasks, info, OrderState { store }, &shared),
            "progress" => spawn(&mut tasks, info, Progress { store }, &shared),
            "video" => {
                let (delivery, every) = needs(&clients.delivery)?;
                pollers.push(tokio::spawn(poll_progress(
                    store.clone(),
                    delivery.clone(),
                    shared.producer.clone(),
                    every,
                    shutdown.clone(),
                )));
                spawn(&mut tasks, info, Video { store, delivery }, &shared)
            }
            "binom" => {
                let api = needs(&clients.binom)?;
                spawn(&mut tasks, info, Binom { store, api }, &shared)
            }
            "offers" => spawn(&mut tasks, info, Offers { store }, &shared),
            "cqrs" => spawn(&mut tasks, info, ReadModel { store }, &shared),
            "notifications" => {
                let senders = needs(&clients.senders)?;
                spawn(&mut tasks, info, Notifications { store, senders }, &shared)
            }
            "websocket" => {
                let (addr, secret) = needs(&clients.websocket)?;
                let hub = Arc::new(Hub::new());
                let watched = hub.clone();
                shared.metrics.add_families(move |out| {
                    let stats = watched.stats();
                    for (name, kind, help, value) in [
                        (
                            "smm_websocket_clients",
                            "gauge",
                            "WebSocket clients connected now.",
                            stats.connected as u64,
                        ),
                        (
                            "smm_websocket_subscriptions",
                            "gauge",
                            "Order subscriptions held by connected clients.",
                            stats.subscriptions as u64,
                        ),
                        (
                            "smm_websocket_updates_delivered_total",
                            "counter",
                            "Status updates queued to clients.",
                            stats.delivered,
                        ),
                        (
                            "smm_websocket_slow_clients_dropped_total",
                            "counter",
                            "Clients closed because their queue of updates filled.",
                            stats.dropped_slow,
                        ),
                    ] {
                        out.push_str(&format!(
                            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
                        ));
                    }
                });
                let (bound, server) = websocket::serve(addr, hub.clone(), secret, shutdown.clone())
                    .await
                    .map_err(|e| listen_error("WebSocket", addr, &e))?;
                ws_addr = Some(bound);
                pollers.push(server);
                spawn(&mut tasks, info, StatusFanOut { hub }, &shared)
            }
            "refunds" => spawn(&mut tasks, info, Refunds { store }, &shared),
            "payment-refunds" => {
                let api = refund_api
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("the refund API is configured above"))?;
                spawn(&mut tasks, info, PaymentRefunds { store, api }, &shared)
            }
            other => anyhow::bail!("no handler is wired for worker {other}"),
        }
    }
    ctx.printer.note(&format!(
        "running {} (metrics and health on http://{metrics_addr}{}); SIGTERM or Ctrl-C drains and stops",
        selected.join(", "),
        gateway_addr
            .map(|a| format!(", webhooks on http://{a}/webhooks/cryptomus"))
            .unwrap_or_default()
            + &ws_addr
                .map(|a| format!(", WebSocket clients on ws://{a}/ws"))
                .unwrap_or_default()
    ));

    let mut status = ExitStatus::Success;
    if tasks.is_empty() {
        let mut wait = shutdown.clone();
        let _ = wait.wait_for(|down| *down).await;
    }
    while let Some(joined) = tasks.join_next().await {
        let failed = match joined {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("a worker task ended abnormally: {e}")),
        };
        if let Some(why) = failed {
            ctx.printer.error(&anyhow::anyhow!(why));
            status = ExitStatus::Failure;
            // One worker down means the process is not what was asked
            // for; stop the others cleanly rather than run half a panel.
            let _ = stop.send(true);
        }
    }
    let _ = stop.send(true);
    for poller in pollers {
        let _ = poller.await;
    }
    if let Some(server) = gateway_server {
        let _ = server.await;
    }
    let _ = metrics_server.await;
    Ok(status)
}

/// A client `providers::build` made for the selected workers.
fn needs<T: Clone>(client: &Option<T>) -> anyhow::Result<T> {
    client
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the provider clients are built for every selected worker"))
}

fn spawn<H: Handler>(
    tasks: &mut JoinSet<Result<(), runtime::RuntimeError>>,
    info: &WorkerInfo,
    handler: H,
    shared: &Shared,
) {
    let worker = Worker {
        name: info.name.to_owned(),
        group: info.group.to_owned(),
        routes: info.routes(),
        handler,
    };
    tasks.spawn(runtime::run(worker, shared.clone()));
}

fn expand(names: &[WorkerName]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let mut add = |name: &'static str| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    for name in names {
        match name {
            WorkerName::All => {
                for w in WORKERS {
                    add(w.name);
                }
                add("webhook-gateway");
            }
            WorkerName::Webhooks => add("webhooks"),
            WorkerName::Payments => add("payments"),
            WorkerName::Refunds => add("refunds"),
            WorkerName::PaymentRefunds => add("payment-refunds"),
            WorkerName::Orders => add("orders"),
            WorkerName::OrderState => add("order-state"),
            WorkerName::Progress => add("progress"),
            WorkerName::Websocket => add("websocket"),
            WorkerName::Video => add("video"),
            WorkerName::Youtube => add("youtube"),
            WorkerName::Binom => add("binom"),
            WorkerName::Offers => add("offers"),
            WorkerName::Notifications => add("notifications"),
            WorkerName::Cqrs => add("cqrs"),
            WorkerName::WebhookGateway => add("webhook-gateway"),
        }
    }
    out
}

/// Every topic the selected workers consume or produce to.
fn needed_topics(consumers: &[&WorkerInfo], with_gateway: bool) -> Vec<&'static str> {
    let mut topics = Vec::new();
    let mut add = |t: &'static str| {
        if !topics.contains(&t) {
            topics.push(t);
        }
    };
    for info in consumers {
        for policy in info.policies() {
            add(policy.main_topic);
            for hop in policy.hops {
                if let Some(t) = hop.topic {
                    add(t);
                }
            }
            for t in [policy.exhausted_topic, policy.poison_topic]
                .into_iter()
                .flatten()
            {
                add(t);
            }
        }
        for t in info.emits {
            add(t);
        }
    }
    if with_gateway {
        add(smm_workers::contract::catalog::PAYMENT_WEBHOOKS);
    }
    topics
}

fn parse_addr(what: &str, text: &str) -> Result<SocketAddr, UsageError> {
    text.parse().map_err(|_| {
        UsageError::new(format!(
            "invalid {what} `{text}`: write it as HOST:PORT with an IP address, like 127.0.0.1:9464 or 0.0.0.0:9464"
        ))
    })
}

fn listen_error(what: &str, addr: SocketAddr, e: &std::io::Error) -> anyhow::Error {
    UsageError::new(format!(
        "cannot listen on {addr} for the {what} server: {e}. Is another worker running there? \
         Pick another address with {}",
        match what {
            "metrics" => "--metrics-addr",
            "WebSocket" => "SMM_WS_ADDR",
            _ => "--gateway-addr",
        }
    ))
    .into()
}

fn store_error(e: StoreError, url: &str) -> anyhow::Error {
    match e {
        StoreError::UnsupportedUrl(_) | StoreError::SchemaTooNew { .. } => {
            UsageError::new(e.to_string()).into()
        }
        StoreError::Connect { .. } => ConnectionError::new(format!(
            "{e}. Check --database-url / SMM_DATABASE_URL ({})",
            redact_url(url)
        ))
        .into(),
        other => anyhow::Error::new(other),
    }
}

/// `1s → smm.order.processing-retry-0, 2s → …, then smm.order.processing-dlt`.
fn ladder(policy: &RetryPolicy) -> String {
    let mut steps: Vec<String> = policy
        .hops
        .iter()
        .map(|hop| match hop.topic {
            Some(t) => format!("{} → {t}", humanize(hop.delay)),
            None => format!("{} in place", humanize(hop.delay)),
        })
        .collect();
    let end = match (policy.exhausted_topic, policy.manual_review) {
        (Some(t), true) => format!("then {t} for manual review"),
        (Some(t), false) => format!("then {t}"),
        (None, _) => "then dropped (logged and counted)".into(),
    };
    steps.push(end);
    steps.join(", ")
}

fn list(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let rows: Vec<serde_json::Value> = WORKERS
        .iter()
        .map(|w| {
            let policies = w.policies();
            json!({
                "worker": w.name,
                "replaces": w.replaces,
                "group": w.group,
                "summary": w.summary,
                "topics": policies.iter().map(|p| {
                    json!({
                        "topic": p.main_topic,
                        "max_attempts": p.max_attempts,
                        "retry": p.hops.iter().map(|h| json!({
                            "delay_ms": h.delay.as_millis() as u64,
                            "topic": h.topic,
                        })).collect::<Vec<_>>(),
                        "dead_letter": p.exhausted_topic,
                        "poison": p.poison_topic,
                        "manual_review": p.manual_review,
                    })
                }).collect::<Vec<_>>(),
                "emits": w.emits,
            })
        })
        .chain(std::iter::once(json!({
            "worker": "webhook-gateway",
            "replaces": "WebhookController",
            "group": null,
            "summary": "HTTP intake: POST /webhooks/cryptomus → smm.payment.webhooks",
            "topics": [],
            "emits": [smm_workers::contract::catalog::PAYMENT_WEBHOOKS],
        })))
        .collect();
    if ctx.printer.is_json() {
        ctx.printer.json(&rows)?;
        return Ok(ExitStatus::Success);
    }
    let mut table = ctx
        .printer
        .table(["WORKER", "GROUP", "TOPIC", "RETRIES", "REPLACES"]);
    for w in WORKERS {
        for policy in w.policies() {
            table.add_row(vec![
                w.name.to_string(),
                w.group.to_string(),
                policy.main_topic.to_string(),
                ladder(policy),
                w.replaces.to_string(),
            ]);
        }
    }
    table.add_row(vec![
        "webhook-gateway".into(),
        "-".into(),
        "POST /webhooks/cryptomus".into(),
        format!(
            "-, produces to {}",
            smm_workers::contract::catalog::PAYMENT_WEBHOOKS
        ),
        "WebhookController".into(),
    ]);
    ctx.printer.print_table(&table);
    Ok(ExitStatus::Success)
}
