//! How smmctl reaches the cluster: the broker list, the client id and how
//! long to wait for the brokers.

use std::time::Duration;

use crate::exit::UsageError;
use crate::input::parse_duration;

use super::origin::{Combine, Origin, Sourced};
use super::profile::Place;

pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
pub const DEFAULT_CLIENT_ID: &str = "smmctl";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `--timeout` arrives parsed; the profile's is text, checked here.
pub fn timeout(
    given: Option<Sourced<Duration>>,
    from_file: Option<&str>,
    place: &Place,
) -> Result<Sourced<Duration>, UsageError> {
    if let Some(given) = given {
        return Ok(given);
    }
    let Some(text) = from_file else {
        return Ok(Sourced::new(DEFAULT_TIMEOUT, Origin::Default));
    };
    let value = parse_duration(text).map_err(|why| {
        UsageError::new(format!(
            "invalid timeout in {}: {why}",
            place.key("timeout")
        ))
    })?;
    Ok(Sourced::new(value, Origin::File))
}

/// An empty list would only fail later, at the first connection, with a
/// less helpful message.
pub fn brokers(
    given: Option<Sourced<String>>,
    from_file: Option<String>,
) -> Result<Sourced<String>, UsageError> {
    let brokers = given.or_file(from_file).or_default(DEFAULT_BROKERS.into());
    if brokers.value.trim().is_empty() {
        return Err(UsageError::new(format!(
            "the broker list (from the {}) is empty; give host:port pairs separated by commas",
            brokers.source
        )));
    }
    Ok(brokers)
}

pub fn client_id(given: Option<Sourced<String>>, from_file: Option<String>) -> Sourced<String> {
    given
        .or_file(from_file)
        .or_default(DEFAULT_CLIENT_ID.into())
}
