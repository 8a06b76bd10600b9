//! The Cryptomus webhook path: any body, any key, through the structural
//! check, the signature check and the confirmation mapping. Nothing may
//! panic, and a body that verifies must verify again after re-signing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smm_workers::providers::cryptomus;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key, body) = text.split_once('\n').unwrap_or(("key", text));
    let _ = cryptomus::parse(body);
    if let Ok(webhook) = cryptomus::verify(body, key) {
        let _ = webhook.confirmation(jiff::Timestamp::UNIX_EPOCH);
    }
    let _ = cryptomus::minor_units(body);
    // A body signed here must verify: the signing and checking sides agree
    // on every input the parser accepts.
    if let Ok(mut fields) = cryptomus::parse(body) {
        fields.shift_remove("sign");
        let unsigned = serde_json::Value::Object(fields.clone());
        let sign = cryptomus::sign(&cryptomus::php_json(&unsigned), key);
        let mut signed = serde_json::Map::new();
        signed.insert("sign".into(), serde_json::Value::String(sign));
        signed.extend(fields);
        let signed = serde_json::Value::Object(signed).to_string();
        let verdict = cryptomus::verify(&signed, key);
        assert!(
            !matches!(verdict, Err(cryptomus::WebhookError::BadSignature)),
            "a freshly signed body failed its signature: {signed}"
        );
    }
});
