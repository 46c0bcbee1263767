//! A real HTTPS RFC 7662 introspection endpoint (and RFC 8414 metadata naming it), with
//! switchable failures, call counting, a gate to hold answers back, and checks of the resource
//! server's client authentication.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{b64url, init, provider, ClientIdentity, HttpsServer, Pki, PresentedCertificate};

/// The introspection endpoint.
pub const INTROSPECT_PATH: &str = "/introspect";
/// The same endpoint as advertised in `mtls_endpoint_aliases` (RFC 8705 §5).
pub const MTLS_INTROSPECT_PATH: &str = "/mtls/introspect";

/// How the resource server must authenticate to the endpoint.
#[derive(Clone, Debug)]
pub enum Introspection {
    /// `client_secret_basic` (credentials form-encoded, then base64).
    Basic { id: String, secret: String },
    /// `client_secret_post`.
    Post { id: String, secret: String },
    /// `tls_client_auth`: `client_id` in the form, and a client certificate with this
    /// x5t#S256 on the connection.
    Mtls { id: String, x5t: String },
}

impl Introspection {
    pub fn basic(id: &str, secret: &str) -> Self {
        Self::Basic {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }
    }

    pub fn post(id: &str, secret: &str) -> Self {
        Self::Post {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }
    }

    pub fn mtls(id: &str, identity: &ClientIdentity) -> Self {
        Self::Mtls {
            id: id.to_owned(),
            x5t: identity.x5t_s256(),
        }
    }
}

/// What the endpoint answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// The configured answer for the token (`{"active": false}` for unknown tokens).
    Answer,
    /// This status, with a small body.
    Status(StatusCode),
    /// `200` with exactly this body.
    Raw(String),
    /// This status with this JSON body (an RFC 6749 §5.2 error answer, say).
    Error(StatusCode, &'static str),
    /// Never answers (the request hangs until the client gives up).
    Hang,
}

struct Inner {
    expected: Introspection,
    behaviour: Behaviour,
    answers: HashMap<String, Value>,
    issuer: String,
    calls: HashMap<String, usize>,
    /// Set while answers are held back; requests wait until it reads `true`.
    gate: Option<watch::Receiver<bool>>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct IntrospectionServer {
    addr: SocketAddr,
    pki: Pki,
    state: Shared,
    /// Total calls to either introspection path, for waiting on them.
    calls: watch::Receiver<usize>,
    in_flight: Arc<InFlight>,
    /// Held for its drop: dropping it stops the server.
    _server: HttpsServer,
}

#[derive(Clone)]
struct AppState {
    shared: Shared,
    calls: Arc<watch::Sender<usize>>,
    in_flight: Arc<InFlight>,
}

/// Calls being answered now, and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// Counts one call in flight until dropped (the handler's end, or its cancellation).
struct Counted<'a>(&'a InFlight);

impl<'a> Counted<'a> {
    fn new(in_flight: &'a InFlight) -> Self {
        let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.most.fetch_max(now, Ordering::SeqCst);
        Counted(in_flight)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn form(body: &[u8]) -> HashMap<String, Vec<String>> {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        fields
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    fields
}

fn one<'a>(fields: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    match fields.get(name).map(Vec::as_slice) {
        Some([v]) => Some(v),
        _ => None,
    }
}

fn client_authenticated(
    expected: &Introspection,
    headers: &HeaderMap,
    fields: &HashMap<String, Vec<String>>,
    peer: &PresentedCertificate,
) -> bool {
    match expected {
        Introspection::Basic { id, secret } => {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let want = format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
            );
            headers
                .get(AUTHORIZATION)
                .is_some_and(|v| v == want.as_str())
                && !fields.contains_key("client_secret")
        }
        Introspection::Post { id, secret } => {
            one(fields, "client_id") == Some(id)
                && one(fields, "client_secret") == Some(secret)
                && headers.get(AUTHORIZATION).is_none()
        }
        Introspection::Mtls { id, x5t } => {
            let presented = peer.0.as_ref().map(|c| b64url(Sha256::digest(c.as_ref())));
            one(fields, "client_id") == Some(id)
                && presented.as_deref() == Some(x5t.as_str())
                && !fields.contains_key("client_secret")
        }
    }
}

async fn introspect(
    State(app): State<AppState>,
    Extension(peer): Extension<PresentedCertificate>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _counted = Counted::new(&app.in_flight);
    let (behaviour, expected, gate) = {
        let mut s = app.shared.lock().expect("state lock");
        *s.calls.entry(uri.path().to_owned()).or_insert(0) += 1;
        (s.behaviour.clone(), s.expected.clone(), s.gate.clone())
    };
    app.calls.send_modify(|n| *n += 1);
    if let Some(mut gate) = gate {
        let _ = gate.wait_for(|open| *open).await;
    }

    let form_type = headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    let fields = form(&body);
    let Some(token) = one(&fields, "token").filter(|_| form_type) else {
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#).into_response();
    };
    if one(&fields, "token_type_hint") != Some("access_token") {
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#).into_response();
    }
    if !client_authenticated(&expected, &headers, &fields, &peer) {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response();
    }
    let json = [(CONTENT_TYPE, "application/json")];
    match behaviour {
        Behaviour::Answer => {
            let answer = app
                .shared
                .lock()
                .expect("state lock")
                .answers
                .get(token)
                .cloned()
                .unwrap_or_else(|| json!({"active": false}));
            (json, answer.to_string()).into_response()
        }
        Behaviour::Status(code) => (code, json, r#"{"error":"simulated"}"#).into_response(),
        Behaviour::Raw(body) => (json, body).into_response(),
        Behaviour::Error(code, body) => (code, json, body).into_response(),
        Behaviour::Hang => std::future::pending().await,
    }
}

async fn metadata(State(app): State<AppState>) -> Response {
    let issuer = app.shared.lock().expect("state lock").issuer.clone();
    let doc = json!({
        "issuer": issuer,
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "tls_client_certificate_bound_access_tokens": true,
        "mtls_endpoint_aliases": {
            "introspection_endpoint": format!("{issuer}{MTLS_INTROSPECT_PATH}"),
        },
    });
    ([(CONTENT_TYPE, "application/json")], doc.to_string()).into_response()
}

impl IntrospectionServer {
    /// Starts the endpoint, expecting the resource server to authenticate as `expected`.
    /// Client certificates are optional at the TLS layer and, when presented, must chain to
    /// [`IntrospectionServer::pki`]'s CA.
    pub async fn start(expected: Introspection) -> IntrospectionServer {
        init();
        let pki = Pki::new("introspection-server-test-ca");
        let (chain, key) = pki.server_identity();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der()).expect("client CA");
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .expect("client verifier");
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("server cert");
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let listener = HttpsServer::bind().await;
        let addr = listener.local_addr().expect("local addr");
        let shared: Shared = Arc::new(Mutex::new(Inner {
            expected,
            behaviour: Behaviour::Answer,
            answers: HashMap::new(),
            issuer: format!("https://{addr}"),
            calls: HashMap::new(),
            gate: None,
        }));
        let (calls_tx, calls) = watch::channel(0);
        let in_flight = Arc::new(InFlight::default());
        let app = AppState {
            shared: Arc::clone(&shared),
            calls: Arc::new(calls_tx),
            in_flight: Arc::clone(&in_flight),
        };
        let router = Router::new()
            .route(INTROSPECT_PATH, post(introspect))
            .route(MTLS_INTROSPECT_PATH, post(introspect))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .with_state(app);
        let server = HttpsServer::start(listener, Arc::new(tls), router);
        IntrospectionServer {
            addr,
            pki,
            state: shared,
            calls,
            in_flight,
            _server: server,
        }
    }

    fn state(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().expect("state lock")
    }

    /// `https://127.0.0.1:PORT` (also the issuer of the metadata).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The introspection endpoint's URL.
    pub fn url(&self) -> String {
        format!("{}{INTROSPECT_PATH}", self.base_url())
    }

    /// The CA of the server certificate (and of accepted client certificates).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.pki.ca_der()
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The answer for `token` from now on.
    pub fn set_answer(&self, token: &str, answer: Value) {
        self.state().answers.insert(token.to_owned(), answer);
    }

    /// Revokes `token`: it is reported as `{"active": false}` from now on.
    pub fn revoke(&self, token: &str) {
        self.state().answers.remove(token);
    }

    /// How the resource server must authenticate from now on.
    pub fn set_expected(&self, expected: Introspection) {
        self.state().expected = expected;
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state().behaviour = behaviour;
    }

    /// Calls to `path` so far.
    pub fn calls(&self, path: &str) -> usize {
        self.state().calls.get(path).copied().unwrap_or(0)
    }

    /// Calls to either introspection path so far.
    pub fn total_calls(&self) -> usize {
        *self.calls.borrow()
    }

    /// Waits until at least `n` calls have arrived (no timing: it is told of every call).
    pub async fn wait_for_calls(&self, n: usize) {
        let mut calls = self.calls.clone();
        calls.wait_for(|c| *c >= n).await.expect("server alive");
    }

    /// The most calls that were being answered at the same time.
    pub fn most_in_flight(&self) -> usize {
        self.in_flight.most.load(Ordering::SeqCst)
    }

    /// Holds every answer back until the returned sender sends `true`.
    pub fn hold_answers(&self) -> watch::Sender<bool> {
        let (tx, rx) = watch::channel(false);
        self.state().gate = Some(rx);
        tx
    }
}
