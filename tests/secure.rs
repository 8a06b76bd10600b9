//! The commands over the test broker's SASL_SSL listener (SCRAM and PLAIN
//! over TLS, with the local CA that `scripts/kafka` makes), and the failures
//! an operator meets on a secured cluster: a wrong password, an unknown CA,
//! plaintext to a TLS port. Each must exit 2 quickly, with words that point
//! at the setting to fix, and never print the secret.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "ops";
const SCRAM_PASSWORD: &str = "ops-scram-secret";
const PLAIN_PASSWORD: &str = "ops-plain-secret";

/// The SASL_SSL listener sits two ports above the plaintext one.
fn secure_brokers() -> String {
    std::env::var("SMM_TEST_SECURE_BROKERS").unwrap_or_else(|_| {
        let plain = brokers();
        let (host, port) = plain.rsplit_once(':').unwrap();
        format!("{host}:{}", port.parse::<u16>().unwrap() + 2)
    })
}

fn tls_dir() -> PathBuf {
    std::env::var("SMM_KAFKA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/kafka-test"))
        .join("tls")
}

fn secured(mechanism: &str, password: &str, ca: &str) -> Vec<String> {
    vec![
        "--brokers".into(),
        secure_brokers(),
        "-X".into(),
        "security.protocol=SASL_SSL".into(),
        "-X".into(),
        format!("sasl.mechanism={mechanism}"),
        "-X".into(),
        format!("sasl.username={USER}"),
        "-X".into(),
        format!("sasl.password={password}"),
        "-X".into(),
        format!("ssl.ca.location={}", tls_dir().join(ca).display()),
    ]
}

fn run_secured(connection: &[String], args: &[&str], code: i32) -> Run {
    let mut all: Vec<&str> = connection.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    expect_code(&all, code)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_commands_work_over_sasl_ssl_with_scram_and_plain() {
    require_broker();
    let topic = unique("secure");
    let group = unique("secure-group");
    create_topic(&topic, 2).await;
    produce(&topic, Some(0), &[("a", b"1"), ("b", b"2")], &[]).await;
    commit_offsets(&group, &[(&topic, 0, 1)]);

    for (mechanism, password) in [
        ("SCRAM-SHA-512", SCRAM_PASSWORD),
        ("SCRAM-SHA-256", SCRAM_PASSWORD),
        ("PLAIN", PLAIN_PASSWORD),
    ] {
        let c = secured(mechanism, password, "ca.pem");
        let list = run_secured(&c, &["topics", "orphans", "-o", "json"], 0).json();
        assert!(
            list["topics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == topic.as_str()),
            "{mechanism}: {list:#}"
        );
        let lag = run_secured(&c, &["lag", "--group", &group, "-o", "json"], 0).json();
        assert_eq!(lag["groups"][0]["total_lag"], 1, "{mechanism}");
        let inspected = run_secured(&c, &["dlq", "inspect", &topic, "-o", "json"], 0);
        assert_eq!(
            inspected.stdout.lines().count(),
            2,
            "{mechanism}: dlq inspect read both records"
        );
        assert_schema(&lag, "lag");
        let preview = run_secured(
            &c,
            &[
                "offsets",
                "reset",
                "--group",
                &group,
                "--topic",
                &topic,
                "--to-earliest",
                "-o",
                "json",
            ],
            0,
        )
        .json();
        assert_eq!(preview["partitions"][0]["new"], 0, "{mechanism}");
        let describe = run_secured(&c, &["groups", "describe", &group, "-o", "json"], 0).json();
        assert_eq!(describe["groups"][0]["total_lag"], 1);
        // Health reads and produces over the same connection; the panel's
        // own state on the shared broker decides healthy or not.
        let health = health_over(&c).json();
        let producer = health["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "producer readiness")
            .unwrap();
        assert_eq!(producer["result"], "ok", "{mechanism}: {producer:#}");
    }
}

/// Health over `connection`, exiting 0 or 1: what matters here is that it
/// ran over SASL_SSL, not whether the shared broker holds a healthy panel at
/// that moment (other tests' workers come and go).
fn health_over(connection: &[String]) -> Run {
    let mut all: Vec<&str> = connection.iter().map(String::as_str).collect();
    all.extend(["health", "-o", "json"]);
    let r = run(&all);
    assert!(
        r.code == 0 || r.code == 1,
        "health exited {}: {}",
        r.code,
        r.stderr
    );
    r
}

/// Runs `topics list`, which must exit 2 within its 3 s timeout (plus the
/// process's own start and stop) and say `needle`.
fn assert_fails_fast(connection: &[String], needle: &str) -> Run {
    let started = Instant::now();
    let r = run_secured(connection, &["--timeout", "3s", "topics", "list"], 2);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains(needle),
        "expected {needle:?}:\n{}",
        r.stderr
    );
    r
}

fn assert_no_secret(r: &Run, secret: &str) {
    assert!(
        !format!("{}{}", r.stdout, r.stderr).contains(secret),
        "the secret leaked:\n{}",
        r.stderr
    );
}

#[test]
fn a_wrong_password_exits_2_and_says_so_without_the_password() {
    require_broker();
    let c = secured("SCRAM-SHA-512", "not-the-right-one-7f3a", "ca.pem");
    let r = assert_fails_fast(&c, "SASL authentication error");
    assert_no_secret(&r, "not-the-right-one-7f3a");
    assert!(
        r.stderr
            .contains("check sasl.mechanism, sasl.username and sasl.password"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unknown_ca_exits_2_and_names_the_setting() {
    require_broker();
    let c = secured("SCRAM-SHA-512", SCRAM_PASSWORD, "other-ca.pem");
    let r = assert_fails_fast(&c, "certificate verify failed");
    assert_no_secret(&r, SCRAM_PASSWORD);
    assert!(r.stderr.contains("check ssl.ca.location"), "{}", r.stderr);
}

#[test]
fn plaintext_to_the_tls_port_exits_2_within_the_timeout() {
    require_broker();
    let c = vec!["--brokers".to_string(), secure_brokers()];
    assert_fails_fast(&c, "cannot reach the Kafka brokers");
}

#[test]
fn a_profile_can_take_the_password_from_a_file() {
    require_broker();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("kafka-password");
    std::fs::write(&secret, format!("{SCRAM_PASSWORD}\n")).unwrap();
    let config = dir.path().join("smmctl.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"secure\"\n[profiles.secure]\nbrokers = \"{}\"\n[profiles.secure.kafka]\n\
             \"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
             \"sasl.username\" = \"{USER}\"\n\"sasl.password\" = {{ file = \"{}\" }}\n\"ssl.ca.location\" = \"{}\"\n",
            secure_brokers(),
            secret.display(),
            tls_dir().join("ca.pem").display()
        ),
    )
    .unwrap();
    let mut cmd = smmctl();
    cmd.env("SMM_CONFIG", &config).env_remove("SMM_BROKERS");
    let r = run_with(cmd, &["topics", "list", "--problems", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut cmd = smmctl();
    cmd.env("SMM_CONFIG", &config).env_remove("SMM_BROKERS");
    let shown = run_with(cmd, &["config", "show"]);
    assert!(!shown.stdout.contains(SCRAM_PASSWORD), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("kafka.sasl.password"),
        "{}",
        shown.stdout
    );
}

#[test]
fn secrets_stay_out_of_a_failing_run_even_at_debug_level() {
    require_broker();
    let password = "leak-canary-31c9e";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("smmctl.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.p]\ndatabase_url = \"postgres://smm:{password}@db/panel\"\n\
             [profiles.p.kafka]\n\"ssl.key.password\" = \"{password}\"\n"
        ),
    )
    .unwrap();
    for verbosity in ["-v", "-vv"] {
        let mut cmd = smmctl();
        cmd.env("SMM_CONFIG", &config)
            .env("SMM_PROFILE", "p")
            .env("SMM_LOG", "debug");
        let c = secured("SCRAM-SHA-512", password, "ca.pem");
        let mut args: Vec<&str> = c.iter().map(String::as_str).collect();
        args.extend([verbosity, "--timeout", "3s", "lag"]);
        let r = run_with(cmd, &args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(!r.stderr.is_empty(), "a debug run says something");
        assert!(
            !format!("{}{}", r.stdout, r.stderr).contains(password),
            "{verbosity}: the secret leaked:\n{}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_worker_runs_over_sasl_ssl() {
    use common::worker_process::{Running, skip_old_records, until};
    use smm_workers::contract::events::{Envelope, Event, PaymentConfirmation, PaymentStatus};
    use smm_workers::store::{Store, panel};

    require_broker();
    expect_code(&["topics", "apply"], 0);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    panel::insert_user(&mut conn, 8301, "USD").await.unwrap();
    drop(conn);
    skip_old_records(
        "smm-payment-confirmations-realtime-group",
        &[smm_workers::contract::catalog::PAYMENT_CONFIRMATIONS],
    );

    let worker = Running::start_with(
        &secured("SCRAM-SHA-512", SCRAM_PASSWORD, "ca.pem"),
        &["payments"],
        &url,
        None,
    );
    worker.wait_ready().await;
    let payment = unique("secure-pay");
    let confirmation = Envelope::new(
        Event::from(PaymentConfirmation {
            payment_id: payment.clone(),
            provider: "cryptomus".into(),
            user_id: 8301,
            order_ids: vec![],
            amount_minor: 4200,
            currency: "USD".into(),
            status: PaymentStatus::Paid,
            confirmed_at: jiff::Timestamp::now(),
        }),
        "corr-secure",
    );
    produce(
        smm_workers::contract::catalog::PAYMENT_CONFIRMATIONS,
        None,
        &[("8301", &confirmation.to_json())],
        &[],
    )
    .await;
    until(
        "the payment to be credited",
        Duration::from_secs(30),
        || async {
            let mut conn = store.pool().acquire().await.unwrap();
            panel::user(&mut conn, 8301)
                .await
                .unwrap()
                .unwrap()
                .balance_minor
                == 4200
        },
    )
    .await;
    let mut worker = worker;
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
}

/// The mutual-TLS listener sits three ports above the plaintext one.
fn mtls_brokers() -> String {
    let plain = brokers();
    let (host, port) = plain.rsplit_once(':').unwrap();
    format!("{host}:{}", port.parse::<u16>().unwrap() + 3)
}

fn mtls(with_client_certificate: bool) -> Vec<String> {
    let mut c = vec![
        "--brokers".into(),
        mtls_brokers(),
        "-X".into(),
        "security.protocol=SSL".into(),
        "-X".into(),
        format!("ssl.ca.location={}", tls_dir().join("ca.pem").display()),
    ];
    if with_client_certificate {
        c.extend([
            "-X".into(),
            format!(
                "ssl.certificate.location={}",
                tls_dir().join("client.crt").display()
            ),
            "-X".into(),
            format!(
                "ssl.key.location={}",
                tls_dir().join("client.key").display()
            ),
        ]);
    }
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_opens_the_mutual_tls_listener_and_its_absence_exits_2() {
    require_broker();
    let topic = unique("mtls");
    create_topic(&topic, 1).await;
    let listed = run_secured(&mtls(true), &["topics", "orphans", "-o", "json"], 0).json();
    assert!(
        listed["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == topic.as_str()),
        "{listed:#}"
    );
    let r = assert_fails_fast(&mtls(false), "bad certificate");
    assert!(
        r.stderr.contains("ssl.certificate.location"),
        "names the setting: {}",
        r.stderr
    );
}

#[test]
fn the_workers_keep_their_api_key_and_database_password_out_of_a_failing_start() {
    require_broker();
    expect_code(&["topics", "apply"], 0);
    let key = "cryptomus-canary-9d2e";
    let password = "db-canary-55b1";
    for verbosity in ["-v", "-vv"] {
        let mut cmd = smmctl();
        cmd.env("SMM_CRYPTOMUS_API_KEY", key)
            .env("SMM_CRYPTOMUS_MERCHANT", "merchant-1")
            .env("SMM_LOG", "debug");
        let url = format!("postgres://smm:{password}@127.0.0.1:1/panel");
        let r = run_with(
            cmd,
            &[
                verbosity,
                "run",
                "webhooks",
                "payment-refunds",
                "--database-url",
                &url,
            ],
        );
        assert_eq!(r.code, 2, "an unreachable store: {}", r.stderr);
        assert!(
            r.stderr.contains("postgres://smm:***@127.0.0.1:1/panel"),
            "{}",
            r.stderr
        );
        assert_no_secret(&r, key);
        assert_no_secret(&r, password);
    }
    let mut cmd = smmctl();
    cmd.env("SMM_CRYPTOMUS_API_KEY", key)
        .env("SMM_YOUTUBE_API_KEY", "yt-key-5ecr3t")
        .env(
            "SMM_SMTP_URL",
            "smtp://mailer:smtp-5ecr3t@mail.example.com:587?tls=required",
        )
        .env(
            "SMM_SMS_URL",
            "https://sms.example.com/send?token=sms-5ecr3t",
        )
        .env("SMM_WS_TOKEN_SECRET", "ws-5ecr3t-ws-5ecr3t");
    let shown = run_with(cmd, &["config", "show"]);
    assert!(
        shown.stdout.contains("cryptomus.api_key"),
        "{}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains("smtp://mailer:****@mail.example.com:587?tls=required"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("https://sms.example.com/send?****"),
        "{}",
        shown.stdout
    );
    assert_no_secret(&shown, key);
    for secret in ["yt-key-5ecr3t", "smtp-5ecr3t", "sms-5ecr3t", "ws-5ecr3t"] {
        assert_no_secret(&shown, secret);
    }
}
