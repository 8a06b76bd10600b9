//! Definitions shared by smmctl's commands and the panel's workers, the
//! worker runtime, and the panel store.

pub mod catalog;
pub mod cryptomus;
pub mod dead_letter;
pub mod events;
pub mod gateway;
pub mod headers;
pub mod legacy;
pub mod providers;
pub mod runtime;
pub mod sandbox;
pub mod smtp_sink;
pub mod store;
pub mod worker;
