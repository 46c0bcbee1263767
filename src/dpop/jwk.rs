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

/// The thumbprint of a key given by its required members: SHA-256 of its RFC 7638 canonical
/// JSON, the member order fixed here per key type (`crv` < `kty` < `x` < `y`; `e` < `kty` <
/// `n`), which is what "sorted" means for these exact member sets.
///
/// Members of the base64url alphabet (every real key's, and the curve names) need no JSON
/// escaping: the JSON is written as is, into one buffer of the right size ([`canonical`]).
/// Any other member goes through serde_json ([`quoted_canonical`]), so escaping stays JSON's
/// own (issue 26: `format!` and serde's quoting were ~3 800 instructions of a proof).
pub(crate) fn thumbprint_of(key: PublicKey<'_>) -> Option<JwkThumbprint> {
    let json = canonical(key).unwrap_or_else(|| quoted_canonical(key));
    Some(JwkThumbprint::of_canonical_json(json.as_bytes()))
}

/// The members of `key` in canonical order, each as the name that precedes it and its value.
fn members(key: PublicKey<'_>) -> ([&'static str; 4], [&str; 4], usize) {
    match key {
        PublicKey::Ec(crv, x, y) => (
            [r#"{"crv":"#, r#","kty":"EC","x":"#, r#","y":"#, "}"],
            [crv, x, y, ""],
            3,
        ),
        PublicKey::Okp(crv, x) => (
            [r#"{"crv":"#, r#","kty":"OKP","x":"#, "}", ""],
            [crv, x, "", ""],
            2,
        ),
        PublicKey::Rsa(n, e) => (
            [r#"{"e":"#, r#","kty":"RSA","n":"#, "}", ""],
            [e, n, "", ""],
            2,
        ),
    }
}

/// The canonical JSON of `key` written directly, when every member is base64url text (so that
/// quoting it is only the two quotes); `None` otherwise.
pub(crate) fn canonical(key: PublicKey<'_>) -> Option<String> {
    let (names, values, count) = members(key);
    let values = &values[..count];
    if !values.iter().all(|v| v.bytes().all(is_base64url)) {
        return None;
    }
    let len = names[..=count].iter().map(|n| n.len()).sum::<usize>()
        + values.iter().map(|v| v.len() + 2).sum::<usize>();
    let mut json = String::with_capacity(len);
    for (name, value) in names.iter().zip(values) {
        json.push_str(name);
        json.push('"');
        json.push_str(value);
        json.push('"');
    }
    json.push_str(names[count]);
    Some(json)
}

/// The canonical JSON of `key`, each value written by serde_json.
pub(crate) fn quoted_canonical(key: PublicKey<'_>) -> String {
    let (names, values, count) = members(key);
    let mut json = String::new();
    for (name, value) in names.iter().zip(&values[..count]) {
        json.push_str(name);
        json.push_str(&quoted(value));
    }
    json.push_str(names[count]);
    json
}

/// The base64url alphabet (RFC 4648 §5): letters, digits, `-` and `_`.
fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
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
    fn the_direct_canonical_json_is_the_serde_quoted_one_for_base64url_members() {
        let x = "1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q";
        let y = "8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8";
        for key in [
            PublicKey::Ec("P-256", x, y),
            PublicKey::Okp("Ed25519", x),
            PublicKey::Rsa(x, "AQAB"),
            PublicKey::Ec("P-384", "", "-_"),
        ] {
            assert_eq!(canonical(key), Some(quoted_canonical(key)), "{key:?}");
        }
        assert_eq!(
            canonical(PublicKey::Ec("P-256", "AQAB", "AQAC")).unwrap(),
            r#"{"crv":"P-256","kty":"EC","x":"AQAB","y":"AQAC"}"#
        );
        assert_eq!(
            canonical(PublicKey::Rsa("n-_", "AQAB")).unwrap(),
            r#"{"e":"AQAB","kty":"RSA","n":"n-_"}"#
        );
    }

    #[test]
    fn a_member_that_needs_escaping_takes_serde_quoting_and_keeps_json_escapes() {
        for (x, escaped) in [
            ("a\"b", r#""a\"b""#),
            ("a\\b", r#""a\\b""#),
            ("a\nb", r#""a\nb""#),
            ("a\u{1}b", r#""a\u0001b""#),
            ("é=", r#""é=""#),
        ] {
            let key = PublicKey::Okp("Ed25519", x);
            assert_eq!(canonical(key), None, "{x:?}");
            let expected = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{escaped}}}"#);
            assert_eq!(quoted_canonical(key), expected);
            assert_eq!(
                thumbprint_of(key),
                Some(JwkThumbprint::of_canonical_json(expected.as_bytes()))
            );
        }
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
