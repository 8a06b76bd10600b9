//! librdkafka properties: the profile's `kafka` table, then `-X`, which
//! covers SASL and TLS without smmctl knowing every property.

use std::collections::BTreeMap;

use crate::exit::UsageError;

use super::file::wrong_type;
use super::origin::{Origin, Sourced};
use super::profile::Place;
use super::secrets::read_secret;

/// The profile's properties, then `-X` in the order given, later ones
/// winning.
pub fn resolve(
    from_file: &BTreeMap<String, toml::Value>,
    from_flags: Vec<(String, String)>,
    place: &Place,
) -> Result<BTreeMap<String, Sourced<String>>, UsageError> {
    let mut kafka = BTreeMap::new();
    for (key, value) in from_file {
        let text = file_text(key, value, place)?;
        kafka.insert(key.clone(), Sourced::new(text, Origin::File));
    }
    for (key, value) in from_flags {
        kafka.insert(key, Sourced::new(value, Origin::Flag));
    }
    refuse_reserved(&kafka)?;
    Ok(kafka)
}

/// librdkafka takes every property as text.
fn file_text(key: &str, value: &toml::Value, place: &Place) -> Result<String, UsageError> {
    let key = format!("kafka.{key}");
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Table(reference) => read_secret(reference, place, &key)?,
        other => {
            return Err(wrong_type(
                "librdkafka setting",
                &key,
                place,
                "a string, number, boolean, { file = \"…\" } or { env = \"…\" }",
                other,
            ));
        }
    })
}

/// librdkafka also reads the broker list from its older alias; left open,
/// -X could point a destructive command at another cluster than the one
/// `config show` reports.
fn refuse_reserved(kafka: &BTreeMap<String, Sourced<String>>) -> Result<(), UsageError> {
    for reserved in ["bootstrap.servers", "metadata.broker.list", "client.id"] {
        if kafka.contains_key(reserved) {
            return Err(UsageError::new(format!(
                "`{reserved}` cannot be set as a librdkafka property; use {} instead",
                if reserved == "client.id" {
                    "client_id / SMM_CLIENT_ID"
                } else {
                    "--brokers / SMM_BROKERS / the profile's `brokers`"
                }
            )));
        }
    }
    Ok(())
}

/// Parses one `-X key=value`.
pub fn parse_kafka_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not of the form key=value (for example -X security.protocol=SASL_SSL)"
        )),
    }
}
