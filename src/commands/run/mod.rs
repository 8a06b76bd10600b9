//! `smmctl run <worker>…`: the panel's workers on the shared runtime, with
//! `/metrics` and `/health`, until SIGTERM or SIGINT.

mod legacy;
mod plan;
mod providers;
mod rebuild;
mod start;

use serde_json::json;
use smm_workers::contract::catalog::RetryPolicy;
use smm_workers::store::{Store, StoreError, redact_url};
use smm_workers::workers::{WORKERS, WorkerKind};

use self::plan::Plan;
use crate::Context;
use crate::cli::RunArgs;
use crate::exit::{ConnectionError, ExitStatus, UsageError};
use crate::kafka::{Kafka, humanize};

pub async fn run(args: RunArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    if args.list {
        return list(ctx);
    }
    crate::commands::flow::ensure_writable(ctx, "smmctl run (the workers produce and commit)")?;
    let plan = Plan::resolve(&args, &ctx.settings)?;
    let kafka = Kafka::from_settings(&ctx.settings)?;
    refuse_missing_topics(kafka, &plan, ctx)?;
    let store = if plan.consumers.is_empty() {
        None
    } else {
        Some(
            Store::open_within(&plan.database_url, ctx.settings.timeout.value)
                .await
                .map_err(|e| store_error(e, &plan.database_url))?,
        )
    };
    if args.migrate_legacy {
        migrate_legacy(kafka, ctx).await?;
    }
    if args.rebuild
        && let (Some(store), Some(info)) = (&store, WorkerKind::Cqrs.info())
    {
        let cleared = rebuild::rebuild(kafka, info, store, args.force).await?;
        ctx.printer.note(&format!(
            "read model cleared ({cleared} row(s)); cqrs-read-model-group moved to the earliest offsets, rebuilding"
        ));
    }
    let running = start::start(&plan, store, ctx, args.drain_timeout).await?;
    ctx.printer.note(&format!(
        "running {}{} (metrics and health on http://{}{}); SIGTERM or Ctrl-C drains and stops",
        plan.selected
            .iter()
            .map(|kind| kind.name())
            .collect::<Vec<_>>()
            .join(", "),
        plan.instance
            .as_deref()
            .map(|i| format!(" as instance {i} (static group members {i}-<worker>)"))
            .unwrap_or_default(),
        plan.metrics_addr,
        plan.gateway_addr
            .map(|a| format!(", webhooks on http://{a}/webhooks/cryptomus"))
            .unwrap_or_default()
            + &running
                .ws_addr
                .map(|a| format!(", WebSocket clients on ws://{a}/ws"))
                .unwrap_or_default()
    ));
    Ok(running.supervise(ctx).await)
}

/// Fails with exit 2, before anything starts, when a topic the selected
/// workers read or write is not on the cluster.
fn refuse_missing_topics(kafka: &Kafka, plan: &Plan, ctx: &Context) -> anyhow::Result<()> {
    let metadata = kafka.metadata()?;
    let missing = plan
        .needed_topics()
        .into_iter()
        .filter(|t| !metadata.topics.contains_key(*t))
        .collect::<Vec<_>>();
    if missing.is_empty() {
        return Ok(());
    }
    Err(UsageError::new(format!(
        "the cluster at {} lacks topics these workers read or write: {}. \
         Create them with `smmctl topics apply`.",
        ctx.settings.brokers.value,
        missing.join(", ")
    ))
    .into())
}

/// `--migrate-legacy`: moves the old video queue's records onto the video
/// worker's topic before it starts.
async fn migrate_legacy(kafka: &Kafka, ctx: &Context) -> anyhow::Result<()> {
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
    Ok(())
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
    let gateway = WorkerKind::WebhookGateway.name();
    let rows: Vec<serde_json::Value> = WORKERS
        .iter()
        .map(|w| {
            let policies = w.policies();
            json!({
                "worker": w.name(),
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
            "worker": gateway,
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
                w.name().to_string(),
                w.group.to_string(),
                policy.main_topic.to_string(),
                ladder(policy),
                w.replaces.to_string(),
            ]);
        }
    }
    table.add_row(vec![
        gateway.into(),
        "-".into(),
        "POST /webhooks/cryptomus".into(),
        format!(
            "-, produces to {}",
            smm_workers::contract::catalog::PAYMENT_WEBHOOKS
        ),
        "WebhookController".into(),
    ]);
    ctx.printer.print_table(&table);
    let durability: Vec<String> = smm_workers::runtime::PRODUCER_DURABILITY
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    ctx.printer.note(&format!(
        "Every worker produces with {}: a write counts once min.insync.replicas brokers have it, and a retry never writes it twice.",
        durability.join(", ")
    ));
    ctx.printer.note(
        "Every worker joins its group with partition.assignment.strategy=cooperative-sticky: a rebalance moves only the partitions that change hands. \
         With --instance NAME each is a static member NAME-<worker>, and a restart takes its partitions straight back.",
    );
    Ok(ExitStatus::Success)
}
