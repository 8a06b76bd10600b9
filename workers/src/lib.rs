//! Definitions shared by smmctl's commands and the panel's workers.

pub mod catalog;
pub mod events;
pub mod headers;
