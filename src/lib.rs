//! smmctl: operate the SMM Panel's Kafka system.
//!
//! The binary is a thin shell around [`main_entry`]; the library exists so
//! tests can reach the clap definitions (for the completion and man page
//! freshness checks) without spawning a process.
//!
//! Nothing but `output::Printer` writes to stdout or stderr: `println!`
//! panics when the reader of a pipe has gone (`smmctl … | head`), the
//! printer does not.

pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod exit;
pub mod input;
pub mod kafka;
pub mod lag;
pub mod output;
pub mod schemas;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::config::{CryptomusOverrides, Origin, Overrides, Settings, Sourced};
use crate::exit::{ExitStatus, status_of};
use crate::output::Printer;

/// Everything a command needs besides its own arguments.
pub struct Context {
    pub settings: Settings,
    pub printer: Printer,
    /// How many times -v was given: more detail where a command has it.
    pub verbose: u8,
}

/// Runs the command line and returns its exit status; `main` exits with it.
pub fn main_entry() -> ExitStatus {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let worker_logs = match &cli.command {
        cli::Command::Run(args) => Some(args.log_format),
        _ => None,
    };
    let verbose = cli.global.verbose;
    let printer = Printer::new(cli.global.output);
    init_logging(verbose, worker_logs, printer.stderr_colour());
    let overrides = overrides_from(&cli, &matches);
    if let Some(outcome) = commands::dispatch_without_settings(&cli.command, &printer) {
        return exit_status(outcome, &printer);
    }

    let settings = match Settings::load(overrides) {
        Ok(s) => s,
        Err(e) => {
            printer.error(&anyhow::Error::new(e));
            return ExitStatus::Error;
        }
    };
    let ctx = Context {
        settings,
        printer,
        verbose,
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctx.printer
                .error(&anyhow::anyhow!("cannot start the async runtime: {e}"));
            return ExitStatus::Failure;
        }
    };
    let outcome = runtime.block_on(commands::dispatch(cli.command, &ctx));
    // A command that gave up on a broker at its deadline may leave a
    // request behind in librdkafka; waiting for it would break the
    // deadline the command just kept.
    runtime.shutdown_background();
    exit_status(outcome, &ctx.printer)
}

/// The status a command earned, or the one its error carries, after
/// printing that error.
fn exit_status(outcome: anyhow::Result<ExitStatus>, printer: &Printer) -> ExitStatus {
    outcome.unwrap_or_else(|e| {
        printer.error(&e);
        status_of(&e)
    })
}

/// Reads flags and environment variables, remembering which one gave each
/// value so `config show` can report it.
fn overrides_from(cli: &Cli, matches: &ArgMatches) -> Overrides {
    fn sourced<T: Clone>(matches: &ArgMatches, id: &str, value: &Option<T>) -> Option<Sourced<T>> {
        let value = value.clone()?;
        let source = match find_source(matches, id) {
            Some(ValueSource::EnvVariable) => Origin::Env,
            _ => Origin::Flag,
        };
        Some(Sourced::new(value, source))
    }
    let g = &cli.global;
    Overrides {
        brokers: sourced(matches, "brokers", &g.brokers),
        profile: sourced(matches, "profile", &g.profile),
        config: sourced(matches, "config", &g.config),
        client_id: sourced(matches, "client_id", &g.client_id),
        // Worker flags arrive with `run`; until then their variables still
        // count, so `config show` tells the truth about them.
        database_url: env_setting("SMM_DATABASE_URL"),
        metrics_addr: env_setting("SMM_METRICS_ADDR"),
        cryptomus: CryptomusOverrides {
            api_key: env_setting("SMM_CRYPTOMUS_API_KEY"),
            merchant: env_setting("SMM_CRYPTOMUS_MERCHANT"),
            base_url: env_setting("SMM_CRYPTOMUS_URL"),
        },
        providers: config::PROVIDER_SETTINGS
            .iter()
            .filter_map(|s| env_setting(s.env).map(|v| (s.key, v)))
            .collect(),
        timeout: sourced(matches, "timeout", &g.timeout),
        kafka: g.kafka.clone(),
    }
}

fn env_setting(name: &str) -> Option<Sourced<String>> {
    let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(Sourced::new(value, Origin::Env))
}

/// Global flags may be given after a subcommand, so look in the deepest
/// matches first.
fn find_source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    let mut current = matches;
    let mut found = current.value_source(id);
    while let Some((_, sub)) = current.subcommand() {
        if let Some(source) = sub.try_get_raw(id).ok().flatten().and(sub.value_source(id)) {
            found = Some(source);
        }
        current = sub;
    }
    found
}

/// `worker_logs` is the `run` command's log format: workers log what they
/// do at info, because an operator reads those lines; the other commands
/// stay quiet unless asked. `colour` is the printer's verdict on stderr.
fn init_logging(verbose: u8, worker_logs: Option<cli::LogFormat>, colour: bool) {
    use tracing_subscriber::EnvFilter;
    // librdkafka reports every failed connection attempt as an error; the
    // commands turn those into one actionable message, so its own log stays
    // quiet unless asked for.
    let default = match (verbose, worker_logs) {
        (0, Some(_)) => "info,rdkafka=off,sqlx=warn",
        (0, None) => "warn,rdkafka=off",
        (1, _) => "info,rdkafka=warn",
        _ => "debug,rdkafka=debug",
    };
    let filter = EnvFilter::try_from_env("SMM_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = if worker_logs == Some(cli::LogFormat::Json) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}
