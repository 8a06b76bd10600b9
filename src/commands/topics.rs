//! `smmctl topics apply|list|orphans|delete`: the catalog against the
//! cluster.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use smm_workers::contract::catalog::{self, Category, Role, TOPIC_DEFAULTS, TOPICS, Topic};

use crate::Context;
use crate::cli::{
    TopicsApplyArgs, TopicsCommand, TopicsDeleteArgs, TopicsListArgs, TopicsOrphansArgs,
};
use crate::commands::flow::{self, Decision, Proposal};
use crate::config::{Origin, Sourced, TopicSettings, default_min_insync_replicas};
use crate::exit::{ExitStatus, Refusal, UsageError};
use crate::kafka::{AdminOutcome, ClusterMetadata, Kafka, TopicMetadata, Watermarks};
use crate::output::{Tone, or_dash};

pub async fn run(cmd: TopicsCommand, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let kafka = Kafka::from_settings(&ctx.settings)?;
    match cmd {
        TopicsCommand::Apply(args) => apply(args, kafka, ctx).await,
        TopicsCommand::List(args) => list(args, kafka, ctx).await,
        TopicsCommand::Orphans(args) => orphans(args, kafka, ctx),
        TopicsCommand::Delete(args) => delete(args, kafka, ctx).await,
    }
}

/// The cluster's topics with the watermarks of the ones a command cares
/// about, read in one metadata call and one batched offsets call.
struct Survey {
    metadata: ClusterMetadata,
    watermarks: HashMap<(String, i32), Watermarks>,
}

impl Survey {
    fn take(kafka: &Kafka, wanted: impl Fn(&str) -> bool) -> anyhow::Result<Survey> {
        let metadata = kafka.metadata()?;
        let partitions: Vec<(String, i32)> = metadata
            .topics
            .values()
            .filter(|t| t.error.is_none() && wanted(&t.name))
            .flat_map(|t| t.partitions.iter().map(|&p| (t.name.clone(), p)))
            .collect();
        let watermarks = kafka.watermarks(&partitions)?;
        Ok(Survey {
            metadata,
            watermarks,
        })
    }

    /// Partition count of a topic, if the cluster has it.
    fn partitions(&self, name: &str) -> Option<i32> {
        let topic = self.metadata.topics.get(name)?;
        if topic.error.is_some() && topic.partitions.is_empty() {
            return None;
        }
        i32::try_from(topic.partitions.len()).ok()
    }

    /// Records retained across all partitions; `None` unless every
    /// partition answered, because a partial sum would be a made-up number.
    fn messages(&self, name: &str) -> Option<i64> {
        let topic = self.metadata.topics.get(name)?;
        topic.partitions.iter().try_fold(0i64, |sum, &p| {
            self.watermarks
                .get(&(name.to_string(), p))
                .map(|w| sum + w.retained())
        })
    }
}

fn parse_categories(names: &[String]) -> anyhow::Result<Vec<Category>> {
    names
        .iter()
        .map(|name| {
            Category::parse(name).ok_or_else(|| {
                let known: Vec<_> = Category::ALL.iter().map(|c| c.slug()).collect();
                UsageError::new(format!(
                    "unknown category `{name}`; use one of: {}",
                    known.join(", ")
                ))
                .into()
            })
        })
        .collect()
}

fn in_categories(topic: &Topic, categories: &[Category]) -> bool {
    categories.is_empty() || categories.contains(&topic.category)
}

// ---------------------------------------------------------------- list

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum TopicStatus {
    Ok,
    Missing,
    /// Legacy or Kafka-internal topics that need not exist.
    Absent,
    PartitionsDiffer,
    /// Retention, compression or min.insync.replicas is not the panel's.
    ConfigDiffers,
    Error,
}

impl TopicStatus {
    fn is_problem(self) -> bool {
        matches!(
            self,
            TopicStatus::Missing
                | TopicStatus::PartitionsDiffer
                | TopicStatus::ConfigDiffers
                | TopicStatus::Error
        )
    }

    fn label(self) -> &'static str {
        match self {
            TopicStatus::Ok => "ok",
            TopicStatus::Missing => "missing",
            TopicStatus::Absent => "absent",
            TopicStatus::PartitionsDiffer => "partitions differ",
            TopicStatus::ConfigDiffers => "config differs",
            TopicStatus::Error => "error",
        }
    }

    fn tone(self) -> Tone {
        match self {
            TopicStatus::Ok => Tone::Good,
            TopicStatus::Absent => Tone::Plain,
            TopicStatus::Missing | TopicStatus::PartitionsDiffer | TopicStatus::ConfigDiffers => {
                Tone::Warn
            }
            TopicStatus::Error => Tone::Bad,
        }
    }
}

#[derive(Debug, Serialize)]
struct ListRow {
    name: &'static str,
    category: &'static str,
    role: &'static str,
    critical: bool,
    status: TopicStatus,
    expected_partitions: Option<i32>,
    partitions: Option<i32>,
    messages: Option<i64>,
    replaced_by: Option<&'static str>,
    /// Settings that are not the panel's defaults, in words.
    config_drift: Vec<String>,
    error: Option<String>,
}

/// The topic configs the panel creates topics with, its min ISR the
/// profile's.
fn wanted_configs(topics: &TopicSettings) -> Vec<(&'static str, String)> {
    TOPIC_DEFAULTS
        .configs()
        .into_iter()
        .map(|(key, value)| match key {
            "min.insync.replicas" => (key, topics.min_insync_replicas.value.to_string()),
            _ => (key, value),
        })
        .collect()
}

/// The panel's topic settings that differ on the cluster: the configs, and
/// the replication factor of any partition. Where the profile sets no
/// replication (its source is the default), the topic is held to what its
/// own replication factor calls for: any factor is accepted, but a min ISR
/// of 1 on three replicas still means a leader alone acknowledges writes.
fn config_drift(
    actual: Option<&HashMap<String, String>>,
    replicas: Option<&TopicMetadata>,
    wanted: &TopicSettings,
) -> Vec<String> {
    let factors: BTreeSet<usize> = replicas
        .map(|t| t.layout.iter().map(|p| p.replicas.len()).collect())
        .unwrap_or_default();
    let (wanted, held_to_own_factor) =
        match (wanted.replication_factor.source, factors.iter().max()) {
            (Origin::Default, Some(&found)) => {
                let found = i32::try_from(found).unwrap_or(i32::MAX);
                let held_to = TopicSettings {
                    replication_factor: Sourced::new(found, Origin::Default),
                    min_insync_replicas: Sourced::new(
                        default_min_insync_replicas(found),
                        Origin::Default,
                    ),
                };
                (held_to, Some(found))
            }
            _ => (wanted.clone(), None),
        };
    let says = |key: &str, value: &str| match (key, held_to_own_factor) {
        ("min.insync.replicas", Some(factor)) => {
            format!("expected {value} for replication factor {factor}")
        }
        ("min.insync.replicas", None) => format!("profile says {value}"),
        _ => format!("catalog says {value}"),
    };
    let mut drift: Vec<String> = match actual {
        None => Vec::new(),
        Some(actual) => wanted_configs(&wanted)
            .into_iter()
            .filter_map(|(key, value)| match actual.get(key) {
                Some(v) if *v == value => None,
                Some(v) => Some(format!("{key} is {v}, {}", says(key, &value))),
                None => Some(format!("{key} unknown, {}", says(key, &value))),
            })
            .collect(),
    };
    let wanted_factor = usize::try_from(wanted.replication_factor.value).unwrap_or(0);
    if factors.iter().any(|&f| f != wanted_factor) {
        let found: Vec<String> = factors.iter().map(usize::to_string).collect();
        drift.push(format!(
            "replication factor is {}, profile says {wanted_factor}",
            found.join(" and ")
        ));
    }
    drift
}

fn compare(
    topic: &'static Topic,
    survey: &Survey,
    configs: &HashMap<String, HashMap<String, String>>,
    wanted: &TopicSettings,
) -> ListRow {
    let actual = survey.partitions(topic.name);
    let error = survey
        .metadata
        .topics
        .get(topic.name)
        .and_then(|t| t.error.clone());
    let expected = (topic.role != Role::System).then_some(topic.partitions);
    let status = match (actual, &error) {
        (Some(_), Some(_)) => TopicStatus::Error,
        (None, _) if matches!(topic.role, Role::System | Role::Legacy) => TopicStatus::Absent,
        (None, _) => TopicStatus::Missing,
        (Some(n), None) if expected.is_some_and(|e| e != n) => TopicStatus::PartitionsDiffer,
        (Some(_), None) => TopicStatus::Ok,
    };
    let drift = if topic.is_managed() && actual.is_some() {
        config_drift(
            configs.get(topic.name),
            survey.metadata.topics.get(topic.name),
            wanted,
        )
    } else {
        Vec::new()
    };
    let status = if status == TopicStatus::Ok && !drift.is_empty() {
        TopicStatus::ConfigDiffers
    } else {
        status
    };
    ListRow {
        name: topic.name,
        category: topic.category.slug(),
        role: topic.role.slug(),
        critical: topic.critical,
        status,
        expected_partitions: expected,
        partitions: actual,
        messages: actual.and(survey.messages(topic.name)),
        replaced_by: topic.replaced_by,
        config_drift: drift,
        error: if status == TopicStatus::Error {
            error
        } else {
            None
        },
    }
}

async fn list(args: TopicsListArgs, kafka: &Kafka, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let categories = parse_categories(&args.category)?;
    let survey = Survey::take(kafka, |name| catalog::topic_named(name).is_some())?;
    let present: Vec<&str> = TOPICS
        .iter()
        .filter(|t| {
            t.is_managed() && in_categories(t, &categories) && survey.partitions(t.name).is_some()
        })
        .map(|t| t.name)
        .collect();
    let configs = kafka.topic_configs(&present).await?;
    let rows: Vec<ListRow> = TOPICS
        .iter()
        .filter(|t| in_categories(t, &categories))
        .map(|t| compare(t, &survey, &configs, &ctx.settings.topics))
        .filter(|r| !args.problems || r.status.is_problem())
        .collect();
    let problems = rows.iter().filter(|r| r.status.is_problem()).count();
    let status = if args.check && problems > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };

    if ctx.printer.is_json() {
        ctx.printer
            .json(&serde_json::json!({ "topics": rows, "problems": problems }))?;
        return Ok(status);
    }
    let p = &ctx.printer;
    if rows.is_empty() && args.problems {
        p.line("No problems: every catalog topic is present with the expected partitions and settings.");
        return Ok(status);
    }
    let mut table = p.table([
        "TOPIC",
        "CATEGORY",
        "ROLE",
        "STATUS",
        "PARTITIONS",
        "EXPECTED",
        "MESSAGES",
    ]);
    for r in &rows {
        let role = if r.critical {
            format!("{} (critical)", r.role)
        } else {
            r.role.to_string()
        };
        let status = match (&r.error, r.replaced_by) {
            (Some(e), _) => format!("error: {e}"),
            (None, _) if r.status == TopicStatus::ConfigDiffers => {
                format!("config differs: {}", r.config_drift.join("; "))
            }
            (None, Some(new)) if r.status == TopicStatus::Ok => format!("ok, deprecated for {new}"),
            _ => r.status.label().to_string(),
        };
        table.add_row(vec![
            p.cell(r.name, Tone::Plain),
            p.cell(r.category, Tone::Plain),
            p.cell(role, Tone::Plain),
            p.cell(status, r.status.tone()),
            p.cell(or_dash(r.partitions), Tone::Plain),
            p.cell(or_dash(r.expected_partitions), Tone::Plain),
            p.cell(or_dash(r.messages), Tone::Plain),
        ]);
    }
    p.align_right(&mut table, &[4, 5, 6]);
    p.print_table(&table);
    let present = rows.iter().filter(|r| r.partitions.is_some()).count();
    p.note(&format!(
        "{} topics: {present} present, {problems} missing or different from the catalog",
        rows.len()
    ));
    Ok(status)
}

// ---------------------------------------------------------------- apply

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ApplyAction {
    Create,
    Exists,
    Differs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ApplyResult {
    Planned,
    Created,
    /// Someone created it between our read and our request.
    AlreadyExisted,
    Unchanged,
    Failed,
}

#[derive(Debug, Serialize)]
struct ApplyRow {
    name: &'static str,
    partitions: i32,
    actual_partitions: Option<i32>,
    replication_factor: i32,
    min_insync_replicas: i32,
    action: ApplyAction,
    result: ApplyResult,
    error: Option<String>,
}

async fn apply(args: TopicsApplyArgs, kafka: &Kafka, ctx: &Context) -> anyhow::Result<ExitStatus> {
    if !args.dry_run {
        flow::ensure_writable(ctx, "topics apply (without --dry-run)")?;
    }
    let categories = parse_categories(&args.category)?;
    let wanted_settings = ctx
        .settings
        .topics
        .with_flags(args.replication_factor, args.min_insync_replicas)?;
    let replication = wanted_settings.replication_factor.value;
    let wanted: Vec<&'static Topic> = TOPICS
        .iter()
        .filter(|t| t.is_managed() && in_categories(t, &categories))
        .filter(|t| !(args.skip_legacy && t.role == Role::Legacy))
        .collect();
    let metadata = kafka.metadata()?;
    ensure_enough_brokers(&metadata, replication)?;

    let mut rows: Vec<ApplyRow> = wanted
        .iter()
        .map(|t| plan_apply_row(t, &metadata, &wanted_settings))
        .collect();
    if !args.dry_run {
        create_missing(kafka, &mut rows, &wanted_configs(&wanted_settings), ctx).await?;
    }
    let summary = ApplySummary::of(&rows);
    let status = if summary.failed > 0 || summary.differing > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    if ctx.printer.is_json() {
        ctx.printer.json(&serde_json::json!({
            "dry_run": args.dry_run,
            "replication_factor": replication,
            "min_insync_replicas": wanted_settings.min_insync_replicas.value,
            "topics": rows,
            "summary": summary,
        }))?;
        return Ok(status);
    }
    print_apply(&rows, &summary, args.dry_run, ctx);
    Ok(status)
}

/// A replication factor above the broker count can never be met, so it is
/// bad input rather than something to attempt.
fn ensure_enough_brokers(metadata: &ClusterMetadata, replication: i32) -> anyhow::Result<()> {
    match i32::try_from(metadata.brokers.len())
        .ok()
        .filter(|&n| n < replication)
    {
        Some(brokers) => Err(UsageError::new(format!(
            "replication factor {replication} needs at least {replication} brokers, but the cluster has {brokers}"
        ))
        .into()),
        None => Ok(()),
    }
}

/// What applying the catalog would do to one topic, before anything is
/// done.
fn plan_apply_row(
    topic: &'static Topic,
    metadata: &ClusterMetadata,
    wanted: &TopicSettings,
) -> ApplyRow {
    let actual = metadata
        .topics
        .get(topic.name)
        .filter(|m| !m.partitions.is_empty())
        .and_then(|m| i32::try_from(m.partitions.len()).ok());
    let action = match actual {
        None => ApplyAction::Create,
        Some(n) if n == topic.partitions => ApplyAction::Exists,
        Some(_) => ApplyAction::Differs,
    };
    ApplyRow {
        name: topic.name,
        partitions: topic.partitions,
        actual_partitions: actual,
        replication_factor: wanted.replication_factor.value,
        min_insync_replicas: wanted.min_insync_replicas.value,
        action,
        result: if action == ApplyAction::Create {
            ApplyResult::Planned
        } else {
            ApplyResult::Unchanged
        },
        error: None,
    }
}

/// Creates the topics the plan marks for creation, records each one's
/// result in its row, and waits until the created ones are visible.
async fn create_missing(
    kafka: &Kafka,
    rows: &mut [ApplyRow],
    configs: &[(&'static str, String)],
    ctx: &Context,
) -> anyhow::Result<()> {
    let to_create: Vec<(String, i32, i32)> = rows
        .iter()
        .filter(|r| r.action == ApplyAction::Create)
        .map(|r| (r.name.to_string(), r.partitions, r.replication_factor))
        .collect();
    if to_create.is_empty() {
        return Ok(());
    }
    let outcomes = kafka.create_topics(&to_create, configs).await?;
    let mut created = Vec::new();
    for (name, outcome) in outcomes {
        if let Some(row) = rows.iter_mut().find(|r| r.name == name) {
            match outcome {
                AdminOutcome::Done => {
                    row.result = ApplyResult::Created;
                    created.push((name, row.partitions));
                }
                AdminOutcome::AlreadyExists => row.result = ApplyResult::AlreadyExisted,
                AdminOutcome::Failed(why) => {
                    row.result = ApplyResult::Failed;
                    row.error = Some(why);
                }
            }
        }
    }
    if let Err(missing) = wait_until_visible(kafka, &created) {
        ctx.printer.warn(&format!(
            "created, but not yet visible in the cluster metadata after {}: {}",
            crate::kafka::humanize(kafka.timeout()),
            missing.join(", ")
        ));
    }
    Ok(())
}

/// The counts `topics apply` reports, in the order its JSON prints them.
#[derive(Debug, Serialize)]
struct ApplySummary {
    to_create: usize,
    created: usize,
    existing: usize,
    differing: usize,
    failed: usize,
}

impl ApplySummary {
    fn of(rows: &[ApplyRow]) -> ApplySummary {
        let count = |wanted: fn(&ApplyRow) -> bool| rows.iter().filter(|r| wanted(r)).count();
        ApplySummary {
            to_create: count(|r| r.action == ApplyAction::Create),
            created: count(|r| r.result == ApplyResult::Created),
            existing: count(|r| r.action == ApplyAction::Exists),
            differing: count(|r| r.action == ApplyAction::Differs),
            failed: count(|r| r.result == ApplyResult::Failed),
        }
    }
}

fn print_apply(rows: &[ApplyRow], summary: &ApplySummary, dry_run: bool, ctx: &Context) {
    let p = &ctx.printer;
    let shown: Vec<&ApplyRow> = rows
        .iter()
        .filter(|r| r.action != ApplyAction::Exists)
        .collect();
    if shown.is_empty() {
        p.line(&format!(
            "Nothing to do: all {} catalog topics exist with the expected partitions.",
            rows.len()
        ));
        return;
    }
    let mut table = p.table([
        "TOPIC",
        "PARTITIONS",
        "REPLICATION",
        "MIN ISR",
        "ACTION",
        "RESULT",
    ]);
    for r in &shown {
        let (action, tone) = r.action_text();
        let (result, result_tone) = r.result_text();
        table.add_row(vec![
            p.cell(r.name, Tone::Plain),
            p.cell(r.partitions.to_string(), Tone::Plain),
            p.cell(r.replication_factor.to_string(), Tone::Plain),
            p.cell(r.min_insync_replicas.to_string(), Tone::Plain),
            p.cell(action, tone),
            p.cell(result, result_tone),
        ]);
    }
    p.align_right(&mut table, &[1, 2, 3]);
    p.print_table(&table);
    let ApplySummary {
        to_create,
        created,
        existing,
        differing,
        failed,
    } = summary;
    if dry_run {
        p.note(&format!(
            "Dry run: {to_create} to create, {existing} already exist, {differing} differ. Nothing was changed."
        ));
    } else {
        p.note(&format!(
            "{created} created, {existing} already existed, {differing} differ, {failed} failed."
        ));
    }
    if *differing > 0 {
        p.warn(
            "smmctl never changes a partition count: adding partitions moves keys to other \
             partitions and breaks per-key ordering. Change it by hand if you mean it.",
        );
    }
}

impl ApplyRow {
    fn action_text(&self) -> (String, Tone) {
        match self.action {
            ApplyAction::Create => ("create".to_string(), Tone::Plain),
            ApplyAction::Exists => ("none".to_string(), Tone::Plain),
            ApplyAction::Differs => (
                format!(
                    "none: has {}, catalog says {}",
                    or_dash(self.actual_partitions),
                    self.partitions
                ),
                Tone::Warn,
            ),
        }
    }

    fn result_text(&self) -> (String, Tone) {
        match self.result {
            ApplyResult::Planned => ("dry run".to_string(), Tone::Plain),
            ApplyResult::Created => ("created".to_string(), Tone::Good),
            ApplyResult::AlreadyExisted => ("already existed".to_string(), Tone::Plain),
            ApplyResult::Unchanged => ("left as is".to_string(), Tone::Warn),
            ApplyResult::Failed => (
                format!("failed: {}", or_dash(self.error.as_deref())),
                Tone::Bad,
            ),
        }
    }
}

/// KRaft acknowledges a create once the controller has it; brokers learn of
/// it, and elect leaders, a moment later. Waiting here means `apply && list` never disagree.
/// Waits until every broker's metadata has the created topics with all
/// their partitions led: until then, a command that happens to ask a
/// broker the controller has not caught up would report them missing.
fn wait_until_visible(kafka: &Kafka, created: &[(String, i32)]) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + kafka.timeout();
    let mut missing: Vec<String> = created.iter().map(|(n, _)| n.clone()).collect();
    let brokers = kafka.metadata().map(|m| m.brokers).unwrap_or_default();
    // No broker to ask is not "every broker has them".
    let Some(per_broker) = (!brokers.is_empty())
        .then(|| kafka.per_broker(&brokers).ok())
        .flatten()
    else {
        return Err(missing);
    };
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let views = per_broker.metadata(left.max(Duration::from_millis(100)));
        missing = created
            .iter()
            .filter(|(name, partitions)| {
                !views.iter().all(|(_, view)| {
                    view.as_ref().is_ok_and(|metadata| {
                        metadata
                            .topics
                            .get(name)
                            .filter(|t| t.leaderless.is_empty())
                            .and_then(|t| i32::try_from(t.partitions.len()).ok())
                            == Some(*partitions)
                    })
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

// ---------------------------------------------------------------- orphans

#[derive(Debug, Serialize)]
struct OrphanRow {
    name: String,
    kind: &'static str,
    partitions: Option<i32>,
    messages: Option<i64>,
    note: String,
}

/// Kafka's internal topics and those of its ecosystem (Schema Registry,
/// Connect's `_connect-*` when so named) start with an underscore.
fn is_internal(name: &str) -> bool {
    name.starts_with('_')
}

/// The catalog name an orphan was probably meant to be, for typos such as
/// `smm.order.refunds`.
fn closest_catalog_name(name: &str) -> Option<&'static str> {
    TOPICS
        .iter()
        .map(|t| (t.name, strsim::levenshtein(name, t.name)))
        .filter(|&(_, distance)| distance <= 2)
        .min_by_key(|&(_, distance)| distance)
        .map(|(n, _)| n)
}

fn orphans(args: TopicsOrphansArgs, kafka: &Kafka, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let survey = Survey::take(kafka, |name| {
        !is_internal(name) && catalog::topic_named(name).is_none_or(|t| t.role == Role::Legacy)
    })?;
    let mut rows = Vec::new();
    for name in survey.metadata.topics.keys() {
        if is_internal(name) {
            continue;
        }
        let partitions = survey.partitions(name);
        let messages = survey.messages(name);
        let emptiness = match messages {
            Some(0) => "; empty",
            _ => "",
        };
        match catalog::topic_named(name) {
            Some(t) if t.role == Role::Legacy => rows.push(OrphanRow {
                name: name.clone(),
                kind: "legacy",
                partitions,
                messages,
                note: format!(
                    "deprecated: migrate to {}{emptiness}",
                    t.replaced_by.unwrap_or("its replacement")
                ),
            }),
            Some(_) => {}
            None => {
                let mut note = "not in the catalog".to_string();
                if let Some(meant) = closest_catalog_name(name) {
                    note.push_str(&format!("; did you mean {meant}?"));
                } else if catalog::looks_like_dead_letter(name) {
                    note.push_str("; named like a dead-letter topic");
                }
                note.push_str(emptiness);
                rows.push(OrphanRow {
                    name: name.clone(),
                    kind: "orphan",
                    partitions,
                    messages,
                    note,
                });
            }
        }
    }
    let status = if args.check && !rows.is_empty() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    if ctx.printer.is_json() {
        ctx.printer.json(&serde_json::json!({ "topics": rows }))?;
        return Ok(status);
    }
    let p = &ctx.printer;
    if rows.is_empty() {
        p.line("No orphaned or legacy topics: every topic on the cluster is in the catalog.");
        return Ok(status);
    }
    let mut table = p.table(["TOPIC", "KIND", "PARTITIONS", "MESSAGES", "NOTE"]);
    for r in &rows {
        table.add_row(vec![
            p.cell(r.name.as_str(), Tone::Plain),
            p.cell(
                r.kind,
                if r.kind == "legacy" {
                    Tone::Warn
                } else {
                    Tone::Plain
                },
            ),
            p.cell(or_dash(r.partitions), Tone::Plain),
            p.cell(or_dash(r.messages), Tone::Plain),
            p.cell(r.note.as_str(), Tone::Plain),
        ]);
    }
    p.align_right(&mut table, &[2, 3]);
    p.print_table(&table);
    Ok(status)
}

// ---------------------------------------------------------------- delete

/// What `topics delete -o json` prints, previewed or executed.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicsDeleteReport {
    pub executed: bool,
    pub topics: Vec<DeleteRow>,
}

impl TopicsDeleteReport {
    fn preview(rows: &[DeleteRow]) -> TopicsDeleteReport {
        TopicsDeleteReport {
            executed: false,
            topics: rows.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteRow {
    name: String,
    partitions: Option<i32>,
    messages: Option<i64>,
    catalog_role: Option<&'static str>,
    needs_force: bool,
    result: Option<String>,
}

/// Catalog topics are what the panel runs on: deleting one stops a worker
/// or loses what it holds, so it takes `--force`. Legacy topics are the
/// exception, since retiring them is the point.
fn needs_force(name: &str) -> bool {
    catalog::topic_named(name).is_some_and(|t| t.role != Role::Legacy)
}

async fn delete(
    args: TopicsDeleteArgs,
    kafka: &Kafka,
    ctx: &Context,
) -> anyhow::Result<ExitStatus> {
    let names = distinct_names(&args.topics);
    let survey = Survey::take(kafka, |name| names.iter().any(|n| n == name))?;
    refuse_internal(&names)?;
    require_existing(&names, &survey)?;
    let rows: Vec<DeleteRow> = names.iter().map(|n| delete_row(n, &survey)).collect();

    if !(args.apply.execute && ctx.printer.is_json()) {
        print_delete(&rows, ctx)?;
    }
    // A topic whose leader did not answer holds an unknown number: the
    // question never counts it as empty.
    let total = rows
        .iter()
        .try_fold(0i64, |sum, r| r.messages.map(|m| sum + m))
        .map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
    let proposal = Proposal {
        command: "topics delete",
        plan: serde_json::to_value(TopicsDeleteReport::preview(&rows))?,
        changes: rows.len(),
        question: format!(
            "Delete {} topic(s) holding {total} message(s)? This cannot be undone",
            rows.len()
        ),
        action: format!("delete {} topic(s)", rows.len()),
        needs_force: force_reasons(&rows),
        force: args.force,
        refusals: Vec::new(),
    };
    let trail = match flow::decide(ctx, kafka, &args.apply, proposal).await? {
        Decision::Preview | Decision::Nothing => return Ok(ExitStatus::Success),
        Decision::Act(trail) => trail,
    };
    let deleted = delete_planned(kafka, rows, ctx).await;
    flow::conclude(trail, deleted)
}

/// The names as given, trimmed, each once, in order.
fn distinct_names(given: &[String]) -> Vec<String> {
    given
        .iter()
        .map(|n| n.trim().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// "a is" or "a, b are": the start of a sentence about the named topics.
fn named_subject(names: &[&str]) -> String {
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", names.join(", "))
}

fn refuse_internal(names: &[String]) -> anyhow::Result<()> {
    let internal: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| is_internal(n))
        .collect();
    if internal.is_empty() {
        return Ok(());
    }
    Err(Refusal::new(format!(
        "{} internal to Kafka and never deleted by smmctl. Nothing was deleted.",
        named_subject(&internal)
    ))
    .into())
}

/// Every named topic must exist; an unknown one is bad input, named with
/// the closest topic the cluster has, and nothing is deleted.
fn require_existing(names: &[String], survey: &Survey) -> anyhow::Result<()> {
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !survey.metadata.topics.contains_key(n.as_str()))
        .map(|n| match closest_existing(n, survey) {
            Some(meant) => format!("{n} (did you mean {meant}?)"),
            None => n.clone(),
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(UsageError::new(format!(
        "no such topic on the cluster: {}. Nothing was deleted.",
        unknown.join(", ")
    ))
    .into())
}

fn delete_row(name: &str, survey: &Survey) -> DeleteRow {
    DeleteRow {
        name: name.to_string(),
        partitions: survey.partitions(name),
        messages: survey.messages(name),
        catalog_role: catalog::topic_named(name).map(|t| t.role.slug()),
        needs_force: needs_force(name),
        result: None,
    }
}

/// Why the delete needs `--force`: the catalog topics among the rows.
fn force_reasons(rows: &[DeleteRow]) -> Vec<String> {
    let forced: Vec<&str> = rows
        .iter()
        .filter(|r| r.needs_force)
        .map(|r| r.name.as_str())
        .collect();
    if forced.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{} in the catalog: the panel's workers depend on {}",
        named_subject(&forced),
        if forced.len() == 1 { "it" } else { "them" }
    )]
}

/// Deletes the planned topics and reports each one's result.
async fn delete_planned(
    kafka: &Kafka,
    mut rows: Vec<DeleteRow>,
    ctx: &Context,
) -> anyhow::Result<(TopicsDeleteReport, ExitStatus)> {
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let outcomes = kafka.delete_topics(&names).await?;
    let mut failed = 0;
    for (name, outcome) in outcomes {
        if let Some(row) = rows.iter_mut().find(|r| r.name == name) {
            row.result = Some(match outcome {
                AdminOutcome::Done | AdminOutcome::AlreadyExists => "deleted".to_string(),
                AdminOutcome::Failed(why) => {
                    failed += 1;
                    format!("failed: {why}")
                }
            });
        }
    }
    let report = TopicsDeleteReport {
        executed: true,
        topics: rows,
    };
    print_delete_results(&report, ctx)?;
    let status = if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    Ok((report, status))
}

fn print_delete_results(report: &TopicsDeleteReport, ctx: &Context) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if p.is_json() {
        return p.json(report);
    }
    let mut table = p.table(["TOPIC", "RESULT"]);
    for r in &report.topics {
        let result = or_dash(r.result.as_deref());
        let tone = if result == "deleted" {
            Tone::Good
        } else {
            Tone::Bad
        };
        table.add_row(vec![
            p.cell(r.name.as_str(), Tone::Plain),
            p.cell(result, tone),
        ]);
    }
    p.line("");
    p.print_table(&table);
    Ok(())
}

fn closest_existing(name: &str, survey: &Survey) -> Option<String> {
    survey
        .metadata
        .topics
        .keys()
        .map(|t| (t, strsim::levenshtein(name, t)))
        .filter(|&(_, d)| d <= 2)
        .min_by_key(|&(_, d)| d)
        .map(|(t, _)| t.clone())
}

fn print_delete(rows: &[DeleteRow], ctx: &Context) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if p.is_json() {
        return p.json(&TopicsDeleteReport::preview(rows));
    }
    let mut table = p.table(["TOPIC", "PARTITIONS", "MESSAGES", "CATALOG", "NOTE"]);
    for r in rows {
        let mut notes = Vec::new();
        if r.needs_force {
            notes.push("catalog topic: needs --force".to_string());
        }
        if let Some(m) = r.messages.filter(|&m| m > 0) {
            notes.push(format!("{m} messages will be lost"));
        }
        table.add_row(vec![
            p.cell(r.name.as_str(), Tone::Plain),
            p.cell(or_dash(r.partitions), Tone::Plain),
            p.cell(or_dash(r.messages), Tone::Plain),
            p.cell(r.catalog_role.unwrap_or("not in catalog"), Tone::Plain),
            p.cell(
                notes.join("; "),
                if r.needs_force {
                    Tone::Warn
                } else {
                    Tone::Plain
                },
            ),
        ]);
    }
    p.align_right(&mut table, &[1, 2]);
    p.print_table(&table);
    Ok(())
}
