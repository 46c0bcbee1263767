//! Several issuers against real authorization servers: `examples/authorization_server.rs` run
//! twice as separate processes (each its own issuer and its own signing key, generated at
//! start), the tokens obtained from each over mutual TLS (`client_credentials`,
//! `self_signed_tls_client_auth`), and a resource server built here from
//! `BoundTokenLayer<Issuers>` behind `certbound::serve`, reached over mutual TLS.
//!
//! The example logs no requests and has no counter, so the resource server reaches each
//! authorization server's `/jwks` through a TCP forwarder that counts the connections made to
//! it: zero connections means no fetch at all (a connection may carry more than one fetch, so a
//! count of one means "fetched, over one connection").

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use certbound::{AccessToken, BoundTokenLayer, Issuers, JwtValidator};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::authz_example::example_binary;
use crate::authz_support::post_form;
use crate::common::*;

/// A TCP forwarder to `upstream` that counts the connections it accepts.
struct CountingForwarder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CountingForwarder {
    async fn start(upstream: SocketAddr) -> CountingForwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("forwarder address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // Upstream gone: the inbound connection is closed unanswered.
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CountingForwarder {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for CountingForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One run of the example authorization server, with `alice` registered as a
/// `self_signed_tls_client_auth` client, and the forwarder to it.
struct ExampleAs {
    issuer: String,
    /// `None` once stopped.
    process: Option<ExampleProcess>,
    forwarder: CountingForwarder,
    _dir: ScratchDir,
}

impl ExampleAs {
    /// Starts the example with issuer `https://127.0.0.1:PORT` (its own address) and `pki`'s
    /// server certificate; returns once it listens.
    async fn start(name: &str, pki: &Pki, alice: &ClientIdentity) -> ExampleAs {
        let dir = ScratchDir::new(name);
        let pem = pki.write_pem_files(&dir.0).expect("PEM files");
        let clients = json!([
            {"client_id": "alice", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": {"keys": [{"kty": "EC", "x5c": [STANDARD.encode(alice.leaf_der())]}]}},
        ]);
        let clients_path = dir.write("clients.json", clients.to_string());
        let listen = format!("127.0.0.1:{}", free_port());
        let issuer = format!("https://{listen}");
        let process = ExampleProcess::spawn(
            example_binary(),
            &[
                "--listen",
                &listen,
                "--tls-cert",
                pem.server_cert.to_str().unwrap(),
                "--tls-key",
                pem.server_key.to_str().unwrap(),
                &format!("--issuer={issuer}"),
                "--audience",
                AUDIENCE,
                "--clients",
                &clients_path,
            ],
        )
        .await;
        let forwarder = CountingForwarder::start(process.addr()).await;
        ExampleAs {
            issuer,
            process: Some(process),
            forwarder,
            _dir: dir,
        }
    }

    /// A validator for this issuer, its keys at `/jwks` through the counting forwarder.
    fn validator(&self, pki: &Pki) -> JwtValidator {
        JwtValidator::builder(&self.issuer, AUDIENCE)
            .jwks_url(format!("https://{}/jwks", self.forwarder.addr))
            .trust_root(pki.ca_der())
            .only_trust_roots()
            .require_at_jwt()
            .build()
            .expect("validator")
    }

    fn token_url(&self) -> String {
        self.process.as_ref().expect("running").url("/token")
    }

    /// A new access token for alice (`client`), from the running process.
    async fn token(&self, client: &reqwest::Client) -> String {
        let (status, body, _) = post_form(
            client,
            &self.token_url(),
            "grant_type=client_credentials&client_id=alice",
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", self.issuer);
        let token = body["access_token"].as_str().expect("access_token");
        assert_eq!(claims(token)["iss"], self.issuer.as_str());
        token.to_owned()
    }

    /// Kills the process (SIGKILL) and waits for it.
    fn kill(&mut self) {
        drop(self.process.take().expect("running"));
    }
}

/// A segment of a compact JWS, decoded without verification.
fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWS segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn claims(token: &str) -> Value {
    segment(token, 1)
}

fn kid(token: &str) -> String {
    segment(token, 0)["kid"].as_str().expect("kid").to_owned()
}

/// The resource server: `/whoami` (the token's issuer, subject and thumbprint) behind
/// `BoundTokenLayer<Issuers>`, TLS accepting any client certificate (alice's is self-signed).
struct Resource {
    client: reqwest::Client,
    server: TestServer,
}

impl Resource {
    async fn start(pki: &Pki, alice: &ClientIdentity, issuers: Issuers) -> Resource {
        let app = Router::new()
            .route(
                "/whoami",
                get(|token: AccessToken| async move {
                    Json(json!({
                        "iss": token.issuer(),
                        "sub": token.subject(),
                        "thumbprint": token.thumbprint().map(ToString::to_string),
                    }))
                }),
            )
            .layer(BoundTokenLayer::new(issuers));
        Resource {
            client: https_client(&pki.ca_der(), Some(alice)),
            server: TestServer::start(any_certificate_tls(pki), app).await,
        }
    }

    async fn request(&self, token: &str) -> reqwest::Response {
        get_with_token(&self.client, &self.server.url("/whoami"), token).await
    }

    /// Asserts that `token` is accepted; what the application was told.
    async fn accepted(&self, token: &str) -> Value {
        let response = self.request(token).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }
}

/// Two example authorization servers and a resource server trusting both.
struct Setup {
    alice: ClientIdentity,
    /// Alice's client for the authorization servers' token endpoints.
    alice_at_as: reqwest::Client,
    a: ExampleAs,
    b: ExampleAs,
    rs: Resource,
}

impl Setup {
    async fn start(test: &str) -> Setup {
        let pki = Pki::new(&format!("issuers-example-as-{test}"));
        let alice = Pki::self_signed_client("alice");
        let a = ExampleAs::start(&format!("issuers-{test}-a"), &pki, &alice).await;
        let b = ExampleAs::start(&format!("issuers-{test}-b"), &pki, &alice).await;
        assert_ne!(a.issuer, b.issuer);
        let issuers = Issuers::builder()
            .jwt(a.validator(&pki))
            .jwt(b.validator(&pki))
            .build()
            .expect("issuers");
        let rs = Resource::start(&pki, &alice, issuers).await;
        Setup {
            alice_at_as: https_client(&pki.ca_der(), Some(&alice)),
            alice,
            a,
            b,
            rs,
        }
    }
}

#[tokio::test]
async fn tokens_of_two_example_authorization_servers_are_accepted_and_a_third_issuers_refused_without_a_fetch(
) {
    let Setup {
        alice,
        alice_at_as,
        a,
        b,
        rs,
    } = Setup::start("accepted").await;

    // A third issuer's token, bound to alice: refused before any key is fetched anywhere.
    let mut forged = claims_bound_to(&alice.x5t_s256());
    forged["iss"] = json!("https://c.issuer.test");
    let third = TestKey::es256("c1").sign(&forged);
    for _ in 0..3 {
        assert_invalid_token(&rs.request(&third).await, &third, "invalid access token");
    }
    assert_eq!(
        (a.forwarder.connections(), b.forwarder.connections()),
        (0, 0),
        "no connection to either authorization server"
    );

    // Each server's tokens, each signed by its own key, accepted and reported as its own.
    let (token_a, token_b) = (a.token(&alice_at_as).await, b.token(&alice_at_as).await);
    assert_ne!(kid(&token_a), kid(&token_b), "two signing keys");
    for _ in 0..3 {
        for (server, token) in [(&a, &token_a), (&b, &token_b)] {
            let body = rs.accepted(token).await;
            assert_eq!(body["iss"], server.issuer.as_str());
            assert_eq!(body["sub"], "alice");
            assert_eq!(body["thumbprint"], alice.x5t_s256());
        }
    }
    // New tokens too, from the cached keys.
    for server in [&a, &b] {
        let body = rs.accepted(&server.token(&alice_at_as).await).await;
        assert_eq!(body["iss"], server.issuer.as_str());
    }
    assert_eq!(
        (a.forwarder.connections(), b.forwarder.connections()),
        (1, 1),
        "one connection to each authorization server's keys"
    );

    // And the third issuer is still refused with no connection made.
    assert_invalid_token(&rs.request(&third).await, &third, "invalid access token");
    assert_eq!(a.forwarder.connections(), 1);
}

#[tokio::test]
async fn with_one_example_authorization_server_killed_the_others_new_tokens_keep_flowing() {
    let Setup {
        alice: _,
        alice_at_as,
        mut a,
        b,
        rs,
    } = Setup::start("outage").await;

    // b's keys cached; a's never asked for.
    let body = rs.accepted(&b.token(&alice_at_as).await).await;
    assert_eq!(body["iss"], b.issuer.as_str());
    // A token of a, obtained but not yet presented: its key is not cached.
    let token_a = a.token(&alice_at_as).await;
    let token_url_a = a.token_url();
    a.kill();
    assert!(
        post_form_fails(&alice_at_as, &token_url_a).await,
        "a is down"
    );

    for round in 1..=3 {
        // a's keys cannot be fetched: 503, no challenge (the client is not to blame).
        let response = rs.request(&token_a).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        assert!(a.forwarder.connections() >= 1, "round {round}: a was tried");
        // b keeps issuing, and its new tokens keep being accepted.
        let body = rs.accepted(&b.token(&alice_at_as).await).await;
        assert_eq!(body["iss"], b.issuer.as_str());
    }
    assert_eq!(b.forwarder.connections(), 1, "b's keys fetched once");
}

/// Whether a token request to `url` fails to connect.
async fn post_form_fails(client: &reqwest::Client, url: &str) -> bool {
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=alice")
        .send()
        .await
        .is_err()
}
