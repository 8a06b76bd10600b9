//! The retry and dead-letter header contract of the panel's Java services,
//! byte for byte, plus smmctl's own correlation and replay lineage headers.
//!
//! The Java services use Spring Kafka's non-blocking retries (retry topics
//! and a `-dlt`), whose recoverer writes `kafka_original-*`,
//! `kafka_exception-*` and `retry_topic-*` headers, and in places a plain
//! `DeadLetterPublishingRecoverer`, which writes `kafka_dlt-*` instead. A
//! record forwarded by a Java service and one forwarded by our workers must
//! be indistinguishable, so that either side can inspect, retry or replay
//! the other's dead letters. The rules here follow Spring Kafka 3.x's
//! `DeadLetterPublishingRecoverer` and `DeadLetterPublishingRecovererFactory`
//! with the settings the retry topic support uses (`appendOriginalHeaders`
//! false, `stripPreviousExceptionHeaders` and `retainAllRetryHeaderValues`
//! true).
//!
//! Pure logic: no Kafka client, no I/O. The worker runtime and `smmctl dlq`
//! move [`Headers`] to and from records.

use std::str::Utf8Error;

// Header names. Spring's own are spelled exactly as in its `KafkaHeaders`
// and `RetryTopicHeaders`.

/// The topic the record was first consumed from. Written once, on the
/// first hop, so it names the main topic even on the DLT.
pub const ORIGINAL_TOPIC: &str = "kafka_original-topic";
pub const ORIGINAL_PARTITION: &str = "kafka_original-partition";
pub const ORIGINAL_OFFSET: &str = "kafka_original-offset";
pub const ORIGINAL_TIMESTAMP: &str = "kafka_original-timestamp";
pub const ORIGINAL_TIMESTAMP_TYPE: &str = "kafka_original-timestamp-type";
/// Spring adds this on the first hop when the listener's exception carries
/// the consumer group (a `ListenerExecutionFailedException`). Not written by
/// [`forward`], whose [`FailedRecord`] has no group; named here so that tools can
/// label it, and kept across hops like any other header.
pub const ORIGINAL_CONSUMER_GROUP: &str = "kafka_original-consumer-group";

pub const EXCEPTION_FQCN: &str = "kafka_exception-fqcn";
pub const EXCEPTION_CAUSE_FQCN: &str = "kafka_exception-cause-fqcn";
pub const EXCEPTION_MESSAGE: &str = "kafka_exception-message";
pub const EXCEPTION_STACKTRACE: &str = "kafka_exception-stacktrace";

/// What Spring's retry topics keep of a record's journey through them
/// starts with this: attempts, backoff and the original timestamp.
pub const RETRY_STATE_PREFIX: &str = "retry_topic-";
/// The attempt number the next delivery will be. Accumulates: one per hop.
pub const RETRY_ATTEMPTS: &str = "retry_topic-attempts";
/// When the record is due, in epoch milliseconds. Accumulates.
pub const RETRY_BACKOFF_TIMESTAMP: &str = "retry_topic-backoff-timestamp";
/// The timestamp of the record on the main topic. Accumulates (each hop
/// copies the previous value).
pub const RETRY_ORIGINAL_TIMESTAMP: &str = "retry_topic-original-timestamp";

// What a plain DeadLetterPublishingRecoverer (no retry topics) writes.
pub const DLT_ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
pub const DLT_ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
pub const DLT_ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
pub const DLT_ORIGINAL_TIMESTAMP: &str = "kafka_dlt-original-timestamp";
pub const DLT_ORIGINAL_TIMESTAMP_TYPE: &str = "kafka_dlt-original-timestamp-type";
/// See [`ORIGINAL_CONSUMER_GROUP`].
pub const DLT_ORIGINAL_CONSUMER_GROUP: &str = "kafka_dlt-original-consumer-group";
pub const DLT_EXCEPTION_FQCN: &str = "kafka_dlt-exception-fqcn";
pub const DLT_EXCEPTION_CAUSE_FQCN: &str = "kafka_dlt-exception-cause-fqcn";
pub const DLT_EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
pub const DLT_EXCEPTION_STACKTRACE: &str = "kafka_dlt-exception-stacktrace";

/// Carried unchanged through every hop and replay.
pub const CORRELATION_ID: &str = "x-correlation-id";

// Replay lineage, written by `smmctl dlq replay`.
//
// These are UTF-8 text (RFC 3339 for the time, decimal for the numbers),
// not binary like Spring's: nothing in Java parses them, and text is
// readable as it is in kcat, kafka-console-consumer, Kafka UI or any other
// tool that prints headers, where a big-endian long prints as noise.

/// When the record was last replayed, as RFC 3339 (`2026-11-29T10:00:00Z`).
pub const REPLAYED_AT: &str = "x-smm-replayed-at";
/// How many times the record has been replayed, in decimal.
pub const REPLAY_COUNT: &str = "x-smm-replay-count";
/// The dead-letter record the last replay copied.
pub const DLQ_TOPIC: &str = "x-smm-dlq-topic";
pub const DLQ_PARTITION: &str = "x-smm-dlq-partition";
pub const DLQ_OFFSET: &str = "x-smm-dlq-offset";

/// `kafka_original-timestamp-type` values. Spring writes Kafka's
/// `TimestampType.toString()`, which is the display name, not the enum
/// constant's name (checked against kafka-clients 4.1.1).
pub const CREATE_TIME: &str = "CreateTime";
pub const LOG_APPEND_TIME: &str = "LogAppendTime";

/// What [`forward`] replaces on every hop.
const EXCEPTION_HEADERS: [&str; 4] = [
    EXCEPTION_FQCN,
    EXCEPTION_CAUSE_FQCN,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
];

/// What [`replay`] replaces.
const LINEAGE_HEADERS: [&str; 5] = [
    REPLAYED_AT,
    REPLAY_COUNT,
    DLQ_TOPIC,
    DLQ_PARTITION,
    DLQ_OFFSET,
];

/// A record's headers, in order. Kafka allows a name more than once, and
/// Spring relies on that (the `retry_topic-*` headers accumulate), so this
/// is a list, not a map.
pub type Headers = Vec<(String, Vec<u8>)>;

/// The value of the first header called `name`, as Kafka's iteration order
/// gives it.
pub fn first<'h>(headers: &'h Headers, name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The value of the last header called `name`, like Kafka's
/// `Headers.lastHeader`, which is what Spring reads.
pub fn last<'h>(headers: &'h Headers, name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Why a header value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, found {found}")]
    WrongLength {
        expected: &'static str,
        found: usize,
    },
    #[error("not valid UTF-8 (invalid byte at index {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("expected a decimal number from 0 to 4294967295, found {text:?}")]
    NotDecimal { text: String },
    #[error("expected {expected}, found {value}")]
    OutOfRange { expected: &'static str, value: i64 },
}

impl From<Utf8Error> for ValueError {
    fn from(e: Utf8Error) -> Self {
        ValueError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        }
    }
}

/// A header that is present but malformed, e.g.
/// `kafka_original-partition: expected 4 bytes, found 3`.
///
/// The problem is part of the message rather than a `source()`, so that
/// error reports that print the chain do not repeat it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: {problem}")]
pub struct HeaderError {
    pub header: &'static str,
    pub problem: ValueError,
}

/// Java's `ByteBuffer.allocate(4).putInt(v)`: 4 bytes, big-endian.
pub fn encode_i32(value: i32) -> [u8; 4] {
    value.to_be_bytes()
}

/// Java's `ByteBuffer.wrap(bytes).getInt()`, but a length other than 4 is an
/// error instead of an exception or a silently ignored tail.
pub fn decode_i32(bytes: &[u8]) -> Result<i32, ValueError> {
    let array: [u8; 4] = bytes.try_into().map_err(|_| ValueError::WrongLength {
        expected: "4 bytes",
        found: bytes.len(),
    })?;
    Ok(i32::from_be_bytes(array))
}

/// Java's `ByteBuffer.allocate(8).putLong(v)`: 8 bytes, big-endian.
pub fn encode_i64(value: i64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Java's `ByteBuffer.wrap(bytes).getLong()`; a length other than 8 is an
/// error.
pub fn decode_i64(bytes: &[u8]) -> Result<i64, ValueError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| ValueError::WrongLength {
        expected: "8 bytes",
        found: bytes.len(),
    })?;
    Ok(i64::from_be_bytes(array))
}

/// Java's `BigInteger.valueOf(v).toByteArray()`: big-endian two's
/// complement in the fewest bytes that keep the sign, so 1 to 8 bytes
/// (`128` is `00 80`, `-129` is `ff 7f`).
pub fn encode_big_integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    // A leading byte is redundant when it only repeats the sign of the byte
    // after it: 0x00 before a byte below 0x80, 0xff before one from 0x80.
    let mut start = 0;
    while start < bytes.len() - 1 {
        let next_negative = bytes[start + 1] & 0x80 != 0;
        match bytes[start] {
            0x00 if !next_negative => start += 1,
            0xff if next_negative => start += 1,
            _ => break,
        }
    }
    bytes[start..].to_vec()
}

/// Java's `new BigInteger(bytes).longValue()` for the lengths an `i64` can
/// come from: 1 to 8 bytes, sign-extended. Non-minimal input (`00 01`) is
/// accepted, as Java accepts it.
///
/// Empty input is an error, as in Java (`NumberFormatException: Zero length
/// BigInteger`). More than 8 bytes is an error too, although Java would
/// silently keep the low 64 bits: `toByteArray` of a long never produces
/// them, and Spring's own reader of `retry_topic-original-timestamp` refuses
/// them as well.
pub fn decode_big_integer(bytes: &[u8]) -> Result<i64, ValueError> {
    if bytes.is_empty() || bytes.len() > 8 {
        return Err(ValueError::WrongLength {
            expected: "1 to 8 bytes",
            found: bytes.len(),
        });
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut array = [fill; 8];
    array[8 - bytes.len()..].copy_from_slice(bytes);
    Ok(i64::from_be_bytes(array))
}

/// Java's `s.getBytes(StandardCharsets.UTF_8)`.
pub fn encode_string(value: &str) -> Vec<u8> {
    value.as_bytes().to_vec()
}

/// UTF-8 text. Invalid UTF-8 is an error rather than replacement
/// characters, so that a value never silently changes on its way through.
pub fn decode_string(bytes: &[u8]) -> Result<&str, ValueError> {
    Ok(std::str::from_utf8(bytes)?)
}

/// `retry_topic-attempts` as Spring reads it: 4 bytes, or 1 unsigned byte
/// for records written by Spring Kafka before 2.8.
fn decode_attempts(bytes: &[u8]) -> Result<u32, ValueError> {
    let value = match bytes {
        [single] => i32::from(*single),
        _ if bytes.len() == 4 => decode_i32(bytes)?,
        _ => {
            return Err(ValueError::WrongLength {
                expected: "1 or 4 bytes",
                found: bytes.len(),
            });
        }
    };
    u32::try_from(value).map_err(|_| ValueError::OutOfRange {
        expected: "a non-negative attempt number",
        value: i64::from(value),
    })
}

/// Decimal digits only: no sign, no spaces, as [`replay`] writes them.
fn decode_decimal_u32(bytes: &[u8]) -> Result<u32, ValueError> {
    let text = decode_string(bytes)?;
    let not_decimal = || ValueError::NotDecimal {
        // A header can be large; the start is enough to recognise it.
        text: text.chars().take(64).collect(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_decimal());
    }
    text.parse().map_err(|_| not_decimal())
}

/// The retry and dead-letter facts a record's headers carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryMetadata {
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    /// Epoch milliseconds.
    pub original_timestamp: Option<i64>,
    /// [`CREATE_TIME`] or [`LOG_APPEND_TIME`].
    pub original_timestamp_type: Option<String>,
    /// The attempt number of the delivery that carries these headers; 2 on
    /// the first retry topic.
    pub attempts: Option<u32>,
    /// When the record is due, in epoch milliseconds.
    pub due_at_ms: Option<i64>,
    pub exception_fqcn: Option<String>,
    pub exception_cause_fqcn: Option<String>,
    pub exception_message: Option<String>,
    pub exception_stacktrace: Option<String>,
    pub correlation_id: Option<String>,
    /// 0 for a record never replayed.
    pub replay_count: u32,
    /// The original and/or exception facts came from the `kafka_dlt-*`
    /// headers of a plain DeadLetterPublishingRecoverer.
    pub plain_recoverer: bool,
}

/// The names one recoverer writes the original record's coordinates under.
struct OriginalNames {
    topic: &'static str,
    partition: &'static str,
    offset: &'static str,
    timestamp: &'static str,
    timestamp_type: &'static str,
}

impl OriginalNames {
    fn any_in(&self, headers: &Headers) -> bool {
        [
            self.topic,
            self.partition,
            self.offset,
            self.timestamp,
            self.timestamp_type,
        ]
        .iter()
        .any(|name| first(headers, name).is_some())
    }
}

const RETRY_TOPIC_ORIGINALS: OriginalNames = OriginalNames {
    topic: ORIGINAL_TOPIC,
    partition: ORIGINAL_PARTITION,
    offset: ORIGINAL_OFFSET,
    timestamp: ORIGINAL_TIMESTAMP,
    timestamp_type: ORIGINAL_TIMESTAMP_TYPE,
};

const PLAIN_ORIGINALS: OriginalNames = OriginalNames {
    topic: DLT_ORIGINAL_TOPIC,
    partition: DLT_ORIGINAL_PARTITION,
    offset: DLT_ORIGINAL_OFFSET,
    timestamp: DLT_ORIGINAL_TIMESTAMP,
    timestamp_type: DLT_ORIGINAL_TIMESTAMP_TYPE,
};

/// The names one recoverer writes the failure under.
struct ExceptionNames {
    fqcn: &'static str,
    cause_fqcn: &'static str,
    message: &'static str,
    stacktrace: &'static str,
}

impl ExceptionNames {
    fn any_in(&self, headers: &Headers) -> bool {
        [self.fqcn, self.cause_fqcn, self.message, self.stacktrace]
            .iter()
            .any(|name| first(headers, name).is_some())
    }
}

const RETRY_TOPIC_EXCEPTIONS: ExceptionNames = ExceptionNames {
    fqcn: EXCEPTION_FQCN,
    cause_fqcn: EXCEPTION_CAUSE_FQCN,
    message: EXCEPTION_MESSAGE,
    stacktrace: EXCEPTION_STACKTRACE,
};

const PLAIN_EXCEPTIONS: ExceptionNames = ExceptionNames {
    fqcn: DLT_EXCEPTION_FQCN,
    cause_fqcn: DLT_EXCEPTION_CAUSE_FQCN,
    message: DLT_EXCEPTION_MESSAGE,
    stacktrace: DLT_EXCEPTION_STACKTRACE,
};

/// Reads the first or last value of `name` and decodes it, naming the
/// header in the error.
fn read_header<'h, T>(
    headers: &'h Headers,
    name: &'static str,
    pick: fn(&'h Headers, &str) -> Option<&'h [u8]>,
    decode: impl FnOnce(&'h [u8]) -> Result<T, ValueError>,
) -> Result<Option<T>, HeaderError> {
    pick(headers, name)
        .map(decode)
        .transpose()
        .map_err(|problem| HeaderError {
            header: name,
            problem,
        })
}

fn read_text(
    headers: &Headers,
    name: &'static str,
    pick: for<'h> fn(&'h Headers, &str) -> Option<&'h [u8]>,
) -> Result<Option<String>, HeaderError> {
    read_header(headers, name, pick, |v| decode_string(v).map(str::to_owned))
}

impl RetryMetadata {
    /// Reads the headers as Spring does:
    /// - `kafka_original-*`: the first occurrence. Later hops never add
    ///   another, but a record re-published by hand might, and the first is
    ///   the main topic.
    /// - `kafka_exception-*`: the last, the failure that caused this hop.
    /// - `retry_topic-*`: the last, since one is appended per hop.
    /// - `x-correlation-id` and `x-smm-replay-count`: the last, as Spring's
    ///   header mapper keeps the last value of a repeated header.
    ///
    /// Without any `kafka_original-*` header, the original coordinates are
    /// read from a plain recoverer's `kafka_dlt-original-*` instead; the
    /// exception headers likewise. The choice is made per group, never per
    /// header, so that a topic from one recoverer is never paired with an
    /// offset from another.
    ///
    /// A header that is absent is `None`; one that is present but malformed
    /// is an error naming it.
    pub fn read(headers: &Headers) -> Result<RetryMetadata, HeaderError> {
        let mut plain_recoverer = false;

        let originals = if !RETRY_TOPIC_ORIGINALS.any_in(headers) && PLAIN_ORIGINALS.any_in(headers)
        {
            plain_recoverer = true;
            &PLAIN_ORIGINALS
        } else {
            &RETRY_TOPIC_ORIGINALS
        };
        let exceptions =
            if !RETRY_TOPIC_EXCEPTIONS.any_in(headers) && PLAIN_EXCEPTIONS.any_in(headers) {
                plain_recoverer = true;
                &PLAIN_EXCEPTIONS
            } else {
                &RETRY_TOPIC_EXCEPTIONS
            };

        Ok(RetryMetadata {
            original_topic: read_text(headers, originals.topic, first)?,
            original_partition: read_header(headers, originals.partition, first, decode_i32)?,
            original_offset: read_header(headers, originals.offset, first, decode_i64)?,
            original_timestamp: read_header(headers, originals.timestamp, first, decode_i64)?,
            original_timestamp_type: read_text(headers, originals.timestamp_type, first)?,
            attempts: read_header(headers, RETRY_ATTEMPTS, last, decode_attempts)?,
            due_at_ms: read_header(headers, RETRY_BACKOFF_TIMESTAMP, last, decode_big_integer)?,
            exception_fqcn: read_text(headers, exceptions.fqcn, last)?,
            exception_cause_fqcn: read_text(headers, exceptions.cause_fqcn, last)?,
            exception_message: read_text(headers, exceptions.message, last)?,
            exception_stacktrace: read_text(headers, exceptions.stacktrace, last)?,
            correlation_id: read_text(headers, CORRELATION_ID, last)?,
            replay_count: read_header(headers, REPLAY_COUNT, last, decode_decimal_u32)?
                .unwrap_or(0),
            plain_recoverer,
        })
    }
}

/// The record that failed, as it was consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record's own timestamp, in epoch milliseconds.
    pub timestamp_ms: i64,
    /// `"CreateTime"` ([`CREATE_TIME`]) or `"LogAppendTime"`
    /// ([`LOG_APPEND_TIME`]): Spring writes Kafka's `TimestampType.toString()`,
    /// not the Java enum constant's name.
    pub timestamp_type: &'a str,
}

/// Why it failed, in Java's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception<'a> {
    /// The exception's class name, e.g.
    /// `org.springframework.kafka.listener.ListenerExecutionFailedException`.
    pub fqcn: &'a str,
    /// Spring 3.x writes the root cause, which is the exception itself when
    /// it has no cause; pass `Some(fqcn)` then for byte parity.
    pub cause_fqcn: Option<&'a str>,
    pub message: &'a str,
    pub stacktrace: Option<&'a str>,
}

fn push(out: &mut Headers, name: &str, value: Vec<u8>) {
    out.push((name.to_owned(), value));
}

/// The headers of a record forwarded to a retry topic or the DLT, built as
/// Spring's retry topic recoverer builds them:
///
/// 1. Every existing header is kept, in order, except the four
///    `kafka_exception-*` ones.
/// 2. The exception headers of this failure are appended.
/// 3. Each `kafka_original-*` header is appended only if the record has none
///    yet, so only the first hop writes them.
/// 4. `retry_topic-original-timestamp` is appended: the last one already
///    present, copied byte for byte (Spring ignores one that is not 1 to 8
///    bytes long), else the source record's timestamp. Spring writes it on
///    every hop, not only on the first.
/// 5. `retry_topic-attempts`, `attempt` as a 4-byte int: the attempt number
///    the next delivery will be, so 2 on the first retry record. Spring
///    writes one more than the last value, including on the DLT.
/// 6. `retry_topic-backoff-timestamp` when `due_at_ms` is given. Spring
///    writes it on the DLT too, as the failure time (the DLT has no delay).
///
/// `x-correlation-id` and every other application header pass through
/// unchanged.
///
/// Unlike Spring, all four exception headers are dropped even when this
/// failure has no cause or stack trace: Spring only replaces the ones it
/// writes, which would leave the previous hop's cause describing this
/// failure. With a cause and a stack trace the two agree byte for byte.
pub fn forward(
    existing: &Headers,
    source: &FailedRecord<'_>,
    failure: &Exception<'_>,
    attempt: u32,
    due_at_ms: Option<i64>,
) -> Headers {
    let mut out: Headers = existing
        .iter()
        .filter(|(name, _)| !EXCEPTION_HEADERS.contains(&name.as_str()))
        .cloned()
        .collect();

    push(&mut out, EXCEPTION_FQCN, encode_string(failure.fqcn));
    if let Some(cause) = failure.cause_fqcn {
        push(&mut out, EXCEPTION_CAUSE_FQCN, encode_string(cause));
    }
    push(&mut out, EXCEPTION_MESSAGE, encode_string(failure.message));
    if let Some(trace) = failure.stacktrace {
        push(&mut out, EXCEPTION_STACKTRACE, encode_string(trace));
    }

    let originals: [(&str, Vec<u8>); 5] = [
        (ORIGINAL_TOPIC, encode_string(source.topic)),
        (ORIGINAL_PARTITION, encode_i32(source.partition).to_vec()),
        (ORIGINAL_OFFSET, encode_i64(source.offset).to_vec()),
        (ORIGINAL_TIMESTAMP, encode_i64(source.timestamp_ms).to_vec()),
        (
            ORIGINAL_TIMESTAMP_TYPE,
            encode_string(source.timestamp_type),
        ),
    ];
    for (name, value) in originals {
        if last(&out, name).is_none() {
            push(&mut out, name, value);
        }
    }

    let original_timestamp = last(existing, RETRY_ORIGINAL_TIMESTAMP)
        .filter(|v| (1..=8).contains(&v.len()))
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| encode_big_integer(source.timestamp_ms));
    push(&mut out, RETRY_ORIGINAL_TIMESTAMP, original_timestamp);
    // Java's int is signed; Spring caps attempts far below i32::MAX anyway.
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    push(&mut out, RETRY_ATTEMPTS, encode_i32(attempt).to_vec());
    if let Some(due) = due_at_ms {
        push(&mut out, RETRY_BACKOFF_TIMESTAMP, encode_big_integer(due));
    }
    out
}

/// The headers of a dead letter replayed from `dlq` (topic, partition,
/// offset) at `now`: every header kept, in order, except the lineage ones,
/// which are appended afresh: `x-smm-replayed-at`, `x-smm-replay-count`
/// (one more than before; a missing or unreadable count counts as 0, so a
/// replay never fails on it) and the `x-smm-dlq-*` coordinates.
///
/// The `retry_topic-*` headers are kept too. A Spring listener reads the
/// last `retry_topic-attempts` (and, with a retry timeout, the original
/// timestamp), so a record replayed onto a main topic whose Java consumer
/// uses retry topics goes straight to the DLT if it fails again. Replays
/// that should get a fresh ladder must go through the first retry topic or
/// drop those headers before producing.
pub fn replay(existing: &Headers, dlq: (&str, i32, i64), now: jiff::Timestamp) -> Headers {
    let previous = last(existing, REPLAY_COUNT)
        .and_then(|v| decode_decimal_u32(v).ok())
        .unwrap_or(0);
    let (topic, partition, offset) = dlq;
    let mut out: Headers = existing
        .iter()
        .filter(|(name, _)| !LINEAGE_HEADERS.contains(&name.as_str()))
        .cloned()
        .collect();
    let lineage = [
        // jiff prints RFC 3339 in UTC (`Z`), with a fraction only when the
        // time has one.
        (REPLAYED_AT, now.to_string()),
        (REPLAY_COUNT, previous.saturating_add(1).to_string()),
        (DLQ_TOPIC, topic.to_owned()),
        (DLQ_PARTITION, partition.to_string()),
        (DLQ_OFFSET, offset.to_string()),
    ];
    out.extend(
        lineage
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into_bytes())),
    );
    out
}

#[cfg(test)]
// A test reads best as one story from setup to the last assertion.
#[allow(clippy::too_many_lines)]
mod tests {
    use super::*;

    /// Hex to bytes, for test literals.
    fn h(hex: &str) -> Vec<u8> {
        assert!(hex.len().is_multiple_of(2), "odd hex {hex}");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn s(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    fn headers(pairs: &[(&str, Vec<u8>)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    // The hex in the next three tables was produced by Java, not by this
    // module: java.math.BigInteger.valueOf(v).toByteArray(),
    // java.nio.ByteBuffer.allocate(8).putLong(v).array() and
    // ByteBuffer.allocate(4).putInt(v).array(), printed by a jshell script
    // on OpenJDK 17.0.15.
    const JAVA_BIG_INTEGER: &[(i64, &str)] = &[
        (0, "00"),
        (1, "01"),
        (-1, "ff"),
        (127, "7f"),
        (128, "0080"),
        (-128, "80"),
        (-129, "ff7f"),
        (255, "00ff"),
        (256, "0100"),
        (32767, "7fff"),
        (32768, "008000"),
        (-32768, "8000"),
        (-32769, "ff7fff"),
        (8388607, "7fffff"),
        (8388608, "00800000"),
        (-2147483648, "80000000"),
        (2147483647, "7fffffff"),
        (2147483648, "0080000000"),
        (-2147483649, "ff7fffffff"),
        (i64::MIN, "8000000000000000"),
        (i64::MAX, "7fffffffffffffff"),
        (1764410400000, "019acf0e1d00"),
        (1795946400123, "01a226bf497b"),
        (-1764410400000, "fe6530f1e300"),
    ];

    const JAVA_LONG: &[(i64, &str)] = &[
        (0, "0000000000000000"),
        (1, "0000000000000001"),
        (-1, "ffffffffffffffff"),
        (127, "000000000000007f"),
        (128, "0000000000000080"),
        (-128, "ffffffffffffff80"),
        (-129, "ffffffffffffff7f"),
        (255, "00000000000000ff"),
        (256, "0000000000000100"),
        (32767, "0000000000007fff"),
        (32768, "0000000000008000"),
        (-32768, "ffffffffffff8000"),
        (-32769, "ffffffffffff7fff"),
        (-2147483648, "ffffffff80000000"),
        (2147483647, "000000007fffffff"),
        (2147483648, "0000000080000000"),
        (-2147483649, "ffffffff7fffffff"),
        (i64::MIN, "8000000000000000"),
        (i64::MAX, "7fffffffffffffff"),
        (1764410400000, "0000019acf0e1d00"),
        (1795946400123, "000001a226bf497b"),
        (-1764410400000, "fffffe6530f1e300"),
    ];

    const JAVA_INT: &[(i32, &str)] = &[
        (0, "00000000"),
        (1, "00000001"),
        (-1, "ffffffff"),
        (2, "00000002"),
        (3, "00000003"),
        (127, "0000007f"),
        (128, "00000080"),
        (-128, "ffffff80"),
        (-129, "ffffff7f"),
        (255, "000000ff"),
        (256, "00000100"),
        (32767, "00007fff"),
        (32768, "00008000"),
        (i32::MIN, "80000000"),
        (i32::MAX, "7fffffff"),
    ];

    #[test]
    fn big_integer_matches_java_to_byte_array() {
        for &(value, hex) in JAVA_BIG_INTEGER {
            assert_eq!(encode_big_integer(value), h(hex), "encode {value}");
            assert_eq!(decode_big_integer(&h(hex)), Ok(value), "decode {hex}");
        }
    }

    #[test]
    fn long_matches_java_byte_buffer() {
        for &(value, hex) in JAVA_LONG {
            assert_eq!(encode_i64(value).to_vec(), h(hex), "encode {value}");
            assert_eq!(decode_i64(&h(hex)), Ok(value), "decode {hex}");
        }
    }

    #[test]
    fn int_matches_java_byte_buffer() {
        for &(value, hex) in JAVA_INT {
            assert_eq!(encode_i32(value).to_vec(), h(hex), "encode {value}");
            assert_eq!(decode_i32(&h(hex)), Ok(value), "decode {hex}");
        }
    }

    #[test]
    fn strings_match_java_get_bytes_utf8() {
        // From String.getBytes(StandardCharsets.UTF_8) on OpenJDK 17.0.15.
        let table = [
            (
                "smm.order.processing",
                "736d6d2e6f726465722e70726f63657373696e67",
            ),
            (
                "Ödeme başarısız — 支払い",
                "c39664656d65206261c59f6172c4b173c4b17a20e2809420e694afe68995e38184",
            ),
        ];
        for (text, hex) in table {
            assert_eq!(encode_string(text), h(hex));
            assert_eq!(decode_string(&h(hex)), Ok(text));
        }
    }

    #[test]
    fn big_integer_reads_non_minimal_input_as_java_does() {
        // new BigInteger(new byte[]{0x00, (byte) 0x80}).longValue() is 128
        // on OpenJDK 17.0.15; padding of either sign is accepted.
        assert_eq!(decode_big_integer(&h("0080")), Ok(128));
        assert_eq!(decode_big_integer(&h("0001")), Ok(1));
        assert_eq!(decode_big_integer(&h("ffff")), Ok(-1));
        assert_eq!(decode_big_integer(&h("00000000000000ff")), Ok(255));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let cases: [(Result<i64, ValueError>, &str, usize); 7] = [
            (decode_i32(&[]).map(i64::from), "4 bytes", 0),
            (decode_i32(&[1, 2, 3]).map(i64::from), "4 bytes", 3),
            (decode_i32(&[0; 8]).map(i64::from), "4 bytes", 8),
            (decode_i64(&[0; 4]), "8 bytes", 4),
            (decode_i64(&[0; 9]), "8 bytes", 9),
            (decode_big_integer(&[]), "1 to 8 bytes", 0),
            (decode_big_integer(&[0; 9]), "1 to 8 bytes", 9),
        ];
        for (result, expected, found) in cases {
            assert_eq!(result, Err(ValueError::WrongLength { expected, found }));
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_replacement() {
        assert_eq!(
            decode_string(b"ab\xffcd"),
            Err(ValueError::InvalidUtf8 { valid_up_to: 2 })
        );
        // A truncated multi-byte sequence.
        assert!(decode_string(&h("c3")).is_err());
    }

    /// Every decoder on `bytes`, checking each answer against its contract.
    fn check_decoders(bytes: &[u8]) {
        assert_eq!(decode_i32(bytes).is_ok(), bytes.len() == 4);
        assert_eq!(decode_i64(bytes).is_ok(), bytes.len() == 8);
        match decode_big_integer(bytes) {
            Ok(value) => {
                assert!((1..=8).contains(&bytes.len()));
                // Re-encoding gives the minimal form, which is never longer
                // and decodes to the same value.
                let minimal = encode_big_integer(value);
                assert!(minimal.len() <= bytes.len());
                assert_eq!(decode_big_integer(&minimal), Ok(value));
            }
            Err(_) => assert!(bytes.is_empty() || bytes.len() > 8),
        }
        assert_eq!(
            decode_string(bytes).is_ok(),
            std::str::from_utf8(bytes).is_ok()
        );
        let _ = decode_attempts(bytes);
        let _ = decode_decimal_u32(bytes);
        // Every header at once, through the reader.
        let all: Headers = [
            ORIGINAL_TOPIC,
            ORIGINAL_PARTITION,
            ORIGINAL_OFFSET,
            ORIGINAL_TIMESTAMP,
            ORIGINAL_TIMESTAMP_TYPE,
            RETRY_ATTEMPTS,
            RETRY_BACKOFF_TIMESTAMP,
            EXCEPTION_FQCN,
            CORRELATION_ID,
            REPLAY_COUNT,
        ]
        .iter()
        .map(|n| (n.to_string(), bytes.to_vec()))
        .collect();
        let _ = RetryMetadata::read(&all);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        check_decoders(&[]);
        for a in 0..=255u8 {
            check_decoders(&[a]);
            for b in 0..=255u8 {
                check_decoders(&[a, b]);
            }
        }
        // Longer inputs from a fixed xorshift sequence, lengths 3 to 10,
        // with bytes biased towards the sign boundaries 0x00, 0x7f, 0x80
        // and 0xff where the encodings have edge cases.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = 3 + (next() % 8) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 6 {
                    0 => 0x00,
                    1 => 0x7f,
                    2 => 0x80,
                    3 => 0xff,
                    _ => next() as u8,
                })
                .collect();
            check_decoders(&bytes);
        }
    }

    #[test]
    fn big_integer_round_trips_and_is_minimal() {
        let mut values: Vec<i64> = JAVA_BIG_INTEGER.iter().map(|&(v, _)| v).collect();
        for shift in 0..63 {
            let p = 1i64 << shift;
            values.extend([p, p - 1, -p, -p - 1]);
        }
        for v in values {
            let bytes = encode_big_integer(v);
            assert_eq!(decode_big_integer(&bytes), Ok(v), "{v}");
            // Minimal: dropping the first byte changes the value.
            if bytes.len() > 1 {
                assert_ne!(decode_big_integer(&bytes[1..]), Ok(v), "{v} not minimal");
            }
        }
    }

    #[test]
    fn first_and_last_follow_header_order() {
        let hs = headers(&[("a", s("1")), ("b", s("x")), ("a", s("2")), ("a", s("3"))]);
        assert_eq!(first(&hs, "a"), Some(&b"1"[..]));
        assert_eq!(last(&hs, "a"), Some(&b"3"[..]));
        assert_eq!(first(&hs, "b"), last(&hs, "b"));
        assert_eq!(first(&hs, "c"), None);
        assert_eq!(last(&hs, "c"), None);
    }

    #[test]
    fn read_keeps_first_originals_and_last_exceptions_and_retry_headers() {
        let hs = headers(&[
            (ORIGINAL_TOPIC, s("smm.order.processing")),
            (ORIGINAL_PARTITION, h("00000002")),
            (ORIGINAL_OFFSET, h("0000000000000029")),
            (ORIGINAL_TIMESTAMP, h("0000019acf0e1d00")),
            (ORIGINAL_TIMESTAMP_TYPE, s(CREATE_TIME)),
            (EXCEPTION_FQCN, s("java.lang.RuntimeException")),
            (EXCEPTION_MESSAGE, s("first failure")),
            (RETRY_ATTEMPTS, h("00000002")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e22dc")),
            // Someone re-published by hand and appended new "originals".
            (ORIGINAL_TOPIC, s("smm.order.processing-retry-0")),
            (ORIGINAL_PARTITION, h("00000000")),
            (EXCEPTION_FQCN, s("java.lang.IllegalStateException")),
            (EXCEPTION_MESSAGE, s("second failure")),
            (RETRY_ATTEMPTS, h("00000003")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e2b74")),
            (CORRELATION_ID, s("corr-7f3a")),
        ]);
        let meta = RetryMetadata::read(&hs).unwrap();
        assert_eq!(
            meta,
            RetryMetadata {
                original_topic: Some("smm.order.processing".into()),
                original_partition: Some(2),
                original_offset: Some(41),
                original_timestamp: Some(1764410400000),
                original_timestamp_type: Some("CreateTime".into()),
                attempts: Some(3),
                due_at_ms: Some(0x019a_cf0e_2b74),
                exception_fqcn: Some("java.lang.IllegalStateException".into()),
                exception_cause_fqcn: None,
                exception_message: Some("second failure".into()),
                exception_stacktrace: None,
                correlation_id: Some("corr-7f3a".into()),
                replay_count: 0,
                plain_recoverer: false,
            }
        );
    }

    #[test]
    fn read_of_no_headers_is_empty() {
        assert_eq!(
            RetryMetadata::read(&Headers::new()),
            Ok(RetryMetadata::default())
        );
    }

    #[test]
    fn read_falls_back_to_plain_recoverer_headers() {
        let hs = headers(&[
            (DLT_ORIGINAL_TOPIC, s("smm.payment.confirmations")),
            (DLT_ORIGINAL_PARTITION, h("00000001")),
            (DLT_ORIGINAL_OFFSET, h("00000000000003e8")),
            (DLT_ORIGINAL_TIMESTAMP, h("000001a226bf497b")),
            (DLT_ORIGINAL_TIMESTAMP_TYPE, s(LOG_APPEND_TIME)),
            (DLT_EXCEPTION_FQCN, s("java.lang.IllegalArgumentException")),
            (
                DLT_EXCEPTION_CAUSE_FQCN,
                s("java.lang.NumberFormatException"),
            ),
            (DLT_EXCEPTION_MESSAGE, s("bad amount")),
            (DLT_EXCEPTION_STACKTRACE, s("at Payment.credit")),
        ]);
        let meta = RetryMetadata::read(&hs).unwrap();
        assert!(meta.plain_recoverer);
        assert_eq!(
            meta.original_topic.as_deref(),
            Some("smm.payment.confirmations")
        );
        assert_eq!(meta.original_partition, Some(1));
        assert_eq!(meta.original_offset, Some(1000));
        assert_eq!(meta.original_timestamp, Some(1795946400123));
        assert_eq!(
            meta.original_timestamp_type.as_deref(),
            Some("LogAppendTime")
        );
        assert_eq!(
            meta.exception_fqcn.as_deref(),
            Some("java.lang.IllegalArgumentException")
        );
        assert_eq!(
            meta.exception_cause_fqcn.as_deref(),
            Some("java.lang.NumberFormatException")
        );
        assert_eq!(meta.exception_message.as_deref(), Some("bad amount"));
        assert_eq!(
            meta.exception_stacktrace.as_deref(),
            Some("at Payment.credit")
        );
        assert_eq!(meta.attempts, None);
    }

    #[test]
    fn retry_topic_headers_win_over_plain_ones_as_a_group() {
        // kafka_original-* present: none of the kafka_dlt-original-* is used,
        // not even for the offset the retry headers lack.
        let hs = headers(&[
            (DLT_ORIGINAL_TOPIC, s("elsewhere")),
            (DLT_ORIGINAL_OFFSET, h("0000000000000001")),
            (ORIGINAL_TOPIC, s("smm.order.processing")),
            (EXCEPTION_FQCN, s("java.lang.RuntimeException")),
            (DLT_EXCEPTION_FQCN, s("java.lang.Error")),
        ]);
        let meta = RetryMetadata::read(&hs).unwrap();
        assert!(!meta.plain_recoverer);
        assert_eq!(meta.original_topic.as_deref(), Some("smm.order.processing"));
        assert_eq!(meta.original_offset, None);
        assert_eq!(
            meta.exception_fqcn.as_deref(),
            Some("java.lang.RuntimeException")
        );
    }

    #[test]
    fn read_accepts_spring_legacy_one_byte_attempts() {
        // Spring reads a 1-byte retry_topic-attempts as unsigned, for
        // records written before 2.8.
        let hs = headers(&[(RETRY_ATTEMPTS, h("02"))]);
        assert_eq!(RetryMetadata::read(&hs).unwrap().attempts, Some(2));
    }

    #[test]
    fn malformed_headers_are_errors_naming_the_header() {
        let cases: Vec<(Headers, &str)> = vec![
            (
                headers(&[(ORIGINAL_PARTITION, h("000002"))]),
                "kafka_original-partition: expected 4 bytes, found 3",
            ),
            (
                headers(&[(ORIGINAL_OFFSET, h("00000029"))]),
                "kafka_original-offset: expected 8 bytes, found 4",
            ),
            (
                headers(&[(DLT_ORIGINAL_TIMESTAMP, h("0000019acf0e1d"))]),
                "kafka_dlt-original-timestamp: expected 8 bytes, found 7",
            ),
            (
                headers(&[(ORIGINAL_TOPIC, b"smm.\xff".to_vec())]),
                "kafka_original-topic: not valid UTF-8 (invalid byte at index 4)",
            ),
            (
                headers(&[(RETRY_ATTEMPTS, h("0002"))]),
                "retry_topic-attempts: expected 1 or 4 bytes, found 2",
            ),
            (
                headers(&[(RETRY_ATTEMPTS, h("ffffffff"))]),
                "retry_topic-attempts: expected a non-negative attempt number, found -1",
            ),
            (
                headers(&[(RETRY_BACKOFF_TIMESTAMP, Vec::new())]),
                "retry_topic-backoff-timestamp: expected 1 to 8 bytes, found 0",
            ),
            (
                headers(&[(RETRY_BACKOFF_TIMESTAMP, h("00019acf0e1d00000000"))]),
                "retry_topic-backoff-timestamp: expected 1 to 8 bytes, found 10",
            ),
            (
                headers(&[(EXCEPTION_MESSAGE, b"\xc3".to_vec())]),
                "kafka_exception-message: not valid UTF-8 (invalid byte at index 0)",
            ),
            (
                headers(&[(REPLAY_COUNT, s("-1"))]),
                "x-smm-replay-count: expected a decimal number from 0 to 4294967295, found \"-1\"",
            ),
        ];
        for (hs, message) in cases {
            let err = RetryMetadata::read(&hs).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn only_the_header_that_is_read_is_checked() {
        // A malformed second kafka_original-partition is never read: the
        // first one wins. Likewise a malformed earlier retry_topic-attempts.
        let hs = headers(&[
            (ORIGINAL_PARTITION, h("00000001")),
            (ORIGINAL_PARTITION, h("01")),
            (RETRY_ATTEMPTS, h("0102")),
            (RETRY_ATTEMPTS, h("00000003")),
        ]);
        let meta = RetryMetadata::read(&hs).unwrap();
        assert_eq!(meta.original_partition, Some(1));
        assert_eq!(meta.attempts, Some(3));
    }

    const LEFE: &str = "org.springframework.kafka.listener.ListenerExecutionFailedException";

    fn source(topic: &'static str, offset: i64, timestamp_ms: i64) -> FailedRecord<'static> {
        FailedRecord {
            topic,
            partition: 2,
            offset,
            timestamp_ms,
            timestamp_type: CREATE_TIME,
        }
    }

    fn failure(
        cause: &'static str,
        message: &'static str,
        trace: &'static str,
    ) -> Exception<'static> {
        Exception {
            fqcn: LEFE,
            cause_fqcn: Some(cause),
            message,
            stacktrace: Some(trace),
        }
    }

    fn show(hs: &Headers) -> Vec<(String, String)> {
        hs.iter()
            .map(|(n, v)| {
                let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                (n.clone(), hex)
            })
            .collect()
    }

    /// main → retry-0 → retry-1 → dlt, compared with what Java produced.
    ///
    /// The expected lists were printed by a throwaway Java program that
    /// performs Spring Kafka 3.x's header steps (addExceptionInfoHeaders,
    /// maybeAddOriginalHeaders with appendOriginalHeaders=false,
    /// DeadLetterPublishingRecovererFactory.addHeaders with
    /// retainAllRetryHeaderValues=true, in that order) on kafka-clients
    /// 4.1.1's RecordHeaders, with TimestampType.CREATE_TIME.toString(),
    /// ByteBuffer and BigInteger.toByteArray() on OpenJDK 17.0.15.
    #[test]
    fn successive_forwards_match_spring() {
        let main = headers(&[
            (CORRELATION_ID, s("corr-7f3a")),
            ("__TypeId__", s("com.smm.order.OrderCreatedEvent")),
        ]);

        let retry0 = forward(
            &main,
            &source("smm.order.processing", 41, 1764410400000),
            &failure(
                "java.net.SocketTimeoutException",
                "Listener failed; Read timed out",
                "trace-1",
            ),
            2,
            Some(1764410401500),
        );
        let java_retry0 = headers(&[
            (CORRELATION_ID, s("corr-7f3a")),
            ("__TypeId__", s("com.smm.order.OrderCreatedEvent")),
            (EXCEPTION_FQCN, s(LEFE)),
            (EXCEPTION_CAUSE_FQCN, s("java.net.SocketTimeoutException")),
            (EXCEPTION_MESSAGE, s("Listener failed; Read timed out")),
            (EXCEPTION_STACKTRACE, s("trace-1")),
            (ORIGINAL_TOPIC, s("smm.order.processing")),
            (ORIGINAL_PARTITION, h("00000002")),
            (ORIGINAL_OFFSET, h("0000000000000029")),
            (ORIGINAL_TIMESTAMP, h("0000019acf0e1d00")),
            (ORIGINAL_TIMESTAMP_TYPE, s("CreateTime")),
            (RETRY_ORIGINAL_TIMESTAMP, h("019acf0e1d00")),
            (RETRY_ATTEMPTS, h("00000002")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e22dc")),
        ]);
        assert_eq!(show(&retry0), show(&java_retry0));

        let retry1 = forward(
            &retry0,
            &source("smm.order.processing-retry-0", 7, 1764410400600),
            &failure(
                "java.lang.IllegalStateException",
                "Listener failed; YouTube quota exhausted",
                "trace-2",
            ),
            3,
            Some(1764410403700),
        );
        let java_retry1 = headers(&[
            (CORRELATION_ID, s("corr-7f3a")),
            ("__TypeId__", s("com.smm.order.OrderCreatedEvent")),
            (ORIGINAL_TOPIC, s("smm.order.processing")),
            (ORIGINAL_PARTITION, h("00000002")),
            (ORIGINAL_OFFSET, h("0000000000000029")),
            (ORIGINAL_TIMESTAMP, h("0000019acf0e1d00")),
            (ORIGINAL_TIMESTAMP_TYPE, s("CreateTime")),
            (RETRY_ORIGINAL_TIMESTAMP, h("019acf0e1d00")),
            (RETRY_ATTEMPTS, h("00000002")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e22dc")),
            (EXCEPTION_FQCN, s(LEFE)),
            (EXCEPTION_CAUSE_FQCN, s("java.lang.IllegalStateException")),
            (
                EXCEPTION_MESSAGE,
                s("Listener failed; YouTube quota exhausted"),
            ),
            (EXCEPTION_STACKTRACE, s("trace-2")),
            (RETRY_ORIGINAL_TIMESTAMP, h("019acf0e1d00")),
            (RETRY_ATTEMPTS, h("00000003")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e2b74")),
        ]);
        assert_eq!(show(&retry1), show(&java_retry1));

        // On retry-1 the record carries attempts 2 then 3; the last is read.
        let meta = RetryMetadata::read(&retry1).unwrap();
        assert_eq!(meta.attempts, Some(3));
        assert_eq!(meta.due_at_ms, Some(1764410403700));

        let dlt = forward(
            &retry1,
            &source("smm.order.processing-retry-1", 3, 1764410401800),
            &failure(
                "java.lang.IllegalStateException",
                "Listener failed; YouTube quota exhausted",
                "trace-3",
            ),
            4,
            Some(1764410403900),
        );
        let java_dlt = headers(&[
            (CORRELATION_ID, s("corr-7f3a")),
            ("__TypeId__", s("com.smm.order.OrderCreatedEvent")),
            (ORIGINAL_TOPIC, s("smm.order.processing")),
            (ORIGINAL_PARTITION, h("00000002")),
            (ORIGINAL_OFFSET, h("0000000000000029")),
            (ORIGINAL_TIMESTAMP, h("0000019acf0e1d00")),
            (ORIGINAL_TIMESTAMP_TYPE, s("CreateTime")),
            (RETRY_ORIGINAL_TIMESTAMP, h("019acf0e1d00")),
            (RETRY_ATTEMPTS, h("00000002")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e22dc")),
            (RETRY_ORIGINAL_TIMESTAMP, h("019acf0e1d00")),
            (RETRY_ATTEMPTS, h("00000003")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e2b74")),
            (EXCEPTION_FQCN, s(LEFE)),
            (EXCEPTION_CAUSE_FQCN, s("java.lang.IllegalStateException")),
            (
                EXCEPTION_MESSAGE,
                s("Listener failed; YouTube quota exhausted"),
            ),
            (EXCEPTION_STACKTRACE, s("trace-3")),
            (RETRY_ORIGINAL_TIMESTAMP, h("019acf0e1d00")),
            (RETRY_ATTEMPTS, h("00000004")),
            (RETRY_BACKOFF_TIMESTAMP, h("019acf0e2c3c")),
        ]);
        assert_eq!(show(&dlt), show(&java_dlt));

        // On the DLT the originals still name the main topic.
        let meta = RetryMetadata::read(&dlt).unwrap();
        assert_eq!(
            meta,
            RetryMetadata {
                original_topic: Some("smm.order.processing".into()),
                original_partition: Some(2),
                original_offset: Some(41),
                original_timestamp: Some(1764410400000),
                original_timestamp_type: Some("CreateTime".into()),
                attempts: Some(4),
                due_at_ms: Some(1764410403900),
                exception_fqcn: Some(LEFE.into()),
                exception_cause_fqcn: Some("java.lang.IllegalStateException".into()),
                exception_message: Some("Listener failed; YouTube quota exhausted".into()),
                exception_stacktrace: Some("trace-3".into()),
                correlation_id: Some("corr-7f3a".into()),
                replay_count: 0,
                plain_recoverer: false,
            }
        );
        let exception_headers = dlt
            .iter()
            .filter(|(n, _)| EXCEPTION_HEADERS.contains(&n.as_str()))
            .count();
        assert_eq!(exception_headers, 4, "exceptions are replaced, not added");
    }

    #[test]
    fn forward_without_cause_or_trace_drops_the_previous_ones() {
        let previous = headers(&[
            (EXCEPTION_FQCN, s("java.lang.RuntimeException")),
            (EXCEPTION_CAUSE_FQCN, s("java.io.IOException")),
            (EXCEPTION_MESSAGE, s("old")),
            (EXCEPTION_STACKTRACE, s("old trace")),
        ]);
        let out = forward(
            &previous,
            &source("smm.notifications", 1, 1764410400000),
            &Exception {
                fqcn: "smm.workers.HandlerError",
                cause_fqcn: None,
                message: "template missing",
                stacktrace: None,
            },
            2,
            None,
        );
        let meta = RetryMetadata::read(&out).unwrap();
        assert_eq!(
            meta.exception_fqcn.as_deref(),
            Some("smm.workers.HandlerError")
        );
        assert_eq!(meta.exception_cause_fqcn, None);
        assert_eq!(meta.exception_message.as_deref(), Some("template missing"));
        assert_eq!(meta.exception_stacktrace, None);
        // No due time given: no backoff header.
        assert_eq!(last(&out, RETRY_BACKOFF_TIMESTAMP), None);
        assert_eq!(meta.due_at_ms, None);
    }

    #[test]
    fn forward_keeps_existing_originals_even_from_a_partial_first_hop() {
        // Only the headers missing are added, each on its own, as Spring's
        // maybeAddHeader checks each name.
        let existing = headers(&[(ORIGINAL_TOPIC, s("smm.order.processing"))]);
        let out = forward(
            &existing,
            &source("smm.order.processing-retry-0", 9, 1764410400600),
            &failure("a.B", "m", "t"),
            3,
            None,
        );
        let meta = RetryMetadata::read(&out).unwrap();
        assert_eq!(meta.original_topic.as_deref(), Some("smm.order.processing"));
        assert_eq!(meta.original_offset, Some(9));
        let topics = out.iter().filter(|(n, _)| n == ORIGINAL_TOPIC).count();
        assert_eq!(topics, 1);
    }

    #[test]
    fn forward_replaces_an_unusable_original_timestamp_as_spring_does() {
        // Spring ignores a retry_topic-original-timestamp that is empty or
        // longer than 8 bytes and uses the consumed record's timestamp.
        for bad in [Vec::new(), h("000000019acf0e1d00")] {
            let existing = headers(&[(RETRY_ORIGINAL_TIMESTAMP, bad)]);
            let out = forward(
                &existing,
                &source("smm.order.processing-retry-0", 7, 1795946400123),
                &failure("a.B", "m", "t"),
                3,
                None,
            );
            assert_eq!(
                last(&out, RETRY_ORIGINAL_TIMESTAMP),
                Some(&h("01a226bf497b")[..])
            );
        }
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn replay_counts_up_and_replaces_lineage() {
        let dlt = headers(&[
            (CORRELATION_ID, s("corr-7f3a")),
            (ORIGINAL_TOPIC, s("smm.order.processing")),
            (RETRY_ATTEMPTS, h("00000004")),
        ]);

        let once = replay(
            &dlt,
            ("smm.order.processing-dlt", 2, 17),
            at("2026-11-29T10:00:00Z"),
        );
        assert_eq!(&once[..3], &dlt[..], "everything else kept, in order");
        assert_eq!(
            show(&once[3..].to_vec()),
            show(&headers(&[
                (REPLAYED_AT, s("2026-11-29T10:00:00Z")),
                (REPLAY_COUNT, s("1")),
                (DLQ_TOPIC, s("smm.order.processing-dlt")),
                (DLQ_PARTITION, s("2")),
                (DLQ_OFFSET, s("17")),
            ]))
        );
        assert_eq!(RetryMetadata::read(&once).unwrap().replay_count, 1);

        // Replayed again from a later dead letter: one of each lineage
        // header, the count at 2.
        let twice = replay(
            &once,
            ("smm.order.processing-dlt", 0, 123),
            at("2026-11-29T10:05:30.25Z"),
        );
        for name in LINEAGE_HEADERS {
            let count = twice.iter().filter(|(n, _)| n == name).count();
            assert_eq!(count, 1, "{name}");
        }
        assert_eq!(last(&twice, REPLAY_COUNT), Some(&b"2"[..]));
        assert_eq!(last(&twice, DLQ_PARTITION), Some(&b"0"[..]));
        assert_eq!(last(&twice, DLQ_OFFSET), Some(&b"123"[..]));
        let replayed_at = decode_string(last(&twice, REPLAYED_AT).unwrap()).unwrap();
        assert_eq!(replayed_at, "2026-11-29T10:05:30.25Z");
        assert_eq!(at(replayed_at), at("2026-11-29T10:05:30.25Z"));
        assert_eq!(RetryMetadata::read(&twice).unwrap().replay_count, 2);
    }

    #[test]
    fn replay_treats_an_unreadable_count_as_zero() {
        for bad in [
            s("many"),
            s(""),
            s("-3"),
            b"\xff".to_vec(),
            s("99999999999"),
        ] {
            let hs = headers(&[(REPLAY_COUNT, bad)]);
            let out = replay(&hs, ("t.dlq", 0, 0), at("2026-11-29T10:00:00Z"));
            assert_eq!(last(&out, REPLAY_COUNT), Some(&b"1"[..]));
        }
    }
}
