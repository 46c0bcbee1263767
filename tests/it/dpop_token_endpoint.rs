//! DPoP at the token endpoint (RFC 9449 §5), over real TLS: `MtlsClientAuthLayer` with a
//! `TokenEndpointDpop` in front of a token handler that binds what it issues with
//! `AuthenticatedClient::sender_constraints`, clients presenting real certificates and proofs
//! signed in the test (independently of certbound's signer, except where the signer itself is
//! the point), and the tokens used at certbound's own resource-server layer.

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::authorization_server::{
    AuthenticatedClient, AuthorizationServerMetadata, ClientAuthenticator, MtlsClientAuthLayer,
    StaticClients, TokenEndpointDpop,
};
use certbound::dpop::{Dpop, DpopNonces, ReplayFuture, ReplayKey, ReplayStore, StoreError};
use certbound::{Algorithm, BoundTokenLayer, DpopKey};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::common::*;

/// The algorithms a default `Dpop` accepts, as the metadata names them.
const DEFAULT_ALGS: [&str; 7] = [
    "ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA", "Ed25519",
];

/// A replay store that cannot answer.
#[derive(Debug)]
struct DownStore;

impl ReplayStore for DownStore {
    fn record(&self, _key: &ReplayKey, _ttl: Duration) -> ReplayFuture {
        ReplayFuture::ready(Err(StoreError::new("test store is down")))
    }
}

/// A token endpoint with DPoP over real TLS, its clients, and the key it signs tokens with.
struct TokenEndpoint {
    pki: Pki,
    /// Registered for `tls_client_auth` as `CN=plain`, not for certificate-bound tokens.
    plain: ClientIdentity,
    /// Registered as `CN=bound`, with `tls_client_certificate_bound_access_tokens: true`.
    bound: ClientIdentity,
    /// Signs the tokens issued.
    signer: Arc<TestKey>,
    /// `https://127.0.0.1:PORT`.
    base: String,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /token`: an RFC 9068-shaped JWT (the test claims), bound as the request calls for.
async fn issue(State(signer): State<Arc<TestKey>>, client: AuthenticatedClient) -> Response {
    let constraints = client.sender_constraints();
    let mut claims = claims_unbound();
    claims["sub"] = json!(client.client_id());
    claims["client_id"] = json!(client.client_id());
    constraints.insert_into(claims.as_object_mut().expect("claims object"));
    let body = json!({
        "access_token": signer.sign(&claims),
        "token_type": constraints.token_type(),
        "expires_in": 300,
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl TokenEndpoint {
    /// Proofs checked by `dpop`, for the endpoint's own URL.
    async fn start(dpop: Dpop) -> TokenEndpoint {
        Self::start_with(dpop, None).await
    }

    /// With `main_url` given, the endpoint's URL is that one and its own is an alias.
    async fn start_with(dpop: Dpop, main_url: Option<&str>) -> TokenEndpoint {
        let pki = Pki::new("dpop-token-endpoint-ca");
        let plain = pki.client_identity("plain");
        let bound = pki.client_identity("bound");
        let signer = Arc::new(TestKey::es256("as-1"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("https://{}", listener.local_addr().expect("address"));
        let own_url = format!("{base}/token");
        let endpoint_dpop = match main_url {
            None => TokenEndpointDpop::new(dpop, &own_url).expect("token endpoint URL"),
            Some(main) => TokenEndpointDpop::new(dpop, main)
                .and_then(|d| d.alias(&own_url))
                .expect("token endpoint URLs"),
        };
        let metadata = AuthorizationServerMetadata::new(base.clone())
            .token_endpoint(own_url.clone())
            .dpop_signing_alg_values_supported(endpoint_dpop.signing_alg_values());
        let metadata = serde_json::to_value(metadata).expect("metadata");
        let clients = StaticClients::from_json(
            &json!([
                {"client_id": "plain", "token_endpoint_auth_method": "tls_client_auth",
                 "tls_client_auth_subject_dn": "CN=plain"},
                {"client_id": "bound", "token_endpoint_auth_method": "tls_client_auth",
                 "tls_client_auth_subject_dn": "CN=bound",
                 "tls_client_certificate_bound_access_tokens": true},
            ])
            .to_string(),
        )
        .expect("registrations");
        let authenticator = ClientAuthenticator::builder()
            .client_ca([pki.ca_der()])
            .expect("client CA")
            .build()
            .expect("authenticator");
        let app = Router::new()
            .route("/token", post(issue))
            .route_layer(MtlsClientAuthLayer::new(clients, authenticator).dpop(endpoint_dpop))
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || async move { Json(metadata) }),
            )
            .with_state(Arc::clone(&signer));
        let task =
            tokio::spawn(certbound::serve(listener, any_certificate_tls(&pki), app).into_future());
        TokenEndpoint {
            pki,
            plain,
            bound,
            signer,
            base,
            task,
        }
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    fn client(&self, identity: Option<&ClientIdentity>) -> reqwest::Client {
        https_client(&self.pki.ca_der(), identity)
    }

    /// A token request as `client_id` with these `DPoP` headers: status, headers, JSON body.
    async fn request(
        &self,
        client: &reqwest::Client,
        client_id: &str,
        proofs: &[&str],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = client
            .post(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={client_id}"
            ));
        for proof in proofs {
            // reqwest appends: two proofs are two DPoP headers.
            request = request.header("dpop", *proof);
        }
        let response = request.send().await.expect("token request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.expect("JSON body");
        (status, headers, body)
    }
}

/// A fresh proof by `key` for a token request to `url` (no `ath`).
fn token_proof(key: &ProofKey, method: &str, url: &str) -> String {
    key.sign(&key.header(), &proof_claims(method, url, None))
}

/// The claims of a compact JWS, without verifying it.
fn jwt_claims(token: &str) -> Value {
    let claims = token.split('.').nth(1).expect("JWS claims");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64url")).expect("JSON")
}

/// The issued token of a successful response, and its `cnf`.
fn issued((status, _, body): &(u16, reqwest::header::HeaderMap, Value)) -> (String, Value) {
    assert_eq!(*status, 200, "{body}");
    let token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let cnf = jwt_claims(&token)["cnf"].clone();
    (token, cnf)
}

/// Asserts the RFC 9449 §5 rejection of a bad proof.
fn assert_invalid_dpop_proof(
    (status, headers, body): &(u16, reqwest::header::HeaderMap, Value),
    what: &str,
) {
    assert_eq!(*status, 400, "{what}: {body}");
    assert_eq!(
        *body,
        json!({"error": "invalid_dpop_proof", "error_description": "invalid DPoP proof"}),
        "{what}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{what}");
    assert!(headers.get("dpop-nonce").is_none(), "{what}");
}

#[tokio::test]
async fn a_token_request_with_a_valid_proof_gets_a_dpop_token_bound_to_the_proof_key() {
    let endpoint = TokenEndpoint::start(Dpop::new()).await;
    let client = endpoint.client(Some(&endpoint.plain));
    let key = ProofKey::es256();

    let response = endpoint
        .request(
            &client,
            "plain",
            &[&token_proof(&key, "POST", &endpoint.token_url())],
        )
        .await;
    let (_, cnf) = issued(&response);
    assert_eq!(response.2["token_type"], "DPoP");
    assert_eq!(response.1["cache-control"], "no-store");
    // The independent oracle: RFC 7638 computed in the test. Not registered for
    // certificate-bound tokens: the key only.
    assert_eq!(cnf, json!({"jkt": key.jkt()}));

    // Without a proof, the token is bound to the certificate, as without DPoP.
    let response = endpoint.request(&client, "plain", &[]).await;
    let (_, cnf) = issued(&response);
    assert_eq!(response.2["token_type"], "Bearer");
    assert_eq!(cnf, json!({"x5t#S256": endpoint.plain.x5t_s256()}));

    // certbound's own client-side signer makes proofs the token endpoint accepts.
    let signer = DpopKey::generate(Algorithm::ES256).expect("DPoP key");
    let proof = signer
        .proof("POST", &endpoint.token_url())
        .sign()
        .expect("proof");
    let response = endpoint.request(&client, "plain", &[&proof]).await;
    let (_, cnf) = issued(&response);
    assert_eq!(cnf, json!({"jkt": signer.thumbprint().to_string()}));
}

#[tokio::test]
async fn a_client_registered_for_certificate_bound_tokens_gets_both_jkt_and_x5t() {
    let endpoint = TokenEndpoint::start(Dpop::new()).await;
    let client = endpoint.client(Some(&endpoint.bound));
    let key = ProofKey::es256();
    let response = endpoint
        .request(
            &client,
            "bound",
            &[&token_proof(&key, "POST", &endpoint.token_url())],
        )
        .await;
    let (_, cnf) = issued(&response);
    assert_eq!(response.2["token_type"], "DPoP");
    assert_eq!(
        cnf,
        json!({"jkt": key.jkt(), "x5t#S256": endpoint.bound.x5t_s256()})
    );
}

#[tokio::test]
async fn proofs_for_another_url_or_method_with_an_ath_doubled_or_replayed_are_invalid_dpop_proof() {
    let endpoint = TokenEndpoint::start(Dpop::new()).await;
    let client = endpoint.client(Some(&endpoint.plain));
    let key = ProofKey::es256();
    let url = endpoint.token_url();

    for (what, proof) in [
        (
            "another path",
            token_proof(&key, "POST", &format!("{}/other", endpoint.base)),
        ),
        (
            "another host",
            token_proof(&key, "POST", "https://as.example/token"),
        ),
        ("GET", token_proof(&key, "GET", &url)),
        (
            "an ath",
            key.sign(&key.header(), &proof_claims("POST", &url, Some("a-token"))),
        ),
        ("not a JWS", "not-a-proof".to_owned()),
    ] {
        let response = endpoint.request(&client, "plain", &[&proof]).await;
        assert_invalid_dpop_proof(&response, what);
    }

    let first = token_proof(&key, "POST", &url);
    let second = token_proof(&key, "POST", &url);
    let response = endpoint.request(&client, "plain", &[&first, &second]).await;
    assert_invalid_dpop_proof(&response, "two DPoP headers");

    // The first use of a proof gets a token; the very same DPoP header again does not.
    let proof = token_proof(&key, "POST", &url);
    issued(&endpoint.request(&client, "plain", &[&proof]).await);
    let response = endpoint.request(&client, "plain", &[&proof]).await;
    assert_invalid_dpop_proof(&response, "replayed");
}

#[tokio::test]
async fn a_proof_is_checked_only_once_the_client_authenticated() {
    let endpoint = TokenEndpoint::start(Dpop::new()).await;
    let key = ProofKey::es256();
    let proof = token_proof(&key, "POST", &endpoint.token_url());
    // Another client's certificate: invalid_client, and the proof is not spent.
    let other = endpoint.client(Some(&endpoint.bound));
    let (status, headers, body) = endpoint.request(&other, "plain", &[&proof]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(headers["cache-control"], "no-store");
    let (status, headers, body) = endpoint
        .request(&endpoint.client(None), "plain", &["not-a-proof"])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(headers["cache-control"], "no-store");

    let client = endpoint.client(Some(&endpoint.plain));
    let (_, cnf) = issued(&endpoint.request(&client, "plain", &[&proof]).await);
    assert_eq!(cnf, json!({"jkt": key.jkt()}));
}

#[tokio::test]
async fn a_required_nonce_is_asked_for_with_use_dpop_nonce_then_accepted() {
    let nonces = DpopNonces::new([9u8; 32]).expect("nonce secret");
    let endpoint = TokenEndpoint::start(Dpop::new().require_nonce(nonces)).await;
    let client = endpoint.client(Some(&endpoint.plain));
    let key = ProofKey::es256();
    let url = endpoint.token_url();

    let (status, headers, body) = endpoint
        .request(&client, "plain", &[&token_proof(&key, "POST", &url)])
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "use_dpop_nonce");
    assert_eq!(headers["cache-control"], "no-store");
    let nonce = headers["dpop-nonce"]
        .to_str()
        .expect("ASCII nonce")
        .to_owned();
    assert!(!nonce.is_empty());

    // A nonce the server did not issue is no better than none.
    let mut forged = proof_claims("POST", &url, None);
    forged["nonce"] = json!("not-from-this-server");
    let (status, headers, body) = endpoint
        .request(&client, "plain", &[&key.sign(&key.header(), &forged)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("use_dpop_nonce"))
    );
    assert!(headers.get("dpop-nonce").is_some());

    // The retry with the server's nonce gets the token, and a nonce for the next request.
    let mut claims = proof_claims("POST", &url, None);
    claims["nonce"] = json!(nonce);
    let response = endpoint
        .request(&client, "plain", &[&key.sign(&key.header(), &claims)])
        .await;
    let (_, cnf) = issued(&response);
    assert_eq!(cnf, json!({"jkt": key.jkt()}));
    assert!(response.1.get("dpop-nonce").is_some());

    // Token requests without a proof need no nonce.
    let response = endpoint.request(&client, "plain", &[]).await;
    assert_eq!(issued(&response).1["x5t#S256"], endpoint.plain.x5t_s256());
    assert!(response.1.get("dpop-nonce").is_none());
}

#[tokio::test]
async fn a_replay_store_that_cannot_answer_is_503_and_no_token() {
    let endpoint = TokenEndpoint::start(Dpop::new().replay_store(DownStore)).await;
    let client = endpoint.client(Some(&endpoint.plain));
    let key = ProofKey::es256();
    let (status, headers, body) = endpoint
        .request(
            &client,
            "plain",
            &[&token_proof(&key, "POST", &endpoint.token_url())],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn the_proof_is_for_the_alias_url_the_request_arrived_on() {
    // The endpoint's main URL is another host's; requests arrive on the alias (this server).
    let endpoint = TokenEndpoint::start_with(Dpop::new(), Some("https://as.example/token")).await;
    let client = endpoint.client(Some(&endpoint.plain));
    let key = ProofKey::es256();
    let response = endpoint
        .request(
            &client,
            "plain",
            &[&token_proof(&key, "POST", &endpoint.token_url())],
        )
        .await;
    assert_eq!(issued(&response).1, json!({"jkt": key.jkt()}));
    let response = endpoint
        .request(
            &client,
            "plain",
            &[&token_proof(&key, "POST", "https://as.example/token")],
        )
        .await;
    assert_invalid_dpop_proof(&response, "the main URL, on the alias");
}

#[tokio::test]
async fn metadata_lists_dpop_signing_alg_values_supported() {
    let endpoint = TokenEndpoint::start(Dpop::new()).await;
    let metadata: Value = endpoint
        .client(None)
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            endpoint.base
        ))
        .send()
        .await
        .expect("metadata request")
        .json()
        .await
        .expect("metadata JSON");
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(DEFAULT_ALGS)
    );

    let narrowed = Dpop::new()
        .algorithms(&[Algorithm::EdDSA, Algorithm::ES256])
        .expect("algorithms");
    let narrowed = TokenEndpointDpop::new(narrowed, "https://as.example/token").expect("URL");
    assert_eq!(
        narrowed.signing_alg_values().collect::<Vec<_>>(),
        ["EdDSA", "Ed25519", "ES256"]
    );
}

#[tokio::test]
async fn the_issued_dpop_token_works_at_the_resource_server_with_a_fresh_proof_only() {
    let endpoint = TokenEndpoint::start(Dpop::new()).await;
    let key = ProofKey::es256();
    let plain_client = endpoint.client(Some(&endpoint.plain));
    let bound_client = endpoint.client(Some(&endpoint.bound));
    let anonymous = endpoint.client(None);
    let (plain_token, _) = issued(
        &endpoint
            .request(
                &plain_client,
                "plain",
                &[&token_proof(&key, "POST", &endpoint.token_url())],
            )
            .await,
    );
    let (both_token, _) = issued(
        &endpoint
            .request(
                &bound_client,
                "bound",
                &[&token_proof(&key, "POST", &endpoint.token_url())],
            )
            .await,
    );

    // certbound's resource server, trusting the token endpoint's signing key, with DPoP on.
    let rs = TestServer::start(
        any_certificate_tls(&endpoint.pki),
        whoami_app(BoundTokenLayer::new(static_validator(&[&*endpoint.signer])).dpop(Dpop::new())),
    )
    .await;
    let whoami = rs.url("/whoami");

    // Key-bound only: no certificate needed, a fresh proof for each request.
    let proof = key.proof("GET", &whoami, &plain_token);
    let response = send(&anonymous, &whoami, dpop_headers(&plain_token, &proof)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["sub"], "plain");
    let response = send(&anonymous, &whoami, dpop_headers(&plain_token, &proof)).await;
    assert_eq!(response.status(), 401, "replayed proof");
    assert!(www_authenticate(&response)
        .expect("challenge")
        .starts_with("DPoP error=\"invalid_dpop_proof\""));

    // Presented as a bearer token: refused (RFC 9449 §7.2), with or without a certificate;
    // a Bearer challenge with the error, and a bare DPoP one.
    for client in [&anonymous, &plain_client] {
        let response = get_with_token(client, &whoami, &plain_token).await;
        assert_eq!(response.status(), 401);
        let challenges: Vec<_> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().expect("ASCII challenge"))
            .collect();
        assert!(
            challenges[0].starts_with("Bearer error=\"invalid_token\""),
            "{challenges:?}"
        );
    }

    // Bound both ways: the certificate and a proof, each alone is not enough.
    let proof = key.proof("GET", &whoami, &both_token);
    let response = send(&bound_client, &whoami, dpop_headers(&both_token, &proof)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["thumbprint"], endpoint.bound.x5t_s256());
    let proof = key.proof("GET", &whoami, &both_token);
    let response = send(&anonymous, &whoami, dpop_headers(&both_token, &proof)).await;
    assert_eq!(response.status(), 401, "no certificate");
    let response = get_with_token(&bound_client, &whoami, &both_token).await;
    assert_eq!(response.status(), 401, "no proof");
}
