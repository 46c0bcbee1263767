//! RFC 9449 §4.3 proof checks with a fixed request and clock. Input: the `DPoP` header value.
#![no_main]

use certbound::fuzzing::dpop_proof;
use certbound_fuzz::{b64url, rfc7638, signature_verifies, DPOP_HTU, DPOP_METHOD, DPOP_NOW};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn check(proof: &str) -> bool {
    dpop_proof(proof, DPOP_METHOD, DPOP_HTU, DPOP_NOW).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(verified) = dpop_proof(proof, DPOP_METHOD, DPOP_HTU, DPOP_NOW) else {
        return;
    };
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "a verified proof is a compact JWS");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&b64url(part).expect("base64url")).expect("JSON")
    };
    let (header, claims) = (json(parts[0]), json(parts[1]));
    // The thumbprint is the RFC 7638 one of the header's jwk, computed independently.
    assert_eq!(
        Some(verified.jkt().to_string()),
        rfc7638(&header["jwk"]),
        "jkt is not the jwk's thumbprint"
    );
    // The signature verifies with aws-lc-rs directly, with that jwk.
    let alg = header["alg"].as_str().expect("alg");
    let message_len = parts[0].len() + 1 + parts[1].len();
    assert!(
        signature_verifies(
            alg,
            &header["jwk"],
            &proof.as_bytes()[..message_len],
            parts[2]
        ),
        "verified a proof whose signature aws-lc-rs refuses"
    );
    assert_eq!(claims["htm"].as_str(), Some(DPOP_METHOD));
    assert_eq!(claims["jti"].as_str(), Some(verified.jti()));
    assert!(verified.issued_at() <= DPOP_NOW + 15 && verified.issued_at() >= DPOP_NOW - 60);
    // A real proof, mutated in one character of what was signed or of the signature, never
    // verifies: one position in each part, chosen from the input.
    let seed = data.iter().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(*b))
    });
    for (start, len) in [(0, message_len), (message_len + 1, parts[2].len())] {
        if len == 0 {
            continue;
        }
        let at = start + seed % len;
        let mut mutated = proof.as_bytes().to_vec();
        let old = mutated[at];
        mutated[at] =
            B64URL[(B64URL.iter().position(|b| *b == old).unwrap_or(0) + 1 + seed % 63) % 64];
        if mutated[at] == old {
            continue;
        }
        let mutated = String::from_utf8(mutated).expect("ASCII");
        assert!(!check(&mutated), "a mutated proof verifies: {mutated}");
    }
});
