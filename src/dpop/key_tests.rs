//! Tests of [`DpopKey`] and its proofs: generated and loaded keys of every type, proofs checked
//! by jsonwebtoken's own `decode` (independently of certbound's proof check), with the
//! process-wide provider installed by `verify`.
#![allow(clippy::disallowed_methods)]

use super::*;
use jsonwebtoken::{DecodingKey, TokenData, Validation};

fn verify(key: &DpopKey, proof: &str) -> TokenData<Value> {
    crate::test_helpers::install_jose_default();
    let decoding = DecodingKey::from_jwk(key.public_jwk()).expect("public JWK");
    let mut validation = Validation::new(key.algorithm());
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(proof, &decoding, &validation).expect("proof verifies")
}

fn signs_and_verifies(alg: Algorithm) {
    let key = DpopKey::generate(alg).unwrap();
    assert_eq!(key.algorithm(), alg);
    let proof = key
        .proof("POST", "https://api.example/token")
        .issued_at(1_700_000_000)
        .sign()
        .unwrap();
    let data = verify(&key, &proof);
    assert_eq!(data.header.typ.as_deref(), Some("dpop+jwt"));
    assert_eq!(data.header.alg, alg);
    let jwk = data.header.jwk.expect("jwk header");
    assert_eq!(super::super::jwk::thumbprint(&jwk), Some(key.thumbprint()));
    assert_eq!(data.claims["htm"], "POST");
    assert_eq!(data.claims["htu"], "https://api.example/token");
    assert_eq!(data.claims["iat"], 1_700_000_000);
    assert!(data.claims["jti"]
        .as_str()
        .is_some_and(|jti| jti.len() == 22));
    assert!(data.claims.get("ath").is_none());
    assert!(data.claims.get("nonce").is_none());
}

#[test]
fn an_ed25519_key_told_to_names_its_algorithm_ed25519_and_its_proofs_verify() {
    let key = DpopKey::generate(Algorithm::EdDSA).unwrap();
    assert_eq!(key.alg_name(), "EdDSA");
    let key = key.fully_specified_alg(true);
    assert_eq!(key.alg_name(), "Ed25519");
    let proof = key.proof("GET", "https://api.example/r").sign().unwrap();
    let header_alg = |proof: &str| {
        let header = URL_SAFE_NO_PAD
            .decode(proof.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&header).unwrap()["alg"].clone()
    };
    assert_eq!(header_alg(&proof), "Ed25519");
    let expected = super::super::proof::Expected {
        method: "GET",
        htu: &super::super::htu::ExpectedHtu::of_url("https://api.example/r").unwrap(),
        ath: None,
        now: unix_now_i64(),
    };
    let rules = super::super::proof::ProofRules::default();
    let verified =
        super::super::proof::verify(&proof, &expected, &rules, Default::default()).unwrap();
    assert_eq!(verified.jkt(), &key.thumbprint());
    // One proof may say otherwise (a client that learnt the server's names), and keys of
    // other types keep their one name.
    let proof = key
        .proof("GET", "https://api.example/r")
        .fully_specified_alg(false);
    assert_eq!(header_alg(&proof.sign().unwrap()), "EdDSA");
    let es = DpopKey::generate(Algorithm::ES256)
        .unwrap()
        .fully_specified_alg(true);
    assert_eq!(es.alg_name(), "ES256");
}

#[test]
fn a_proof_signed_by_a_generated_es256_key_verifies_with_its_public_jwk() {
    signs_and_verifies(Algorithm::ES256);
}

#[test]
fn a_proof_signed_by_a_generated_es384_key_verifies_with_its_public_jwk() {
    signs_and_verifies(Algorithm::ES384);
}

#[test]
fn a_proof_signed_by_a_generated_ed25519_key_verifies_with_its_public_jwk() {
    signs_and_verifies(Algorithm::EdDSA);
}

#[test]
fn other_algorithms_cannot_be_generated() {
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::PS256] {
        let err = DpopKey::generate(alg).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    option: "algorithm",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn the_public_jwk_has_public_members_only() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let key = DpopKey::generate(alg).unwrap();
        let Value::Object(jwk) = serde_json::to_value(key.public_jwk()).unwrap() else {
            panic!("a JWK is an object");
        };
        assert!(
            !jwk.keys().any(|m| super::super::jwk::is_private_member(m)),
            "{jwk:?}"
        );
        let mut members: Vec<_> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        let expected: &[&str] = match alg {
            Algorithm::EdDSA => &["crv", "kty", "x"],
            _ => &["crv", "kty", "x", "y"],
        };
        assert_eq!(members, expected);
    }
}

#[test]
fn a_generated_key_survives_a_pem_round_trip() {
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let key = DpopKey::generate(alg).unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("\n-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));
        let again = DpopKey::from_pkcs8_pem(pem.as_bytes()).unwrap();
        assert_eq!(again.algorithm(), alg);
        assert_eq!(again.thumbprint(), key.thumbprint());
        assert_eq!(again.to_pkcs8_pem(), pem);
        // Proofs by the reloaded key verify with the original public key.
        let proof = again.proof("GET", "https://api.example/").sign().unwrap();
        verify(&key, &proof);
    }
}

#[test]
fn an_openssl_ed25519_key_loads_with_the_rfc8037_thumbprint() {
    // RFC 8037 Appendix A.1's private key, in the PKCS#8 v1 form `openssl genpkey` writes.
    let pem = "-----BEGIN PRIVATE KEY-----\n\
               MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
               -----END PRIVATE KEY-----\n";
    let key = DpopKey::from_pkcs8_pem(pem.as_bytes()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::EdDSA);
    assert_eq!(
        key.thumbprint().to_string(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    assert_eq!(key.to_pkcs8_pem(), pem);
}

#[test]
fn an_rsa_pkcs8_key_signs_ps256_proofs() {
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let key = DpopKey::from_pkcs8_der(&rsa.serialize_der()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::PS256);
    let proof = key.proof("GET", "https://api.example/").sign().unwrap();
    verify(&key, &proof);
    let again = DpopKey::from_pkcs8_pem(key.to_pkcs8_pem().as_bytes()).unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
}

#[test]
fn htu_is_the_url_without_query_and_fragment() {
    for (url, expected) in [
        ("https://api.example/r", "https://api.example/r"),
        ("https://api.example/r?a=1&b=2", "https://api.example/r"),
        ("https://api.example/r#frag", "https://api.example/r"),
        ("https://api.example/r?a=1#frag", "https://api.example/r"),
        (
            "https://api.example/r#frag?not-a-query",
            "https://api.example/r",
        ),
        ("https://api.example/r?", "https://api.example/r"),
    ] {
        assert_eq!(htu(url), expected, "{url}");
    }
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let proof = key
        .proof("GET", "https://api.example/r?a=1#f")
        .sign()
        .unwrap();
    assert_eq!(verify(&key, &proof).claims["htu"], "https://api.example/r");
}

#[test]
fn ath_is_the_rfc9449_example_hash_of_the_access_token() {
    // RFC 9449 §7.1.
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let proof = key
        .proof("GET", "https://resource.example.org/protectedresource")
        .access_token("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
        .nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v")
        .sign()
        .unwrap();
    let claims = verify(&key, &proof).claims;
    assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    assert_eq!(claims["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
}

#[test]
fn jti_is_fresh_by_default_and_settable() {
    let key = DpopKey::generate(Algorithm::EdDSA).unwrap();
    let jti = |proof: String| verify(&key, &proof).claims["jti"].clone();
    let a = jti(key.proof("GET", "https://a.example/").sign().unwrap());
    let b = jti(key.proof("GET", "https://a.example/").sign().unwrap());
    assert_ne!(a, b);
    let set = jti(key
        .proof("GET", "https://a.example/")
        .jti("x1")
        .sign()
        .unwrap());
    assert_eq!(set, "x1");
}

#[test]
fn extra_claims_are_added_and_may_replace_the_standard_ones() {
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let proof = key
        .proof("GET", "https://a.example/")
        .claim("ext", serde_json::json!({"n": 1}))
        .claim("htm", Value::from("PUT"))
        .sign()
        .unwrap();
    let claims = verify(&key, &proof).claims;
    assert_eq!(claims["ext"], serde_json::json!({"n": 1}));
    assert_eq!(claims["htm"], "PUT");
}

#[test]
fn iat_defaults_to_now() {
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let before = unix_now_i64();
    let proof = key.proof("GET", "https://a.example/").sign().unwrap();
    let iat = verify(&key, &proof).claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= unix_now_i64(), "{iat}");
}

#[test]
fn garbage_and_unsupported_keys_are_config_errors() {
    let err = DpopKey::from_pkcs8_pem(b"not a pem at all").unwrap_err();
    assert!(matches!(err, ConfigError::Pem { .. }), "{err}");
    let garbage_pem = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
    let err = DpopKey::from_pkcs8_pem(garbage_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, ConfigError::Key { .. }), "{err}");
    let err = DpopKey::from_pkcs8_der(&[]).unwrap_err();
    assert!(matches!(err, ConfigError::Key { .. }), "{err}");

    // A P-521 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521) is
    // refused by name.
    let p521 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512);
    if let Ok(p521) = p521 {
        let err = DpopKey::from_pkcs8_der(&p521.serialize_der()).unwrap_err();
        assert!(err.to_string().contains("curve"), "{err}");
    }

    // A valid wrapper around a broken EC key is refused by the backend.
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let pem = key.to_pkcs8_pem();
    let mut der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .secret_pkcs8_der()
        .to_vec();
    let last = der.len() - 1;
    der[last] ^= 0xFF;
    assert!(DpopKey::from_pkcs8_der(&der).is_err());
}

#[test]
fn debug_shows_no_key_material() {
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let debug = format!("{key:?}");
    assert_eq!(
        debug,
        format!(
            "DpopKey {{ algorithm: ES256, thumbprint: JwkThumbprint({}) }}",
            key.thumbprint()
        )
    );
    let pem = key.to_pkcs8_pem();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for chunk in body.as_bytes().chunks(8) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        assert!(!format!("{:?}", key.proof("GET", "https://a/")).contains(chunk));
    }
    let builder = format!(
        "{:?}",
        key.proof("GET", "https://a/").access_token("secret-token")
    );
    assert!(!builder.contains("secret-token"), "{builder}");
}
