//! Opaque tokens end to end: a resource server behind `BoundTokenLayer` with an
//! `IntrospectionValidator`, asking a real HTTPS introspection endpoint on 127.0.0.1, reached
//! by real mTLS clients.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::extract::Request;
use certbound::token::IntrospectionValidatorBuilder;
use certbound::{BoundTokenLayer, IntrospectionValidator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::watch;

const INACTIVE: &str = "access token not active";
const MISMATCH: &str = "access token bound to another certificate";
const UNBOUND: &str = "access token not sender-constrained";
const INVALID_TOKEN: &str = "invalid access token";
const EXPIRED: &str = "access token expired";

/// The resource server's world: its client PKI, Alice and Bob, the introspection endpoint, and
/// the protected server.
struct World {
    pki: Pki,
    alice: ClientIdentity,
    bob: ClientIdentity,
    as_server: IntrospectionServer,
    rs: TestServer,
}

impl World {
    /// A resource server whose validator is `configure(builder for as_server)`.
    async fn start(
        expected: Introspection,
        configure: impl FnOnce(&IntrospectionServer) -> IntrospectionValidatorBuilder,
    ) -> World {
        let as_server = IntrospectionServer::start(expected).await;
        let validator = configure(&as_server).build().expect("validator");
        Self::with_validator(as_server, validator).await
    }

    async fn with_validator(
        as_server: IntrospectionServer,
        validator: IntrospectionValidator,
    ) -> World {
        let pki = Pki::new("introspection-rs-clients");
        let alice = pki.client_identity("alice");
        let bob = pki.client_identity("bob");
        let app = whoami_app(BoundTokenLayer::new(validator));
        let rs = TestServer::start(ca_verified_tls(&pki), app).await;
        World {
            pki,
            alice,
            bob,
            as_server,
            rs,
        }
    }

    fn client(&self, who: &ClientIdentity) -> reqwest::Client {
        https_client(&self.pki.ca_der(), Some(who))
    }

    /// Registers an active token bound to `who` at the authorization server.
    fn issue_bound(&self, token: &str, who: &ClientIdentity) {
        self.as_server
            .set_answer(token, active_answer(Some(&who.x5t_s256())));
    }

    async fn get(&self, who: &ClientIdentity, token: &str) -> reqwest::Response {
        get_with_token(&self.client(who), &self.rs.url("/whoami"), token).await
    }
}

/// The default validator for `server`: `client_secret_basic` as `rs` / `rs-secret`, trusting
/// the server's CA only.
fn basic(server: &IntrospectionServer) -> IntrospectionValidatorBuilder {
    IntrospectionValidator::endpoint(server.url())
        .client_secret_basic("rs", "rs-secret")
        .trust_root(server.ca_der())
        .only_trust_roots()
}

fn basic_expected() -> Introspection {
    Introspection::basic("rs", "rs-secret")
}

fn active_answer(x5t: Option<&str>) -> Value {
    let mut answer = json!({
        "active": true,
        "sub": "alice-user",
        "client_id": "alice-app",
        "scope": "read write",
        "token_type": "Bearer",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 600,
        "iat": now(),
    });
    if let Some(x5t) = x5t {
        answer["cnf"] = json!({ "x5t#S256": x5t });
    }
    answer
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn bound_token_with_its_certificate_is_accepted_and_the_answer_reused() {
    let w = World::start(basic_expected(), basic).await;
    w.issue_bound("opaque-alice-1", &w.alice);

    let response = w.get(&w.alice, "opaque-alice-1").await;
    assert_eq!(response.status(), 200);
    let who = body(response).await;
    assert_eq!(who["sub"], "alice-user");
    assert_eq!(who["client_id"], "alice-app");
    assert_eq!(who["thumbprint"], w.alice.x5t_s256());
    assert_eq!(who["scopes"], json!(["read", "write"]));

    // Within the cache lifetime the answer is reused: still one call.
    assert_eq!(w.get(&w.alice, "opaque-alice-1").await.status(), 200);
    assert_eq!(w.as_server.calls(INTROSPECT_PATH), 1);
}

#[tokio::test]
async fn bound_token_from_another_certificate_is_refused_even_when_cached() {
    let w = World::start(basic_expected(), basic).await;
    w.issue_bound("opaque-alice-2", &w.alice);

    // Stolen before Alice ever used it (nothing cached) ...
    let stolen = w.get(&w.bob, "opaque-alice-2").await;
    assert_invalid_token(&stolen, "opaque-alice-2", MISMATCH);
    // ... and after (the answer comes from the cache: the binding is checked every time).
    assert_eq!(w.get(&w.alice, "opaque-alice-2").await.status(), 200);
    let stolen = w.get(&w.bob, "opaque-alice-2").await;
    assert_invalid_token(&stolen, "opaque-alice-2", MISMATCH);
    assert_eq!(w.as_server.total_calls(), 1);
}

#[tokio::test]
async fn unbound_inactive_unknown_and_expired_tokens_are_refused() {
    let w = World::start(basic_expected(), basic).await;
    w.as_server
        .set_answer("opaque-unbound", active_answer(None));
    let mut expired = active_answer(Some(&w.alice.x5t_s256()));
    expired["exp"] = json!(now() - 3600);
    w.as_server.set_answer("opaque-expired", expired);
    w.as_server
        .set_answer("opaque-inactive", json!({"active": false}));

    for (token, description) in [
        ("opaque-unbound", UNBOUND),
        ("opaque-inactive", INACTIVE),
        ("opaque-never-issued", INACTIVE),
        ("opaque-expired", EXPIRED),
    ] {
        let response = w.get(&w.alice, token).await;
        assert_invalid_token(&response, token, description);
    }
    // Refusals the server meant are cached briefly: asking again costs no call.
    let before = w.as_server.total_calls();
    assert_eq!(w.get(&w.alice, "opaque-inactive").await.status(), 401);
    assert_eq!(w.as_server.total_calls(), before);
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_next_request_without_caching() {
    let w = World::start(basic_expected(), |s| basic(s).cache_ttl(Duration::ZERO)).await;
    w.issue_bound("opaque-revocable", &w.alice);
    assert_eq!(w.get(&w.alice, "opaque-revocable").await.status(), 200);
    assert_eq!(w.get(&w.alice, "opaque-revocable").await.status(), 200);
    assert_eq!(w.as_server.total_calls(), 2, "TTL 0: every request asks");

    w.as_server.revoke("opaque-revocable");
    let response = w.get(&w.alice, "opaque-revocable").await;
    assert_invalid_token(&response, "opaque-revocable", INACTIVE);
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let w = World::start(basic_expected(), |s| {
        basic(s).issuer(ISSUER).audience(AUDIENCE)
    })
    .await;
    let x5t = w.alice.x5t_s256();
    w.as_server
        .set_answer("opaque-ok", active_answer(Some(&x5t)));
    let mut other_aud = active_answer(Some(&x5t));
    other_aud["aud"] = json!(["https://other-api.example"]);
    w.as_server.set_answer("opaque-other-aud", other_aud);
    let mut other_iss = active_answer(Some(&x5t));
    other_iss["iss"] = json!("https://evil.example");
    w.as_server.set_answer("opaque-other-iss", other_iss);
    let mut dpop = active_answer(Some(&x5t));
    dpop["token_type"] = json!("DPoP");
    w.as_server.set_answer("opaque-dpop", dpop);

    assert_eq!(w.get(&w.alice, "opaque-ok").await.status(), 200);
    for token in ["opaque-other-aud", "opaque-other-iss", "opaque-dpop"] {
        let response = w.get(&w.alice, token).await;
        assert_invalid_token(&response, token, INVALID_TOKEN);
    }
}

#[tokio::test]
async fn required_scopes_come_from_the_introspection_answer() {
    let as_server = IntrospectionServer::start(basic_expected()).await;
    let validator = basic(&as_server).build().expect("validator");
    let pki = Pki::new("scope-clients");
    let alice = pki.client_identity("alice");
    let app = whoami_app(
        BoundTokenLayer::new(validator)
            .require_scope("admin")
            .expect("scope"),
    );
    let rs = TestServer::start(ca_verified_tls(&pki), app).await;
    as_server.set_answer("opaque-read-only", active_answer(Some(&alice.x5t_s256())));
    let response = get_with_token(
        &https_client(&pki.ca_der(), Some(&alice)),
        &rs.url("/whoami"),
        "opaque-read-only",
    )
    .await;
    assert_eq!(response.status(), 403);
    let challenge = www_authenticate(&response).expect("challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
}

/// Each failure of the endpoint: the status the client gets, and that nothing was cached (the
/// same token works as soon as the endpoint is well again).
#[tokio::test]
async fn endpoint_failures_fail_closed_and_are_never_cached() {
    let w = World::start(basic_expected(), |s| {
        basic(s)
            .fetch_timeout(Duration::from_millis(500))
            .max_response_bytes(16 * 1024)
    })
    .await;
    let huge = json!({"active": true, "padding": "x".repeat(64 * 1024)}).to_string();
    let cases: [(&str, Behaviour, u16); 8] = [
        (
            "5xx",
            Behaviour::Status(StatusCode::INTERNAL_SERVER_ERROR),
            503,
        ),
        ("502", Behaviour::Status(StatusCode::BAD_GATEWAY), 503),
        ("hangs past the timeout", Behaviour::Hang, 503),
        ("not JSON", Behaviour::Raw("<html>oops</html>".into()), 401),
        ("huge body", Behaviour::Raw(huge), 503),
        (
            "active missing",
            Behaviour::Raw(r#"{"sub":"x"}"#.into()),
            401,
        ),
        (
            "active not a boolean",
            Behaviour::Raw(r#"{"active":"true"}"#.into()),
            401,
        ),
        ("a JSON array", Behaviour::Raw("[true]".into()), 401),
    ];
    for (i, (name, behaviour, status)) in cases.into_iter().enumerate() {
        let token = format!("opaque-failure-{i}");
        w.issue_bound(&token, &w.alice);
        w.as_server.set_behaviour(behaviour);
        let response = w.get(&w.alice, &token).await;
        assert_eq!(response.status(), status, "{name}");
        if status == 503 {
            assert!(
                www_authenticate(&response).is_none(),
                "{name}: 503 has no challenge"
            );
        } else {
            assert_invalid_token(&response, &token, INVALID_TOKEN);
        }
        w.as_server.set_behaviour(Behaviour::Answer);
        let response = w.get(&w.alice, &token).await;
        assert_eq!(response.status(), 200, "{name}: the failure was cached");
    }
}

/// RFC 6749 §5.2 answers about the token (what a popular AS says of a JWT it cannot
/// introspect): the token will never work, so 401 `invalid_token`, kept like an inactive answer.
#[tokio::test]
async fn a_token_the_endpoint_refuses_to_introspect_is_an_invalid_token_kept_like_an_inactive_one()
{
    let w = World::start(basic_expected(), |s| {
        basic(s).negative_cache_ttl(Duration::from_secs(3600))
    })
    .await;
    let codes = [
        r#"{"error":"unsupported_token_type","error_description":"JWT"}"#,
        r#"{"error":"invalid_request"}"#,
        r#"{"error":"invalid_token"}"#,
    ];
    for (i, body) in codes.into_iter().enumerate() {
        let token = format!("opaque-unsupported-{i}");
        w.issue_bound(&token, &w.alice);
        let before = w.as_server.total_calls();
        w.as_server
            .set_behaviour(Behaviour::Error(StatusCode::BAD_REQUEST, body));
        let response = w.get(&w.alice, &token).await;
        assert_eq!(response.status(), 401, "{body}");
        assert_invalid_token(&response, &token, INVALID_TOKEN);
        // The refusal is kept for the negative TTL: the endpoint is not asked again.
        w.as_server.set_behaviour(Behaviour::Answer);
        assert_eq!(w.get(&w.alice, &token).await.status(), 401, "{body}");
        assert_eq!(w.as_server.total_calls(), before + 1, "{body}");
    }
}

/// Error answers that are about us, or unreadable, are outages: 503, never cached.
#[tokio::test]
async fn error_answers_not_about_the_token_are_503_and_not_cached() {
    let w = World::start(basic_expected(), basic).await;
    let cases = [
        (StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#),
        (StatusCode::BAD_REQUEST, "not json"),
        (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#),
        (StatusCode::FORBIDDEN, r#"{"error":"invalid_token"}"#),
        (StatusCode::NOT_FOUND, r#"{"error":"invalid_token"}"#),
        (StatusCode::TOO_MANY_REQUESTS, "{}"),
    ];
    for (i, (status, body)) in cases.into_iter().enumerate() {
        let token = format!("opaque-config-{i}");
        w.issue_bound(&token, &w.alice);
        w.as_server.set_behaviour(Behaviour::Error(status, body));
        let response = w.get(&w.alice, &token).await;
        assert_eq!(response.status(), 503, "{status} {body}");
        assert!(www_authenticate(&response).is_none());
        w.as_server.set_behaviour(Behaviour::Answer);
        assert_eq!(
            w.get(&w.alice, &token).await.status(),
            200,
            "{status} {body}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_gives_503() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let as_server = IntrospectionServer::start(basic_expected()).await;
    let validator =
        IntrospectionValidator::endpoint(format!("https://127.0.0.1:{port}/introspect"))
            .client_secret_basic("rs", "rs-secret")
            .trust_root(as_server.ca_der())
            .build()
            .expect("validator");
    let w = World::with_validator(as_server, validator).await;
    let response = w.get(&w.alice, "opaque-anything").await;
    assert_eq!(response.status(), 503);
    assert!(www_authenticate(&response).is_none());
}

#[tokio::test]
async fn wrong_client_credentials_at_the_endpoint_give_503() {
    let w = World::start(basic_expected(), |s| {
        IntrospectionValidator::endpoint(s.url())
            .client_secret_basic("rs", "wrong-secret")
            .trust_root(s.ca_der())
    })
    .await;
    w.issue_bound("opaque-creds", &w.alice);
    assert_eq!(w.get(&w.alice, "opaque-creds").await.status(), 503);
    assert_eq!(w.as_server.total_calls(), 1);
}

#[tokio::test]
async fn client_secret_post_authenticates_in_the_form() {
    let w = World::start(Introspection::post("rs", "post secret&="), |s| {
        IntrospectionValidator::endpoint(s.url())
            .client_secret_post("rs", "post secret&=")
            .trust_root(s.ca_der())
    })
    .await;
    w.issue_bound("opaque-post", &w.alice);
    assert_eq!(w.get(&w.alice, "opaque-post").await.status(), 200);
}

#[tokio::test]
async fn basic_credentials_with_reserved_characters_are_encoded_per_rfc6749() {
    let w = World::start(Introspection::basic("rs:1", "p@ss:wörd"), |s| {
        IntrospectionValidator::endpoint(s.url())
            .client_secret_basic("rs:1", "p@ss:wörd")
            .trust_root(s.ca_der())
    })
    .await;
    w.issue_bound("opaque-basic", &w.alice);
    assert_eq!(w.get(&w.alice, "opaque-basic").await.status(), 200);
}

#[tokio::test]
async fn tls_client_auth_with_discovery_uses_the_mtls_alias() {
    let as_server = IntrospectionServer::start(basic_expected()).await;
    // The resource server's own identity, from the authorization server's CA.
    let rs_identity = as_server.pki().client_identity("resource-server");
    as_server.set_expected(Introspection::mtls("rs-mtls", &rs_identity));

    let validator = IntrospectionValidator::discover(as_server.base_url())
        .tls_client_auth("rs-mtls", rs_identity.chain.clone(), rs_identity.key())
        .trust_root(as_server.ca_der())
        .only_trust_roots()
        .build()
        .expect("validator");
    validator.prefetch().await.expect("discovery");
    let w = World::with_validator(as_server, validator).await;
    w.issue_bound("opaque-mtls", &w.alice);
    assert_eq!(w.get(&w.alice, "opaque-mtls").await.status(), 200);
    assert_eq!(w.as_server.calls(MTLS_INTROSPECT_PATH), 1);
    assert_eq!(w.as_server.calls(INTROSPECT_PATH), 0);
}

#[tokio::test]
async fn discovery_without_mtls_uses_the_plain_endpoint() {
    let w = World::start(basic_expected(), |s| {
        IntrospectionValidator::discover(s.base_url())
            .client_secret_basic("rs", "rs-secret")
            .trust_root(s.ca_der())
            .only_trust_roots()
    })
    .await;
    w.issue_bound("opaque-discovered", &w.alice);
    assert_eq!(w.get(&w.alice, "opaque-discovered").await.status(), 200);
    assert_eq!(w.as_server.calls(INTROSPECT_PATH), 1);
}

/// RFC 7662 calls are the expensive part: 500 requests with one new token arriving together
/// make exactly one call. The endpoint holds its answer until all 500 requests are inside the
/// server, so they really are concurrent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_requests_with_one_new_token_make_one_call() {
    const REQUESTS: usize = 500;
    const CONNECTIONS: usize = 10;
    let as_server = IntrospectionServer::start(basic_expected()).await;
    let validator = basic(&as_server).build().expect("validator");
    let pki = Pki::new("single-flight-clients");
    let alice = pki.client_identity("alice");
    as_server.set_answer("opaque-burst", active_answer(Some(&alice.x5t_s256())));

    // Counts requests arriving at the server, outside the layer.
    let (arrived_tx, mut arrived) = watch::channel(0usize);
    let arrived_tx = Arc::new(arrived_tx);
    let app = whoami_app(BoundTokenLayer::new(validator)).layer(axum::middleware::map_request(
        move |request: Request| {
            let arrived_tx = Arc::clone(&arrived_tx);
            async move {
                arrived_tx.send_modify(|n| *n += 1);
                request
            }
        },
    ));
    let rs = TestServer::start(ca_verified_tls(&pki), app).await;
    let release = as_server.hold_answers();

    let statuses = Arc::new(AtomicUsize::new(0));
    let mut requests = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        // One HTTP/2 connection per client, REQUESTS / CONNECTIONS streams on each.
        let client = https_client(&pki.ca_der(), Some(&alice));
        for _ in 0..REQUESTS / CONNECTIONS {
            let client = client.clone();
            let url = rs.url("/whoami");
            let statuses = Arc::clone(&statuses);
            requests.spawn(async move {
                let response = get_with_token(&client, &url, "opaque-burst").await;
                if response.status() == 200 {
                    statuses.fetch_add(1, Ordering::SeqCst);
                }
                c
            });
        }
    }
    arrived.wait_for(|n| *n >= REQUESTS).await.expect("counter");
    as_server.wait_for_calls(1).await;
    release.send(true).expect("release");
    while let Some(done) = requests.join_next().await {
        done.expect("request task");
    }
    assert_eq!(statuses.load(Ordering::SeqCst), REQUESTS, "all accepted");
    assert_eq!(
        as_server.total_calls(),
        1,
        "one call for 500 concurrent requests"
    );
}

#[tokio::test]
async fn an_introspected_dpop_token_needs_a_proof_by_its_key_and_is_refused_as_bearer() {
    let as_server = IntrospectionServer::start(basic_expected()).await;
    let validator = basic(&as_server).build().expect("validator");
    let pki = Pki::new("introspection-dpop-clients");
    let app = whoami_app(BoundTokenLayer::new(validator).dpop(certbound::dpop::Dpop::new()));
    let rs = TestServer::start(ca_verified_tls(&pki), app).await;
    let anonymous = https_client(&pki.ca_der(), None);
    let key = ProofKey::es256();
    // RFC 9449 §6.2: the answer says DPoP and names the key.
    let mut answer = active_answer(None);
    answer["token_type"] = json!("DPoP");
    answer["cnf"] = json!({ "jkt": key.jkt() });
    as_server.set_answer("opaque-dpop-token", answer);
    let url = rs.url("/whoami");
    let proof = key.proof("GET", &url, "opaque-dpop-token");
    let response = send(&anonymous, &url, dpop_headers("opaque-dpop-token", &proof)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await["jkt"], json!(key.jkt()));
    // As Bearer (a cached answer by now): refused.
    let response = get_with_token(&anonymous, &url, "opaque-dpop-token").await;
    assert_eq!(response.status(), 401);
    // With another key's proof: refused.
    let other = ProofKey::es256().proof("GET", &url, "opaque-dpop-token");
    let response = send(&anonymous, &url, dpop_headers("opaque-dpop-token", &other)).await;
    assert_eq!(response.status(), 401);
    // token_type DPoP without a jkt: refused.
    let mut unbound = active_answer(None);
    unbound["token_type"] = json!("DPoP");
    as_server.set_answer("dpop-without-jkt", unbound);
    let proof = key.proof("GET", &url, "dpop-without-jkt");
    let response = send(&anonymous, &url, dpop_headers("dpop-without-jkt", &proof)).await;
    assert_eq!(response.status(), 401);
}
