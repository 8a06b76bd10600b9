//! The panel's worker library, shared by smmctl's commands.
//!
//! - [`contract`]: what travels on the topics — the topic catalog, the event
//!   envelope and its payloads, the retry and dead-letter headers.
//! - [`runtime`]: the consumer loop every worker runs in: retry routing,
//!   dead-lettering, readiness, shutdown and metrics.
//! - [`store`]: the panel's database.
//! - [`workers`]: the workers themselves, one module each.
//! - [`providers`]: clients for the outside services the workers call.
//! - [`servers`]: the HTTP intakes that feed the topics and the browsers.

pub mod contract;
pub mod providers;
pub mod runtime;
pub mod servers;
pub mod store;
pub mod workers;
