//! Exit codes are an API: cron jobs and scripts branch on them.
//!
//! - 0: success, or healthy;
//! - 1: the operation failed, partly failed, was refused, or the system is
//!   unhealthy;
//! - 2: usage or configuration error, or the brokers cannot be reached.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// Failed, partly failed, refused, or unhealthy.
    Failure,
    /// Bad usage, bad configuration, or no connection.
    Error,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }

    /// The worse of two statuses, for commands that do several things.
    pub fn worst(self, other: ExitStatus) -> ExitStatus {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// Input or configuration the operator must fix. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    message: String,
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
        }
    }
}

/// The brokers did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectionError {
    message: String,
}

impl ConnectionError {
    pub fn new(message: impl Into<String>) -> ConnectionError {
        ConnectionError {
            message: message.into(),
        }
    }
}

/// A safety rule stopped the command before it changed anything.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    message: String,
}

impl Refusal {
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
        }
    }
}

/// Maps an error to its exit status by the first typed cause in its chain.
pub fn status_of(error: &anyhow::Error) -> ExitStatus {
    for cause in error.chain() {
        if cause.is::<UsageError>() || cause.is::<ConnectionError>() {
            return ExitStatus::Error;
        }
        if cause.is::<Refusal>() {
            return ExitStatus::Failure;
        }
    }
    ExitStatus::Failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_causes_decide_the_code_through_context() {
        let usage = Err::<(), _>(UsageError::new("bad"))
            .context("while parsing")
            .unwrap_err();
        assert_eq!(status_of(&usage), ExitStatus::Error);
        let down = Err::<(), _>(ConnectionError::new("down"))
            .context("listing")
            .unwrap_err();
        assert_eq!(status_of(&down), ExitStatus::Error);
        let refused = anyhow::Error::new(Refusal::new("no"));
        assert_eq!(status_of(&refused), ExitStatus::Failure);
        assert_eq!(status_of(&anyhow::anyhow!("boom")), ExitStatus::Failure);
    }

    #[test]
    fn worst_picks_the_higher_code() {
        assert_eq!(
            ExitStatus::Success.worst(ExitStatus::Failure),
            ExitStatus::Failure
        );
        assert_eq!(
            ExitStatus::Error.worst(ExitStatus::Failure),
            ExitStatus::Error
        );
    }
}
