//! Protected resource metadata (RFC 9728) end to end, over real TLS through `certbound::serve`:
//! the document served to anyone at the §3.1 URL, its members equal to what the layers enforce,
//! and `resource_metadata="…"` (§5.1) on every kind of challenge, HTTP and gRPC.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use certbound::dpop::Dpop;
use certbound::{BoundTokenLayer, RequireScopeLayer, RequireStepUpLayer, ResourceMetadata};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{json, Value};

use crate::common::*;

const MFA: &str = "urn:example:mfa";

struct Fixture {
    alice: ClientIdentity,
    issuer: TestKey,
    server: TestServer,
    /// The absolute URL of the document, as the challenges name it.
    metadata_url: String,
    alice_client: reqwest::Client,
    /// No client certificate.
    anonymous: reqwest::Client,
}

impl Fixture {
    /// The resource `https://127.0.0.1:PORT/v1`: `/v1/whoami` behind the token layer (DPoP
    /// on, scope `read`), `/v1/admin` requiring `admin`, `/v1/transfer` an MFA login; the
    /// metadata outside the layer.
    async fn start() -> Fixture {
        let pki = Pki::new("resource-metadata-ca");
        let alice = pki.client_identity("alice");
        let issuer = TestKey::es256("as-1");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let resource = format!("https://{}/v1", listener.local_addr().expect("address"));

        let metadata = ResourceMetadata::new(&resource)
            .expect("resource identifier")
            .authorization_server(ISSUER)
            .resource_name("Metadata test API");
        let url = metadata.metadata_url().to_owned();
        let layer = BoundTokenLayer::new(static_validator(&[&issuer]))
            .dpop(Dpop::new())
            .require_scope("read")
            .expect("scope")
            .resource_metadata(&url)
            .expect("metadata URL");
        let admin = RequireScopeLayer::new(["admin"])
            .expect("scope")
            .resource_metadata(&url)
            .expect("metadata URL");
        let transfer = RequireStepUpLayer::acr_values([MFA])
            .expect("acr values")
            .max_age(Duration::from_secs(300))
            .resource_metadata(&url)
            .expect("metadata URL");
        let service = metadata
            .bound_token_layer(&layer)
            .require_scope_layer(&admin)
            .build()
            .expect("metadata");

        let app = Router::new()
            .route("/v1/whoami", get(whoami).post(whoami))
            .route("/v1/admin", get(whoami).post(whoami).layer(admin))
            .route("/v1/transfer", get(whoami).layer(transfer))
            .layer(layer)
            .route_service(service.path(), service.clone());
        let server = TestServer::start_on(listener, ca_verified_tls(&pki), app);
        let ca = pki.ca_der();
        Fixture {
            alice_client: https_client(&ca, Some(&alice)),
            anonymous: https_client(&ca, None),
            alice,
            issuer,
            server,
            metadata_url: url,
        }
    }

    /// A token bound to Alice's certificate, with `extra` claims added.
    fn alice_token(&self, extra: Value) -> String {
        let mut claims = claims_bound_to(&self.alice.x5t_s256());
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        self.issuer.sign(&claims)
    }

    /// `, resource_metadata="<url>"`, as every challenge ends.
    fn param(&self) -> String {
        format!(", resource_metadata=\"{}\"", self.metadata_url)
    }
}

/// Every `WWW-Authenticate` value of `response`.
fn challenges(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().expect("ASCII challenge").to_owned())
        .collect()
}

fn grpc(mut headers: HeaderMap) -> HeaderMap {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers
}

#[tokio::test]
async fn the_document_is_served_to_a_client_without_token_or_certificate() {
    let f = Fixture::start().await;
    assert_eq!(
        f.metadata_url,
        f.server.url("/.well-known/oauth-protected-resource/v1"),
        "RFC 9728 §3.1: the well-known suffix goes between the host and the path"
    );
    let response = send(&f.anonymous, &f.metadata_url, HeaderMap::new()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    let document: Value = response.json().await.expect("JSON");
    assert_eq!(
        document,
        json!({
            "resource": f.server.url("/v1"),
            "authorization_servers": [ISSUER],
            "scopes_supported": ["read", "admin"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Metadata test API",
            "tls_client_certificate_bound_access_tokens": true,
            "dpop_signing_alg_values_supported":
                ["ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA", "Ed25519"],
            "dpop_bound_access_tokens_required": false,
        })
    );
    // A client with a certificate and a stale token is not refused either.
    let response = get_with_token(&f.alice_client, &f.metadata_url, "garbage").await;
    assert_eq!(response.status(), 200);
    let response = f
        .anonymous
        .post(&f.metadata_url)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn a_request_without_a_token_is_pointed_at_the_document() {
    let f = Fixture::start().await;
    let response = send(
        &f.alice_client,
        &f.server.url("/v1/whoami"),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(response.status(), 401);
    let algs = "algs=\"ES256 ES384 PS256 PS384 PS512 EdDSA Ed25519\"";
    assert_eq!(
        challenges(&response),
        [
            format!("Bearer resource_metadata=\"{}\"", f.metadata_url),
            format!("DPoP {algs}{}", f.param()),
        ]
    );
    // The client can follow it.
    let response = send(&f.anonymous, &f.metadata_url, HeaderMap::new()).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_kind_of_rejection_names_the_document() {
    let f = Fixture::start().await;
    let p = f.param();

    let response = get_with_token(&f.alice_client, &f.server.url("/v1/whoami"), "garbage").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!(
            "Bearer error=\"invalid_token\", error_description=\"invalid access token\"{p}"
        )]
    );

    let reader = f.alice_token(json!({ "scope": "read" }));
    let response = get_with_token(&f.alice_client, &f.server.url("/v1/admin"), &reader).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        challenges(&response),
        [format!(
            "Bearer error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\"{p}"
        )]
    );

    let weak = f.alice_token(json!({ "acr": "urn:example:pwd", "auth_time": now() - 10 }));
    let response = get_with_token(&f.alice_client, &f.server.url("/v1/transfer"), &weak).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!(
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"insufficient user authentication\", \
             acr_values=\"{MFA}\", max_age=300{p}"
        )]
    );

    let key = ProofKey::es256();
    let token = f.issuer.sign(&claims_dpop_bound(&key.jkt()));
    let wrong_url = key.proof("GET", &f.server.url("/v1/elsewhere"), &token);
    let response = send(
        &f.anonymous,
        &f.server.url("/v1/whoami"),
        dpop_headers(&token, &wrong_url),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!(
            "DPoP error=\"invalid_dpop_proof\", error_description=\"invalid DPoP proof\", \
             algs=\"ES256 ES384 PS256 PS384 PS512 EdDSA Ed25519\"{p}"
        )]
    );
    assert_no_token_material(&challenges(&response).join(" "), &token);
}

#[tokio::test]
async fn a_grpc_rejection_carries_the_same_challenge() {
    let f = Fixture::start().await;
    let p = f.param();
    let cases = [
        (
            "/v1/whoami",
            "garbage".to_owned(),
            "16",
            format!("Bearer error=\"invalid_token\", error_description=\"invalid access token\"{p}"),
        ),
        (
            "/v1/admin",
            f.alice_token(json!({ "scope": "read" })),
            "7",
            format!(
                "Bearer error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\"{p}"
            ),
        ),
    ];
    for (path, token, status, challenge) in cases {
        let response = f
            .alice_client
            .post(f.server.url(path))
            .headers(grpc(bearer(&token)))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{path}");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["grpc-status"], status, "{path}");
        assert_eq!(challenges(&response), [challenge], "{path}");
    }
}
