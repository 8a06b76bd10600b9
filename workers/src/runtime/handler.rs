//! The trait each worker implements, and what it answers.

use std::future::Future;

use uuid::Uuid;

use super::{Delivery, HandlerFailure};

/// What a handler did with a record it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Applied now. The events it emitted are sent before the offset moves.
    Applied(Uuid),
    /// Applied before; any of its emitted events still unsent are sent now.
    Duplicate(Uuid),
    /// Not for this worker; acknowledged with the reason.
    Ignored(String),
}

pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        delivery: &'a Delivery<'a>,
    ) -> impl Future<Output = Result<Handled, HandlerFailure>> + Send + 'a;
}
