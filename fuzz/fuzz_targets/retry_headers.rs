//! Any header values, as a Java service or a hostile producer may write
//! them: reading never panics, and the binary decoders agree with the
//! encoders on everything they accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smm_workers::contract::headers::{self, Headers, RetryMetadata};

fuzz_target!(|data: &[u8]| {
    let _ = headers::decode_i32(data);
    let _ = headers::decode_i64(data);
    if let Ok(v) = headers::decode_big_integer(data) {
        assert_eq!(headers::decode_big_integer(&headers::encode_big_integer(v)), Ok(v));
    }
    // Split the input into a few headers under the names readers look at.
    let names = [
        headers::ORIGINAL_TOPIC,
        headers::ORIGINAL_PARTITION,
        headers::ORIGINAL_OFFSET,
        headers::ORIGINAL_TIMESTAMP,
        headers::RETRY_ATTEMPTS,
        headers::RETRY_BACKOFF_TIMESTAMP,
        headers::EXCEPTION_MESSAGE,
        headers::REPLAY_COUNT,
    ];
    let list: Headers = data
        .chunks(7)
        .zip(names.iter().cycle())
        .map(|(value, name)| (name.to_string(), value.to_vec()))
        .collect();
    let _ = RetryMetadata::read(&list);
});
