//! Consumes exactly N records from a topic and reports how long it took,
//! either through the worker runtime (a no-op handler) or through a plain
//! rdkafka consume loop, for `scripts/bench`'s `worker-runtime` pair.
//!
//!   consume_bench --brokers HOST:PORT --topic T --records N --mode runtime|plain
//!
//! Prints one JSON line, `{"mode":…,"records":N,"seconds":…}`, where
//! `seconds` runs from just before the consumer is created (or the worker
//! spawned) to the N-th record.
// A command-line tool whose report is its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use smm_workers::runtime::metrics::{Metrics, RecordOutcome};
use smm_workers::runtime::{
    self, Delivery, Handled, Handler, HandlerFailure, Route, Shared, Worker,
};
use tokio::sync::watch;
use uuid::Uuid;

/// Gives up if the records have not all arrived by then.
const DEADLINE: Duration = Duration::from_secs(300);

struct Args {
    brokers: String,
    topic: String,
    records: u64,
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Runtime,
    Plain,
}

fn parse_args() -> Result<Args, String> {
    let mut brokers = None;
    let mut topic = None;
    let mut records = None;
    let mut mode = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--brokers" => brokers = Some(value),
            "--topic" => topic = Some(value),
            "--records" => {
                records = Some(
                    value
                        .parse::<u64>()
                        .map_err(|e| format!("--records {value}: {e}"))?,
                )
            }
            "--mode" => {
                mode = Some(match value.as_str() {
                    "runtime" => Mode::Runtime,
                    "plain" => Mode::Plain,
                    other => return Err(format!("--mode {other}: expected runtime or plain")),
                })
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        brokers: brokers.ok_or("--brokers is required")?,
        topic: topic.ok_or("--topic is required")?,
        records: records.ok_or("--records is required")?,
        mode: mode.ok_or("--mode is required")?,
    })
}

struct Noop;

impl Handler for Noop {
    async fn handle<'a>(&'a self, _delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        Ok(Handled::Ignored(String::new()))
    }
}

fn group() -> String {
    format!("bench.consume.{}", Uuid::new_v4())
}

async fn plain(args: &Args) -> Result<Duration, String> {
    let start = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", group())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    consumer
        .subscribe(&[args.topic.as_str()])
        .map_err(|e| format!("cannot subscribe to {}: {e}", args.topic))?;
    let mut seen = 0u64;
    let consume = async {
        while seen < args.records {
            consumer
                .recv()
                .await
                .map_err(|e| format!("consume error after {seen} records: {e}"))?;
            seen += 1;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(DEADLINE, consume).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(format!(
                "only {seen} of {} records within {DEADLINE:?}",
                args.records
            ));
        }
    }
    Ok(start.elapsed())
}

async fn with_runtime(args: &Args) -> Result<Duration, String> {
    let (stop, shutdown) = watch::channel(false);
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &args.brokers);
    let metrics = Arc::new(Metrics::default());
    let shared = Shared {
        producer: runtime::producer(&client)
            .map_err(|e| format!("cannot create the producer: {e}"))?,
        client,
        store: None,
        metrics: metrics.clone(),
        shutdown,
        drain_timeout: Duration::from_secs(5),
        instance: None,
    };
    let worker = Worker {
        name: "bench".to_owned(),
        group: group(),
        routes: vec![Route {
            main_topic: args.topic.clone(),
            max_attempts: 1,
            hops: vec![],
            exhausted_topic: None,
            poison_topic: None,
            manual_review: false,
        }],
        handler: Noop,
    };
    let start = Instant::now();
    let task = tokio::spawn(runtime::run(worker, shared));
    let took = loop {
        let seen = metrics.count("bench", RecordOutcome::Ignored);
        if seen >= args.records {
            break start.elapsed();
        }
        if task.is_finished() {
            return Err(match task.await {
                Ok(Ok(())) => format!("the worker stopped after {seen} records"),
                Ok(Err(e)) => format!("the worker failed after {seen} records: {e}"),
                Err(e) => format!("the worker panicked after {seen} records: {e}"),
            });
        }
        if start.elapsed() > DEADLINE {
            return Err(format!(
                "only {seen} of {} records within {DEADLINE:?}",
                args.records
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = stop.send(true);
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("the worker failed on shutdown: {e}")),
        Err(e) => return Err(format!("the worker panicked on shutdown: {e}")),
    }
    let seen = metrics.count("bench", RecordOutcome::Ignored);
    if seen != args.records {
        return Err(format!(
            "consumed {seen} records, expected exactly {}",
            args.records
        ));
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("consume_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.mode {
        Mode::Plain => plain(&args).await,
        Mode::Runtime => with_runtime(&args).await,
    };
    match result {
        Ok(took) => {
            let doc = serde_json::json!({
                "mode": if args.mode == Mode::Runtime { "runtime" } else { "plain" },
                "records": args.records,
                "seconds": took.as_secs_f64(),
            });
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("consume_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
