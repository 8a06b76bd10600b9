//! Clients for the outside services the workers call: YouTube's Data API,
//! the view delivery provider and the Binom tracker for fulfilment, and
//! Cryptomus, the payment provider, whose webhooks the payment workers check.
//!
//! The fulfilment clients share one rule for failures: a timeout, a refused
//! connection, a 5xx or a 429 may pass, so the record is retried; any other
//! 4xx is the provider refusing this request as it is, so it is
//! dead-lettered with the provider's words.

pub mod binom;
pub mod cryptomus;
pub mod delivery;
pub mod youtube;

use std::time::Duration;

use crate::runtime::HandlerFailure;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
    #[error("{service} refused the request (HTTP {status}): {body}")]
    Refused {
        service: &'static str,
        status: u16,
        body: String,
    },
    /// The provider refuses our credentials (401, or YouTube's key errors):
    /// every record would fail the same way until someone fixes the key, so
    /// none is dead-lettered for it.
    #[error("{service} refused the credentials (HTTP {status}): {body}; check the API key setting")]
    Unauthorized {
        service: &'static str,
        status: u16,
        body: String,
    },
}

/// How long a worker waits before trying credentials a provider refused.
pub const CREDENTIALS_RETRY: Duration = Duration::from_secs(30);

impl CallError {
    /// The failure a worker reports, under a class named for the service.
    pub fn into_failure(self, class_prefix: &str) -> HandlerFailure {
        match &self {
            CallError::Unavailable { .. } => {
                HandlerFailure::retryable(format!("{class_prefix}.Unavailable"), self.to_string())
            }
            CallError::Refused { .. } => {
                HandlerFailure::poison(format!("{class_prefix}.Refused"), self.to_string())
            }
            CallError::Unauthorized { .. } => HandlerFailure::throttled(
                format!("{class_prefix}.Unauthorized"),
                self.to_string(),
                CREDENTIALS_RETRY,
            ),
        }
    }
}

pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
}

pub(crate) fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Sends a request and returns the body of a 2xx answer. The URL is left
/// out of errors: YouTube's key travels in the query string.
pub(crate) async fn call(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, String), CallError> {
    let (status, text) = send(service, request).await?;
    classify(service, status, &text).map(|()| (status, text))
}

/// Sends a request and reads the whole answer, whatever its status; only
/// a request that got no answer is an error here.
pub(crate) async fn send(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, String), CallError> {
    let response = request.send().await.map_err(|e| CallError::Unavailable {
        service,
        reason: describe(e),
    })?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| CallError::Unavailable {
        service,
        reason: format!("the answer broke off: {}", describe(e)),
    })?;
    Ok((status, text))
}

/// What an answer's status means for the record.
pub(crate) fn classify(service: &'static str, status: u16, text: &str) -> Result<(), CallError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body: String = text.chars().take(300).collect();
    // 409: idempotent APIs answer it while the first request with the same
    // key is still being handled; asking again later gets its result.
    if status >= 500 || matches!(status, 408 | 409 | 429) {
        Err(CallError::Unavailable {
            service,
            reason: format!("HTTP {status}: {body}"),
        })
    } else if status == 401 {
        // 401 is about who is asking; 403 is often about what is asked
        // (one destination, one URL), which only that record should pay for.
        Err(CallError::Unauthorized {
            service,
            status,
            body,
        })
    } else {
        Err(CallError::Refused {
            service,
            status,
            body,
        })
    }
}

pub(crate) fn describe(error: reqwest::Error) -> String {
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if timed_out {
        text.push_str(" (timed out)");
    }
    text
}

pub(crate) fn unreadable(service: &'static str, what: &str, error: serde_json::Error) -> CallError {
    // A 2xx the client cannot read is most likely a proxy or an outage page;
    // retrying is the safe reading.
    CallError::Unavailable {
        service,
        reason: format!("unreadable {what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FailureKind;

    fn failure(status: u16) -> HandlerFailure {
        classify("a provider", status, "why")
            .unwrap_err()
            .into_failure("smmctl.test")
    }

    #[test]
    fn answers_decide_retry_hold_or_dead_letter() {
        assert_eq!(classify("a provider", 201, ""), Ok(()));
        for passing in [500, 503, 408, 409, 429] {
            let f = failure(passing);
            assert_eq!(
                (f.kind, f.retry_after),
                (FailureKind::Retryable, None),
                "{passing}"
            );
        }
        // Our credentials: hold, never dead-letter.
        assert_eq!(failure(401).retry_after, Some(CREDENTIALS_RETRY));
        // About this request only: its record goes to the dead letter.
        for refused in [400, 403, 404, 422] {
            let f = failure(refused);
            assert_eq!(
                (f.kind, f.retry_after),
                (FailureKind::Poison, None),
                "{refused}"
            );
        }
    }
}
