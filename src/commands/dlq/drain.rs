//! `smmctl dlq drain TOPIC`: archive dead letters that should not be
//! reprocessed, then move the processing group past them (and delete them
//! with `--delete`). The archive is on disk before anything moves.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use smm_workers::dead_letter::Archived;

use super::{
    committed, decode_all, filter_of, handled_prefix, move_group, partitions_of, read,
    refuse_live_group, spans,
};
use crate::Context;
use crate::cli::DlqDrainArgs;
use crate::commands::confirm;
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::Kafka;

#[derive(Debug, Serialize)]
struct Report {
    topic: String,
    group: String,
    executed: bool,
    archive: Option<String>,
    archived: usize,
    not_selected: usize,
    /// The group's new offset per partition.
    committed: BTreeMap<i32, i64>,
    /// The new log start per partition, with --delete.
    deleted_before: BTreeMap<i32, i64>,
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
    let kafka = Kafka::connect(&ctx.settings)?;
    let metadata = kafka.metadata()?;
    let partitions = partitions_of(&metadata, &args.topic, &filter)?;
    let from = committed(kafka, &args.group, &args.topic).await?;
    let spans = spans(kafka, &args.topic, &partitions, &from, &filter)?;
    let records = read(kafka, &args.topic, &spans, |_| true, None)?;
    let letters = decode_all(records, &filter, false);
    let selected: Vec<_> = letters.iter().filter(|l| l.selected).collect();
    // The group moves only past the run of drained records, never past
    // one the filters left behind.
    let moves = handled_prefix(&spans, &letters, |l| l.selected);
    let path = args
        .archive
        .clone()
        .unwrap_or_else(|| default_archive(&args.topic));
    let mut report = Report {
        topic: args.topic.clone(),
        group: args.group.clone(),
        executed: false,
        archive: Some(path.display().to_string()),
        archived: selected.len(),
        not_selected: letters.len() - selected.len(),
        committed: moves.clone(),
        deleted_before: BTreeMap::new(),
    };

    if !args.execute {
        if ctx.printer.is_json() {
            ctx.printer.json(&report)?;
        } else {
            let mut table = ctx
                .printer
                .table(["PARTITION", "GROUP AT", "MOVES TO", "DRAINED"]);
            for span in &spans {
                let drained = selected
                    .iter()
                    .filter(|l| l.raw.partition == span.partition)
                    .count();
                table.add_row(vec![
                    span.partition.to_string(),
                    span.start.to_string(),
                    moves
                        .get(&span.partition)
                        .map_or_else(|| span.start.to_string(), |o| o.to_string()),
                    drained.to_string(),
                ]);
            }
            ctx.printer.print_table(&table);
            ctx.printer.note(&format!(
                "preview only: --execute writes {} record(s) to {}, then moves group {}{}",
                selected.len(),
                path.display(),
                args.group,
                if args.delete { " and deletes them" } else { "" }
            ));
        }
        return Ok(ExitStatus::Success);
    }
    if selected.is_empty() {
        ctx.printer.note("nothing to drain");
        return Ok(ExitStatus::Success);
    }
    confirm(
        &format!(
            "Drain {} record(s) of {} to {}{}?",
            selected.len(),
            args.topic,
            path.display(),
            if args.delete {
                " and delete them from the topic"
            } else {
                ""
            }
        ),
        args.yes,
    )?;
    refuse_live_group(kafka, &args.group).await?;

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| UsageError::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| {
            UsageError::new(format!(
                "cannot create the archive {}: {e} (it must not exist yet; nothing was changed)",
                path.display()
            ))
        })?;
    for l in &selected {
        serde_json::to_writer(&mut file, &Archived::of(&l.raw))?;
        file.write_all(b"\n")?;
    }
    // On disk before the group moves: a crash after this leaves an archive
    // and an unmoved group, which a second drain repeats into a new file.
    file.sync_all()?;

    let set: Vec<(String, i32, i64)> = moves
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
    let mut status = ExitStatus::Success;
    if args.delete && !set.is_empty() {
        let deleted = kafka.delete_records(&set).await?;
        for ((_, p), result) in deleted {
            match result {
                Ok(low) => {
                    report.deleted_before.insert(p, low);
                }
                Err(why) => {
                    ctx.printer.warn(&format!(
                        "cannot delete records of {}/{p}: {why}",
                        args.topic
                    ));
                    status = ExitStatus::Failure;
                }
            }
        }
    }
    report.executed = true;
    if ctx.printer.is_json() {
        ctx.printer.json(&report)?;
    } else {
        ctx.printer.note(&format!(
            "archived {} record(s) to {}; group {} moved{}",
            selected.len(),
            path.display(),
            args.group,
            if report.deleted_before.is_empty() {
                ""
            } else {
                "; records deleted"
            }
        ));
        ctx.printer.note(&format!(
            "replay them later with `smmctl dlq replay --from-file {}`",
            path.display()
        ));
    }
    Ok(status)
}
