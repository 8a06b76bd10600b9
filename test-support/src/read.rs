//! Records read back from a topic, from its start, by a reader of their own.

use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{BorrowedMessage, Headers as _};

use crate::kafka::client_config;
use crate::unique;

/// A record read back, with its headers in order.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
    pub partition: i32,
    pub offset: i64,
}

impl Read {
    pub fn of(m: &BorrowedMessage<'_>) -> Read {
        Read {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_owned(), x.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            partition: m.partition(),
            offset: m.offset(),
        }
    }

    /// The last header called `name`, as Kafka clients read one.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Every header called `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// A consumer of `topic` from its start, in a group of its own that
/// commits nothing.
fn reader(topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Every record of `topic` whose value or headers contain `needle`, read
/// from the start until the topic is quiet for a second or `within` ends.
pub fn read_containing(topic: &str, needle: &str, within: Duration) -> Vec<Read> {
    let consumer = reader(topic);
    let deadline = Instant::now() + within;
    let mut last = Instant::now();
    let mut seen_any = false;
    let mut out = Vec::new();
    while Instant::now() < deadline && !(seen_any && last.elapsed() > Duration::from_secs(1)) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        seen_any = true;
        last = Instant::now();
        let read = Read::of(&m);
        let contains = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(needle);
        if read.value.as_deref().is_some_and(contains)
            || read.headers.iter().any(|(_, v)| contains(v))
        {
            out.push(read);
        }
    }
    out
}

/// Reads `topic` from the start until `want` records arrived or `within`
/// passed; returns what it read.
pub fn read(topic: &str, want: usize, within: Duration) -> Vec<Read> {
    read_matching(topic, want, within, |_| true)
}

/// Reads `topic` from the start until `want` records that match `keep`
/// arrived or `within` passed; the catalog's topics hold other tests'
/// records too.
pub fn read_matching(
    topic: &str,
    want: usize,
    within: Duration,
    keep: impl Fn(&Read) -> bool,
) -> Vec<Read> {
    let consumer = reader(topic);
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let read = Read::of(&m);
            if keep(&read) {
                out.push(read);
            }
        }
    }
    out
}
