//! `smmctl dlq drain TOPIC`: archive dead letters that should not be
//! reprocessed, then move the processing group past them (and delete them
//! with `--delete`). The archive is on disk before anything moves, and it
//! holds every record the drain deletes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;
use smm_workers::contract::catalog;
use smm_workers::contract::dead_letter::Archived;

use super::{Letter, decode_all, filter_of, partitions_of};
use crate::Context;
use crate::cli::DlqDrainArgs;
use crate::commands::flow::{self, Decision, Proposal};
use crate::commands::records::unread_by;
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::Kafka;
use crate::kafka::group_position::{committed, move_group};
use crate::kafka::live_groups::{refusals_to_move, refuse_to_move_live_group};
use crate::kafka::reader::read;
use crate::kafka::spans::{Span, Start, spans};
use crate::kafka::walk::Walk;
use crate::output::or_dash;

/// What the drain does to one partition, decided from the cluster reads
/// alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartitionPlan {
    pub partition: i32,
    pub log_start: i64,
    /// The group's committed offset; `None` when it has none, and then it
    /// reads from the log start.
    pub group_at: Option<i64>,
    /// The group's new offset: just past the drained records. `None` when
    /// it does not move.
    pub moves_to: Option<i64>,
    /// Selected records the drain archives and moves past.
    pub drained: usize,
    /// The first record the filters did not select: the group cannot move
    /// past it, because nobody handled it.
    pub stopped_at: Option<i64>,
    /// Selected records behind `stopped_at`: neither archived nor moved
    /// past. A later drain or replay reaches them once the record that
    /// stops the group is handled.
    pub held_back: usize,
    /// With `--delete`: the new log start. Every record below it is in the
    /// archive.
    pub deletes_before: Option<i64>,
    /// With `--delete`: records the group had handled before this drain
    /// that the delete removes too. They go into the archive, marked, so
    /// nothing deleted is lost, and `dlq replay --from-file` leaves them
    /// alone.
    pub already_handled: usize,
}

/// The group's position and the records from there on, walked in offset
/// order: the group moves past the selected records up to the first one
/// the filters left, and never past that one.
pub(crate) fn plan_partition(
    span: &Span,
    group_at: Option<i64>,
    letters: &[(i64, bool)],
    delete: bool,
) -> PartitionPlan {
    let mut walk = Walk::new(span.start);
    let mut already_handled = 0;
    for &(offset, selected) in letters {
        if offset < span.start {
            // Read only with --delete: behind the group already.
            already_handled += 1;
        } else {
            walk.step(offset, selected, selected);
        }
    }
    walk.read_to(span.end);
    let moves_to = walk.moves_to();
    let deletes_before = moves_to.filter(|_| delete);
    PartitionPlan {
        partition: span.partition,
        log_start: span.log_start,
        group_at,
        moves_to,
        drained: walk.handled,
        stopped_at: walk.stopped_at,
        held_back: walk.held_back,
        deletes_before,
        already_handled: if deletes_before.is_some() {
            already_handled
        } else {
            0
        },
    }
}

/// What `dlq drain -o json` prints, previewed or executed.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrainReport {
    topic: String,
    group: String,
    executed: bool,
    archive: String,
    /// Records written to the archive: drained, plus those the delete
    /// removes that the group had handled before.
    archived: usize,
    drained: usize,
    held_back: usize,
    not_selected: usize,
    partitions: Vec<PartitionPlan>,
    /// The group's new offset per partition.
    committed: BTreeMap<i32, i64>,
    /// The new log start per partition, with --delete.
    deleted_before: BTreeMap<i32, i64>,
    /// Partitions whose delete failed, with the broker's reason.
    delete_errors: BTreeMap<i32, String>,
}

fn default_archive(topic: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("smmctl")
        .join("dlq-archive")
        .join(format!("{topic}-{stamp}.jsonl"))
}

pub async fn run(args: DlqDrainArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let filter = filter_of(&args.filter);
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let metadata = kafka.metadata()?;
    let partitions = partitions_of(&metadata, &args.topic, &filter)?;
    let from = committed(kafka, &args.group, &args.topic).await?;
    let spans = spans(
        kafka,
        &args.topic,
        &partitions,
        &from,
        filter.offsets,
        Start::Group,
    )?;
    // With --delete, everything from the log start is read: what the
    // delete removes behind the group goes into the archive too.
    let read_spans: Vec<Span> = spans
        .iter()
        .map(|s| Span {
            start: if args.delete { s.log_start } else { s.start },
            ..*s
        })
        .collect();
    let records = read(kafka, &args.topic, &read_spans, |_| true, None)?;
    let letters = decode_all(records, &filter, false);
    let plans: Vec<PartitionPlan> = spans
        .iter()
        .map(|span| {
            let walk: Vec<(i64, bool)> = letters
                .iter()
                .filter(|l| l.raw.partition == span.partition)
                .map(|l| (l.raw.offset, l.selected))
                .collect();
            plan_partition(span, from.get(&span.partition).copied(), &walk, args.delete)
        })
        .collect();
    let to_archive = archive_selection(&spans, &plans, &letters);
    let path = args
        .archive
        .clone()
        .unwrap_or_else(|| default_archive(&args.topic));
    let drained: usize = plans.iter().map(|p| p.drained).sum();
    let held_back: usize = plans.iter().map(|p| p.held_back).sum();
    let report = DrainReport {
        topic: args.topic.clone(),
        group: args.group.clone(),
        executed: false,
        archive: path.display().to_string(),
        archived: to_archive.len(),
        drained,
        held_back,
        not_selected: letters
            .iter()
            .filter(|l| !l.selected && !behind_group(&spans, l))
            .count(),
        partitions: plans.clone(),
        committed: plans
            .iter()
            .filter_map(|p| p.moves_to.map(|m| (p.partition, m)))
            .collect(),
        deleted_before: BTreeMap::new(),
        delete_errors: BTreeMap::new(),
    };

    let deletes: Vec<(String, i32, i64)> = plans
        .iter()
        .filter_map(|p| {
            p.deletes_before
                .map(|d| (args.topic.clone(), p.partition, d))
        })
        .collect();
    let needs_force = delete_guards(kafka, &args, &plans).await?;
    print_plan(ctx, &report, &args)?;
    let refusals = refusals_to_move(kafka, &args.group).await;
    let proposal = proposal(&args, &report, &deletes, &path, needs_force, refusals)?;
    let trail = match flow::decide(ctx, kafka, &args.apply, proposal).await? {
        Decision::Preview => return Ok(ExitStatus::Success),
        Decision::Nothing => return Ok(held_status(held_back)),
        Decision::Act(trail) => trail,
    };
    let outcome = execute(ctx, kafka, &args, &path, &to_archive, &deletes, report).await;
    flow::conclude(trail, outcome)
}

/// What `dlq drain` proposes to do, for the shared confirm-and-audit flow.
fn proposal(
    args: &DlqDrainArgs,
    report: &DrainReport,
    deletes: &[(String, i32, i64)],
    path: &Path,
    needs_force: Vec<String>,
    refusals: Vec<String>,
) -> anyhow::Result<Proposal> {
    Ok(Proposal {
        command: "dlq drain",
        plan: serde_json::to_value(report)?,
        changes: report.archived,
        question: format!(
            "Drain {} record(s) of {} to {}{}?",
            report.drained,
            args.topic,
            path.display(),
            if deletes.is_empty() {
                String::new()
            } else {
                format!(
                    " and delete {} record(s) from the topic",
                    report
                        .partitions
                        .iter()
                        .filter_map(|p| p.deletes_before.map(|d| d - p.log_start))
                        .sum::<i64>()
                )
            }
        ),
        action: format!(
            "archive {} record(s) to {}, move group {}{}",
            report.archived,
            path.display(),
            args.group,
            if deletes.is_empty() {
                ""
            } else {
                " and delete what the archive holds"
            }
        ),
        needs_force,
        force: args.force,
        refusals,
    })
}

/// Archives, moves the group, and deletes what the archive holds: the
/// drain the operator agreed to.
async fn execute(
    ctx: &Context,
    kafka: &Kafka,
    args: &DlqDrainArgs,
    path: &Path,
    to_archive: &[(&Letter, bool)],
    deletes: &[(String, i32, i64)],
    mut report: DrainReport,
) -> anyhow::Result<(DrainReport, ExitStatus)> {
    // A member may have joined while the question was open.
    refuse_to_move_live_group(kafka, &args.group).await?;
    write_archive(path, to_archive)?;

    let set: Vec<(String, i32, i64)> = report
        .committed
        .iter()
        .map(|(p, o)| (args.topic.clone(), *p, *o))
        .collect();
    move_group(
        kafka,
        &args.group,
        &set,
        &format!(
            "the archive is written ({}); run the drain again to move the group",
            path.display()
        ),
    )
    .await?;
    let mut status = held_status(report.held_back);
    if !deletes.is_empty() {
        for ((_, p), result) in kafka.delete_records(deletes).await? {
            match result {
                Ok(low) => {
                    report.deleted_before.insert(p, low);
                }
                Err(why) => {
                    report.delete_errors.insert(p, why);
                    status = ExitStatus::Failure;
                }
            }
        }
    }
    report.executed = true;
    print_result(ctx, &report)?;
    Ok((report, status))
}

/// Read only for `--delete`: the group had passed it before the drain.
fn behind_group(spans: &[Span], letter: &Letter) -> bool {
    spans
        .iter()
        .any(|s| s.partition == letter.raw.partition && letter.raw.offset < s.start)
}

/// Records held back make an executed drain a partial one.
fn held_status(held_back: usize) -> ExitStatus {
    if held_back > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }
}

/// The records the archive gets: each partition's drained run, and with
/// `--delete` the records behind the group that the delete removes.
fn archive_selection<'l>(
    spans: &[Span],
    plans: &[PartitionPlan],
    letters: &'l [Letter],
) -> Vec<(&'l Letter, bool)> {
    let mut out = Vec::new();
    for (span, plan) in spans.iter().zip(plans) {
        let Some(until) = plan.moves_to else { continue };
        for letter in letters.iter().filter(|l| l.raw.partition == span.partition) {
            let offset = letter.raw.offset;
            if offset < span.start {
                // Read only because --delete removes it.
                out.push((letter, true));
            } else if offset < until && letter.selected {
                out.push((letter, false));
            }
        }
    }
    out
}

/// `--delete` goes through the same checks as `records delete`: a
/// financial topic, and any other group that has not read what would go.
async fn delete_guards(
    kafka: &Kafka,
    args: &DlqDrainArgs,
    plans: &[PartitionPlan],
) -> anyhow::Result<Vec<String>> {
    let targets: Vec<(String, i32, i64, i64)> = plans
        .iter()
        .filter_map(|p| {
            p.deletes_before
                .map(|d| (args.topic.clone(), p.partition, p.log_start, d))
        })
        .collect();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut reasons = Vec::new();
    let financial = catalog::topic_named(&args.topic).map_or_else(
        || catalog::is_financial_name(&args.topic),
        |t| t.is_financial(),
    );
    if financial {
        reasons.push(format!("{} is a financial topic", args.topic));
    }
    for ((topic, partition), unread) in unread_by(kafka, &targets).await? {
        // The drain moves its own group past what it deletes.
        for u in unread.iter().filter(|u| u.group != args.group) {
            reasons.push(format!(
                "group {} would lose {} unprocessed record(s) on {topic}/{partition} ({})",
                u.group, u.records, u.reason
            ));
        }
    }
    Ok(reasons)
}

fn write_archive(path: &Path, records: &[(&Letter, bool)]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| UsageError::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(|e| {
            UsageError::new(format!(
                "cannot create the archive {}: {e} (it must not exist yet; nothing was changed)",
                path.display()
            ))
        })?;
    for (letter, already_handled) in records {
        let mut line = Archived::of(&letter.raw);
        line.already_handled = *already_handled;
        serde_json::to_writer(&mut file, &line)?;
        file.write_all(b"\n")?;
    }
    // On disk before the group moves: a crash after this leaves an archive
    // and an unmoved group, which a second drain repeats into a new file.
    file.sync_all()?;
    Ok(())
}

fn print_plan(ctx: &Context, report: &DrainReport, args: &DlqDrainArgs) -> anyhow::Result<()> {
    if ctx.printer.is_json() {
        if !args.apply.execute {
            ctx.printer.json(report)?;
        }
        return Ok(());
    }
    let mut table = ctx.printer.table([
        "PARTITION",
        "GROUP AT",
        "MOVES TO",
        "DRAINED",
        "STOPS AT",
        "HELD BACK",
        "DELETES",
    ]);
    for p in &report.partitions {
        table.add_row(vec![
            p.partition.to_string(),
            p.group_at.map_or_else(
                || format!("- (log start {})", p.log_start),
                |g| g.to_string(),
            ),
            or_dash(p.moves_to),
            p.drained.to_string(),
            or_dash(p.stopped_at),
            p.held_back.to_string(),
            match p.deletes_before {
                Some(d) if d > p.log_start => format!("offsets {}-{}", p.log_start, d - 1),
                _ => "-".into(),
            },
        ]);
    }
    ctx.printer.print_table(&table);
    for p in report.partitions.iter().filter(|p| p.held_back > 0) {
        ctx.printer.warn(&format!(
            "{}/{}: {} selected record(s) wait behind offset {}, which the filters did not select; \
             the group cannot move past a record nobody handled. Replay or drain offset {} first.",
            report.topic,
            p.partition,
            p.held_back,
            p.stopped_at.unwrap_or_default(),
            p.stopped_at.unwrap_or_default()
        ));
    }
    for p in report.partitions.iter().filter(|p| p.already_handled > 0) {
        ctx.printer.note(&format!(
            "{}/{}: the delete also removes {} record(s) the group had handled before; they go into the archive too, marked as handled",
            report.topic, p.partition, p.already_handled
        ));
    }
    Ok(())
}

fn print_result(ctx: &Context, report: &DrainReport) -> anyhow::Result<()> {
    if ctx.printer.is_json() {
        return ctx.printer.json(report);
    }
    for (p, why) in &report.delete_errors {
        ctx.printer.warn(&format!(
            "cannot delete records of {}/{p}: {why}",
            report.topic
        ));
    }
    ctx.printer.note(&format!(
        "archived {} record(s) to {}; group {} moved on {} partition(s){}",
        report.archived,
        report.archive,
        report.group,
        report.committed.len(),
        if report.deleted_before.is_empty() {
            String::new()
        } else {
            format!(
                "; records deleted on {} partition(s)",
                report.deleted_before.len()
            )
        }
    ));
    ctx.printer.note(&format!(
        "replay them later with `smmctl dlq replay --from-file {}`",
        report.archive
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: i64, end: i64, log_start: i64) -> Span {
        Span {
            partition: 0,
            start,
            end,
            log_start,
        }
    }

    #[test]
    fn a_range_after_unhandled_records_moves_nothing_and_deletes_nothing() {
        // The group has no commit on a partition holding 0..200; the
        // filters select 100..=150. Records 0..100 were never handled.
        let walk: Vec<(i64, bool)> = (0..151).map(|o| (o, o >= 100)).collect();
        let plan = plan_partition(&span(0, 151, 0), None, &walk, true);
        assert_eq!(plan.moves_to, None);
        assert_eq!(plan.deletes_before, None);
        assert_eq!(plan.drained, 0);
        assert_eq!(plan.stopped_at, Some(0));
        assert_eq!(plan.held_back, 51);
    }

    #[test]
    fn a_gap_stops_the_group_and_holds_back_what_follows() {
        let walk = [(10, true), (11, true), (12, false), (13, true)];
        let plan = plan_partition(&span(10, 14, 0), Some(10), &walk, false);
        assert_eq!(plan.moves_to, Some(12));
        assert_eq!(plan.drained, 2);
        assert_eq!(plan.stopped_at, Some(12));
        assert_eq!(plan.held_back, 1);
    }

    #[test]
    fn a_delete_archives_what_the_group_had_handled_before() {
        let walk = [(0, false), (1, false), (2, true), (3, true)];
        let plan = plan_partition(&span(2, 4, 0), Some(2), &walk, true);
        assert_eq!(plan.moves_to, Some(4));
        assert_eq!(plan.deletes_before, Some(4));
        assert_eq!(plan.already_handled, 2);
        assert_eq!(plan.drained, 2);
    }

    #[test]
    fn a_fully_drained_span_passes_markers_to_its_end() {
        // Offsets 1 and 3 are transaction markers: no record comes back.
        let walk = [(0, true), (2, true)];
        let plan = plan_partition(&span(0, 4, 0), None, &walk, false);
        assert_eq!(plan.moves_to, Some(4));
    }
}
