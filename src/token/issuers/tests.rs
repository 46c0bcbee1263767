//! Tests of [`Issuers`]: HMAC tokens signed by jsonwebtoken's own `encode`, with the
//! process-wide provider installed by `sign`; remote keys and introspection endpoints on a port
//! where nothing listens, so that a call that should not happen shows as a 503.
#![allow(clippy::disallowed_methods)]

#[cfg(feature = "introspection")]
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub(super) const A: &str = "https://a.test";
pub(super) const B: &str = "https://b.test";
pub(super) const SECRET_A: &[u8] = b"secret of issuer a, 32 bytes or more";
pub(super) const SECRET_B: &[u8] = b"secret of issuer b, 32 bytes or more";

pub(super) fn hmac(issuer: &str, secret: &[u8]) -> JwtValidator {
    JwtValidator::builder(issuer, "https://api.test")
        .hmac_secret(secret)
        .algorithms([Algorithm::HS256])
        .build()
        .unwrap()
}

pub(super) fn sign(issuer: &str, secret: &[u8], extra: Value) -> String {
    crate::test_helpers::install_jose_default();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let mut claims = json!({"iss": issuer, "aud": "https://api.test", "sub": "alice", "exp": exp});
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A URL where nothing listens (a port just released).
fn closed_url(path: &str) -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}{path}")
}

fn remote(issuer: &str) -> JwtValidator {
    JwtValidator::builder(issuer, "https://api.test")
        .jwks_url(closed_url("/jwks"))
        .insecure_allow_http()
        .build()
        .unwrap()
}

fn two() -> Issuers {
    Issuers::builder()
        .jwt(hmac(A, SECRET_A))
        .jwt(hmac(B, SECRET_B))
        .build()
        .unwrap()
}

#[tokio::test]
async fn each_token_is_verified_by_the_keys_of_its_own_issuer() {
    let issuers = two();
    let token = issuers
        .validate(&sign(A, SECRET_A, json!({})))
        .await
        .unwrap();
    assert_eq!(token.issuer(), Some(A));
    let token = issuers
        .validate(&sign(B, SECRET_B, json!({})))
        .await
        .unwrap();
    assert_eq!(token.issuer(), Some(B));
    // Issuer b's name on a token signed with issuer a's key: b's keys refuse it.
    let forged = issuers.validate(&sign(B, SECRET_A, json!({}))).await;
    let error = forged.unwrap_err();
    assert_eq!(
        (error.kind(), error.detail()),
        (AuthErrorKind::InvalidToken, "bad signature")
    );
}

#[tokio::test]
async fn an_untrusted_issuer_is_refused_without_any_network_call() {
    // Were either validator asked, its key fetch would fail with a 503.
    let issuers = Issuers::builder()
        .jwt(remote(A))
        .jwt(remote(B))
        .build()
        .unwrap();
    // ES256 as the remote validators allow it; the signature is never looked at.
    let token = |claims: Value| {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#);
        format!(
            "{header}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    for token in [
        token(json!({"iss": "https://evil.test"})),
        token(json!({"iss": null})),
        token(json!({"iss": [A]})),
        token(json!({"sub": A})),
    ] {
        let error = issuers.validate(&token).await.unwrap_err();
        assert_eq!(
            (error.kind(), error.detail()),
            (AuthErrorKind::InvalidToken, "untrusted issuer")
        );
    }
    // A trusted issuer's token does reach its (unreachable) keys.
    let error = issuers
        .validate(&token(json!({"iss": A})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn a_token_that_is_not_a_jwt_is_an_invalid_token_without_introspection() {
    let issuers = two();
    for token in ["opaque-token", "", "a.b", "a.b.c.d", ".e30.", "e30.!!.c2ln"] {
        let error = issuers.validate(token).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::InvalidToken, "{token:?}");
    }
}

#[tokio::test]
async fn removed_and_replaced_issuers_no_longer_vouch_for_cached_tokens() {
    let issuers = two();
    let token = sign(A, SECRET_A, json!({}));
    assert!(issuers.validate(&token).await.is_ok());
    assert_eq!(issuers.0.cache.len(), 1);
    assert!(issuers.validate(&token).await.is_ok(), "from the cache");

    // Replaced by a validator with another key: the cached validation is not taken.
    let old = issuers.insert(hmac(A, SECRET_B));
    assert!(old.is_some_and(|old| old.issuer() == A));
    let error = issuers.validate(&token).await.unwrap_err();
    assert_eq!(error.detail(), "bad signature");

    // Back, then removed: refused at once, cached or not.
    issuers.insert(hmac(A, SECRET_A));
    assert!(issuers.validate(&token).await.is_ok());
    assert!(issuers.remove(A).is_some());
    assert!(!issuers.contains(A) && issuers.contains(B) && issuers.len() == 1);
    let error = issuers.validate(&token).await.unwrap_err();
    assert_eq!(error.detail(), "untrusted issuer");

    // Added while serving.
    let c = "https://c.test";
    assert!(issuers.insert(hmac(c, SECRET_A)).is_none());
    let token = issuers.validate(&sign(c, SECRET_A, json!({}))).await;
    assert_eq!(token.unwrap().issuer(), Some(c));
}

#[tokio::test]
async fn an_issuer_without_a_cache_is_validated_every_time() {
    let uncached = JwtValidator::builder(A, "https://api.test")
        .hmac_secret(SECRET_A)
        .algorithms([Algorithm::HS256])
        .no_cache()
        .build()
        .unwrap();
    let issuers = Issuers::builder().jwt(uncached).build().unwrap();
    assert!(issuers
        .validate(&sign(A, SECRET_A, json!({})))
        .await
        .is_ok());
    assert_eq!(issuers.0.cache.len(), 0);
}

#[test]
fn two_validators_for_one_issuer_are_a_configuration_error() {
    let error = Issuers::builder()
        .jwt(hmac(A, SECRET_A))
        .jwt(hmac(A, SECRET_B))
        .build()
        .unwrap_err();
    assert!(matches!(
        error,
        ConfigError::Invalid {
            option: "issuer",
            ..
        }
    ));
    assert!(Issuers::builder().build().unwrap().is_empty());
}

#[tokio::test]
async fn a_routed_token_is_refused_for_its_signature_first_and_for_its_claims_next() {
    // The claims are read to route the token, and checked then; what the check found is told
    // only once the signature verified, as by the issuer's own validator.
    let issuers = two();
    let alone = hmac(A, SECRET_A);
    let expired = json!({"exp": 1, "aud": "https://other.test"});
    let tokens = [
        sign(A, SECRET_B, expired.clone()),
        sign(A, SECRET_A, expired),
        sign(A, SECRET_A, json!({"aud": "https://other.test"})),
        sign(A, SECRET_A, json!({"cnf": "not an object"})),
        sign(A, SECRET_A, json!({})),
    ];
    let mut outcomes = Vec::new();
    for token in &tokens {
        let routed = issuers
            .validate(token)
            .await
            .map_err(|e| (e.kind(), e.detail().to_owned()));
        let direct = alone
            .validate(token)
            .await
            .map_err(|e| (e.kind(), e.detail().to_owned()));
        assert_eq!(routed.as_ref().err(), direct.as_ref().err());
        assert_eq!(routed.is_ok(), direct.is_ok());
        outcomes.push(routed.err());
    }
    let detail = |i: usize| outcomes[i].as_ref().map(|(_, d)| d.as_str());
    assert_eq!(detail(0), Some("bad signature"));
    assert_eq!(
        outcomes[1].as_ref().map(|(k, _)| *k),
        Some(AuthErrorKind::TokenExpired)
    );
    assert_eq!(detail(2), Some("wrong audience"));
    assert_eq!(detail(3), Some("cnf claim is not an object"));
    assert_eq!(outcomes[4], None);
}

#[test]
fn the_unverified_issuer_is_read_only_from_a_well_formed_payload() {
    use crate::token::fields::Loose;
    use crate::token::jwt::unverified_payload;
    let token = |payload: &str| format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
    let read = |token: &str| {
        let payload = unverified_payload(token)?;
        let fields = payload.fields().ok()?;
        fields
            .iss
            .as_ref()
            .and_then(Loose::as_str)
            .map(str::to_owned)
    };
    assert_eq!(
        read(&token(r#"{"iss":"a","x":[1,{}]}"#)).as_deref(),
        Some("a")
    );
    assert_eq!(read(&token(r#"{"iss":"a\/b"}"#)).as_deref(), Some("a/b"));
    let long = format!(r#"{{"pad":"{}","iss":"a"}}"#, "x".repeat(6 * 1024));
    assert_eq!(read(&token(&long)).as_deref(), Some("a"));
    // Given twice: no issuer at all (the validator refuses such a payload too), so routing and
    // checking cannot disagree.
    assert_eq!(read(&token(r#"{"iss":"a","iss":"b"}"#)), None);
    for bad in [
        token(r#"{"iss":1}"#),
        token(r#"["a"]"#),
        token(r#"{"sub":"a"}"#),
        token("not json"),
        format!("{}.x", token(r#"{"iss":"a"}"#)),
        token(r#"{"iss":"a"}"#).replacen("e30", "", 1),
    ] {
        assert_eq!(read(&bad), None, "{bad}");
    }
}

#[test]
fn debug_output_names_the_issuers_and_no_secret() {
    let shown = format!("{:?}", two());
    assert!(shown.contains(A) && shown.contains(B), "{shown}");
    assert!(!shown.contains("secret of"), "{shown}");
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn with_introspection_every_token_but_a_trusted_jwt_is_introspected() {
    let introspection = IntrospectionValidator::endpoint(closed_url("/introspect"))
        .client_secret_basic("api", "secret")
        .insecure_allow_http()
        .build()
        .unwrap();
    let issuers = Issuers::builder()
        .jwt(hmac(A, SECRET_A))
        .introspection(introspection)
        .max_cache_entries(10)
        .max_cache_bytes(1 << 20)
        .build()
        .unwrap();
    let token = issuers.validate(&sign(A, SECRET_A, json!({}))).await;
    assert_eq!(token.unwrap().issuer(), Some(A), "verified locally");
    // The endpoint is unreachable: a 503 shows the token went there.
    for token in ["opaque-token".to_owned(), sign(B, SECRET_B, json!({}))] {
        let error = tokio::time::timeout(Duration::from_secs(30), issuers.validate(&token))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::IntrospectionUnavailable);
    }
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn an_issuer_can_have_its_jwts_introspected_at_its_own_endpoint() {
    let endpoint = || {
        IntrospectionValidator::endpoint(closed_url("/introspect"))
            .client_secret_basic("api", "secret")
            .insecure_allow_http()
            .build()
            .unwrap()
    };
    let issuers = Issuers::builder()
        .jwt(hmac(A, SECRET_A))
        .introspect_issuer(B, endpoint())
        .build()
        .unwrap();
    assert!(issuers.contains(B));
    let token = issuers.validate(&sign(A, SECRET_A, json!({}))).await;
    assert_eq!(token.unwrap().issuer(), Some(A), "verified locally");
    // B's endpoint is unreachable: a 503 shows B's token went there, whatever its signature.
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        issuers.validate(&sign(B, SECRET_A, json!({}))),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::IntrospectionUnavailable);
    // An opaque token has no iss to route by: without a fallback endpoint it is refused.
    let error = issuers.validate("opaque-token").await.unwrap_err();
    assert_eq!(error.detail(), "untrusted issuer");
    // One issuer, two ways to check its tokens: a configuration mistake.
    let both = Issuers::builder()
        .jwt(hmac(A, SECRET_A))
        .introspect_issuer(A, endpoint())
        .build();
    assert!(matches!(
        both,
        Err(ConfigError::Invalid {
            option: "issuer",
            ..
        })
    ));
}
