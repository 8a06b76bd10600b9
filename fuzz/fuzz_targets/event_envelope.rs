//! Any bytes on a topic: decoding returns an envelope or a typed error, and
//! what decodes re-encodes to something that decodes to the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smm_workers::contract::events::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        let again = Envelope::decode(&envelope.to_json()).expect("a decoded envelope re-encodes to a valid one");
        assert_eq!(again, envelope);
    }
});
