//! `smmctl dlq replay TOPIC`: send dead letters back, resumably, with the
//! copies and the group's progress in one Kafka transaction per batch.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use smm_workers::catalog;
use smm_workers::dead_letter::{Archived, DeadLetter, Destination, RawRecord, replay_headers};

use super::{
    Letter, Reader, Span, committed, decode_all, filter_of, move_group, one_line, partitions_of,
    refuse_live_group, spans,
};
use crate::Context;
use crate::cli::DlqReplayArgs;
use crate::commands::confirm;
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::{ClusterMetadata, Kafka};
use crate::output::or_dash;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Replay(String),
    Unresolvable(String),
    /// The poison guard: replayed this many times already.
    Refused(u32),
    NotSelected,
}

#[derive(Debug, Serialize)]
struct Skipped {
    partition: i32,
    offset: i64,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Report {
    topic: String,
    group: Option<String>,
    executed: bool,
    /// `transactional` (exactly once for read_committed readers) or
    /// `at_least_once`.
    guarantee: Option<&'static str>,
    destinations: BTreeMap<String, usize>,
    replayed: usize,
    skipped: Vec<Skipped>,
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
    let kafka = Kafka::connect(&ctx.settings)?;
    let metadata = kafka.metadata()?;

    let source = match (&args.from_file, &args.topic) {
        (Some(file), _) => Source::File(read_archive(file)?),
        (None, Some(topic)) => {
            let partitions = partitions_of(&metadata, topic, &filter)?;
            let from = committed(kafka, &args.group, topic).await?;
            Source::Topic {
                topic: topic.clone(),
                spans: spans(kafka, topic, &partitions, &from, &filter)?,
            }
        }
        (None, None) => {
            return Err(UsageError::new("name the dead-letter topic, or give --from-file").into());
        }
    };
    let topic = source.name(args.from_file.as_deref());
    let planner = Planner {
        filter: &filter,
        destination: &destination,
        metadata: &metadata,
        topics: metadata.topics.keys().cloned().collect(),
        max_replays: args.max_replays,
        force: args.force,
    };
    let new_report = || Report {
        topic: topic.clone(),
        group: args.from_file.is_none().then(|| args.group.clone()),
        executed: false,
        guarantee: None,
        destinations: BTreeMap::new(),
        replayed: 0,
        skipped: Vec::new(),
        not_selected: 0,
        committed: BTreeMap::new(),
    };

    // Without --execute, or before asking, one pass counts what would
    // happen; with --yes the replay itself is the only pass.
    if !args.execute || !args.yes {
        let mut report = new_report();
        let mut sample = Vec::new();
        let mut chunks = source.chunks(kafka, args.batch as usize)?;
        while let Some(records) = chunks.next()? {
            for (letter, plan) in planner.plan_all(records) {
                if sample.len() < 5 && matches!(plan, Plan::Replay(_)) {
                    sample.push((
                        letter.raw.partition,
                        letter.raw.offset,
                        letter.decoded.key.clone(),
                        plan.clone(),
                        letter.decoded.exception.class.clone(),
                    ));
                }
                tally(&mut report, &letter, &plan, args.max_replays);
            }
        }
        if !args.execute {
            print_preview(ctx, &report, &sample)?;
            return Ok(ExitStatus::Success);
        }
        let to_send: usize = report.destinations.values().sum();
        if to_send == 0 && report.skipped.is_empty() {
            finish(ctx, &report)?;
            return Ok(ExitStatus::Success);
        }
        confirm(
            &format!(
                "Replay {to_send} record(s) from {topic}{}?",
                if report.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" ({} will be skipped)", report.skipped.len())
                }
            ),
            args.yes,
        )?;
    }
    if args.from_file.is_none() {
        refuse_live_group(kafka, &args.group).await?;
    }

    let mut report = new_report();
    let outcome = execute(kafka, &args, &source, &planner, &mut report).await?;
    report.executed = true;
    report.guarantee = Some(outcome.guarantee);
    report.replayed = outcome.replayed;
    report.committed = outcome.committed;
    finish(ctx, &report)?;
    Ok(if report.skipped.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Where the dead letters come from: a topic, read in chunks from the
/// group's position, or an archive (which `dlq drain` wrote, so it fits).
enum Source {
    Topic { topic: String, spans: Vec<Span> },
    File(Vec<RawRecord>),
}

impl Source {
    fn name(&self, file: Option<&Path>) -> String {
        match self {
            Source::Topic { topic, .. } => topic.clone(),
            Source::File(records) => records
                .first()
                .map(|r| r.topic.clone())
                .unwrap_or_else(|| file.map(|f| f.display().to_string()).unwrap_or_default()),
        }
    }

    fn spans(&self) -> &[Span] {
        match self {
            Source::Topic { spans, .. } => spans,
            Source::File(_) => &[],
        }
    }

    fn chunks<'s>(&'s self, kafka: &Kafka, size: usize) -> anyhow::Result<Chunks<'s>> {
        Ok(match self {
            Source::Topic { topic, spans } => Chunks::Topic {
                reader: Reader::new(kafka, topic, spans)?,
                size,
            },
            Source::File(records) => Chunks::File(records.chunks(size.max(1))),
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
    filter: &'p smm_workers::dead_letter::Filter,
    destination: &'p Destination,
    metadata: &'p ClusterMetadata,
    /// The cluster's topic names, where destinations must exist.
    topics: BTreeSet<String>,
    max_replays: u32,
    force: bool,
}

impl Planner<'_> {
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

fn tally(report: &mut Report, letter: &Letter, plan: &Plan, max_replays: u32) {
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
            archived.to_raw().map_err(|e| {
                UsageError::new(format!("{} line {}: {e}", path.display(), n + 1)).into()
            })
        })
        .collect()
}

type SampleRow = (
    i32,
    i64,
    Option<smm_workers::dead_letter::Bytes>,
    Plan,
    Option<String>,
);

fn print_preview(ctx: &Context, report: &Report, sample: &[SampleRow]) -> anyhow::Result<()> {
    if ctx.printer.is_json() {
        return ctx.printer.json(report);
    }
    let mut table = ctx.printer.table(["DESTINATION", "RECORDS"]);
    for (to, n) in &report.destinations {
        table.add_row(vec![to.clone(), n.to_string()]);
    }
    ctx.printer.print_table(&table);
    if !sample.is_empty() {
        println!();
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
    ctx.printer
        .note("preview only: --execute replays (after a confirmation; --yes answers it)");
    Ok(())
}

fn report_skipped(ctx: &Context, report: &Report) {
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
}

fn finish(ctx: &Context, report: &Report) -> anyhow::Result<()> {
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
    if let Some(g) = report.guarantee {
        ctx.printer
            .note(&format!("{} record(s) replayed ({g})", report.replayed));
    }
    Ok(())
}

struct Outcome {
    replayed: usize,
    committed: BTreeMap<i32, i64>,
    guarantee: &'static str,
}

fn progress(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} records, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

async fn execute(
    kafka: &Kafka,
    args: &DlqReplayArgs,
    source: &Source,
    planner: &Planner<'_>,
    report: &mut Report,
) -> anyhow::Result<Outcome> {
    let timeout = kafka.timeout().max(Duration::from_secs(10));
    let topic = report.topic.clone();
    let mut config = kafka.producer_config();
    // One transactional id per group and topic: a second replay of the
    // same dead letters fences the first, and a new run aborts whatever a
    // killed one left open.
    config
        .set(
            "transactional.id",
            format!("smmctl-dlq-replay.{}.{topic}", args.group),
        )
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("transaction.timeout.ms", "60000");
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
    let group_consumer: BaseConsumer = {
        let mut c = kafka.client_config();
        c.set("group.id", &args.group)
            .set("enable.auto.commit", "false");
        c.create()
            .map_err(|e| anyhow::anyhow!("cannot create a client for group {}: {e}", args.group))?
    };
    let group_metadata = group_consumer.group_metadata();

    let total: i64 = source.spans().iter().map(|s| s.end - s.start).sum();
    let bar = progress(match source {
        Source::File(records) => records.len(),
        Source::Topic { .. } => usize::try_from(total).unwrap_or(0),
    });
    let started = Instant::now();
    let mut sent = 0usize;
    // Per partition: where the group may move, and whether a record left
    // behind stops it there. Moving past only a run of replayed records
    // means no record the replay did not handle is ever marked handled.
    let mut position: BTreeMap<i32, (i64, bool)> = source
        .spans()
        .iter()
        .map(|s| (s.partition, (s.start, false)))
        .collect();
    let mut committed = BTreeMap::new();
    let mut chunks = source.chunks(kafka, args.batch as usize)?;
    // One chunk, one transaction. Each commit waits on the broker (about
    // 25 ms here), so small transactions dominate a large replay; an
    // aborted one is invisible to read_committed readers, so a killed
    // replay only redoes its last chunk.
    while let Some(records) = chunks.next()? {
        let planned = planner.plan_all(records);
        if transactional {
            producer
                .begin_transaction()
                .map_err(|e| anyhow::anyhow!("cannot begin a transaction: {e}"))?;
        }
        let mut acks = Vec::new();
        for (i, (letter, plan)) in planned.iter().enumerate() {
            tally(report, letter, plan, args.max_replays);
            bar.inc(1);
            let Plan::Replay(to) = plan else { continue };
            if let Some(rate) = args.rate {
                let due = started + Duration::from_secs_f64(sent as f64 / f64::from(rate));
                tokio::time::sleep_until(due.into()).await;
            }
            let raw = &letter.raw;
            let to_retry_topic =
                *planner.destination == Destination::FirstRetry || is_retry_topic(to);
            let headers = replay_headers(raw, to_retry_topic, jiff::Timestamp::now());
            let owned = headers.iter().fold(
                OwnedHeaders::new_with_capacity(headers.len()),
                |acc, (k, v)| {
                    acc.insert(Header {
                        key: k,
                        value: Some(v.as_slice()),
                    })
                },
            );
            let mut record = FutureRecord::<[u8], [u8]>::to(to).headers(owned);
            // A copy goes back to its original partition where that still
            // means the same place; else the key decides, as in Java.
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
            match producer.send_result(record) {
                Ok(ack) => acks.push((i, ack)),
                Err((e, _)) => anyhow::bail!(
                    "cannot send {}/{} offset {} to {to}: {e}; the group was not moved past it, so a re-run replays it",
                    raw.topic,
                    raw.partition,
                    raw.offset
                ),
            }
            sent += 1;
        }
        for (i, ack) in acks {
            let raw = &planned[i].0.raw;
            match ack.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => anyhow::bail!(
                    "the broker did not acknowledge the copy of {}/{} offset {}: {e}; the group was not moved past it, so a re-run replays it",
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
        for (letter, plan) in &planned {
            if let Some((next, blocked)) = position.get_mut(&letter.raw.partition)
                && !*blocked
            {
                if matches!(plan, Plan::Replay(_)) {
                    *next = letter.raw.offset + 1;
                } else {
                    *blocked = true;
                }
            }
        }
        let mut advance = BTreeMap::new();
        for span in source.spans() {
            let Some((next, blocked)) = position.get_mut(&span.partition) else {
                continue;
            };
            // Read to its end with nothing left behind: skip transaction
            // markers and gaps up to the end too.
            if !*blocked && chunks.finished(span.partition) {
                *next = span.end;
            }
            if *next > span.start && committed.get(&span.partition) != Some(next) {
                advance.insert(span.partition, *next);
            }
        }
        if transactional {
            if !advance.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for (p, o) in &advance {
                    tpl.add_partition_offset(&topic, *p, Offset::Offset(*o))?;
                }
                let Some(meta) = group_metadata.as_ref() else {
                    anyhow::bail!(
                        "no group metadata for {}; nothing of this batch was committed",
                        args.group
                    );
                };
                tokio::task::block_in_place(|| {
                    producer.send_offsets_to_transaction(&tpl, meta, timeout)
                })
                .map_err(|e| anyhow::anyhow!("cannot add the group's offsets to the transaction: {e}; this batch is rolled back and a re-run replays it"))?;
            }
            tokio::task::block_in_place(|| producer.commit_transaction(timeout)).map_err(|e| {
                anyhow::anyhow!("cannot commit the replay transaction: {e}; this batch is rolled back and a re-run replays it")
            })?;
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
        committed.extend(advance);
    }
    bar.finish_and_clear();
    Ok(Outcome {
        replayed: sent,
        committed,
        guarantee: if transactional {
            "transactional"
        } else {
            "at_least_once"
        },
    })
}
