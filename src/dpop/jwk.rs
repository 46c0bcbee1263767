//! DPoP public keys: the RFC 7638 thumbprint of a JWK, and the check that a JWK carries no
//! private member.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use serde_json::{Map, Value};

use crate::thumbprint::JwkThumbprint;

/// RFC 7638 §3: SHA-256 over the key's required members only, in lexicographic order, without
/// whitespace. Each value is written by serde_json, so escaping is JSON's own; the member order
/// is fixed here per key type (`crv` < `kty` < `x` < `y`; `e` < `kty` < `n`), which is what
/// "sorted" means for these exact member sets. `None` for key types DPoP does not use (`oct`).
pub(crate) fn thumbprint(jwk: &Jwk) -> Option<JwkThumbprint> {
    let json = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            quoted(curve_name(&ec.curve)?),
            quoted(&ec.x),
            quoted(&ec.y)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            quoted(curve_name(&okp.curve)?),
            quoted(&okp.x)
        ),
        AlgorithmParameters::RSA(rsa) => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            quoted(&rsa.e),
            quoted(&rsa.n)
        ),
        // `oct` keys, and key types jsonwebtoken may add (its enums are non-exhaustive).
        _ => return None,
    };
    Some(JwkThumbprint::of_canonical_json(json.as_bytes()))
}

fn curve_name(curve: &EllipticCurve) -> Option<&'static str> {
    Some(match curve {
        EllipticCurve::P256 => "P-256",
        EllipticCurve::P384 => "P-384",
        EllipticCurve::P521 => "P-521",
        EllipticCurve::Ed25519 => "Ed25519",
        _ => return None,
    })
}

fn quoted(value: &str) -> String {
    // Serializing a str cannot fail; the fallback keeps this total without a panic.
    serde_json::to_string(value).unwrap_or_default()
}

/// Members that only a private (or symmetric) JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037
/// §2). A DPoP proof whose `jwk` holds one of them is refused (RFC 9449 §4.3, check 7).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Whether the raw `jwk` header object has a private member.
pub(crate) fn has_private_member(jwk: &Map<String, Value>) -> bool {
    PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: Value) -> Jwk {
        serde_json::from_value(value).expect("test JWK parses")
    }

    #[test]
    fn the_rfc7638_example_key_has_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1.
        let key = jwk(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        assert_eq!(
            thumbprint(&key).unwrap().to_string(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn the_rfc8037_ed25519_example_key_has_the_rfc8037_thumbprint() {
        // RFC 8037 Appendix A.3.
        let key = jwk(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }));
        assert_eq!(
            thumbprint(&key).unwrap().to_string(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn member_order_and_optional_members_do_not_change_the_thumbprint() {
        let a = jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q",
            "y": "8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"
        }));
        let b = jwk(serde_json::json!({
            "y": "8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8",
            "use": "sig", "kid": "k1", "alg": "ES256",
            "x": "1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q",
            "crv": "P-256", "kty": "EC"
        }));
        assert_eq!(thumbprint(&a).unwrap(), thumbprint(&b).unwrap());
    }

    #[test]
    fn private_members_are_found() {
        let public = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"});
        let Value::Object(public) = public else { unreachable!() };
        assert!(!has_private_member(&public));
        for member in PRIVATE_MEMBERS {
            let mut private = public.clone();
            private.insert((*member).to_owned(), Value::String("x".into()));
            assert!(has_private_member(&private), "{member}");
        }
    }
}
