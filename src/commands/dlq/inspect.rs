//! `smmctl dlq inspect TOPIC`: dead letters decoded for reading, or
//! counted by failure with `--group-by exception`.

use std::collections::BTreeMap;

use serde_json::json;
use smm_workers::contract::dead_letter::format_time;

use super::{Start, decode_all, filter_of, one_line, partitions_of, read, spans};
use crate::Context;
use crate::cli::{DlqGroupBy, DlqInspectArgs};
use crate::exit::ExitStatus;
use crate::kafka::Kafka;
use crate::output::or_dash;

pub async fn run(args: DlqInspectArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let filter = filter_of(&args.filter);
    let kafka = Kafka::connect(&ctx.settings)?;
    let metadata = kafka.metadata()?;
    let partitions = partitions_of(&metadata, &args.topic, &filter)?;
    let spans = spans(
        kafka,
        &args.topic,
        &partitions,
        &Default::default(),
        &filter,
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
        |raw| {
            filter.matches(
                raw,
                &smm_workers::contract::dead_letter::DeadLetter::decode_for(raw, &filter),
            )
        },
        limit,
    )?;
    let letters = decode_all(records, &filter, true);

    if let Some(DlqGroupBy::Exception) = args.group_by {
        let mut counts: BTreeMap<(String, String), (usize, i64, i64)> = BTreeMap::new();
        for l in &letters {
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
        let mut rows: Vec<_> = counts.into_iter().collect();
        rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        let total = letters.len();
        if ctx.printer.is_json() {
            let groups: Vec<_> = rows
                .iter()
                .map(|((class, message), (n, first, last))| {
                    json!({
                        "exception_class": class,
                        "exception_message": message,
                        "count": n,
                        "first_at": format_time(*first),
                        "last_at": format_time(*last),
                    })
                })
                .collect();
            ctx.printer
                .json(&json!({ "topic": args.topic, "records": total, "groups": groups }))?;
        } else {
            let mut table = ctx.printer.table(["COUNT", "EXCEPTION", "MESSAGE", "LAST"]);
            for ((class, message), (n, _, last)) in &rows {
                table.add_row(vec![
                    n.to_string(),
                    class.clone(),
                    message.clone(),
                    or_dash(format_time(*last)),
                ]);
            }
            ctx.printer.print_table(&table);
            ctx.printer.note(&format!(
                "{total} record(s) in {} failure group(s)",
                rows.len()
            ));
        }
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
            let d = &l.decoded;
            out.line(&format!(
                "── {}/{} offset {} ─────────",
                d.topic, d.partition, d.offset
            ));
            out.line(&format!("time:        {}", or_dash(d.timestamp.as_ref())));
            out.line(&format!(
                "key:         {}",
                or_dash(d.key.as_ref().map(|k| k.display()))
            ));
            out.line(&format!(
                "origin:      {}",
                match (&d.original.topic, d.original.partition, d.original.offset) {
                    (Some(t), Some(p), Some(o)) => format!("{t}/{p} offset {o}"),
                    (Some(t), _, _) => t.clone(),
                    _ => "-".into(),
                }
            ));
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
            if let Some(trace) = &d.exception.stacktrace {
                out.line(&format!("stacktrace:\n{trace}"));
            }
            out.line(&format!(
                "payload ({}):\n{}",
                d.payload_decoded,
                serde_json::to_string_pretty(&d.payload)?
            ));
            out.line("");
        }
    } else {
        let mut table = ctx.printer.table([
            "PARTITION",
            "OFFSET",
            "TIME",
            "KEY",
            "ORIGIN",
            "ATTEMPTS",
            "EXCEPTION",
            "EVENT",
        ]);
        for l in &letters {
            let d = &l.decoded;
            table.add_row(vec![
                d.partition.to_string(),
                d.offset.to_string(),
                or_dash(d.timestamp.as_ref()),
                or_dash(d.key.as_ref().map(|k| one_line(&k.display(), 24))),
                match (&d.original.topic, d.original.partition, d.original.offset) {
                    (Some(t), Some(p), Some(o)) => format!("{t}/{p}@{o}"),
                    (Some(t), _, _) => t.clone(),
                    _ => "-".into(),
                },
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
        ctx.printer.print_table(&table);
    }
    if letters.len() == args.limit {
        ctx.printer.note(&format!(
            "showing the first {} matching record(s); --limit shows more, --group-by exception counts them all",
            args.limit
        ));
    }
    Ok(ExitStatus::Success)
}
