//! The command-line interface: names, flags and help text only. Parsing
//! happens here; nothing here talks to Kafka.
//!
//! These names are a contract with scripts and cron jobs. Add, don't rename.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{parse_duration, parse_kafka_property};

#[derive(Debug, Parser)]
#[command(
    name = "smmctl",
    version,
    about = "Operate the SMM Panel's Kafka system: topics, lag, health, offsets, dead letters and the panel's workers",
    long_about = "Operate the SMM Panel's Kafka system: topics, lag, health, offsets, dead letters and the panel's workers.\n\n\
        Exit codes: 0 success or healthy; 1 failed, partly failed, refused or unhealthy; \
        2 usage or configuration error, or the brokers cannot be reached.\n\n\
        Settings come from flags, then SMM_* environment variables, then the config file's profile \
        (--config, or ~/.config/smmctl/config.toml).",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]
    #[arg(
        long,
        global = true,
        env = "SMM_BROKERS",
        hide_env_values = true,
        value_name = "HOST:PORT,..."
    )]
    pub brokers: Option<String>,

    /// Profile of the config file to use (a cluster and its settings)
    #[arg(
        long,
        global = true,
        env = "SMM_PROFILE",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub profile: Option<String>,

    /// Config file [default: ~/.config/smmctl/config.toml when it exists]
    #[arg(
        long,
        global = true,
        env = "SMM_CONFIG",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Kafka client id
    #[arg(
        long,
        global = true,
        env = "SMM_CLIENT_ID",
        hide_env_values = true,
        value_name = "ID",
        hide_short_help = true
    )]
    pub client_id: Option<String>,

    /// A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE", value_parser = parse_kafka_property)]
    pub kafka: Vec<(String, String)>,

    /// How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]
    #[arg(long, global = true, env = "SMM_TIMEOUT", hide_env_values = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Output format of read commands
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Log more: -v for info, -vv for debug (SMM_LOG overrides)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one of the panel's workers, or all of them
    Run(PendingArgs),
    /// Consumer lag per group, topic and partition, in messages and in seconds
    Lag(PendingArgs),
    /// List, describe and delete consumer groups
    Groups(PendingArgs),
    /// List, inspect, replay and drain dead letters
    Dlq(PendingArgs),
    /// Reset consumer group offsets, with a preview first
    Offsets(PendingArgs),
    /// Delete records from the start of partitions, with a preview first
    Records(PendingArgs),
    /// The panel's health table and checks, for people and for cron
    Health(PendingArgs),
    /// Create, compare and clean up the panel's topics
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Show the effective configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script to stdout
    Completions(CompletionsArgs),
    /// Write the checked-in completions and man pages (for maintainers)
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Accepts anything, so a command that is not built yet says so instead of
/// failing on its flags.
#[derive(Debug, Args)]
pub struct PendingArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every catalog topic that is missing (acts by default; --dry-run previews)
    #[command(
        long_about = "Create every catalog topic that is missing, with its partitions, \
        retention (7 days), compression (snappy), replication factor and min.insync.replicas.\n\n\
        Like `kubectl apply`, this acts by default, because creating a missing topic is safe; \
        --dry-run shows the plan only. It is idempotent: a second run changes nothing and says so. \
        A topic whose partition count differs from the catalog is reported, never changed, \
        and makes the command exit 1."
    )]
    Apply(TopicsApplyArgs),
    /// Compare the catalog with the cluster: existence, partitions, messages
    List(TopicsListArgs),
    /// Cluster topics the catalog does not know, and legacy topics still present
    Orphans(TopicsOrphansArgs),
    /// Delete topics, after a preview and a confirmation
    #[command(long_about = "Delete topics, after a preview and a confirmation.\n\n\
        Without --execute this only previews. With --execute it asks for confirmation on a \
        terminal unless --yes is given; with no terminal it refuses unless --yes is given. \
        Catalog topics (other than legacy ones) also need --force; Kafka's internal topics \
        are never deleted.")]
    Delete(TopicsDeleteArgs),
}

#[derive(Debug, Args)]
pub struct TopicsApplyArgs {
    /// Show the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only topics of this category (repeatable), e.g. payment, order-processing
    #[arg(long, value_name = "CATEGORY")]
    pub category: Vec<String>,
    /// Do not create the deprecated legacy topics
    #[arg(long)]
    pub skip_legacy: bool,
    /// Replication factor for new topics [default: 1, the panel's development default]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: Option<i32>,
}

#[derive(Debug, Args)]
pub struct TopicsListArgs {
    /// Only topics of this category (repeatable)
    #[arg(long, value_name = "CATEGORY")]
    pub category: Vec<String>,
    /// Only topics that are missing or differ from the catalog
    #[arg(long)]
    pub problems: bool,
    /// Exit 1 when a catalog topic is missing or its partition count differs
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct TopicsOrphansArgs {
    /// Exit 1 when any orphan or legacy topic is found
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct TopicsDeleteArgs {
    /// Topics to delete
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Delete for real; without it, only preview
    #[arg(long)]
    pub execute: bool,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Allow deleting catalog topics
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and where each came from, secrets masked
    Show,
    /// Print the path of the config file in use, or the default one
    Path,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The folder that holds completions/ and man/
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}
