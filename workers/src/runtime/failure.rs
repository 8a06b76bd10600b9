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
pub struct Failure {
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

impl Failure {
    pub fn retryable(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
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
    ) -> Failure {
        Failure {
            retry_after: Some(retry_after),
            ..Failure::retryable(class, message)
        }
    }

    pub fn poison(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Poison,
            ..Failure::retryable(class, message)
        }
    }

    pub fn manual_review(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::ManualReview,
            ..Failure::retryable(class, message)
        }
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Failure {
        self.cause = Some(cause.into());
        self
    }

    /// Marks the event's own effects as committed; see [`Failure::committed`].
    pub fn after_committing(mut self, event_id: Uuid) -> Failure {
        self.committed = Some(event_id);
        self
    }
}

impl From<DecodeError> for Failure {
    fn from(error: DecodeError) -> Failure {
        Failure::poison(format!("smmctl.decode.{}", error.kind()), error.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        let failure = if error.is_transient() {
            Failure::retryable("smmctl.store.Unavailable", error.to_string())
        } else {
            // A constraint or schema error will not fix itself, but it is
            // the store that is wrong, not necessarily the record: a person
            // must look before anything is retried.
            Failure::manual_review("smmctl.store.Rejected", error.to_string())
        };
        failure.with_cause("sqlx::Error")
    }
}
