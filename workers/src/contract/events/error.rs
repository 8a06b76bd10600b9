//! Errors returned while decoding and validating messages.
//!
//! [`DecodeError::kind`] is a stable machine-readable code (it ends up in
//! dead-letter headers and metrics labels), while the `Display` texts are
//! written for the operator who has to fix the producer.

use super::EVENT_TYPES;

/// A payload that parsed but breaks a business rule.
///
/// `field` is a path into the payload (`offers[1].weight`, `clip.duration_seconds`)
/// so the operator can find the offending value without re-reading the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why a Kafka message could not be turned into an [`Envelope`](super::Envelope).
///
/// The variants follow the order in which decoding checks the message, so the
/// variant alone tells how far the message got: unparseable, a broken
/// envelope, an event this build does not know, a payload of the wrong shape,
/// or a well-formed payload that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a JSON object: {reason}")]
    NotJson { reason: String },

    #[error("envelope is missing the required field `{field}`")]
    MissingField { field: &'static str },

    #[error("envelope field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },

    #[error(
        "unsupported schema_version {found}: this consumer understands version {supported}; \
         upgrade the consumer before producers switch versions"
    )]
    UnsupportedSchemaVersion { found: u64, supported: u32 },

    #[error("unknown event_type {event_type:?}; expected one of: {}", EVENT_TYPES.join(", "))]
    UnknownEventType { event_type: String },

    #[error("event {event_type}: payload does not match the schema: {reason}")]
    InvalidPayload {
        event_type: &'static str,
        reason: String,
    },

    #[error("event {event_type}: payload field `{}`: {}", .source.field, .source.reason)]
    Invalid {
        event_type: &'static str,
        source: ValidationError,
    },
}

impl DecodeError {
    /// Every code [`DecodeError::kind`] can return, for dashboards and tests
    /// that need the closed set.
    pub const KINDS: &[&str] = &[
        "not_json",
        "missing_field",
        "invalid_field",
        "unsupported_schema_version",
        "unknown_event_type",
        "invalid_payload",
        "invalid",
    ];

    /// A short code that stays the same across releases, unlike the
    /// `Display` text, so it is safe to match on in dead-letter tooling.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotJson { .. } => "not_json",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
            Self::UnknownEventType { .. } => "unknown_event_type",
            Self::InvalidPayload { .. } => "invalid_payload",
            Self::Invalid { .. } => "invalid",
        }
    }

    /// The event type the message claimed, once decoding got far enough to
    /// trust it; lets a dead-letter handler route by type even on failure.
    pub fn event_type(&self) -> Option<&str> {
        match self {
            Self::UnknownEventType { event_type } => Some(event_type),
            Self::InvalidPayload { event_type, .. } | Self::Invalid { event_type, .. } => {
                Some(event_type)
            }
            _ => None,
        }
    }
}
