//! What a handler returns when it cannot apply a record.

use std::time::Duration;

use uuid::Uuid;

use super::FailureKind;
use crate::contract::events::DecodeError;
use crate::store::StoreError;

/// Why a handler could not apply a record. `class` is what the
/// `kafka_exception-fqcn` header carries, so operators can group dead
/// letters by it (`smmctl dlq inspect --group-by exception`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerFailure {
    pub kind: FailureKind,
    pub class: String,
    pub message: String,
    pub cause: Option<String>,
    /// Set when a limit (an API quota) refused the work: the record waits
    /// in place this long and is tried again without spending an attempt,
    /// however long the limit lasts. Never dead-lettered for it.
    pub retry_after: Option<Duration>,
    /// The handler committed effects for this event before it failed it
    /// (a rejected order it cancelled, say): its outbox is sent before the
    /// record is routed, as for an applied one.
    pub committed: Option<Uuid>,
}

impl HandlerFailure {
    pub fn retryable(class: impl Into<String>, message: impl Into<String>) -> HandlerFailure {
        HandlerFailure {
            kind: FailureKind::Retryable,
            class: class.into(),
            message: message.into(),
            cause: None,
            retry_after: None,
            committed: None,
        }
    }

    pub fn throttled(
        class: impl Into<String>,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> HandlerFailure {
        HandlerFailure {
            retry_after: Some(retry_after),
            ..HandlerFailure::retryable(class, message)
        }
    }

    pub fn poison(class: impl Into<String>, message: impl Into<String>) -> HandlerFailure {
        HandlerFailure {
            kind: FailureKind::Poison,
            ..HandlerFailure::retryable(class, message)
        }
    }

    pub fn manual_review(class: impl Into<String>, message: impl Into<String>) -> HandlerFailure {
        HandlerFailure {
            kind: FailureKind::ManualReview,
            ..HandlerFailure::retryable(class, message)
        }
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> HandlerFailure {
        self.cause = Some(cause.into());
        self
    }

    /// Marks the event's own effects as committed; see [`HandlerFailure::committed`].
    pub fn after_committing(mut self, event_id: Uuid) -> HandlerFailure {
        self.committed = Some(event_id);
        self
    }
}

impl From<DecodeError> for HandlerFailure {
    fn from(error: DecodeError) -> HandlerFailure {
        HandlerFailure::poison(format!("smmctl.decode.{}", error.kind()), error.to_string())
    }
}

impl From<StoreError> for HandlerFailure {
    fn from(error: StoreError) -> HandlerFailure {
        let failure = if error.is_transient() {
            HandlerFailure::retryable("smmctl.store.Unavailable", error.to_string())
        } else {
            // A constraint or schema error will not fix itself, but it is
            // the store that is wrong, not necessarily the record: a person
            // must look before anything is retried.
            HandlerFailure::manual_review("smmctl.store.Rejected", error.to_string())
        };
        failure.with_cause("sqlx::Error")
    }
}
