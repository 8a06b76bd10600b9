//! The command line contract: exit codes, usage errors, configuration,
//! secrets, and output into a pipe. Only the pipe test needs the broker.
// A test reads best as one story from setup to the last assertion.
#![allow(clippy::too_many_lines)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A port nothing listens on: connecting to it fails at once.
const DEAD_BROKER: &str = "127.0.0.1:1";

#[test]
fn an_unreachable_broker_exits_2_within_the_timeout_with_a_clear_message() {
    let started = Instant::now();
    let r = expect_code(
        &[
            "topics",
            "list",
            "--brokers",
            DEAD_BROKER,
            "--timeout",
            "2s",
        ],
        2,
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        r.stderr
            .contains("cannot reach the Kafka brokers at 127.0.0.1:1 within 2s"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.stdout);
}

#[test]
fn every_command_that_needs_the_cluster_gives_up_within_its_timeout() {
    let commands: &[&[&str]] = &[
        &["topics", "apply"],
        &["topics", "orphans"],
        &["topics", "delete", "t"],
        &["lag"],
        &["lag", "--all-groups"],
        &["groups", "list"],
        &["groups", "describe", "g"],
        &["groups", "delete", "g"],
        &["health"],
        &[
            "offsets",
            "reset",
            "--group",
            "g",
            "--all-topics",
            "--to-earliest",
        ],
        &["records", "delete", "--topic", "t", "--all"],
    ];
    for args in commands {
        let mut all = args.to_vec();
        all.extend(["--brokers", DEAD_BROKER, "--timeout", "2s"]);
        let started = Instant::now();
        let r = expect_code(&all, 2);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(
            r.stderr.contains("cannot reach the Kafka brokers"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn run_refuses_bad_input_before_starting_anything() {
    let r = expect_code(&["run", "no-such-worker"], 2);
    assert!(
        r.stderr.contains("payment-refunds"),
        "lists the workers: {}",
        r.stderr
    );
    let r = expect_code_with(
        {
            let mut cmd = smmctl();
            cmd.env_remove("SMM_CRYPTOMUS_API_KEY");
            cmd
        },
        &["run", "webhooks"],
        2,
    );
    assert!(r.stderr.contains("SMM_CRYPTOMUS_API_KEY"), "{}", r.stderr);
    let r = expect_code(&["run", "payments", "--metrics-addr", "localhost"], 2);
    assert!(r.stderr.contains("HOST:PORT"), "{}", r.stderr);
    for bad in ["", "pod 1", "web/1", &"x".repeat(201)] {
        let r = expect_code(&["run", "payments", "--instance", bad], 2);
        assert!(
            r.stderr.contains("invalid --instance") && r.stderr.contains(&format!("`{bad}`")),
            "{}",
            r.stderr
        );
    }
    let r = expect_code(
        &[
            "run",
            "payments",
            "--database-url",
            "mysql://u:hunter2@db/panel",
        ],
        2,
    );
    assert!(r.stderr.contains("sqlite://"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("hunter2"),
        "password printed: {}",
        r.stderr
    );
}

#[test]
fn help_describes_every_subcommand() {
    let r = expect_code(&["--help"], 0);
    for command in [
        "run",
        "lag",
        "groups",
        "dlq",
        "offsets",
        "records",
        "health",
        "topics",
        "config",
        "completions",
    ] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} missing from --help:\n{}",
            r.stdout
        );
    }
    assert!(
        !r.stdout.contains("generate"),
        "maintainer command shown:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("Exit codes"), "{}", r.stdout);
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (&["topics", "list", "-X", "novalue"], "key=value"),
        (&["topics", "list", "--timeout", "soon"], "not a duration"),
        (
            &["topics", "apply", "--category", "payments-and-more"],
            "unknown category",
        ),
        (&["topics", "delete"], "TOPIC"),
        (
            &["topics", "list", "-X", "bootstrap.servers=x:1"],
            "--brokers",
        ),
    ];
    for (args, needle) in cases {
        let mut all = args.to_vec();
        all.extend(["--brokers", DEAD_BROKER, "--timeout", "1s"]);
        let r = expect_code(&all, 2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}

fn with_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smmctl.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn a_bad_config_file_exits_2_naming_the_file_line_and_key() {
    let (_dir, path) = with_config("[profiles.prod]\nbrokers = \"k:9092\"\nbrokrs = \"typo\"\n");
    let r = expect_code(&["--config", &path, "config", "show"], 2);
    assert!(r.stderr.contains(&path), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(r.stderr.contains("brokrs"), "{}", r.stderr);

    let r = expect_code(
        &["--config", "/nonexistent/smmctl.toml", "config", "show"],
        2,
    );
    assert!(
        r.stderr
            .contains("cannot read the config file /nonexistent/smmctl.toml"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unknown_profile_exits_2_and_lists_the_profiles() {
    let (_dir, path) = with_config("[profiles.prod]\nbrokers = \"k:9092\"\n[profiles.staging]\n");
    let r = expect_code(&["--config", &path, "--profile", "qa", "config", "show"], 2);
    assert!(
        r.stderr.contains("profile `qa` is not defined"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("prod, staging"), "{}", r.stderr);
}

#[test]
fn config_show_reports_sources_in_precedence_order() {
    let (_dir, path) = with_config(
        "profile = \"prod\"\n[profiles.prod]\nbrokers = \"file:9092\"\nclient_id = \"from-file\"\ntimeout = \"4s\"\n",
    );
    let mut cmd = smmctl();
    cmd.env("SMM_CLIENT_ID", "from-env")
        .env_remove("SMM_BROKERS")
        .env_remove("SMM_METRICS_ADDR");
    let r = run_with(
        cmd,
        &[
            "--config",
            &path,
            "--timeout",
            "7s",
            "config",
            "show",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = r.json();
    let s = &json["settings"];
    assert_eq!(s["brokers"]["value"], "file:9092");
    assert_eq!(s["brokers"]["source"], "file");
    assert_eq!(s["client_id"]["value"], "from-env");
    assert_eq!(s["client_id"]["source"], "env");
    assert_eq!(s["timeout"]["value"], "7s");
    assert_eq!(s["timeout"]["source"], "flag");
    assert_eq!(s["metrics_addr"]["source"], "default");
    assert_eq!(json["profile"]["value"], "prod");

    // A flag beats the variable it shadows.
    let mut cmd = smmctl();
    cmd.env("SMM_BROKERS", "env:9092");
    let r = run_with(
        cmd,
        &["--brokers", "flag:9092", "config", "show", "-o", "json"],
    );
    assert_eq!(r.json()["settings"]["brokers"]["source"], "flag");
}

#[test]
fn secrets_never_appear_in_config_show() {
    let (_dir, path) = with_config(
        "[profiles.prod]\nbrokers = \"k:9092\"\ndatabase_url = \"postgres://smm:db/s3cret@db/panel\"\n\
         [profiles.prod.kafka]\n\"sasl.username\" = \"ops\"\n\"sasl.password\" = \"file-s3cret\"\n\
         \"sasl.oauthbearer.assertion.private.key.passphrase\" = \"phrase-s3cret\"\n",
    );
    for format in ["table", "json"] {
        let r = expect_code(
            &[
                "--config",
                &path,
                "--profile",
                "prod",
                "-X",
                "ssl.key.password=flag-s3cret",
                "config",
                "show",
                "-o",
                format,
            ],
            0,
        );
        let all = format!("{}{}", r.stdout, r.stderr);
        for secret in [
            "s3cret@",
            "db/s3cret",
            "file-s3cret",
            "flag-s3cret",
            "phrase-s3cret",
        ] {
            assert!(!all.contains(secret), "{secret} leaked in {format}:\n{all}");
        }
        assert!(all.contains("sasl.username"), "{all}");
        assert!(all.contains("ops"), "{all}");
        assert!(all.contains("postgres://smm:****@db/panel"), "{all}");
    }
}

#[test]
fn completions_print_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = expect_code(&["completions", shell], 0);
        assert!(r.stdout.contains("smmctl"), "{shell}");
    }
}

/// Completions are needed to fix a shell before anything else works, so a
/// config file that does not parse must not stand in their way.
#[test]
fn completions_print_even_when_the_config_file_is_broken() {
    let (_dir, path) = with_config("[profiles.prod\nbrokers = \"k:9092\"\n");
    let mut cmd = smmctl();
    cmd.env("SMM_CONFIG", &path);
    let r = expect_code_with(cmd, &["completions", "bash"], 0);
    assert!(r.stdout.contains("smmctl"), "{}", r.stderr);
}

#[test]
fn health_exits_2_when_the_broker_is_down_and_says_so_to_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("health.prom");
    let started = Instant::now();
    let r = expect_code(
        &[
            "health",
            "--brokers",
            DEAD_BROKER,
            "--timeout",
            "2s",
            "--prometheus",
            &prom.display().to_string(),
        ],
        2,
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        r.stderr
            .contains("cannot reach the Kafka brokers at 127.0.0.1:1"),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("smmctl_health_broker_up 0"), "{text}");
}

#[test]
fn the_output_schemas_reject_what_they_do_not_document() {
    let good = serde_json::json!({"taken_at": "2026-11-29T10:00:00Z", "groups": []});
    assert!(schema_errors(&good, "lag").is_empty());
    let extra = serde_json::json!({"taken_at": "x", "groups": [], "surprise": 1});
    assert!(!schema_errors(&extra, "lag").is_empty());
    let negative = serde_json::json!({"executed": false, "partitions": [{
        "topic": "t", "partition": 0, "log_start": 0, "log_end": 5, "new_log_start": 3,
        "records": -3, "notes": [], "unread_by": []
    }]});
    assert!(!schema_errors(&negative, "records-delete").is_empty());
    let mut positive = negative.clone();
    positive["partitions"][0]["records"] = serde_json::json!(3);
    assert!(
        schema_errors(&positive, "records-delete").is_empty(),
        "{:?}",
        schema_errors(&positive, "records-delete")
    );
}

/// How one run into a pipe ended: its exit code and what it said on stderr.
fn piped(args: &[&str], read_first_line: bool) -> (i32, String) {
    let mut cmd = smmctl();
    cmd.args(args).stderr(Stdio::piped());
    if read_first_line {
        cmd.stdout(Stdio::piped());
    } else {
        // The reader is gone before the command starts, so its very first
        // write fails, whatever the timing.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        cmd.stdout(writer);
    }
    let mut child = cmd.spawn().expect("spawn smmctl");
    if let Some(stdout) = child.stdout.take() {
        // `| head -1`: one line, then the reading end closes.
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
    }
    let out = child.wait_with_output().expect("wait for smmctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_command_survives_a_reader_that_closes_early() {
    require_broker();
    // A dead-letter topic whose -v and JSON output is far larger than a
    // pipe holds, and a group that has read part of it.
    let original = unique("it-pipe");
    let dlq = format!("{original}.dlq");
    create_topic(&original, 1).await;
    create_topic(&dlq, 1).await;
    let trace: String = (0..40)
        .map(|i| format!("\tat com.example.orders.Listener.step{i}(Listener.java:{i})\n"))
        .collect();
    let trace = format!("java.lang.IllegalStateException: it failed\n{trace}");
    let keys: Vec<String> = (0..300).map(|i| format!("order-{i}")).collect();
    let records: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|k| (k.as_str(), &br#"{"order_id":1}"#[..]))
        .collect();
    produce(
        &dlq,
        Some(0),
        &records,
        &[
            ("kafka_original-topic", original.as_bytes()),
            ("kafka_exception-fqcn", b"java.lang.IllegalStateException"),
            ("kafka_exception-message", b"it failed"),
            ("kafka_exception-stacktrace", trace.as_bytes()),
            ("x-correlation-id", b"corr-pipe"),
        ],
    )
    .await;
    let group = unique("it-pipe-group");
    commit_offsets(&group, &[(&dlq, 0, 100)]);
    let fresh = unique("it-pipe-fresh");
    let out_dir = tempfile::tempdir().unwrap();
    let out_dir = out_dir.path().display().to_string();

    // (arguments, whether stdout has more than one line to cut off)
    let commands: &[(&[&str], bool)] = &[
        (&["--help"], true),
        (&["--version"], false),
        (&["dlq", "--help"], true),
        (&["topics", "list"], true),
        (&["topics", "list", "-o", "json"], true),
        (&["topics", "orphans"], true),
        // JSON lists every catalog topic, whether or not one is missing.
        (&["topics", "apply", "--dry-run", "-o", "json"], true),
        (&["topics", "delete", &dlq], true),
        (&["lag", "--all-groups"], true),
        (
            &["lag", "--group", &group, "--partitions", "-o", "json"],
            true,
        ),
        (
            &["lag", "--group", &group, "--watch", "100ms", "--count", "2"],
            true,
        ),
        (&["groups", "list"], true),
        (&["groups", "describe", &group], true),
        (&["groups", "delete", &group], true),
        (&["dlq", "list"], true),
        (&["dlq", "list", "-o", "json"], true),
        (&["dlq", "inspect", &dlq, "--limit", "300"], true),
        (&["dlq", "inspect", &dlq, "-v", "--limit", "300"], true),
        (
            &["dlq", "inspect", &dlq, "-o", "json", "--limit", "300"],
            true,
        ),
        (&["dlq", "inspect", &dlq, "--group-by", "exception"], true),
        (&["dlq", "replay", &dlq, "--group", &fresh], true),
        (&["dlq", "drain", &dlq, "--group", &fresh], true),
        (&["health"], true),
        (&["health", "-o", "json"], true),
        (&["config", "show"], true),
        (&["config", "path"], false),
        (&["audit"], false),
        (&["audit", "-o", "json"], false),
        (
            &[
                "offsets",
                "reset",
                "--group",
                &group,
                "--topic",
                &dlq,
                "--to-earliest",
            ],
            true,
        ),
        (
            &[
                "records",
                "delete",
                "--topic",
                &dlq,
                "--before-offset",
                "10",
            ],
            true,
        ),
        (&["run", "--list"], true),
        (&["completions", "bash"], true),
        (&["completions", "zsh"], true),
        (&["completions", "fish"], true),
        (&["completions", "powershell"], true),
        (&["completions", "elvish"], true),
        (&["generate", "--out-dir", &out_dir], false),
    ];
    for (args, many_lines) in commands {
        let normal = run(args);
        assert!(
            !normal.stderr.contains("panicked"),
            "{args:?} panicked on its own: {}",
            normal.stderr
        );
        if *many_lines {
            assert!(
                normal.stdout.lines().count() > 1,
                "{args:?} printed too little to test a closed pipe:\n{}\n{}",
                normal.stdout,
                normal.stderr
            );
        }
        for read_first_line in [false, true] {
            let (code, stderr) = piped(args, read_first_line);
            assert!(
                !stderr.contains("panicked"),
                "{args:?} (first line read: {read_first_line}) panicked on a closed pipe:\n{stderr}"
            );
            assert_eq!(
                code, normal.code,
                "{args:?} (first line read: {read_first_line}) exited {code}, not {} as it does \
                 with a reader:\n{stderr}",
                normal.code
            );
        }
    }
}

#[test]
fn run_list_says_how_the_workers_produce_and_join_their_groups() {
    let r = expect_code(&["run", "--list"], 0);
    let said = format!("{}{}", r.stdout, r.stderr);
    for fact in [
        "acks=all",
        "enable.idempotence=true",
        "partition.assignment.strategy=cooperative-sticky",
        "--instance NAME",
    ] {
        assert!(
            said.contains(fact),
            "run --list does not say {fact}: {said}"
        );
    }
}
