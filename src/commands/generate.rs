//! Shell completions and man pages, generated from the clap definitions so
//! they can never describe flags that do not exist.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::Context;
use crate::cli::{Cli, CompletionsArgs, GenerateArgs};
use crate::exit::ExitStatus;

pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::PowerShell,
    Shell::Elvish,
];

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "smmctl", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}

pub fn run(args: GenerateArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let written = write_all(&args.out_dir)?;
    ctx.printer.note(&format!(
        "wrote {written} files under {}",
        args.out_dir.display()
    ));
    Ok(ExitStatus::Success)
}

/// Writes `completions/` and `man/` below `root`, replacing what is there.
/// Returns how many files it wrote.
pub fn write_all(root: &Path) -> anyhow::Result<usize> {
    let completions = root.join("completions");
    let man = root.join("man");
    for dir in [&completions, &man] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut cmd = Cli::command();
    cmd.build();
    for shell in SHELLS {
        clap_complete::generate_to(shell, &mut cmd, "smmctl", &completions)
            .with_context(|| format!("cannot write the {shell} completions"))?;
    }
    clap_mangen::generate_to(cmd, &man).context("cannot write the man pages")?;
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    Ok(count(&completions) + count(&man))
}
