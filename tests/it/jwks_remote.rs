//! Remote keys: a JWKS URL or discovery against a real HTTPS server (`JwksServer`), behind a
//! protected application served by `certbound::serve`.

use std::time::Duration;

use crate::common::*;
use certbound::token::JwtValidatorBuilder;
use certbound::ValidateToken as _;
use certbound::{AuthErrorKind, BoundTokenLayer, ConfigError, JwtValidator};
use reqwest::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const UNKNOWN_KEY: &str = "unknown signing key";

/// The resource server: its own PKI, Alice as the client, `/whoami` behind the validator.
struct Resource {
    alice: ClientIdentity,
    client: reqwest::Client,
    client_http1: reqwest::Client,
    server: TestServer,
    /// Tokens' `iss`.
    issuer: String,
}

impl Resource {
    async fn start(validator: JwtValidator, issuer: &str) -> Resource {
        let pki = Pki::new("resource-ca");
        let alice = pki.client_identity("alice");
        let app = whoami_app(BoundTokenLayer::new(validator));
        let server = TestServer::start(ca_verified_tls(&pki), app).await;
        Resource {
            client: https_client(&pki.ca_der(), Some(&alice)),
            client_http1: https_client_http1(&pki.ca_der(), Some(&alice)),
            alice,
            server,
            issuer: issuer.to_owned(),
        }
    }

    /// Alice's good claims for this issuer, signed by `key`.
    fn token(&self, key: &TestKey) -> String {
        let mut claims = claims_bound_to(&self.alice.x5t_s256());
        claims["iss"] = json!(self.issuer);
        key.sign(&claims)
    }

    async fn request(&self, token: &str) -> reqwest::Response {
        get_with_token(&self.client, &self.server.url("/whoami"), token).await
    }

    async fn assert_ok(&self, key: &TestKey) {
        let response = self.request(&self.token(key)).await;
        assert_eq!(response.status(), 200, "{:?}", key.kid());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["thumbprint"], self.alice.x5t_s256().as_str());
    }

    async fn assert_unknown_key(&self, key: &TestKey) {
        let token = self.token(key);
        let response = self.request(&token).await;
        assert_invalid_token(&response, &token, UNKNOWN_KEY);
    }

    async fn assert_unavailable(&self, key: &TestKey) {
        let token = self.token(key);
        for client in [&self.client, &self.client_http1] {
            let response = get_with_token(client, &self.server.url("/whoami"), &token).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        }
    }
}

/// A validator for [`ISSUER`] with keys from `jwks`'s `/jwks`, trusting only its CA.
/// A validator that may refresh as often as a test needs (no minimum interval).
fn refreshing_freely(builder: JwtValidatorBuilder) -> JwtValidator {
    builder
        .min_refresh_interval(Duration::ZERO)
        .build()
        .expect("validator")
}

fn remote(jwks: &JwksServer) -> JwtValidatorBuilder {
    JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url(jwks.url(JWKS_PATH))
        .trust_root(jwks.ca_der())
        .only_trust_roots()
}

/// A validator that discovers its keys from `jwks`, whose base URL is the issuer.
fn discovering(jwks: &JwksServer) -> JwtValidatorBuilder {
    JwtValidator::builder(jwks.base_url(), AUDIENCE)
        .discover()
        .trust_root(jwks.ca_der())
        .only_trust_roots()
}

#[tokio::test]
async fn keys_are_fetched_on_first_use_and_then_cached() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = remote(&jwks).build().unwrap();
    let rs = Resource::start(validator, ISSUER).await;
    assert_eq!(jwks.hits(JWKS_PATH), 0, "build must not fetch");

    rs.assert_ok(&k1).await;
    assert_eq!(jwks.hits(JWKS_PATH), 1);
    for _ in 0..5 {
        rs.assert_ok(&k1).await;
    }
    assert_eq!(jwks.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn rotated_signing_key_is_accepted_after_one_refresh() {
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = refreshing_freely(remote(&jwks));
    let rs = Resource::start(validator, ISSUER).await;
    rs.assert_ok(&k1).await;
    assert_eq!(jwks.hits(JWKS_PATH), 1);

    // The authorization server rotates: k2 appears next to k1.
    jwks.set_jwks(crate::common::jwks(&[&k1, &k2]));
    rs.assert_ok(&k2).await;
    assert_eq!(
        jwks.hits(JWKS_PATH),
        2,
        "exactly one refresh for the new kid"
    );
    rs.assert_ok(&k2).await;
    rs.assert_ok(&k1).await;
    assert_eq!(jwks.hits(JWKS_PATH), 2);

    // An RSA key and an Ed25519 key appear later; both are picked up the same way.
    let k3 = TestKey::rs256("k3");
    let k4 = TestKey::eddsa("k4");
    jwks.set_jwks(crate::common::jwks(&[&k2, &k3, &k4]));
    rs.assert_ok(&k3).await;
    rs.assert_ok(&k4).await;
    assert_eq!(jwks.hits(JWKS_PATH), 3);
}

#[tokio::test]
async fn unknown_kids_trigger_at_most_one_fetch_per_refresh_interval() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    // The default minimum refresh interval (10 s).
    let validator = remote(&jwks).build().unwrap();
    let rs = Resource::start(validator, ISSUER).await;
    rs.assert_ok(&k1).await;
    let before = jwks.hits(JWKS_PATH);
    assert_eq!(before, 1);

    for i in 0..20 {
        let forged = TestKey::es256(&format!("forged-{i}"));
        rs.assert_unknown_key(&forged).await;
    }
    assert!(
        jwks.hits(JWKS_PATH) <= before + 1,
        "{} fetches",
        jwks.hits(JWKS_PATH)
    );
    rs.assert_ok(&k1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_an_unknown_kid_coalesce_into_one_fetch() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = remote(&jwks).build().unwrap();
    let rs = std::sync::Arc::new(Resource::start(validator, ISSUER).await);
    let forged = std::sync::Arc::new(TestKey::es256("forged"));

    // Nothing is cached yet: every request needs the keys.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (rs, forged) = (rs.clone(), forged.clone());
        tasks.spawn(async move { rs.assert_unknown_key(&forged).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("request task");
    }
    assert_eq!(jwks.hits(JWKS_PATH), 1);
    rs.assert_ok(&k1).await;
    assert_eq!(jwks.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn concurrent_validations_join_the_fetch_in_flight() {
    // No minimum interval here: only single flight can keep this at one fetch. On the
    // current-thread runtime all 50 validations start before the fetch task first runs.
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = refreshing_freely(remote(&jwks));
    let x5t = Pki::self_signed_client("alice").x5t_s256();
    let good = k1.sign(&claims_bound_to(&x5t));
    let forged = TestKey::es256("forged").sign(&claims_bound_to(&x5t));

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let token = if i % 2 == 0 { &good } else { &forged };
        let validation = validator.validate(token);
        tasks.spawn(async move { (i, validation.await) });
    }
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            (i, Ok(token)) => {
                assert_eq!(i % 2, 0);
                assert_eq!(token.thumbprint().unwrap().to_string(), x5t);
            }
            (i, Err(e)) => {
                assert_eq!(i % 2, 1);
                assert_eq!(e.kind(), AuthErrorKind::UnknownKey);
            }
        }
    }
    assert_eq!(jwks.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_endpoint_is_down() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = refreshing_freely(remote(&jwks));
    let rs = Resource::start(validator, ISSUER).await;
    rs.assert_ok(&k1).await;

    jwks.stop().await;
    rs.assert_ok(&k1).await;
    // An unknown kid makes the validator try (and fail) to refresh: the token is refused as
    // unknown, the cached keys survive the failed refresh, and nothing is 503.
    rs.assert_unknown_key(&TestKey::es256("k2")).await;
    rs.assert_ok(&k1).await;
}

#[tokio::test]
async fn unreachable_endpoint_with_nothing_cached_is_service_unavailable() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = refreshing_freely(remote(&jwks));
    jwks.stop().await;
    let rs = Resource::start(validator, ISSUER).await;
    rs.assert_unavailable(&k1).await;

    // gRPC callers get UNAVAILABLE.
    let response = rs
        .client
        .post(rs.server.url("/whoami"))
        .headers(bearer(&rs.token(&k1)))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "14");
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());

    // Token problems that need no keys are still reported as such.
    let response = send(&rs.client, &rs.server.url("/whoami"), Default::default()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(www_authenticate(&response).as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn failing_endpoint_is_service_unavailable_until_it_recovers() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = refreshing_freely(remote(&jwks));
    let rs = Resource::start(validator, ISSUER).await;

    jwks.set_status(JWKS_PATH, StatusCode::INTERNAL_SERVER_ERROR);
    rs.assert_unavailable(&k1).await;
    jwks.clear_status(JWKS_PATH);
    jwks.set_raw_body(JWKS_PATH, "{not json");
    rs.assert_unavailable(&k1).await;
    jwks.set_raw_body(JWKS_PATH, r#"{"no_keys": []}"#);
    rs.assert_unavailable(&k1).await;

    jwks.clear_raw_body(JWKS_PATH);
    rs.assert_ok(&k1).await;
}

#[tokio::test]
async fn oversized_jwks_response_is_service_unavailable() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    assert!(crate::common::jwks(&[&k1]).to_string().len() > 100);
    let validator = remote(&jwks).max_response_bytes(100).build().unwrap();
    let rs = Resource::start(validator, ISSUER).await;
    rs.assert_unavailable(&k1).await;
    assert!(jwks.hits(JWKS_PATH) >= 1);
}

#[tokio::test]
async fn discovery_prefers_rfc8414_metadata() {
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = refreshing_freely(discovering(&jwks));
    let rs = Resource::start(validator, &jwks.base_url()).await;
    assert_eq!(jwks.hits(AS_METADATA_PATH), 0, "build must not fetch");

    rs.assert_ok(&k1).await;
    assert_eq!(jwks.hits(AS_METADATA_PATH), 1);
    assert_eq!(jwks.hits(OIDC_CONFIG_PATH), 0);
    assert_eq!(jwks.hits(JWKS_PATH), 1);

    // A rotation refreshes the JWKS only; the metadata is not fetched again.
    jwks.set_jwks(crate::common::jwks(&[&k1, &k2]));
    rs.assert_ok(&k2).await;
    assert_eq!(jwks.hits(JWKS_PATH), 2);
    assert_eq!(jwks.hits(AS_METADATA_PATH), 1);

    // Tokens of another issuer are still refused.
    let mut claims = claims_bound_to(&rs.alice.x5t_s256());
    claims["iss"] = json!(ISSUER);
    let token = k1.sign(&claims);
    let response = rs.request(&token).await;
    assert_invalid_token(&response, &token, "invalid access token");
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    jwks.set_status(AS_METADATA_PATH, StatusCode::NOT_FOUND);
    let validator = discovering(&jwks).build().unwrap();
    let rs = Resource::start(validator, &jwks.base_url()).await;

    rs.assert_ok(&k1).await;
    assert_eq!(jwks.hits(AS_METADATA_PATH), 1);
    assert_eq!(jwks.hits(OIDC_CONFIG_PATH), 1);
    assert_eq!(jwks.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn discovery_with_a_mismatched_issuer_is_service_unavailable() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    jwks.set_issuer("https://evil.test".to_owned());
    let validator = refreshing_freely(discovering(&jwks));
    let rs = Resource::start(validator, &jwks.base_url()).await;
    rs.assert_unavailable(&k1).await;
    assert_eq!(
        jwks.hits(JWKS_PATH),
        0,
        "keys of an unverified issuer are never fetched"
    );

    // Only the OpenID document is there, and it names another issuer: the same.
    jwks.set_status(AS_METADATA_PATH, StatusCode::NOT_FOUND);
    rs.assert_unavailable(&k1).await;
    assert!(jwks.hits(OIDC_CONFIG_PATH) >= 1);
    assert_eq!(jwks.hits(JWKS_PATH), 0);

    // Once the metadata is right, discovery succeeds.
    jwks.set_issuer(jwks.base_url());
    rs.assert_ok(&k1).await;
}

#[tokio::test]
async fn discovered_jwks_uri_must_be_https() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    jwks.set_jwks_uri(format!("http://{}{}", jwks.addr(), JWKS_PATH));
    let validator = discovering(&jwks).build().unwrap();
    let rs = Resource::start(validator, &jwks.base_url()).await;
    rs.assert_unavailable(&k1).await;
    assert_eq!(jwks.hits(JWKS_PATH), 0);
}

#[tokio::test]
async fn prefetch_fetches_the_keys_before_the_first_request() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;
    let validator = remote(&jwks).build().unwrap();
    validator.prefetch().await.expect("prefetch");
    assert_eq!(jwks.hits(JWKS_PATH), 1);

    let rs = Resource::start(validator.clone(), ISSUER).await;
    rs.assert_ok(&k1).await;
    assert_eq!(
        jwks.hits(JWKS_PATH),
        1,
        "the request used the prefetched keys"
    );

    // Discovery is part of prefetching.
    let validator = discovering(&jwks).build().unwrap();
    validator.prefetch().await.expect("prefetch with discovery");
    assert_eq!(jwks.hits(AS_METADATA_PATH), 1);
    assert_eq!(jwks.hits(JWKS_PATH), 2);

    // Static keys: nothing to fetch.
    static_validator(&[&k1]).prefetch().await.expect("static");
}

#[tokio::test]
async fn prefetch_fails_when_the_keys_cannot_be_fetched() {
    let k1 = TestKey::es256("k1");
    let jwks = JwksServer::start(crate::common::jwks(&[&k1])).await;

    jwks.set_status(JWKS_PATH, StatusCode::SERVICE_UNAVAILABLE);
    let validator = remote(&jwks).build().unwrap();
    let err = validator.prefetch().await.unwrap_err();
    assert_reason(&err, "503");

    // Discovery failing (issuer mismatch) fails the prefetch too.
    jwks.clear_status(JWKS_PATH);
    jwks.set_issuer("https://evil.test".to_owned());
    let err = discovering(&jwks)
        .build()
        .unwrap()
        .prefetch()
        .await
        .unwrap_err();
    assert_reason(&err, "issuer");

    // A server certificate from a CA the validator does not trust.
    let untrusting = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url(jwks.url(JWKS_PATH))
        .trust_root(Pki::new("other-ca").ca_der())
        .only_trust_roots()
        .build()
        .unwrap();
    let hits = jwks.hits(JWKS_PATH);
    let err = untrusting.prefetch().await.unwrap_err();
    assert_reason(&err, "");
    assert_eq!(
        jwks.hits(JWKS_PATH),
        hits,
        "no request over an untrusted connection"
    );

    // Nothing listening.
    let addr = jwks.addr();
    jwks.stop().await;
    let err = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url(format!("https://{addr}{JWKS_PATH}"))
        .build()
        .unwrap()
        .prefetch()
        .await
        .unwrap_err();
    assert_reason(&err, "");
}

/// A prefetch error says why, without being empty.
fn assert_reason(err: &certbound::token::KeyFetchError, expected: &str) {
    let text = err.to_string();
    let reason = text
        .strip_prefix("cannot fetch keys: ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!reason.trim().is_empty(), "{text}");
    assert!(reason.contains(expected), "{text}");
}

#[test]
fn non_https_key_urls_are_configuration_errors() {
    let err = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url("http://127.0.0.1:8080/jwks")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Url { .. }), "{err:?}");

    let err = JwtValidator::builder("http://issuer.test", AUDIENCE)
        .discover()
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Url { .. }), "{err:?}");

    for url in ["ftp://issuer.test/jwks", "127.0.0.1/jwks", "", "https://"] {
        let err = JwtValidator::builder(ISSUER, AUDIENCE)
            .jwks_url(url)
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::Url { .. }), "{url}: {err:?}");
    }

    // Explicitly allowed for development.
    JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url("http://127.0.0.1:8080/jwks")
        .insecure_allow_http()
        .build()
        .expect("http allowed on request");

    // Remote and static keys together are refused.
    let k1 = TestKey::es256("k1");
    let err = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url("https://issuer.test/jwks")
        .jwks_json(crate::common::jwks(&[&k1]).to_string())
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
}
