//! The JOSE header the JWT validator reads before choosing a key, and the whole validation
//! against a static JWKS of one ES256 key. Input: a compact JWT.
#![no_main]

use std::sync::OnceLock;

use certbound::{JwtValidator, ValidateToken as _};
use certbound_fuzz::{b64url, jwks_json, ready, signature_verifies, AUDIENCE, ISSUER};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn validator() -> &'static JwtValidator {
    static VALIDATOR: OnceLock<JwtValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        JwtValidator::builder(ISSUER, AUDIENCE)
            .jwks_json(jwks_json())
            .no_cache()
            .build()
            .expect("the fuzz validator builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let header = certbound::fuzzing::jose_header(token);
    if let Some((alg, kid, typ)) = &header {
        // Whatever certbound read is what the first segment says, per serde_json.
        let segment = token.split('.').next().unwrap_or_default();
        let json: Value = b64url(segment)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .expect("a header certbound read is base64url JSON");
        assert_eq!(json["alg"].as_str(), Some(alg.as_str()));
        assert_eq!(json.get("kid").and_then(Value::as_str), kid.as_deref());
        assert_eq!(json.get("typ").and_then(Value::as_str), typ.as_deref());
    }
    let Ok(access) = ready(validator().validate(token)) else {
        return;
    };
    // Accepted: the header was read, and the signature is the trusted key's, per aws-lc-rs.
    let (alg, _, _) = header.expect("a validated token has a readable header");
    assert_eq!(alg, "ES256");
    let (message, signature) = token.rsplit_once('.').expect("three segments");
    let key = json!({"x": certbound_fuzz::JWT_KEY_X, "y": certbound_fuzz::JWT_KEY_Y});
    assert!(
        signature_verifies("ES256", &key, message.as_bytes(), signature),
        "validated a token the trusted key did not sign"
    );
    assert_eq!(access.claim("iss").and_then(Value::as_str), Some(ISSUER));
});
