//! `smmctl health`: the panel's health table and its checks, computed live.
//!
//! Every read after the first metadata request runs at once, each under the
//! command's one deadline (`--timeout` from the start). A broker that does
//! not answer costs exactly the checks that needed it, which then say
//! "unknown" and name the brokers that are down; the others still report.

mod categories;
mod checks;
mod cluster;
mod metrics;
mod model;
mod render;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use smm_workers::contract::catalog::{self, GROUPS, HEALTH_TOPIC, TOPICS};

use self::categories::{categories, dead_letters};
use self::checks::{
    assignment_check, dead_letter_check, group_state_check, lag_check, missing_topics_check,
    overall_health, producer_check, unknown_group_checks,
};
use self::cluster::{ClusterHealth, assess};
use self::metrics::{failed_run_metrics, metrics, write_textfile};
use self::model::{Check, CheckResult, Health, Report};
use self::render::render;
use crate::Context;
use crate::cli::HealthArgs;
use crate::exit::ExitStatus;
use crate::kafka::groups;
use crate::kafka::probe::produce_and_read_back;
use crate::kafka::reach::{answering, bootstrap_addresses};
use crate::kafka::{BrokerInfo, ClusterMetadata, Kafka};
use crate::lag::{Request, collect};

/// Kafka's own topics, whose replication matters as much as the panel's:
/// without `__consumer_offsets` no group commits.
const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// A broker that has not accepted a connection by then is taken as down.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);

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
    let deadline = started + kafka.timeout();
    let metadata = kafka.metadata()?;
    *reached = true;
    let connect_latency = started.elapsed();

    let mut reads = Reads::start(
        kafka,
        &metadata,
        args.no_produce || ctx.settings.read_only,
        deadline,
        ctx,
    );
    let cluster = reads.cluster(&metadata, deadline).await;
    let late = |what: &str, e: anyhow::Error| unknown(what, &e, &cluster);

    let watermarks = by(deadline, reads.watermarks).await.unwrap_or_default();
    let groups = by(deadline, reads.groups).await;
    // A dead letter waits until the processing group has passed it: after
    // `dlq replay` or `dlq drain`, the records the topic still retains are
    // handled, and no longer degrade anything.
    let positions = by(deadline, reads.positions).await.ok();
    let producer = match reads.producer {
        Some(probe) => Some(by(deadline, probe).await),
        None => None,
    };

    let dead_letters = dead_letters(&metadata, &watermarks, positions.as_ref());
    let mut checks = vec![Check {
        check: "broker connection",
        result: CheckResult::Ok,
        detail: format!(
            "the bootstrap list answered in {} ms; {} broker(s) registered",
            connect_latency.as_millis(),
            metadata.brokers.len()
        ),
    }];
    checks.push(cluster.broker_check());
    checks.push(cluster.replication_check());
    checks.push(cluster.balance_check());
    let groups = match groups {
        Ok(groups) => {
            checks.push(group_state_check(&groups));
            checks.push(assignment_check(&groups, &metadata));
            checks.push(lag_check(&groups));
            groups
        }
        Err(e) => {
            checks.extend(unknown_group_checks(&late("consumer groups", e)));
            Vec::new()
        }
    };
    let producer = producer.map(|r| r.map_err(|e| anyhow::anyhow!("{e:#}{}", down_note(&cluster))));
    checks.push(producer_check(producer.as_ref(), ctx.settings.read_only));
    checks.push(missing_topics_check(&metadata));
    checks.push(dead_letter_check(
        &dead_letters,
        ctx.settings.thresholds.max_dead_letters,
    ));
    let categories = categories(
        &metadata,
        &dead_letters,
        &groups,
        &cluster,
        ctx.settings.thresholds.max_dead_letters,
    );
    let overall = overall_health(&categories, &checks).max(cluster.health());
    let report = Report {
        overall,
        categories,
        checks,
        dead_letters,
        groups,
        cluster,
        producer,
    };
    if let Some(path) = &args.prometheus {
        write_textfile(path, &metrics(&report))?;
    }
    render(&report, ctx)?;
    Ok(if overall == Health::Healthy {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// The reads behind the checks, each already running on its own task.
struct Reads {
    answering: tokio::task::JoinHandle<anyhow::Result<BTreeMap<String, bool>>>,
    min_isr: tokio::task::JoinHandle<anyhow::Result<HashMap<String, i32>>>,
    watermarks:
        tokio::task::JoinHandle<anyhow::Result<HashMap<(String, i32), crate::kafka::Watermarks>>>,
    groups: tokio::task::JoinHandle<anyhow::Result<Vec<crate::lag::GroupLag>>>,
    positions: tokio::task::JoinHandle<anyhow::Result<BTreeMap<(String, i32), i64>>>,
    producer: Option<tokio::task::JoinHandle<anyhow::Result<Duration>>>,
    /// The bootstrap list's addresses, probed with the brokers'.
    bootstrap: Vec<String>,
}

impl Reads {
    fn start(
        kafka: &'static Kafka,
        metadata: &ClusterMetadata,
        no_produce: bool,
        deadline: Instant,
        ctx: &Context,
    ) -> Reads {
        // The probe ends in time for the verdict, whatever is left.
        let connect_within = CONNECT_WITHIN.min(deadline.saturating_duration_since(Instant::now()));
        let mut addresses: Vec<String> = metadata.brokers.iter().map(BrokerInfo::address).collect();
        let bootstrap = bootstrap_addresses(kafka.brokers());
        addresses.extend(bootstrap.iter().cloned());
        addresses.sort();
        addresses.dedup();
        let present: Vec<(String, i32)> = TOPICS
            .iter()
            .filter_map(|t| metadata.topics.get(t.name))
            .filter(|t| t.error.is_none())
            .flat_map(|t| t.partitions.iter().map(|&p| (t.name.clone(), p)))
            .collect();
        let described: Vec<String> = TOPICS
            .iter()
            .map(|t| t.name)
            .chain(INTERNAL_TOPICS.iter().copied())
            .filter(|name| metadata.topics.contains_key(*name))
            .map(str::to_string)
            .collect();
        let request = Request {
            groups: GROUPS.iter().map(|g| g.name.to_string()).collect(),
            topics: Vec::new(),
            include_catalog_topics: true,
            time_lag: true,
            listings: None,
            listing_partial: false,
            describe_all: false,
        };
        let thresholds = ctx.settings.thresholds.clone();
        Reads {
            bootstrap,
            answering: tokio::spawn(async move { Ok(answering(&addresses, connect_within).await) }),
            min_isr: tokio::spawn(async move { min_insync_replicas(kafka, &described).await }),
            watermarks: tokio::spawn(async move { kafka.watermarks(&present) }),
            groups: tokio::spawn(async move { collect(kafka, &request, &thresholds).await }),
            positions: tokio::spawn(async move {
                groups::committed_offsets(
                    kafka.offsets_client(),
                    catalog::DLQ_PROCESSING_GROUP,
                    kafka.timeout(),
                )
                .await
            }),
            // A read-only profile writes nothing, not even the probe record.
            // The health topic's leading underscore keeps it out of
            // `topics orphans`.
            producer: (!no_produce).then(|| {
                tokio::spawn(async move { produce_and_read_back(kafka, HEALTH_TOPIC).await })
            }),
        }
    }

    /// The brokers' answers and the topics' min ISR, read into the
    /// cluster's state. Without the min ISR the replication check still
    /// counts missing replicas; it only cannot say which writes fail.
    async fn cluster(&mut self, metadata: &ClusterMetadata, deadline: Instant) -> ClusterHealth {
        let answering = by(deadline, &mut self.answering).await.ok();
        let min_isr = by(deadline, &mut self.min_isr)
            .await
            .inspect_err(
                |e| tracing::info!(error = %format!("{e:#}"), "min.insync.replicas not read"),
            )
            .ok();
        assess(
            metadata,
            answering.as_ref(),
            &self.bootstrap,
            min_isr.as_ref(),
        )
    }
}

/// Waits for a read until the deadline. A read that is late is abandoned,
/// not cancelled: librdkafka gives up on its own timeout, after the
/// command has already answered.
async fn by<T, F>(deadline: Instant, read: F) -> anyhow::Result<T>
where
    F: Future<Output = Result<anyhow::Result<T>, tokio::task::JoinError>>,
{
    match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(Ok(result)) => result,
        Ok(Err(panicked)) => Err(anyhow::anyhow!("the check failed: {panicked}")),
        Err(_) => Err(anyhow::anyhow!("no answer before the --timeout deadline")),
    }
}

/// Each topic's min.insync.replicas, where the brokers said.
async fn min_insync_replicas(
    kafka: &Kafka,
    topics: &[String],
) -> anyhow::Result<HashMap<String, i32>> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let configs = kafka.topic_configs(&names).await?;
    Ok(configs
        .into_iter()
        .filter_map(|(topic, config)| {
            let value = config.get("min.insync.replicas")?.parse().ok()?;
            Some((topic, value))
        })
        .collect())
}

/// "unknown: …", naming the brokers that are down, which is what an
/// operator needs to know about a read that did not come back.
fn unknown(what: &str, error: &anyhow::Error, cluster: &ClusterHealth) -> String {
    format!("{what} unknown: {error:#}{}", down_note(cluster))
}

/// " (broker 2 (127.0.0.1:39092) down)", or nothing when every broker is up.
fn down_note(cluster: &ClusterHealth) -> String {
    let down: Vec<String> = cluster.down().map(|b| b.name()).collect();
    if down.is_empty() {
        String::new()
    } else {
        format!(" ({} down)", down.join(", "))
    }
}
