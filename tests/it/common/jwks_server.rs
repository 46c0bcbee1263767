//! A real HTTPS server for JWKS and discovery documents, with switchable failures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

use super::{https_client, init, provider, HttpsServer, Pki};

/// Path of the JWKS document.
pub const JWKS_PATH: &str = "/jwks";
/// RFC 8414 authorization server metadata.
pub const AS_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect discovery.
pub const OIDC_CONFIG_PATH: &str = "/.well-known/openid-configuration";

#[derive(Default)]
struct Inner {
    jwks: Value,
    issuer: String,
    jwks_uri: String,
    hits: HashMap<String, usize>,
    status: HashMap<String, StatusCode>,
    raw_body: HashMap<String, String>,
    headers: HashMap<String, Vec<(HeaderName, HeaderValue)>>,
}

type Shared = Arc<Mutex<Inner>>;

/// HTTPS server on `127.0.0.1:0` serving `GET /jwks`, `/.well-known/oauth-authorization-server`
/// (also with a suffix, RFC 8414 §3.1) and `…/.well-known/openid-configuration` from mutable
/// state. Every request is counted per path. Dropping it shuts it down like [`JwksServer::stop`]
/// (without waiting).
pub struct JwksServer {
    addr: SocketAddr,
    pki: Pki,
    state: Shared,
    server: HttpsServer,
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn handle(State(state): State<Shared>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let mut s = state.lock().expect("state lock");
    *s.hits.entry(path.clone()).or_insert(0) += 1;

    let (mut status, mut body) = if path == JWKS_PATH {
        (StatusCode::OK, s.jwks.to_string())
    } else if path.starts_with(AS_METADATA_PATH) || path.ends_with(OIDC_CONFIG_PATH) {
        let doc = json!({ "issuer": s.issuer, "jwks_uri": s.jwks_uri });
        (StatusCode::OK, doc.to_string())
    } else {
        (StatusCode::NOT_FOUND, String::new())
    };
    if let Some(code) = s.status.get(&path) {
        status = *code;
        if !status.is_success() {
            body = "simulated failure".to_owned();
        }
    }
    if let Some(raw) = s.raw_body.get(&path) {
        body = raw.clone();
    }

    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in s.headers.get(&path).into_iter().flatten() {
        headers.insert(name.clone(), value.clone());
    }
    response
}

impl JwksServer {
    /// Binds, starts serving `initial_jwks` at `/jwks`, and returns once the listener is bound
    /// (connections are accepted from then on). The issuer defaults to [`JwksServer::base_url`].
    pub async fn start(initial_jwks: Value) -> JwksServer {
        init();
        let pki = Pki::new("jwks-server-test-ca");
        let (chain, key) = pki.server_identity();
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server cert");
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = HttpsServer::bind().await;
        let addr = listener.local_addr().expect("local addr");
        let base = format!("https://{addr}");
        let state: Shared = Arc::new(Mutex::new(Inner {
            jwks: initial_jwks,
            issuer: base.clone(),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            ..Inner::default()
        }));
        let router = Router::new().fallback(handle).with_state(state.clone());

        let server = HttpsServer::start(listener, Arc::new(tls), router);

        JwksServer {
            addr,
            pki,
            state,
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().expect("state lock")
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `base_url() + path`, e.g. `url("/jwks")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// The CA the server certificate chains to (server SANs: `localhost`, `127.0.0.1`).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.pki.ca_der()
    }

    /// The server's PKI (to issue client identities under the same CA, write PEM files, ...).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// An HTTPS client trusting [`JwksServer::ca_der`], without client certificate.
    pub fn client(&self) -> reqwest::Client {
        https_client(&self.ca_der(), None)
    }

    /// Number of requests seen for exactly `path` (query ignored).
    pub fn hits(&self, path: &str) -> usize {
        self.state().hits.get(path).copied().unwrap_or(0)
    }

    /// Replaces the JWKS served at `/jwks`.
    pub fn set_jwks(&self, jwks: Value) {
        self.state().jwks = jwks;
    }

    /// Sets the `issuer` of both discovery documents.
    pub fn set_issuer(&self, iss: String) {
        self.state().issuer = iss;
    }

    /// Sets the `jwks_uri` of both discovery documents (default `url("/jwks")`).
    pub fn set_jwks_uri(&self, uri: String) {
        self.state().jwks_uri = uri;
    }

    /// Forces `status` for `path` (e.g. 404 for one discovery document, 500 for `/jwks`).
    /// A non-2xx status replaces the body with a short text unless a raw body is set.
    pub fn set_status(&self, path: &str, status: StatusCode) {
        self.state().status.insert(path.to_owned(), status);
    }

    /// Undoes [`JwksServer::set_status`] for `path`.
    pub fn clear_status(&self, path: &str) {
        self.state().status.remove(path);
    }

    /// Serves `body` verbatim at `path` (e.g. malformed JSON).
    pub fn set_raw_body(&self, path: &str, body: impl Into<String>) {
        self.state().raw_body.insert(path.to_owned(), body.into());
    }

    /// Undoes [`JwksServer::set_raw_body`] for `path`.
    pub fn clear_raw_body(&self, path: &str) {
        self.state().raw_body.remove(path);
    }

    /// Closes the listener and every open connection; returns once they are closed, so later
    /// connection attempts are refused and pooled connections fail.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
