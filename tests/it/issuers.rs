//! Several issuers behind one layer: `Issuers` with two issuers whose keys come from two real
//! HTTPS JWKS servers (`JwksServer`), and opaque tokens through a real introspection endpoint,
//! behind a protected application served by `certbound::serve` and reached over mutual TLS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use certbound::token::{JwtValidatorBuilder, ResolveError, ResolveIssuer};
use certbound::{AccessToken, BoundTokenLayer, Issuers, JwtValidator};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::common::*;

const INVALID_TOKEN: &str = "invalid access token";

/// One trusted issuer: its signing key and the JWKS server that publishes it.
struct Issuer {
    name: String,
    key: TestKey,
    jwks: JwksServer,
}

impl Issuer {
    async fn start(name: &str, kid: &str) -> Issuer {
        let key = TestKey::es256(kid);
        let jwks = JwksServer::start(crate::common::jwks(&[&key])).await;
        Issuer {
            name: name.to_owned(),
            key,
            jwks,
        }
    }

    fn builder(&self) -> JwtValidatorBuilder {
        JwtValidator::builder(&self.name, AUDIENCE)
            .jwks_url(self.jwks.url(JWKS_PATH))
            .trust_root(self.jwks.ca_der())
            .only_trust_roots()
    }

    fn validator(&self) -> JwtValidator {
        self.builder().build().expect("validator")
    }

    /// Good claims from this issuer, bound to `who`, signed by its key.
    fn token(&self, who: &ClientIdentity) -> String {
        self.token_signed_by(&self.key, who)
    }

    /// Good claims from this issuer, bound to `who`, signed by `key`.
    fn token_signed_by(&self, key: &TestKey, who: &ClientIdentity) -> String {
        let mut claims = claims_bound_to(&who.x5t_s256());
        claims["iss"] = json!(self.name);
        key.sign(&claims)
    }
}

/// The resource server: its client PKI, Alice, and `/whoami` (which names the token's issuer)
/// behind `BoundTokenLayer<Issuers>`.
struct Resource {
    alice: ClientIdentity,
    client: reqwest::Client,
    server: TestServer,
}

impl Resource {
    async fn start(issuers: Issuers) -> Resource {
        let pki = Pki::new("issuers-rs-clients");
        let alice = pki.client_identity("alice");
        let app = Router::new()
            .route(
                "/whoami",
                get(|token: AccessToken| async move {
                    Json(json!({ "iss": token.issuer(), "sub": token.subject() }))
                }),
            )
            .layer(BoundTokenLayer::new(issuers));
        let server = TestServer::start(ca_verified_tls(&pki), app).await;
        Resource {
            client: https_client(&pki.ca_der(), Some(&alice)),
            alice,
            server,
        }
    }

    async fn request(&self, token: &str) -> reqwest::Response {
        get_with_token(&self.client, &self.server.url("/whoami"), token).await
    }

    /// Asserts that `token` is accepted, and returns the issuer the application was told.
    async fn accepted_from(&self, token: &str) -> String {
        let response = self.request(token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["iss"].as_str().expect("an issuer").to_owned()
    }
}

#[tokio::test]
async fn tokens_of_each_trusted_issuer_are_accepted_and_name_their_issuer() {
    let a = Issuer::start("https://a.issuer.test", "a1").await;
    let b = Issuer::start("https://b.issuer.test", "b1").await;
    let issuers = Issuers::builder()
        .jwt(a.validator())
        .jwt(b.validator())
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers).await;

    for _ in 0..3 {
        assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
        assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
    }
    // Each issuer's keys were fetched once, from its own server.
    assert_eq!((a.jwks.hits(JWKS_PATH), b.jwks.hits(JWKS_PATH)), (1, 1));

    // Issuer b's name on a token signed by issuer a's key: b's keys do not know it.
    let mut claims = claims_bound_to(&rs.alice.x5t_s256());
    claims["iss"] = json!(b.name);
    let forged = a.key.sign(&claims);
    let response = rs.request(&forged).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_of_an_untrusted_issuer_is_refused_without_any_key_fetch() {
    let a = Issuer::start("https://a.issuer.test", "a1").await;
    let b = Issuer::start("https://b.issuer.test", "b1").await;
    let issuers = Issuers::builder()
        .jwt(a.validator())
        .jwt(b.validator())
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers).await;

    // Signed with a trusted issuer's key, but naming a third issuer.
    let mut claims = claims_bound_to(&rs.alice.x5t_s256());
    claims["iss"] = json!("https://c.issuer.test");
    for token in [a.key.sign(&claims), "an-opaque-token".to_owned()] {
        let response = rs.request(&token).await;
        assert_invalid_token(&response, &token, INVALID_TOKEN);
    }
    assert_eq!((a.jwks.hits(JWKS_PATH), b.jwks.hits(JWKS_PATH)), (0, 0));
}

#[tokio::test]
async fn one_issuers_key_outage_leaves_the_other_issuers_tokens_flowing() {
    let a = Issuer::start("https://a.issuer.test", "a1").await;
    let b = Issuer::start("https://b.issuer.test", "b1").await;
    a.jwks
        .set_status(JWKS_PATH, StatusCode::INTERNAL_SERVER_ERROR);
    let issuers = Issuers::builder()
        .jwt(a.validator())
        .jwt(b.validator())
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers.clone()).await;

    for _ in 0..3 {
        let response = rs.request(&a.token(&rs.alice)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
    }
    assert_eq!(b.jwks.hits(JWKS_PATH), 1);

    // Issuer a recovers: a new validator for it, swapped in while serving.
    a.jwks.clear_status(JWKS_PATH);
    assert!(issuers.insert(a.validator()).is_some());
    assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
    // And removed: refused with no fetch, while b's tokens flow on.
    issuers.remove(&a.name);
    let token = a.token(&rs.alice);
    let fetches = a.jwks.hits(JWKS_PATH);
    assert_invalid_token(&rs.request(&token).await, &token, INVALID_TOKEN);
    assert_eq!(a.jwks.hits(JWKS_PATH), fetches);
    assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
}

#[tokio::test]
async fn a_key_rotation_at_one_issuer_is_picked_up_with_one_refresh_and_leaves_the_other_alone() {
    let a = Issuer::start("https://a.issuer.test", "a1").await;
    let b = Issuer::start("https://b.issuer.test", "b1").await;
    let issuers = Issuers::builder()
        // a may refresh as soon as a new kid shows up (no minimum interval).
        .jwt(
            a.builder()
                .min_refresh_interval(Duration::ZERO)
                .build()
                .expect("validator"),
        )
        .jwt(b.validator())
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers).await;
    assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
    assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
    assert_eq!((a.jwks.hits(JWKS_PATH), b.jwks.hits(JWKS_PATH)), (1, 1));

    // a publishes a new key next to the old one and signs with it, while serving.
    let a2 = TestKey::es256("a2");
    a.jwks.set_jwks(crate::common::jwks(&[&a.key, &a2]));
    for _ in 0..3 {
        assert_eq!(
            rs.accepted_from(&a.token_signed_by(&a2, &rs.alice)).await,
            a.name
        );
        // a's old key still verifies; b's tokens flow on.
        assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
        assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
    }
    assert_eq!(
        (a.jwks.hits(JWKS_PATH), b.jwks.hits(JWKS_PATH)),
        (2, 1),
        "one refresh at a for the new kid, nothing at b"
    );

    // b's name on a token signed by a's new key: b does not know that key.
    let token = b.token_signed_by(&a2, &rs.alice);
    assert_eq!(rs.request(&token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(a.jwks.hits(JWKS_PATH), 2);

    // a drops its old key (and a third kid makes the server refresh): the cached token signed
    // by the old key is no longer accepted, though the set of issuers did not change.
    let old_key_token = a.token(&rs.alice);
    assert_eq!(rs.accepted_from(&old_key_token).await, a.name);
    let a3 = TestKey::es256("a3");
    a.jwks.set_jwks(crate::common::jwks(&[&a2, &a3]));
    assert_eq!(
        rs.accepted_from(&a.token_signed_by(&a3, &rs.alice)).await,
        a.name
    );
    assert_eq!(a.jwks.hits(JWKS_PATH), 3);
    assert_eq!(
        rs.request(&old_key_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "a cached token whose key left the key set"
    );
    assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
}

/// The application's tenant table: their validators by issuer, a switch that takes the
/// database down, a gate that holds lookups, and how often it was asked.
#[derive(Clone, Default)]
struct TenantTable {
    tenants: Arc<Mutex<HashMap<String, JwtValidator>>>,
    down: Arc<AtomicBool>,
    asked: Arc<watch::Sender<usize>>,
    /// Lookups wait while the test holds it for writing.
    gate: Arc<tokio::sync::RwLock<()>>,
}

impl TenantTable {
    fn sign_up(&self, validator: JwtValidator) {
        let issuer = validator.issuer().to_owned();
        self.tenants.lock().unwrap().insert(issuer, validator);
    }

    fn leave(&self, issuer: &str) {
        self.tenants.lock().unwrap().remove(issuer);
    }

    fn asked(&self) -> usize {
        *self.asked.borrow()
    }

    fn resolver(&self) -> impl ResolveIssuer {
        let table = self.clone();
        move |issuer: &str| {
            table.asked.send_modify(|asked| *asked += 1);
            let table = table.clone();
            let issuer = issuer.to_owned();
            async move {
                // Held while the test closes the gate: a lookup in progress.
                let _open = table.gate.read().await;
                if table.down.load(Ordering::SeqCst) {
                    return Err(ResolveError::new("tenant database unreachable"));
                }
                Ok(table.tenants.lock().unwrap().get(&issuer).cloned())
            }
        }
    }
}

#[tokio::test]
async fn tenants_added_to_and_removed_from_the_applications_database_are_trusted_while_serving() {
    let a = Issuer::start("https://a.tenant.test", "a1").await;
    let b = Issuer::start("https://b.tenant.test", "b1").await;
    let c = Issuer::start("https://c.tenant.test", "c1").await;
    let table = TenantTable::default();
    table.sign_up(a.validator());
    let issuers = Issuers::builder()
        .resolver(table.resolver())
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers.clone()).await;

    // A tenant: asked about once, its keys fetched once, its tokens then flow.
    for _ in 0..3 {
        assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
    }
    assert_eq!((table.asked(), a.jwks.hits(JWKS_PATH)), (1, 1));

    // Not a tenant: refused, asked about once, and nothing fetched from its keys.
    for _ in 0..3 {
        let token = b.token(&rs.alice);
        assert_invalid_token(&rs.request(&token).await, &token, INVALID_TOKEN);
    }
    assert_eq!((table.asked(), b.jwks.hits(JWKS_PATH)), (2, 0));

    // b signs up; the application tells the set, and b's tokens flow at once.
    table.sign_up(b.validator());
    issuers.remove(&b.name);
    assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
    assert_eq!(table.asked(), 3);

    // a leaves: refused at once, its cached tokens included; b's tokens flow on.
    table.leave(&a.name);
    issuers.remove(&a.name);
    let token = a.token(&rs.alice);
    assert_invalid_token(&rs.request(&token).await, &token, INVALID_TOKEN);
    assert_eq!(a.jwks.hits(JWKS_PATH), 1);
    assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);

    // The database is down: a tenant not yet resolved is a 503 (no challenge, the client is
    // not to blame), nothing is kept, and the tenants already resolved keep flowing.
    table.sign_up(c.validator());
    table.down.store(true, Ordering::SeqCst);
    let response = rs.request(&c.token(&rs.alice)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    assert_eq!(rs.accepted_from(&b.token(&rs.alice)).await, b.name);
    table.down.store(false, Ordering::SeqCst);

    // c leaves while a request of its is being resolved: that request finishes with the answer
    // it waited for; the next one asks again and is refused.
    let held = table.gate.write().await;
    let asked = table.asked();
    let mut asked_again = table.asked.subscribe();
    let in_flight = {
        let (client, url, token) = (
            rs.client.clone(),
            rs.server.url("/whoami"),
            c.token(&rs.alice),
        );
        tokio::spawn(async move { get_with_token(&client, &url, &token).await.status() })
    };
    asked_again.wait_for(|n| *n > asked).await.expect("asked");
    issuers.remove(&c.name);
    drop(held);
    assert_eq!(in_flight.await.expect("request"), StatusCode::OK);
    table.leave(&c.name);
    issuers.remove(&c.name);
    let token = c.token(&rs.alice);
    assert_invalid_token(&rs.request(&token).await, &token, INVALID_TOKEN);
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn jwts_of_trusted_issuers_are_verified_locally_and_other_tokens_introspected() {
    use certbound::IntrospectionValidator;

    let a = Issuer::start("https://a.issuer.test", "a1").await;
    let introspection = IntrospectionServer::start(Introspection::basic("rs", "rs-secret")).await;
    let issuers = Issuers::builder()
        .jwt(a.validator())
        .introspection(
            IntrospectionValidator::endpoint(introspection.url())
                .client_secret_basic("rs", "rs-secret")
                .trust_root(introspection.ca_der())
                .only_trust_roots()
                .build()
                .expect("introspection validator"),
        )
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers).await;

    let opaque = "opaque-token-of-the-same-authorization-server";
    introspection.set_answer(
        opaque,
        json!({
            "active": true,
            "iss": "https://opaque.issuer.test",
            "sub": "alice-user",
            "token_type": "Bearer",
            "exp": now() + 600,
            "cnf": { "x5t#S256": rs.alice.x5t_s256() },
        }),
    );
    assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
    assert_eq!(introspection.total_calls(), 0, "a trusted JWT stays local");
    assert_eq!(rs.accepted_from(opaque).await, "https://opaque.issuer.test");
    assert_eq!(introspection.total_calls(), 1);

    // A JWT of another issuer is introspected too; this server does not know it.
    let mut claims = claims_bound_to(&rs.alice.x5t_s256());
    claims["iss"] = json!("https://c.issuer.test");
    let foreign = TestKey::es256("c1").sign(&claims);
    let response = rs.request(&foreign).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(introspection.total_calls(), 2);
    assert_eq!(a.jwks.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn an_issuers_jwts_can_be_introspected_at_its_own_endpoint_while_others_stay_local() {
    use certbound::IntrospectionValidator;

    let a = Issuer::start("https://a.issuer.test", "a1").await;
    let b_endpoint = IntrospectionServer::start(Introspection::basic("rs", "rs-secret")).await;
    let b = "https://b.issuer.test";
    let issuers = Issuers::builder()
        .jwt(a.validator())
        .introspect_issuer(
            b,
            IntrospectionValidator::endpoint(b_endpoint.url())
                .client_secret_basic("rs", "rs-secret")
                .trust_root(b_endpoint.ca_der())
                .only_trust_roots()
                .issuer(b)
                .build()
                .expect("introspection validator"),
        )
        .build()
        .expect("issuers");
    let rs = Resource::start(issuers).await;

    // A JWT of b (signed by a key this server never sees): b's endpoint decides.
    let mut claims = claims_bound_to(&rs.alice.x5t_s256());
    claims["iss"] = json!(b);
    let b_token = TestKey::es256("b1").sign(&claims);
    b_endpoint.set_answer(
        &b_token,
        json!({
            "active": true,
            "iss": b,
            "sub": "alice-at-b",
            "exp": now() + 600,
            "cnf": { "x5t#S256": rs.alice.x5t_s256() },
        }),
    );
    assert_eq!(rs.accepted_from(&b_token).await, b);
    assert_eq!(b_endpoint.total_calls(), 1);
    // a's tokens stay local: no call to b's endpoint.
    assert_eq!(rs.accepted_from(&a.token(&rs.alice)).await, a.name);
    assert_eq!(b_endpoint.total_calls(), 1);
    // A token of a third issuer goes nowhere.
    let mut claims = claims_bound_to(&rs.alice.x5t_s256());
    claims["iss"] = json!("https://c.issuer.test");
    let foreign = TestKey::es256("c1").sign(&claims);
    assert_eq!(
        rs.request(&foreign).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(b_endpoint.total_calls(), 1);
    assert_eq!(a.jwks.hits(JWKS_PATH), 1);
}
