//! `smmctl audit`: the trail of executed destructive commands.

use crate::Context;
use crate::audit::{audit_path, read_trail};
use crate::cli::AuditArgs;
use crate::exit::ExitStatus;

pub fn run(args: AuditArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let path = audit_path();
    let since = args.since.map(|t| t.as_millisecond());
    let lines: Vec<_> = read_trail(&path)?
        .into_iter()
        .filter(|l| {
            since.is_none_or(|s| {
                l.time
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|t| t.as_millisecond() >= s)
            })
        })
        .filter(|l| {
            args.command
                .as_deref()
                .is_none_or(|c| l.command == c || l.command.starts_with(&format!("{c} ")))
        })
        .collect();
    if ctx.printer.is_json() {
        ctx.printer.json(&lines)?;
        return Ok(ExitStatus::Success);
    }
    let mut table = ctx.printer.table([
        "TIME",
        "USER",
        "HOST",
        "PROFILE",
        "COMMAND",
        "EXIT",
        "COMMAND LINE",
    ]);
    for l in &lines {
        table.add_row(vec![
            l.time.clone(),
            l.user.clone(),
            l.host.clone(),
            l.profile.clone().unwrap_or_else(|| "-".into()),
            l.command.clone(),
            l.exit_code.to_string(),
            l.command_line.join(" "),
        ]);
    }
    ctx.printer.print_table(&table);
    ctx.printer.note(&format!(
        "{} line(s) from {}; `-o json` shows each plan and result",
        lines.len(),
        path.display()
    ));
    Ok(ExitStatus::Success)
}
