//! One module per subcommand. Each exposes `run(args, ctx)` and returns
//! the exit status it earned; errors carry their own status (see `exit`).

pub mod audit;
pub mod config;
pub mod dlq;
pub mod flow;
pub mod generate;
pub mod groups;
pub mod health;
pub mod lag;
pub mod offsets;
pub mod records;
pub mod run;
pub mod sandbox;
pub mod simulate;
pub mod topics;

use crate::Context;
use crate::cli::Command;
use crate::exit::{ExitStatus, Refusal};
use crate::output::Printer;

/// Runs the commands that need no settings, before the config file is read,
/// so a broken file cannot keep them from working; any other command is
/// left to [`dispatch`] once the settings have loaded (`None`).
pub fn dispatch_without_settings(
    command: &Command,
    printer: &Printer,
) -> Option<anyhow::Result<ExitStatus>> {
    match command {
        Command::Completions(args) => Some(generate::completions(args, printer)),
        Command::Generate(args) => Some(generate::run(args, printer)),
        _ => None,
    }
}

pub async fn dispatch(command: Command, ctx: &Context) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Topics(cmd) => topics::run(cmd, ctx).await,
        Command::Config(cmd) => config::run(cmd, ctx),
        Command::Audit(args) => audit::run(args, ctx),
        Command::Completions(args) => generate::completions(&args, &ctx.printer),
        Command::Generate(args) => generate::run(&args, &ctx.printer),
        Command::Run(args) => run::run(args, ctx).await,
        Command::Simulate(args) => simulate::run(args, ctx).await,
        Command::Sandbox(args) => sandbox::run(args, ctx).await,
        Command::Lag(args) => lag::run(args, ctx).await,
        Command::Groups(cmd) => groups::run(cmd, ctx).await,
        Command::Dlq(cmd) => dlq::run(cmd, ctx).await,
        Command::Offsets(cmd) => offsets::run(cmd, ctx).await,
        Command::Records(cmd) => records::run(cmd, ctx).await,
        Command::Health(args) => health::run(args, ctx).await,
    }
}

/// The confirmation every destructive command asks for before it acts.
///
/// `--yes` answers it in advance. On a terminal the operator is asked;
/// without one there is nobody to ask, so the command refuses rather than
/// guess, and changes nothing.
pub fn confirm(printer: &Printer, question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !printer.can_ask() {
        return Err(Refusal::new(
            "refusing to act without confirmation: there is no terminal to ask on. \
             Pass --yes to confirm from a script. Nothing was changed.",
        )
        .into());
    }
    let confirmed = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| {
            Refusal::new(format!(
                "could not read the answer ({e}); nothing was changed"
            ))
        })?;
    if confirmed {
        Ok(())
    } else {
        Err(Refusal::new("cancelled: nothing was changed").into())
    }
}
