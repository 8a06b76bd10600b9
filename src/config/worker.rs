//! What the workers need besides Kafka: the panel's database and where
//! they serve their metrics.

use super::origin::{Combine, Sourced};

pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// A SQLite file in the user's state directory, so the local default needs
/// no database server.
pub fn default_database_url() -> String {
    let dir = dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("smmctl");
    format!("sqlite://{}", dir.join("panel.db").display())
}

pub fn database_url(given: Option<Sourced<String>>, from_file: Option<String>) -> Sourced<String> {
    given.or_file(from_file).or_default(default_database_url())
}

pub fn metrics_addr(given: Option<Sourced<String>>, from_file: Option<String>) -> Sourced<String> {
    given
        .or_file(from_file)
        .or_default(DEFAULT_METRICS_ADDR.into())
}
