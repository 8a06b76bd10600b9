//! `smmctl dlq replay TOPIC`: send dead letters back, resumably, with the
//! copies and the group's progress in one Kafka transaction per batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use schemars::JsonSchema;
use serde::Serialize;
use smm_workers::contract::catalog;
use smm_workers::contract::dead_letter::{
    Archived, DeadLetter, Destination, Filter, RawRecord, replay_headers,
};

use super::{Letter, decode_all, filter_of, one_line, partitions_of};
use crate::Context;
use crate::cli::DlqReplayArgs;
use crate::commands::flow::{self, Decision, Proposal};
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::group_position::{committed, move_group};
use crate::kafka::live_groups::{refusals_to_move, refuse_to_move_live_group};
use crate::kafka::reader::Reader;
use crate::kafka::spans::{Span, Start, spans};
use crate::kafka::transaction::{
    CommitFailure, TransactionGroup, commit_with_offsets, owned_headers, transactional_config,
};
use crate::kafka::walk::Positions;
use crate::kafka::{ClusterMetadata, Kafka};
use crate::output::or_dash;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Replay(String),
    Unresolvable(String),
    /// The poison guard: replayed this many times already.
    Refused(u32),
    /// Selected, but behind a record of its partition that is not replayed:
    /// the group could never be moved past it, so a later run would send
    /// it again. It waits for that record to be handled.
    HeldBack,
    NotSelected,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Skipped {
    partition: i32,
    offset: i64,
    reason: String,
}

/// What `dlq replay -o json` prints, previewed or executed.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayReport {
    topic: String,
    group: Option<String>,
    executed: bool,
    /// `transactional` (exactly once for read_committed readers only;
    /// read_uncommitted ones may see copies of an aborted batch too) or
    /// `at_least_once`.
    guarantee: Option<&'static str>,
    destinations: BTreeMap<String, usize>,
    replayed: usize,
    skipped: Vec<Skipped>,
    /// Selected records behind one that is not replayed: not sent, and
    /// the group stops before them (exit 1).
    held_back: usize,
    not_selected: usize,
    committed: BTreeMap<i32, i64>,
}

fn plan(
    letter: &DeadLetter,
    selected: bool,
    destination: &Destination,
    topics: &BTreeSet<String>,
    max_replays: u32,
    force: bool,
) -> Plan {
    if !selected {
        return Plan::NotSelected;
    }
    if letter.replay_count >= max_replays && !force {
        return Plan::Refused(letter.replay_count);
    }
    match destination.resolve(letter, topics) {
        Ok(topic) if topics.contains(&topic) => Plan::Replay(topic),
        Ok(topic) => Plan::Unresolvable(format!(
            "the destination {topic} does not exist on the cluster"
        )),
        Err(why) => Plan::Unresolvable(why),
    }
}

fn destination_of(args: &DlqReplayArgs) -> Destination {
    match (&args.to, args.to_first_retry) {
        (Some(to), _) => Destination::To(to.clone()),
        (None, true) => Destination::FirstRetry,
        (None, false) => Destination::Original,
    }
}

fn is_retry_topic(topic: &str) -> bool {
    catalog::RETRY_POLICIES
        .iter()
        .any(|p| p.hops.iter().any(|h| h.topic == Some(topic)))
}

pub async fn run(args: DlqReplayArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let filter = filter_of(&args.filter);
    let destination = destination_of(&args);
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let metadata = kafka.metadata()?;

    let source = source_of(kafka, &args, &metadata, &filter).await?;
    let topic = source.name(args.from_file.as_deref());
    let planner = Planner {
        filter: &filter,
        destination: &destination,
        metadata: &metadata,
        topics: metadata.topics.keys().cloned().collect(),
        max_replays: args.max_replays,
        force: args.force,
    };
    let new_report = || ReplayReport {
        topic: topic.clone(),
        group: args.from_file.is_none().then(|| args.group.clone()),
        executed: false,
        guarantee: None,
        destinations: BTreeMap::new(),
        replayed: 0,
        skipped: Vec::new(),
        held_back: 0,
        not_selected: 0,
        committed: BTreeMap::new(),
    };

    // Without --execute, or before asking, one pass counts what would
    // happen; with --yes the replay itself is the only pass, and the plan
    // is the spans it reads.
    let counted = !args.apply.execute || !args.apply.yes;
    let mut plan = new_report();
    if counted {
        let mut sample = Vec::new();
        let mut chunks = source.chunks(kafka, args.batch as usize)?;
        let mut walks = Positions::new(source.spans());
        while let Some(records) = chunks.next()? {
            for (letter, plan_of) in planner.plan_walked(records, &mut walks) {
                if sample.len() < 5 && matches!(plan_of, Plan::Replay(_)) {
                    sample.push((
                        letter.raw.partition,
                        letter.raw.offset,
                        letter.decoded.key.clone(),
                        plan_of.clone(),
                        letter.decoded.exception.root_cause.clone(),
                    ));
                }
                tally(&mut plan, &letter, &plan_of, args.max_replays);
            }
        }
        if !(args.apply.execute && ctx.printer.is_json()) {
            print_preview(ctx, &plan, &sample)?;
        }
    }
    let refusals = match &args.from_file {
        None => refusals_to_move(kafka, &args.group).await,
        Some(_) => Vec::new(),
    };
    let proposal = proposal(&args, &plan, counted, &source, refusals)?;
    let trail = match flow::decide(ctx, kafka, &args.apply, proposal).await? {
        Decision::Preview => return Ok(held_status(&plan)),
        Decision::Nothing => {
            finish(ctx, &plan)?;
            return Ok(held_status(&plan));
        }
        Decision::Act(trail) => trail,
    };
    let outcome: anyhow::Result<_> = async {
        if args.from_file.is_none() {
            // A member may have joined while the question was open.
            refuse_to_move_live_group(kafka, &args.group).await?;
        }
        let mut report = new_report();
        let bar = ctx.printer.progress_bar(
            source.record_count(),
            "{bar:40} {pos}/{len} records, {per_sec}, eta {eta}",
        );
        let totals = execute(kafka, &args, &source, &planner, &mut report, &bar).await?;
        report.executed = true;
        report.guarantee = Some(totals.guarantee);
        report.replayed = totals.replayed;
        report.committed = totals.committed;
        finish(ctx, &report)?;
        let status = held_status(&report);
        Ok((report, status))
    }
    .await;
    flow::conclude(trail, outcome)
}

/// The archive the operator named, or the topic's records from the
/// group's position.
async fn source_of(
    kafka: &Kafka,
    args: &DlqReplayArgs,
    metadata: &ClusterMetadata,
    filter: &Filter,
) -> anyhow::Result<ReplaySource> {
    Ok(match (&args.from_file, &args.topic) {
        (Some(file), _) => ReplaySource::File(read_archive(file)?),
        (None, Some(topic)) => {
            let partitions = partitions_of(metadata, topic, filter)?;
            let from = committed(kafka, &args.group, topic).await?;
            ReplaySource::Topic {
                topic: topic.clone(),
                spans: spans(
                    kafka,
                    topic,
                    &partitions,
                    &from,
                    filter.offsets,
                    Start::Group,
                )?,
            }
        }
        (None, None) => {
            return Err(UsageError::new("name the dead-letter topic, or give --from-file").into());
        }
    })
}

/// What `dlq replay` proposes to do, for the shared confirm-and-audit
/// flow: the counted plan, or without one the spans the replay will read.
fn proposal(
    args: &DlqReplayArgs,
    plan: &ReplayReport,
    counted: bool,
    source: &ReplaySource,
    refusals: Vec<String>,
) -> anyhow::Result<Proposal> {
    let to_send: usize = plan.destinations.values().sum();
    Ok(Proposal {
        command: "dlq replay",
        plan: if counted {
            serde_json::to_value(plan)?
        } else {
            serde_json::json!({
                "topic": plan.topic,
                "group": plan.group,
                "spans": source.spans().iter().map(|s| serde_json::json!({
                    "partition": s.partition, "from": s.start, "to": s.end,
                })).collect::<Vec<_>>(),
            })
        },
        // Uncounted, the replay finds out as it goes; a replay that finds
        // nothing to send changes nothing either way.
        changes: if counted {
            to_send.max(plan.skipped.len())
        } else {
            1
        },
        question: format!(
            "Replay {to_send} record(s) from {}{}?",
            plan.topic,
            if plan.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} will be skipped)", plan.skipped.len())
            }
        ),
        action: "replay".into(),
        needs_force: Vec::new(),
        force: args.force,
        refusals,
    })
}

/// Skipped or held-back records make an executed replay a partial one.
fn held_status(report: &ReplayReport) -> ExitStatus {
    if report.executed && (!report.skipped.is_empty() || report.held_back > 0) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }
}

/// Where the dead letters come from: a topic, read in chunks from the
/// group's position, or an archive (which `dlq drain` wrote, so it fits).
enum ReplaySource {
    Topic { topic: String, spans: Vec<Span> },
    File(Vec<RawRecord>),
}

impl ReplaySource {
    fn name(&self, file: Option<&Path>) -> String {
        match self {
            ReplaySource::Topic { topic, .. } => topic.clone(),
            ReplaySource::File(records) => records
                .first()
                .map(|r| r.topic.clone())
                .unwrap_or_else(|| file.map(|f| f.display().to_string()).unwrap_or_default()),
        }
    }

    fn spans(&self) -> &[Span] {
        match self {
            ReplaySource::Topic { spans, .. } => spans,
            ReplaySource::File(_) => &[],
        }
    }

    /// How many records the replay reads: the progress bar's length.
    fn record_count(&self) -> u64 {
        match self {
            ReplaySource::File(records) => records.len() as u64,
            ReplaySource::Topic { spans, .. } => spans
                .iter()
                .map(|s| u64::try_from(s.end - s.start).unwrap_or(0))
                .sum(),
        }
    }

    fn chunks<'s>(&'s self, kafka: &Kafka, size: usize) -> anyhow::Result<Chunks<'s>> {
        Ok(match self {
            ReplaySource::Topic { topic, spans } => Chunks::Topic {
                reader: Reader::new(kafka, topic, spans)?,
                size,
            },
            ReplaySource::File(records) => Chunks::File(records.chunks(size.max(1))),
        })
    }
}

enum Chunks<'s> {
    Topic { reader: Reader, size: usize },
    File(std::slice::Chunks<'s, RawRecord>),
}

impl Chunks<'_> {
    fn next(&mut self) -> anyhow::Result<Option<Vec<RawRecord>>> {
        match self {
            Chunks::Topic { reader, size } => reader.next_chunk(*size),
            Chunks::File(chunks) => Ok(chunks.next().map(<[RawRecord]>::to_vec)),
        }
    }

    /// Whether `partition` has been read to its end (always, for a file).
    fn finished(&self, partition: i32) -> bool {
        match self {
            Chunks::Topic { reader, .. } => reader.finished(partition),
            Chunks::File(_) => true,
        }
    }
}

struct Planner<'p> {
    filter: &'p smm_workers::contract::dead_letter::Filter,
    destination: &'p Destination,
    metadata: &'p ClusterMetadata,
    /// The cluster's topic names, where destinations must exist.
    topics: BTreeSet<String>,
    max_replays: u32,
    force: bool,
}

impl Planner<'_> {
    /// Plans a chunk, holding back every selected record behind the first
    /// one of its partition that is not replayed. `walks` carries that
    /// across chunks.
    fn plan_walked(&self, records: Vec<RawRecord>, walks: &mut Positions) -> Vec<(Letter, Plan)> {
        self.plan_all(records)
            .into_iter()
            .map(|(letter, plan)| {
                let partition = letter.raw.partition;
                let plan = match plan {
                    Plan::Replay(_) if walks.stopped(partition) => Plan::HeldBack,
                    plan => plan,
                };
                walks.step(
                    partition,
                    letter.raw.offset,
                    matches!(plan, Plan::Replay(_)),
                    letter.selected,
                );
                (letter, plan)
            })
            .collect()
    }

    fn plan_all(&self, records: Vec<RawRecord>) -> Vec<(Letter, Plan)> {
        decode_all(records, self.filter, false)
            .into_iter()
            .map(|letter| {
                let plan = plan(
                    &letter.decoded,
                    letter.selected,
                    self.destination,
                    &self.topics,
                    self.max_replays,
                    self.force,
                );
                (letter, plan)
            })
            .collect()
    }
}

fn tally(report: &mut ReplayReport, letter: &Letter, plan: &Plan, max_replays: u32) {
    match plan {
        Plan::Replay(to) => *report.destinations.entry(to.clone()).or_default() += 1,
        Plan::Unresolvable(why) => report.skipped.push(Skipped {
            partition: letter.raw.partition,
            offset: letter.raw.offset,
            reason: why.clone(),
        }),
        Plan::Refused(count) => report.skipped.push(Skipped {
            partition: letter.raw.partition,
            offset: letter.raw.offset,
            reason: format!(
                "replayed {count} time(s) already (--max-replays {max_replays}); --force replays it anyway"
            ),
        }),
        Plan::HeldBack => report.held_back += 1,
        Plan::NotSelected => report.not_selected += 1,
    }
}

fn read_archive(path: &Path) -> anyhow::Result<Vec<RawRecord>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::new(format!("cannot read the archive {}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let archived: Archived = serde_json::from_str(line).map_err(|e| {
                UsageError::new(format!(
                    "{} line {}: not an archive record: {e}",
                    path.display(),
                    n + 1
                ))
            })?;
            // The drain kept it only because its delete removed it; the
            // group had handled it before, so sending it again would
            // process it twice.
            if archived.already_handled {
                return Ok(None);
            }
            archived.to_raw().map(Some).map_err(|e| {
                UsageError::new(format!("{} line {}: {e}", path.display(), n + 1)).into()
            })
        })
        .filter_map(Result::transpose)
        .collect()
}

type SampleRow = (
    i32,
    i64,
    Option<smm_workers::contract::dead_letter::Bytes>,
    Plan,
    Option<String>,
);

fn print_preview(ctx: &Context, report: &ReplayReport, sample: &[SampleRow]) -> anyhow::Result<()> {
    if ctx.printer.is_json() {
        return ctx.printer.json(report);
    }
    let mut table = ctx.printer.table(["DESTINATION", "RECORDS"]);
    for (to, n) in &report.destinations {
        table.add_row(vec![to.clone(), n.to_string()]);
    }
    ctx.printer.print_table(&table);
    if !sample.is_empty() {
        ctx.printer.line("");
        let mut table = ctx
            .printer
            .table(["PARTITION", "OFFSET", "KEY", "TO", "EXCEPTION"]);
        for (partition, offset, key, plan, class) in sample {
            let Plan::Replay(to) = plan else { continue };
            table.add_row(vec![
                partition.to_string(),
                offset.to_string(),
                or_dash(key.as_ref().map(|k| one_line(&k.display(), 24))),
                to.clone(),
                one_line(class.as_deref().unwrap_or("-"), 60),
            ]);
        }
        ctx.printer.print_table(&table);
    }
    report_skipped(ctx, report);
    Ok(())
}

fn report_skipped(ctx: &Context, report: &ReplayReport) {
    for s in &report.skipped {
        ctx.printer.warn(&format!(
            "skipped {}/{} offset {}: {}",
            report.topic, s.partition, s.offset, s.reason
        ));
    }
    if report.not_selected > 0 {
        ctx.printer.note(&format!(
            "{} record(s) did not match the filters and stay where they are",
            report.not_selected
        ));
    }
    if report.held_back > 0 {
        ctx.printer.warn(&format!(
            "{} selected record(s) of {} wait behind a record this replay does not send, so the \
             group stops before them and they are not sent (a later run would send them again). \
             Replay or drain the record the group stops at, then run again.",
            report.held_back, report.topic
        ));
    }
}

fn finish(ctx: &Context, report: &ReplayReport) -> anyhow::Result<()> {
    if ctx.printer.is_json() {
        return ctx.printer.json(report);
    }
    let mut table = ctx.printer.table(["DESTINATION", "REPLAYED"]);
    for (to, n) in &report.destinations {
        table.add_row(vec![to.clone(), n.to_string()]);
    }
    ctx.printer.print_table(&table);
    report_skipped(ctx, report);
    if let Some(group) = &report.group {
        for (p, offset) in &report.committed {
            ctx.printer.note(&format!(
                "group {group} is now at offset {offset} of {}/{p}",
                report.topic
            ));
        }
    }
    match report.guarantee {
        Some("transactional") => ctx.printer.note(&format!(
            "{} record(s) replayed (transactional: exactly once for read_committed readers only; \
             read_uncommitted readers, the Java client's and Spring Boot's default, may also see \
             copies of a batch that a crash or a stop aborted)",
            report.replayed
        )),
        Some(g) => ctx
            .printer
            .note(&format!("{} record(s) replayed ({g})", report.replayed)),
        None => {}
    }
    Ok(())
}

/// What an executed replay sent, where it left the group, and with what
/// guarantee.
struct ReplayTotals {
    replayed: usize,
    committed: BTreeMap<i32, i64>,
    guarantee: &'static str,
}

/// How long one transaction may stay open. Until it ends, read_committed
/// readers of every partition it wrote to (the live workers among them)
/// can read nothing past its first copy, and the broker aborts one that
/// outlives transaction.timeout.ms (60 s). A transaction therefore ends
/// once it has been open this long, or would be by its next copy under
/// `--rate`, whatever `--batch` allows; a commit (about 25 ms) still costs
/// little next to two seconds of sending.
const TRANSACTION_BUDGET: Duration = Duration::from_secs(2);

/// What a replay has done so far, kept outside the sending so that an
/// interrupted one can still say where it stopped.
#[derive(Default)]
struct Progress {
    sent: usize,
    committed: BTreeMap<i32, i64>,
    /// A transaction has begun and has not been committed or aborted.
    open: bool,
}

/// The producer side of a replay.
struct Sending<'a> {
    producer: &'a FutureProducer,
    transactional: bool,
    group: Option<&'a ConsumerGroupMetadata>,
    timeout: Duration,
    bar: &'a ProgressBar,
}

/// The first SIGTERM or SIGINT, by name. Listening replaces the default
/// of dying on the spot, which would leave the open transaction for the
/// broker to time out.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

async fn execute(
    kafka: &Kafka,
    args: &DlqReplayArgs,
    source: &ReplaySource,
    planner: &Planner<'_>,
    report: &mut ReplayReport,
    bar: &ProgressBar,
) -> anyhow::Result<ReplayTotals> {
    let timeout = kafka.timeout().max(Duration::from_secs(10));
    let topic = report.topic.clone();
    // One transactional id per group and topic: a second replay of the
    // same dead letters fences the first.
    let mut config =
        transactional_config(kafka, &format!("smmctl-dlq-replay.{}.{topic}", args.group));
    config.set("linger.ms", "5");
    let producer: FutureProducer = config
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the replay producer: {e}"))?;
    let transactional = match tokio::task::block_in_place(|| producer.init_transactions(timeout)) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "transactions unavailable; replaying at least once");
            false
        }
    };
    let producer = if transactional {
        producer
    } else {
        let mut plain = kafka.producer_config();
        plain
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5");
        plain
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the replay producer: {e}"))?
    };
    let transaction_group = TransactionGroup::new(kafka, &args.group)?;

    let sending = Sending {
        producer: &producer,
        transactional,
        group: transaction_group.metadata.as_ref(),
        timeout,
        bar,
    };
    let mut done = Progress::default();
    // Every way out of the sending, an error or a signal, comes back here
    // with the sending dropped, so the open transaction is aborted at once
    // instead of holding read_committed readers back until the broker's
    // transaction timeout.
    let result = tokio::select! {
        result = send_all(kafka, args, source, planner, &sending, &mut done, report) => result,
        signal = stop_signal() => Err(anyhow::anyhow!("stopped by {signal}")),
    };
    bar.finish_and_clear();
    if let Err(e) = result {
        return Err(rolled_back(e, &sending, &done, &args.group, &topic));
    }
    Ok(ReplayTotals {
        replayed: done.sent,
        committed: done.committed,
        guarantee: if transactional {
            "transactional"
        } else {
            "at_least_once"
        },
    })
}

/// `error`, with what became of the batch it interrupted: the open
/// transaction is aborted, so no read_committed reader ever sees its
/// copies, and the group stays where the last committed batch left it.
fn rolled_back(
    error: anyhow::Error,
    sending: &Sending<'_>,
    done: &Progress,
    group: &str,
    topic: &str,
) -> anyhow::Error {
    let at = if done.committed.is_empty() {
        format!("group {group} was not moved")
    } else {
        let offsets: Vec<String> = done
            .committed
            .iter()
            .map(|(p, o)| format!("{topic}/{p} at {o}"))
            .collect();
        format!("group {group} is at {}", offsets.join(", "))
    };
    if !(sending.transactional && done.open) {
        return anyhow::anyhow!("{error:#}; {at}, and a re-run continues from there");
    }
    match tokio::task::block_in_place(|| sending.producer.abort_transaction(sending.timeout)) {
        Ok(()) => anyhow::anyhow!(
            "{error:#}; the open batch was aborted (read_committed readers never see its copies, read_uncommitted readers may have), {at}, and a re-run replays the batch again"
        ),
        Err(e) => anyhow::anyhow!(
            "{error:#}; the open batch could not be aborted ({e}): the broker aborts it within 60 s, until then read_committed readers of its partitions wait; {at}, and a re-run replays the batch again"
        ),
    }
}

/// Sends every selected record, one transaction at a time.
async fn send_all(
    kafka: &Kafka,
    args: &DlqReplayArgs,
    source: &ReplaySource,
    planner: &Planner<'_>,
    sending: &Sending<'_>,
    done: &mut Progress,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let producer = sending.producer;
    let timeout = sending.timeout;
    let topic = report.topic.clone();
    let started = Instant::now();
    // Where the group may move: past a run of replayed records, never past
    // a record the replay did not send. `planned` holds back what lies
    // behind such a record; `positions` follows what each transaction
    // really sent.
    let mut walks = Positions::new(source.spans());
    let mut positions = Positions::new(source.spans());
    let mut chunks = source.chunks(kafka, args.batch as usize)?;
    // A chunk of --batch records is sent in as few transactions as
    // TRANSACTION_BUDGET allows: one, unless --rate or a slow broker makes
    // it take longer. Each commit waits on the broker (about 25 ms here),
    // so small transactions would dominate a large replay; an aborted one
    // is invisible to read_committed readers, so a killed replay only
    // redoes its last transaction.
    while let Some(records) = chunks.next()? {
        let planned = planner.plan_walked(records, &mut walks);
        let mut from = 0;
        loop {
            if sending.transactional {
                producer
                    .begin_transaction()
                    .map_err(|e| anyhow::anyhow!("cannot begin a transaction: {e}"))?;
                done.open = true;
            }
            // When the first copy was sent: from then on the transaction
            // holds read_committed readers back.
            let mut opened: Option<Instant> = None;
            let mut acks = Vec::new();
            let mut to = from;
            while let Some((letter, plan)) = planned.get(to) {
                if let Plan::Replay(destination) = plan {
                    let due = args.rate.map(|rate| {
                        started + Duration::from_secs_f64(done.sent as f64 / f64::from(rate))
                    });
                    let send_at = due.map_or_else(Instant::now, |d| d.max(Instant::now()));
                    if opened.is_some_and(|o| send_at.duration_since(o) >= TRANSACTION_BUDGET) {
                        break;
                    }
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    acks.push((to, send(producer, planner, letter, destination)?));
                    opened.get_or_insert_with(Instant::now);
                    done.sent += 1;
                }
                tally(report, letter, plan, args.max_replays);
                sending.bar.inc(1);
                to += 1;
            }
            for (i, ack) in acks {
                let raw = &planned[i].0.raw;
                match ack.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => anyhow::bail!(
                        "the broker did not acknowledge the copy of {}/{} offset {}: {e}",
                        raw.topic,
                        raw.partition,
                        raw.offset
                    ),
                    Err(_) => anyhow::bail!(
                        "the replay producer stopped before acknowledging {}/{} offset {}",
                        raw.topic,
                        raw.partition,
                        raw.offset
                    ),
                }
            }
            for (letter, plan) in &planned[from..to] {
                positions.step(
                    letter.raw.partition,
                    letter.raw.offset,
                    matches!(plan, Plan::Replay(_)),
                    letter.selected,
                );
            }
            let whole_chunk = to == planned.len();
            // Read to its end with nothing left behind: transaction
            // markers and gaps up to the end are passed too.
            let advance = positions.advance(|p| whole_chunk && chunks.finished(p));
            if sending.transactional {
                commit_with_offsets(producer, &topic, &advance, sending.group, timeout).map_err(
                    |failure| match failure {
                        CommitFailure::InvalidOffset(e) => anyhow::Error::new(e),
                        CommitFailure::NoGroupMetadata => {
                            anyhow::anyhow!("no group metadata for {}", args.group)
                        }
                        CommitFailure::Offsets(e) => anyhow::anyhow!(
                            "cannot add the group's offsets to the transaction: {e}"
                        ),
                        CommitFailure::Commit(e) => {
                            anyhow::anyhow!("cannot commit the replay transaction: {e}")
                        }
                    },
                )?;
                done.open = false;
                tracing::debug!(
                    records = to - from,
                    open_ms = opened.map_or(0, |o| o.elapsed().as_millis()),
                    "replay transaction committed"
                );
            } else if !advance.is_empty() {
                let set: Vec<(String, i32, i64)> = advance
                    .iter()
                    .map(|(p, o)| (topic.clone(), *p, *o))
                    .collect();
                move_group(
                    kafka,
                    &args.group,
                    &set,
                    "a re-run replays this batch again",
                )
                .await?;
            }
            done.committed.extend(advance.clone());
            positions.committed(advance);
            from = to;
            if whole_chunk {
                break;
            }
        }
    }
    Ok(())
}

/// Hands one copy to the producer, with the headers and partition a
/// replayed copy gets.
fn send(
    producer: &FutureProducer,
    planner: &Planner<'_>,
    letter: &Letter,
    to: &str,
) -> anyhow::Result<DeliveryFuture> {
    let raw = &letter.raw;
    let to_retry_topic = *planner.destination == Destination::FirstRetry || is_retry_topic(to);
    let headers = replay_headers(raw, to_retry_topic, jiff::Timestamp::now());
    let mut record = FutureRecord::<[u8], [u8]>::to(to).headers(owned_headers(&headers));
    // A copy goes back to its original partition where that still means
    // the same place; else the key decides, as in Java.
    let partitions_of = |name: &str| {
        planner
            .metadata
            .topics
            .get(name)
            .map(|t| t.partitions.len())
    };
    if let Some(count) = partitions_of(to)
        && let Some(p) = letter.decoded.replay_partition(count, partitions_of)
    {
        record = record.partition(p);
    }
    if let Some(k) = &raw.key {
        record = record.key(k);
    }
    if let Some(v) = &raw.value {
        record = record.payload(v);
    }
    producer.send_result(record).map_err(|(e, _)| {
        anyhow::anyhow!(
            "cannot send {}/{} offset {} to {to}: {e}",
            raw.topic,
            raw.partition,
            raw.offset
        )
    })
}
