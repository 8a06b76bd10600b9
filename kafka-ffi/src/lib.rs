//! The raw librdkafka and C library calls smmctl makes, each behind a safe
//! function. Every other crate of the workspace forbids `unsafe`; what
//! needs it lives here, where it can be reviewed in one place.
//!
//! - [`groups`]: the consumer-group admin calls rust-rdkafka lacks.
//! - [`process`]: leaving the process without the C library's exit handlers.

pub mod groups;
pub mod process;
