//! The protected application under test, served by `certbound::serve` over real TLS, and small
//! request / assertion helpers around it.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::{Json, Router};
use certbound::tls::{ServerTls, TlsSource};
use certbound::{AccessToken, BoundTokenLayer, ConnectionInfo, JwtValidator, ValidateToken};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{jwks, Pki, TestKey, AUDIENCE, ISSUER};

/// rustls config of the resource server: CA-verified client certificates (RFC 8705 §2.1),
/// optional at the TLS layer so that the layer can answer requests without one.
pub fn ca_verified_tls(pki: &Pki) -> Arc<rustls::ServerConfig> {
    let (chain, key) = pki.server_identity();
    ServerTls::new(chain, key)
        .client_ca([pki.ca_der()])
        .expect("client CA")
        .client_certificate_optional()
        .build()
        .expect("server TLS config")
}

/// rustls config accepting any client certificate, self-signed included (RFC 8705 §2.2),
/// optional at the TLS layer.
pub fn any_certificate_tls(pki: &Pki) -> Arc<rustls::ServerConfig> {
    let (chain, key) = pki.server_identity();
    ServerTls::new(chain, key)
        .any_client_certificate()
        .client_certificate_optional()
        .build()
        .expect("server TLS config")
}

/// A validator for [`ISSUER`] / [`AUDIENCE`] with `keys` as a static JWKS.
pub fn static_validator(keys: &[&TestKey]) -> JwtValidator {
    JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_json(jwks(keys).to_string())
        .build()
        .expect("validator")
}

/// The handler behind every protected route: what the token and the connection say.
///
/// `cert_id` identifies the connection's `ClientCertificate` allocation (the address of its
/// chain, which lives inside the shared `Arc`): equal values mean the very same value, i.e. the
/// thumbprint was computed once and shared.
pub async fn whoami(token: AccessToken, request: Request) -> Json<Value> {
    let info = request.extensions().get::<ConnectionInfo>();
    let cert = info.and_then(ConnectionInfo::client_certificate);
    Json(json!({
        "sub": token.subject(),
        "client_id": token.client_id(),
        "scopes": token.scopes(),
        "thumbprint": token.thumbprint().map(ToString::to_string),
        "jkt": token.dpop_thumbprint().map(ToString::to_string),
        "connection": {
            "remote_addr": info.map(|i| i.remote_addr().to_string()),
            "thumbprint": cert.map(|c| c.thumbprint().to_string()),
            "cert_id": cert.map(|c| c.chain().as_ptr().addr()),
        },
    }))
}

/// `GET`/`POST /whoami` behind `layer`, plus `GET /open` (no layer, no extractor) and
/// `GET /unguarded` (the `AccessToken` extractor without the layer: a misconfiguration).
pub fn whoami_app<V: ValidateToken>(layer: BoundTokenLayer<V>) -> Router {
    let guarded = Router::new()
        .route("/whoami", get(whoami).post(whoami))
        .layer(layer);
    Router::new()
        .merge(guarded)
        .route("/open", get(|| async { "open" }))
        .route("/unguarded", get(whoami))
}

/// `certbound::serve` on `127.0.0.1:0`, running in a task of the current runtime.
pub struct TestServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Binds, then spawns the server; connections are accepted as soon as this returns.
    pub async fn start(tls: impl Into<TlsSource>, app: Router) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(listener, tls, app)
    }

    /// [`TestServer::start`] on a listener bound already (for an app that needs its own URL).
    pub fn start_on(
        listener: tokio::net::TcpListener,
        tls: impl Into<TlsSource>,
        app: Router,
    ) -> TestServer {
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(
            certbound::serve(listener, tls, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .into_future(),
        );
        TestServer {
            addr,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// Signals graceful shutdown and waits for the serve future to finish.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.expect("server task panicked")
    }

    /// Whether the serve future has ended (it must not, while the test runs).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
    );
    headers
}

/// `GET url` with `headers`; panics on transport errors.
pub async fn send(client: &reqwest::Client, url: &str, headers: HeaderMap) -> reqwest::Response {
    client
        .get(url)
        .headers(headers)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"))
}

/// `GET url` with a bearer token.
pub async fn get_with_token(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    send(client, url, bearer(token)).await
}

/// The `WWW-Authenticate` header, if there is exactly one.
pub fn www_authenticate(response: &reqwest::Response) -> Option<String> {
    let mut values = response.headers().get_all(WWW_AUTHENTICATE).iter();
    let first = values.next()?;
    assert!(values.next().is_none(), "more than one WWW-Authenticate");
    Some(first.to_str().expect("ASCII challenge").to_owned())
}

/// The exact challenge of an `invalid_token` rejection with `description`.
pub fn invalid_token_challenge(description: &str) -> String {
    format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
}

/// Asserts a `401 invalid_token` rejection with exactly `description`, whose challenge does not
/// echo `token` (nor any sizeable piece of it).
pub fn assert_invalid_token(response: &reqwest::Response, token: &str, description: &str) {
    assert_eq!(response.status(), 401, "{description}");
    let challenge = www_authenticate(response).expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(challenge, invalid_token_challenge(description));
    assert_no_token_material(&challenge, token);
}

/// Asserts that `text` holds neither `token` nor any of its longer segments.
pub fn assert_no_token_material(text: &str, token: &str) {
    if !token.is_empty() {
        assert!(!text.contains(token), "challenge echoes the token");
    }
    for segment in token.split(['.', ' ']).filter(|s| s.len() >= 12) {
        assert!(!text.contains(segment), "challenge echoes a token segment");
    }
}
