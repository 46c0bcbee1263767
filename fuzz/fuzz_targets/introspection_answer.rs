//! RFC 7662 §2.2 introspection answers, for a fixed issuer and audience. Input: the body.
#![no_main]

use certbound_fuzz::{AUDIENCE, ISSUER};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = certbound::fuzzing::introspection_answer(data, ISSUER, AUDIENCE) else {
        return;
    };
    let answer: Value = serde_json::from_slice(data).expect("an accepted answer is JSON");
    assert_eq!(answer["active"], Value::Bool(true));
    assert_eq!(answer["iss"].as_str(), Some(ISSUER));
    let aud = &answer["aud"];
    assert!(
        aud.as_str() == Some(AUDIENCE)
            || aud
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(AUDIENCE))),
        "accepted for another audience"
    );
    assert_eq!(token.claim("active"), Some(&Value::Bool(true)));
});
