//! Shared by smmctl's integration tests: what every test tree shares comes
//! from `smm_test_support`; here is only what needs the smmctl binary this
//! package builds, or its schemas.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod panel;
pub mod worker_process;

use std::process::{Command, Stdio};

pub use smm_test_support::command::{Run, expect_code_with, run_with};
pub use smm_test_support::kafka::{
    admin, brokers, client_config, cluster_topics, commit_offsets, committed_offsets, create_topic,
    delete_topics, produce, producer, require_broker, wait_for_topic, watermarks,
};
// smmctl's tests look for a marker in a topic's records, and stop once the
// topic is quiet.
pub use smm_test_support::read::{Read, read_containing as read_matching};
pub use smm_test_support::store::store_url;
pub use smm_test_support::unique;

/// The smmctl binary, pointed at the test broker, with no terminal, no
/// config file and no colour, as cron would run it.
pub fn smmctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smmctl"));
    cmd.env("SMM_BROKERS", brokers())
        .env("SMM_CONFIG", "/dev/null")
        .env("NO_COLOR", "1")
        .env_remove("SMM_PROFILE")
        .env_remove("SMM_LOG")
        // Executed destructive commands leave an audit line; the tests'
        // lines go to a file of their own, not the operator's trail.
        .env(
            "SMM_AUDIT_FILE",
            std::env::temp_dir().join("smmctl-tests-audit.jsonl"),
        )
        // A worker a test starts listens on a free port unless the test
        // names one: the defaults (9464, 8080, 8090) belong to the local
        // system `scripts/up` leaves running beside the suite.
        .env("SMM_METRICS_ADDR", "127.0.0.1:0")
        .env("SMM_GATEWAY_ADDR", "127.0.0.1:0")
        .env("SMM_WS_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null());
    cmd
}

pub fn run(args: &[&str]) -> Run {
    run_with(smmctl(), args)
}

/// Runs smmctl and asserts its exit code, showing its output when it differs.
#[track_caller]
pub fn expect_code(args: &[&str], code: i32) -> Run {
    expect_code_with(smmctl(), args, code)
}

/// Schema violations of `doc` against `schemas/<name>.schema.json`, the
/// documented JSON output of a command.
pub fn schema_errors(doc: &serde_json::Value, name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let validator =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} (at {})", e.instance_path))
        .collect()
}

/// Fails the test when `doc` is not what `schemas/<name>.schema.json` says.
#[track_caller]
pub fn assert_schema(doc: &serde_json::Value, name: &str) {
    let errors = schema_errors(doc, name);
    assert!(
        errors.is_empty(),
        "output does not match schemas/{name}.schema.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
}
