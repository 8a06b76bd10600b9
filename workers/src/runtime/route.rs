//! Where a record goes after its handler fails: pure decisions, taken from
//! the catalog's retry policies, so they can be tested without a broker.

use std::time::Duration;

use crate::contract::catalog::RetryPolicy;

/// Why a handler failed, which decides whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A dependency was down or busy; the same record may succeed later.
    Retryable,
    /// The record itself is wrong (malformed, unknown type, invalid, bad
    /// signature) and can never succeed: straight to the dead letter.
    Poison,
    /// Business rules refuse it and a person must decide (a refund larger
    /// than what was paid): to the dead letter, flagged, never retried.
    ManualReview,
}

/// A retry policy with owned topic names, so tests and deployments can run
/// the catalog's ladders on topics of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub main_topic: String,
    pub max_attempts: u32,
    pub hops: Vec<Hop>,
    pub exhausted_topic: Option<String>,
    pub poison_topic: Option<String>,
    pub manual_review: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub delay: Duration,
    /// `None`: retry in place, holding the partition until due.
    pub topic: Option<String>,
}

impl From<&RetryPolicy> for Route {
    fn from(policy: &RetryPolicy) -> Self {
        Route {
            main_topic: policy.main_topic.to_owned(),
            max_attempts: policy.max_attempts,
            hops: policy
                .hops
                .iter()
                .map(|hop| Hop {
                    delay: hop.delay,
                    topic: hop.topic.map(str::to_owned),
                })
                .collect(),
            exhausted_topic: policy.exhausted_topic.map(str::to_owned),
            poison_topic: policy.poison_topic.map(str::to_owned),
            manual_review: policy.manual_review,
        }
    }
}

/// What to do with a record whose delivery number `attempt` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Hold the partition at this record and deliver it again after `delay`.
    RetryInPlace { delay: Duration, attempt: u32 },
    /// Forward to a retry topic, due after `delay`, as delivery `attempt`.
    Forward {
        topic: String,
        delay: Duration,
        attempt: u32,
    },
    /// Forward to a dead-letter topic; nothing retries it on its own.
    DeadLetter { topic: String, manual_review: bool },
    /// No dead letter exists for this topic: log, count and move on.
    Drop,
}

impl Route {
    /// The topics the worker subscribes to for this route.
    pub fn consumed_topics(&self) -> Vec<&str> {
        let mut topics = vec![self.main_topic.as_str()];
        for hop in &self.hops {
            if let Some(t) = hop.topic.as_deref()
                && !topics.contains(&t)
            {
                topics.push(t);
            }
        }
        topics
    }

    pub fn is_retry_topic(&self, topic: &str) -> bool {
        topic != self.main_topic && self.hops.iter().any(|h| h.topic.as_deref() == Some(topic))
    }

    pub fn next(&self, attempt: u32, kind: FailureKind) -> Next {
        let dead_letter = |topic: &Option<String>, manual_review: bool| match topic {
            Some(topic) => Next::DeadLetter {
                topic: topic.clone(),
                manual_review,
            },
            None => Next::Drop,
        };
        match kind {
            FailureKind::Poison => dead_letter(&self.poison_topic, false),
            FailureKind::ManualReview => dead_letter(
                if self.exhausted_topic.is_some() {
                    &self.exhausted_topic
                } else {
                    &self.poison_topic
                },
                true,
            ),
            FailureKind::Retryable => {
                let hop = (attempt >= 1 && attempt < self.max_attempts)
                    .then(|| self.hops.get(attempt as usize - 1))
                    .flatten();
                match hop {
                    Some(Hop {
                        delay,
                        topic: Some(topic),
                    }) => Next::Forward {
                        topic: topic.clone(),
                        delay: *delay,
                        attempt: attempt + 1,
                    },
                    Some(Hop { delay, topic: None }) => Next::RetryInPlace {
                        delay: *delay,
                        attempt: attempt + 1,
                    },
                    None => dead_letter(&self.exhausted_topic, self.manual_review),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::catalog::{self, retry_policy_for};

    fn route(main: &str) -> Route {
        Route::from(retry_policy_for(main).expect("a catalog policy"))
    }

    #[test]
    fn order_processing_climbs_its_retry_topics_then_the_dlt() {
        let r = route(catalog::ORDER_PROCESSING);
        assert_eq!(
            r.next(1, FailureKind::Retryable),
            Next::Forward {
                topic: "smm.order.processing-retry-0".into(),
                delay: Duration::from_secs(1),
                attempt: 2
            }
        );
        assert_eq!(
            r.next(2, FailureKind::Retryable),
            Next::Forward {
                topic: "smm.order.processing-retry-1".into(),
                delay: Duration::from_secs(2),
                attempt: 3
            }
        );
        assert_eq!(
            r.next(3, FailureKind::Retryable),
            Next::DeadLetter {
                topic: "smm.order.processing-dlt".into(),
                manual_review: false
            }
        );
    }

    #[test]
    fn payment_confirmations_retry_five_times_in_place_with_growing_delays() {
        let r = route(catalog::PAYMENT_CONFIRMATIONS);
        let delays: Vec<_> = (1..=5)
            .map(|attempt| match r.next(attempt, FailureKind::Retryable) {
                Next::RetryInPlace { delay, attempt: a } => {
                    assert_eq!(a, attempt + 1);
                    delay.as_secs()
                }
                other => panic!("attempt {attempt}: {other:?}"),
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32]);
        assert_eq!(
            r.next(6, FailureKind::Retryable),
            Next::DeadLetter {
                topic: "smm.payment.confirmations.dlq".into(),
                manual_review: false
            }
        );
    }

    #[test]
    fn refunds_stop_after_three_attempts_for_manual_review() {
        let r = route(catalog::ORDER_REFUND);
        assert!(matches!(
            r.next(2, FailureKind::Retryable),
            Next::RetryInPlace { .. }
        ));
        assert_eq!(
            r.next(3, FailureKind::Retryable),
            Next::DeadLetter {
                topic: "smm.order.refund.dlq".into(),
                manual_review: true
            }
        );
    }

    #[test]
    fn poison_skips_every_retry_and_manual_review_is_flagged() {
        let r = route(catalog::ORDER_PROCESSING);
        assert_eq!(
            r.next(1, FailureKind::Poison),
            Next::DeadLetter {
                topic: "smm.order.processing-dlt".into(),
                manual_review: false
            }
        );
        assert_eq!(
            route(catalog::ORDER_REFUND).next(1, FailureKind::ManualReview),
            Next::DeadLetter {
                topic: "smm.order.refund.dlq".into(),
                manual_review: true
            }
        );
        // Video poison has a DLQ of its own, apart from exhausted retries.
        assert_eq!(
            route(catalog::VIDEO_PROCESSING).next(1, FailureKind::Poison),
            Next::DeadLetter {
                topic: "smm.video.processing.dlq".into(),
                manual_review: false
            }
        );
    }

    #[test]
    fn a_topic_without_a_dead_letter_drops_after_its_retries() {
        let r = route(catalog::ORDER_STATUS_UPDATES);
        assert_eq!(r.next(4, FailureKind::Retryable), Next::Drop);
        assert_eq!(r.next(1, FailureKind::Poison), Next::Drop);
    }

    #[test]
    fn attempts_out_of_range_go_to_the_dead_letter_not_a_panic() {
        let r = route(catalog::ORDER_PROCESSING);
        for attempt in [0, 99, u32::MAX] {
            assert!(matches!(
                r.next(attempt, FailureKind::Retryable),
                Next::DeadLetter { .. }
            ));
        }
    }

    #[test]
    fn retry_topics_are_consumed_once_each() {
        let video = route(catalog::VIDEO_PROCESSING);
        assert_eq!(
            video.consumed_topics(),
            ["smm.video.processing", "smm.video.processing.retry"]
        );
        assert!(video.is_retry_topic("smm.video.processing.retry"));
        assert!(!video.is_retry_topic("smm.video.processing"));
    }
}
