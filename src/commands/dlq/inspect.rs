//! `smmctl dlq inspect TOPIC`: dead letters decoded for reading, or
//! counted by failure with `--group-by exception`.

use std::collections::BTreeMap;

use serde_json::json;
use smm_workers::contract::dead_letter::{DeadLetter, format_time};

use super::{Letter, decode_all, filter_of, one_line, partitions_of};
use crate::Context;
use crate::cli::{DlqGroupBy, DlqInspectArgs};
use crate::exit::ExitStatus;
use crate::kafka::Kafka;
use crate::kafka::reader::read;
use crate::kafka::spans::{Start, spans};
use crate::output::{Printer, or_dash};

pub async fn run(args: DlqInspectArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let letters = read_letters(&args, ctx)?;
    if let Some(DlqGroupBy::Exception) = args.group_by {
        print_failure_groups(&args.topic, &letters, ctx)?;
        return Ok(ExitStatus::Success);
    }
    let out = &ctx.printer;
    if out.is_json() {
        // JSON lines: one record per line, for jq and log tools.
        for l in &letters {
            out.line(&serde_json::to_string(&l.decoded)?);
        }
        return Ok(ExitStatus::Success);
    }
    if ctx.verbose > 0 {
        for l in &letters {
            print_letter(out, &l.decoded)?;
        }
    } else {
        print_letter_table(out, &letters);
    }
    if letters.len() == args.limit {
        out.note(&format!(
            "showing the first {} matching record(s); --limit shows more, --group-by exception counts them all",
            args.limit
        ));
    }
    Ok(ExitStatus::Success)
}

/// The dead letters the filter selects, decoded in full: all of them when
/// counting, the first `--limit` when listing.
fn read_letters(args: &DlqInspectArgs, ctx: &Context) -> anyhow::Result<Vec<Letter>> {
    let filter = filter_of(&args.filter);
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let metadata = kafka.metadata()?;
    let partitions = partitions_of(&metadata, &args.topic, &filter)?;
    let spans = spans(
        kafka,
        &args.topic,
        &partitions,
        &Default::default(),
        filter.offsets,
        Start::Range,
    )?;
    // Counting reads everything; listing stops at the limit.
    let limit = match args.group_by {
        Some(_) => None,
        None => Some(args.limit),
    };
    let records = read(
        kafka,
        &args.topic,
        &spans,
        // Only what the filter needs; the records kept are decoded in full
        // below.
        |raw| filter.matches(raw, &DeadLetter::decode_for(raw, &filter)),
        limit,
    )?;
    Ok(decode_all(records, &filter, true))
}

/// Dead letters that failed the same way: one root cause and message.
struct FailureGroup {
    class: String,
    message: String,
    count: usize,
    first_ms: i64,
    last_ms: i64,
}

/// The letters counted by failure, the largest group first.
fn failure_groups(letters: &[Letter]) -> Vec<FailureGroup> {
    let mut counts: BTreeMap<(String, String), (usize, i64, i64)> = BTreeMap::new();
    for l in letters {
        // By what failed, not by Spring's wrapper around it, which
        // would put every listener failure in one group.
        let class = l
            .decoded
            .exception
            .root_cause
            .clone()
            .unwrap_or_else(|| "-".into());
        let message = l
            .decoded
            .exception
            .message
            .as_deref()
            .map(|m| one_line(m, 80))
            .unwrap_or_else(|| "-".into());
        let entry = counts
            .entry((class, message))
            .or_insert((0, i64::MAX, i64::MIN));
        entry.0 += 1;
        let ts = l.raw.timestamp_ms.unwrap_or(0);
        entry.1 = entry.1.min(ts);
        entry.2 = entry.2.max(ts);
    }
    let mut groups: Vec<FailureGroup> = counts
        .into_iter()
        .map(
            |((class, message), (count, first_ms, last_ms))| FailureGroup {
                class,
                message,
                count,
                first_ms,
                last_ms,
            },
        )
        .collect();
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.class, &a.message).cmp(&(&b.class, &b.message)))
    });
    groups
}

fn print_failure_groups(topic: &str, letters: &[Letter], ctx: &Context) -> anyhow::Result<()> {
    let groups = failure_groups(letters);
    let total = letters.len();
    let p = &ctx.printer;
    if p.is_json() {
        let groups: Vec<_> = groups
            .iter()
            .map(|g| {
                json!({
                    "exception_class": g.class,
                    "exception_message": g.message,
                    "count": g.count,
                    "first_at": format_time(g.first_ms),
                    "last_at": format_time(g.last_ms),
                })
            })
            .collect();
        return p.json(&json!({ "topic": topic, "records": total, "groups": groups }));
    }
    let mut table = p.table(["COUNT", "EXCEPTION", "MESSAGE", "LAST"]);
    for g in &groups {
        table.add_row(vec![
            g.count.to_string(),
            g.class.clone(),
            g.message.clone(),
            or_dash(format_time(g.last_ms)),
        ]);
    }
    p.print_table(&table);
    p.note(&format!(
        "{total} record(s) in {} failure group(s)",
        groups.len()
    ));
    Ok(())
}

/// Where the letter came from, `topic/partition<at>offset` when the
/// headers say it all.
fn origin(d: &DeadLetter, at: &str) -> String {
    match (&d.original.topic, d.original.partition, d.original.offset) {
        (Some(t), Some(p), Some(o)) => format!("{t}/{p}{at}{o}"),
        (Some(t), _, _) => t.clone(),
        _ => "-".into(),
    }
}

/// One letter in full, for `-v`.
fn print_letter(out: &Printer, d: &DeadLetter) -> anyhow::Result<()> {
    out.line(&format!(
        "── {}/{} offset {} ─────────",
        d.topic, d.partition, d.offset
    ));
    out.line(&format!("time:        {}", or_dash(d.timestamp.as_ref())));
    out.line(&format!(
        "key:         {}",
        or_dash(d.key.as_ref().map(|k| k.display()))
    ));
    out.line(&format!("origin:      {}", origin(d, " offset ")));
    out.line(&format!(
        "origin time: {}",
        match (&d.original.timestamp, &d.original.timestamp_type) {
            (Some(t), Some(kind)) => format!("{t} ({kind})"),
            (Some(t), None) => t.clone(),
            _ => "-".into(),
        }
    ));
    out.line(&format!(
        "group:       {}",
        or_dash(d.original.consumer_group.as_ref())
    ));
    out.line(&format!("attempts:    {}", or_dash(d.attempts)));
    out.line(&format!(
        "exception:   {}",
        or_dash(d.exception.class.as_ref())
    ));
    out.line(&format!(
        "cause:       {}",
        or_dash(d.exception.root_cause.as_ref())
    ));
    out.line(&format!(
        "message:     {}",
        or_dash(d.exception.message.as_ref())
    ));
    if let Some(review) = &d.manual_review {
        out.line(&format!("review:      {review}"));
    }
    out.line(&format!("replays:     {}", d.replay_count));
    out.line(&format!(
        "correlation: {}",
        or_dash(d.correlation_id.as_ref())
    ));
    print_headers(out, d);
    if let Some(trace) = &d.exception.stacktrace {
        out.line(&format!("stacktrace:\n{trace}"));
    }
    out.line(&format!(
        "payload ({}):\n{}",
        d.payload_decoded,
        serde_json::to_string_pretty(&d.payload)?
    ));
    out.line("");
    Ok(())
}

fn print_headers(out: &Printer, d: &DeadLetter) {
    out.line("headers:");
    for h in &d.headers {
        let shown = h.display();
        let value = if d.exception.stacktrace.as_deref() == Some(shown.as_str()) {
            // Printed in full once, under `stacktrace:`.
            "(the stack trace below)".to_owned()
        } else {
            // Later lines of a multi-line value stay under their header.
            shown.replace('\n', "\n    ")
        };
        match &h.date {
            Some(date) => out.line(&format!("  {} = {value} ({date})", h.key)),
            None => out.line(&format!("  {} = {value}", h.key)),
        }
    }
    for e in &d.header_errors {
        out.line(&format!("  (unreadable: {e})"));
    }
}

/// One line a letter, for reading many at a glance.
fn print_letter_table(out: &Printer, letters: &[Letter]) {
    let mut table = out.table([
        "PARTITION",
        "OFFSET",
        "TIME",
        "KEY",
        "ORIGIN",
        "ATTEMPTS",
        "EXCEPTION",
        "EVENT",
    ]);
    for l in letters {
        let d = &l.decoded;
        table.add_row(vec![
            d.partition.to_string(),
            d.offset.to_string(),
            or_dash(d.timestamp.as_ref()),
            or_dash(d.key.as_ref().map(|k| one_line(&k.display(), 24))),
            origin(d, "@"),
            or_dash(d.attempts),
            one_line(
                &format!(
                    "{}: {}",
                    d.exception.root_cause.as_deref().unwrap_or("-"),
                    d.exception.message.as_deref().unwrap_or("-")
                ),
                70,
            ),
            or_dash(d.event_type.as_ref()),
        ]);
    }
    out.print_table(&table);
}
