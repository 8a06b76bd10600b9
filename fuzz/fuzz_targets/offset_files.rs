//! Any file handed to `offsets reset --from-file` or `records delete
//! --from-file`: a plan or a message naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smmctl::input::{parse_delete_file, parse_offsets_csv, parse_topic_spec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rows) = parse_offsets_csv(text, "g") {
        assert!(rows.iter().all(|r| r.partition >= 0 && r.offset.is_none_or(|o| o >= 0)));
    }
    if let Ok(rows) = parse_delete_file(text) {
        assert!(rows.iter().all(|r| r.partition >= 0 && r.before.is_none_or(|o| o >= 0)));
    }
    let _ = parse_topic_spec(text);
});
