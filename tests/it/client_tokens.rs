//! The calling side: `client::TokenSource` against the example authorization server's routes
//! (`examples/support/oauth_server.rs`, in-process over real mutual TLS), its tokens used at a
//! resource server built from `BoundTokenLayer`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use certbound::authorization_server::{ClientAuthenticator, StaticClients};
use certbound::client::{ClientIdentity as Identity, TokenErrorKind, TokenScheme, TokenSource};
use certbound::dpop::{Dpop, DpopKey, DpopNonces};
use certbound::{BoundTokenLayer, JwtValidator};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::common::*;
use crate::oauth_server::{router, router_with_dpop, TokenIssuer};

/// The example authorization server's routes on 127.0.0.1, counting token requests.
pub struct Authority {
    /// Serving while the test runs.
    _server: TestServer,
    pub issuer: String,
    pub pki: Pki,
    jwks: Value,
    token_requests: Arc<AtomicUsize>,
    all_requests: Arc<AtomicUsize>,
    forms: Arc<Mutex<Vec<String>>>,
}

impl Authority {
    /// With `dpop` for the token endpoint's proof checks, or the example's defaults.
    pub async fn start(clients: Value, lifetime_secs: u64, dpop: Option<Dpop>) -> Authority {
        let pki = Pki::new("client-tokens-as");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("https://{}", listener.local_addr().expect("addr"));
        let tokens = if lifetime_secs == crate::oauth_server::TOKEN_LIFETIME_SECS {
            TokenIssuer::generate(&issuer, AUDIENCE)
        } else {
            TokenIssuer::generate_with_lifetime(&issuer, AUDIENCE, lifetime_secs)
        }
        .expect("token issuer");
        let jwks = tokens.jwks();
        let clients = StaticClients::from_json(&clients.to_string()).expect("registrations");
        let authenticator = ClientAuthenticator::builder()
            .build()
            .expect("authenticator");
        let token_requests = Arc::new(AtomicUsize::new(0));
        let all_requests = Arc::new(AtomicUsize::new(0));
        let forms = Arc::new(Mutex::new(Vec::new()));
        let (counter, every, seen) = (
            Arc::clone(&token_requests),
            Arc::clone(&all_requests),
            Arc::clone(&forms),
        );
        let app = match dpop {
            Some(dpop) => router_with_dpop(tokens, clients, authenticator, dpop),
            None => router(tokens, clients, authenticator),
        }
        .expect("router")
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let (counter, every, seen) =
                    (Arc::clone(&counter), Arc::clone(&every), Arc::clone(&seen));
                async move {
                    every.fetch_add(1, Ordering::SeqCst);
                    if request.uri().path() != "/token" {
                        return next.run(request).await;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    // The form, kept for the tests that check what was asked for.
                    let (parts, body) = request.into_parts();
                    let form = axum::body::to_bytes(body, 64 * 1024)
                        .await
                        .unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&form).into_owned());
                    let request = axum::extract::Request::from_parts(parts, form.into());
                    next.run(request).await
                }
            },
        ));
        let server = TestServer::start_on(listener, any_certificate_tls(&pki), app);
        Authority {
            _server: server,
            issuer,
            pki,
            jwks,
            token_requests,
            all_requests,
            forms,
        }
    }

    /// Token requests so far.
    pub fn requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    /// Requests of any kind (discovery included) so far.
    pub fn all_requests(&self) -> usize {
        self.all_requests.load(Ordering::SeqCst)
    }

    /// The forms of the token requests so far, as sent.
    pub fn forms(&self) -> Vec<String> {
        self.forms.lock().unwrap().clone()
    }

    /// The `resource` values (RFC 8707) of the `n`th token request so far.
    pub fn requested_resources(&self, n: usize) -> Vec<String> {
        let form = self.forms()[n].clone();
        form_urlencoded::parse(form.as_bytes())
            .filter(|(name, _)| name == "resource")
            .map(|(_, value)| value.into_owned())
            .collect()
    }

    /// A token source for `client_id` presenting `identity`, trusting only this server's CA.
    pub fn source(
        &self,
        client_id: &str,
        identity: &Identity,
    ) -> certbound::client::TokenSourceBuilder {
        TokenSource::builder(client_id, identity.clone())
            .issuer(&self.issuer)
            .trust_root(self.pki.ca_der())
            .only_trust_roots()
    }

    /// An HTTPS client presenting `identity`, trusting only this server's CA.
    pub fn api_client(&self, identity: &Identity) -> reqwest::Client {
        identity
            .reqwest_builder(&[self.pki.ca_der()], false)
            .expect("client")
            .build()
            .expect("client")
    }

    /// A validator of this server's tokens.
    pub fn validator(&self) -> JwtValidator {
        JwtValidator::builder(&self.issuer, AUDIENCE)
            .jwks_json(self.jwks.to_string())
            .build()
            .expect("validator")
    }

    /// A resource server accepting this server's tokens, with DPoP on.
    pub async fn resource_server(&self) -> TestServer {
        let layer = BoundTokenLayer::new(self.validator()).dpop(Dpop::new());
        TestServer::start(any_certificate_tls(&self.pki), whoami_app(layer)).await
    }
}

/// A self-signed client registered for `self_signed_tls_client_auth` as `client_id`.
pub fn self_signed(client_id: &str) -> (crate::common::ClientIdentity, Identity, Value) {
    let test = Pki::self_signed_client(client_id);
    let identity =
        Identity::from_pem(test.cert_pem.as_bytes(), test.key_pem.as_bytes()).expect("identity");
    let registration = json!({
        "client_id": client_id,
        "token_endpoint_auth_method": "self_signed_tls_client_auth",
        "scope": "read write",
        "jwks": {"keys": [{"kty": "EC", "x5c": [STANDARD.encode(test.leaf_der())]}]},
    });
    (test, identity, registration)
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWS payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn a_certificate_bound_token_comes_by_discovery_and_opens_the_resource_server() {
    let (test, identity, registration) = self_signed("payments");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let tokens = authority
        .source("payments", &identity)
        .scope("read")
        .build()
        .expect("source");
    let token = tokens.token().await.expect("token");
    assert_eq!(token.scheme(), TokenScheme::Bearer);
    assert_eq!(token.scope(), Some("read"));
    let claims = claims(token.secret());
    assert_eq!(claims["cnf"]["x5t#S256"], test.x5t_s256());
    assert_eq!(claims["client_id"], "payments");
    assert_eq!(identity.thumbprint().to_string(), test.x5t_s256());
    let left = token.expires_at().saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(290) && left <= Duration::from_secs(300),
        "{left:?}"
    );
    // The same token again, from the cache.
    let again = tokens.token().await.expect("cached token");
    assert_eq!(again.secret(), token.secret());
    assert_eq!(authority.requests(), 1);
    let debug = format!("{token:?} {tokens:?}");
    assert_no_token_material(&debug, token.secret());

    let api = authority.resource_server().await;
    let client = authority.api_client(&identity);
    let response = client
        .get(api.url("/whoami"))
        .header("authorization", token.authorization())
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["client_id"], "payments");
    // Another certificate is refused with the same token.
    let (_, stranger, _) = self_signed("stranger");
    let response = authority
        .api_client(&stranger)
        .get(api.url("/whoami"))
        .header("authorization", token.authorization())
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_dpop_bound_token_names_the_key_and_is_used_with_a_fresh_proof() {
    let (_test, identity, registration) = self_signed("ledger");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let key = DpopKey::generate(Algorithm::EdDSA).expect("key");
    let tokens = authority
        .source("ledger", &identity)
        .dpop(key.clone())
        .build()
        .expect("source");
    let token = tokens.token().await.expect("token");
    assert_eq!(token.scheme(), TokenScheme::Dpop);
    assert_eq!(
        claims(token.secret())["cnf"]["jkt"],
        key.thumbprint().to_string()
    );
    assert!(token.authorization().as_bytes().starts_with(b"DPoP "));
    let api = authority.resource_server().await;
    let url = api.url("/whoami");
    let proof = tokens
        .dpop_key()
        .expect("key")
        .proof("GET", &url)
        .access_token(token.secret())
        .sign()
        .expect("proof");
    let client = authority.api_client(&identity);
    let response = client
        .get(&url)
        .header("authorization", token.authorization())
        .header("dpop", proof)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_hundred_concurrent_callers_cause_one_token_request() {
    let (_test, identity, registration) = self_signed("batch");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let tokens = authority
        .source("batch", &identity)
        .build()
        .expect("source");
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for caller in callers {
        let token = caller.await.expect("task").expect("token");
        seen.insert(token.secret().to_owned());
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(authority.requests(), 1);
}

#[tokio::test]
async fn a_stale_token_is_replaced_on_demand_and_a_rejected_one_once_for_all() {
    let (_test, identity, registration) = self_signed("short");
    let authority = Authority::start(json!([registration]), 2, None).await;
    let tokens = authority
        .source("short", &identity)
        .expiry_margin(Duration::from_secs(1))
        .early_refresh(Duration::ZERO)
        .build()
        .expect("source");
    let first = tokens.token().await.expect("token");
    // Handed out for one second (two, less the margin), then replaced by whoever asks.
    tokio::time::sleep_until((first.expires_at() - Duration::from_millis(900)).into()).await;
    let second = tokens.token().await.expect("token");
    assert_ne!(second.secret(), first.secret());
    assert_eq!(authority.requests(), 2);

    // A resource server refused `second`: twenty callers replace it with one request, and a
    // caller still holding `first` gets the current token without another request.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (tokens, rejected) = (tokens.clone(), second.clone());
            tokio::spawn(async move { tokens.replace(&rejected).await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for caller in callers {
        seen.insert(
            caller
                .await
                .expect("task")
                .expect("token")
                .secret()
                .to_owned(),
        );
    }
    assert_eq!(seen.len(), 1);
    assert!(!seen.contains(second.secret()));
    assert_eq!(authority.requests(), 3);
    let current = tokens.replace(&first).await.expect("token");
    assert!(seen.contains(current.secret()));
    assert_eq!(authority.requests(), 3);
}

#[tokio::test]
async fn a_token_close_to_expiry_is_handed_out_while_its_successor_is_fetched_in_the_background() {
    let (_test, identity, registration) = self_signed("early");
    let authority = Authority::start(json!([registration]), 6, Some(Dpop::new())).await;
    let tokens = authority
        .source("early", &identity)
        .expiry_margin(Duration::from_secs(1))
        .early_refresh(Duration::from_secs(3))
        .build()
        .expect("source");
    // Lifetime 6 s: handed out until 5 s, its successor asked for from 2.5 s (3 s, at most
    // half of the usable 5 s).
    let first = tokens.token().await.expect("token");
    tokio::time::sleep_until((first.expires_at() - Duration::from_millis(3400)).into()).await;
    let during = tokens.token().await.expect("token");
    assert_eq!(during.secret(), first.secret(), "the cached token, at once");
    let deadline = first.expires_at() - Duration::from_secs(1);
    let successor = loop {
        let token = tokens.token().await.expect("token");
        if token.secret() != first.secret() {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "no background refresh before the token went stale"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(successor.expires_at() > first.expires_at());
    assert_eq!(authority.requests(), 2);
}

#[tokio::test]
async fn refusals_carry_the_servers_rfc_6749_error_and_are_not_retried() {
    let (_test, identity, registration) = self_signed("scoped");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let error = authority
        .source("scoped", &identity)
        .scope("admin")
        .build()
        .expect("source")
        .token()
        .await
        .expect_err("scope not registered");
    assert_eq!(error.oauth_error(), Some("invalid_scope"));
    assert!(matches!(
        error.kind(),
        TokenErrorKind::Refused { status: 400, .. }
    ));
    assert!(error.to_string().contains("invalid_scope"), "{error}");
    assert_eq!(authority.requests(), 1);

    // Another certificate than the registered one.
    let (_, stranger, _) = self_signed("scoped");
    let error = authority
        .source("scoped", &stranger)
        .build()
        .expect("source")
        .token()
        .await
        .expect_err("wrong certificate");
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert!(matches!(
        error.kind(),
        TokenErrorKind::Refused { status: 401, .. }
    ));
    assert_eq!(authority.requests(), 2);
}

#[tokio::test]
async fn an_authorization_server_that_demands_a_nonce_gets_one_retry_with_it() {
    let (_test, identity, registration) = self_signed("nonced");
    let nonces = DpopNonces::new([7u8; 32]).expect("secret");
    let authority = Authority::start(
        json!([registration]),
        300,
        Some(Dpop::new().require_nonce(nonces)),
    )
    .await;
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    let tokens = authority
        .source("nonced", &identity)
        .dpop(key)
        .build()
        .expect("source");
    let token = tokens.token().await.expect("token after the nonce retry");
    assert_eq!(token.scheme(), TokenScheme::Dpop);
    assert_eq!(
        authority.requests(),
        2,
        "one refusal with use_dpop_nonce, one retry"
    );
}

/// A token endpoint that answers every request with `status`, counting them.
async fn failing_endpoint(pki: &Pki, status: u16) -> (TestServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = Router::new().route(
        "/token",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    "try later",
                )
            }
        }),
    );
    (
        TestServer::start(any_certificate_tls(pki), app).await,
        calls,
    )
}

#[tokio::test]
async fn an_unavailable_server_is_asked_a_bounded_number_of_times_with_backoff() {
    let pki = Pki::new("client-tokens-down");
    let (_test, identity, _) = self_signed("patient");
    let (server, calls) = failing_endpoint(&pki, 503).await;
    let source = |url: String| {
        TokenSource::builder("patient", identity.clone())
            .token_endpoint(url)
            .trust_root(pki.ca_der())
            .only_trust_roots()
            .max_attempts(3)
            .retry_backoff(Duration::from_millis(50))
            .timeout(Duration::from_secs(2))
            .build()
            .expect("source")
    };
    let started = Instant::now();
    let error = source(server.url("/token")).token().await.expect_err("503");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("503"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Two pauses: 50 ms, then 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(150));

    // Nothing listening: refused connections, bounded the same way.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let error = source(format!("https://{closed}/token"))
        .token()
        .await
        .expect_err("nothing listening");
    assert!(
        matches!(error.kind(), TokenErrorKind::Unavailable { .. }),
        "{error}"
    );

    // A server that accepts and never answers: each attempt ends at the timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let started = Instant::now();
    let error = TokenSource::builder("patient", identity.clone())
        .token_endpoint(format!("https://{silent_addr}/token"))
        .max_attempts(2)
        .retry_backoff(Duration::from_millis(10))
        .timeout(Duration::from_millis(300))
        .build()
        .expect("source")
        .token()
        .await
        .expect_err("no answer");
    assert!(error.is_transient(), "{error}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    drop(silent);

    // A 404 without an RFC 6749 error is not a token response, and is not retried.
    let (not_found, calls) = failing_endpoint(&pki, 404).await;
    let error = source(not_found.url("/token"))
        .token()
        .await
        .expect_err("404");
    assert!(
        matches!(error.kind(), TokenErrorKind::InvalidResponse { .. }),
        "{error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn discovery_prefers_the_mtls_alias_and_checks_the_issuer() {
    let pki = Pki::new("client-tokens-discovery");
    let (_test, identity, _) = self_signed("aliased");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("https://{}", listener.local_addr().expect("addr"));
    let metadata = json!({
        "issuer": base,
        "token_endpoint": format!("{base}/plain-token"),
        "mtls_endpoint_aliases": {"token_endpoint": format!("{base}/mtls-token")},
    });
    let plain = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&plain);
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            axum::routing::get(move || async move { axum::Json(metadata) }),
        )
        .route(
            "/plain-token",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "unused" }
            }),
        )
        .route(
            "/mtls-token",
            post(|| async {
                axum::Json(json!({"access_token": "opaque-1", "token_type": "bearer", "expires_in": "120"}))
            }),
        );
    let _server = TestServer::start_on(listener, any_certificate_tls(&pki), app);
    let builder = |issuer: &str| {
        TokenSource::builder("aliased", identity.clone())
            .issuer(issuer)
            .trust_root(pki.ca_der())
            .only_trust_roots()
            .build()
            .expect("source")
    };
    let token = builder(&base).token().await.expect("token");
    assert_eq!(token.secret(), "opaque-1");
    assert_eq!(token.scheme(), TokenScheme::Bearer);
    assert_eq!(plain.load(Ordering::SeqCst), 0);
    // The document's issuer must be the configured one.
    let error = builder(&format!("{base}/"))
        .token()
        .await
        .expect_err("issuer");
    assert!(
        matches!(error.kind(), TokenErrorKind::InvalidResponse { .. }),
        "{error}"
    );
}

/// The `alg` a DPoP proof's header gives.
fn proof_alg(proof: &str) -> String {
    let header = proof.split('.').next().unwrap_or_default();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON");
    header["alg"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_ed25519_client_names_its_algorithm_as_the_servers_metadata_does() {
    use std::sync::Mutex;
    use tower::{Layer as _, ServiceExt as _};
    let pki = Pki::new("client-tokens-ed25519-names");
    let (_test, identity, _) = self_signed("ed-client");
    // (what the metadata lists, what the proofs must say)
    for (listed, expected) in [
        (json!(["ES256", "Ed25519"]), "Ed25519"),
        (json!(["ES256", "EdDSA"]), "EdDSA"),
        (json!(["EdDSA", "Ed25519"]), "EdDSA"),
        (json!(null), "EdDSA"),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("https://{}", listener.local_addr().expect("addr"));
        let mut metadata = json!({"issuer": base, "token_endpoint": format!("{base}/token")});
        if !listed.is_null() {
            metadata["dpop_signing_alg_values_supported"] = listed.clone();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let at_token_endpoint = Arc::clone(&seen);
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                axum::routing::get(move || async move { axum::Json(metadata) }),
            )
            .route(
                "/token",
                post(move |headers: axum::http::HeaderMap| async move {
                    let proof = headers["dpop"].to_str().expect("ASCII");
                    at_token_endpoint.lock().unwrap().push(proof_alg(proof));
                    axum::Json(json!({"access_token": "opaque-dpop", "token_type": "DPoP",
                                      "expires_in": 120}))
                }),
            );
        let _server = TestServer::start_on(listener, any_certificate_tls(&pki), app);
        let source = TokenSource::builder("ed-client", identity.clone())
            .issuer(&base)
            .trust_root(pki.ca_der())
            .only_trust_roots()
            .dpop(DpopKey::generate(Algorithm::EdDSA).expect("key"))
            .build()
            .expect("source");
        let token = source.token().await.expect("token");
        assert_eq!(token.scheme(), TokenScheme::Dpop);
        assert_eq!(*seen.lock().unwrap(), [expected], "listed {listed}");

        // The resource server's proofs name it the same way.
        let at_resource = Arc::new(Mutex::new(String::new()));
        let recorded = Arc::clone(&at_resource);
        let client = certbound::client::TokenLayer::new(source).layer(tower::service_fn(
            move |request: http::Request<http_body_util::Full<bytes::Bytes>>| {
                let proof = request.headers()["dpop"]
                    .to_str()
                    .expect("ASCII")
                    .to_owned();
                *recorded.lock().unwrap() = proof_alg(&proof);
                async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
            },
        ));
        let request = http::Request::get("https://api.test/r")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        client.oneshot(request).await.expect("response");
        assert_eq!(*at_resource.lock().unwrap(), expected, "listed {listed}");
    }
}
