//! Tests of the issuer resolver: a closure looking tenants up in a `Mutex<HashMap>` that stands
//! for the application's database, counting how often it is asked; HMAC tokens as in the set's
//! own tests; tokio's paused clock for the lifetimes (no real sleeps).
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::watch;

use super::super::tests::{hmac, sign, A, B, SECRET_A, SECRET_B};
use super::*;
use crate::token::ValidateToken;

/// The application's tenants, and how often the resolver asked about them.
#[derive(Clone, Default)]
struct Db {
    tenants: Arc<Mutex<HashMap<String, JwtValidator>>>,
    calls: Arc<AtomicUsize>,
}

impl Db {
    fn add(&self, validator: JwtValidator) {
        let issuer = validator.issuer().to_owned();
        self.tenants.lock().unwrap().insert(issuer, validator);
    }

    fn drop_tenant(&self, issuer: &str) {
        self.tenants.lock().unwrap().remove(issuer);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Answers with a clone of the stored validator: the same one each time.
    fn resolver(&self) -> impl ResolveIssuer {
        let db = self.clone();
        move |issuer: &str| {
            db.calls.fetch_add(1, Ordering::SeqCst);
            let found = db.tenants.lock().unwrap().get(issuer).cloned();
            async move { Ok(found) }
        }
    }
}

fn resolving(db: &Db) -> IssuersBuilder {
    Issuers::builder().resolver(db.resolver())
}

/// A token of `issuer` signed with `secret`, made distinct by `n` (so not in the cache).
fn token(issuer: &str, secret: &[u8], n: u32) -> String {
    sign(issuer, secret, json!({ "n": n }))
}

fn refusal(result: Result<crate::AccessToken, AuthError>) -> (AuthErrorKind, &'static str) {
    let error = result.unwrap_err();
    (error.kind(), error.detail())
}

const UNTRUSTED: (AuthErrorKind, &str) = (AuthErrorKind::InvalidToken, "untrusted issuer");

#[tokio::test]
async fn a_tenant_is_trusted_on_first_use_then_served_from_the_set_without_asking_again() {
    let db = Db::default();
    db.add(hmac(A, SECRET_A));
    let issuers = resolving(&db).build().unwrap();
    assert!(!issuers.contains(A));

    let first = issuers.validate(&token(A, SECRET_A, 1)).await.unwrap();
    assert_eq!(first.issuer(), Some(A));
    assert_eq!(db.calls(), 1);
    assert!(issuers.contains(A) && issuers.len() == 1);
    for n in 2..10 {
        assert!(issuers.validate(&token(A, SECRET_A, n)).await.is_ok());
    }
    assert_eq!(db.calls(), 1, "later tokens find the tenant in the set");
    // The tenant's keys still judge its tokens.
    let forged = issuers.validate(&token(A, SECRET_B, 11)).await;
    assert_eq!(refusal(forged).1, "bad signature");
}

#[tokio::test]
async fn configured_and_inserted_issuers_are_never_asked_about() {
    let db = Db::default();
    let issuers = resolving(&db).jwt(hmac(A, SECRET_A)).build().unwrap();
    assert!(issuers.validate(&token(A, SECRET_A, 1)).await.is_ok());
    issuers.insert(hmac(B, SECRET_B));
    assert!(issuers.validate(&token(B, SECRET_B, 1)).await.is_ok());
    assert_eq!(db.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_not_a_tenant_answer_is_kept_for_its_ttl_and_then_asked_again() {
    let db = Db::default();
    let issuers = resolving(&db)
        .negative_ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    for n in 0..5 {
        assert_eq!(
            refusal(issuers.validate(&token(A, SECRET_A, n)).await),
            UNTRUSTED
        );
    }
    assert_eq!(db.calls(), 1, "asked once within the ttl");

    // Added to the database: still refused until the answer expires.
    db.add(hmac(A, SECRET_A));
    tokio::time::advance(Duration::from_secs(29)).await;
    let refused = issuers.validate(&token(A, SECRET_A, 5)).await;
    assert_eq!(refusal(refused), UNTRUSTED);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(issuers.validate(&token(A, SECRET_A, 6)).await.is_ok());
    assert_eq!(db.calls(), 2);
}

#[tokio::test]
async fn not_a_tenant_answers_are_bounded() {
    let db = Db::default();
    let issuers = resolving(&db).max_negative_entries(50).build().unwrap();
    for n in 0..500 {
        let made_up = format!("https://made-up-{n}.test");
        let refused = issuers.validate(&token(&made_up, SECRET_A, 0)).await;
        assert_eq!(refusal(refused), UNTRUSTED);
    }
    assert_eq!(db.calls(), 500);
    let resolver = issuers.0.resolver.as_ref().unwrap();
    assert!(resolver.answers.len() <= 50, "{}", resolver.answers.len());
    assert!(issuers.is_empty());
}

#[tokio::test]
async fn concurrent_first_uses_of_one_tenant_resolve_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let counted = Arc::clone(&calls);
    let issuers = Issuers::builder()
        .resolver(move |issuer: &str| {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut released = released.clone();
            let found = (issuer == A).then(|| hmac(A, SECRET_A));
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok(found)
            }
        })
        .build()
        .unwrap();
    let requests: Vec<_> = (0..20)
        .map(|n| tokio::spawn(issuers.validate(&token(A, SECRET_A, n))))
        .collect();
    tokio::task::yield_now().await;
    release.send(true).unwrap();
    for request in requests {
        assert!(request.await.unwrap().is_ok());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failing_resolver_is_a_503_and_is_not_kept() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let issuers = Issuers::builder()
        .resolver(move |_: &str| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err(ResolveError::new("connection refused")) }
        })
        .build()
        .unwrap();
    for n in 0..3 {
        let error = issuers.validate(&token(A, SECRET_A, n)).await.unwrap_err();
        // A 503 (gRPC 14) in the rejection table, never a 401.
        assert_eq!(error.kind(), AuthErrorKind::KeysUnavailable);
        assert_eq!(error.detail(), "cannot resolve the issuer");
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("cannot resolve the issuer: connection refused")
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "each token asks again");
    assert!(!issuers.contains(A));
}

#[tokio::test]
async fn a_resolver_that_panics_is_a_503_and_is_asked_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let issuers = Issuers::builder()
        .resolver(move |_: &str| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n > 0, "the first lookup panics");
                Ok(Some(hmac(A, SECRET_A)))
            }
        })
        .build()
        .unwrap();
    let error = issuers.validate(&token(A, SECRET_A, 0)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::KeysUnavailable);
    assert!(issuers.validate(&token(A, SECRET_A, 1)).await.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_validator_for_another_issuer_is_not_trusted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let issuers = Issuers::builder()
        .resolver(move |_: &str| {
            counted.fetch_add(1, Ordering::SeqCst);
            // Whatever is asked, issuer a's validator: a bug in the application.
            async { Ok(Some(hmac(A, SECRET_A))) }
        })
        .build()
        .unwrap();
    for n in 0..3 {
        let refused = issuers.validate(&token(B, SECRET_A, n)).await;
        assert_eq!(refusal(refused), UNTRUSTED);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "kept as not a tenant");
    assert!(!issuers.contains(A) && !issuers.contains(B));
}

#[tokio::test(start_paused = true)]
async fn resolved_tenants_expire_and_are_asked_again() {
    let db = Db::default();
    db.add(hmac(A, SECRET_A));
    let issuers = resolving(&db)
        .resolved_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let cached = token(A, SECRET_A, 0);
    assert!(issuers.validate(&cached).await.is_ok());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(issuers.validate(&cached).await.is_ok());
    assert!(issuers.validate(&token(A, SECRET_A, 1)).await.is_ok());
    assert_eq!(db.calls(), 1);

    // Expired: asked again, even for a token in the validated-token cache.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!issuers.contains(A));
    assert!(issuers.validate(&cached).await.is_ok());
    assert_eq!(db.calls(), 2);

    // Removed from the database: trusted until the answer expires, then refused.
    db.drop_tenant(A);
    assert!(issuers.validate(&cached).await.is_ok());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(refusal(issuers.validate(&cached).await), UNTRUSTED);
    assert_eq!(db.calls(), 3);
}

#[tokio::test]
async fn remove_forgets_what_the_resolver_answered() {
    let db = Db::default();
    let issuers = resolving(&db).build().unwrap();
    let refused = issuers.validate(&token(A, SECRET_A, 0)).await;
    assert_eq!(refusal(refused), UNTRUSTED);

    // A tenant signs up: the "not a tenant" answer is forgotten at once.
    db.add(hmac(A, SECRET_A));
    assert!(issuers.remove(A).is_none());
    let cached = token(A, SECRET_A, 1);
    assert!(issuers.validate(&cached).await.is_ok());

    // It leaves: forgotten at once too, its cached tokens included.
    db.drop_tenant(A);
    assert!(issuers.remove(A).is_some_and(|old| old.issuer() == A));
    assert_eq!(refusal(issuers.validate(&cached).await), UNTRUSTED);
    assert_eq!(db.calls(), 3);
}

#[tokio::test]
async fn beyond_the_resolutions_in_flight_a_token_is_refused_at_once() {
    let (release, released) = watch::channel(false);
    let issuers = Issuers::builder()
        .resolver(move |issuer: &str| {
            let mut released = released.clone();
            let found = hmac(issuer, SECRET_A);
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok(Some(found))
            }
        })
        .max_resolutions_in_flight(1)
        .build()
        .unwrap();
    let first = tokio::spawn(issuers.validate(&token(A, SECRET_A, 0)));
    while issuers
        .0
        .resolver
        .as_ref()
        .unwrap()
        .permits
        .available_permits()
        > 0
    {
        tokio::task::yield_now().await;
    }
    let error = issuers.validate(&token(B, SECRET_A, 0)).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.detail()),
        (
            AuthErrorKind::KeysUnavailable,
            "too many issuer resolutions in flight"
        )
    );
    release.send(true).unwrap();
    assert!(first.await.unwrap().is_ok());
    assert!(issuers.validate(&token(B, SECRET_A, 1)).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_resolver_that_does_not_answer_in_time_is_a_503() {
    let issuers = Issuers::builder()
        .resolver(|_: &str| std::future::pending())
        .resolve_timeout(Duration::from_secs(2))
        .max_resolutions_in_flight(1)
        .build()
        .unwrap();
    for n in 0..2 {
        let error = issuers.validate(&token(A, SECRET_A, n)).await.unwrap_err();
        assert_eq!(
            (error.kind(), error.detail()),
            (
                AuthErrorKind::KeysUnavailable,
                "the issuer resolver timed out"
            ),
            "its place is given back"
        );
    }
}

#[test]
fn resolver_settings_that_refuse_every_tenant_are_configuration_errors() {
    let resolver = |_: &str| async { Ok(None) };
    let zero_in_flight = Issuers::builder()
        .resolver(resolver)
        .max_resolutions_in_flight(0)
        .build();
    assert!(matches!(
        zero_in_flight.unwrap_err(),
        ConfigError::Invalid {
            option: "max_resolutions_in_flight",
            ..
        }
    ));
    let zero_timeout = Issuers::builder()
        .resolver(resolver)
        .resolve_timeout(Duration::ZERO)
        .build();
    assert!(matches!(
        zero_timeout.unwrap_err(),
        ConfigError::Invalid {
            option: "resolve_timeout",
            ..
        }
    ));
    // Without a resolver the settings are unused.
    assert!(Issuers::builder()
        .max_resolutions_in_flight(0)
        .build()
        .is_ok());
}

#[tokio::test]
async fn debug_output_shows_the_resolver_settings_and_no_secret() {
    let db = Db::default();
    db.add(hmac(A, SECRET_A));
    let builder = resolving(&db).negative_ttl(Duration::from_secs(7));
    assert!(format!("{builder:?}").contains("negative_ttl: 7s"));
    let issuers = builder.build().unwrap();
    assert!(issuers.validate(&token(A, SECRET_A, 0)).await.is_ok());
    let shown = format!("{issuers:?}");
    assert!(shown.contains(A) && shown.contains("Resolver"), "{shown}");
    assert!(!shown.contains("secret of"), "{shown}");
    let error = ResolveError::new("db down");
    assert_eq!(
        format!("{error:?}"),
        r#"ResolveError(cannot resolve the issuer: db down)"#
    );
}
