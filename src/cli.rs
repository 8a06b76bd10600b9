//! The command-line interface: names, flags and help text only. Parsing
//! happens here; nothing here talks to Kafka.
//!
//! These names are a contract with scripts and cron jobs. Add, don't rename.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use smm_workers::workers::WorkerKind;

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
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
    /// Send realistic orders through the whole system: webhook, order, delivery, completion
    #[command(long_about = SIMULATE_ABOUT)]
    Simulate(SimulateArgs),
    /// Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP
    #[command(long_about = SANDBOX_ABOUT)]
    Sandbox(SandboxArgs),
    /// Consumer lag per group, topic and partition, in messages and in seconds
    #[command(long_about = LAG_ABOUT)]
    Lag(LagArgs),
    /// List, describe and delete consumer groups
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// List, inspect, replay and drain dead letters
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Reset consumer group offsets, with a preview first
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Delete records from the start of partitions, with a preview first
    #[command(subcommand)]
    Records(RecordsCommand),
    /// The panel's health table and checks, for people and for cron
    #[command(long_about = HEALTH_ABOUT)]
    Health(HealthArgs),
    /// Create, compare and clean up the panel's topics
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Show the effective configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The trail of executed destructive commands
    #[command(long_about = AUDIT_ABOUT)]
    Audit(AuditArgs),
    /// Print a shell completion script to stdout
    Completions(CompletionsArgs),
    /// Write the checked-in completions and man pages (for maintainers)
    #[command(hide = true)]
    Generate(GenerateArgs),
}

const LAG_ABOUT: &str = "Consumer lag per group, topic and partition, in messages and in seconds.

By default: every one of the panel's nine groups, one row per group and topic. \
--partitions shows one row per partition, --summary one row per group.

LAG is the log end offset minus the committed offset, summed over partitions. \
Where one of the panel's groups has no committed offset, it counts from the log start \
(its workers read from the earliest offset); for other groups, whose auto.offset.reset \
smmctl cannot see, it shows \"-\", never a made-up number. A commit past the log end \
is a broken position: no lag figure, a note, and exit 1. A commit the broker could not \
return is shown with its error, never as \"no commit\", and the command exits 1.

LAG-TIME is how far behind the group is in time: now minus the timestamp of the \
next record the group would read, fetched from the broker. It needs no history, so \
it is right on quiet topics and when a group re-reads old data; it is 0s for a group \
that is caught up and \"-\" where that record cannot be read. Record timestamps \
are the producers' clocks (CreateTime) unless the topic uses LogAppendTime.

A group is over its threshold when its total lag is at or above it (the panel's \
rule: lag < 1000); such rows are marked and the command exits 1.

--watch refreshes in place and judges each partition over a window of samples:
  OK      lag is zero, or the group keeps up
  WARN    the committed offset moves, but lag grew at every sample of the window; or it
          is frozen with lag, but not yet for a whole window
  STALL   lag > 0 and the committed offset has not moved for a whole window, although
          a member owns the partition
  STOP    lag > 0, nobody owns the partition, and the committed offset has not moved
          for a whole window
  REWIND  the committed offset went backwards
  BROKEN  the committed offset is past the log end
A group's status is its worst partition's; \"-\" means not enough samples yet.";

const HEALTH_ABOUT: &str = "The panel's health table and checks, computed live.

Categories: Active Topics are the category's catalog topics that exist; DLQ Messages \
are the dead letters waiting in its dead-letter topics: records after the position of \
dlq-processing-group, which `dlq replay` and `dlq drain` move (the same count as `dlq list`'s \
WAITING); DLQ Retained is everything those topics still hold, handled or not. A category is \
Degraded when a dead letter waits, a group lagging on its topics is over its lag threshold, or a topic \
is missing, and Down when one of its main topics is missing or has a partition \
without a leader.

Checks: broker connection; each of the nine groups is Stable or Empty; every partition \
of the topics an active group reads is assigned; lag under the threshold; a test record \
produced to _smmctl.health and read back; no catalog topic missing; no dead letters \
(critical, financial ones called out).

Exit codes: 0 healthy; 1 degraded or down; 2 the brokers cannot be reached within --timeout.";

#[derive(Debug, Args)]
pub struct LagArgs {
    /// Only these groups (repeatable) [default: the panel's nine groups]
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: Vec<String>,
    /// Every group on the cluster
    #[arg(long, conflicts_with = "group")]
    pub all_groups: bool,
    /// Only these topics (repeatable); without --group, every group reading them
    #[arg(long, short = 't', value_name = "TOPIC")]
    pub topic: Vec<String>,
    /// One row per partition
    #[arg(long, conflicts_with = "summary")]
    pub partitions: bool,
    /// One row per group
    #[arg(long)]
    pub summary: bool,
    /// Skip reading record timestamps (no LAG-TIME column; a little faster)
    #[arg(long)]
    pub no_time: bool,
    /// Refresh every INTERVAL and show a status per partition and group
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "5s", value_parser = parse_duration)]
    pub watch: Option<Duration>,
    /// With --watch: samples in the status window
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    pub window: u32,
    /// With --watch: stop after N refreshes [default: run until interrupted]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every consumer group: state, protocol, members, and whether it is one of the panel's
    List(GroupsListArgs),
    /// Members, committed offsets and lag of groups, partition by partition
    Describe(GroupsDescribeArgs),
    /// Delete a group that has no members, after a preview and a confirmation
    Delete(GroupsDeleteArgs),
}

#[derive(Debug, Args)]
pub struct GroupsListArgs {
    /// Only groups in this state (repeatable): stable, empty, dead, preparing-rebalance, completing-rebalance
    #[arg(long, value_name = "STATE")]
    pub state: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GroupsDescribeArgs {
    #[arg(required = true, value_name = "GROUP")]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GroupsDeleteArgs {
    #[arg(required = true, value_name = "GROUP")]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Move a group's committed offsets: preview by default, --execute to apply
    #[command(long_about = OFFSETS_RESET_ABOUT)]
    Reset(OffsetsResetArgs),
}

const OFFSETS_RESET_ABOUT: &str = "Move a group's committed offsets.

Previews by default: GROUP, TOPIC, PARTITION, CURRENT, LOG-START, LOG-END, NEW and a NOTE \
that says how many records the move skips or re-reads. --execute applies it, after a \
confirmation on a terminal (--yes answers it; without a terminal --yes is required). \
A group with live members is refused, with the members named: stop them first.

Targets outside the retained range are clamped to it, and NOTE says so; --strict makes \
that an error instead. --to-datetime and --by-duration pick, per partition, the first \
record at or after that time, or the log end when there is none.

Before applying, the prior offsets are written to an undo file (CSV, printed on stderr, \
the last 100 kept under the state directory); `--from-file UNDO --execute` restores them \
exactly, removing commits that did not exist before.";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args([
    "to_earliest", "to_latest", "to_current", "to_offset", "shift_by", "to_datetime", "by_duration", "from_file",
])))]
#[command(group(clap::ArgGroup::new("scope").args(["topic", "all_topics", "category"]).multiple(false)))]
pub struct OffsetsResetArgs {
    /// The consumer group
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: String,
    /// A topic, optionally with partitions: TOPIC or TOPIC:0,1,2 (repeatable)
    #[arg(long, short = 't', value_name = "TOPIC[:P,P...]", value_parser = crate::input::parse_topic_spec)]
    pub topic: Vec<crate::input::TopicSpec>,
    /// Every topic the group has committed offsets on
    #[arg(long)]
    pub all_topics: bool,
    /// The catalog topics of a category that the group reads or has committed on
    #[arg(long, value_name = "CATEGORY")]
    pub category: Option<String>,
    /// To the first retained offset (log start)
    #[arg(long)]
    pub to_earliest: bool,
    /// To the log end: skip everything not yet read
    #[arg(long)]
    pub to_latest: bool,
    /// To the committed offset (commits it where it is; no-op rows are shown)
    #[arg(long)]
    pub to_current: bool,
    /// To this offset on every partition in scope
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// Move by N: negative re-reads, positive skips
    #[arg(long, value_name = "±N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// To the first record at or after this time: RFC 3339, or a date and time without zone (UTC)
    #[arg(long, value_name = "TIME", value_parser = crate::input::parse_time)]
    pub to_datetime: Option<jiff::Timestamp>,
    /// To the first record at or after now minus this: 2h30m, 7d, P1DT2H
    #[arg(long, value_name = "DURATION", value_parser = crate::input::parse_span)]
    pub by_duration: Option<Duration>,
    /// Offsets from a CSV: topic,partition,offset or group,topic,partition,offset (an undo file works)
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Refuse targets outside the retained range instead of clamping them
    #[arg(long)]
    pub strict: bool,
    /// Write the plan as a CSV usable with --from-file
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Delete records at the start of partitions: preview by default, --execute to delete
    #[command(long_about = RECORDS_DELETE_ABOUT)]
    Delete(RecordsDeleteArgs),
}

const RECORDS_DELETE_ABOUT: &str =
    "Delete records at the start of partitions (moves the log start offset).

Previews by default: TOPIC, PARTITION, LOG-START -> NEW-LOG-START, the number of records \
deleted, and every consumer group that has not yet read them (which would lose them \
unprocessed). --execute deletes, after a confirmation on a terminal (--yes answers it; \
without a terminal --yes is required).

--force is also needed to delete from a main topic, from a financial topic \
(smm.payment.*, smm.order.refund*), or records a group has not read yet.

Prints the new log start of each partition, and exits 1 if any partition failed.";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args([
    "before_offset", "before_datetime", "older_than", "all", "from_file",
])))]
pub struct RecordsDeleteArgs {
    /// The topic (not needed with --from-file)
    #[arg(
        long,
        short = 't',
        value_name = "TOPIC",
        required_unless_present = "from_file",
        conflicts_with = "from_file"
    )]
    pub topic: Option<String>,
    /// Only these partitions (repeatable) [default: all]
    #[arg(long, short = 'p', value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Vec<i32>,
    /// Delete every record before this offset
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub before_offset: Option<i64>,
    /// Delete every record before the first one at or after this time
    #[arg(long, value_name = "TIME", value_parser = crate::input::parse_time)]
    pub before_datetime: Option<jiff::Timestamp>,
    /// Delete records older than this: 7d, 36h, P1D
    #[arg(long, value_name = "DURATION", value_parser = crate::input::parse_span)]
    pub older_than: Option<Duration>,
    /// Delete everything up to the high watermark
    #[arg(long)]
    pub all: bool,
    /// Kafka's delete-records JSON, or CSV topic,partition,offset (-1 or end: the high watermark)
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Allow main and financial topics, and records a group has not read yet
    #[arg(long)]
    pub force: bool,
    /// Refuse if more than N records would be deleted in all (a guard for cron jobs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub max_records: Option<i64>,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Also write the results in Prometheus text format to FILE (for node_exporter's textfile collector)
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Skip the produce-and-read-back check (for read-only credentials)
    #[arg(long)]
    pub no_produce: bool,
}

const RUN_ABOUT: &str = "Run the panel's workers until SIGTERM or SIGINT.

Each worker consumes its topics under its seed consumer group (see --list), applies each record to \
the panel store in one transaction together with the record's event id, and stores the offset only \
after that transaction and every record it forwards are acknowledged. Delivery is at least once; the \
event-id dedup makes the effects happen once. A failure that can pass is retried on the catalog's \
ladder (retry topics, or in place for payments and refunds) and never earlier than due; what still \
fails, and what can never succeed (malformed JSON, an unknown event type, a failed validation, a bad \
signature), goes to the topic's DLT or DLQ with Spring Kafka's exception and original-* headers.

On SIGTERM or SIGINT the workers stop fetching, finish the record in hand (up to --drain-timeout), \
commit and exit 0. /metrics (Prometheus) and /health, /health/live, /health/ready are served on \
--metrics-addr.

The webhook and refund workers need the Cryptomus API key: SMM_CRYPTOMUS_API_KEY, or \
[profiles.NAME.cryptomus] api_key in the config file (a string, { file = \"…\" } or { env = \"…\" }).";

/// A worker to run, or `all` of them, as the command line spells it: the
/// workers crate's [`WorkerKind`] with the help each value shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerName {
    One(WorkerKind),
    /// Every worker and the gateway, in one process
    All,
}

impl WorkerName {
    /// Every kind in its own order, then `all`, as `--help` lists them.
    const VARIANTS: [WorkerName; WorkerKind::ALL.len() + 1] = {
        let mut variants = [WorkerName::All; WorkerKind::ALL.len() + 1];
        let mut i = 0;
        while i < WorkerKind::ALL.len() {
            variants[i] = WorkerName::One(WorkerKind::ALL[i]);
            i += 1;
        }
        variants
    };
}

impl ValueEnum for WorkerName {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::VARIANTS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let (name, help) = match self {
            WorkerName::One(kind) => (kind.name(), worker_help(*kind)),
            WorkerName::All => ("all", "Every worker and the gateway, in one process"),
        };
        Some(clap::builder::PossibleValue::new(name).help(help))
    }
}

/// One line on what a worker does, for `smmctl run --help`.
fn worker_help(kind: WorkerKind) -> &'static str {
    match kind {
        WorkerKind::Webhooks => "Verify Cryptomus webhooks, publish payment confirmations",
        WorkerKind::Payments => "Credit balances, write the ledger, activate paid orders",
        WorkerKind::Refunds => "Refund orders to the balance and cancel them",
        WorkerKind::PaymentRefunds => "Refund payments through the provider's API",
        WorkerKind::Orders => {
            "Check new orders' videos on YouTube, capture the start count, activate paid orders"
        }
        WorkerKind::OrderState => "Enforce and apply order transitions; tell the customer",
        WorkerKind::Progress => "Apply delivery progress; complete orders at 100 %",
        WorkerKind::Websocket => "Push order status updates to WebSocket clients",
        WorkerKind::Video => "Start view delivery and report its progress",
        WorkerKind::Youtube => "YouTube view count checks within the daily API quota",
        WorkerKind::Binom => "Create Binom campaigns, once each",
        WorkerKind::Offers => "Map orders to Binom offers and campaigns",
        WorkerKind::Notifications => "Send email (SMTP), SMS and push notifications",
        WorkerKind::Cqrs => "Keep the order read model (CQRS)",
        WorkerKind::WebhookGateway => {
            "HTTP intake for provider webhooks (POST /webhooks/cryptomus)"
        }
    }
}

const SIMULATE_ABOUT: &str = "Send realistic orders through the whole system and wait for them to settle.

For each order: a customer and a PENDING order are written to the panel store (as the panel's order \
service does), the OrderCreatedEvent goes to smm.order.processing and a Binom campaign request to \
smm.binom.campaign.creation, and a signed Cryptomus webhook for its payment is POSTed to the gateway. \
Every record of one order carries the same correlation id. The command then follows the orders in the \
store until they reach COMPLETED (or the state their fault leads to) and prints where each one ended.

--fail-rate gives that share of orders one fault, in turn: a video YouTube fails once (a retry via \
smm.order.processing-retry-0, then completion), an unknown video (smm.order.processing-dlt), a forged \
webhook signature (smm.payment.webhooks.dlq), and an illegal state event (smm.order.state.updates-dlt).

Needs the workers running (smmctl run all) and the Cryptomus API key they verify webhooks with. \
Exit 0 when every order reached its expected state, 1 when some did not within --wait.";

const SANDBOX_ABOUT: &str = "Serve local stand-ins for the panel's outside services, until Ctrl-C.

One HTTP address serves YouTube's Data API (/youtube/v3/videos, /youtube/v3/channels), the delivery \
provider (/v1/deliveries), Binom (/public/api/v1/campaigns) and SMS/push endpoints (/notify/sms, \
/notify/push); GET /sandbox shows every call they answered. A second address is an SMTP server that \
keeps what it receives. The command prints the SMM_* variables that point the workers at them.

Video ids steer YouTube: ids starting with x are unknown, flaky fails its first call with 503, hidden \
hides its view count. Campaign names containing slow make Binom answer the first creation late.";

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many orders to send
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub orders: u32,
    /// Share of orders given a fault, from 0 to 1 (0.25: every fourth)
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_rate: f64,
    /// The webhook gateway's base URL
    #[arg(long, env = "SMM_GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The panel store the workers use [env: SMM_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// How long to follow the orders before giving up
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Send and return at once, without following the orders
    #[arg(long)]
    pub no_wait: bool,
    /// The first order's id; the others count up from it (default: from the clock, so runs never collide)
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub first_order_id: Option<i64>,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Where the HTTP stand-ins listen
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8099")]
    pub addr: String,
    /// Where the SMTP server listens
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2525")]
    pub smtp_addr: String,
    /// How long a delivery takes to reach its full quantity
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = parse_duration)]
    pub delivery_duration: Duration,
    /// YouTube units granted before it answers quotaExceeded (default: no limit)
    #[arg(long, value_name = "UNITS")]
    pub youtube_quota: Option<u64>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a share between 0 and 1 (0.25 gives every fourth order a fault)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line, for log shippers
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workers to run
    #[arg(value_enum, value_name = "WORKER", required_unless_present = "list")]
    pub workers: Vec<WorkerName>,
    /// Show each worker with its consumer group, topics and retry ladder, and exit
    #[arg(long)]
    pub list: bool,
    /// The panel store: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [env: SMM_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Where /metrics and /health are served [env: SMM_METRICS_ADDR] [default: 127.0.0.1:9464]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Where the webhook gateway listens
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "SMM_GATEWAY_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub gateway_addr: String,
    /// This process's stable name, unique among the copies of these workers (a host or pod name): its workers join their groups as static members, so a restart takes its partitions straight back without a rebalance
    #[arg(long, value_name = "NAME", env = "SMM_INSTANCE")]
    pub instance: Option<String>,
    /// How long a record in hand may run on after SIGTERM before it is left for redelivery
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Log lines as text or JSON
    #[arg(long, value_enum, env = "SMM_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// With cqrs: empty the read model and rebuild it from the earliest offset of its topics
    #[arg(long)]
    pub rebuild: bool,
    /// With --rebuild: rebuild even though retention deleted a topic's early events (orders seen only there are lost)
    #[arg(long)]
    pub force: bool,
    /// With video: first move the deprecated video.processing.queue into smm.video.processing, exactly once
    #[arg(long)]
    pub migrate_legacy: bool,
}

/// The switches every destructive command shares: it previews unless
/// told to act, and asks before it acts unless told not to.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ApplyArgs {
    /// Act on the plan; without it, only preview
    #[arg(long)]
    pub execute: bool,
    /// Do not ask for confirmation (needed without a terminal)
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)
    List(DlqListArgs),
    /// Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)
    Inspect(DlqInspectArgs),
    /// Send dead letters back to their topic: preview by default, --execute to replay
    #[command(long_about = DLQ_REPLAY_ABOUT)]
    Replay(DlqReplayArgs),
    /// Archive dead letters to a file and mark them handled: preview by default, --execute to drain
    #[command(long_about = DLQ_DRAIN_ABOUT)]
    Drain(DlqDrainArgs),
}

const DLQ_REPLAY_ABOUT: &str = "Send dead letters back to where they failed, after the cause is fixed.

Each record goes to the topic its kafka_original-topic header names (kafka_dlt-original-topic for a \
plain recoverer); --to sends everything to one topic, --to-first-retry to the original topic's first \
retry topic so a replay cannot disturb live traffic: the catalog's, or for other topics the first \
that exists of Spring's <main>-retry-0, <main>-retry and <main>-retry-<delay> (shortest delay \
first), where <main> is the dead-letter topic's name without -dlt, .DLT, -dlq or .dlq. A record whose destination cannot be resolved is \
skipped and reported (exit 1), never guessed. Key, value and headers are kept, except Spring's \
retry state (retry_topic-*): a copy starts its retry ladder over, so one that fails again is retried \
rather than sent straight back to the dead-letter topic, and a copy sent to a retry topic is a fresh \
first retry, due at once. x-smm-replayed-at, x-smm-replay-count and \
x-smm-dlq-topic/-partition/-offset are added. A record replayed --max-replays \
times already is refused unless --force.

Progress is the processing group's committed offset (default dlq-processing-group): a replay starts \
where the last one stopped. The copies and the group's new offset are written in one Kafka \
transaction per batch, so a replay killed at any point and run again replays every record exactly \
once, for read_committed readers only (isolation.level=read_committed, librdkafka's and the workers' \
default). read_uncommitted readers, the default of the Java client and of Spring Boot, may also see \
the copies of a batch that a crash, a kill, an error or a stop aborted, and then the copies a later \
run sends again: for them a replay is at least once. Where \
the broker refuses transactions, each offset is committed after the copies before it are \
acknowledged: at least once, and the workers' event-id dedup absorbs a repeat. With filters, the \
group only moves past records that were replayed, so a replay sends nothing behind the first \
record of a partition it does not send (filtered out, unresolvable or refused): those are held \
back and reported, the exit code is 1, and two runs in a row never send a record twice.

Previews by default: counts by destination and a sample. --execute replays, after a confirmation on \
a terminal (--yes answers it; without a terminal --yes is required). --rate limits records per \
second; a transaction ends once it has been open about 2 s (or at --batch records), so however slow \
the rate, read_committed readers of the destination wait at most that long for it and it never \
reaches the 60 s transaction timeout. --from-file replays a `dlq drain` archive instead.";

const DLQ_DRAIN_ABOUT: &str = "Archive dead letters that should not be reprocessed, then mark them handled.

Writes the selected records to a JSON-lines archive (key, headers and value; text where UTF-8, base64 \
otherwise), flushes it to disk, then commits the processing group past them. With --delete, also \
deletes them from the topic (up to the group's new offset). `dlq replay --from-file ARCHIVE` sends \
them back later. Previews by default; --execute drains after a confirmation (--yes answers it).";

/// Which dead letters a command looks at. Every filter narrows.
#[derive(Debug, Args, Clone, Default)]
pub struct DlqFilterArgs {
    /// Only these partitions (repeatable, or comma-separated)
    #[arg(long, value_name = "P", value_delimiter = ',')]
    pub partition: Vec<i32>,
    /// Only offsets FROM to TO, inclusive: `100-250`
    #[arg(long, value_name = "FROM-TO", value_parser = parse_offset_range)]
    pub offset_range: Option<(i64, i64)>,
    /// Only records written at or after TIME (RFC 3339, a date, or @millis)
    #[arg(long, value_name = "TIME", value_parser = crate::input::parse_time)]
    pub since: Option<jiff::Timestamp>,
    /// Only records written before TIME
    #[arg(long, value_name = "TIME", value_parser = crate::input::parse_time)]
    pub until: Option<jiff::Timestamp>,
    /// Only records with this key (exact)
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Only records with this header value (repeatable; Spring's binary numbers compare as decimal)
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_header_filter)]
    pub header: Vec<(String, String)>,
    /// Only records whose exception class, cause or message contains TEXT (any case)
    #[arg(long, value_name = "TEXT")]
    pub exception: Option<String>,
    /// Only records whose event type is TYPE (e.g. OrderRefundRequested)
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
}

fn parse_offset_range(text: &str) -> Result<(i64, i64), String> {
    let (from, to) = text
        .split_once('-')
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("`{text}` is not a range; write FROM-TO, like 100-250"))?;
    let from: i64 = from
        .trim()
        .parse()
        .map_err(|_| format!("`{from}` is not an offset"))?;
    let to: i64 = to
        .trim()
        .trim_start_matches('.')
        .parse()
        .map_err(|_| format!("`{to}` is not an offset"))?;
    if from < 0 || to < from {
        return Err(format!(
            "`{text}`: FROM must be at least 0 and no more than TO"
        ));
    }
    Ok((from, to))
}

fn parse_header_filter(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if name.trim().is_empty() {
        return Err(format!("`{text}` has an empty header name"));
    }
    Ok((name.trim().to_owned(), value.to_owned()))
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// The group whose position marks records as handled
    #[arg(
        long,
        short = 'g',
        value_name = "GROUP",
        default_value = smm_workers::contract::catalog::DLQ_PROCESSING_GROUP
    )]
    pub group: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DlqGroupBy {
    /// Count by exception class and message: how to triage thousands of records
    Exception,
}

#[derive(Debug, Args)]
pub struct DlqInspectArgs {
    /// The dead-letter topic
    pub topic: String,
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Show at most N records (from the oldest)
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Summarize instead of listing records
    #[arg(long, value_enum, value_name = "FIELD")]
    pub group_by: Option<DlqGroupBy>,
}

#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    /// The dead-letter topic (not with --from-file)
    #[arg(required_unless_present = "from_file", conflicts_with = "from_file")]
    pub topic: Option<String>,
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Send every record to TOPIC instead of its original topic
    #[arg(long, value_name = "TOPIC", conflicts_with = "to_first_retry")]
    pub to: Option<String>,
    /// Send each record to its original topic's first retry topic
    #[arg(long)]
    pub to_first_retry: bool,
    /// The group whose committed offsets track replay progress
    #[arg(
        long,
        short = 'g',
        value_name = "GROUP",
        default_value = smm_workers::contract::catalog::DLQ_PROCESSING_GROUP
    )]
    pub group: String,
    /// Refuse records already replayed this many times (poison guard)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_replays: u32,
    /// Replay records past --max-replays too
    #[arg(long)]
    pub force: bool,
    /// At most N records per second
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Records per transaction at most; one also ends after 2 s open, so a slow --rate never holds read_committed readers back long
    #[arg(long, value_name = "N", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Replay a `dlq drain` archive instead of a topic
    #[arg(long, value_name = "ARCHIVE")]
    pub from_file: Option<PathBuf>,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

#[derive(Debug, Args)]
pub struct DlqDrainArgs {
    /// The dead-letter topic
    pub topic: String,
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// The group to move past the drained records
    #[arg(
        long,
        short = 'g',
        value_name = "GROUP",
        default_value = smm_workers::contract::catalog::DLQ_PROCESSING_GROUP
    )]
    pub group: String,
    /// Where the archive goes [default: the state directory, named after the topic and time]
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// Also delete the drained records from the topic (everything up to the group's new offset)
    #[arg(long)]
    pub delete: bool,
    /// With --delete: allow a financial topic, and records another group has not read yet
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub apply: ApplyArgs,
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
    /// Replication factor for new topics [default: the profile's topics.replication_factor, else 1, the panel's development default]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: Option<i32>,
    /// min.insync.replicas for new topics [default: the profile's topics.min_insync_replicas, else a majority of the replicas from 3 up (2 of 3), else 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub min_insync_replicas: Option<i32>,
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
    #[command(flatten)]
    pub apply: ApplyArgs,
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

const AUDIT_ABOUT: &str = "The trail of executed destructive commands, oldest first.

Every executed offsets reset, records delete, groups delete, topics delete, dlq replay and \
dlq drain appends one JSON line: time, OS user, host, profile, brokers, the command line \
with secrets masked, the plan, the result and the exit code. Previews write nothing. \
The trail is $XDG_STATE_HOME/smmctl/audit.jsonl (SMM_AUDIT_FILE moves it); a profile with \
audit_topic = true also sends each line to the _smmctl.audit topic. A command whose line \
cannot be written refuses before it changes anything.";

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only lines at or after TIME (RFC 3339, a date, @millis, or a duration ago such as 7d)
    #[arg(long, value_name = "TIME", value_parser = crate::input::parse_since)]
    pub since: Option<jiff::Timestamp>,
    /// Only this command (e.g. "dlq drain", or a prefix such as "dlq")
    #[arg(long, value_name = "COMMAND")]
    pub command: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_takes_days_like_every_other_duration() {
        let cli = Cli::try_parse_from(["smmctl", "--timeout", "1d", "config", "show"]).unwrap();
        assert_eq!(cli.global.timeout, Some(Duration::from_secs(86_400)));
    }
}
