//! The JSON Schemas of the destructive commands' reports, generated from
//! the report types themselves, so the documented JSON cannot drift from
//! what the commands print. `smmctl generate` writes them into `schemas/`;
//! a test fails when the checked-in files are stale.

use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};

use crate::commands::dlq::drain::DrainReport;
use crate::commands::dlq::replay::ReplayReport;
use crate::commands::groups::GroupsDeleteReport;
use crate::commands::offsets::OffsetsResetReport;
use crate::commands::records::RecordsDeleteReport;
use crate::commands::topics::TopicsDeleteReport;

/// `(file stem, schema)` for every generated schema: `schemas/<stem>.schema.json`.
pub fn generated() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "dlq-drain",
            schema::<DrainReport>("smmctl dlq drain -o json"),
        ),
        (
            "dlq-replay",
            schema::<ReplayReport>("smmctl dlq replay -o json"),
        ),
        (
            "offsets-reset",
            schema::<OffsetsResetReport>("smmctl offsets reset -o json"),
        ),
        (
            "records-delete",
            schema::<RecordsDeleteReport>("smmctl records delete -o json"),
        ),
        (
            "groups-delete",
            schema::<GroupsDeleteReport>("smmctl groups delete -o json"),
        ),
        (
            "topics-delete",
            schema::<TopicsDeleteReport>("smmctl topics delete -o json"),
        ),
    ]
}

fn schema<T: JsonSchema>(title: &str) -> serde_json::Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("title".into(), serde_json::Value::String(title.into()));
    }
    value
}

/// The text a schema file holds: pretty JSON and a final newline.
pub fn file_text(schema: &serde_json::Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(schema)? + "\n")
}
