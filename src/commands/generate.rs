//! Shell completions and man pages, generated from the clap definitions so
//! they can never describe flags that do not exist, and the report schemas,
//! generated from the report types.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs, GenerateArgs};
use crate::exit::ExitStatus;
use crate::output::Printer;

pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::PowerShell,
    Shell::Elvish,
];

/// Needs no settings, so it runs before the config file is read: a broken
/// file must not keep an operator from fixing their shell.
pub fn completions(args: &CompletionsArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    // clap_complete panics when a write fails; written to memory first, the
    // script reaches stdout through the printer, which a closed pipe
    // (`| head`) does not upset.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "smmctl", &mut script);
    printer.raw(&String::from_utf8_lossy(&script));
    Ok(ExitStatus::Success)
}

/// Like [`completions`], needs no settings and runs before they load.
pub fn run(args: &GenerateArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let written = write_all(&args.out_dir)?;
    printer.note(&format!(
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
    write_man_pages(&cmd, "smmctl", &man)?;
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    Ok(count(&completions) + count(&man) + write_schemas(&root.join("schemas"))?)
}

/// The generated report schemas, beside the hand-written ones in the same
/// folder.
fn write_schemas(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let generated = crate::schemas::generated();
    for (stem, schema) in &generated {
        let path = dir.join(format!("{stem}.schema.json"));
        std::fs::write(&path, crate::schemas::file_text(schema)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(generated.len())
}

/// One page per command, named like `smmctl-topics-apply.1`. clap's own
/// `help` subcommands and hidden maintainer commands get none: they would
/// only repeat the pages of their parents.
fn write_man_pages(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    let page = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
