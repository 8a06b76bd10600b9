//! A record as a handler sees it: its headers and correlation id are read
//! only when asked for.

use rdkafka::Message as _;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Headers as _};
use uuid::Uuid;

use super::HandlerFailure;
use crate::contract::events::Envelope;
use crate::contract::headers::{self, Headers};
use crate::store::Claim;

/// One record as a handler sees it.
pub struct Delivery<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The record, for its headers: librdkafka parses a record's headers
    /// (and allocates for them) only when first asked, which a handler that
    /// never looks at them, and a log level that records no span, never do.
    pub(super) message: &'a BorrowedMessage<'a>,
    /// Which delivery this is: 1 on the main topic, then one more per retry.
    pub attempt: u32,
    /// A `String`, not a borrow: a cell over a borrow would make the
    /// delivery invariant in its lifetime, which handlers cannot accept.
    pub(super) correlation: std::sync::OnceLock<String>,
    pub worker: &'a str,
}

impl Delivery<'_> {
    /// A copy of the record's headers, in order.
    pub fn headers(&self) -> Headers {
        self.message.headers().map(copy_headers).unwrap_or_default()
    }

    /// The `x-correlation-id` header, else the envelope's correlation id,
    /// else empty (never made up).
    pub fn correlation_id(&self) -> &str {
        self.correlation
            .get_or_init(|| correlation_of(self.message.headers(), self.payload).into_owned())
    }

    /// The record's envelope; a record that is not one is poison.
    pub fn envelope(&self) -> Result<Envelope, HandlerFailure> {
        let payload = self.payload.ok_or_else(|| {
            HandlerFailure::poison(
                "smmctl.decode.empty_value",
                "the record has no value (a tombstone); the panel never sends one",
            )
        })?;
        Ok(Envelope::decode(payload)?)
    }

    /// The dedup claim for `event_id` by this worker.
    pub fn claim(&self, event_id: Uuid) -> Claim<'_> {
        Claim {
            consumer: self.worker,
            event_id,
            correlation_id: self.correlation_id(),
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// The correlation id: the header if the producer set one, else the
/// envelope's, else none (an empty string, never made up).
fn correlation_of<'m>(
    headers: Option<&'m BorrowedHeaders>,
    payload: Option<&[u8]>,
) -> std::borrow::Cow<'m, str> {
    let from_header = headers.and_then(|h| {
        h.iter()
            .filter(|header| header.key == headers::CORRELATION_ID)
            .filter_map(|header| std::str::from_utf8(header.value?).ok())
            .last()
    });
    if let Some(id) = from_header {
        return std::borrow::Cow::Borrowed(id);
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        correlation_id: Option<String>,
    }
    payload
        .and_then(|p| serde_json::from_slice::<Peek>(p).ok())
        .and_then(|p| p.correlation_id)
        .unwrap_or_default()
        .into()
}

pub(super) fn copy_headers(headers: &BorrowedHeaders) -> Headers {
    headers
        .iter()
        .map(|header| {
            (
                header.key.to_owned(),
                header.value.map(<[u8]>::to_vec).unwrap_or_default(),
            )
        })
        .collect()
}
