//! `smmctl records delete`: move partitions' log start forward, with a
//! preview that names every group that would lose records it has not read.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::Serialize;
use smm_workers::contract::catalog::{self, GROUPS, Role};

use crate::Context;
use crate::cli::{RecordsCommand, RecordsDeleteArgs};
use crate::commands::flow::{self, Decision, Proposal};
use crate::exit::{ExitStatus, UsageError};
use crate::input::{DeleteRow, parse_delete_file};
use crate::kafka::group_survey::{GroupSurvey, PartitionKey};
use crate::kafka::{ClusterMetadata, Kafka, Watermarks};
use crate::output::Tone;

pub async fn run(cmd: RecordsCommand, ctx: &Context) -> anyhow::Result<ExitStatus> {
    match cmd {
        RecordsCommand::Delete(args) => delete(args, ctx).await,
    }
}

/// A group that has not read records the plan would delete.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnreadBy {
    pub group: String,
    pub committed: Option<i64>,
    pub records: i64,
    pub reason: &'static str,
}

/// What `records delete -o json` prints, previewed or executed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordsDeleteReport {
    pub executed: bool,
    pub partitions: Vec<PlanRow>,
}

impl RecordsDeleteReport {
    fn of(rows: &[PlanRow], executed: bool) -> RecordsDeleteReport {
        RecordsDeleteReport {
            executed,
            partitions: rows.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRow {
    topic: String,
    #[schemars(range(min = 0))]
    partition: i32,
    #[schemars(range(min = 0))]
    log_start: i64,
    #[schemars(range(min = 0))]
    log_end: i64,
    #[schemars(range(min = 0))]
    new_log_start: i64,
    /// Records the delete removes.
    #[schemars(range(min = 0))]
    records: i64,
    notes: Vec<String>,
    unread_by: Vec<UnreadBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
}

/// Where the log should start: `before` clamped to what the log holds.
fn new_start(before: Option<i64>, marks: Watermarks, notes: &mut Vec<String>) -> i64 {
    match before {
        None => marks.high,
        Some(b) if b > marks.high => {
            notes.push(format!("clamped to the log end (asked for {b})"));
            marks.high
        }
        Some(b) if b <= marks.low => {
            if b < marks.low {
                notes.push(format!("already starts at {} (asked for {b})", marks.low));
            }
            marks.low
        }
        Some(b) => b,
    }
}

async fn delete(args: RecordsDeleteArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let file_rows = read_delete_file(&args)?;
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let metadata = kafka.metadata()?;
    let wanted = wanted_partitions(&args, file_rows, &metadata)?;
    let mut rows = plan(&args, kafka, &wanted)?;
    find_unread(kafka, &mut rows).await?;

    let total: i64 = rows.iter().map(|r| r.records).sum();
    if !(args.apply.execute && ctx.printer.is_json()) {
        print_plan(&rows, false, ctx)?;
    }
    let proposal = Proposal {
        command: "records delete",
        plan: serde_json::to_value(RecordsDeleteReport::of(&rows, false))?,
        changes: usize::try_from(total).unwrap_or(usize::MAX),
        question: format!(
            "Delete {total} record(s) from {} partition(s)? This cannot be undone",
            rows.iter().filter(|r| r.records > 0).count()
        ),
        action: format!("delete {total} record(s)"),
        needs_force: force_reasons(&rows),
        force: args.force,
        refusals: over_limit(total, args.max_records).into_iter().collect(),
    };
    let trail = match flow::decide(ctx, kafka, &args.apply, proposal).await? {
        Decision::Preview | Decision::Nothing => return Ok(ExitStatus::Success),
        Decision::Act(trail) => trail,
    };
    let deleted = delete_planned(kafka, rows, ctx).await;
    flow::conclude(trail, deleted)
}

/// The rows of `--from-file`, if given; it names its own partitions, so it
/// excludes `--partition`.
fn read_delete_file(args: &RecordsDeleteArgs) -> anyhow::Result<Option<Vec<DeleteRow>>> {
    let Some(path) = &args.from_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
    let rows = parse_delete_file(&text)
        .map_err(|why| UsageError::new(format!("{}: {why}", path.display())))?;
    if !args.partition.is_empty() {
        return Err(
            UsageError::new("--from-file names its own partitions; drop --partition").into(),
        );
    }
    Ok(Some(rows))
}

/// The partitions to delete from, each once and each checked against the
/// cluster: the file's rows, or the topic's (chosen) partitions.
fn wanted_partitions(
    args: &RecordsDeleteArgs,
    file_rows: Option<Vec<DeleteRow>>,
    metadata: &ClusterMetadata,
) -> anyhow::Result<Vec<DeleteRow>> {
    // (topic, partition, before) where `before` None means the high watermark.
    let mut wanted: Vec<DeleteRow> = match file_rows {
        Some(rows) => rows,
        None => {
            let topic = args.topic.clone().unwrap_or_default();
            let meta = metadata.topics.get(&topic).ok_or_else(|| {
                UsageError::new(format!("topic {topic} does not exist on the cluster"))
            })?;
            let partitions: Vec<i32> = if args.partition.is_empty() {
                meta.partitions.clone()
            } else {
                args.partition.clone()
            };
            partitions
                .into_iter()
                .map(|partition| DeleteRow {
                    topic: topic.clone(),
                    partition,
                    before: args.before_offset,
                    at: String::new(),
                })
                .collect()
        }
    };
    wanted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    wanted.dedup_by(|a, b| a.topic == b.topic && a.partition == b.partition);
    for row in &wanted {
        let exists = metadata
            .topics
            .get(&row.topic)
            .is_some_and(|t| t.partitions.contains(&row.partition));
        if !exists {
            let place = match &args.from_file {
                Some(file) => format!("{}: {}: ", file.display(), row.at),
                None => String::new(),
            };
            return Err(UsageError::new(format!(
                "{place}{}/{} does not exist on the cluster; nothing was deleted",
                row.topic, row.partition
            ))
            .into());
        }
    }
    Ok(wanted)
}

/// Where each partition's log would start after the delete, from the
/// watermarks and, for a time cutoff, the first offset at or after it.
fn plan(
    args: &RecordsDeleteArgs,
    kafka: &Kafka,
    wanted: &[DeleteRow],
) -> anyhow::Result<Vec<PlanRow>> {
    let keys: Vec<(String, i32)> = wanted
        .iter()
        .map(|r| (r.topic.clone(), r.partition))
        .collect();
    let watermarks = kafka.watermarks(&keys)?;
    let cutoff = match (args.before_datetime, args.older_than) {
        (Some(t), _) => Some(t),
        (None, Some(d)) => {
            Some(crate::input::time_ago(d, "--older-than").map_err(UsageError::new)?)
        }
        _ => None,
    };
    let by_time = match cutoff {
        Some(at) => kafka.offsets_at(&keys, at)?,
        None => HashMap::new(),
    };

    let mut rows = Vec::new();
    for row in wanted {
        let key = (row.topic.clone(), row.partition);
        let marks = *watermarks.get(&key).ok_or_else(|| {
            anyhow::anyhow!(
                "no offsets from the broker for {}/{}",
                row.topic,
                row.partition
            )
        })?;
        let mut notes = Vec::new();
        let before = if cutoff.is_some() {
            // No record at or after the cutoff: every record is older.
            by_time.get(&key).copied().flatten()
        } else if args.all {
            None
        } else {
            row.before
        };
        let new_log_start = new_start(before, marks, &mut notes);
        rows.push(PlanRow {
            topic: row.topic.clone(),
            partition: row.partition,
            log_start: marks.low,
            log_end: marks.high,
            new_log_start,
            records: new_log_start - marks.low,
            notes,
            unread_by: Vec::new(),
            result: None,
        });
    }
    Ok(rows)
}

/// Why the delete needs `--force`: the panel's main and financial topics
/// it shrinks, then every group that would lose records it has not read.
fn force_reasons(rows: &[PlanRow]) -> Vec<String> {
    let guarded = rows
        .iter()
        .filter(|r| r.records > 0)
        .map(|r| r.topic.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|topic| {
            let main = catalog::topic_named(topic).is_some_and(|t| t.role == Role::Main);
            let money = catalog::is_financial_name(topic);
            match (main, money) {
                (_, true) => Some(format!("{topic} is a financial topic")),
                (true, false) => Some(format!("{topic} is a main topic of the panel")),
                _ => None,
            }
        });
    let unread = rows.iter().flat_map(|r| {
        r.unread_by.iter().map(move |u| {
            format!(
                "group {} would lose {} unprocessed record(s) on {}/{} ({}{})",
                u.group,
                u.records,
                r.topic,
                r.partition,
                u.reason,
                u.committed
                    .map(|c| format!(", committed at {c}"))
                    .unwrap_or_default()
            )
        })
    });
    guarded.chain(unread).collect()
}

/// The refusal when the delete would remove more than `--max-records`.
fn over_limit(total: i64, max_records: Option<i64>) -> Option<String> {
    // Records keep arriving between a scheduled job's dry run and its real
    // run; the limit holds whatever the time-based target grew to.
    max_records.filter(|&limit| total > limit).map(|limit| {
        format!(
            "refusing: {total} record(s) would be deleted, more than --max-records {limit}. Nothing was changed."
        )
    })
}

/// Moves the log start of every partition that has records to delete, and
/// reports each partition's result.
async fn delete_planned(
    kafka: &Kafka,
    mut rows: Vec<PlanRow>,
    ctx: &Context,
) -> anyhow::Result<(RecordsDeleteReport, ExitStatus)> {
    let targets: Vec<(String, i32, i64)> = rows
        .iter()
        .filter(|r| r.records > 0)
        .map(|r| (r.topic.clone(), r.partition, r.new_log_start))
        .collect();
    let results = kafka.delete_records(&targets).await?;
    let mut failed = 0;
    for row in rows.iter_mut() {
        if row.records == 0 {
            row.result = Some("nothing to delete".into());
            continue;
        }
        row.result = Some(match results.get(&(row.topic.clone(), row.partition)) {
            Some(Ok(low)) => {
                row.new_log_start = *low;
                "deleted".into()
            }
            Some(Err(why)) => {
                failed += 1;
                format!("failed: {why}")
            }
            None => {
                failed += 1;
                "failed: no answer for this partition".into()
            }
        });
    }
    if !ctx.printer.is_json() {
        ctx.printer.line("");
    }
    print_plan(&rows, true, ctx)?;
    let status = if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    let report = RecordsDeleteReport {
        executed: true,
        partitions: rows,
    };
    Ok((report, status))
}

/// Fills `unread_by` with every group that has not read records the plan
/// deletes.
async fn find_unread(kafka: &Kafka, rows: &mut [PlanRow]) -> anyhow::Result<()> {
    let targets: Vec<(String, i32, i64, i64)> = rows
        .iter()
        .filter(|r| r.records > 0)
        .map(|r| (r.topic.clone(), r.partition, r.log_start, r.new_log_start))
        .collect();
    let mut found = unread_by(kafka, &targets).await?;
    for row in rows.iter_mut() {
        if let Some(unread) = found.remove(&(row.topic.clone(), row.partition)) {
            row.unread_by = unread;
        }
    }
    Ok(())
}

/// Every group that has not read records a delete of `(topic, partition,
/// log start, new log start)` would remove: a commit below the new log
/// start, or no commit at all from a live member that owns the partition
/// or a panel group that reads the topic. If the groups cannot all be read,
/// nobody can say the records are safe to delete, and the command refuses.
pub(crate) async fn unread_by(
    kafka: &Kafka,
    targets: &[(String, i32, i64, i64)],
) -> anyhow::Result<BTreeMap<PartitionKey, Vec<UnreadBy>>> {
    if targets.iter().all(|(_, _, low, new)| new <= low) {
        return Ok(BTreeMap::new());
    }
    let survey = GroupSurvey::take(kafka).await?;
    Ok(unread_in(&survey, targets))
}

/// [`unread_by`] over a survey already taken.
fn unread_in(
    survey: &GroupSurvey,
    targets: &[(String, i32, i64, i64)],
) -> BTreeMap<PartitionKey, Vec<UnreadBy>> {
    let mut out = BTreeMap::new();
    for (topic, partition, log_start, new_log_start) in targets {
        let (log_start, new_log_start) = (*log_start, *new_log_start);
        if new_log_start <= log_start {
            continue;
        }
        let key = (topic.clone(), *partition);
        let commits = survey.committed.get(&key).map_or(&[][..], Vec::as_slice);
        let mut unread: Vec<UnreadBy> = commits
            .iter()
            .filter(|(_, at)| (*at).max(log_start) < new_log_start)
            .map(|(group, at)| UnreadBy {
                group: group.clone(),
                committed: Some(*at),
                records: new_log_start - (*at).max(log_start),
                reason: "committed below the new log start",
            })
            .collect();
        let live_owners = survey
            .owners
            .get(&key)
            .into_iter()
            .flatten()
            .map(|group| (group.clone(), "live member owns it, no commit yet"));
        let panel_readers = GROUPS
            .iter()
            .filter(|g| g.topics().contains(&topic.as_str()))
            .map(|g| {
                (
                    g.name.to_string(),
                    "panel group that reads this topic, no commit yet",
                )
            });
        for (group, reason) in live_owners.chain(panel_readers) {
            let has_commit = commits.iter().any(|(c, _)| *c == group);
            if has_commit || unread.iter().any(|u| u.group == group) {
                continue;
            }
            unread.push(UnreadBy {
                group,
                committed: None,
                records: new_log_start - log_start,
                reason,
            });
        }
        if !unread.is_empty() {
            out.insert(key, unread);
        }
    }
    out
}

fn print_plan(rows: &[PlanRow], applied: bool, ctx: &Context) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if p.is_json() {
        return p.json(&RecordsDeleteReport::of(rows, applied));
    }
    let mut table = p.plan_table(
        &[
            "TOPIC",
            "PARTITION",
            "LOG-START",
            "NEW-LOG-START",
            "RECORDS",
            "LOG-END",
        ],
        applied,
    );
    for r in rows {
        let mut notes = r.notes.clone();
        for u in &r.unread_by {
            notes.push(format!("{} has not read {}", u.group, u.records));
        }
        let mut row = vec![
            p.cell(r.topic.as_str(), Tone::Plain),
            p.cell(r.partition.to_string(), Tone::Plain),
            p.cell(r.log_start.to_string(), Tone::Plain),
            p.cell(
                r.new_log_start.to_string(),
                if r.records > 0 {
                    Tone::Warn
                } else {
                    Tone::Plain
                },
            ),
            p.cell(r.records.to_string(), Tone::Plain),
            p.cell(r.log_end.to_string(), Tone::Plain),
        ];
        if applied {
            row.push(p.result_cell(r.result.as_deref()));
        }
        row.push(p.cell(
            notes.join("; "),
            if r.unread_by.is_empty() {
                Tone::Plain
            } else {
                Tone::Bad
            },
        ));
        table.add_row(row);
    }
    p.align_right(&mut table, &[1, 2, 3, 4, 5]);
    p.print_table(&table);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn survey(committed: &[(&str, i32, &str, i64)], owners: &[(&str, i32, &str)]) -> GroupSurvey {
        let mut survey = GroupSurvey::default();
        for (topic, partition, group, at) in committed {
            survey
                .committed
                .entry((topic.to_string(), *partition))
                .or_default()
                .push((group.to_string(), *at));
        }
        for (topic, partition, group) in owners {
            survey
                .owners
                .entry((topic.to_string(), *partition))
                .or_default()
                .push(group.to_string());
        }
        survey
    }

    fn who(found: &BTreeMap<PartitionKey, Vec<UnreadBy>>, topic: &str) -> Vec<(String, i64)> {
        found
            .get(&(topic.to_string(), 0))
            .into_iter()
            .flatten()
            .map(|u| (u.group.clone(), u.records))
            .collect()
    }

    #[test]
    fn a_group_is_named_when_it_has_not_read_what_the_delete_removes() {
        let topic = "test.orders";
        let found = unread_in(
            &survey(
                &[
                    (topic, 0, "behind", 40),
                    (topic, 0, "caught-up", 100),
                    (topic, 0, "before-the-log", 2),
                ],
                &[(topic, 0, "live-no-commit"), (topic, 0, "caught-up")],
            ),
            &[(topic.to_string(), 0, 10, 60)],
        );
        assert_eq!(
            who(&found, topic),
            [
                ("behind".to_string(), 20),
                ("before-the-log".to_string(), 50),
                ("live-no-commit".to_string(), 50),
            ]
        );
    }

    #[test]
    fn a_panel_group_with_no_commit_is_named_once_even_when_it_is_live() {
        let topic = catalog::PAYMENT_CONFIRMATIONS;
        let group = "smm-payment-confirmations-realtime-group";
        let found = unread_in(
            &survey(&[], &[(topic, 0, group)]),
            &[(topic.to_string(), 0, 0, 5)],
        );
        let named = who(&found, topic);
        assert_eq!(named, [(group.to_string(), 5)], "{found:?}");
        assert_eq!(
            found[&(topic.to_string(), 0)][0].reason,
            "live member owns it, no commit yet"
        );
    }

    #[test]
    fn a_delete_that_removes_nothing_names_nobody() {
        let topic = "test.orders";
        let found = unread_in(
            &survey(&[(topic, 0, "behind", 0)], &[(topic, 0, "live")]),
            &[(topic.to_string(), 0, 10, 10)],
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn the_new_log_start_stays_inside_the_log() {
        let marks = Watermarks { low: 10, high: 100 };
        let cases = [
            (None, 100, None),
            (Some(50), 50, None),
            (Some(10), 10, None),
            (Some(3), 10, Some("already starts at 10 (asked for 3)")),
            (
                Some(500),
                100,
                Some("clamped to the log end (asked for 500)"),
            ),
        ];
        for (before, expected, note) in cases {
            let mut notes = Vec::new();
            assert_eq!(new_start(before, marks, &mut notes), expected, "{before:?}");
            assert_eq!(notes.first().map(String::as_str), note, "{before:?}");
        }
    }
}
