//! The claims the JWT validator reads in one serde pass over a payload's JSON, against the map
//! of every claim (what `AccessToken::claims` decodes later, and what certbound read before):
//! the same verdict and the same values. Input: the claims JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(disagreement) = certbound::fuzzing::jwt_fields(json) {
        panic!("{disagreement}");
    }
});
