//! Every constructor that leads to a signature or a signature check, built alone in a process
//! where nothing else ran ([`runs_alone`]) and driven through a request or a signature.
//!
//! This test binary is built with both crypto backends whenever `--all-features` is on: exactly
//! the configuration in which jsonwebtoken's own provider selection panics. So each test also
//! checks, at its end, that certbound never touched jsonwebtoken's process-wide provider (had it
//! read it, jsonwebtoken would have fixed it for good, and installing one would fail).
//!
//! The tokens and proofs the constructors check are signed here with aws-lc-rs directly, and
//! the proofs certbound signs are verified with aws-lc-rs directly: nothing of certbound's or of
//! jsonwebtoken's is the oracle. Every proof and token names its Ed25519 algorithm `Ed25519`
//! (RFC 9864) where the test uses an Ed25519 key.

use std::convert::Infallible;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ED25519,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::authorization_server::TokenEndpointDpop;
use certbound::dpop::{Dpop, DpopKey};
use certbound::token::PresentedToken;
use certbound::{AccessToken, Algorithm, BoundTokenLayer, ConnectionInfo, JwtValidator};
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower::{Layer as _, ServiceExt as _};

use crate::common::{now, runs_alone};

const API: &str = "https://api.test/r";
const TOKEN_ENDPOINT: &str = "https://as.test/token";

/// A key of the test's own, signing with aws-lc-rs.
enum RawKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl RawKey {
    fn p256() -> Self {
        Self::P256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key"))
    }

    fn ed25519() -> Self {
        Self::Ed25519(Ed25519KeyPair::generate().expect("Ed25519 key"))
    }

    /// The public JWK's required members (RFC 7638 order).
    fn jwk(&self) -> Value {
        match self {
            Self::P256(key) => {
                let point = key.public_key().as_ref();
                json!({"crv": "P-256", "kty": "EC",
                       "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                       "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
            }
            Self::Ed25519(key) => json!({"crv": "Ed25519", "kty": "OKP",
                "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref())}),
        }
    }

    /// RFC 7638: SHA-256 of the required members, sorted, without whitespace.
    fn jkt(&self) -> String {
        // serde_json's maps are sorted, and `to_string` writes no whitespace.
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.jwk().to_string()))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match self {
            Self::P256(key) => key
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            Self::Ed25519(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A DPoP proof whose header says `alg`, for `method` and `url`, with `ath` for `token`.
    fn proof(&self, alg: &str, method: &str, url: &str, token: Option<&str>) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk()});
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(rand_bytes()), "htm": method, "htu": url, "iat": now(),
        });
        if let Some(token) = token {
            claims["ath"] = URL_SAFE_NO_PAD.encode(Sha256::digest(token)).into();
        }
        self.sign(&header, &claims)
    }
}

fn rand_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    bytes
}

/// Whether jsonwebtoken's process-wide provider is still untouched: installing one succeeds.
/// (It is installed here, at the end of a test alone in its process, so nothing comes after.)
fn jsonwebtoken_default_untouched() -> bool {
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .is_ok()
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request<String> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(String::new()).expect("request");
    request
        .extensions_mut()
        .insert(ConnectionInfo::new(([127, 0, 0, 1], 40000).into(), None));
    request
}

#[tokio::test]
async fn a_jwt_validator_alone_verifies_es256_and_ed25519_tokens_without_the_process_wide_provider()
{
    if !runs_alone("crypto_providers::a_jwt_validator_alone_verifies_es256_and_ed25519_tokens_without_the_process_wide_provider").await {
        return;
    }
    let es = RawKey::p256();
    let ed = RawKey::ed25519();
    let mut es_jwk = es.jwk();
    es_jwk["kid"] = "es".into();
    let mut ed_jwk = ed.jwk();
    ed_jwk["kid"] = "ed".into();
    // RFC 9864's name in the key set too.
    ed_jwk["alg"] = "Ed25519".into();
    let validator = JwtValidator::builder("https://as.test", "https://api.test")
        .jwks_json(json!({"keys": [es_jwk, ed_jwk]}).to_string())
        .build()
        .expect("validator");
    let claims = json!({"iss": "https://as.test", "aud": "https://api.test", "sub": "alice",
                        "exp": now() + 60});
    let es_token = es.sign(&json!({"alg": "ES256", "kid": "es"}), &claims);
    let ed_token = ed.sign(&json!({"alg": "Ed25519", "kid": "ed"}), &claims);
    let eddsa_token = ed.sign(&json!({"alg": "EdDSA", "kid": "ed"}), &claims);
    for token in [&es_token, &ed_token, &eddsa_token] {
        let access = certbound::ValidateToken::validate(&validator, token)
            .await
            .expect("a valid token");
        assert_eq!(access.subject(), Some("alice"));
    }
    // Forged: the Ed25519 key's signature under the ES256 key's kid, and an Ed25519 header on
    // a P-256 signature.
    let forged = ed.sign(&json!({"alg": "Ed25519", "kid": "es"}), &claims);
    let misnamed = es.sign(&json!({"alg": "Ed25519", "kid": "es"}), &claims);
    for token in [&forged, &misnamed] {
        let refused = certbound::ValidateToken::validate(&validator, token).await;
        assert!(refused.is_err(), "{token}");
    }
    assert!(jsonwebtoken_default_untouched());
}

#[tokio::test]
async fn a_dpop_resource_server_with_its_own_validator_alone_answers_every_proof() {
    if !runs_alone(
        "crypto_providers::a_dpop_resource_server_with_its_own_validator_alone_answers_every_proof",
    )
    .await
    {
        return;
    }
    // The black-box finding: DPoP with a validator that builds no JwtValidator (introspection,
    // or the application's own), both backends compiled in. The proof check panicked.
    for (key, alg) in [
        (RawKey::p256(), "ES256"),
        (RawKey::ed25519(), "EdDSA"),
        (RawKey::ed25519(), "Ed25519"),
    ] {
        let jkt = key.jkt();
        let validate = move |presented: PresentedToken<'_>| {
            let known = presented.token() == "opaque-token";
            let claims = json!({"sub": "alice", "cnf": {"jkt": jkt}});
            async move {
                match (known, claims) {
                    (true, Value::Object(claims)) => AccessToken::from_claims(claims),
                    _ => Err(certbound::AuthErrorKind::TokenInactive.into()),
                }
            }
        };
        let service = BoundTokenLayer::new(validate)
            .dpop(Dpop::new())
            .layer(tower::service_fn(|_: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        let proof = key.proof(alg, "GET", API, Some("opaque-token"));
        let headers = [("authorization", "DPoP opaque-token"), ("dpop", &proof)];
        let response = service
            .clone()
            .oneshot(request("GET", API, &headers))
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::OK, "{alg}");
        // The same proof again: a replay.
        let response = service
            .oneshot(request("GET", API, &headers))
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{alg}");
    }
    // `Ed25519` with a P-256 key: the name must fit the key.
    let key = RawKey::p256();
    let proof = key.proof("Ed25519", "GET", API, Some("opaque-token"));
    let service = BoundTokenLayer::new(|_: PresentedToken<'_>| async {
        Err::<AccessToken, _>(certbound::AuthErrorKind::TokenInactive.into())
    })
    .dpop(Dpop::new())
    .layer(tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let headers = [("authorization", "DPoP opaque-token"), ("dpop", &proof)];
    let response = service
        .oneshot(request("GET", API, &headers))
        .await
        .unwrap_or_else(|never| match never {});
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert!(challenge.contains("EdDSA Ed25519"), "{challenge}");
    assert!(jsonwebtoken_default_untouched());
}

#[tokio::test]
async fn a_token_endpoint_dpop_check_alone_accepts_ed25519_proofs_by_either_name() {
    if !runs_alone(
        "crypto_providers::a_token_endpoint_dpop_check_alone_accepts_ed25519_proofs_by_either_name",
    )
    .await
    {
        return;
    }
    let endpoint = TokenEndpointDpop::new(Dpop::new(), TOKEN_ENDPOINT).expect("endpoint");
    for (key, alg) in [
        (RawKey::ed25519(), "Ed25519"),
        (RawKey::ed25519(), "EdDSA"),
        (RawKey::p256(), "ES256"),
    ] {
        let proof = key.proof(alg, "POST", TOKEN_ENDPOINT, None);
        let checked = endpoint
            .check(&request("POST", TOKEN_ENDPOINT, &[("dpop", &proof)]))
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"))
            .expect("a proof");
        assert_eq!(checked.jkt().to_string(), key.jkt(), "{alg}");
    }
    let misnamed = RawKey::p256().proof("Ed25519", "POST", TOKEN_ENDPOINT, None);
    let refused = endpoint
        .check(&request("POST", TOKEN_ENDPOINT, &[("dpop", &misnamed)]))
        .await;
    assert!(refused.is_err());
    assert!(jsonwebtoken_default_untouched());
}

#[tokio::test]
async fn a_dpop_key_alone_signs_proofs_that_verify_independently() {
    if !runs_alone("crypto_providers::a_dpop_key_alone_signs_proofs_that_verify_independently")
        .await
    {
        return;
    }
    for (alg, fully_specified, name) in [
        (Algorithm::ES256, false, "ES256"),
        (Algorithm::EdDSA, false, "EdDSA"),
        (Algorithm::EdDSA, true, "Ed25519"),
    ] {
        // The client's proof signer: a generated key, saved and loaded again.
        let generated = DpopKey::generate(alg).expect("key");
        let key = DpopKey::from_pkcs8_pem(generated.to_pkcs8_pem().as_bytes())
            .expect("PKCS#8")
            .fully_specified_alg(fully_specified);
        let proof = key.proof("GET", API).sign().expect("proof");
        let mut parts = proof.split('.');
        let (header, claims, signature) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], name);
        assert_eq!(header["typ"], "dpop+jwt");
        let jwk = &header["jwk"];
        let public = match name {
            "ES256" => {
                let (x, y) = (jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
                [
                    vec![4u8],
                    URL_SAFE_NO_PAD.decode(x).unwrap(),
                    URL_SAFE_NO_PAD.decode(y).unwrap(),
                ]
                .concat()
            }
            _ => URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap(),
        };
        let verifier = match name {
            "ES256" => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public),
            _ => UnparsedPublicKey::new(&ED25519, public),
        };
        let input = format!("{}.{claims}", proof.split('.').next().unwrap());
        verifier
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .unwrap_or_else(|_| panic!("{name}: the proof's signature verifies"));
    }
    assert!(jsonwebtoken_default_untouched());
}
