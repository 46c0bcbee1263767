//! The aws-lc-rs path (`native`) against jsonwebtoken's: the same tokens, the same verdicts.
//! Keys made and tokens signed with aws-lc-rs itself, as an authorization server would.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::support::jose;

const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

/// A signing key of one algorithm, and its public JWK.
enum Signer {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

impl Signer {
    fn new(alg: &str) -> Self {
        match alg {
            "ES256" => Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            ),
            "ES384" => Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
            ),
            "EdDSA" | "Ed25519" => Signer::Ed(Ed25519KeyPair::generate().unwrap()),
            "RS256" => Signer::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                &signature::RSA_PKCS1_SHA256,
            ),
            "PS256" => Signer::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                &signature::RSA_PSS_SHA256,
            ),
            _ => unreachable!("{alg}"),
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Signer::Ec(key) => {
                let point = key.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = if half == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "kid": kid,
                       "x": b64(&point[1..=half]), "y": b64(&point[1 + half..])})
            }
            Signer::Ed(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(key.public_key().as_ref())})
            }
            Signer::Rsa(key, _) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public_key());
                json!({"kty": "RSA", "kid": kid, "n": b64(&public.n), "e": b64(&public.e)})
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ec(key) => key.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Ed(key) => key.sign(message).as_ref().to_vec(),
            Signer::Rsa(key, encoding) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(*encoding, &rng, message, &mut signature).unwrap();
                signature
            }
        }
    }
}

fn claims() -> Value {
    json!({"iss": "https://as.test", "aud": "https://api.test", "sub": "alice",
           "exp": unix_now() + 60, "cnf": {"x5t#S256": TP}, "tenant": 7})
}

/// A compact JWS of `claims` with header `{"alg":alg,"kid":kid}` signed by `signer`, with
/// `edit` applied to the signature's bytes.
fn token(signer: &Signer, alg: &str, kid: &str, edit: &dyn Fn(&mut Vec<u8>)) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let input = format!("{header}.{payload}");
    let mut signature = signer.sign(input.as_bytes());
    edit(&mut signature);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The validator over `jwks` on the aws-lc-rs path, and the same on jsonwebtoken's (an
/// application's provider, even when it is the same aws-lc-rs one, takes jsonwebtoken's path).
fn validators(jwks: &Value) -> (JwtValidator, JwtValidator) {
    let build = |own: bool| {
        let b = JwtValidator::builder("https://as.test", "https://api.test")
            .jwks_json(jwks.to_string());
        let b = if own {
            b
        } else {
            b.crypto_provider(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER)
        };
        b.build().unwrap()
    };
    let (native, wrapped) = (build(true), build(false));
    assert!(native.0.native && !wrapped.0.native);
    (native, wrapped)
}

fn check(v: &JwtValidator, token: &str) -> Result<AccessToken, AuthErrorKind> {
    match v.validate_now(token) {
        Ok(verified) => Ok(verified.token),
        Err(Pending::Done(e)) => Err(e.kind()),
        Err(Pending::Fetch) => Err(AuthErrorKind::KeysUnavailable),
    }
}

const ALGS: [&str; 6] = ["ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519"];

#[tokio::test]
async fn the_aws_lc_rs_path_and_jsonwebtokens_agree_on_every_token() {
    let signers: Vec<(&str, Signer)> = ALGS.iter().map(|&alg| (alg, Signer::new(alg))).collect();
    let jwks = json!({"keys": signers.iter().map(|(alg, s)| s.jwk(alg)).collect::<Vec<_>>()});
    let (native, wrapped) = validators(&jwks);
    let other = Signer::new("ES256");
    for (alg, signer) in &signers {
        let cases: [(&str, String); 7] = [
            ("valid", token(signer, alg, alg, &|_| {})),
            ("bit flipped", token(signer, alg, alg, &|s| s[3] ^= 1)),
            (
                "one byte short",
                token(signer, alg, alg, &|s| s.truncate(s.len() - 1)),
            ),
            ("one byte long", token(signer, alg, alg, &|s| s.push(0))),
            ("empty", token(signer, alg, alg, &|s| s.clear())),
            ("another key's", token(&other, alg, alg, &|_| {})),
            ("the payload changed", {
                let t = token(signer, alg, alg, &|_| {});
                let (head, rest) = t.split_once('.').unwrap();
                let (_, sig) = rest.split_once('.').unwrap();
                let forged =
                    URL_SAFE_NO_PAD.encode(claims().to_string().replace("alice", "mallory"));
                format!("{head}.{forged}.{sig}")
            }),
        ];
        for (case, token) in &cases {
            let (a, b) = (check(&native, token), check(&wrapped, token));
            assert_eq!(a.as_ref().err(), b.as_ref().err(), "{alg}, {case}");
            // Through the cache, where ES256, RS256 and PS256 verify the digest that the
            // cache key's pass made.
            let c = native.validate(token).await.map_err(|e| e.kind());
            assert_eq!(a.as_ref().err(), c.as_ref().err(), "{alg}, {case}, cached");
            if *case == "valid" {
                let token = a.unwrap();
                assert_eq!(token.subject(), Some("alice"), "{alg}");
                assert_eq!(token.claim("tenant"), Some(&json!(7)));
            } else {
                assert_eq!(a.unwrap_err(), AuthErrorKind::InvalidToken, "{alg}, {case}");
            }
        }
    }
}

#[test]
fn an_es256_signature_in_der_form_is_refused_on_both_paths() {
    let signer = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let point = signer.public_key().as_ref();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k",
        "x": b64(&point[1..33]), "y": b64(&point[33..])}]});
    let header = b64(br#"{"alg":"ES256","kid":"k"}"#);
    let input = format!("{header}.{}", b64(claims().to_string().as_bytes()));
    let der = signer.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    let token = format!("{input}.{}", b64(der.as_ref()));
    let (native, wrapped) = validators(&jwks);
    assert_eq!(
        check(&native, &token).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
    assert_eq!(
        check(&wrapped, &token).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
}

#[test]
fn a_token_whose_alg_does_not_fit_the_key_finds_no_key() {
    let es256 = Signer::new("ES256");
    let rs256 = Signer::new("RS256");
    let mut pinned = rs256.jwk("r");
    pinned["alg"] = json!("RS256");
    let jwks = json!({"keys": [es256.jwk("e"), pinned]});
    let (native, _) = validators(&jwks);
    let p384 = Signer::new("ES384");
    for token in [
        // A P-384 signature under the P-256 key's kid.
        token(&p384, "ES384", "e", &|_| {}),
        // PS256 with an RSA key published for RS256 only.
        token(&rs256, "PS256", "r", &|_| {}),
        // An EC key's kid with an RSA signature, and the other way round.
        token(&rs256, "RS256", "e", &|_| {}),
        token(&es256, "ES256", "r", &|_| {}),
    ] {
        assert_eq!(
            check(&native, &token).unwrap_err(),
            AuthErrorKind::UnknownKey
        );
    }
}

#[test]
fn keys_are_parsed_only_for_algorithms_of_their_own_family() {
    let ec = Signer::new("ES256").jwk("k");
    let ec = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(ec).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&ec).unwrap();
    let all = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ];
    let parsed = native::NativeKeys::parse(&key, &all);
    assert!(parsed.get(Algorithm::ES256).is_some());
    for alg in &all[1..] {
        assert!(parsed.get(*alg).is_none(), "{alg:?}");
    }
    // HMAC secrets never go to aws-lc-rs here: jsonwebtoken keeps them.
    let secret = jsonwebtoken::DecodingKey::from_secret(&[7; 32]);
    let parsed = native::NativeKeys::parse(&secret, &[Algorithm::HS256, Algorithm::ES256]);
    assert!(parsed.get(Algorithm::HS256).is_none() && parsed.get(Algorithm::ES256).is_none());
}

#[test]
fn an_hmac_token_keyed_with_a_public_key_is_refused() {
    let es256 = Signer::new("ES256");
    let jwk = es256.jwk("k");
    let v = JwtValidator::builder("https://as.test", "https://api.test")
        .jwks_json(json!({"keys": [jwk]}).to_string())
        .hmac_secret([9u8; 32])
        .algorithms([Algorithm::ES256, Algorithm::HS256])
        .build()
        .unwrap();
    // Signed with the public key's JSON (and with its x coordinate) as the HMAC secret, under
    // its kid (no HMAC key has it) and without one (the configured secret is the only
    // candidate, and it is not that key).
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    for secret in [jwk.to_string().into_bytes(), x] {
        for (header, refused) in [
            (r#"{"alg":"HS256","kid":"k"}"#, AuthErrorKind::UnknownKey),
            (r#"{"alg":"HS256"}"#, AuthErrorKind::InvalidToken),
        ] {
            let header = URL_SAFE_NO_PAD.encode(header);
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims().to_string()));
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            assert_eq!(check(&v, &token).unwrap_err(), refused);
        }
    }
}

#[test]
fn a_given_digest_is_what_the_signature_is_checked_against() {
    use aws_lc_rs::digest::{digest, SHA256, SHA384};
    for alg in ["ES256", "RS256", "PS256"] {
        let signer = Signer::new(alg);
        let jwk = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(signer.jwk("k")).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let algorithm = jose::algorithm(alg).unwrap();
        let parsed = native::NativeKeys::parse(&key, &[algorithm]);
        let parsed = parsed.get(algorithm).unwrap();
        let signature = signer.sign(b"signed");
        let verify = |digest| native::verify(parsed, algorithm, b"signed", digest, &signature);
        assert!(verify(None), "{alg}");
        let (right, wrong) = (digest(&SHA256, b"signed"), digest(&SHA256, b"other"));
        assert!(verify(Some(&right)), "{alg}");
        assert!(!verify(Some(&wrong)), "{alg}");
        // A digest of another algorithm is not used: the message is hashed.
        let sha384 = digest(&SHA384, b"other");
        assert!(verify(Some(&sha384)), "{alg}");
    }
}
