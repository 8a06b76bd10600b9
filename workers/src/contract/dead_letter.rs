//! Dead letters as an operator reads them: Spring's binary headers decoded,
//! the origin and failure pulled out, the payload decoded with the shared
//! event types where it can be; plus the filters, the replay destination
//! and the drain archive format that `smmctl dlq` uses.
//!
//! Pure logic: records come in as parts, no Kafka client here.

use std::collections::BTreeSet;

use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::catalog::retry_policy_for;
use crate::contract::events::Envelope;
use crate::contract::headers::{self, Headers, RetryMetadata};

/// Bytes shown as text when they are UTF-8, as base64 otherwise. The same
/// shape serves the JSON output and the drain archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bytes {
    Text(String),
    Base64(String),
}

impl Bytes {
    pub fn of(bytes: &[u8]) -> Bytes {
        match std::str::from_utf8(bytes) {
            Ok(text) => Bytes::Text(text.to_owned()),
            Err(_) => Bytes::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    pub fn to_vec(&self) -> Result<Vec<u8>, String> {
        match self {
            Bytes::Text(text) => Ok(text.as_bytes().to_vec()),
            Bytes::Base64(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("invalid base64: {e}")),
        }
    }

    /// For tables: the text, or `base64:…`.
    pub fn display(&self) -> String {
        match self {
            Bytes::Text(text) => text.clone(),
            Bytes::Base64(encoded) => format!("base64:{encoded}"),
        }
    }
}

/// One record of a dead-letter topic, as it was read.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub timestamp: Option<String>,
    /// `CreateTime` or `LogAppendTime`: whose clock `timestamp` is.
    pub timestamp_type: Option<String>,
    /// The group whose listener failed, when Spring knew it.
    pub consumer_group: Option<String>,
}

/// `kafka_original-consumer-group`, or a plain recoverer's
/// `kafka_dlt-original-consumer-group` when the record has no
/// `kafka_original-*` header: the same recoverer as the rest of the origin
/// (see `RetryMetadata::read`), so the group never belongs to another hop.
fn consumer_group(raw: &Headers, errors: &mut Vec<String>) -> Option<String> {
    use headers::*;
    let retry_topic = [
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ORIGINAL_TIMESTAMP,
        ORIGINAL_TIMESTAMP_TYPE,
        ORIGINAL_CONSUMER_GROUP,
    ];
    let name = if retry_topic.iter().any(|n| first(raw, n).is_some()) {
        ORIGINAL_CONSUMER_GROUP
    } else {
        DLT_ORIGINAL_CONSUMER_GROUP
    };
    let value = first(raw, name)?;
    match decode_string(value) {
        Ok(group) => Some(group.to_owned()),
        Err(problem) => {
            errors.push(
                HeaderError {
                    header: name,
                    problem,
                }
                .to_string(),
            );
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    /// The exception the listener container caught: for a listener that
    /// threw, Spring's `ListenerExecutionFailedException` wrapper.
    pub class: Option<String>,
    /// `kafka_exception-cause-fqcn` as written.
    pub cause: Option<String>,
    /// What actually failed, to show and count by: the cause header, else
    /// the deepest `Caused by:` of the stack trace or the message, else
    /// the class. A wrapper alone says nothing about the failure.
    pub root_cause: Option<String>,
    pub message: Option<String>,
    pub stacktrace: Option<String>,
}

impl Exception {
    fn of(meta: &RetryMetadata) -> Exception {
        let root_cause = meta
            .exception_cause_fqcn
            .clone()
            .or_else(|| {
                meta.exception_stacktrace
                    .as_deref()
                    .and_then(root_cause_in_stacktrace)
            })
            .or_else(|| {
                meta.exception_message
                    .as_deref()
                    .and_then(root_cause_in_message)
            })
            .or_else(|| meta.exception_fqcn.clone());
        Exception {
            class: meta.exception_fqcn.clone(),
            cause: meta.exception_cause_fqcn.clone(),
            root_cause,
            message: meta.exception_message.clone(),
            stacktrace: meta.exception_stacktrace.clone(),
        }
    }
}

/// The class name at the start of `text`, as Java prints it before the
/// exception's message (`java.lang.IllegalStateException: …`).
fn class_name_at(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '$'))
        .collect();
    let name = name.trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_owned())
}

/// The deepest cause of a Java stack trace: its last `Caused by:` line.
/// Only unindented ones count; an indented one belongs to a suppressed
/// exception, not to the chain of causes.
fn root_cause_in_stacktrace(trace: &str) -> Option<String> {
    trace
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("Caused by: "))
        .and_then(class_name_at)
}

/// The deepest cause a message names, as `Caused by: X` or, in Spring
/// before 6, `nested exception is X`.
fn root_cause_in_message(message: &str) -> Option<String> {
    ["Caused by: ", "nested exception is "]
        .iter()
        .filter_map(|marker| {
            message
                .rfind(marker)
                .map(|at| (at, &message[at + marker.len()..]))
        })
        .max_by_key(|(at, _)| *at)
        .and_then(|(_, rest)| class_name_at(rest))
}

/// A header decoded for reading: Spring's binary ints and longs as
/// numbers, its timestamps also as dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderView {
    pub key: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

impl HeaderView {
    /// For people: a number as it is, text as the text, other bytes as
    /// `base64:…`. JSON keeps the `{"text": …}` shape, which says which.
    pub fn display(&self) -> String {
        match serde_json::from_value::<Bytes>(self.value.clone()) {
            Ok(bytes) => bytes.display(),
            Err(_) => self.value.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<String>,
    #[serde(skip)]
    pub timestamp_ms: Option<i64>,
    pub key: Option<Bytes>,
    pub original: Origin,
    /// Deliveries made before it was dead-lettered, when the headers say.
    pub attempts: Option<u32>,
    pub exception: Exception,
    /// Set when it waits for a person (`x-smm-manual-review`): why.
    pub manual_review: Option<String>,
    pub replay_count: u32,
    pub correlation_id: Option<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Written by a plain DeadLetterPublishingRecoverer (`kafka_dlt-*`).
    pub plain_recoverer: bool,
    pub headers: Vec<HeaderView>,
    pub header_errors: Vec<String>,
    /// The envelope as JSON when it decodes, the JSON when it parses, the
    /// text or base64 otherwise.
    pub payload: Value,
    pub payload_decoded: &'static str,
}

/// A time as dead letters show it everywhere (table, -v, JSON): RFC 3339
/// in UTC with exactly three millisecond digits, `2025-11-29T10:00:50.010Z`,
/// so times line up in columns and sort as text. Kafka times are
/// milliseconds, so nothing finer is lost.
pub fn format_time(ms: i64) -> Option<String> {
    Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| format!("{t:.3}"))
}

fn decode_header(key: &str, value: &[u8]) -> HeaderView {
    use headers::*;
    let int = |v: &[u8]| decode_i32(v).map(i64::from);
    let (number, is_time) = match key {
        ORIGINAL_PARTITION | DLT_ORIGINAL_PARTITION => (int(value).ok(), false),
        RETRY_ATTEMPTS => (
            int(value)
                .ok()
                .or_else(|| (value.len() == 1).then(|| i64::from(value[0]))),
            false,
        ),
        ORIGINAL_OFFSET | DLT_ORIGINAL_OFFSET => (decode_i64(value).ok(), false),
        ORIGINAL_TIMESTAMP | DLT_ORIGINAL_TIMESTAMP => (decode_i64(value).ok(), true),
        RETRY_BACKOFF_TIMESTAMP | RETRY_ORIGINAL_TIMESTAMP => {
            (decode_big_integer(value).ok(), true)
        }
        _ => (None, false),
    };
    match number {
        Some(n) => HeaderView {
            key: key.to_owned(),
            value: Value::from(n),
            date: is_time.then(|| format_time(n)).flatten(),
        },
        None => HeaderView {
            key: key.to_owned(),
            value: serde_json::to_value(Bytes::of(value)).unwrap_or(Value::Null),
            date: None,
        },
    }
}

impl DeadLetter {
    pub fn decode(raw: &RawRecord) -> DeadLetter {
        DeadLetter::decode_with(raw, true, true)
    }

    /// What routing a replay or drain through `filter` needs, and no more:
    /// the payload is parsed only for `--event-type`, and no header is
    /// rendered (`--header` reads the record's own). A DLQ of 100 000
    /// records then costs its headers, not a JSON tree per record.
    pub fn decode_for(raw: &RawRecord, filter: &Filter) -> DeadLetter {
        DeadLetter::decode_with(raw, filter.event_type.is_some(), false)
    }

    fn decode_with(raw: &RawRecord, payload: bool, header_views: bool) -> DeadLetter {
        let mut header_errors = Vec::new();
        let meta = RetryMetadata::read(&raw.headers).unwrap_or_else(|e| {
            header_errors.push(e.to_string());
            RetryMetadata::default()
        });
        let consumer_group = consumer_group(&raw.headers, &mut header_errors);
        let (payload, payload_decoded, event_type, event_id) = match raw.value.as_deref() {
            _ if !payload => (Value::Null, "skipped", None, None),
            None => (Value::Null, "none", None, None),
            Some(bytes) => match Envelope::decode(bytes) {
                Ok(envelope) => {
                    let json = serde_json::from_slice(&envelope.to_json()).unwrap_or(Value::Null);
                    (
                        json,
                        "event",
                        Some(envelope.event_type().to_owned()),
                        Some(envelope.event_id.to_string()),
                    )
                }
                Err(_) => match serde_json::from_slice::<Value>(bytes) {
                    Ok(json) => {
                        let kind = json
                            .get("event_type")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        (json, "json", kind, None)
                    }
                    Err(_) => (
                        serde_json::to_value(Bytes::of(bytes)).unwrap_or(Value::Null),
                        "raw",
                        None,
                        None,
                    ),
                },
            },
        };
        DeadLetter {
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            timestamp: raw.timestamp_ms.and_then(format_time),
            timestamp_ms: raw.timestamp_ms,
            key: raw.key.as_deref().map(Bytes::of),
            original: Origin {
                topic: meta.original_topic.clone(),
                partition: meta.original_partition,
                offset: meta.original_offset,
                timestamp: meta.original_timestamp.and_then(format_time),
                timestamp_type: meta.original_timestamp_type.clone(),
                consumer_group,
            },
            // The header holds the number the next delivery would have
            // been, so the deliveries made are one fewer.
            attempts: meta.attempts.map(|next| next.saturating_sub(1)),
            exception: Exception::of(&meta),
            manual_review: headers::last(&raw.headers, crate::runtime::MANUAL_REVIEW_HEADER)
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            replay_count: meta.replay_count,
            correlation_id: meta.correlation_id.clone(),
            event_type,
            event_id,
            plain_recoverer: meta.plain_recoverer,
            headers: if header_views {
                raw.headers
                    .iter()
                    .map(|(k, v)| decode_header(k, v))
                    .collect()
            } else {
                Vec::new()
            },
            header_errors,
            payload,
            payload_decoded,
        }
    }
}

impl DeadLetter {
    /// The partition a replayed copy should go to, where one is known: the
    /// original record's (`kafka_original-partition`), or without that
    /// header the dead letter's own (Spring dead-letters to the same
    /// partition number). Only when the destination has as many partitions
    /// as the topic that partition belongs to, since a partition number
    /// means nothing across topics of different sizes; otherwise `None`, and
    /// the producer places the copy by its key.
    pub fn replay_partition(
        &self,
        destination_partitions: usize,
        partitions_of: impl Fn(&str) -> Option<usize>,
    ) -> Option<i32> {
        let (topic, partition) = match (&self.original.topic, self.original.partition) {
            (Some(topic), Some(partition)) => (topic.as_str(), partition),
            _ => (self.topic.as_str(), self.partition),
        };
        let fits = usize::try_from(partition).is_ok_and(|p| p < destination_partitions);
        (fits && partitions_of(topic) == Some(destination_partitions)).then_some(partition)
    }
}

/// What `--partition`, `--offset-range`, `--since`, `--until`, `--key`,
/// `--header`, `--exception` and `--event-type` select. Empty selects all.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub partitions: Vec<i32>,
    pub offsets: Option<(i64, i64)>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub exception: Option<String>,
    pub event_type: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
            && self.offsets.is_none()
            && self.since_ms.is_none()
            && self.until_ms.is_none()
            && self.key.is_none()
            && self.headers.is_empty()
            && self.exception.is_none()
            && self.event_type.is_none()
    }

    pub fn wants_partition(&self, partition: i32) -> bool {
        self.partitions.is_empty() || self.partitions.contains(&partition)
    }

    pub fn matches(&self, raw: &RawRecord, decoded: &DeadLetter) -> bool {
        if !self.wants_partition(raw.partition) {
            return false;
        }
        if let Some((from, to)) = self.offsets
            && !(from..=to).contains(&raw.offset)
        {
            return false;
        }
        let ts = raw.timestamp_ms.unwrap_or(i64::MIN);
        if self.since_ms.is_some_and(|since| ts < since)
            || self.until_ms.is_some_and(|until| ts >= until)
        {
            return false;
        }
        if let Some(key) = &self.key
            && raw.key.as_deref() != Some(key.as_bytes())
        {
            return false;
        }
        for (name, value) in &self.headers {
            // Only the last value counts, as for Kafka's `lastHeader`: Spring
            // appends `retry_topic-attempts` and its kin on every hop, so an
            // earlier value describes a delivery that is over.
            let Some(last) = headers::last(&raw.headers, name) else {
                return false;
            };
            let number = || {
                decode_header(name, last)
                    .value
                    .as_i64()
                    .is_some_and(|n| value.parse::<i64>().ok() == Some(n))
            };
            if last != value.as_bytes() && !number() {
                return false;
            }
        }
        if let Some(needle) = &self.exception {
            let needle = needle.to_lowercase();
            let hay = [
                &decoded.exception.class,
                &decoded.exception.message,
                &decoded.exception.cause,
                &decoded.exception.root_cause,
            ];
            if !hay.iter().any(|h| {
                h.as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(&needle))
            }) {
                return false;
            }
        }
        if let Some(kind) = &self.event_type
            && decoded.event_type.as_deref() != Some(kind.as_str())
        {
            return false;
        }
        true
    }
}

/// Where `dlq replay` sends a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The topic its headers name (`kafka_original-topic`, or
    /// `kafka_dlt-original-topic` from a plain recoverer).
    Original,
    To(String),
    /// The first retry topic of its original topic, so a replay cannot
    /// disturb live traffic.
    FirstRetry,
}

impl Destination {
    /// The topic, or why there is none. Never a guess. `topics` are the
    /// cluster's topics, where `FirstRetry` looks for a topic the catalog
    /// does not know.
    pub fn resolve(
        &self,
        letter: &DeadLetter,
        topics: &BTreeSet<String>,
    ) -> Result<String, String> {
        match self {
            Destination::To(topic) => Ok(topic.clone()),
            Destination::Original => letter.original.topic.clone().ok_or_else(|| {
                "no kafka_original-topic (or kafka_dlt-original-topic) header; use --to".to_string()
            }),
            Destination::FirstRetry => first_retry_of(letter, topics),
        }
    }
}

/// The suffixes a dead-letter topic's name puts after its main topic's:
/// Spring's retry topics' `-dlt`, a plain DeadLetterPublishingRecoverer's
/// `.DLT`, and the `-dlq` and `.dlq` of hand-made ones.
const DEAD_LETTER_SUFFIXES: &[&str] = &["-dlt", ".DLT", "-dlq", ".dlq"];

/// The main topic of a dead-letter topic, by its name.
pub fn main_topic_of(dead_letter_topic: &str) -> Option<&str> {
    DEAD_LETTER_SUFFIXES
        .iter()
        .find_map(|suffix| dead_letter_topic.strip_suffix(suffix))
        .filter(|main| !main.is_empty())
}

/// The first retry topic of the topic a dead letter failed on. The catalog
/// decides for the panel's topics, including that some retry in place and
/// have none. Any other main topic (the dead-letter topic's name without
/// its suffix, else the origin header's) is looked up on the cluster by
/// Spring's names for retry topics: `-retry-0` (suffixed by index),
/// `-retry` (one topic for every attempt), then `-retry-<delay>` (suffixed
/// by delay), the shortest delay first.
fn first_retry_of(letter: &DeadLetter, topics: &BTreeSet<String>) -> Result<String, String> {
    let in_catalog = |main: &str| {
        retry_policy_for(main).map(|policy| {
            policy
                .hops
                .iter()
                .find_map(|h| h.topic)
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!("{main} has no retry topic (its retries run in place); use --to or replay to the original topic")
                })
        })
    };
    let original = letter.original.topic.as_deref();
    if let Some(decided) = original.and_then(in_catalog) {
        return decided;
    }
    let Some(main) = main_topic_of(&letter.topic).or(original) else {
        return Err(format!(
            "cannot tell the main topic of {}: its name ends in none of {} and no kafka_original-topic header names it; use --to",
            letter.topic,
            DEAD_LETTER_SUFFIXES.join(", ")
        ));
    };
    if let Some(decided) = in_catalog(main) {
        return decided;
    }
    first_retry_topic(main, topics)
}

/// Spring's first retry topic of `main` among `topics` (see
/// [`first_retry_of`]), or a message naming the topics looked for.
pub fn first_retry_topic(main: &str, topics: &BTreeSet<String>) -> Result<String, String> {
    let by_index = format!("{main}-retry-0");
    let single = format!("{main}-retry");
    if topics.contains(&by_index) {
        return Ok(by_index);
    }
    if topics.contains(&single) {
        return Ok(single);
    }
    let prefix = format!("{main}-retry-");
    topics
        .range(prefix.clone()..)
        .take_while(|t| t.starts_with(&prefix))
        .filter_map(|t| {
            let delay = &t[prefix.len()..];
            let all_digits = !delay.is_empty() && delay.bytes().all(|b| b.is_ascii_digit());
            all_digits.then(|| delay.parse::<u64>().ok().map(|d| (d, t)))?
        })
        .min()
        .map(|(_, t)| t.clone())
        .ok_or_else(|| {
            format!(
                "{main} has no retry topic on the cluster: there is no {by_index}, no {single} and no {prefix}<delay>; use --to or replay to the original topic"
            )
        })
}

/// The headers a replayed copy carries: the dead letter's, plus lineage,
/// less Spring's retry state (`retry_topic-*`). A listener with retry
/// topics reads that state to place the next failure: left on a copy that
/// goes back to the main topic, the attempts of the old run would send a
/// copy that fails again straight to the dead-letter topic, skipping every
/// retry, and the old original timestamp would count the time in the DLT
/// against a retry timeout. So the ladder starts over. To a retry topic the
/// copy gets a fresh first-retry attempt, due now, so the worker neither
/// waits on an old backoff nor counts the old attempts. The origin and
/// exception headers are kept as they are.
pub fn replay_headers(letter: &RawRecord, to_retry_topic: bool, now: Timestamp) -> Headers {
    let mut out = headers::replay(
        &letter.headers,
        (&letter.topic, letter.partition, letter.offset),
        now,
    );
    out.retain(|(name, _)| !name.starts_with(headers::RETRY_STATE_PREFIX));
    if to_retry_topic {
        out.push((
            headers::RETRY_ATTEMPTS.to_owned(),
            headers::encode_i32(2).to_vec(),
        ));
        out.push((
            headers::RETRY_BACKOFF_TIMESTAMP.to_owned(),
            headers::encode_big_integer(now.as_millisecond()),
        ));
    }
    out
}

/// One line of a `dlq drain` archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Bytes>,
    pub headers: Vec<ArchivedHeader>,
    pub value: Option<Bytes>,
    /// The processing group had handled this record before it was drained;
    /// it is archived only because the drain deleted it, and a replay of
    /// the archive leaves it alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_handled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedHeader {
    pub key: String,
    pub value: Bytes,
}

impl Archived {
    pub fn of(raw: &RawRecord) -> Archived {
        Archived {
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            timestamp_ms: raw.timestamp_ms,
            key: raw.key.as_deref().map(Bytes::of),
            headers: raw
                .headers
                .iter()
                .map(|(k, v)| ArchivedHeader {
                    key: k.clone(),
                    value: Bytes::of(v),
                })
                .collect(),
            value: raw.value.as_deref().map(Bytes::of),
            already_handled: false,
        }
    }

    pub fn to_raw(&self) -> Result<RawRecord, String> {
        Ok(RawRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.as_ref().map(Bytes::to_vec).transpose()?,
            value: self.value.as_ref().map(Bytes::to_vec).transpose()?,
            headers: self
                .headers
                .iter()
                .map(|h| Ok((h.key.clone(), h.value.to_vec()?)))
                .collect::<Result<_, String>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(headers: Vec<(&str, Vec<u8>)>, value: &[u8]) -> RawRecord {
        RawRecord {
            topic: "smm.order.processing-dlt".into(),
            partition: 1,
            offset: 42,
            timestamp_ms: Some(1_764_410_400_000),
            key: Some(vec![0xff, b'k']),
            value: Some(value.to_vec()),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// The bytes Spring Kafka's DeadLetterPublishingRecoverer writes for a
    /// record that failed on its third delivery.
    fn spring_dlt() -> RawRecord {
        raw(
            vec![
                (headers::ORIGINAL_TOPIC, b"smm.order.processing".to_vec()),
                (headers::ORIGINAL_PARTITION, vec![0, 0, 0, 2]),
                (headers::ORIGINAL_OFFSET, vec![0, 0, 0, 0, 0, 0, 0x01, 0x00]),
                (
                    headers::ORIGINAL_TIMESTAMP,
                    1_764_410_400_000i64.to_be_bytes().to_vec(),
                ),
                (headers::ORIGINAL_TIMESTAMP_TYPE, b"CreateTime".to_vec()),
                (
                    headers::EXCEPTION_FQCN,
                    b"org.springframework.kafka.listener.ListenerExecutionFailedException".to_vec(),
                ),
                (
                    headers::EXCEPTION_CAUSE_FQCN,
                    b"java.net.SocketTimeoutException".to_vec(),
                ),
                (
                    headers::EXCEPTION_MESSAGE,
                    b"Listener failed; Read timed out".to_vec(),
                ),
                (headers::RETRY_ATTEMPTS, vec![0, 0, 0, 2]),
                (headers::RETRY_ATTEMPTS, vec![0, 0, 0, 3]),
                (
                    headers::RETRY_BACKOFF_TIMESTAMP,
                    vec![0x01, 0x9a, 0xcf, 0x0e, 0x1d, 0x00],
                ),
                (headers::CORRELATION_ID, b"corr-7".to_vec()),
            ],
            br#"{"not":"an envelope"}"#,
        )
    }

    #[test]
    fn spring_headers_decode_to_numbers_and_dates() {
        let letter = DeadLetter::decode(&spring_dlt());
        assert_eq!(
            letter.original.topic.as_deref(),
            Some("smm.order.processing")
        );
        assert_eq!(letter.original.partition, Some(2));
        assert_eq!(letter.original.offset, Some(256));
        assert_eq!(
            letter.original.timestamp.as_deref(),
            Some("2025-11-29T10:00:00.000Z")
        );
        assert_eq!(
            letter.attempts,
            Some(2),
            "the last retry_topic-attempts is the next delivery"
        );
        assert_eq!(
            letter.exception.cause.as_deref(),
            Some("java.net.SocketTimeoutException")
        );
        let backoff = letter
            .headers
            .iter()
            .find(|h| h.key == headers::RETRY_BACKOFF_TIMESTAMP)
            .unwrap();
        assert_eq!(backoff.value, Value::from(1_764_410_400_000i64));
        assert_eq!(backoff.date.as_deref(), Some("2025-11-29T10:00:00.000Z"));
        assert_eq!(letter.key, Some(Bytes::Base64("/2s=".into())));
        assert_eq!(letter.payload_decoded, "json");
        assert!(!letter.plain_recoverer);
    }

    #[test]
    fn a_plain_recoverer_is_read_through_its_dlt_headers() {
        let letter = DeadLetter::decode(&raw(
            vec![
                (headers::DLT_ORIGINAL_TOPIC, b"smm.order.refund".to_vec()),
                (headers::DLT_ORIGINAL_PARTITION, vec![0, 0, 0, 0]),
                (headers::DLT_ORIGINAL_OFFSET, 9i64.to_be_bytes().to_vec()),
                (
                    headers::DLT_EXCEPTION_FQCN,
                    b"java.lang.IllegalStateException".to_vec(),
                ),
                (
                    headers::DLT_EXCEPTION_MESSAGE,
                    b"refund exceeds charge".to_vec(),
                ),
            ],
            b"\xff\xfe",
        ));
        assert!(letter.plain_recoverer);
        assert_eq!(letter.original.topic.as_deref(), Some("smm.order.refund"));
        assert_eq!(letter.original.offset, Some(9));
        assert_eq!(
            letter.exception.class.as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(letter.payload_decoded, "raw");
        assert_eq!(
            Destination::Original.resolve(&letter, &BTreeSet::new()),
            Ok("smm.order.refund".into())
        );
        assert!(
            Destination::FirstRetry
                .resolve(&letter, &BTreeSet::new())
                .unwrap_err()
                .contains("in place")
        );
    }

    #[test]
    fn destinations_resolve_or_say_why_not() {
        let letter = DeadLetter::decode(&spring_dlt());
        assert_eq!(
            Destination::FirstRetry.resolve(&letter, &BTreeSet::new()),
            Ok("smm.order.processing-retry-0".into())
        );
        assert_eq!(
            Destination::To("x".into()).resolve(&letter, &BTreeSet::new()),
            Ok("x".into())
        );
        let orphan = DeadLetter::decode(&raw(vec![], b"{}"));
        assert!(
            Destination::Original
                .resolve(&orphan, &BTreeSet::new())
                .unwrap_err()
                .contains("--to")
        );
    }

    #[test]
    fn a_copy_keeps_its_partition_only_where_the_partition_counts_match() {
        let letter = DeadLetter::decode(&spring_dlt());
        let sizes = |topic: &str| match topic {
            "smm.order.processing" => Some(6),
            "smm.order.processing-dlt" => Some(3),
            _ => None,
        };
        assert_eq!(letter.replay_partition(6, sizes), Some(2), "the original's");
        assert_eq!(letter.replay_partition(4, sizes), None, "hashed by key");
        assert_eq!(letter.replay_partition(6, |_| None), None, "origin unknown");
        let own = DeadLetter::decode(&raw(vec![], b"{}"));
        assert_eq!(own.replay_partition(3, sizes), Some(1), "its own");
        assert_eq!(own.replay_partition(6, sizes), None);
    }

    #[test]
    fn spring_retry_topics_are_found_on_the_cluster_by_their_names() {
        let cluster = |names: &[&str]| -> BTreeSet<String> {
            names.iter().map(|n| (*n).to_owned()).collect()
        };
        let first = |names: &[&str]| first_retry_topic("o", &cluster(names));
        assert_eq!(
            first(&["o-retry-1", "o-retry-0", "o-dlt"]),
            Ok("o-retry-0".into())
        );
        assert_eq!(first(&["o-retry", "o-retry-x"]), Ok("o-retry".into()));
        assert_eq!(
            first(&[
                "o-retry-2000",
                "o-retry-500",
                "o-retry-1000",
                "o-retry-10000"
            ]),
            Ok("o-retry-500".into()),
            "the shortest delay, by number"
        );
        assert_eq!(
            first(&["o", "o-dlt", "other-retry-0", "o-retry-x"]),
            Err("o has no retry topic on the cluster: there is no o-retry-0, no o-retry and no o-retry-<delay>; use --to or replay to the original topic".into())
        );
        assert_eq!(main_topic_of("a.b-dlt"), Some("a.b"));
        assert_eq!(main_topic_of("a.b.DLT"), Some("a.b"));
        assert_eq!(main_topic_of("a.b-dlq"), Some("a.b"));
        assert_eq!(main_topic_of("a.b"), None);
        assert_eq!(main_topic_of("-dlt"), None);
    }

    #[test]
    fn filters_select_by_exception_header_key_and_time() {
        let record = spring_dlt();
        let letter = DeadLetter::decode(&record);
        let pass = |f: Filter| f.matches(&record, &letter);
        assert!(pass(Filter::default()));
        assert!(pass(Filter {
            exception: Some("sockettimeout".into()),
            ..Filter::default()
        }));
        assert!(!pass(Filter {
            exception: Some("NullPointer".into()),
            ..Filter::default()
        }));
        assert!(pass(Filter {
            headers: vec![("x-correlation-id".into(), "corr-7".into())],
            ..Filter::default()
        }));
        assert!(pass(Filter {
            headers: vec![(headers::ORIGINAL_PARTITION.into(), "2".into())],
            ..Filter::default()
        }));
        assert!(!pass(Filter {
            partitions: vec![0],
            ..Filter::default()
        }));
        assert!(pass(Filter {
            offsets: Some((40, 42)),
            ..Filter::default()
        }));
        assert!(!pass(Filter {
            since_ms: Some(1_764_410_400_001),
            ..Filter::default()
        }));
        assert!(!pass(Filter {
            key: Some("k".into()),
            ..Filter::default()
        }));
    }

    #[test]
    fn a_header_filter_matches_only_the_last_value_of_a_repeated_header() {
        // retry_topic-attempts is 2, then 3: the record is on attempt 3.
        let record = spring_dlt();
        let attempts = |value: &str| Filter {
            headers: vec![(headers::RETRY_ATTEMPTS.into(), value.into())],
            ..Filter::default()
        };
        // Decoded as the readers decode before filtering.
        let letter = DeadLetter::decode_for(&record, &attempts("3"));
        assert!(attempts("3").matches(&record, &letter));
        assert!(!attempts("2").matches(&record, &letter));
        // Text compares byte for byte, also only with the last value.
        let text = raw(
            vec![("x-tenant", b"old".to_vec()), ("x-tenant", b"new".to_vec())],
            b"{}",
        );
        let letter = DeadLetter::decode(&text);
        let tenant = |value: &str| Filter {
            headers: vec![("x-tenant".into(), value.into())],
            ..Filter::default()
        };
        assert!(tenant("new").matches(&text, &letter));
        assert!(!tenant("old").matches(&text, &letter));
    }

    #[test]
    fn times_show_three_millisecond_digits() {
        let mut record = spring_dlt();
        record.timestamp_ms = Some(1_764_410_450_010);
        let letter = DeadLetter::decode(&record);
        assert_eq!(
            letter.timestamp.as_deref(),
            Some("2025-11-29T10:00:50.010Z")
        );
        assert_eq!(
            letter.original.timestamp.as_deref(),
            Some("2025-11-29T10:00:00.000Z")
        );
    }

    #[test]
    fn the_root_cause_comes_from_the_cause_header_else_the_stack_trace_or_message() {
        let wrapper = "org.springframework.kafka.listener.ListenerExecutionFailedException";
        let root = |extra: Vec<(&str, Vec<u8>)>| {
            let mut h = vec![(headers::EXCEPTION_FQCN, wrapper.as_bytes().to_vec())];
            h.extend(extra);
            DeadLetter::decode(&raw(h, b"{}")).exception.root_cause
        };
        let trace = format!(
            "{wrapper}: Listener failed\n\tat a.B.c(B.java:1)\n\
             Caused by: com.example.OrderRejected: order 7\n\tat a.B.d(B.java:2)\n\
             \tSuppressed: java.io.IOException: close\n\
             \t\tCaused by: java.io.EOFException\n\
             Caused by: java.lang.IllegalStateException: balance below zero\n\tat a.B.e(B.java:3)\n"
        );
        assert_eq!(
            root(vec![(
                headers::EXCEPTION_CAUSE_FQCN,
                b"java.net.SocketTimeoutException".to_vec()
            )]),
            Some("java.net.SocketTimeoutException".into()),
            "the header wins"
        );
        assert_eq!(
            root(vec![(headers::EXCEPTION_STACKTRACE, trace.into_bytes())]),
            Some("java.lang.IllegalStateException".into()),
            "the deepest unindented Caused by"
        );
        assert_eq!(
            root(vec![(
                headers::EXCEPTION_MESSAGE,
                b"Listener method threw exception; nested exception is java.lang.ArithmeticException: / by zero".to_vec()
            )]),
            Some("java.lang.ArithmeticException".into())
        );
        assert_eq!(
            root(vec![(
                headers::EXCEPTION_MESSAGE,
                b"Listener failed".to_vec()
            )]),
            Some(wrapper.into()),
            "nothing deeper is named: the class itself"
        );
        assert_eq!(
            DeadLetter::decode(&raw(vec![], b"{}")).exception.root_cause,
            None
        );
    }

    #[test]
    fn headers_display_text_as_text_numbers_as_numbers_and_bytes_as_base64() {
        let letter = DeadLetter::decode(&raw(
            vec![
                (headers::CORRELATION_ID, b"corr-7".to_vec()),
                (headers::ORIGINAL_PARTITION, vec![0, 0, 0, 2]),
                ("x-binary", vec![0xff, 0x00, 0x01]),
            ],
            b"{}",
        ));
        let shown: Vec<String> = letter.headers.iter().map(HeaderView::display).collect();
        assert_eq!(shown, ["corr-7", "2", "base64:/wAB"]);
    }

    #[test]
    fn the_origin_names_its_timestamp_type_and_consumer_group_from_one_recoverer() {
        let mut record = spring_dlt();
        record.headers.push((
            headers::ORIGINAL_CONSUMER_GROUP.into(),
            b"order-processing-group".to_vec(),
        ));
        // A stray plain-recoverer group must not be mixed into this origin.
        record.headers.push((
            headers::DLT_ORIGINAL_CONSUMER_GROUP.into(),
            b"other-group".to_vec(),
        ));
        let origin = DeadLetter::decode(&record).original;
        assert_eq!(origin.timestamp_type.as_deref(), Some("CreateTime"));
        assert_eq!(
            origin.consumer_group.as_deref(),
            Some("order-processing-group")
        );

        let plain = DeadLetter::decode(&raw(
            vec![
                (headers::DLT_ORIGINAL_TOPIC, b"smm.order.refund".to_vec()),
                (
                    headers::DLT_ORIGINAL_TIMESTAMP_TYPE,
                    b"LogAppendTime".to_vec(),
                ),
                (
                    headers::DLT_ORIGINAL_CONSUMER_GROUP,
                    b"refund-group".to_vec(),
                ),
            ],
            b"{}",
        ));
        assert_eq!(
            plain.original.timestamp_type.as_deref(),
            Some("LogAppendTime")
        );
        assert_eq!(
            plain.original.consumer_group.as_deref(),
            Some("refund-group")
        );

        let broken = DeadLetter::decode(&raw(
            vec![(headers::ORIGINAL_CONSUMER_GROUP, vec![0xff])],
            b"{}",
        ));
        assert_eq!(broken.original.consumer_group, None);
        assert!(
            broken.header_errors[0].starts_with("kafka_original-consumer-group:"),
            "{:?}",
            broken.header_errors
        );
    }

    #[test]
    fn archives_round_trip_bytes_that_are_not_text() {
        let record = spring_dlt();
        let line = serde_json::to_string(&Archived::of(&record)).unwrap();
        let back: Archived = serde_json::from_str(&line).unwrap();
        let raw = back.to_raw().unwrap();
        assert_eq!(raw.key, record.key);
        assert_eq!(raw.value, record.value);
        assert_eq!(raw.headers, record.headers);
        assert!(line.contains("\"base64\":\"/2s=\""), "{line}");
    }

    #[test]
    fn replays_to_the_main_topic_drop_spring_retry_state_so_the_ladder_starts_over() {
        let now = Timestamp::from_millisecond(1_800_000_000_000).unwrap();
        let mut letter = spring_dlt();
        letter.headers.push((
            headers::RETRY_ORIGINAL_TIMESTAMP.to_owned(),
            headers::encode_big_integer(1_764_410_000_000),
        ));
        let out = replay_headers(&letter, false, now);
        assert!(
            !out.iter().any(|(k, _)| k.starts_with("retry_topic-")),
            "{out:?}"
        );
        let kept: Vec<_> = letter
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("retry_topic-"))
            .cloned()
            .collect();
        assert_eq!(
            out[..kept.len()],
            kept[..],
            "the origin, exception and other headers are kept as they were"
        );
        let meta = RetryMetadata::read(&out).unwrap();
        assert_eq!(meta.attempts, None);
        assert_eq!(meta.due_at_ms, None);
        assert_eq!(meta.replay_count, 1);
        assert_eq!(meta.original_partition, Some(2));
    }

    #[test]
    fn replays_to_a_retry_topic_start_a_fresh_first_retry() {
        let now = Timestamp::from_millisecond(1_800_000_000_000).unwrap();
        let out = replay_headers(&spring_dlt(), true, now);
        let meta = RetryMetadata::read(&out).unwrap();
        assert_eq!(meta.attempts, Some(2));
        assert_eq!(
            out.iter()
                .filter(|(k, _)| k == headers::RETRY_ATTEMPTS)
                .count(),
            1,
            "the old attempts are gone"
        );
        assert_eq!(meta.due_at_ms, Some(1_800_000_000_000));
        assert_eq!(meta.replay_count, 1);
        assert_eq!(
            meta.original_topic.as_deref(),
            Some("smm.order.processing"),
            "origin kept"
        );
    }
}
