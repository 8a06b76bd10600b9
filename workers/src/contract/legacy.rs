//! The deprecated `video.processing.queue`: what its records become when
//! `smmctl run video --migrate-legacy` moves them to `smm.video.processing`.
//!
//! Its producers wrote either the panel's envelope or a bare video message,
//! in snake_case or in the Java services' camelCase. A bare message is
//! wrapped in an envelope whose event id derives from its place in the
//! legacy queue, so even a copy made twice is one event to the video worker.
//! A record that is neither is dead-lettered to the legacy DLQ with the
//! reason, never dropped and never guessed.

use serde::Deserialize;

use crate::contract::catalog;
use crate::contract::dead_letter::RawRecord;
use crate::contract::events::{
    Envelope, Event, VideoClip, VideoProcessingMessage, deterministic_event_id,
};
use crate::contract::headers::{self, Headers};

/// Where the migration sends the legacy queue's dead letters.
pub const LEGACY_DEAD_LETTER: &str = "video.processing.queue.dlq";

/// Header naming the legacy record a migrated one came from.
pub const MIGRATED_FROM: &str = "x-smm-migrated-from";

/// One legacy record, converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub topic: &'static str,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
    /// Why it went to the dead letter; `None` when it moved.
    pub refused: Option<String>,
}

#[derive(Deserialize)]
struct BareMessage {
    #[serde(alias = "orderId")]
    order_id: i64,
    #[serde(alias = "youtubeVideoId", alias = "videoId")]
    youtube_video_id: String,
    #[serde(alias = "videoUrl")]
    video_url: String,
    #[serde(alias = "targetViews", alias = "quantity")]
    target_views: i64,
    #[serde(default, alias = "startCount")]
    start_count: Option<i64>,
    #[serde(default)]
    clip: Option<VideoClip>,
}

fn correlation_of(record: &RawRecord) -> String {
    record
        .headers
        .iter()
        .rev()
        .find(|(k, _)| k == headers::CORRELATION_ID)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .filter(|v| !v.trim().is_empty())
        .map_or_else(
            || format!("legacy-{}-{}", record.partition, record.offset),
            str::to_owned,
        )
}

pub fn migrate(record: &RawRecord) -> Migrated {
    let origin = format!("{}/{}@{}", record.topic, record.partition, record.offset);
    let mut headers: Headers = record
        .headers
        .iter()
        .filter(|(k, _)| k != MIGRATED_FROM)
        .cloned()
        .collect();
    headers.push((MIGRATED_FROM.to_owned(), origin.into_bytes()));
    let value = record.value.as_deref().unwrap_or_default();

    let refusal = match Envelope::decode(value) {
        Ok(envelope) if matches!(envelope.event, Event::VideoProcessingMessage(_)) => {
            return moved(record, headers, value.to_vec());
        }
        Ok(envelope) => format!(
            "an envelope of {}, not a VideoProcessingMessage",
            envelope.event_type()
        ),
        Err(envelope_error) => match serde_json::from_slice::<BareMessage>(value) {
            Ok(bare) => {
                let message = VideoProcessingMessage {
                    order_id: bare.order_id,
                    youtube_video_id: bare.youtube_video_id,
                    video_url: bare.video_url,
                    target_views: bare.target_views,
                    start_count: bare.start_count,
                    clip: bare.clip,
                };
                match message.validate() {
                    Ok(()) => {
                        let correlation_id = correlation_of(record);
                        if !headers.iter().any(|(k, _)| k == headers::CORRELATION_ID) {
                            headers.push((
                                headers::CORRELATION_ID.to_owned(),
                                correlation_id.clone().into_bytes(),
                            ));
                        }
                        let id = deterministic_event_id(
                            "legacy-video-processing",
                            &format!("{}:{}", record.partition, record.offset),
                        );
                        let envelope =
                            Envelope::new(Event::from(message), correlation_id).with_event_id(id);
                        return moved(record, headers, envelope.to_json());
                    }
                    Err(invalid) => format!("a video message that fails validation: {invalid}"),
                }
            }
            Err(_) => format!("neither an envelope ({envelope_error}) nor a bare video message"),
        },
    };
    let source = headers::FailedRecord {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms.unwrap_or(0),
        timestamp_type: headers::CREATE_TIME,
    };
    let message = format!("not migrated: {refusal}");
    let failure = headers::Exception {
        fqcn: "smmctl.legacy.Unconvertible",
        cause_fqcn: None,
        message: &message,
        stacktrace: None,
    };
    Migrated {
        topic: LEGACY_DEAD_LETTER,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: headers::forward(&headers, &source, &failure, 1, None),
        refused: Some(refusal),
    }
}

fn moved(record: &RawRecord, headers: Headers, value: Vec<u8>) -> Migrated {
    Migrated {
        topic: catalog::VIDEO_PROCESSING,
        key: record.key.clone(),
        value: Some(value),
        headers,
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> RawRecord {
        RawRecord {
            topic: catalog::LEGACY_VIDEO_QUEUE.into(),
            partition: 1,
            offset: 42,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(b"77".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        }
    }

    #[test]
    fn a_bare_camel_case_message_is_wrapped_with_an_id_from_its_position() {
        let legacy = record(
            r#"{"orderId":77,"videoId":"dQw4w9WgXcQ","videoUrl":"https://youtu.be/dQw4w9WgXcQ","targetViews":500}"#,
        );
        let first = migrate(&legacy);
        assert_eq!(first.topic, catalog::VIDEO_PROCESSING);
        assert_eq!(first.refused, None);
        let envelope = Envelope::decode(first.value.as_deref().unwrap()).unwrap();
        let Event::VideoProcessingMessage(m) = &envelope.event else {
            panic!("{envelope:?}")
        };
        assert_eq!((m.order_id, m.target_views), (77, 500));
        assert_eq!(envelope.correlation_id, "legacy-1-42");
        // Converting the same record again gives the same event.
        let again = Envelope::decode(migrate(&legacy).value.as_deref().unwrap()).unwrap();
        assert_eq!(again.event_id, envelope.event_id);
        assert!(
            first
                .headers
                .iter()
                .any(|(k, v)| k == MIGRATED_FROM && v == b"video.processing.queue/1@42")
        );
    }

    #[test]
    fn an_envelope_moves_unchanged_and_garbage_is_dead_lettered_with_the_reason() {
        let message = VideoProcessingMessage {
            order_id: 5,
            youtube_video_id: "dQw4w9WgXcQ".into(),
            video_url: "https://youtu.be/dQw4w9WgXcQ".into(),
            target_views: 10,
            start_count: None,
            clip: None,
        };
        let json = Envelope::new(Event::from(message), "c-1").to_json();
        let moved = migrate(&record(std::str::from_utf8(&json).unwrap()));
        assert_eq!(moved.value.as_deref(), Some(json.as_slice()));

        let refused = migrate(&record("not json"));
        assert_eq!(refused.topic, LEGACY_DEAD_LETTER);
        assert!(refused.refused.is_some());
        assert!(
            refused
                .headers
                .iter()
                .any(|(k, v)| k == headers::EXCEPTION_MESSAGE
                    && String::from_utf8_lossy(v).contains("not migrated"))
        );
    }
}
