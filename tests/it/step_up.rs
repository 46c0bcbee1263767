//! Step-up authentication (RFC 9470) end to end, over real TLS through `certbound::serve`: a
//! route that requires an `acr` and a recent `auth_time` behind a `BoundTokenLayer` with DPoP
//! on, its exact `insufficient_user_authentication` challenges for `Bearer`, `DPoP` and gRPC
//! clients, and binding checked before the step-up.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use certbound::dpop::Dpop;
use certbound::{BoundTokenLayer, RequireStepUpLayer};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Version;
use serde_json::{json, Value};

use crate::common::*;

const MFA: &str = "urn:mace:incommon:iap:silver";
const HARDWARE: &str = "urn:example:hardware-key";
/// The challenge of `/transfer` for a client that used `scheme`.
fn transfer_challenge(scheme: &str) -> String {
    format!(
        "{scheme} error=\"insufficient_user_authentication\", \
         error_description=\"insufficient user authentication\", \
         acr_values=\"{MFA} {HARDWARE}\", max_age=300"
    )
}

struct Fixture {
    alice: ClientIdentity,
    bob: ClientIdentity,
    issuer: TestKey,
    server: TestServer,
    alice_client: reqwest::Client,
    bob_client: reqwest::Client,
    /// No client certificate (DPoP clients).
    anonymous: reqwest::Client,
}

impl Fixture {
    /// `/whoami`: the token layer alone; `/transfer`: an MFA login at most 300 s old;
    /// `/recent`: any login at most 60 s old. One `BoundTokenLayer` with DPoP on in front.
    async fn start() -> Fixture {
        let pki = Pki::new("step-up-ca");
        let alice = pki.client_identity("alice");
        let bob = pki.client_identity("bob");
        let issuer = TestKey::es256("as-1");
        let transfer = RequireStepUpLayer::acr_values([MFA, HARDWARE])
            .expect("acr values")
            .max_age(Duration::from_secs(300));
        let recent = RequireStepUpLayer::authenticated_within(Duration::from_secs(60));
        let app = Router::new()
            .route("/whoami", get(whoami).post(whoami))
            .route("/transfer", get(whoami).post(whoami).layer(transfer))
            .route("/recent", get(whoami).layer(recent))
            .layer(BoundTokenLayer::new(static_validator(&[&issuer])).dpop(Dpop::new()));
        let server = TestServer::start(ca_verified_tls(&pki), app).await;
        let ca = pki.ca_der();
        Fixture {
            alice_client: https_client(&ca, Some(&alice)),
            bob_client: https_client(&ca, Some(&bob)),
            anonymous: https_client(&ca, None),
            alice,
            bob,
            issuer,
            server,
        }
    }

    /// A token bound to Alice's certificate, with `login` (`acr`, `auth_time`) added.
    fn alice_token(&self, login: Value) -> String {
        let mut claims = claims_bound_to(&self.alice.x5t_s256());
        add(&mut claims, login);
        self.issuer.sign(&claims)
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        path: &str,
        headers: HeaderMap,
    ) -> reqwest::Response {
        send(client, &self.server.url(path), headers).await
    }
}

fn add(claims: &mut Value, login: Value) {
    let (Some(claims), Value::Object(login)) = (claims.as_object_mut(), login) else {
        unreachable!("claims are objects");
    };
    claims.extend(login);
}

/// Seconds since the epoch, as the claims carry them.
fn ago(seconds: u64) -> u64 {
    now() - seconds
}

#[tokio::test]
async fn a_bearer_token_from_a_weak_or_old_login_is_challenged_to_step_up() {
    let f = Fixture::start().await;
    let cases = [
        ("no acr, no auth_time", json!({})),
        ("no acr", json!({ "auth_time": ago(10) })),
        (
            "a password login",
            json!({"acr": "urn:example:pwd", "auth_time": ago(10)}),
        ),
        ("no auth_time", json!({ "acr": MFA })),
        (
            "an auth_time that is not a number",
            json!({"acr": MFA, "auth_time": "recent"}),
        ),
        (
            "an MFA login too long ago",
            json!({"acr": MFA, "auth_time": ago(301)}),
        ),
        (
            "an MFA login in the future",
            json!({"acr": MFA, "auth_time": now() + 3600}),
        ),
    ];
    for (name, login) in cases {
        let token = f.alice_token(login);
        let response = f.get(&f.alice_client, "/transfer", bearer(&token)).await;
        assert_eq!(response.status(), 401, "{name}");
        let challenge = www_authenticate(&response).expect("one challenge");
        assert_eq!(challenge, transfer_challenge("Bearer"), "{name}");
        assert_no_token_material(&challenge, &token);
        // The same token is still good where no step-up is required.
        let response = f.get(&f.alice_client, "/whoami", bearer(&token)).await;
        assert_eq!(response.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn a_bearer_token_from_a_strong_recent_login_is_served() {
    let f = Fixture::start().await;
    for login in [
        json!({"acr": MFA, "auth_time": ago(10)}),
        json!({"acr": HARDWARE, "auth_time": ago(240)}),
        // Fractions of a NumericDate are cut off.
        json!({"acr": MFA, "auth_time": ago(10) as f64 + 0.5}),
    ] {
        let token = f.alice_token(login.clone());
        let response = f.get(&f.alice_client, "/transfer", bearer(&token)).await;
        assert_eq!(response.status(), 200, "{login}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["sub"], "alice");
    }
}

#[tokio::test]
async fn max_age_alone_accepts_any_acr_but_not_an_old_login() {
    let f = Fixture::start().await;
    let fresh = f.alice_token(json!({ "auth_time": ago(5) }));
    let response = f.get(&f.alice_client, "/recent", bearer(&fresh)).await;
    assert_eq!(response.status(), 200);
    let stale = f.alice_token(json!({"acr": MFA, "auth_time": ago(61)}));
    let response = f.get(&f.alice_client, "/recent", bearer(&stale)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        www_authenticate(&response).as_deref(),
        Some(
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"insufficient user authentication\", max_age=60"
        )
    );
}

#[tokio::test]
async fn a_dpop_client_is_challenged_with_the_dpop_scheme() {
    let f = Fixture::start().await;
    let key = ProofKey::es256();
    let token_with = |login: Value| {
        let mut claims = claims_dpop_bound(&key.jkt());
        add(&mut claims, login);
        f.issuer.sign(&claims)
    };
    let url = f.server.url("/transfer");

    let weak = token_with(json!({"acr": "urn:example:pwd", "auth_time": ago(10)}));
    let headers = dpop_headers(&weak, &key.proof("GET", &url, &weak));
    let response = f.get(&f.anonymous, "/transfer", headers).await;
    assert_eq!(response.status(), 401);
    let challenge = www_authenticate(&response).expect("one challenge");
    assert_eq!(challenge, transfer_challenge("DPoP"));
    assert_no_token_material(&challenge, &weak);

    let strong = token_with(json!({"acr": MFA, "auth_time": ago(10)}));
    let headers = dpop_headers(&strong, &key.proof("GET", &url, &strong));
    let response = f.get(&f.anonymous, "/transfer", headers).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["jkt"], json!(key.jkt()));
}

#[tokio::test]
async fn a_grpc_call_is_unauthenticated_with_the_same_challenge() {
    let f = Fixture::start().await;
    let weak = f.alice_token(json!({"acr": MFA, "auth_time": ago(3600)}));
    let response = f
        .alice_client
        .post(f.server.url("/transfer"))
        .headers(bearer(&weak))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .send()
        .await
        .expect("POST /transfer");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(
        response.headers()["grpc-message"],
        "insufficient user authentication"
    );
    assert_eq!(
        www_authenticate(&response),
        Some(transfer_challenge("Bearer"))
    );
}

#[tokio::test]
async fn binding_is_checked_before_step_up() {
    let f = Fixture::start().await;
    // A stolen token from a strong login is still useless to Bob: invalid_token, not step-up.
    let strong = f.alice_token(json!({"acr": MFA, "auth_time": ago(10)}));
    let response = f.get(&f.bob_client, "/transfer", bearer(&strong)).await;
    assert_invalid_token(
        &response,
        &strong,
        "access token bound to another certificate",
    );
    // Bob's own token from a weak login gets the step-up challenge.
    let mut claims = claims_bound_to(&f.bob.x5t_s256());
    add(&mut claims, json!({ "acr": "urn:example:pwd" }));
    let bobs = f.issuer.sign(&claims);
    let response = f.get(&f.bob_client, "/transfer", bearer(&bobs)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        www_authenticate(&response),
        Some(transfer_challenge("Bearer"))
    );
}
