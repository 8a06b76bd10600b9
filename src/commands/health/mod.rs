//! `smmctl health`: the panel's health table and its checks, computed live.

mod categories;
mod checks;
mod metrics;
mod model;
mod render;

use std::time::Instant;

use smm_workers::contract::catalog::{self, GROUPS, HEALTH_TOPIC, TOPICS};

use self::categories::{categories, dead_letters};
use self::checks::{
    assignment_check, dead_letter_check, group_state_check, lag_check, missing_topics_check,
    overall_health, producer_check,
};
use self::metrics::{failed_run_metrics, metrics, write_textfile};
use self::model::{Check, CheckResult, Health};
use self::render::render;
use crate::Context;
use crate::cli::HealthArgs;
use crate::exit::ExitStatus;
use crate::kafka::Kafka;
use crate::kafka::groups;
use crate::kafka::probe::produce_and_read_back;
use crate::lag::{Request, collect};

pub async fn run(args: HealthArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let mut reached = false;
    let result = check(&args, ctx, &mut reached).await;
    if let (Err(_), Some(path)) = (&result, &args.prometheus) {
        // A failed run must not leave the last good run's figures behind
        // for the alerting to read.
        write_textfile(path, &failed_run_metrics(reached))?;
    }
    result
}

async fn check(args: &HealthArgs, ctx: &Context, reached: &mut bool) -> anyhow::Result<ExitStatus> {
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let started = Instant::now();
    let metadata = kafka.metadata()?;
    *reached = true;
    let connect_latency = started.elapsed();

    let present: Vec<(String, i32)> = TOPICS
        .iter()
        .filter_map(|t| metadata.topics.get(t.name))
        .filter(|t| t.error.is_none())
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.clone(), p)))
        .collect();
    let watermarks = kafka.watermarks(&present)?;
    let request = Request {
        groups: GROUPS.iter().map(|g| g.name.to_string()).collect(),
        topics: Vec::new(),
        include_catalog_topics: true,
        time_lag: true,
        listings: None,
        describe_all: false,
    };
    let groups = collect(kafka, &request, &ctx.settings.thresholds).await?;
    // A read-only profile writes nothing, not even the probe record.
    let producer = if args.no_produce || ctx.settings.read_only {
        None
    } else {
        // The panel's "producer readiness" check. The health topic's
        // leading underscore keeps it out of `topics orphans`.
        Some(produce_and_read_back(kafka, HEALTH_TOPIC).await)
    };

    // A dead letter waits until the processing group has passed it: after
    // `dlq replay` or `dlq drain`, the records the topic still retains are
    // handled, and no longer degrade anything.
    let positions = groups::committed_offsets(
        kafka.admin(),
        catalog::DLQ_PROCESSING_GROUP,
        kafka.timeout(),
    )
    .await
    .ok();
    let dead_letters = dead_letters(&metadata, &watermarks, positions.as_ref());
    let categories = categories(
        &metadata,
        &dead_letters,
        &groups,
        ctx.settings.thresholds.max_dead_letters,
    );
    let mut checks = vec![Check {
        check: "broker connection",
        result: CheckResult::Ok,
        detail: format!(
            "{} broker(s) answered in {} ms",
            metadata.brokers.len(),
            connect_latency.as_millis()
        ),
    }];
    checks.push(group_state_check(&groups));
    checks.push(assignment_check(&groups, &metadata));
    checks.push(lag_check(&groups));
    checks.push(producer_check(producer.as_ref(), ctx.settings.read_only));
    checks.push(missing_topics_check(&metadata));
    checks.push(dead_letter_check(
        &dead_letters,
        ctx.settings.thresholds.max_dead_letters,
    ));

    let overall = overall_health(&categories, &checks);

    if let Some(path) = &args.prometheus {
        let text = metrics(
            overall,
            &categories,
            &checks,
            &dead_letters,
            &groups,
            producer.as_ref(),
        );
        write_textfile(path, &text)?;
    }
    render(overall, &categories, &checks, &dead_letters, &groups, ctx)?;
    Ok(if overall == Health::Healthy {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
