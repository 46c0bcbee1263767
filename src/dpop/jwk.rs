//! DPoP public keys: the RFC 7638 thumbprint of a JWK, and the check that a JWK carries no
//! private member.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};

use crate::thumbprint::JwkThumbprint;

/// RFC 7638 §3: SHA-256 over the key's required members only, in lexicographic order, without
/// whitespace. `None` for key types DPoP does not use (`oct`).
pub(crate) fn thumbprint(jwk: &Jwk) -> Option<JwkThumbprint> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            thumbprint_of(PublicKey::Ec(curve_name(&ec.curve)?, &ec.x, &ec.y))
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            thumbprint_of(PublicKey::Okp(curve_name(&okp.curve)?, &okp.x))
        }
        AlgorithmParameters::RSA(rsa) => thumbprint_of(PublicKey::Rsa(&rsa.n, &rsa.e)),
        // `oct` keys, and key types jsonwebtoken may add (its enums are non-exhaustive).
        _ => None,
    }
}

/// The required members of a public key (RFC 7638 §3.2), as they appear in its JWK.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PublicKey<'a> {
    /// `kty` EC: `crv`, `x`, `y`.
    Ec(&'a str, &'a str, &'a str),
    /// `kty` OKP: `crv`, `x`.
    Okp(&'a str, &'a str),
    /// `kty` RSA: `n`, `e`.
    Rsa(&'a str, &'a str),
}

/// The thumbprint of a key given by its required members. Each value is written by serde_json,
/// so escaping is JSON's own; the member order is fixed here per key type (`crv` < `kty` < `x`
/// < `y`; `e` < `kty` < `n`), which is what "sorted" means for these exact member sets.
pub(crate) fn thumbprint_of(key: PublicKey<'_>) -> Option<JwkThumbprint> {
    let json = match key {
        PublicKey::Ec(crv, x, y) => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            quoted(crv),
            quoted(x),
            quoted(y)
        ),
        PublicKey::Okp(crv, x) => {
            format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, quoted(crv), quoted(x))
        }
        PublicKey::Rsa(n, e) => {
            format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, quoted(e), quoted(n))
        }
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

/// Whether `member` is one only a private or symmetric JWK has.
pub(crate) fn is_private_member(member: &str) -> bool {
    PRIVATE_MEMBERS.contains(&member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn jwk(value: Value) -> Jwk {
        serde_json::from_value(value).expect("test JWK parses")
    }

    #[test]
    fn every_curve_named_in_rfc7518_and_rfc8037_has_a_thumbprint() {
        for (kty, crv) in [
            ("EC", "P-256"),
            ("EC", "P-384"),
            ("EC", "P-521"),
            ("OKP", "Ed25519"),
        ] {
            let mut members = serde_json::json!({"kty": kty, "crv": crv, "x": "AQAB"});
            // RFC 7638's canonical form, written out: members sorted, no whitespace.
            let canonical = if kty == "EC" {
                members["y"] = serde_json::json!("AQAC");
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"AQAB","y":"AQAC"}}"#)
            } else {
                format!(r#"{{"crv":"{crv}","kty":"OKP","x":"AQAB"}}"#)
            };
            let expected = JwkThumbprint::of_canonical_json(canonical.as_bytes());
            assert_eq!(thumbprint(&jwk(members)), Some(expected), "{crv}");
        }
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
    fn private_members_are_recognised() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(is_private_member(member), "{member}");
        }
        for member in ["kty", "crv", "x", "y", "n", "e", "alg", "kid", "use", "D"] {
            assert!(!is_private_member(member), "{member}");
        }
    }
}
