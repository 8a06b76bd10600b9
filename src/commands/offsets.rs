//! `smmctl offsets reset`: every way to move a group's committed offsets,
//! previewed first, refused for live groups, and undoable.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use schemars::JsonSchema;
use serde::Serialize;
use smm_workers::contract::catalog::{self, Category};

use crate::Context;
use crate::cli::{OffsetsCommand, OffsetsResetArgs};
use crate::commands::flow::{self, Decision, Proposal};
use crate::exit::{ExitStatus, Refusal, UsageError};
use crate::input::{OffsetRow, parse_offsets_csv};
use crate::kafka::groups;
use crate::kafka::{ClusterMetadata, Kafka, Watermarks, describe_code};
use crate::lag::UncommittedStart;
use crate::output::{Tone, or_dash};

/// What a live group is refused, in "refusing to … group G".
const LIVE_REFUSAL: &str = "reset the offsets of";

/// How many undo files to keep in the state directory.
const UNDO_KEPT: usize = 100;

pub async fn run(cmd: OffsetsCommand, ctx: &Context) -> anyhow::Result<ExitStatus> {
    match cmd {
        OffsetsCommand::Reset(args) => reset(args, ctx).await,
    }
}

/// Where the reset moves the group's commits, as the flags chose it.
#[derive(Debug, Clone)]
enum ResetTarget {
    Earliest,
    Latest,
    Current,
    Offset(i64),
    Shift(i64),
    Time(jiff::Timestamp),
    File(Vec<OffsetRow>),
}

// What the reset does to one partition's commit. (A plain comment: a doc
// comment would enter the published schema, which names this type
// `Action`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "Action")]
enum CommitAction {
    /// Commit `new`.
    Set,
    /// Remove the commit: the group had none here before (undo files).
    DeleteCommit,
    /// Nothing to do here.
    Unchanged,
}

/// What `offsets reset -o json` prints, previewed or executed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OffsetsResetReport {
    pub group: String,
    pub executed: bool,
    /// The file that restores the offsets as they were (executed only).
    pub undo_file: Option<String>,
    partitions: Vec<PlanRow>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PlanRow {
    topic: String,
    partition: i32,
    current: Option<i64>,
    log_start: i64,
    log_end: i64,
    new: Option<i64>,
    action: CommitAction,
    notes: Vec<String>,
    /// Records the move skips: from the current commit, or, without one,
    /// from the log start, where a group reading from the earliest would
    /// begin.
    skips: i64,
    /// Records the move makes the group read again.
    rereads: i64,
    /// `skips` is an upper bound: the group has no commit here and may not
    /// read from the earliest (see [`UncommittedStart`]).
    #[serde(skip)]
    skips_at_most: bool,
    /// Why the current commit is unknown: the broker answered this
    /// partition with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    current_error: Option<String>,
    /// Filled in after applying.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
}

fn target_of(args: &OffsetsResetArgs) -> anyhow::Result<ResetTarget> {
    Ok(if args.to_earliest {
        ResetTarget::Earliest
    } else if args.to_latest {
        ResetTarget::Latest
    } else if args.to_current {
        ResetTarget::Current
    } else if let Some(n) = args.to_offset {
        ResetTarget::Offset(n)
    } else if let Some(n) = args.shift_by {
        ResetTarget::Shift(n)
    } else if let Some(t) = args.to_datetime {
        ResetTarget::Time(t)
    } else if let Some(d) = args.by_duration {
        ResetTarget::Time(crate::input::time_ago(d, "--by-duration").map_err(UsageError::new)?)
    } else if let Some(path) = &args.from_file {
        ResetTarget::File(read_offsets_file(path, &args.group)?)
    } else {
        return Err(UsageError::new("choose a target: --to-earliest, --to-latest, --to-current, --to-offset, --shift-by, --to-datetime, --by-duration or --from-file").into());
    })
}

fn read_offsets_file(path: &Path, group: &str) -> anyhow::Result<Vec<OffsetRow>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::new(format!("cannot read {}: {e}", path.display())))?;
    parse_offsets_csv(&text, group)
        .map_err(|why| UsageError::new(format!("{}: {why}", path.display())).into())
}

/// Partitions in scope, each checked against the cluster.
fn scope(
    args: &OffsetsResetArgs,
    target: &ResetTarget,
    metadata: &ClusterMetadata,
    committed: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<Vec<(String, i32)>> {
    let exists = |topic: &str| -> anyhow::Result<&Vec<i32>> {
        metadata
            .topics
            .get(topic)
            .map(|t| &t.partitions)
            .ok_or_else(|| {
                UsageError::new(format!("topic {topic} does not exist on the cluster")).into()
            })
    };
    let mut out = BTreeSet::new();
    if let ResetTarget::File(rows) = target {
        if !args.topic.is_empty() || args.all_topics || args.category.is_some() {
            return Err(UsageError::new(
                "--from-file names its own partitions; drop --topic, --all-topics and --category",
            )
            .into());
        }
        let file = args
            .from_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for row in rows {
            let known = metadata
                .topics
                .get(&row.topic)
                .is_some_and(|t| t.partitions.contains(&row.partition));
            if !known {
                return Err(UsageError::new(format!(
                    "{file}: line {}: {}/{} does not exist on the cluster. Nothing was changed.",
                    row.line, row.topic, row.partition
                ))
                .into());
            }
            out.insert((row.topic.clone(), row.partition));
        }
        return Ok(out.into_iter().collect());
    }
    if !args.topic.is_empty() {
        for spec in &args.topic {
            let partitions = exists(&spec.topic)?;
            if spec.partitions.is_empty() {
                out.extend(partitions.iter().map(|&p| (spec.topic.clone(), p)));
            }
            for p in &spec.partitions {
                if !partitions.contains(p) {
                    return Err(UsageError::new(format!(
                        "partition {p} of {} does not exist (it has {})",
                        spec.topic,
                        partitions.len()
                    ))
                    .into());
                }
                out.insert((spec.topic.clone(), *p));
            }
        }
    } else if args.all_topics {
        let topics: BTreeSet<&str> = committed.keys().map(|(t, _)| t.as_str()).collect();
        if topics.is_empty() {
            return Err(UsageError::new(format!(
                "group {} has no committed offsets, so --all-topics selects nothing; name topics with --topic",
                args.group
            ))
            .into());
        }
        for topic in topics {
            if let Some(t) = metadata.topics.get(topic) {
                out.extend(t.partitions.iter().map(|&p| (topic.to_string(), p)));
            }
        }
    } else if let Some(name) = &args.category {
        let category = Category::parse(name).ok_or_else(|| {
            let known: Vec<_> = Category::ALL.iter().map(|c| c.slug()).collect();
            UsageError::new(format!(
                "unknown category `{name}`; use one of: {}",
                known.join(", ")
            ))
        })?;
        let reads = catalog::group_named(&args.group)
            .map(|g| g.topics())
            .unwrap_or_default();
        for t in catalog::topics_in(category) {
            let relevant = reads.contains(&t.name) || committed.keys().any(|(c, _)| c == t.name);
            if let (true, Some(meta)) = (relevant, metadata.topics.get(t.name)) {
                out.extend(meta.partitions.iter().map(|&p| (t.name.to_string(), p)));
            }
        }
        if out.is_empty() {
            return Err(UsageError::new(format!(
                "group {} neither reads nor has commits on any {} topic",
                args.group,
                category.slug()
            ))
            .into());
        }
    } else {
        return Err(
            UsageError::new("choose the partitions: --topic, --all-topics or --category").into(),
        );
    }
    Ok(out.into_iter().collect())
}

/// The committed offset the plan asks for, before clamping; `None` to
/// leave the partition alone, with the reason.
fn wanted(
    target: &ResetTarget,
    key: &(String, i32),
    current: Option<i64>,
    marks: Watermarks,
    by_time: &BTreeMap<(String, i32), Option<i64>>,
) -> Result<Option<i64>, String> {
    Ok(match target {
        ResetTarget::Earliest => Some(marks.low),
        ResetTarget::Latest => Some(marks.high),
        ResetTarget::Current | ResetTarget::Shift(_) if current.is_none() => {
            return Err("no committed offset to start from: left as is".into());
        }
        ResetTarget::Current => current,
        ResetTarget::Shift(n) => current.map(|c| c.saturating_add(*n)),
        ResetTarget::Offset(n) => Some(*n),
        ResetTarget::Time(_) => match by_time.get(key) {
            Some(Some(o)) => Some(*o),
            _ => return Err("no record at or after that time: the log end".into()),
        },
        ResetTarget::File(rows) => rows
            .iter()
            .find(|r| r.topic == key.0 && r.partition == key.1)
            .and_then(|r| r.offset),
    })
}

fn plan(
    target: &ResetTarget,
    partitions: &[(String, i32)],
    committed: &BTreeMap<(String, i32), i64>,
    watermarks: &std::collections::HashMap<(String, i32), Watermarks>,
    by_time: &BTreeMap<(String, i32), Option<i64>>,
    uncommitted: UncommittedStart,
) -> anyhow::Result<Vec<PlanRow>> {
    partitions
        .iter()
        .map(|key| {
            let marks = *watermarks.get(key).ok_or_else(|| {
                anyhow::anyhow!("no offsets from the broker for {}/{}", key.0, key.1)
            })?;
            let current = committed.get(key).copied();
            let mut row = PlanRow::as_is(key, current, marks);
            let requested = match wanted(target, key, current, marks, by_time) {
                Ok(requested) => requested,
                Err(why) if matches!(target, ResetTarget::Time(_)) => {
                    row.notes.push(why);
                    Some(marks.high)
                }
                Err(why) => {
                    row.notes.push(why);
                    return Ok(row);
                }
            };
            Ok(row.moved_to(requested, uncommitted))
        })
        .collect()
}

impl PlanRow {
    /// A partition left as it is, before the plan decides anything.
    fn as_is(key: &(String, i32), current: Option<i64>, marks: Watermarks) -> PlanRow {
        PlanRow {
            topic: key.0.clone(),
            partition: key.1,
            current,
            log_start: marks.low,
            log_end: marks.high,
            new: None,
            action: CommitAction::Unchanged,
            notes: Vec::new(),
            skips: 0,
            rereads: 0,
            skips_at_most: false,
            current_error: None,
            result: None,
        }
    }

    /// The row with its commit moved to `requested`, clamped to the log
    /// (`None`: no commit), and what that skips or makes the group read
    /// again.
    fn moved_to(mut self, requested: Option<i64>, uncommitted: UncommittedStart) -> PlanRow {
        let (current, low, high) = (self.current, self.log_start, self.log_end);
        let notes = &mut self.notes;
        let (new, action) = match requested {
            // From an undo file: the group had no commit here.
            None if current.is_none() => {
                notes.push("no commit before, none now".into());
                (None, CommitAction::Unchanged)
            }
            None => {
                notes.push("remove the commit (there was none before)".into());
                (None, CommitAction::DeleteCommit)
            }
            Some(r) => {
                let clamped = r.clamp(low, high);
                if clamped != r {
                    notes.push(format!(
                        "clamped to the log {} (asked for {r})",
                        if r < low { "start" } else { "end" }
                    ));
                }
                let action = if Some(clamped) == current {
                    notes.push("already there".into());
                    CommitAction::Unchanged
                } else {
                    CommitAction::Set
                };
                (Some(clamped), action)
            }
        };
        let (mut skips, mut rereads, mut skips_at_most) = (0, 0, false);
        if let (Some(new), Some(cur)) = (new, current) {
            if new > cur {
                skips = new - cur;
                notes.push(format!("skips {skips}"));
            } else if new < cur {
                rereads = cur - new;
                notes.push(format!("re-reads {rereads}"));
            }
        } else if let (Some(new), None) = (new, current) {
            // Without a commit, a group reading from the earliest would
            // read everything retained: a first commit skips what lies
            // before it, not nothing. Where the group's start is unknown,
            // that is the most it can skip.
            skips = new - low;
            skips_at_most = uncommitted == UncommittedStart::Unknown && skips > 0;
            notes.push(match (skips, skips_at_most) {
                (0, _) => "first commit".into(),
                (n, false) => format!("first commit: skips {n}"),
                (n, true) => format!("first commit: skips up to {n}"),
            });
        }
        PlanRow {
            new,
            action,
            skips,
            rereads,
            skips_at_most,
            ..self
        }
    }
}

async fn reset(args: OffsetsResetArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let group = args.group.trim().to_string();
    if group.is_empty() {
        return Err(UsageError::new("--group is empty").into());
    }
    let target = target_of(&args)?;
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let metadata = kafka.metadata()?;
    // Stable offsets only: a commit a transaction is about to replace is
    // not the group's position, and an undo file built from it would
    // restore the wrong one.
    let names = [group.as_str()];
    let (described, commits) = tokio::join!(
        groups::describe_groups(kafka.admin(), &names, kafka.timeout()),
        groups::group_commits(kafka.offsets_client(), &group, kafka.timeout(), true),
    );
    let commits = commits?;
    let committed = &commits.offsets;

    let partitions = scope(&args, &target, &metadata, committed)?;
    let watermarks = kafka.watermarks(&partitions)?;
    let by_time = match &target {
        ResetTarget::Time(at) => kafka.offsets_at(&partitions, *at)?.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let mut rows = plan(
        &target,
        &partitions,
        committed,
        &watermarks,
        &by_time,
        UncommittedStart::of_group(&group),
    )?;
    let unknown = mark_unknown_commits(&mut rows, &commits.errors);

    if args.strict {
        let clamped: Vec<String> = rows
            .iter()
            .filter(|r| {
                r.notes
                    .iter()
                    .any(|n| n.starts_with("clamped") || n.starts_with("no record at or after"))
            })
            .map(|r| format!("{}/{}", r.topic, r.partition))
            .collect();
        if !clamped.is_empty() {
            return Err(UsageError::new(format!(
                "--strict: the target is outside the retained range (or no record is that recent) on {}. Nothing was changed.",
                clamped.join(", ")
            ))
            .into());
        }
    }
    if args.export.is_some()
        && let Some(why) = unknown_refusal(&group, &unknown, "write a plan of")
    {
        return Err(Refusal::new(why).into());
    }
    if let Some(path) = &args.export {
        write_plan_csv(path, &group, &rows)?;
        ctx.printer
            .note(&format!("plan written to {}", path.display()));
    }

    // A group that cannot be described is refused like a live one.
    let live = groups::live_refusals(&names, &described, LIVE_REFUSAL).pop();
    // --to-current changes nothing, whatever the commit is.
    let unknown_refused = (!matches!(target, ResetTarget::Current))
        .then(|| unknown_refusal(&group, &unknown, "reset"))
        .flatten();
    let changing = rows
        .iter()
        .filter(|r| r.action != CommitAction::Unchanged)
        .count();
    if !(args.apply.execute && ctx.printer.is_json()) {
        print_plan(&group, &rows, false, None, ctx)?;
    }
    let proposal = Proposal {
        command: "offsets reset",
        plan: serde_json::to_value(report_of(&group, &rows, false, None))?,
        changes: changing,
        question: confirmation_question(&group, &rows),
        action: "apply".into(),
        needs_force: Vec::new(),
        force: false,
        refusals: live.into_iter().chain(unknown_refused).collect(),
    };
    let trail = match flow::decide(ctx, kafka, &args.apply, proposal).await? {
        Decision::Preview | Decision::Nothing => return Ok(ExitStatus::Success),
        Decision::Act(trail) => trail,
    };
    let applied = apply(kafka, &group, rows, changing, ctx).await;
    flow::conclude(trail, applied)
}

/// Moves the group as planned, after checking once more that nobody
/// joined it, and reports every partition.
async fn apply(
    kafka: &Kafka,
    group: &str,
    mut rows: Vec<PlanRow>,
    changing: usize,
    ctx: &Context,
) -> anyhow::Result<(OffsetsResetReport, ExitStatus)> {
    let group = group.to_owned();
    // A consumer may have joined while the question was open; the broker
    // would refuse it anyway, but asking again costs one round trip and
    // spares a half-applied reset.
    groups::refuse_live_group(kafka.admin(), &group, kafka.timeout(), LIVE_REFUSAL).await?;

    let undo =
        write_undo(&group, &rows).context("cannot write the undo file, so nothing was changed")?;
    ctx.printer.note(&format!(
        "undo file: {} (restore with: smmctl offsets reset --group {} --from-file {} --execute)",
        undo.display(),
        shell_quote(&group),
        shell_quote(&undo.display().to_string())
    ));

    let set: Vec<(String, i32, i64)> = rows
        .iter()
        .filter(|r| r.action == CommitAction::Set)
        .filter_map(|r| Some((r.topic.clone(), r.partition, r.new?)))
        .collect();
    let delete: Vec<(String, i32)> = rows
        .iter()
        .filter(|r| r.action == CommitAction::DeleteCommit)
        .map(|r| (r.topic.clone(), r.partition))
        .collect();
    // Both requests are always tried and every partition reported, so a
    // failure of one never hides what the other did.
    let mut results = Vec::new();
    let mut request_errors: BTreeMap<(String, i32), String> = BTreeMap::new();
    if !set.is_empty() {
        match groups::alter_group_offsets(kafka.admin(), &group, &set, kafka.timeout()).await {
            Ok(r) => results.extend(r),
            Err(e) => {
                for (topic, partition, _) in &set {
                    request_errors.insert((topic.clone(), *partition), e.to_string());
                }
            }
        }
    }
    if !delete.is_empty() {
        match groups::delete_group_offsets(kafka.admin(), &group, &delete, kafka.timeout()).await {
            Ok(r) => results.extend(r),
            Err(e) => {
                for key in &delete {
                    request_errors.insert(key.clone(), e.to_string());
                }
            }
        }
    }
    let mut failed = 0;
    for row in rows.iter_mut() {
        if row.action == CommitAction::Unchanged {
            row.result = Some("unchanged".into());
            continue;
        }
        let answer = results
            .iter()
            .find(|r| r.topic == row.topic && r.partition == row.partition);
        row.result = Some(match answer {
            Some(r) => match &r.error {
                None => "ok".into(),
                Some(e) => {
                    failed += 1;
                    format!("failed: {}", describe_code(e.code))
                }
            },
            None => {
                failed += 1;
                match request_errors.get(&(row.topic.clone(), row.partition)) {
                    Some(e) => format!("failed: {e}"),
                    None => "failed: no answer for this partition".into(),
                }
            }
        });
    }
    if failed == changing {
        // Nothing changed, so the undo file describes nothing to undo, and
        // restoring it later would rewind the group to stale offsets.
        let _ = std::fs::remove_file(&undo);
        ctx.printer.warn(&format!(
            "nothing was changed, so the undo file {} was removed",
            undo.display()
        ));
    }
    if !ctx.printer.is_json() {
        ctx.printer.line("");
    }
    print_plan(&group, &rows, true, Some(&undo), ctx)?;
    let status = if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    Ok((report_of(&group, &rows, true, Some(&undo)), status))
}

fn report_of(
    group: &str,
    rows: &[PlanRow],
    executed: bool,
    undo: Option<&Path>,
) -> OffsetsResetReport {
    OffsetsResetReport {
        group: group.to_owned(),
        executed,
        undo_file: undo.map(|u| u.display().to_string()),
        partitions: rows.to_vec(),
    }
}

/// What the reset costs, as the confirmation asks it.
fn confirmation_question(group: &str, rows: &[PlanRow]) -> String {
    let changing: Vec<&PlanRow> = rows
        .iter()
        .filter(|r| r.action != CommitAction::Unchanged)
        .collect();
    let skipped: i64 = changing.iter().map(|r| r.skips).sum();
    let reread: i64 = changing.iter().map(|r| r.rereads).sum();
    let up_to = if changing.iter().any(|r| r.skips_at_most) {
        "up to "
    } else {
        ""
    };
    let first_commits = changing
        .iter()
        .filter(|r| r.current.is_none() && r.new.is_some())
        .count();
    let removed = changing
        .iter()
        .filter(|r| r.action == CommitAction::DeleteCommit)
        .count();
    let mut cost = format!("skips {up_to}{skipped} record(s), re-reads {reread}");
    if first_commits > 0 {
        cost.push_str(&format!(
            ", sets a first commit on {first_commits} partition(s)"
        ));
    }
    if removed > 0 {
        cost.push_str(&format!(", removes {removed} commit(s)"));
    }
    format!("Reset {group} on {} partition(s): {cost}?", changing.len())
}

/// Notes the partitions whose current commit the broker answered with an
/// error, and returns them with the error, as `topic/partition (error)`.
/// Their plan rows were made as if there were no commit, which may be
/// wrong: the group may well have one.
fn mark_unknown_commits(
    rows: &mut [PlanRow],
    errors: &BTreeMap<(String, i32), groups::AdminError>,
) -> Vec<String> {
    let mut unknown = Vec::new();
    for row in rows.iter_mut() {
        if let Some(e) = errors.get(&(row.topic.clone(), row.partition)) {
            row.notes.insert(0, format!("current commit unknown: {e}"));
            row.current_error = Some(e.to_string());
            unknown.push(format!("{}/{} ({e})", row.topic, row.partition));
        }
    }
    unknown
}

/// Why nothing may change when some partitions' current commit is
/// unknown: the undo file would record "no commit" there, and restoring it
/// would delete the commit the group really has.
fn unknown_refusal(group: &str, unknown: &[String], doing: &str) -> Option<String> {
    (!unknown.is_empty()).then(|| {
        format!(
            "refusing to {doing} the offsets of group {group}: its current commit could not be \
             read on {}, so it could not be restored. Try again once the broker answers for it. \
             Nothing was changed.",
            unknown.join(", ")
        )
    })
}

fn print_plan(
    group: &str,
    rows: &[PlanRow],
    applied: bool,
    undo: Option<&Path>,
    ctx: &Context,
) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if p.is_json() {
        return p.json(&report_of(group, rows, applied, undo));
    }
    let mut table = p.plan_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT",
            "LOG-START",
            "LOG-END",
            "NEW",
        ],
        applied,
    );
    for r in rows {
        let mut row = vec![
            p.cell(group, Tone::Plain),
            p.cell(r.topic.as_str(), Tone::Plain),
            p.cell(r.partition.to_string(), Tone::Plain),
            p.cell(or_dash(r.current), Tone::Plain),
            p.cell(r.log_start.to_string(), Tone::Plain),
            p.cell(r.log_end.to_string(), Tone::Plain),
            p.cell(
                or_dash(r.new),
                if r.action == CommitAction::Set {
                    Tone::Warn
                } else {
                    Tone::Plain
                },
            ),
        ];
        if applied {
            row.push(p.result_cell(r.result.as_deref()));
        }
        row.push(p.cell(r.notes.join("; "), Tone::Plain));
        table.add_row(row);
    }
    p.align_right(&mut table, &[2, 3, 4, 5, 6]);
    p.print_table(&table);
    Ok(())
}

/// Quotes a word for a POSIX shell when it needs it, so printed commands
/// can be pasted as they are.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@=+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn csv_offset(offset: Option<i64>) -> String {
    offset.map(|o| o.to_string()).unwrap_or_else(|| "-".into())
}

/// The plan as `topic,partition,offset` rows. Topic names cannot hold a
/// comma; group names can, so the group stays in a comment.
fn write_plan_csv(path: &Path, group: &str, rows: &[PlanRow]) -> anyhow::Result<()> {
    let mut text = format!("# smmctl offsets plan for group {}\n", group.escape_debug());
    for r in rows {
        let target = if r.action == CommitAction::Unchanged {
            r.current
        } else {
            r.new
        };
        text.push_str(&format!(
            "{},{},{}\n",
            r.topic,
            r.partition,
            csv_offset(target)
        ));
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `$XDG_STATE_HOME/smmctl/undo`, usually `~/.local/state/smmctl/undo`.
fn undo_dir() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("smmctl")
        .join("undo")
}

/// Writes the offsets as they were before the reset; `-` marks partitions
/// with no commit, which restoring removes again. Keeps the newest files.
fn write_undo(group: &str, rows: &[PlanRow]) -> anyhow::Result<PathBuf> {
    let dir = undo_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = jiff::Timestamp::now();
    let safe_group: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!(
        "offsets-{safe_group}-{}.csv",
        now.strftime("%Y%m%dT%H%M%S%.3fZ")
    ));
    let mut text = format!(
        "# smmctl undo file: offsets of group {} before the reset at {now}\n\
         # restore: smmctl offsets reset --group {} --from-file {} --execute\n\
         # '-' means the group had no committed offset there\n",
        group.escape_debug(),
        shell_quote(group),
        shell_quote(&path.display().to_string()),
    );
    let changed: Vec<&PlanRow> = rows
        .iter()
        .filter(|r| r.action != CommitAction::Unchanged)
        .collect();
    for r in &changed {
        text.push_str(&format!(
            "{},{},{}\n",
            r.topic,
            r.partition,
            csv_offset(r.current)
        ));
    }
    // An undo file that cannot be read back is no undo file: check before
    // anything changes.
    let parsed = parse_offsets_csv(&text, group)
        .map_err(anyhow::Error::msg)
        .context("the undo file would not read back")?;
    anyhow::ensure!(
        parsed.len() == changed.len(),
        "the undo file would not read back whole"
    );
    let mut file = std::fs::File::create_new(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    prune_undo(&dir);
    Ok(path)
}

fn prune_undo(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("offsets-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(UNDO_KEPT);
    for (_, path) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key() -> (String, i32) {
        ("t".into(), 0)
    }

    /// The plan for the one partition `key()`, given its commit, its
    /// watermarks, the first offset at the target's time, and where the
    /// group starts without a commit.
    fn plan_key(
        target: &ResetTarget,
        current: Option<i64>,
        marks: Watermarks,
        at_time: Option<i64>,
        start: UncommittedStart,
    ) -> Vec<PlanRow> {
        let committed: BTreeMap<_, _> = current.map(|c| (key(), c)).into_iter().collect();
        let watermarks: HashMap<_, _> = [(key(), marks)].into_iter().collect();
        let by_time: BTreeMap<_, _> = [(key(), at_time)].into_iter().collect();
        plan(target, &[key()], &committed, &watermarks, &by_time, start).unwrap()
    }

    fn plan_one(target: ResetTarget, current: Option<i64>, low: i64, high: i64) -> PlanRow {
        let marks = Watermarks { low, high };
        plan_key(&target, current, marks, Some(42), UncommittedStart::Unknown).remove(0)
    }

    #[test]
    fn targets_resolve_to_the_expected_offsets() {
        let cases = [
            (
                ResetTarget::Earliest,
                Some(50),
                10,
                100,
                Some(10),
                CommitAction::Set,
            ),
            (
                ResetTarget::Latest,
                Some(50),
                10,
                100,
                Some(100),
                CommitAction::Set,
            ),
            (
                ResetTarget::Current,
                Some(50),
                10,
                100,
                Some(50),
                CommitAction::Unchanged,
            ),
            (
                ResetTarget::Current,
                None,
                10,
                100,
                None,
                CommitAction::Unchanged,
            ),
            (
                ResetTarget::Offset(70),
                Some(50),
                10,
                100,
                Some(70),
                CommitAction::Set,
            ),
            (
                ResetTarget::Offset(5),
                Some(50),
                10,
                100,
                Some(10),
                CommitAction::Set,
            ),
            (
                ResetTarget::Offset(500),
                Some(50),
                10,
                100,
                Some(100),
                CommitAction::Set,
            ),
            (
                ResetTarget::Shift(-20),
                Some(50),
                10,
                100,
                Some(30),
                CommitAction::Set,
            ),
            (
                ResetTarget::Shift(-80),
                Some(50),
                10,
                100,
                Some(10),
                CommitAction::Set,
            ),
            (
                ResetTarget::Shift(5),
                None,
                10,
                100,
                None,
                CommitAction::Unchanged,
            ),
            (
                ResetTarget::Time(jiff::Timestamp::UNIX_EPOCH),
                Some(50),
                10,
                100,
                Some(42),
                CommitAction::Set,
            ),
        ];
        for (target, current, low, high, new, action) in cases {
            let row = plan_one(target.clone(), current, low, high);
            assert_eq!(
                (row.new, row.action),
                (new, action),
                "{target:?} from {current:?}"
            );
        }
    }

    #[test]
    fn notes_say_what_moves_and_what_was_clamped() {
        let row = plan_one(ResetTarget::Offset(500), Some(50), 10, 100);
        assert_eq!(
            row.notes,
            ["clamped to the log end (asked for 500)", "skips 50"]
        );
        let row = plan_one(ResetTarget::Shift(-80), Some(50), 10, 100);
        assert_eq!(
            row.notes,
            ["clamped to the log start (asked for -30)", "re-reads 40"]
        );
        let row = plan_one(ResetTarget::Earliest, None, 0, 9);
        assert_eq!(row.notes, ["first commit"]);
    }

    #[test]
    fn a_time_with_no_later_record_goes_to_the_log_end() {
        let row = plan_key(
            &ResetTarget::Time(jiff::Timestamp::now()),
            None,
            Watermarks { low: 0, high: 9 },
            None,
            UncommittedStart::Unknown,
        )
        .remove(0);
        assert_eq!((row.new, row.action), (Some(9), CommitAction::Set));
        assert!(
            row.notes[0].contains("no record at or after"),
            "{:?}",
            row.notes
        );
    }

    #[test]
    fn a_first_commit_skips_what_lies_before_it_from_the_log_start() {
        let marks = Watermarks { low: 30, high: 100 };
        // --to-latest never looks a time up, so no offset at a time is given.
        let first = |start| plan_key(&ResetTarget::Latest, None, marks, None, start);
        let panel = first(UncommittedStart::LogStart);
        assert_eq!((panel[0].skips, panel[0].rereads), (70, 0));
        assert_eq!(panel[0].notes, ["first commit: skips 70"]);
        assert_eq!(
            confirmation_question("g", &panel),
            "Reset g on 1 partition(s): skips 70 record(s), re-reads 0, sets a first commit on 1 partition(s)?"
        );
        let other = first(UncommittedStart::Unknown);
        assert_eq!(other[0].skips, 70);
        assert_eq!(other[0].notes, ["first commit: skips up to 70"]);
        assert_eq!(
            confirmation_question("g", &other),
            "Reset g on 1 partition(s): skips up to 70 record(s), re-reads 0, sets a first commit on 1 partition(s)?"
        );
    }

    #[test]
    fn undo_rows_without_a_commit_remove_the_commit() {
        let file = vec![OffsetRow {
            line: 1,
            topic: "t".into(),
            partition: 0,
            offset: None,
        }];
        let row = plan_one(ResetTarget::File(file.clone()), Some(50), 0, 100);
        assert_eq!((row.new, row.action), (None, CommitAction::DeleteCommit));
        let row = plan_one(ResetTarget::File(file), None, 0, 100);
        assert_eq!(row.action, CommitAction::Unchanged);
    }
}
