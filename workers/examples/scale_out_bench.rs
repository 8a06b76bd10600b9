//! How fast a backlog of payment confirmations drains through one and
//! through several `smmctl run payments` processes sharing one PostgreSQL,
//! for `scripts/bench`'s scale-out section.
//!
//!   scale_out_bench --smmctl PATH --brokers HOST:PORT --database-url URL
//!                   --payments N --processes 1,3 [--runs R]
//!
//! Each run starts K processes and waits until every one holds partitions
//! (so the group's joins are not measured), then produces N fresh
//! confirmations at once, keyed by user over 3000 users so the topic's
//! partitions get even shares, and waits until the store holds all N
//! payments. Prints one JSON line per run:
//! `{"processes":K,"payments":N,"seconds":…,"first_to_last":…,"busy_cores":…}`,
//! where `seconds` runs from the first record produced to the N-th
//! payment, `first_to_last` from the first payment to the N-th, and
//! `busy_cores` is how many of the machine's cores were busy over that
//! second span (from /proc/stat).
// A command-line tool whose report is its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use smm_workers::contract::catalog::PAYMENT_CONFIRMATIONS;
use smm_workers::contract::events::{
    Envelope, Event, PaymentConfirmation, PaymentStatus, deterministic_event_id,
};
use smm_workers::store::{Store, panel};

const GROUP: &str = "smm-payment-confirmations-realtime-group";
const USERS: std::ops::RangeInclusive<i64> = 8_000_001..=8_003_000;
/// Gives up on a run whose payments have not all arrived by then.
const DEADLINE: Duration = Duration::from_secs(600);

struct Args {
    smmctl: String,
    brokers: String,
    database_url: String,
    payments: usize,
    processes: Vec<usize>,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut smmctl, mut brokers, mut database_url) = (None, None, None);
    let (mut payments, mut processes, mut runs) = (10_000, vec![1, 3], 1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--smmctl" => smmctl = Some(value),
            "--brokers" => brokers = Some(value),
            "--database-url" => database_url = Some(value),
            "--payments" => payments = value.parse().map_err(|e| format!("--payments: {e}"))?,
            "--runs" => runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            "--processes" => {
                processes = value
                    .split(',')
                    .map(|k| k.parse().map_err(|e| format!("--processes: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        smmctl: smmctl.ok_or("--smmctl is required")?,
        brokers: brokers.ok_or("--brokers is required")?,
        database_url: database_url.ok_or("--database-url is required")?,
        payments,
        processes,
        runs,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("scale_out_bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale_out_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: &Args) -> Result<(), String> {
    apply_topics(args)?;
    let store = Store::open(&args.database_url)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut conn = store.pool().acquire().await.map_err(|e| e.to_string())?;
        for user in USERS {
            panel::insert_user(&mut conn, user, "USD")
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "20")
        .create()
        .map_err(|e| e.to_string())?;
    for run in 0..args.runs {
        for (step, &processes) in args.processes.iter().enumerate() {
            let prefix = format!("scale-{}-{run}-{step}-{processes}", std::process::id());
            skip_to_latest(args)?;
            let mut children = Vec::new();
            for _ in 0..processes {
                children.push(Worker::start(args)?);
            }
            let drained = match all_ready(&children).await {
                Ok(()) => drain(args, &producer, &store, &prefix).await,
                Err(e) => Err(e),
            };
            for child in &mut children {
                child.stop();
            }
            let drained = drained?;
            println!(
                "{{\"processes\":{processes},\"payments\":{},\"seconds\":{:.3},\"first_to_last\":{:.3},\"busy_cores\":{:.2}}}",
                args.payments, drained.seconds, drained.first_to_last, drained.busy_cores
            );
        }
    }
    Ok(())
}

/// Runs `smmctl --brokers … ARGS` and fails unless it succeeds.
fn smmctl(args: &Args, what: &str, command: &[&str]) -> Result<(), String> {
    let status = Command::new(&args.smmctl)
        .args(["--brokers", &args.brokers])
        .args(command)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {status}"))
    }
}

/// Creates the catalog's topics where they are missing.
fn apply_topics(args: &Args) -> Result<(), String> {
    smmctl(args, "topics apply", &["topics", "apply"])
}

/// Moves the group past every earlier run's records.
fn skip_to_latest(args: &Args) -> Result<(), String> {
    smmctl(
        args,
        "offsets reset",
        &[
            "offsets",
            "reset",
            "--group",
            GROUP,
            "--topic",
            PAYMENT_CONFIRMATIONS,
            "--to-latest",
            "--execute",
            "--yes",
        ],
    )
}

async fn queue(producer: &FutureProducer, prefix: &str, payments: usize) -> Result<(), String> {
    let users: Vec<i64> = USERS.collect();
    let mut sends = Vec::with_capacity(payments);
    for i in 0..payments {
        let user = users[i % users.len()];
        let payment = format!("{prefix}-{i}");
        let envelope = Envelope::new(
            Event::from(PaymentConfirmation {
                payment_id: payment.clone(),
                provider: "cryptomus".into(),
                user_id: user,
                order_ids: vec![],
                amount_minor: 100,
                currency: "USD".into(),
                status: PaymentStatus::Paid,
                confirmed_at: jiff::Timestamp::now(),
            }),
            format!("corr-{payment}"),
        )
        .with_event_id(deterministic_event_id("payment-confirmation", &payment));
        let (key, payload) = (user.to_string(), envelope.to_json());
        sends.push(async move {
            producer
                .send(
                    FutureRecord::to(PAYMENT_CONFIRMATIONS)
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.to_string())
        });
    }
    for sent in futures_util::future::join_all(sends).await {
        sent?;
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| e.to_string())
}

struct Drained {
    seconds: f64,
    first_to_last: f64,
    busy_cores: f64,
}

/// (busy, total) jiffies of the whole machine, summed over its cores.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Produces the run's payments and waits until the store holds every one.
async fn drain(
    args: &Args,
    producer: &FutureProducer,
    store: &Store,
    prefix: &str,
) -> Result<Drained, String> {
    let started = Instant::now();
    queue(producer, prefix, args.payments).await?;
    // A range on the unique key, not LIKE: the count must stay an index
    // scan, or the measuring itself takes the database's time.
    let (low, high) = (format!("{prefix}-"), format!("{prefix}."));
    let mut first = None;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE payment_id >= $1 AND payment_id < $2",
        )
        .bind(&low)
        .bind(&high)
        .fetch_one(store.pool())
        .await
        .map_err(|e| e.to_string())?;
        if done > 0 && first.is_none() {
            first = Some((started.elapsed(), cpu_jiffies()));
        }
        if usize::try_from(done).unwrap_or(0) >= args.payments {
            let total = started.elapsed();
            let (busy, all) = cpu_jiffies();
            let (first, (busy_then, all_then)) = first.unwrap_or((total, (busy, all)));
            let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
            return Ok(Drained {
                seconds: total.as_secs_f64(),
                first_to_last: (total - first).as_secs_f64(),
                busy_cores: (busy - busy_then) as f64 / (all - all_then).max(1) as f64 * cores,
            });
        }
        if started.elapsed() > DEADLINE {
            return Err(format!(
                "{done} of {} payments after {DEADLINE:?}",
                args.payments
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `smmctl run payments` and where its /health is served.
struct Worker {
    child: Child,
    metrics: std::net::SocketAddr,
}

impl Worker {
    fn start(args: &Args) -> Result<Worker, String> {
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?;
        let child = Command::new(&args.smmctl)
            .args(["--brokers", &args.brokers, "run", "payments"])
            .args(["--database-url", &args.database_url])
            .args(["--metrics-addr", &metrics.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.smmctl))?;
        Ok(Worker { child, metrics })
    }

    async fn ready(&self) -> bool {
        reqwest::get(format!("http://{}/health/ready", self.metrics))
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    fn stop(&mut self) {
        smm_test_support::command::terminate(&mut self.child, Duration::from_secs(30));
    }
}

/// Waits until every worker holds partitions: the group has settled.
async fn all_ready(workers: &[Worker]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for worker in workers {
            ready &= worker.ready().await;
        }
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the workers did not all get partitions within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
