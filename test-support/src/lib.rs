//! What the workspace's integration tests share: the broker that
//! `scripts/kafka start` runs (or `SMM_TEST_BROKERS`), names no other test
//! uses, topics, records written and read back, scratch panel stores, and
//! running a command and keeping what it printed.
//!
//! Helpers for tests only: they panic with a message instead of returning
//! errors, so a failing test says where it failed.

pub mod cluster;
pub mod command;
pub mod kafka;
pub mod read;
pub mod runtime;
pub mod store;

/// A name no other test (or earlier run) uses: `test.<what>.<random>`.
pub fn unique(what: &str) -> String {
    format!("test.{what}.{}", random_hex(12))
}

/// A shorter unique name, `<prefix>-<random>`, for ids and groups.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(10))
}

fn random_hex(digits: usize) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..digits].to_owned()
}
