//! The runtime every worker shares: consume, hand each record to the
//! worker's handler, retry or dead-letter what fails, and store the offset
//! only once the outcome is durable.
//!
//! Records are handled one at a time per worker, in partition order. That
//! is what makes "store the offset after the work" mean what it says: when
//! offset N is stored, every record before it on that partition is done.
//! It also drains revoked partitions for free: rebalance callbacks run
//! inside `recv`, which is only called between records.
//!
//! Delivery is at least once. The store's dedup claim, in the same
//! transaction as the handler's effects, makes it effectively once; the
//! outbox carries follow-up events across a crash between the commit and
//! their send.

mod consumer;
mod consumer_context;
mod delivery;
mod engine;
mod events;
mod failure;
mod handler;
mod holds;
pub mod http;
pub mod metrics;
mod producer;
mod retry;
pub mod route;
mod sending;
mod shutdown;

pub use consumer::{RuntimeError, Shared, Worker, run};
pub use delivery::Delivery;
pub use failure::HandlerFailure;
pub use handler::{Handled, Handler};
pub use producer::{PARTITIONER, PRODUCER_DURABILITY, producer, producer_config};
pub use retry::MANUAL_REVIEW_HEADER;
pub use route::{FailureKind, Hop, Next, Route};
pub use shutdown::shutdown_on_signals;

/// The target of the runtime's tracing lines, whichever file writes them:
/// the one they have always had, so log filters such as
/// `SMM_LOG=smm_workers::runtime=debug` keep matching all of them.
const LOG_TARGET: &str = "smm_workers::runtime";
