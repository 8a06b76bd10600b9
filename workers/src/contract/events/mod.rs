//! The messages exchanged over the SMM Panel's Kafka topics.
//!
//! Every message travels in an [`Envelope`]: the payload is wrapped with a
//! schema version (so a consumer can refuse what it does not understand
//! instead of misreading it), an event id (so redeliveries can be
//! de-duplicated), a correlation id (so one customer action can be traced
//! across workers) and the event type that says how to read the payload.
//!
//! Decoding never trusts the producer: [`Envelope::decode`] checks the
//! envelope, then the payload's shape, then its business rules, and reports
//! which of the three failed through [`DecodeError`], so a bad message can be
//! dead-lettered with a precise reason rather than crash a worker.
//!
//! Money is always integer minor units plus an ISO 4217 code, because floats
//! cannot represent cents exactly and rounding errors in balances are bugs.

mod delivery;
mod error;
mod examples;
mod notification;
mod order;
mod payment;
#[cfg(test)]
mod tests;
mod validate;

use jiff::Timestamp;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use delivery::{
    BinomCampaignCreation, OfferAssignment, OfferAssignmentAction, OfferAssignmentEvent, VideoClip,
    VideoProcessingMessage, WeightedOffer, YouTubeOperation, YouTubeTask,
};
pub use error::{DecodeError, ValidationError};
pub use notification::{Notification, NotificationChannel};
pub use order::{
    OrderCreatedEvent, OrderProgressUpdated, OrderRefundRequested, OrderStatus,
    OrderStatusChangedEvent, OrderStatusUpdate,
};
pub use payment::{
    PaymentConfirmation, PaymentRefundRequested, PaymentStatus, PaymentWebhookReceived,
};

/// The envelope version this build writes and the only one it accepts.
pub const SCHEMA_VERSION: u32 = 1;

/// Root of every [`deterministic_event_id`].
///
/// Never change it: ids derived before and after a change would differ, and
/// the de-duplication table would let the same payment through twice.
const DETERMINISTIC_ID_ROOT: Uuid = Uuid::from_u128(0x31ae_6c05_6774_44e5_a18e_f1bb_a6d0_2fea);

/// An event id that is the same every time it is computed from the same
/// natural key, so that producing an event twice (a retried webhook, a
/// restarted worker) yields duplicates the consumers' dedup table collapses.
///
/// `namespace` names the kind of key (for example `"PaymentConfirmation"`),
/// so equal keys from different domains cannot collide. The namespace is
/// hashed into its own UUID first rather than concatenated with the key,
/// which would make `("a:b", "c")` and `("a", "b:c")` equal.
pub fn deterministic_event_id(namespace: &str, natural_key: &str) -> Uuid {
    let namespace = Uuid::new_v5(&DETERMINISTIC_ID_ROOT, namespace.as_bytes());
    Uuid::new_v5(&namespace, natural_key.as_bytes())
}

/// Declares [`Event`] and everything that must list all message types, so a
/// new message type cannot be added to the enum but forgotten in
/// [`EVENT_TYPES`], the topic mapping or the decoder.
///
/// Each variant's event type string is its struct's name, as on the wire.
macro_rules! events {
    ($($(#[$doc:meta])* $name:ident => $topic:literal,)+) => {
        /// Every message type, one variant per payload struct.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $($(#[$doc])* $name($name),)+
        }

        /// Every `event_type` string this build can decode.
        pub const EVENT_TYPES: &[&str] = &[$(stringify!($name),)+];

        impl Event {
            /// The `event_type` written into the envelope.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$name(_) => stringify!($name),)+
                }
            }

            /// The topic the event is published to unless a deployment
            /// overrides it.
            pub fn default_topic(&self) -> &'static str {
                match self {
                    $(Event::$name(_) => $topic,)+
                }
            }

            pub fn validate(&self) -> Result<(), ValidationError> {
                match self {
                    $(Event::$name(event) => event.validate(),)+
                }
            }

            /// These types hold only strings, integers, timestamps and
            /// string-keyed structs, which always serialize. Should that ever
            /// stop being true, a `null` payload is written, which every
            /// consumer rejects as `invalid_payload`: the fault surfaces as a
            /// dead letter instead of a panic in the producer.
            fn to_payload(&self) -> Value {
                let payload = match self {
                    $(Event::$name(event) => serde_json::to_value(event),)+
                };
                payload.unwrap_or(Value::Null)
            }

            fn from_payload(event_type: &str, payload: Value) -> Result<Event, DecodeError> {
                match event_type {
                    $(stringify!($name) => serde_path_to_error::deserialize::<_, $name>(payload)
                        .map(Event::$name)
                        .map_err(|err| DecodeError::InvalidPayload {
                            event_type: stringify!($name),
                            reason: payload_error_reason(&err),
                        }),)+
                    other => Err(DecodeError::UnknownEventType {
                        event_type: other.to_owned(),
                    }),
                }
            }
        }

        $(impl From<$name> for Event {
            fn from(event: $name) -> Self {
                Event::$name(event)
            }
        })+
    };
}

events! {
    OrderCreatedEvent => "smm.order.processing",
    OrderStatusChangedEvent => "smm.order.state.updates",
    OrderStatusUpdate => "smm.order.status.updates",
    OrderProgressUpdated => "smm.order.progress",
    OrderRefundRequested => "smm.order.refund",
    PaymentWebhookReceived => "smm.payment.webhooks",
    PaymentConfirmation => "smm.payment.confirmations",
    PaymentRefundRequested => "smm.payment.refunds",
    VideoProcessingMessage => "smm.video.processing",
    YouTubeTask => "smm.youtube.processing",
    BinomCampaignCreation => "smm.binom.campaign.creation",
    OfferAssignment => "smm.offer.assignments",
    OfferAssignmentEvent => "smm.offer.assignment.events",
    Notification => "smm.notifications",
}

/// One message as it travels on Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub schema_version: u32,
    /// Unique per logical event; consumers de-duplicate on it.
    pub event_id: Uuid,
    /// Shared by every message caused by the same original request.
    pub correlation_id: String,
    pub occurred_at: Timestamp,
    pub event: Event,
}

impl Envelope {
    /// Wraps `event` with a fresh random id, stamped now.
    pub fn new(event: Event, correlation_id: impl Into<String>) -> Envelope {
        Envelope {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::new_v4(),
            correlation_id: correlation_id.into(),
            occurred_at: Timestamp::now(),
            event,
        }
    }

    /// Replaces the random id, typically with a [`deterministic_event_id`]
    /// so a re-produced event is recognised as a duplicate.
    pub fn with_event_id(mut self, id: Uuid) -> Self {
        self.event_id = id;
        self
    }

    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    /// The checks [`Envelope::decode`] applies, for producers that want to
    /// refuse a message before publishing it rather than have every consumer
    /// dead-letter it.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.correlation_id.trim().is_empty() {
            return Err(ValidationError::new("correlation_id", "must not be empty"));
        }
        self.event.validate()
    }

    /// The wire form. Built as a `serde_json::Value`, whose rendering cannot
    /// fail, so callers need not handle an error that cannot happen. Keys
    /// come out in alphabetical order; JSON object order is not significant.
    pub fn to_json(&self) -> Vec<u8> {
        let mut map = Map::new();
        map.insert("schema_version".into(), self.schema_version.into());
        map.insert("event_id".into(), self.event_id.to_string().into());
        map.insert("correlation_id".into(), self.correlation_id.clone().into());
        map.insert("event_type".into(), self.event_type().into());
        map.insert("occurred_at".into(), self.occurred_at.to_string().into());
        map.insert("payload".into(), self.event.to_payload());
        Value::Object(map).to_string().into_bytes()
    }

    /// Parses and validates one message; never panics, whatever the bytes.
    ///
    /// Unknown fields are ignored at every level so producers can add fields
    /// before consumers know about them. serde_json's recursion limit turns
    /// absurdly nested input into an error instead of a stack overflow.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        let raw = RawEnvelope::parse(bytes)?;
        let event = Event::from_payload(&raw.event_type, raw.payload)?;
        event.validate().map_err(|source| DecodeError::Invalid {
            event_type: event.event_type(),
            source,
        })?;
        Ok(Envelope {
            schema_version: raw.schema_version,
            event_id: raw.event_id,
            correlation_id: raw.correlation_id,
            occurred_at: raw.occurred_at,
            event,
        })
    }
}

/// First decoding stage: the envelope checked, the payload still untyped.
///
/// Splitting the stages lets envelope problems (which make the message
/// untraceable) be reported before payload problems, and lets the event
/// type choose the payload struct.
struct RawEnvelope {
    schema_version: u32,
    event_id: Uuid,
    correlation_id: String,
    event_type: String,
    occurred_at: Timestamp,
    payload: Value,
}

impl RawEnvelope {
    fn parse(bytes: &[u8]) -> Result<RawEnvelope, DecodeError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|err| DecodeError::NotJson {
            reason: err.to_string(),
        })?;
        let mut map = match value {
            Value::Object(map) => map,
            other => {
                return Err(DecodeError::NotJson {
                    reason: format!("expected an object, found {}", json_type(&other)),
                });
            }
        };

        // The version is checked first: a newer envelope may have renamed
        // other fields, and "unsupported version" is then the useful error.
        let schema_version = parse_schema_version(take(&mut map, "schema_version")?)?;

        let event_id = take_string(&mut map, "event_id")?;
        let event_id = Uuid::try_parse(&event_id).map_err(|err| DecodeError::InvalidField {
            field: "event_id",
            reason: format!("not a UUID: {err}"),
        })?;
        if event_id.is_nil() {
            // A nil id would make every such message a duplicate of the first.
            return Err(DecodeError::InvalidField {
                field: "event_id",
                reason: "must not be the nil UUID".into(),
            });
        }

        let correlation_id = take_string(&mut map, "correlation_id")?;
        if correlation_id.trim().is_empty() {
            return Err(DecodeError::InvalidField {
                field: "correlation_id",
                reason: "must not be empty; it is how a message is traced across workers".into(),
            });
        }

        let event_type = take_string(&mut map, "event_type")?;

        let occurred_at = take_string(&mut map, "occurred_at")?;
        let occurred_at: Timestamp =
            occurred_at
                .parse()
                .map_err(|err: jiff::Error| DecodeError::InvalidField {
                    field: "occurred_at",
                    reason: format!(
                        "not an RFC 3339 timestamp such as 2026-11-29T10:00:00Z: {err}"
                    ),
                })?;

        let payload = take(&mut map, "payload")?;

        Ok(RawEnvelope {
            schema_version,
            event_id,
            correlation_id,
            event_type,
            occurred_at,
            payload,
        })
    }
}

fn parse_schema_version(value: Value) -> Result<u32, DecodeError> {
    let found = value.as_u64().ok_or_else(|| DecodeError::InvalidField {
        field: "schema_version",
        reason: format!(
            "must be a non-negative integer, found {}",
            json_type(&value)
        ),
    })?;
    if found == u64::from(SCHEMA_VERSION) {
        Ok(SCHEMA_VERSION)
    } else {
        Err(DecodeError::UnsupportedSchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        })
    }
}

/// Removes a required field. An explicit `null` counts as absent: producers
/// in other languages often write `null` for a field they never set.
fn take(map: &mut Map<String, Value>, field: &'static str) -> Result<Value, DecodeError> {
    match map.remove(field) {
        None | Some(Value::Null) => Err(DecodeError::MissingField { field }),
        Some(value) => Ok(value),
    }
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<String, DecodeError> {
    match take(map, field)? {
        Value::String(value) => Ok(value),
        other => Err(DecodeError::InvalidField {
            field,
            reason: format!("must be a string, found {}", json_type(&other)),
        }),
    }
}

/// serde's message plus where in the payload it happened. Missing-field
/// messages already name the field; type errors ("expected i64") do not, and
/// without the path the operator would have to guess which field is wrong.
fn payload_error_reason(err: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = err.path().to_string();
    if path == "." {
        err.inner().to_string()
    } else {
        format!("field `{path}`: {}", err.inner())
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
