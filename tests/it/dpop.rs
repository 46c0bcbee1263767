//! DPoP (RFC 9449) at the resource server, end to end over real TLS through `certbound::serve`:
//! the RFC's and the FAPI 2.0 conformance suite's negative cases, each with its exact
//! challenge, the positive variations, both constraints on one token, nonces shared by two
//! instances, and a replay store that cannot answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use certbound::dpop::{Dpop, DpopNonces, ReplayFuture, ReplayKey, ReplayStore, StoreError};
use certbound::{BoundTokenLayer, JwtValidator};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{json, Value};

use crate::common::*;

const ALGS: &str = "algs=\"ES256 ES384 PS256 PS384 PS512 EdDSA Ed25519\"";

fn invalid_proof_challenge() -> String {
    format!("DPoP error=\"invalid_dpop_proof\", error_description=\"invalid DPoP proof\", {ALGS}")
}

/// A replay store that cannot answer, counting how often it was asked.
#[derive(Debug, Default)]
struct DownStore {
    calls: AtomicUsize,
}

impl ReplayStore for DownStore {
    fn record(&self, _key: &ReplayKey, _ttl: Duration) -> ReplayFuture {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ReplayFuture::ready(Err(StoreError::new("test store is down")))
    }
}

struct Fixture {
    pki: Pki,
    alice: ClientIdentity,
    issuer: TestKey,
    server: TestServer,
    /// No client certificate.
    anonymous: reqwest::Client,
    anonymous_http1: reqwest::Client,
    /// Alice's certificate.
    alice_client: reqwest::Client,
    down: Arc<DownStore>,
}

fn validator(issuer: &TestKey) -> JwtValidator {
    static_validator(&[issuer])
}

impl Fixture {
    async fn start() -> Fixture {
        let pki = Pki::new("dpop-ca");
        let alice = pki.client_identity("alice");
        let issuer = TestKey::es256("as-1");
        let down = Arc::new(DownStore::default());
        let nonces = DpopNonces::new([42u8; 32]).expect("nonce secret");
        let app =
            Router::new()
                .route(
                    "/whoami",
                    get(whoami)
                        .post(whoami)
                        .layer(BoundTokenLayer::new(validator(&issuer)).dpop(Dpop::new())),
                )
                .route(
                    "/down/whoami",
                    get(whoami).layer(
                        BoundTokenLayer::new(validator(&issuer))
                            .dpop(Dpop::new().replay_store(Arc::clone(&down))),
                    ),
                )
                .route(
                    "/nonce/whoami",
                    get(whoami).layer(
                        BoundTokenLayer::new(validator(&issuer))
                            .dpop(Dpop::new().require_nonce(nonces.clone())),
                    ),
                )
                .route(
                    "/nonce-b/whoami",
                    get(whoami).layer(BoundTokenLayer::new(validator(&issuer)).dpop(
                        Dpop::new().require_nonce(DpopNonces::new([42u8; 32]).expect("secret")),
                    )),
                )
                .route(
                    "/prefixed",
                    get(whoami).layer(
                        BoundTokenLayer::new(validator(&issuer)).dpop(
                            Dpop::new()
                                .public_url("https://api.example/base/")
                                .expect("public URL"),
                        ),
                    ),
                )
                .route(
                    "/unbound-ok",
                    get(whoami).layer(
                        BoundTokenLayer::new(validator(&issuer))
                            .allow_unbound()
                            .dpop(Dpop::new()),
                    ),
                );
        let server = TestServer::start(ca_verified_tls(&pki), app).await;
        let ca = pki.ca_der();
        Fixture {
            anonymous: https_client(&ca, None),
            anonymous_http1: https_client_http1(&ca, None),
            alice_client: https_client(&ca, Some(&alice)),
            pki,
            alice,
            issuer,
            server,
            down,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// A token bound to `key`.
    fn token_for(&self, key: &ProofKey) -> String {
        self.issuer.sign(&claims_dpop_bound(&key.jkt()))
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        path: &str,
        headers: HeaderMap,
    ) -> reqwest::Response {
        send(client, &self.url(path), headers).await
    }
}

fn challenges(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_owned())
        .collect()
}

#[tokio::test]
async fn a_dpop_bound_token_with_a_fresh_proof_is_served_without_any_client_certificate() {
    let f = Fixture::start().await;
    for (key, client) in [
        (ProofKey::es256(), &f.anonymous),
        (ProofKey::eddsa(), &f.anonymous_http1),
    ] {
        let token = f.token_for(&key);
        let url = f.url("/whoami");
        let response = f
            .get(
                client,
                "/whoami",
                dpop_headers(&token, &key.proof("GET", &url, &token)),
            )
            .await;
        assert_eq!(response.status(), 200, "{:?}", challenges(&response));
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["jkt"], json!(key.jkt()));
        assert_eq!(body["thumbprint"], Value::Null);
        assert_eq!(body["sub"], "alice");
    }
}

#[tokio::test]
async fn every_negative_case_of_the_rfc_and_the_conformance_suite_is_an_invalid_proof() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    let url = f.url("/whoami");
    let claims = || proof_claims("GET", &url, Some(&token));
    let edit = |name: &str, value: Option<Value>| {
        let mut c = claims();
        match value {
            Some(v) => c[name] = v,
            None => {
                c.as_object_mut().expect("object").remove(name);
            }
        }
        key.sign(&key.header(), &c)
    };
    let header_edit = |name: &str, value: Option<Value>| {
        let mut h = key.header();
        match value {
            Some(v) => h[name] = v,
            None => {
                h.as_object_mut().expect("object").remove(name);
            }
        }
        key.sign(&h, &claims())
    };
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!(b64url([7u8; 32]));
    let good = key.proof("GET", &url, &token);
    let (signed, _) = good.rsplit_once('.').expect("JWS");
    let other_signature = ProofKey::es256().proof("GET", &url, &token);
    let forged = format!(
        "{signed}.{}",
        other_signature.rsplit_once('.').expect("JWS").1
    );
    let cases: Vec<(&str, String)> = vec![
        ("malformed JWT", "not-a-jwt".to_owned()),
        ("four parts", format!("{good}.x")),
        ("no jti", edit("jti", None)),
        ("no htm", edit("htm", None)),
        ("no htu", edit("htu", None)),
        ("no iat", edit("iat", None)),
        ("no ath", edit("ath", None)),
        ("no typ", header_edit("typ", None)),
        ("typ JWT", header_edit("typ", Some(json!("JWT")))),
        ("no jwk", header_edit("jwk", None)),
        ("private jwk", header_edit("jwk", Some(private_jwk))),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(
                    serde_json::to_vec(
                        &json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()})
                    )
                    .unwrap()
                ),
                b64url(serde_json::to_vec(&claims()).unwrap())
            ),
        ),
        ("alg HS256", header_edit("alg", Some(json!("HS256")))),
        ("bad signature", forged),
        ("wrong htm", edit("htm", Some(json!("POST")))),
        (
            "other htu",
            edit("htu", Some(json!("https://other.example/whoami"))),
        ),
        (
            "htu other path",
            edit("htu", Some(json!(f.url("/whoami2")))),
        ),
        ("iat an hour ago", edit("iat", Some(json!(now() - 3600)))),
        ("iat in an hour", edit("iat", Some(json!(now() + 3600)))),
        (
            "iat five minutes ago",
            edit("iat", Some(json!(now() - 300))),
        ),
        ("wrong ath", edit("ath", Some(json!(ath("another token"))))),
        ("jti too long", edit("jti", Some(json!("j".repeat(257))))),
    ];
    for (name, proof) in &cases {
        let response = f
            .get(&f.anonymous, "/whoami", dpop_headers(&token, proof))
            .await;
        assert_eq!(response.status(), 401, "{name}");
        assert_eq!(challenges(&response), [invalid_proof_challenge()], "{name}");
        assert_no_token_material(&challenges(&response)[0], &token);
        assert_no_token_material(&challenges(&response)[0], proof);
    }
    // No proof at all, and two DPoP headers.
    let mut none = dpop_headers(&token, &good);
    none.remove("dpop");
    let mut two = dpop_headers(&token, &good);
    two.append("dpop", HeaderValue::from_str(&good).expect("header"));
    for (name, headers) in [("no proof", none), ("two DPoP headers", two)] {
        let response = f.get(&f.anonymous, "/whoami", headers).await;
        assert_eq!(response.status(), 401, "{name}");
        assert_eq!(challenges(&response), [invalid_proof_challenge()], "{name}");
    }
    // Nothing of the above burnt the good proof's jti.
    let response = f
        .get(&f.anonymous, "/whoami", dpop_headers(&token, &good))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_replayed_proof_is_refused_and_a_fresh_one_is_not() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    let url = f.url("/whoami");
    let proof = key.proof("GET", &url, &token);
    let first = f
        .get(&f.anonymous, "/whoami", dpop_headers(&token, &proof))
        .await;
    assert_eq!(first.status(), 200);
    // Again on another connection (HTTP/1.1 client): the replay state is the layer's, not the
    // connection's.
    let again = f
        .get(&f.anonymous_http1, "/whoami", dpop_headers(&token, &proof))
        .await;
    assert_eq!(again.status(), 401);
    assert_eq!(challenges(&again), [invalid_proof_challenge()]);
    let fresh = key.proof("GET", &url, &token);
    let response = f
        .get(&f.anonymous, "/whoami", dpop_headers(&token, &fresh))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_proof_by_another_key_is_an_invalid_token_in_the_dpop_scheme() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let attacker = ProofKey::es256();
    let token = f.token_for(&key);
    let url = f.url("/whoami");
    let proof = attacker.proof("GET", &url, &token);
    let response = f
        .get(&f.anonymous, "/whoami", dpop_headers(&token, &proof))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!("DPoP error=\"invalid_token\", error_description=\"access token bound to another DPoP key\", {ALGS}")]
    );
}

#[tokio::test]
async fn a_dpop_bound_token_presented_as_bearer_is_refused_with_both_challenges() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    // With its proof, even: the Bearer scheme is a downgrade (RFC 9449 §7.2).
    let mut headers = bearer(&token);
    headers.insert(
        "dpop",
        HeaderValue::from_str(&key.proof("GET", &f.url("/whoami"), &token)).expect("header"),
    );
    let response = f.get(&f.anonymous, "/whoami", headers).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [
            "Bearer error=\"invalid_token\", error_description=\"DPoP-bound access token presented as a bearer token\"".to_owned(),
            format!("DPoP {ALGS}"),
        ]
    );
}

#[tokio::test]
async fn no_token_on_a_server_that_takes_both_gets_both_challenges_without_error_codes() {
    let f = Fixture::start().await;
    let response = f.get(&f.anonymous, "/whoami", HeaderMap::new()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        ["Bearer".to_owned(), format!("DPoP {ALGS}")]
    );
    // gRPC: status 16 with the same challenges.
    let mut grpc = HeaderMap::new();
    grpc.insert("content-type", HeaderValue::from_static("application/grpc"));
    let response = f.get(&f.anonymous, "/whoami", grpc).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(
        challenges(&response),
        ["Bearer".to_owned(), format!("DPoP {ALGS}")]
    );
}

#[tokio::test]
async fn the_rfc_positive_variations_are_accepted() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    let url = f.url("/whoami");
    let port = f.server.addr().port();
    let with = |name: &str, value: Value| {
        let mut claims = proof_claims("GET", &url, Some(&token));
        claims[name] = value;
        key.sign(&key.header(), &claims)
    };
    let cases = [
        ("extra claims", with("extra", json!({"nested": [1, 2, 3]}))),
        (
            "htu with query and fragment",
            with("htu", json!(format!("{url}?a=1#frag"))),
        ),
        (
            "htu host in capitals",
            with(
                "htu",
                json!(format!("https://127.0.0.1:{port}/whoami").replace("https", "HTTPS")),
            ),
        ),
        ("iat 10 s ahead", with("iat", json!(now() + 10))),
        ("iat 50 s ago", with("iat", json!(now() - 50))),
    ];
    for (name, proof) in cases {
        let response = f
            .get(&f.anonymous, "/whoami", dpop_headers(&token, &proof))
            .await;
        assert_eq!(
            response.status(),
            200,
            "{name}: {:?}",
            challenges(&response)
        );
    }
    // The scheme in any case, and the query string is not part of htu.
    let proof = key.proof("GET", &url, &token);
    let mut headers = dpop_headers(&token, &proof);
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("dpop {token}")).expect("header"),
    );
    let response = f.get(&f.anonymous, "/whoami?x=1", headers).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_token_bound_both_ways_needs_the_certificate_and_the_proof() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let mut claims = claims_dpop_bound(&key.jkt());
    claims["cnf"]["x5t#S256"] = json!(f.alice.x5t_s256());
    let token = f.issuer.sign(&claims);
    let url = f.url("/whoami");
    let response = f
        .get(
            &f.alice_client,
            "/whoami",
            dpop_headers(&token, &key.proof("GET", &url, &token)),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["jkt"], json!(key.jkt()));
    assert_eq!(body["thumbprint"], json!(f.alice.x5t_s256()));
    // The proof without the certificate.
    let response = f
        .get(
            &f.anonymous,
            "/whoami",
            dpop_headers(&token, &key.proof("GET", &url, &token)),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!("DPoP error=\"invalid_token\", error_description=\"client certificate required\", {ALGS}")]
    );
    // The certificate without the proof.
    let response = f.get(&f.alice_client, "/whoami", bearer(&token)).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_certificate_bound_token_works_as_bearer_and_with_the_dpop_scheme() {
    let f = Fixture::start().await;
    let token = f.issuer.sign(&claims_bound_to(&f.alice.x5t_s256()));
    let response = f.get(&f.alice_client, "/whoami", bearer(&token)).await;
    assert_eq!(response.status(), 200);
    let key = ProofKey::eddsa();
    let proof = key.proof("GET", &f.url("/whoami"), &token);
    let response = f
        .get(&f.alice_client, "/whoami", dpop_headers(&token, &proof))
        .await;
    assert_eq!(response.status(), 200);
    // Stolen, without the certificate, it fails whatever the scheme.
    let proof = key.proof("GET", &f.url("/whoami"), &token);
    let response = f
        .get(&f.anonymous, "/whoami", dpop_headers(&token, &proof))
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn an_unbound_token_follows_the_allow_unbound_policy_in_both_schemes() {
    let f = Fixture::start().await;
    let token = f.issuer.sign(&claims_unbound());
    let key = ProofKey::es256();
    for path in ["/whoami", "/unbound-ok"] {
        let proof = key.proof("GET", &f.url(path), &token);
        let response = f
            .get(&f.anonymous, path, dpop_headers(&token, &proof))
            .await;
        let expected = if path == "/whoami" { 401 } else { 200 };
        assert_eq!(response.status(), expected, "{path}");
    }
}

#[tokio::test]
async fn a_replay_store_that_cannot_answer_is_a_503_only_for_otherwise_good_requests() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    let url = f.url("/down/whoami");
    let response = f
        .get(
            &f.anonymous,
            "/down/whoami",
            dpop_headers(&token, &key.proof("GET", &url, &token)),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(challenges(&response).is_empty());
    assert_eq!(f.down.calls.load(Ordering::SeqCst), 1);
    // A proof that fails another check is refused without asking the store.
    let wrong = key.proof("POST", &url, &token);
    let response = f
        .get(&f.anonymous, "/down/whoami", dpop_headers(&token, &wrong))
        .await;
    assert_eq!(response.status(), 401);
    let stolen = ProofKey::es256().proof("GET", &url, &token);
    let response = f
        .get(&f.anonymous, "/down/whoami", dpop_headers(&token, &stolen))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(f.down.calls.load(Ordering::SeqCst), 1);
    // Certificate-bound Bearer requests do not need the store.
    let cert_token = f.issuer.sign(&claims_bound_to(&f.alice.x5t_s256()));
    let response = f
        .get(&f.alice_client, "/down/whoami", bearer(&cert_token))
        .await;
    assert_eq!(response.status(), 200);
    // gRPC: UNAVAILABLE.
    let mut headers = dpop_headers(&token, &key.proof("GET", &url, &token));
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    let response = f.get(&f.anonymous, "/down/whoami", headers).await;
    assert_eq!(response.headers()["grpc-status"], "14");
}

#[tokio::test]
async fn nonces_are_demanded_issued_and_shared_by_instances_with_one_secret() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    let url = f.url("/nonce/whoami");
    // No nonce: use_dpop_nonce with a DPoP-Nonce header.
    let response = f
        .get(
            &f.anonymous,
            "/nonce/whoami",
            dpop_headers(&token, &key.proof("GET", &url, &token)),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!("DPoP error=\"use_dpop_nonce\", error_description=\"a DPoP nonce from the server is required\", {ALGS}")]
    );
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    // A forged nonce: the same answer.
    let mut claims = proof_claims("GET", &url, Some(&token));
    claims["nonce"] = json!("forged-nonce");
    let response = f
        .get(
            &f.anonymous,
            "/nonce/whoami",
            dpop_headers(&token, &key.sign(&key.header(), &claims)),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("dpop-nonce"));
    // With the nonce: served, by this instance and by another with the same secret.
    for path in ["/nonce/whoami", "/nonce-b/whoami"] {
        let mut claims = proof_claims("GET", &f.url(path), Some(&token));
        claims["nonce"] = json!(nonce);
        let response = f
            .get(
                &f.anonymous,
                path,
                dpop_headers(&token, &key.sign(&key.header(), &claims)),
            )
            .await;
        assert_eq!(
            response.status(),
            200,
            "{path}: {:?}",
            challenges(&response)
        );
    }
    // The window applies with nonces too.
    let mut claims = proof_claims("GET", &url, Some(&token));
    claims["nonce"] = json!(nonce);
    claims["iat"] = json!(now() - 300);
    let response = f
        .get(
            &f.anonymous,
            "/nonce/whoami",
            dpop_headers(&token, &key.sign(&key.header(), &claims)),
        )
        .await;
    assert_eq!(challenges(&response), [invalid_proof_challenge()]);
    // Without nonces required, a nonce claim is ignored.
    let mut claims = proof_claims("GET", &f.url("/whoami"), Some(&token));
    claims["nonce"] = json!("anything");
    let response = f
        .get(
            &f.anonymous,
            "/whoami",
            dpop_headers(&token, &key.sign(&key.header(), &claims)),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_public_url_with_a_prefix_pins_htu_whatever_the_host_header_says() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token = f.token_for(&key);
    // A proxy that strips "/base" forwards "/prefixed".
    let good = key.proof("GET", "https://api.example/base/prefixed", &token);
    let response = f
        .get(&f.anonymous, "/prefixed", dpop_headers(&token, &good))
        .await;
    assert_eq!(response.status(), 200, "{:?}", challenges(&response));
    for htu in [
        "https://api.example/prefixed".to_owned(),
        f.url("/prefixed"),
        "https://other.example/base/prefixed".to_owned(),
    ] {
        let proof = key.proof("GET", &htu, &token);
        let response = f
            .get(&f.anonymous, "/prefixed", dpop_headers(&token, &proof))
            .await;
        assert_eq!(response.status(), 401, "{htu}");
    }
    let _ = &f.pki;
}
