//! `smmctl health`: the panel's health table and its checks, computed live.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::json;
use smm_workers::contract::catalog::{self, Category, GROUPS, HEALTH_TOPIC, Role, TOPICS, Topic};

use crate::Context;
use crate::cli::HealthArgs;
use crate::exit::ExitStatus;
use crate::kafka::groups::{self, GroupState};
use crate::kafka::{ClusterMetadata, Kafka, Outcome, Watermarks, humanize};
use crate::lag::{GroupLag, Request, collect, format_seconds};
use crate::output::Tone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Down,
}

impl Health {
    fn label(self, fancy: bool) -> &'static str {
        match (self, fancy) {
            (Health::Healthy, true) => "✅ Healthy",
            (Health::Degraded, true) => "⚠️ Degraded",
            (Health::Down, true) => "❌ Down",
            (Health::Healthy, false) => "Healthy",
            (Health::Degraded, false) => "Degraded",
            (Health::Down, false) => "Down",
        }
    }

    fn tone(self) -> Tone {
        match self {
            Health::Healthy => Tone::Good,
            Health::Degraded => Tone::Warn,
            Health::Down => Tone::Bad,
        }
    }

    fn gauge(self) -> i64 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Down => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Ok,
    Warn,
    Fail,
    Skipped,
}

impl CheckResult {
    fn tone(self) -> Tone {
        match self {
            CheckResult::Ok => Tone::Good,
            CheckResult::Warn => Tone::Warn,
            CheckResult::Fail => Tone::Bad,
            CheckResult::Skipped => Tone::Plain,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub result: CheckResult,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryHealth {
    pub category: &'static str,
    pub title: &'static str,
    pub active_topics: usize,
    pub catalog_topics: usize,
    /// Dead letters waiting in the category's dead-letter topics: records
    /// after the processing group's position.
    pub dlq_messages: Option<i64>,
    /// Everything those topics retain, handled or not.
    pub dlq_retained: Option<i64>,
    pub status: Health,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    pub topic: &'static str,
    pub category: &'static str,
    pub critical: bool,
    /// Records after the processing group's position: not handled yet.
    pub waiting: Option<i64>,
    /// Records the topic holds, handled or not.
    pub retained: Option<i64>,
}

/// Dead letters waiting and retained per dead-letter topic of the catalog,
/// judged against `positions`, the processing group's commits (`None` when
/// they could not be read, and then what waits is unknown).
fn dead_letter_counts(
    name: &str,
    metadata: &ClusterMetadata,
    watermarks: &HashMap<(String, i32), Watermarks>,
    positions: Option<&BTreeMap<(String, i32), i64>>,
) -> (Option<i64>, Option<i64>) {
    let Some(topic) = metadata.topics.get(name) else {
        return (None, None);
    };
    let (mut waiting, mut retained) = (Some(0i64), Some(0i64));
    for &p in &topic.partitions {
        let key = (name.to_string(), p);
        match watermarks.get(&key) {
            Some(w) => {
                retained = retained.map(|r| r + w.retained());
                waiting = match positions {
                    Some(at) => waiting.map(|n| n + w.waiting_after(at.get(&key).copied())),
                    None => None,
                };
            }
            None => {
                retained = None;
                waiting = None;
            }
        }
    }
    (waiting, retained)
}

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
    let kafka = Kafka::connect(&ctx.settings)?;
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
        Some(produce_and_read_back(kafka).await)
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
    checks.push(match &producer {
        None => Check {
            check: "producer readiness",
            result: CheckResult::Skipped,
            detail: if ctx.settings.read_only {
                "skipped (read-only profile)".into()
            } else {
                "skipped (--no-produce)".into()
            },
        },
        Some(Ok(latency)) => Check {
            check: "producer readiness",
            result: CheckResult::Ok,
            detail: format!(
                "test record produced to {HEALTH_TOPIC} and read back in {} ms",
                latency.as_millis()
            ),
        },
        Some(Err(e)) => Check {
            check: "producer readiness",
            result: CheckResult::Fail,
            detail: format!("{e:#}"),
        },
    });
    checks.push(missing_topics_check(&metadata));
    checks.push(dead_letter_check(
        &dead_letters,
        ctx.settings.thresholds.max_dead_letters,
    ));

    let worst_category = categories
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Health::Healthy);
    let failing = checks
        .iter()
        .any(|c| matches!(c.result, CheckResult::Warn | CheckResult::Fail));
    let overall = if worst_category == Health::Healthy && failing {
        Health::Degraded
    } else {
        worst_category
    };

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

fn dead_letters(
    metadata: &ClusterMetadata,
    watermarks: &HashMap<(String, i32), Watermarks>,
    positions: Option<&BTreeMap<(String, i32), i64>>,
) -> Vec<DeadLetters> {
    TOPICS
        .iter()
        .filter(|t| t.is_dead_letter() && metadata.topics.contains_key(t.name))
        .map(|t| {
            let (waiting, retained) = dead_letter_counts(t.name, metadata, watermarks, positions);
            DeadLetters {
                topic: t.name,
                category: t.category.slug(),
                critical: t.critical,
                waiting,
                retained,
            }
        })
        .collect()
}

/// Topics whose absence is a problem: everything but Kafka's own (created on
/// first use) and the deprecated legacy ones.
fn required(topic: &Topic) -> bool {
    !matches!(topic.role, Role::System | Role::Legacy)
}

fn categories(
    metadata: &ClusterMetadata,
    dead: &[DeadLetters],
    groups: &[GroupLag],
    max_dead_letters: i64,
) -> Vec<CategoryHealth> {
    Category::ALL
        .into_iter()
        .filter(|c| *c != Category::System)
        .map(|category| {
            let topics: Vec<&Topic> = catalog::topics_in(category).collect();
            let active = topics
                .iter()
                .filter(|t| metadata.topics.contains_key(t.name))
                .count();
            let in_category: Vec<&DeadLetters> = dead
                .iter()
                .filter(|d| d.category == category.slug())
                .collect();
            let dlq: Option<i64> = in_category
                .iter()
                .try_fold(0i64, |sum, d| d.waiting.map(|m| sum + m));
            let dlq_retained: Option<i64> = in_category
                .iter()
                .try_fold(0i64, |sum, d| d.retained.map(|m| sum + m));
            let mut status = Health::Healthy;
            let mut reasons = Vec::new();
            for t in topics.iter().filter(|t| required(t)) {
                match metadata.topics.get(t.name) {
                    None if t.role == Role::Main => {
                        status = status.max(Health::Down);
                        reasons.push(format!("main topic {} is missing", t.name));
                    }
                    None => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!("{} is missing", t.name));
                    }
                    Some(m) if !m.leaderless.is_empty() && t.role == Role::Main => {
                        status = status.max(Health::Down);
                        reasons.push(format!(
                            "{} has partitions without a leader: {:?}",
                            t.name, m.leaderless
                        ));
                    }
                    Some(m) if !m.leaderless.is_empty() => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!(
                            "{} has partitions without a leader: {:?}",
                            t.name, m.leaderless
                        ));
                    }
                    Some(_) => {}
                }
            }
            // Each dead-letter topic against the threshold, as the dead
            // letters check does, so the two never disagree.
            for d in &in_category {
                match d.waiting {
                    Some(n) if n > max_dead_letters => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!("{} has {n} dead letter(s) waiting", d.topic));
                    }
                    Some(_) => {}
                    None => {
                        status = status.max(Health::Degraded);
                        reasons.push(format!("{} could not be counted", d.topic));
                    }
                }
            }
            // A group over its threshold degrades every category in which
            // it has lag, however the lag is spread across topics.
            for g in groups.iter().filter(|g| g.over_threshold()) {
                let reads_category = g.topics().iter().any(|t| {
                    catalog::topic_named(&t.topic)
                        .is_some_and(|c| c.category == category && !c.is_dead_letter())
                        && t.lag.is_some_and(|l| l > 0)
                });
                if reads_category {
                    status = status.max(Health::Degraded);
                    reasons.push(format!(
                        "{} lags {} (threshold {})",
                        g.group,
                        g.total_lag().unwrap_or(0),
                        g.threshold
                    ));
                }
            }
            CategoryHealth {
                category: category.slug(),
                title: category.title(),
                active_topics: active,
                catalog_topics: topics.len(),
                dlq_messages: dlq,
                dlq_retained,
                status,
                reasons,
            }
        })
        .collect()
}

fn group_state_check(groups: &[GroupLag]) -> Check {
    let bad: Vec<String> = groups
        .iter()
        .filter(|g| !matches!(g.state, GroupState::Stable | GroupState::Empty))
        .map(|g| {
            if g.state == GroupState::Dead {
                format!("{} does not exist (Dead)", g.group)
            } else {
                format!("{} is {}", g.group, g.state.as_str())
            }
        })
        .collect();
    if bad.is_empty() {
        Check {
            check: "consumer groups",
            result: CheckResult::Ok,
            detail: format!("all {} panel groups are Stable or Empty", groups.len()),
        }
    } else {
        Check {
            check: "consumer groups",
            result: CheckResult::Fail,
            detail: format!(
                "{} of {} not Stable or Empty: {}",
                bad.len(),
                groups.len(),
                bad.join("; ")
            ),
        }
    }
}

/// Every partition of the topics an active group reads has an owner. The
/// topics are the catalog's for the group plus any a member holds.
fn assignment_check(groups: &[GroupLag], metadata: &ClusterMetadata) -> Check {
    let mut unassigned = Vec::new();
    let mut checked = 0;
    for g in groups.iter().filter(|g| !g.members.is_empty()) {
        checked += 1;
        let mut missing = 0;
        let mut topics: Vec<String> = catalog::group_named(&g.group)
            .map(|s| s.topics().iter().map(|t| t.to_string()).collect())
            .unwrap_or_default();
        topics.extend(
            g.partitions
                .iter()
                .filter(|p| p.member.is_some())
                .map(|p| p.topic.clone()),
        );
        topics.sort();
        topics.dedup();
        for topic in &topics {
            let Some(meta) = metadata.topics.get(topic) else {
                continue;
            };
            for &p in &meta.partitions {
                let owned = g
                    .partitions
                    .iter()
                    .any(|x| &x.topic == topic && x.partition == p && x.member.is_some());
                if !owned {
                    missing += 1;
                }
            }
        }
        if missing > 0 {
            unassigned.push(format!("{}: {missing} partition(s) unassigned", g.group));
        }
    }
    if unassigned.is_empty() {
        Check {
            check: "partition assignment",
            result: CheckResult::Ok,
            detail: if checked == 0 {
                "no panel group has active members".into()
            } else {
                format!("every partition of {checked} active group(s) is assigned")
            },
        }
    } else {
        Check {
            check: "partition assignment",
            result: CheckResult::Fail,
            detail: unassigned.join("; "),
        }
    }
}

fn lag_check(groups: &[GroupLag]) -> Check {
    let unknown: Vec<String> = groups
        .iter()
        .filter_map(|g| g.incomplete().map(|why| format!("{}: {why}", g.group)))
        .collect();
    let over: Vec<String> = groups
        .iter()
        .filter(|g| g.over_threshold())
        .map(|g| {
            format!(
                "{} lags {} (threshold {}{})",
                g.group,
                g.total_lag().unwrap_or(0),
                g.threshold,
                g.max_lag_seconds()
                    .map(|s| format!(", {} behind", format_seconds(s)))
                    .unwrap_or_default()
            )
        })
        .collect();
    if over.is_empty() && !unknown.is_empty() {
        return Check {
            check: "consumer lag",
            result: CheckResult::Warn,
            detail: format!("could not measure every group: {}", unknown.join("; ")),
        };
    }
    if over.is_empty() {
        let worst = groups
            .iter()
            .filter_map(|g| g.total_lag().map(|l| (l, g.group.as_str())))
            .max();
        Check {
            check: "consumer lag",
            result: CheckResult::Ok,
            detail: match worst {
                Some((0, _)) => "every panel group is caught up".into(),
                Some((lag, group)) => {
                    format!("every group under its threshold (largest: {group} at {lag})")
                }
                None => "no committed offsets to measure".into(),
            },
        }
    } else {
        Check {
            check: "consumer lag",
            result: CheckResult::Fail,
            detail: over.join("; "),
        }
    }
}

fn missing_topics_check(metadata: &ClusterMetadata) -> Check {
    let required: Vec<&Topic> = TOPICS.iter().filter(|t| required(t)).collect();
    let missing: Vec<&str> = required
        .iter()
        .filter(|t| !metadata.topics.contains_key(t.name))
        .map(|t| t.name)
        .collect();
    Check {
        check: "catalog topics",
        result: if missing.is_empty() {
            CheckResult::Ok
        } else {
            CheckResult::Fail
        },
        detail: if missing.is_empty() {
            format!("{} of {} present", required.len(), required.len())
        } else {
            format!(
                "{} missing (create them with `smmctl topics apply`): {}",
                missing.len(),
                missing.join(", ")
            )
        },
    }
}

fn dead_letter_check(dead: &[DeadLetters], max: i64) -> Check {
    // A topic that could not be counted may hold anything: never "empty".
    let uncounted: Vec<&str> = dead
        .iter()
        .filter(|d| d.waiting.is_none())
        .map(|d| d.topic)
        .collect();
    let waiting: Vec<&DeadLetters> = dead
        .iter()
        .filter(|d| d.waiting.is_some_and(|m| m > max))
        .collect();
    if waiting.is_empty() && uncounted.is_empty() {
        return Check {
            check: "dead letters",
            result: CheckResult::Ok,
            detail: {
                let retained: i64 = dead.iter().filter_map(|d| d.retained).sum();
                let judged = if max == 0 {
                    format!("no dead letter waiting in {} topics", dead.len())
                } else {
                    format!("at most {max} waiting in each of {} topics", dead.len())
                };
                format!("{judged} ({retained} retained, handled)")
            },
        };
    }
    if waiting.is_empty() {
        return Check {
            check: "dead letters",
            result: CheckResult::Fail,
            detail: format!("could not count {}", uncounted.join(", ")),
        };
    }
    let describe = |d: &&DeadLetters| {
        format!(
            "{} has {} waiting ({} retained)",
            d.topic,
            d.waiting.unwrap_or(0),
            crate::output::or_dash(d.retained)
        )
    };
    let critical: Vec<String> = waiting
        .iter()
        .filter(|d| d.critical)
        .map(describe)
        .collect();
    let other: Vec<String> = waiting
        .iter()
        .filter(|d| !d.critical)
        .map(describe)
        .collect();
    let mut parts = Vec::new();
    if !critical.is_empty() {
        parts.push(format!("CRITICAL (money): {}", critical.join(", ")));
    }
    if !other.is_empty() {
        parts.push(other.join(", "));
    }
    Check {
        check: "dead letters",
        result: if critical.is_empty() {
            CheckResult::Warn
        } else {
            CheckResult::Fail
        },
        detail: format!("{}; review with `smmctl dlq inspect`", parts.join("; ")),
    }
}

/// Produces a record to the health topic and reads it back, as the panel's
/// "producer readiness" check asks. The topic is created on first use; its
/// leading underscore keeps it out of `topics orphans`.
async fn produce_and_read_back(kafka: &Kafka) -> anyhow::Result<Duration> {
    let metadata = kafka.metadata()?;
    if !metadata.topics.contains_key(HEALTH_TOPIC) {
        // The broker's default replication, and an ISR floor of one, so the
        // probe works on clusters whose default min.insync.replicas would
        // refuse acks=all on a topic of one replica.
        let configs = [
            ("retention.ms", "3600000".to_string()),
            ("min.insync.replicas", "1".to_string()),
        ];
        let outcome = kafka
            .create_topics(&[(HEALTH_TOPIC.to_string(), 1, -1)], &configs)
            .await?;
        if let Some((_, Outcome::Failed(why))) = outcome.first() {
            anyhow::bail!("cannot create {HEALTH_TOPIC}: {why}");
        }
    }
    let producer: FutureProducer = kafka
        .producer_config()
        .set("acks", "all")
        .set("linger.ms", "0")
        .set(
            "message.timeout.ms",
            kafka.timeout().as_millis().to_string(),
        )
        .create()
        .context("cannot create a producer")?;
    let probe = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let delivered = producer
        .send(
            FutureRecord::to(HEALTH_TOPIC)
                .key(&probe)
                .payload(b"smmctl health probe".as_slice()),
            kafka.timeout(),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("cannot produce to {HEALTH_TOPIC}: {e}"))?;

    let consumer = kafka.reader(&[])?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(
        HEALTH_TOPIC,
        delivered.partition,
        Offset::Offset(delivered.offset),
    )?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + kafka.timeout();
    tokio::task::block_in_place(|| {
        while Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
                && message.key() == Some(probe.as_bytes())
            {
                return Ok(started.elapsed());
            }
        }
        Err(anyhow::anyhow!(
            "the test record was produced to {HEALTH_TOPIC} but not read back within {}",
            humanize(kafka.timeout())
        ))
    })
}

fn render(
    overall: Health,
    categories: &[CategoryHealth],
    checks: &[Check],
    dead: &[DeadLetters],
    groups: &[GroupLag],
    ctx: &Context,
) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if p.is_json() {
        return p.json(&json!({
            "status": overall,
            "categories": categories,
            "checks": checks,
            "dead_letters": dead,
            "groups": groups.iter().map(|g| json!({
                "group": g.group,
                "state": g.state.as_str(),
                "members": g.members.len(),
                "total_lag": g.total_lag(),
                "max_lag_seconds": g.max_lag_seconds(),
                "threshold": g.threshold,
                "over_threshold": g.over_threshold(),
            })).collect::<Vec<_>>(),
        }));
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let fancy = !no_color && std::io::stdout().is_terminal();
    let mut table = p.table([
        "Topic Category",
        "Active Topics",
        "DLQ Messages",
        "DLQ Retained",
        "Status",
        "Reason",
    ]);
    for c in categories {
        table.add_row(vec![
            p.cell(c.title, Tone::Plain),
            p.cell(c.active_topics.to_string(), Tone::Plain),
            p.cell(crate::output::or_dash(c.dlq_messages), Tone::Plain),
            p.cell(crate::output::or_dash(c.dlq_retained), Tone::Plain),
            p.cell(c.status.label(fancy), c.status.tone()),
            p.cell(c.reasons.join("; "), Tone::Plain),
        ]);
    }
    p.align_right(&mut table, &[1, 2, 3]);
    p.print_table(&table);
    p.line("");
    let mut table = p.table(["CHECK", "RESULT", "DETAIL"]);
    for c in checks {
        let result = serde_json::to_value(c.result)?;
        table.add_row(vec![
            p.cell(c.check, Tone::Plain),
            p.cell(result.as_str().unwrap_or("-"), c.result.tone()),
            p.cell(c.detail.as_str(), Tone::Plain),
        ]);
    }
    p.print_table(&table);
    p.line("");
    p.line(&format!("Overall: {}", overall.label(fancy)));
    Ok(())
}

fn failed_run_metrics(reached: bool) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "smmctl_health_broker_up",
        "1 when the brokers answered.",
        &[(vec![], f64::from(u8::from(reached)))],
    );
    gauge(
        &mut out,
        "smmctl_health_run_ok",
        "1 when smmctl health computed every check.",
        &[(vec![], 0.0)],
    );
    gauge(
        &mut out,
        "smmctl_health_last_run_timestamp_seconds",
        "When smmctl health last ran.",
        &[(vec![], now_seconds())],
    );
    out
}

fn now_seconds() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

fn metrics(
    overall: Health,
    categories: &[CategoryHealth],
    checks: &[Check],
    dead: &[DeadLetters],
    groups: &[GroupLag],
    producer: Option<&anyhow::Result<Duration>>,
) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "smmctl_health_broker_up",
        "1 when the brokers answered.",
        &[(vec![], 1.0)],
    );
    gauge(
        &mut out,
        "smmctl_health_run_ok",
        "1 when smmctl health computed every check.",
        &[(vec![], 1.0)],
    );
    gauge(
        &mut out,
        "smmctl_health_status",
        "Overall health: 0 healthy, 1 degraded, 2 down.",
        &[(vec![], overall.gauge() as f64)],
    );
    let rows: Vec<_> = categories
        .iter()
        .map(|c| {
            (
                vec![("category", c.category.to_string())],
                c.status.gauge() as f64,
            )
        })
        .collect();
    gauge(
        &mut out,
        "smmctl_health_category_status",
        "Health of a topic category: 0 healthy, 1 degraded, 2 down.",
        &rows,
    );
    let rows: Vec<_> = checks
        .iter()
        .filter(|c| c.result != CheckResult::Skipped)
        .map(|c| {
            (
                vec![("check", c.check.to_string())],
                f64::from(u8::from(c.result == CheckResult::Ok)),
            )
        })
        .collect();
    gauge(
        &mut out,
        "smmctl_health_check_ok",
        "1 when the check passed.",
        &rows,
    );
    let dead_gauge = |count: fn(&DeadLetters) -> Option<i64>| -> Vec<_> {
        dead.iter()
            .filter_map(|d| {
                count(d).map(|m| {
                    (
                        vec![
                            ("topic", d.topic.to_string()),
                            ("category", d.category.to_string()),
                            ("critical", d.critical.to_string()),
                        ],
                        m as f64,
                    )
                })
            })
            .collect()
    };
    gauge(
        &mut out,
        "smmctl_dlq_waiting",
        "Dead letters waiting: records of a dead-letter topic after the position of dlq-processing-group.",
        &dead_gauge(|d| d.waiting),
    );
    gauge(
        &mut out,
        "smmctl_dlq_retained",
        "Records a dead-letter topic retains, handled or not.",
        &dead_gauge(|d| d.retained),
    );
    let rows: Vec<_> = groups
        .iter()
        .filter_map(|g| {
            g.total_lag()
                .map(|l| (vec![("group", g.group.clone())], l as f64))
        })
        .collect();
    gauge(
        &mut out,
        "smmctl_consumergroup_lag",
        "Total lag of a consumer group, in messages.",
        &rows,
    );
    let rows: Vec<_> = groups
        .iter()
        .filter_map(|g| {
            g.max_lag_seconds()
                .map(|s| (vec![("group", g.group.clone())], s))
        })
        .collect();
    gauge(
        &mut out,
        "smmctl_consumergroup_lag_seconds",
        "How far behind a consumer group is in time (its furthest partition).",
        &rows,
    );
    if let Some(Ok(latency)) = producer {
        gauge(
            &mut out,
            "smmctl_health_producer_roundtrip_seconds",
            "Time to produce the test record and read it back.",
            &[(vec![], latency.as_secs_f64())],
        );
    }
    gauge(
        &mut out,
        "smmctl_health_last_run_timestamp_seconds",
        "When smmctl health last ran.",
        &[(vec![], now_seconds())],
    );
    out
}

/// One gauge in the Prometheus text format.
fn gauge(out: &mut String, name: &str, help: &str, rows: &[(Vec<(&str, String)>, f64)]) {
    if rows.is_empty() {
        return;
    }
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, value) in rows {
        if labels.is_empty() {
            out.push_str(&format!("{name} {value}\n"));
        } else {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}=\"{}\"",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                    )
                })
                .collect();
            out.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
        }
    }
}

/// The textfile collector may read at any moment: write beside the target
/// and rename, so it never sees half a file.
fn write_textfile(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_escape_label_values() {
        let mut out = String::new();
        gauge(
            &mut out,
            "m",
            "help",
            &[(vec![("topic", "a\"b\\c".to_string())], 2.0)],
        );
        assert_eq!(
            out,
            "# HELP m help\n# TYPE m gauge\nm{topic=\"a\\\"b\\\\c\"} 2\n"
        );
    }

    #[test]
    fn an_empty_gauge_writes_nothing() {
        let mut out = String::new();
        gauge(&mut out, "m", "help", &[]);
        assert!(out.is_empty());
    }

    #[test]
    fn dead_letters_in_financial_topics_fail_the_check() {
        let dead = [
            DeadLetters {
                topic: "smm.order.refund.dlq",
                category: "order-processing",
                critical: true,
                waiting: Some(2),
                retained: Some(5),
            },
            DeadLetters {
                topic: "smm.notifications.dlq",
                category: "notifications",
                critical: false,
                waiting: Some(1),
                retained: Some(1),
            },
        ];
        let check = dead_letter_check(&dead, 0);
        assert_eq!(check.result, CheckResult::Fail);
        assert!(
            check
                .detail
                .contains("CRITICAL (money): smm.order.refund.dlq has 2 waiting (5 retained)"),
            "{}",
            check.detail
        );
        let check = dead_letter_check(&dead[1..], 0);
        assert_eq!(check.result, CheckResult::Warn);
        assert_eq!(dead_letter_check(&dead[1..], 5).result, CheckResult::Ok);
    }
}
