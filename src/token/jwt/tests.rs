//! Tests of [`JwtValidator`]: tokens signed by jsonwebtoken's own `encode`, as an authorization
//! server signs them, with the process-wide provider installed by `sign`.
#![allow(clippy::disallowed_methods)]

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use serde_json::Value;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

fn now() -> u64 {
    unix_now()
}

fn hmac_validator() -> JwtValidator {
    JwtValidator::builder("https://as.test", "https://api.test")
        .hmac_secret(SECRET)
        .algorithms([Algorithm::HS256])
        .leeway(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn sign(claims: Value) -> String {
    crate::test_helpers::install_jose_default();
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn claims() -> Value {
    json!({"iss": "https://as.test", "aud": "https://api.test", "sub": "alice",
           "exp": now() + 60, "cnf": {"x5t#S256": TP}})
}

fn check(v: &JwtValidator, token: &str) -> Result<AccessToken, AuthErrorKind> {
    match v.validate_now(token) {
        Ok(verified) => Ok(verified.token),
        Err(Pending::Done(e)) => Err(e.kind()),
        Err(Pending::Fetch) => Err(AuthErrorKind::KeysUnavailable),
    }
}

#[test]
fn a_valid_token_yields_its_binding() {
    let t = check(&hmac_validator(), &sign(claims())).unwrap();
    assert_eq!(t.subject(), Some("alice"));
    assert_eq!(t.thumbprint().unwrap().to_string(), TP);
}

#[test]
fn lifetime_issuer_and_audience_are_checked() {
    let v = hmac_validator();
    let mut c = claims();
    c["exp"] = json!(now() - 60);
    assert_eq!(
        check(&v, &sign(c)).unwrap_err(),
        AuthErrorKind::TokenExpired
    );
    let mut c = claims();
    c["nbf"] = json!(now() + 60);
    assert_eq!(
        check(&v, &sign(c)).unwrap_err(),
        AuthErrorKind::TokenNotYetValid
    );
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert_eq!(
        check(&v, &sign(c)).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
    let mut c = claims();
    c["aud"] = json!(["https://other.test"]);
    assert_eq!(
        check(&v, &sign(c)).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&v, &sign(c)).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
}

#[test]
fn algorithms_outside_the_allow_list_are_refused() {
    let v = JwtValidator::builder("https://as.test", "https://api.test")
        .hmac_secret(SECRET)
        .algorithms([Algorithm::HS384])
        .build()
        .unwrap();
    assert_eq!(
        check(&v, &sign(claims())).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
}

#[test]
fn garbage_is_an_invalid_token_not_a_panic() {
    let v = hmac_validator();
    for token in [
        "",
        ".",
        "..",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        "\u{0}",
        "a.b.c.d",
    ] {
        assert_eq!(
            check(&v, token).unwrap_err(),
            AuthErrorKind::InvalidToken,
            "{token:?}"
        );
    }
}

#[test]
fn es256_tokens_verify_with_the_selected_backend() {
    crate::test_helpers::install_jose_default();
    // Runs under each crypto feature in CI: aws-lc-rs, and rust-crypto alone.
    let key = crate::test_helpers::p256_key();
    let v = JwtValidator::builder("https://as.test", "https://api.test")
        .public_key_pem(Algorithm::ES256, key.public_key_pem())
        .build()
        .unwrap();
    let signing = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let token = encode(&Header::new(Algorithm::ES256), &claims(), &signing).unwrap();
    assert_eq!(check(&v, &token).unwrap().subject(), Some("alice"));
    let other = crate::test_helpers::p256_key();
    let forged = encode(
        &Header::new(Algorithm::ES256),
        &claims(),
        &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(check(&v, &forged).unwrap_err(), AuthErrorKind::InvalidToken);
}

#[test]
fn typ_at_jwt_can_be_required() {
    let v = JwtValidator::builder("https://as.test", "https://api.test")
        .hmac_secret(SECRET)
        .algorithms([Algorithm::HS256])
        .require_at_jwt()
        .build()
        .unwrap();
    assert_eq!(
        check(&v, &sign(claims())).unwrap_err(),
        AuthErrorKind::InvalidToken
    );
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+JWT".into());
    let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
    assert!(check(&v, &token).is_ok());
}

#[test]
fn a_refused_token_says_which_claim_failed() {
    let v = hmac_validator();
    let detail = |c: Value| match v.validate_now(&sign(c)) {
        Err(Pending::Done(err)) => err.detail(),
        _ => panic!("refused at once expected"),
    };
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert_eq!(detail(c), "wrong issuer");
    let mut c = claims();
    c["aud"] = json!("https://other.test");
    assert_eq!(detail(c), "wrong audience");
    let mut c = claims();
    c["iss"] = json!(["https://as.test"]);
    assert_eq!(detail(c), "a required claim is missing");
    let mut c = claims();
    c["nbf"] = json!("tomorrow");
    assert_eq!(detail(c), "malformed nbf");
}

#[test]
fn claims_of_every_shape_are_judged_as_jsonwebtoken_judged_them() {
    let v = hmac_validator();
    let judged = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims();
        edit(&mut c);
        check(&v, &sign(c)).map(|_| ())
    };
    // NumericDates: integers, or non-negative numbers rounded to whole seconds.
    assert!(judged(&|c| c["exp"] = json!(now() as f64 + 60.5)).is_ok());
    assert!(judged(&|c| c["nbf"] = json!(now() as f64 - 1.5)).is_ok());
    for exp in [json!(-1), json!("soon"), json!(null), json!(1e300)] {
        assert_eq!(
            judged(&|c| c["exp"] = exp.clone()),
            Err(AuthErrorKind::InvalidToken),
            "{exp}"
        );
    }
    // The leeway (5 s here) on both sides.
    assert!(judged(&|c| c["exp"] = json!(now() - 2)).is_ok());
    assert!(judged(&|c| c["nbf"] = json!(now() + 2)).is_ok());
    // An audience array naming us among others; arrays of other shapes are refused.
    assert!(judged(&|c| c["aud"] = json!(["https://x.test", "https://api.test"])).is_ok());
    for aud in [json!([]), json!(["https://api.test", 5]), json!({"a": 1})] {
        assert_eq!(
            judged(&|c| c["aud"] = aud.clone()),
            Err(AuthErrorKind::InvalidToken),
            "{aud}"
        );
    }
}

#[test]
fn a_token_with_crit_in_its_header_is_refused() {
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
    let Err(Pending::Done(err)) = hmac_validator().validate_now(&token) else {
        panic!("refused at once expected")
    };
    assert_eq!(err.detail(), "the JOSE header has crit");
}

#[tokio::test]
async fn unreachable_keys_are_a_503_with_the_cause_as_source() {
    use std::error::Error as _;
    // Nothing listens on a port just released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let v = JwtValidator::builder("https://as.test", "https://api.test")
        .jwks_url(format!("http://{addr}/jwks"))
        .insecure_allow_http()
        .build()
        .unwrap();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#);
    let token = format!("{header}.e30.c2ln");
    let err = v.validate(&token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    let fetch = err.source().expect("the fetch error as source");
    assert!(
        fetch.source().is_some_and(|e| e.is::<reqwest::Error>()),
        "{fetch:?}"
    );
    assert!(!format!("{err:?}").contains(&token));
}

/// The validator's cache, with what it holds for `token` (by the JWT caches' key).
fn cached(v: &JwtValidator, token: &str) -> (usize, bool) {
    let cache = v.0.cache.as_ref().expect("cache on");
    (cache.len(), cache.get(&TokenKey::of_jwt(token)).is_some())
}

#[tokio::test]
async fn a_token_with_a_cached_tokens_signing_input_and_another_signature_is_verified_and_refused()
{
    let v = hmac_validator();
    let token = sign(claims());
    assert!(v.validate(&token).await.is_ok());
    assert_eq!(cached(&v, &token), (1, true));
    let (input, signature) = token.rsplit_once('.').unwrap();
    let flipped = {
        let mut s = signature.as_bytes().to_vec();
        s[0] = if s[0] == b'A' { b'B' } else { b'A' };
        String::from_utf8(s).unwrap()
    };
    // Whatever part of the token an attacker keeps or changes, the cached verdict is not its.
    for forged in [
        format!("{input}.{flipped}"),
        format!("{input}.{}", &signature[1..]),
        format!("{input}.{signature}A"),
        format!("{input}."),
        input.to_owned(),
        format!("{token}.{signature}"),
    ] {
        assert_eq!(
            v.validate(&forged).await.map_err(|e| e.kind()).unwrap_err(),
            AuthErrorKind::InvalidToken,
            "{forged}"
        );
    }
    // Refusals are not cached, and did not displace or poison the valid token's entry.
    assert_eq!(cached(&v, &token), (1, true));
    assert_eq!(v.validate(&token).await.unwrap().subject(), Some("alice"));
}

#[tokio::test]
async fn a_forgery_validated_first_does_not_poison_the_valid_tokens_entry() {
    let v = hmac_validator();
    let token = sign(claims());
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    for _ in 0..3 {
        assert!(v.validate(&forged).await.is_err());
    }
    assert_eq!(cached(&v, &token), (0, false));
    assert!(v.validate(&token).await.is_ok());
    assert_eq!(cached(&v, &token), (1, true));
    assert!(v.validate(&forged).await.is_err(), "still refused after");
}
