//! JWKS documents (RFC 7517 §5), static or fetched. Input: the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(count) = certbound::fuzzing::jwks_key_count(data) else {
        return;
    };
    let doc: Value = serde_json::from_slice(data).expect("an accepted JWKS is JSON");
    let entries = doc["keys"].as_array().expect("with a keys array").len();
    assert!(count >= 1, "an accepted key set is never empty");
    assert!(count <= entries, "{count} keys from {entries} entries");
});
