//! Tests of the proof checks: every RFC 9449 §4.3 check, with proofs signed through
//! jsonwebtoken directly (independently of certbound's own signer).
// jsonwebtoken's own signing, with the process-wide provider installed by `Signer::new`.
#![allow(clippy::disallowed_methods)]

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A key made at test time, signing proofs through jsonwebtoken directly (independently of
/// certbound's own signer).
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    jwk: Value,
}

impl Signer {
    fn new(alg: Algorithm) -> Self {
        crate::test_helpers::install_jose_default();
        let (rcgen_alg, make): (_, fn(&[u8]) -> EncodingKey) = match alg {
            Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, EncodingKey::from_ec_der),
            Algorithm::EdDSA => (&rcgen::PKCS_ED25519, EncodingKey::from_ed_der),
            _ => unreachable!("test signers are ES256 or EdDSA"),
        };
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        let key = make(&pair.serialize_der());
        let public = pair.public_key_raw();
        let jwk = match alg {
            // An uncompressed point: 0x04 || x || y.
            Algorithm::ES256 => json!({
                "kty": "EC", "crv": "P-256",
                "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65]),
            }),
            _ => json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(public)}),
        };
        Self { key, alg, jwk }
    }

    fn jkt(&self) -> JwkThumbprint {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        crate::dpop::jwk::thumbprint(&jwk).unwrap()
    }

    fn sign_parts(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, self.alg).unwrap();
        format!("{message}.{signature}")
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": format!("{:?}", self.alg), "jwk": self.jwk})
    }
}

const HTU: &str = "https://api.example/whoami";

/// The `htu` of a request for [`HTU`], as the layer makes it from the request's parts.
fn request_htu() -> &'static ExpectedHtu<'static> {
    static HTU: std::sync::LazyLock<ExpectedHtu<'static>> = std::sync::LazyLock::new(|| {
        ExpectedHtu::of_request("https", "api.example", "/whoami").unwrap()
    });
    &HTU
}
const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
const NOW: i64 = 1_800_000_000;

fn token_hash() -> [u8; 32] {
    Sha256::digest(TOKEN).into()
}

fn claims() -> Value {
    json!({
        "jti": "e1j3V_bKic8-LAEB",
        "htm": "GET",
        "htu": HTU,
        "iat": NOW,
        "ath": B64.encode(token_hash()),
    })
}

/// A request `GET` [`HTU`] with the token whose hash is `hash`, at [`NOW`].
fn expected_get(hash: &[u8; 32]) -> Expected<'_> {
    Expected {
        method: "GET",
        htu: request_htu(),
        ath: Some(hash),
        now: NOW,
    }
}

/// `proof` checked for `GET` [`HTU`] with [`TOKEN`] at [`NOW`], default rules.
fn verify_default(proof: &str) -> Result<VerifiedProof, AuthError> {
    let hash = token_hash();
    verify(
        proof,
        &expected_get(&hash),
        &ProofRules::default(),
        Memos::default(),
    )
}

fn check(proof: &str) -> Result<VerifiedProof, AuthErrorKind> {
    verify_default(proof).map_err(|e| e.kind())
}

fn with(mut base: Value, name: &str, value: Option<Value>) -> Value {
    let object = base.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert(name.to_owned(), value),
        None => object.remove(name),
    };
    base
}

#[test]
fn a_valid_proof_verifies_and_names_its_key_for_es256_and_eddsa() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let signer = Signer::new(alg);
        let proof = check(&signer.sign_parts(&signer.header(), &claims())).unwrap();
        assert!(proof.jkt() == &signer.jkt(), "{alg:?}");
        assert_eq!(proof.jti(), "e1j3V_bKic8-LAEB");
        assert_eq!(proof.issued_at(), NOW);
        assert_eq!(proof.nonce(), None);
        assert!(!format!("{proof:?}").contains("e1j3V"));
    }
}

#[test]
fn the_rfc_positive_variations_are_accepted() {
    let signer = Signer::new(Algorithm::ES256);
    let accepted = [
        // Extra claims are ignored.
        with(claims(), "extra", Some(json!({"a": [1, 2]}))),
        // htu with query and fragment, host case, default port, scheme case.
        with(
            claims(),
            "htu",
            Some(json!("https://api.example/whoami?x=1#f")),
        ),
        with(
            claims(),
            "htu",
            Some(json!("HTTPS://API.EXAMPLE:443/whoami")),
        ),
        // iat 10 s ahead (a client clock running fast), and 59 s old.
        with(claims(), "iat", Some(json!(NOW + 10))),
        with(claims(), "iat", Some(json!(NOW - 59))),
        // A fractional NumericDate.
        with(claims(), "iat", Some(json!(NOW as f64 + 0.5))),
        with(claims(), "nonce", Some(json!("n-1"))),
    ];
    for claims in accepted {
        let proof = signer.sign_parts(&signer.header(), &claims);
        assert!(check(&proof).is_ok(), "{claims}");
    }
    let header = with(signer.header(), "typ", Some(json!("DPoP+JWT")));
    assert!(check(&signer.sign_parts(&header, &claims())).is_ok());
    let header = with(signer.header(), "kid", Some(json!("ignored")));
    assert!(check(&signer.sign_parts(&header, &claims())).is_ok());
}

#[test]
fn each_claim_check_refuses_a_proof_that_fails_it() {
    let signer = Signer::new(Algorithm::ES256);
    let refused = [
        with(claims(), "jti", None),
        with(claims(), "jti", Some(json!(""))),
        with(claims(), "jti", Some(json!("j".repeat(257)))),
        with(claims(), "jti", Some(json!(7))),
        with(claims(), "htm", None),
        with(claims(), "htm", Some(json!("POST"))),
        with(claims(), "htm", Some(json!("get"))),
        with(claims(), "htu", None),
        with(claims(), "htu", Some(json!("https://other.example/whoami"))),
        with(claims(), "htu", Some(json!("https://api.example/whoami/x"))),
        with(claims(), "htu", Some(json!("http://api.example/whoami"))),
        with(claims(), "htu", Some(json!("/whoami"))),
        with(claims(), "iat", None),
        with(claims(), "iat", Some(json!(NOW - 3600))),
        with(claims(), "iat", Some(json!(NOW + 3600))),
        with(claims(), "iat", Some(json!(NOW - 300))),
        with(claims(), "iat", Some(json!(NOW + 16))),
        with(claims(), "iat", Some(json!("1800000000"))),
        with(claims(), "ath", None),
        with(
            claims(),
            "ath",
            Some(json!(B64.encode(Sha256::digest("other")))),
        ),
        with(
            claims(),
            "ath",
            Some(json!(format!("{}=", B64.encode(token_hash())))),
        ),
    ];
    for claims in refused {
        let proof = signer.sign_parts(&signer.header(), &claims);
        assert_eq!(
            check(&proof).err(),
            Some(AuthErrorKind::InvalidDpopProof),
            "{claims}"
        );
    }
    let proof = signer.sign_parts(&signer.header(), &json!([1]));
    assert!(check(&proof).is_err());
    let long_jti = with(claims(), "jti", Some(json!("j".repeat(256))));
    assert!(check(&signer.sign_parts(&signer.header(), &long_jti)).is_ok());
    // The iat window's edges are inside it (60 s back, 15 s ahead by default).
    for iat in [NOW - 60, NOW + 15] {
        let edge = with(claims(), "iat", Some(json!(iat)));
        assert!(
            check(&signer.sign_parts(&signer.header(), &edge)).is_ok(),
            "{iat}"
        );
    }
    for iat in [NOW - 61, NOW + 16] {
        let outside = with(claims(), "iat", Some(json!(iat)));
        assert!(
            check(&signer.sign_parts(&signer.header(), &outside)).is_err(),
            "{iat}"
        );
    }
}

#[test]
fn a_verified_proof_reports_its_nonce_and_keeps_one_time_values_out_of_debug() {
    let signer = Signer::new(Algorithm::ES256);
    let claims = with(claims(), "nonce", Some(json!("n-0123456789")));
    let proof = check(&signer.sign_parts(&signer.header(), &claims)).unwrap();
    assert_eq!(proof.nonce(), Some("n-0123456789"));
    let debug = format!("{proof:?}");
    assert!(debug.starts_with("VerifiedProof {"), "{debug}");
    assert!(debug.contains(&signer.jkt().to_string()), "{debug}");
    assert!(
        !debug.contains("n-0123456789") && !debug.contains("e1j3V"),
        "{debug}"
    );
}

#[test]
fn each_header_check_refuses_a_proof_that_fails_it() {
    let signer = Signer::new(Algorithm::ES256);
    let other = Signer::new(Algorithm::EdDSA);
    let mut private = signer.jwk.clone();
    private["d"] = json!("AAAA");
    let mut null_private = signer.jwk.clone();
    null_private["d"] = Value::Null;
    let refused = [
        with(signer.header(), "typ", None),
        with(signer.header(), "typ", Some(json!("JWT"))),
        with(signer.header(), "typ", Some(json!("at+jwt"))),
        with(signer.header(), "alg", Some(json!("none"))),
        with(signer.header(), "alg", Some(json!("HS256"))),
        with(signer.header(), "alg", Some(json!("RS256"))),
        with(signer.header(), "alg", Some(json!("EdDSA"))),
        with(signer.header(), "jwk", None),
        with(signer.header(), "jwk", Some(private)),
        with(signer.header(), "jwk", Some(null_private)),
        with(signer.header(), "jwk", Some(other.jwk.clone())),
        with(
            signer.header(),
            "jwk",
            Some(json!({"kty": "oct", "k": "c2VjcmV0"})),
        ),
        with(signer.header(), "jwk", Some(json!("key"))),
        with(signer.header(), "crit", Some(json!(["exp"]))),
        with(signer.header(), "crit", Some(Value::Null)),
    ];
    for header in refused {
        let proof = signer.sign_parts(&header, &claims());
        assert_eq!(
            check(&proof).err(),
            Some(AuthErrorKind::InvalidDpopProof),
            "{header}"
        );
    }
}

#[test]
fn a_crit_header_is_refused_as_crit_not_as_unreadable() {
    // What operators read in the trace: the proof was readable, and refused for its crit.
    let signer = Signer::new(Algorithm::ES256);
    for value in [json!(["exp"]), Value::Null, json!("dpop")] {
        let header = with(signer.header(), "crit", Some(value));
        let proof = signer.sign_parts(&header, &claims());
        let error = verify_default(&proof).unwrap_err();
        assert_eq!(error.detail(), "DPoP proof header has crit", "{header}");
    }
}

#[test]
fn an_rsa_proof_verifies_with_its_n_and_e() {
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let key = crate::dpop::DpopKey::from_pkcs8_der(&rsa.serialize_der()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::PS256);
    let proof = key
        .proof("GET", HTU)
        .access_token(TOKEN)
        .issued_at(NOW)
        .sign()
        .unwrap();
    assert_eq!(check(&proof).unwrap().jkt(), &key.thumbprint());
}

#[test]
fn numeric_dates_are_whole_seconds_within_a_sane_range() {
    let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).unwrap();
    assert_eq!(numeric_date(&number("1800000000")), Some(1_800_000_000));
    assert_eq!(numeric_date(&number("1800000000.9")), Some(1_800_000_000));
    assert_eq!(numeric_date(&number("-1.5")), Some(-2));
    assert_eq!(
        numeric_date(&number("999999999999999.5")),
        Some(999_999_999_999_999)
    );
    // Beyond 1e15 seconds (31 million years) a float is refused, not saturated into i64.
    assert_eq!(numeric_date(&number("1e15")), None);
    assert_eq!(numeric_date(&number("-1e15")), None);
    assert_eq!(numeric_date(&number("1e300")), None);
}

#[test]
fn a_signed_proof_whose_header_or_claims_are_not_utf8_json_objects_is_refused() {
    // What the jose_header fuzz target found in the JWT header reader, here for proofs: serde
    // reads a JSON array into a struct, and skips invalid UTF-8 inside members it ignores.
    let signer = Signer::new(Algorithm::ES256);
    let sign_raw = |header: &[u8], claims: &[u8]| {
        let message = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &signer.key, signer.alg).unwrap();
        format!("{message}.{signature}")
    };
    let header = signer.header().to_string();
    let c = claims();
    let array_claims = json!([c["jti"], c["htm"], c["htu"], c["iat"], c["ath"]]).to_string();
    let claims = c.to_string();
    assert!(check(&sign_raw(header.as_bytes(), claims.as_bytes())).is_ok());
    let array_header = json!(["dpop+jwt", "ES256", signer.jwk]).to_string();
    // An extra member whose string is not UTF-8, first in the object.
    let not_utf8 = |json: &str| [&b"{\"x\":\"\xb0\","[..], &json.as_bytes()[1..]].concat();
    let (bad_header, bad_claims) = (not_utf8(&header), not_utf8(&claims));
    for (header, claims) in [
        (array_header.as_bytes(), claims.as_bytes()),
        (header.as_bytes(), array_claims.as_bytes()),
        (&bad_header[..], claims.as_bytes()),
        (header.as_bytes(), &bad_claims[..]),
    ] {
        let proof = sign_raw(header, claims);
        assert_eq!(check(&proof).err(), Some(AuthErrorKind::InvalidDpopProof));
    }
}

#[test]
fn malformed_and_forged_proofs_are_refused() {
    let signer = Signer::new(Algorithm::ES256);
    let good = signer.sign_parts(&signer.header(), &claims());
    let (message, signature) = good.rsplit_once('.').unwrap();
    // Claims changed after signing.
    let forged_claims = with(claims(), "htm", Some(json!("GET")));
    let forged_claims = with(forged_claims, "jti", Some(json!("other")));
    let header_b64 = message.split('.').next().unwrap();
    let forged = format!(
        "{header_b64}.{}.{signature}",
        B64.encode(forged_claims.to_string())
    );
    // Signed by another key than the one in its header.
    let impostor = Signer::new(Algorithm::ES256);
    let swapped = impostor.sign_parts(&signer.header(), &claims());
    // alg none with an empty signature.
    let none = format!(
        "{}.{}.",
        B64.encode(with(signer.header(), "alg", Some(json!("none"))).to_string()),
        B64.encode(claims().to_string())
    );
    for bad in [
        forged,
        swapped,
        none,
        String::new(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{message}."),
        format!("{message}.!!!"),
        format!("*{good}"),
        format!("{good}.x"),
        "..".to_owned(),
    ] {
        assert_eq!(
            check(&bad).err(),
            Some(AuthErrorKind::InvalidDpopProof),
            "{bad}"
        );
    }
}

#[test]
fn a_token_request_proof_needs_no_ath() {
    let signer = Signer::new(Algorithm::EdDSA);
    let claims = with(claims(), "ath", None);
    let claims = with(claims, "htm", Some(json!("POST")));
    let proof = signer.sign_parts(&signer.header(), &claims);
    let expected = Expected {
        method: "POST",
        htu: request_htu(),
        ath: None,
        now: NOW,
    };
    assert!(verify(&proof, &expected, &ProofRules::default(), Memos::default()).is_ok());
    // A proof made for a request with an access token is not one for a token request,
    // whatever its ath holds.
    for ath in [json!(B64.encode(token_hash())), Value::Null, json!(7)] {
        let claims = with(claims.clone(), "ath", Some(ath));
        let proof = signer.sign_parts(&signer.header(), &claims);
        let result = verify(&proof, &expected, &ProofRules::default(), Memos::default());
        assert_eq!(
            result.err().map(|e| e.kind()),
            Some(AuthErrorKind::InvalidDpopProof)
        );
    }
}

#[test]
fn exactly_one_dpop_header_within_the_size_limit_is_taken() {
    let mut headers = HeaderMap::new();
    assert!(single_proof(&headers, 100).is_err());
    headers.append(&DPOP, http::HeaderValue::from_static("a.b.c"));
    assert_eq!(single_proof(&headers, 100).unwrap(), "a.b.c");
    assert_eq!(
        single_proof(&headers, 5).unwrap(),
        "a.b.c",
        "exactly the limit"
    );
    assert!(single_proof(&headers, 4).is_err());
    headers.append(&DPOP, http::HeaderValue::from_static("a.b.c"));
    assert!(single_proof(&headers, 100).is_err());
    let mut headers = HeaderMap::new();
    headers.insert(&DPOP, http::HeaderValue::from_bytes(b"a.\xffb.c").unwrap());
    assert!(single_proof(&headers, 100).is_err());
}

#[path = "key_memo_tests.rs"]
mod key_memo;

#[path = "key_cache_tests.rs"]
mod key_cache;
