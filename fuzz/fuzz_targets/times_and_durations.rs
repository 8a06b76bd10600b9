//! Anything typed after --to-datetime, --by-duration or --older-than: a
//! value in range or a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smmctl::input::{parse_span, parse_time};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(span) = parse_span(text) {
        assert!(!span.is_zero());
    }
    if let Ok(at) = parse_time(text) {
        assert!(at >= jiff::Timestamp::UNIX_EPOCH);
    }
});
