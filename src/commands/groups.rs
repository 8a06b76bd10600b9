//! `smmctl groups list|describe|delete`.

use anyhow::Context as _;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use smm_workers::contract::catalog::{self, GROUPS};

use crate::Context;
use crate::cli::{GroupsCommand, GroupsDeleteArgs, GroupsDescribeArgs, GroupsListArgs};
use crate::commands::flow::{self, Decision, Proposal};
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::groups::{self, GroupDescription, GroupListing, GroupState};
use crate::kafka::{AdminOutcome, Kafka};
use crate::lag::{GroupLag, Request, UncommittedStart, collect, format_seconds};
use crate::output::{Tone, or_dash};

pub async fn run(cmd: GroupsCommand, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let kafka = Kafka::from_settings(&ctx.settings)?;
    match cmd {
        GroupsCommand::List(args) => list(args, kafka, ctx).await,
        GroupsCommand::Describe(args) => describe(args, kafka, ctx).await,
        GroupsCommand::Delete(args) => delete(args, kafka, ctx).await,
    }
}

/// Every group the brokers listed, and whether one of them did not answer
/// (then a group missing from the list may still exist).
async fn listings(
    kafka: &'static Kafka,
    ctx: &Context,
) -> anyhow::Result<(Vec<GroupListing>, bool)> {
    // Connection check first, so an unreachable cluster is one clear error.
    kafka.metadata()?;
    let (mut listings, partial) = groups::list_groups(kafka.admin(), kafka.timeout())
        .await
        .context("unable to list the consumer groups")?;
    for error in &partial {
        ctx.printer.warn(&format!(
            "a broker did not answer the group listing, so it may be incomplete: {error}"
        ));
    }
    listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok((listings, !partial.is_empty()))
}

async fn describe_all(
    kafka: &'static Kafka,
    names: &[&str],
) -> anyhow::Result<Vec<GroupDescription>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    groups::describe_groups(kafka.admin(), names, kafka.timeout())
        .await
        .context("unable to describe the consumer groups")
}

/// Every named group must exist; an unknown one is bad input, named with
/// the closest real group, and nothing is done.
fn require_known(names: &[String], listings: &[GroupListing]) -> anyhow::Result<()> {
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !listings.iter().any(|l| &l.group_id == *n))
        .map(|n| {
            let closest = listings
                .iter()
                .map(|l| (l.group_id.as_str(), strsim::levenshtein(n, &l.group_id)))
                .filter(|&(_, d)| d <= 3)
                .min_by_key(|&(_, d)| d);
            match closest {
                Some((meant, _)) => format!("{n} (did you mean {meant}?)"),
                None => n.clone(),
            }
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(UsageError::new(format!(
            "no such consumer group on the cluster: {}",
            unknown.join(", ")
        ))
        .into())
    }
}

// ---------------------------------------------------------------- list

async fn list(
    args: GroupsListArgs,
    kafka: &'static Kafka,
    ctx: &Context,
) -> anyhow::Result<ExitStatus> {
    let states: Vec<GroupState> = args
        .state
        .iter()
        .map(|s| {
            GroupState::parse(s).ok_or_else(|| {
                UsageError::new(format!(
                    "unknown group state `{s}`; use stable, empty, dead, preparing-rebalance or completing-rebalance"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let (listings, _) = listings(kafka, ctx).await?;
    let names: Vec<&str> = listings.iter().map(|l| l.group_id.as_str()).collect();
    let descriptions = describe_all(kafka, &names).await?;
    let rows: Vec<(&GroupListing, Option<&GroupDescription>)> = listings
        .iter()
        .map(|l| (l, descriptions.iter().find(|d| d.group_id == l.group_id)))
        .filter(|(l, d)| {
            let state = d.map(|d| d.state).unwrap_or(l.state);
            states.is_empty() || states.contains(&state)
        })
        .collect();
    let missing: Vec<&str> = GROUPS
        .iter()
        .map(|g| g.name)
        .filter(|n| !listings.iter().any(|l| l.group_id == *n))
        .collect();

    let p = &ctx.printer;
    if p.is_json() {
        p.json(&json!({
            "groups": rows.iter().map(|(l, d)| json!({
                "group": l.group_id,
                "state": d.map(|d| d.state).unwrap_or(l.state).as_str(),
                "type": format!("{:?}", l.group_type).to_lowercase(),
                "protocol": d.map(|d| d.partition_assignor.as_str()).filter(|a| !a.is_empty()),
                "members": d.map(|d| d.members.len()),
                "seed": catalog::group_named(&l.group_id).is_some(),
            })).collect::<Vec<_>>(),
            "missing_seed_groups": missing,
        }))?;
        return Ok(ExitStatus::Success);
    }
    if rows.is_empty() {
        p.line("No consumer groups matched.");
    } else {
        let mut table = p.table(["GROUP", "STATE", "PROTOCOL", "MEMBERS", "SEED"]);
        for (l, d) in &rows {
            let state = d.map(|d| d.state).unwrap_or(l.state);
            table.add_row(vec![
                p.cell(l.group_id.as_str(), Tone::Plain),
                p.cell(state.as_str(), state_tone(state)),
                p.cell(
                    or_dash(
                        d.map(|d| d.partition_assignor.as_str())
                            .filter(|a| !a.is_empty()),
                    ),
                    Tone::Plain,
                ),
                p.cell(or_dash(d.map(|d| d.members.len())), Tone::Plain),
                p.cell(
                    if catalog::group_named(&l.group_id).is_some() {
                        "yes"
                    } else {
                        "-"
                    },
                    Tone::Plain,
                ),
            ]);
        }
        p.align_right(&mut table, &[3]);
        p.print_table(&table);
    }
    if !missing.is_empty() && states.is_empty() {
        p.note(&format!(
            "panel groups not on the cluster yet: {}",
            missing.join(", ")
        ));
    }
    Ok(ExitStatus::Success)
}

fn state_tone(state: GroupState) -> Tone {
    match state {
        GroupState::Stable | GroupState::Empty => Tone::Good,
        GroupState::PreparingRebalance
        | GroupState::CompletingRebalance
        | GroupState::Assigning
        | GroupState::Reconciling => Tone::Warn,
        GroupState::Dead | GroupState::Unknown => Tone::Bad,
    }
}

// ---------------------------------------------------------------- describe

async fn describe(
    args: GroupsDescribeArgs,
    kafka: &'static Kafka,
    ctx: &Context,
) -> anyhow::Result<ExitStatus> {
    let (_, measured) = measure(kafka, &args.groups, true, ctx).await?;

    let p = &ctx.printer;
    if p.is_json() {
        p.json(&json!({
            "groups": measured.iter().map(|g| {
                json!({
                    "group": g.group,
                    "coordinator": g.coordinator.as_ref().map(|c| json!({"id": c.id, "host": c.host, "port": c.port})),
                    "state": g.state.as_str(),
                    "protocol": (!g.assignor.is_empty()).then_some(&g.assignor),
                    "members": g.members.iter().map(|m| json!({
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "host": m.host,
                        "instance_id": m.group_instance_id,
                        "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "total_lag": g.total_lag(),
                    "max_lag_seconds": g.max_lag_seconds(),
                    "partitions": g.partitions.iter().map(|part| part.to_json()).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
        }))?;
        return Ok(partial(&measured, ctx));
    }
    for (i, g) in measured.iter().enumerate() {
        if i > 0 {
            p.line("");
        }
        print_group(g, ctx);
    }
    Ok(partial(&measured, ctx))
}

/// A description missing some commits is a partial result: shown, named
/// on stderr, and exit 1, as `lag` does.
fn partial(measured: &[GroupLag], ctx: &Context) -> ExitStatus {
    let mut status = ExitStatus::Success;
    for g in measured {
        if let Some(why) = g.incomplete() {
            ctx.printer.warn(&format!("{}: incomplete: {why}", g.group));
            status = ExitStatus::Failure;
        }
    }
    status
}

fn print_group(g: &GroupLag, ctx: &Context) {
    let p = &ctx.printer;
    let coordinator = g
        .coordinator
        .as_ref()
        .map(|c| format!("{} ({}:{})", c.id, c.host, c.port));
    let mut summary = p.table(["GROUP", g.group.as_str()]);
    for (key, value) in [
        ("COORDINATOR", or_dash(coordinator)),
        ("STATE", g.state.as_str().to_string()),
        (
            "PROTOCOL",
            or_dash(Some(g.assignor.as_str()).filter(|a| !a.is_empty())),
        ),
        ("MEMBERS", g.members.len().to_string()),
        ("TOTAL-LAG", or_dash(g.total_lag())),
        (
            "LAG-TIME",
            g.max_lag_seconds()
                .map(format_seconds)
                .unwrap_or_else(|| "-".into()),
        ),
    ] {
        summary.add_row(vec![key.to_string(), value]);
    }
    p.print_table(&summary);
    p.line("");
    if g.partitions.is_empty() {
        p.line("The group has no committed offsets and no assigned partitions.");
        return;
    }
    let mut table = p.table([
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-START-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "LAG-TIME",
        "MEMBER-ID",
        "CLIENT-ID",
        "HOST",
    ]);
    for part in &g.partitions {
        table.add_row(vec![
            part.topic.clone(),
            part.partition.to_string(),
            or_dash(part.committed),
            or_dash(part.log_start),
            or_dash(part.log_end),
            or_dash(part.lag),
            part.lag_seconds
                .map(format_seconds)
                .unwrap_or_else(|| "-".into()),
            or_dash(part.member.as_ref().map(|m| m.member_id.as_str())),
            or_dash(part.member.as_ref().map(|m| m.client_id.as_str())),
            or_dash(part.member.as_ref().map(|m| m.host.as_str())),
        ]);
    }
    p.align_right(&mut table, &[1, 2, 3, 4, 5, 6]);
    p.print_table(&table);
    let uncommitted: Vec<String> = g
        .partitions
        .iter()
        .filter(|part| part.is_uncommitted())
        .map(|part| format!("{}/{}", part.topic, part.partition))
        .collect();
    if !uncommitted.is_empty() {
        p.note(&match UncommittedStart::of_group(&g.group) {
            UncommittedStart::LogStart => format!(
                "note: no committed offset on {}. The panel's workers read from the earliest \
                 offset, so the lag there counts from the log start.",
                uncommitted.join(", ")
            ),
            UncommittedStart::Unknown => format!(
                "note: no committed offset on {}. The group will start there wherever its consumers' \
                 auto.offset.reset says (librdkafka and the Java client default to latest, which skips \
                 what is already in the log); smmctl shows no lag rather than guess.",
                uncommitted.join(", ")
            ),
        });
    }
    for part in g.partitions.iter().filter(|part| {
        matches!(
            part.note,
            Some(
                crate::lag::LagNote::BeforeLogStart { .. }
                    | crate::lag::LagNote::PastLogEnd { .. }
                    | crate::lag::LagNote::CommitUnreadable
                    | crate::lag::LagNote::OffsetsUnavailable
            )
        )
    }) {
        if let Some(note) = part.note_text() {
            p.line(&format!("note: {}/{}: {note}", part.topic, part.partition));
        }
    }
}

/// The named groups, each once and each known to the cluster, with their
/// lag and members, every one described (for the coordinator, and so no
/// member is missed).
async fn measure(
    kafka: &'static Kafka,
    given: &[String],
    time_lag: bool,
    ctx: &Context,
) -> anyhow::Result<(Vec<String>, Vec<GroupLag>)> {
    let names = dedup(given);
    let (listings, partial) = listings(kafka, ctx).await?;
    // A name a partial listing lacks is not known to be wrong: it is
    // described like the rest, and shown Dead only if it does not exist.
    if !partial {
        require_known(&names, &listings)?;
    }
    let request = Request {
        groups: names.clone(),
        topics: Vec::new(),
        include_catalog_topics: false,
        time_lag,
        listings: Some(listings),
        listing_partial: partial,
        describe_all: true,
    };
    let measured = collect(kafka, &request, &ctx.settings.thresholds).await?;
    Ok((names, measured))
}

fn dedup(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------- delete

async fn delete(
    args: GroupsDeleteArgs,
    kafka: &'static Kafka,
    ctx: &Context,
) -> anyhow::Result<ExitStatus> {
    let (names, measured) = measure(kafka, &args.groups, false, ctx).await?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();

    let p = &ctx.printer;
    let report = GroupsDeleteReport {
        executed: false,
        groups: measured
            .iter()
            .map(|g| GroupDeleteRow {
                group: g.group.clone(),
                state: g.state.as_str().to_owned(),
                members: g.members.len(),
                committed_partitions: g
                    .partitions
                    .iter()
                    .filter(|x| x.committed.is_some())
                    .count(),
                total_lag: g.total_lag(),
                result: None,
            })
            .collect(),
    };
    let plan = serde_json::to_value(&report)?;
    if !args.apply.execute && p.is_json() {
        p.json(&plan)?;
    } else if !p.is_json() {
        print_delete_plan(&measured, ctx);
    }

    // One check for every command that must not touch a live group: a
    // group that cannot be described is refused too.
    let refusals =
        groups::live_group_refusals(kafka.admin(), &refs, kafka.timeout(), "delete").await;
    let proposal = Proposal {
        command: "groups delete",
        plan,
        changes: names.len(),
        question: format!(
            "Delete {} consumer group(s) and their committed offsets? This cannot be undone",
            names.len()
        ),
        action: format!("delete {} group(s)", names.len()),
        needs_force: Vec::new(),
        force: false,
        refusals,
    };
    let trail = match flow::decide(ctx, kafka, &args.apply, proposal).await? {
        Decision::Preview | Decision::Nothing => return Ok(ExitStatus::Success),
        Decision::Act(trail) => trail,
    };
    let deleted = delete_planned(kafka, &refs, report, ctx).await;
    flow::conclude(trail, deleted)
}

/// Deletes the groups and reports each one's result; the table lists them
/// in the order the broker answered.
async fn delete_planned(
    kafka: &'static Kafka,
    names: &[&str],
    mut report: GroupsDeleteReport,
    ctx: &Context,
) -> anyhow::Result<(GroupsDeleteReport, ExitStatus)> {
    let outcomes = kafka.delete_groups(names).await?;
    let failed = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, AdminOutcome::Failed(_)))
        .count();
    report.executed = true;
    for (name, o) in &outcomes {
        if let Some(row) = report.groups.iter_mut().find(|r| &r.group == name) {
            row.result = Some(delete_result(o).0);
        }
    }
    let p = &ctx.printer;
    if p.is_json() {
        p.json(&report)?;
    } else {
        p.line("");
        let mut table = p.table(["GROUP", "RESULT"]);
        for (name, o) in &outcomes {
            let (text, tone) = delete_result(o);
            table.add_row(vec![p.cell(name.as_str(), Tone::Plain), p.cell(text, tone)]);
        }
        p.print_table(&table);
    }
    let status = if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    Ok((report, status))
}

/// A group's result, as the report and the table word it.
fn delete_result(outcome: &AdminOutcome) -> (String, Tone) {
    match outcome {
        AdminOutcome::Failed(why) => (format!("failed: {why}"), Tone::Bad),
        _ => ("deleted".to_string(), Tone::Good),
    }
}

/// What `groups delete -o json` prints, previewed or executed.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupsDeleteReport {
    pub executed: bool,
    pub groups: Vec<GroupDeleteRow>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupDeleteRow {
    pub group: String,
    pub state: String,
    pub members: usize,
    pub committed_partitions: usize,
    pub total_lag: Option<i64>,
    /// `deleted`, or `failed: …`; only once executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

fn print_delete_plan(measured: &[GroupLag], ctx: &Context) {
    let p = &ctx.printer;
    let mut table = p.table([
        "GROUP",
        "STATE",
        "MEMBERS",
        "COMMITTED-PARTITIONS",
        "TOTAL-LAG",
        "NOTE",
    ]);
    for g in measured {
        table.add_row(vec![
            p.cell(g.group.as_str(), Tone::Plain),
            p.cell(g.state.as_str(), state_tone(g.state)),
            p.cell(g.members.len().to_string(), Tone::Plain),
            p.cell(
                g.partitions
                    .iter()
                    .filter(|x| x.committed.is_some())
                    .count()
                    .to_string(),
                Tone::Plain,
            ),
            p.cell(or_dash(g.total_lag()), Tone::Plain),
            p.cell(
                if !g.members.is_empty() {
                    "has live members: refused"
                } else if catalog::group_named(&g.group).is_some() {
                    "panel group: its workers will start over per auto.offset.reset"
                } else {
                    ""
                },
                if !g.members.is_empty() {
                    Tone::Bad
                } else {
                    Tone::Plain
                },
            ),
        ]);
    }
    p.align_right(&mut table, &[2, 3, 4]);
    p.print_table(&table);
}
