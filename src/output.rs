//! The one place that writes to stdout and stderr.
//!
//! Data goes to stdout (tables or JSON); notes, warnings and errors go to
//! stderr, so `smmctl … -o json | jq` always sees clean JSON.

use std::io::{IsTerminal, Write};

use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::OutputFormat;

/// Owns stdout and stderr: what is written to them, whether they are
/// terminals, whether colour is wanted, and the progress bars drawn there.
/// Commands ask the printer instead of probing the streams themselves, so
/// `NO_COLOR` and pipes are honoured the same way everywhere.
pub struct Printer {
    pub format: OutputFormat,
    stdin_is_terminal: bool,
    stdout_is_terminal: bool,
    stderr_is_terminal: bool,
    no_color: bool,
}

/// The colour a status cell gets on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Printer {
        Printer {
            format,
            stdin_is_terminal: std::io::stdin().is_terminal(),
            stdout_is_terminal: std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            // https://no-color.org: set and not empty means no colour.
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }

    /// Whether data lands on a terminal rather than in a pipe or file: only
    /// then may a command redraw the screen in place.
    pub fn stdout_is_terminal(&self) -> bool {
        self.stdout_is_terminal
    }

    /// Whether notes, logs and progress bars land on a terminal.
    pub fn stderr_is_terminal(&self) -> bool {
        self.stderr_is_terminal
    }

    /// Whether someone can be asked a question: the answer is read from
    /// stdin and the question shown on stderr, so both must be terminals.
    pub fn can_ask(&self) -> bool {
        self.stdin_is_terminal && self.stderr_is_terminal
    }

    /// Whether data on stdout (tables, status cells) may be coloured: on a
    /// terminal, unless `NO_COLOR` is set.
    pub fn colour(&self) -> bool {
        !self.no_color && self.stdout_is_terminal
    }

    /// Whether logs on stderr may be coloured: on a terminal, unless
    /// `NO_COLOR` is set.
    pub fn stderr_colour(&self) -> bool {
        !self.no_color && self.stderr_is_terminal
    }

    /// A progress bar of `total` steps on stderr, drawn with `template`
    /// (indicatif's syntax, e.g. `"{bar:40} {pos}/{len} records"`). It is
    /// hidden when stderr is not a terminal, so logs and pipes never fill
    /// with redraws; counting on it still works either way.
    pub fn progress_bar(&self, total: u64, template: &str) -> ProgressBar {
        let target = if self.stderr_is_terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        // A template is a constant of the caller's; a wrong one costs the
        // bar its looks, not the command its work.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A borderless table in the style of kubectl and rpk: upper-case
    /// headers, columns separated by spaces, nothing wrapped, so `awk` and
    /// `grep` keep working.
    pub fn table<I, S>(&self, headers: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.into_iter().map(|h| Cell::new(h.into())));
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        table
    }

    /// Right-aligns the given columns (numbers read better that way).
    pub fn align_right(&self, table: &mut Table, columns: &[usize]) {
        for &i in columns {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }

    pub fn cell(&self, text: impl Into<String>, tone: Tone) -> Cell {
        let cell = Cell::new(text.into());
        if !self.colour() {
            return cell;
        }
        match tone {
            Tone::Plain => cell,
            Tone::Good => cell.fg(Color::Green),
            Tone::Warn => cell.fg(Color::Yellow),
            Tone::Bad => cell.fg(Color::Red),
        }
    }

    pub fn print_table(&self, table: &Table) {
        // comfy-table pads the last column too; trailing blanks only get in
        // the way of diffs and snapshots.
        let text: String = table
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        self.line(&text);
    }

    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.line(&text);
        Ok(())
    }

    /// One line of data on stdout. A closed pipe (`| head`) is not an error.
    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// Text exactly as given, for terminal control sequences.
    pub fn raw(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{text}");
        let _ = out.flush();
    }

    /// A remark for the person at the terminal, on stderr.
    pub fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    pub fn warn(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "warning: {text}");
    }

    pub fn error(&self, error: &anyhow::Error) {
        // `{:#}` joins the chain of causes: "what we tried: why it failed".
        let _ = writeln!(std::io::stderr().lock(), "error: {error:#}");
    }

    /// The table of a destructive command's plan: its own columns, then,
    /// once applied, each row's RESULT, then a NOTE.
    pub fn plan_table(&self, columns: &[&str], applied: bool) -> Table {
        let result = applied.then_some("RESULT");
        self.table(columns.iter().copied().chain(result).chain(["NOTE"]))
    }

    /// A plan row's result once applied: red when it failed, green
    /// otherwise.
    pub fn result_cell(&self, result: Option<&str>) -> Cell {
        let result = or_dash(result);
        let tone = if result.starts_with("failed") {
            Tone::Bad
        } else {
            Tone::Good
        };
        self.cell(result, tone)
    }
}

/// "-" for values that do not apply. Never print a made-up number.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
