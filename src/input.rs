//! What operators type and the files they hand over: durations, points in
//! time, topic and partition specs, offset CSVs and Kafka's delete-records
//! JSON.
//!
//! Every parser returns a message that says what was expected, with the
//! line for files, so a typo costs one re-run and changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};

/// Durations in the forms people and ISO 8601 use: `90s`, `2h30m`, `7d`,
/// `1w`, `1 day`, `PT15M`, `P1DT2H`, for `--by-duration`, `--older-than`
/// and `--since`. See [`parse_duration_as`] for the grammar.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    parse_duration_as(text, "90s, 2h30m, 7d or P1DT2H")
}

/// Waits and intervals (`--timeout`, `--watch`, the profile's `timeout`):
/// the same grammar as [`parse_span`], with examples of the short waits
/// these flags usually take.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_as(text, "10s, 500ms or 1m30s")
}

/// The one duration grammar: `10s`, `500ms`, `1h30m`, `7d`, `1w`, `1 day`,
/// `PT15M`, `P1DT2H`. A day is 24 hours; months and years are refused,
/// since their length depends on the calendar. Zero and negative
/// durations are refused too. `examples` ends the message for text that is
/// no duration at all, so each flag suggests values that suit it.
fn parse_duration_as(text: &str, examples: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let signed: SignedDuration = match trimmed.parse::<SignedDuration>() {
        Ok(d) => d,
        Err(_) => {
            let span: Span = trimmed
                .parse()
                .map_err(|_| format!("`{text}` is not a duration; write it like {examples}"))?;
            span.to_duration(SpanRelativeTo::days_are_24_hours())
                .map_err(|_| {
                    format!("`{text}` uses months or years, whose length varies; use days or weeks")
                })?
        }
    };
    if signed.is_negative() || signed.is_zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Duration::try_from(signed).map_err(|_| format!("`{text}` is out of range"))
}

/// Points in time: RFC 3339 (`2026-11-29T10:00:00Z`, `…+02:00`), a date and
/// time without a zone (read as UTC: `2026-11-29 10:00`, `2026-11-29T10:00:00`),
/// a date alone (midnight UTC), or `@` and milliseconds since the epoch.
///
/// Kafka's timestamps start in 1970, and a time in the future finds no
/// record anywhere, which would move a group to the log end or delete every
/// record: both are refused as the typos they almost always are.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let at = parse_any_time(text)?;
    check_time(at).map_err(|why| format!("`{text}` {why}"))
}

/// The range a record timestamp can have: from 1970 to a minute from now
/// (clocks drift).
pub fn check_time(at: Timestamp) -> Result<Timestamp, String> {
    if at < Timestamp::UNIX_EPOCH {
        return Err("is before 1970, where Kafka's timestamps begin".into());
    }
    let soon = Timestamp::now()
        .checked_add(SignedDuration::from_secs(60))
        .unwrap_or(Timestamp::MAX);
    if at > soon {
        return Err("is in the future: no record is that recent".into());
    }
    Ok(at)
}

/// Now minus `span`, for `--by-duration` and `--older-than`, held to the
/// same range as [`parse_time`].
pub fn time_ago(span: Duration, flag: &str) -> Result<Timestamp, String> {
    let back = SignedDuration::try_from(span).map_err(|_| format!("{flag} is out of range"))?;
    let at = Timestamp::now()
        .checked_sub(back)
        .map_err(|_| format!("{flag} reaches too far back"))?;
    check_time(at).map_err(|why| format!("{flag} reaches a time that {why}"))
}

/// A point in time, or a duration back from now (`7d`, `2h`): `--since`
/// reads naturally either way.
pub fn parse_since(text: &str) -> Result<Timestamp, String> {
    match parse_span(text) {
        Ok(span) => time_ago(span, "--since"),
        Err(_) => parse_time(text),
    }
}

fn parse_any_time(text: &str) -> Result<Timestamp, String> {
    let t = text.trim();
    let wrong = || {
        format!(
            "`{text}` is not a point in time; write it like 2026-11-29T10:00:00Z, \
             2026-11-29 10:00 (UTC), 2026-11-29, or @1764410400000 (ms since the epoch)"
        )
    };
    if let Some(ms) = t.strip_prefix('@') {
        let ms: i64 = ms.parse().map_err(|_| wrong())?;
        return Timestamp::from_millisecond(ms).map_err(|_| wrong());
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = t.replacen(' ', "T", 1).parse::<DateTime>() {
        return dt
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| wrong());
    }
    if let Ok(date) = t.parse::<Date>() {
        return date
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| wrong());
    }
    Err(wrong())
}

/// `TOPIC` or `TOPIC:P,P,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    /// Empty means every partition.
    pub partitions: Vec<i32>,
}

pub fn parse_topic_spec(text: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, None),
        Some((topic, list)) => (topic, Some(list)),
    };
    let topic = topic.trim();
    if topic.is_empty() {
        return Err(format!(
            "`{text}` names no topic; write TOPIC or TOPIC:0,1,2"
        ));
    }
    let mut out = BTreeSet::new();
    if let Some(list) = partitions {
        for part in list.split(',') {
            let p = parse_partition(part.trim())
                .map_err(|why| format!("`{text}`: {why}; write TOPIC or TOPIC:0,1,2"))?;
            out.insert(p);
        }
    }
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions: out.into_iter().collect(),
    })
}

fn parse_partition(text: &str) -> Result<i32, String> {
    match text.parse::<i32>() {
        Ok(p) if p >= 0 => Ok(p),
        Ok(p) => Err(format!("partition {p} is negative")),
        Err(_) => Err(format!("partition `{text}` is not a number")),
    }
}

/// An offset in a file. `None` records that the group had no committed
/// offset there (written `-`), which is how undo files say "delete the
/// commit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRow {
    pub line: usize,
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// Reads an offsets CSV: `topic,partition,offset`, or Kafka's
/// `group,topic,partition,offset` whose group must be `group`. Blank lines,
/// `#` comments and a header line are skipped.
pub fn parse_offsets_csv(text: &str, group: &str) -> Result<Vec<OffsetRow>, String> {
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
        if lower == ["topic", "partition", "offset"]
            || lower == ["group", "topic", "partition", "offset"]
        {
            continue;
        }
        let (topic, partition, offset) = match fields.as_slice() {
            [topic, partition, offset] => (*topic, *partition, *offset),
            [file_group, topic, partition, offset] => {
                if *file_group != group {
                    return Err(format!(
                        "line {line}: the row is for group `{file_group}`, not `{group}`"
                    ));
                }
                (*topic, *partition, *offset)
            }
            _ => {
                return Err(format!(
                    "line {line}: expected topic,partition,offset (or group,topic,partition,offset), found {} field(s)",
                    fields.len()
                ));
            }
        };
        if topic.is_empty() {
            return Err(format!("line {line}: the topic is empty"));
        }
        let partition = parse_partition(partition).map_err(|why| format!("line {line}: {why}"))?;
        let offset = match offset {
            "-" => None,
            text => match text.parse::<i64>() {
                Ok(o) if o >= 0 => Some(o),
                Ok(o) => return Err(format!("line {line}: offset {o} is negative")),
                Err(_) => return Err(format!("line {line}: offset `{text}` is not a number")),
            },
        };
        if !seen.insert((topic.to_string(), partition)) {
            return Err(format!("line {line}: {topic}/{partition} appears twice"));
        }
        rows.push(OffsetRow {
            line,
            topic: topic.to_string(),
            partition,
            offset,
        });
    }
    if rows.is_empty() {
        return Err("the file has no rows; expected topic,partition,offset lines".into());
    }
    Ok(rows)
}

/// One partition of a delete-records request: delete everything before
/// `before`, or up to the high watermark when `None` (Kafka's -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRow {
    pub topic: String,
    pub partition: i32,
    pub before: Option<i64>,
    /// Where in the file the row came from (`line 3`, `partitions[1]`), for
    /// errors; empty for rows built from flags.
    pub at: String,
}

/// Kafka's `kafka-delete-records` JSON,
/// `{"partitions":[{"topic":…,"partition":…,"offset":…}],"version":1}`, or
/// a `topic,partition,offset` CSV (`-1` or `end` for the high watermark).
pub fn parse_delete_file(text: &str) -> Result<Vec<DeleteRow>, String> {
    if text.trim_start().starts_with('{') {
        return parse_delete_json(text);
    }
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.eq_ignore_ascii_case("topic,partition,offset")
        {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let [topic, partition, offset] = fields.as_slice() else {
            return Err(format!(
                "line {line}: expected topic,partition,offset, found {} field(s)",
                fields.len()
            ));
        };
        let partition = parse_partition(partition).map_err(|why| format!("line {line}: {why}"))?;
        let before = parse_delete_offset(offset).map_err(|why| format!("line {line}: {why}"))?;
        if !seen.insert((topic.to_string(), partition)) {
            return Err(format!("line {line}: {topic}/{partition} appears twice"));
        }
        rows.push(DeleteRow {
            topic: topic.to_string(),
            partition,
            before,
            at: format!("line {line}"),
        });
    }
    if rows.is_empty() {
        return Err("the file has no rows".into());
    }
    Ok(rows)
}

fn parse_delete_offset(text: &str) -> Result<Option<i64>, String> {
    match text {
        "-1" | "end" => Ok(None),
        other => match other.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(Some(o)),
            Ok(o) => Err(format!(
                "offset {o} is negative (only -1, the high watermark, is allowed)"
            )),
            Err(_) => Err(format!("offset `{other}` is not a number")),
        },
    }
}

fn parse_delete_json(text: &str) -> Result<Vec<DeleteRow>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        partitions: Vec<Entry>,
        version: Option<i64>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        topic: String,
        partition: i32,
        offset: i64,
    }
    let file: File =
        serde_json::from_str(text).map_err(|e| format!("invalid delete-records JSON: {e}"))?;
    if let Some(v) = file.version
        && v != 1
    {
        return Err(format!(
            "unsupported delete-records JSON version {v}; only version 1 exists"
        ));
    }
    if file.partitions.is_empty() {
        return Err("the JSON lists no partitions".into());
    }
    let mut seen = BTreeSet::new();
    file.partitions
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("partitions[{i}] ({}/{})", e.topic, e.partition);
            if e.partition < 0 {
                return Err(format!("{at}: partition is negative"));
            }
            if !seen.insert((e.topic.clone(), e.partition)) {
                return Err(format!("{at}: appears twice"));
            }
            let before =
                parse_delete_offset(&e.offset.to_string()).map_err(|why| format!("{at}: {why}"))?;
            Ok(DeleteRow {
                topic: e.topic,
                partition: e.partition,
                before,
                at: format!("partitions[{i}]"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_in_human_and_iso_forms() {
        let ok = [
            ("90s", 90),
            ("2h30m", 9000),
            ("2h 30m", 9000),
            ("7d", 7 * 86400),
            ("1 day", 86400),
            ("1w", 7 * 86400),
            ("PT15M", 900),
            ("P1DT2H", 93600),
            ("1h30m15s", 5415),
        ];
        for (text, secs) in ok {
            assert_eq!(parse_span(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        let bad = [
            ("", "not a duration"),
            ("soon", "not a duration"),
            ("-5m", "longer than zero"),
            ("0s", "longer than zero"),
            ("1mo", "months or years"),
            ("P1Y", "months or years"),
        ];
        for (text, needle) in bad {
            let err = parse_span(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn times_with_and_without_zones() {
        let at = |s: &str| parse_time(s).map(|t| t.to_string());
        assert_eq!(at("2026-11-29T10:00:00Z").unwrap(), "2026-11-29T10:00:00Z");
        assert_eq!(
            at("2026-11-29T12:00:00+02:00").unwrap(),
            "2026-11-29T10:00:00Z"
        );
        assert_eq!(at("2026-11-29 10:00").unwrap(), "2026-11-29T10:00:00Z");
        assert_eq!(
            at("2026-11-29T10:00:00.250").unwrap(),
            "2026-11-29T10:00:00.25Z"
        );
        assert_eq!(at("2026-11-29").unwrap(), "2026-11-29T00:00:00Z");
        assert_eq!(at("@1764410400000").unwrap(), "2025-11-29T10:00:00Z");
        for bad in [
            "yesterday",
            "2026-13-01",
            "29/11/2026",
            "@abc",
            "2026-11-29T25:00",
        ] {
            assert!(
                parse_time(bad).unwrap_err().contains("not a point in time"),
                "{bad}"
            );
        }
    }

    #[test]
    fn topic_specs() {
        assert_eq!(
            parse_topic_spec("smm.order.refund"),
            Ok(TopicSpec {
                topic: "smm.order.refund".into(),
                partitions: vec![]
            })
        );
        assert_eq!(parse_topic_spec("t:2,0,2").unwrap().partitions, vec![0, 2]);
        for (bad, needle) in [
            (":1", "names no topic"),
            ("t:", "not a number"),
            ("t:a", "not a number"),
            ("t:-1", "negative"),
        ] {
            let err = parse_topic_spec(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn offset_csvs_in_both_forms() {
        let rows =
            parse_offsets_csv("# undo\ntopic,partition,offset\nt,0,5\n\nt,1,-\n", "g").unwrap();
        assert_eq!(
            rows,
            vec![
                OffsetRow {
                    line: 3,
                    topic: "t".into(),
                    partition: 0,
                    offset: Some(5)
                },
                OffsetRow {
                    line: 5,
                    topic: "t".into(),
                    partition: 1,
                    offset: None
                },
            ]
        );
        let rows = parse_offsets_csv("g,t,2,7\n", "g").unwrap();
        assert_eq!((rows[0].partition, rows[0].offset), (2, Some(7)));
    }

    #[test]
    fn malformed_offset_csvs_name_the_line() {
        let cases = [
            ("t,0\n", "line 1: expected topic,partition,offset"),
            ("t,0,1\nt,x,1\n", "line 2: partition `x` is not a number"),
            ("t,0,-3\n", "line 1: offset -3 is negative"),
            ("t,0,abc\n", "line 1: offset `abc` is not a number"),
            ("other,t,0,1\n", "line 1: the row is for group `other`"),
            ("t,0,1\nt,0,2\n", "line 2: t/0 appears twice"),
            (",0,1\n", "line 1: the topic is empty"),
            ("# nothing\n", "no rows"),
        ];
        for (text, needle) in cases {
            let err = parse_offsets_csv(text, "g").unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn kafka_delete_records_json_and_csv() {
        let json = r#"{"partitions":[{"topic":"t","partition":0,"offset":5},{"topic":"t","partition":1,"offset":-1}],"version":1}"#;
        assert_eq!(
            parse_delete_file(json).unwrap(),
            vec![
                DeleteRow {
                    topic: "t".into(),
                    partition: 0,
                    before: Some(5),
                    at: "partitions[0]".into(),
                },
                DeleteRow {
                    topic: "t".into(),
                    partition: 1,
                    before: None,
                    at: "partitions[1]".into(),
                },
            ]
        );
        assert_eq!(parse_delete_file("t,3,end\n").unwrap()[0].before, None);
        let cases = [
            (
                r#"{"partitions":[{"topic":"t","partition":0,"offset":-2}],"version":1}"#,
                "negative",
            ),
            (r#"{"partitions":[],"version":1}"#, "no partitions"),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"offset":1}],"version":2}"#,
                "version 2",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":0}],"version":1}"#,
                "missing field `offset`",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"offset":1},{"topic":"t","partition":0,"offset":2}]}"#,
                "appears twice",
            ),
            ("{not json", "invalid delete-records JSON"),
            ("t,0\n", "line 1: expected topic,partition,offset"),
            ("t,0,-5\n", "line 1: offset -5 is negative"),
        ];
        for (text, needle) in cases {
            let err = parse_delete_file(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
