//! The validated-token cache of `JwtValidator`, observed from outside: signature verifications
//! are counted by a jsonwebtoken crypto provider that wraps aws-lc-rs (given to the validator
//! with `crypto_provider`), while real mTLS clients talk to a real server whose keys come from a
//! real HTTPS JWKS endpoint.
//!
//! One test function, run alone in a child process of the binary ([`runs_alone`]): the counter
//! is process-wide, and the test measures the validator's work under load, undisturbed by the
//! other tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::common::*;
use certbound::{BoundTokenLayer, JwtValidator, ValidateToken};
use jsonwebtoken::crypto::{aws_lc, CryptoProvider, JwtVerifier};
use jsonwebtoken::{Algorithm, DecodingKey};

static VERIFICATIONS: AtomicUsize = AtomicUsize::new(0);

fn counting_verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    VERIFICATIONS.fetch_add(1, Ordering::SeqCst);
    (aws_lc::DEFAULT_PROVIDER.verifier_factory)(alg, key)
}

fn counting_provider() -> &'static CryptoProvider {
    Box::leak(Box::new(CryptoProvider {
        verifier_factory: counting_verifier,
        ..aws_lc::DEFAULT_PROVIDER.clone()
    }))
}

fn verifications() -> usize {
    VERIFICATIONS.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signatures_are_verified_once_per_token_and_key_removal_ends_reuse() {
    if !runs_alone("jwt_cache::signatures_are_verified_once_per_token_and_key_removal_ends_reuse")
        .await
    {
        return;
    }
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    let jwks_server = JwksServer::start(jwks(&[&k1])).await;
    let validator = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_url(jwks_server.url(JWKS_PATH))
        .trust_root(jwks_server.ca_der())
        .only_trust_roots()
        .min_refresh_interval(Duration::ZERO)
        .crypto_provider(counting_provider())
        .build()
        .expect("validator");
    validator.prefetch().await.expect("keys");

    let pki = Pki::new("jwt-cache-clients");
    let alice = pki.client_identity("alice");
    let bob = pki.client_identity("bob");
    let server = TestServer::start(
        ca_verified_tls(&pki),
        whoami_app(BoundTokenLayer::new(validator.clone())),
    )
    .await;
    let url = server.url("/whoami");
    let token = k1.sign(&claims_bound_to(&alice.x5t_s256()));

    // 200 requests with one token over 4 connections, all at once: one verification.
    let before = verifications();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let client = https_client(&pki.ca_der(), Some(&alice));
        for _ in 0..50 {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            requests.spawn(async move { get_with_token(&client, &url, &token).await.status() });
        }
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("request"), 200);
    }
    assert_eq!(verifications() - before, 1, "one verification for 200 uses");

    // The cached token with another certificate: refused exactly as before, no verification.
    let as_bob = https_client(&pki.ca_der(), Some(&bob));
    let stolen = get_with_token(&as_bob, &url, &token).await;
    assert_invalid_token(&stolen, &token, "access token bound to another certificate");
    assert_eq!(verifications() - before, 1);

    // Another token: verified once more.
    let as_alice = https_client(&pki.ca_der(), Some(&alice));
    let other = k1.sign(&claims_bound_to(&alice.x5t_s256()).tap_sub("alice-2"));
    assert_eq!(get_with_token(&as_alice, &url, &other).await.status(), 200);
    assert_eq!(verifications() - before, 2);

    // One keep-alive connection alternating tokens (the connection remembers the last token's
    // cache key): each token is judged on its own, whatever came before it on the connection.
    let mut tampered = other.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let bobs = k1.sign(&claims_bound_to(&bob.x5t_s256()).tap_sub("bob"));
    let before_alternating = verifications();
    for _ in 0..3 {
        assert_eq!(get_with_token(&as_alice, &url, &other).await.status(), 200);
        let forged = get_with_token(&as_alice, &url, &tampered).await;
        assert_invalid_token(&forged, &tampered, "invalid access token");
        assert_eq!(get_with_token(&as_alice, &url, &token).await.status(), 200);
        let misbound = get_with_token(&as_alice, &url, &bobs).await;
        assert_invalid_token(
            &misbound,
            &bobs,
            "access token bound to another certificate",
        );
        // Not a b64token (the connection's last token was fine): still a malformed request.
        let malformed = format!("{token},");
        let response = get_with_token(&as_alice, &url, &malformed).await;
        assert_eq!(response.status(), 400, "invalid_request");
    }
    assert_eq!(
        verifications() - before_alternating,
        3 + 1,
        "the forgery every time (failures are not cached), Bob's token once"
    );

    // Threads racing on one new token directly at the validator: one verification.
    let racing = k1.sign(&claims_bound_to(&alice.x5t_s256()).tap_sub("alice-3"));
    let before_race = verifications();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (validator, racing, barrier) = (validator.clone(), racing.clone(), barrier.clone());
            let handle = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                barrier.wait();
                handle.block_on(validator.validate(&racing)).is_ok()
            })
        })
        .collect();
    for thread in threads {
        assert!(thread.join().expect("thread"), "every racer gets the token");
    }
    assert_eq!(
        verifications() - before_race,
        1,
        "racers share one verification"
    );

    // A keep-alive connection presenting the k1 token again and again: from its third request
    // on, the connection remembers the cache hit itself.
    let keeper = https_client(&pki.ca_der(), Some(&alice));
    for _ in 0..3 {
        assert_eq!(get_with_token(&keeper, &url, &token).await.status(), 200);
    }

    // The authorization server drops k1 for k2. A k2 token makes the server refresh its keys;
    // from then on the cached k1 token is not reused: it is verified again and refused, on
    // another connection and on the one that remembered it.
    jwks_server.set_jwks(jwks(&[&k2]));
    let rotated = k2.sign(&claims_bound_to(&alice.x5t_s256()));
    assert_eq!(
        get_with_token(&as_alice, &url, &rotated).await.status(),
        200
    );
    let response = get_with_token(&keeper, &url, &token).await;
    assert_invalid_token(&response, &token, "unknown signing key");
    let response = get_with_token(&as_alice, &url, &token).await;
    assert_invalid_token(&response, &token, "unknown signing key");

    // Without the cache, every use verifies.
    let uncached = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_json(jwks(&[&k2]).to_string())
        .no_cache()
        .crypto_provider(counting_provider())
        .build()
        .expect("validator");
    let before_uncached = verifications();
    for _ in 0..3 {
        uncached.validate(&rotated).await.expect("valid");
    }
    assert_eq!(verifications() - before_uncached, 3);
}

/// `claims.tap_sub("x")`: the same claims with another `sub` (so another token).
trait TapSub {
    fn tap_sub(self, sub: &str) -> Self;
}

impl TapSub for serde_json::Value {
    fn tap_sub(mut self, sub: &str) -> Self {
        self["sub"] = serde_json::Value::from(sub);
        self
    }
}
