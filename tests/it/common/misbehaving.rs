//! An authorization server that misbehaves on demand: a real HTTPS server on 127.0.0.1, written
//! at the TCP / TLS level (tokio-rustls, HTTP/1.1 by hand) so that it can do what a well-behaved
//! HTTP stack never does: stall, trickle, reset, stream without end, lie about sizes, present the
//! wrong certificate. Healthy, it serves a JWKS, discovery metadata and introspection answers, so
//! that recovery can be shown without restarting anything.
//!
//! Every answer carries `connection: close`: each request is one connection, so that a fault
//! switched on affects the very next request (no pooled connection hides it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::{init, provider, Pki};

/// Path of the JWKS.
pub const MISBEHAVING_JWKS_PATH: &str = "/jwks";
/// Path of the introspection endpoint.
pub const MISBEHAVING_INTROSPECT_PATH: &str = "/introspect";
const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
const OIDC_CONFIG: &str = "/.well-known/openid-configuration";

/// The largest request head or body read.
const MAX_REQUEST: usize = 64 * 1024;
/// The size of one piece of an endless or oversized body.
const PIECE: usize = 4096;

/// How the server misbehaves, from the next connection on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Accepts the TCP connection and never answers the TLS handshake.
    NoHandshake,
    /// Completes TLS, reads the request, never answers.
    Hang,
    /// Sends the status line and headers (with a `content-length`), then no body.
    StallBody,
    /// Sends the healthy answer one byte a second.
    Trickle,
    /// Sends the headers and part of the body, then resets the TCP connection (`SO_LINGER` 0).
    Reset,
    /// Per request target (path and query): 503 first, then the healthy answer, alternately.
    Flap,
    /// `302` to the same target over plain `http://`.
    RedirectToHttp,
    /// `302` to the same target at this other `https://` origin (scheme, host and port).
    RedirectTo(String),
    /// `307` (method and body kept) to the same target at this other `https://` origin.
    TemporaryRedirectTo(String),
    /// `200`, chunked, a body that never ends.
    EndlessBody,
    /// `200` with a `content-length` of 1 MiB (and that body, as long as the client reads).
    OversizedContentLength,
    /// `200`, chunked, 256 KiB with no length announced.
    OversizedChunked,
    /// Presents a self-signed certificate for the right names, from no trusted CA.
    UntrustedCertificate,
    /// Presents a certificate from the trusted CA, for `wrong.example` only.
    WrongName,
}

struct Documents {
    jwks: Value,
    /// The issuer of the metadata, before any path suffix of the request.
    issuer: String,
    introspection: Value,
}

struct State {
    fault: Option<Fault>,
    documents: Documents,
    /// Requests per target while flapping (reset when a fault is injected).
    flaps: HashMap<String, usize>,
    requests: usize,
    /// The bodies of the requests read, in order.
    bodies: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

/// The three server identities: the right one and the two wrong ones.
struct Acceptors {
    trusted: TlsAcceptor,
    untrusted: TlsAcceptor,
    wrong_name: TlsAcceptor,
}

/// A misbehaving HTTPS authorization server on `127.0.0.1:0`, healthy until told otherwise.
/// Dropping it closes the listener and every open connection.
pub struct MisbehavingServer {
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    state: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MisbehavingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MisbehavingServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn acceptor(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> TlsAcceptor {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server cert");
    // HTTP/1.1 only: the answers below are written by hand.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(tls))
}

fn server_params(names: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*name).try_into().expect("dns name")),
        })
        .collect();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

impl Acceptors {
    fn new(pki: &Pki) -> Acceptors {
        let (chain, key) = pki.server_identity();
        let trusted = acceptor(chain, key);

        let key = KeyPair::generate().expect("key");
        let cert = server_params(&["localhost", "127.0.0.1"])
            .self_signed(&key)
            .expect("self-signed server cert");
        let untrusted = acceptor(
            vec![cert.der().clone()],
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        );

        // Right CA, right key usage, wrong name: only hostname verification can refuse it.
        let wrong = pki.client_identity_with("wrong.example", |params| {
            *params = server_params(&["wrong.example"]);
        });
        let wrong_name = acceptor(wrong.chain.clone(), wrong.key());
        Acceptors {
            trusted,
            untrusted,
            wrong_name,
        }
    }
}

impl MisbehavingServer {
    /// Binds and starts serving, healthy, with a certificate from `pki` (names `localhost` and
    /// `127.0.0.1`). The issuer of the metadata is [`MisbehavingServer::base_url`].
    pub async fn start(pki: &Pki) -> MisbehavingServer {
        init();
        let acceptors = Arc::new(Acceptors::new(pki));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state: Shared = Arc::new(Mutex::new(State {
            fault: None,
            documents: Documents {
                jwks: json!({"keys": []}),
                issuer: format!("https://{addr}"),
                introspection: json!({"active": false}),
            },
            flaps: HashMap::new(),
            requests: 0,
            bodies: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            // Dropped with the accept task: aborts every connection still open.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let fault = lock(&shared).fault.clone();
                        connections.spawn(connection(
                            tcp,
                            addr,
                            fault,
                            Arc::clone(&acceptors),
                            Arc::clone(&shared),
                        ));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        MisbehavingServer {
            addr,
            ca: pki.ca_der(),
            state,
            task,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `https://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `base_url() + target`.
    pub fn url(&self, target: &str) -> String {
        format!("{}{target}", self.base_url())
    }

    /// The CA of the healthy certificate.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.clone()
    }

    /// Misbehaves from the next connection on.
    pub fn inject(&self, fault: Fault) {
        let mut state = self.state();
        state.flaps.clear();
        state.fault = Some(fault);
    }

    /// Healthy again from the next connection on.
    pub fn heal(&self) {
        self.state().fault = None;
    }

    /// The JWKS served at [`MISBEHAVING_JWKS_PATH`] (whatever the query).
    pub fn set_jwks(&self, jwks: Value) {
        self.state().documents.jwks = jwks;
    }

    /// The issuer the metadata names (e.g. another server's, for a redirect target); a path
    /// suffix of the request (RFC 8414 §3.1) or prefix (OpenID) is appended to it.
    pub fn set_issuer(&self, issuer: String) {
        self.state().documents.issuer = issuer;
    }

    /// The answer to every introspection request, whatever the token.
    pub fn set_introspection_answer(&self, answer: Value) {
        self.state().documents.introspection = answer;
    }

    /// Requests read so far (connections that got as far as a request head).
    pub fn requests(&self) -> usize {
        self.state().requests
    }

    /// The bodies of the requests read so far, in order (form bodies carry tokens).
    pub fn bodies(&self) -> Vec<String> {
        self.state().bodies.clone()
    }
}

impl Drop for MisbehavingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection, with the fault that was on when it was accepted.
async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    fault: Option<Fault>,
    acceptors: Arc<Acceptors>,
    state: Shared,
) {
    let acceptor = match fault {
        Some(Fault::NoHandshake) => return hold_until_closed(tcp).await,
        Some(Fault::UntrustedCertificate) => &acceptors.untrusted,
        Some(Fault::WrongName) => &acceptors.wrong_name,
        _ => &acceptors.trusted,
    };
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    let Some(request) = read_request(&mut tls).await else {
        return;
    };
    let healthy = {
        let mut state = lock(&state);
        state.requests += 1;
        state.bodies.push(request.body.clone());
        healthy_answer(&state.documents, &request)
    };
    let fault = match fault {
        Some(Fault::Flap) => {
            let mut state = lock(&state);
            let seen = state.flaps.entry(request.target.clone()).or_insert(0);
            *seen += 1;
            (*seen % 2 == 1).then_some(Fault::Flap)
        }
        other => other,
    };
    match fault {
        None | Some(Fault::UntrustedCertificate | Fault::WrongName | Fault::NoHandshake) => {
            let _ = write_answer(&mut tls, &healthy).await;
        }
        Some(Fault::Flap) => {
            let failure = Answer::status("503 Service Unavailable", "{\"error\":\"flapping\"}");
            let _ = write_answer(&mut tls, &failure).await;
        }
        Some(Fault::Hang) => hold_until_closed(tls).await,
        Some(Fault::StallBody) => {
            let head = head("200 OK", &[("content-length", "100")]);
            if tls.write_all(head.as_bytes()).await.is_ok() && tls.flush().await.is_ok() {
                hold_until_closed(tls).await;
            }
        }
        Some(Fault::Trickle) => {
            let length = healthy.body.len().to_string();
            let head = head(&healthy.status, &[("content-length", &length)]);
            let _ = trickle(&mut tls, head.as_bytes(), healthy.body.as_bytes()).await;
        }
        Some(Fault::Reset) => {
            let head = head("200 OK", &[("content-length", "1000")]);
            let partial = &healthy.body.as_bytes()[..healthy.body.len().min(10)];
            if tls.write_all(head.as_bytes()).await.is_ok()
                && tls.write_all(partial).await.is_ok()
                && tls.flush().await.is_ok()
            {
                // SO_LINGER 0: the close is a RST, not a FIN after the buffered data.
                let (tcp, _) = tls.into_inner();
                let _ = tcp.set_zero_linger();
                drop(tcp);
            }
        }
        Some(Fault::RedirectToHttp) => {
            let location = format!("http://{addr}{}", request.target);
            let _ = write_answer(&mut tls, &Answer::redirect(&location)).await;
        }
        Some(Fault::RedirectTo(origin)) => {
            let location = format!("{origin}{}", request.target);
            let _ = write_answer(&mut tls, &Answer::redirect(&location)).await;
        }
        Some(Fault::TemporaryRedirectTo(origin)) => {
            let location = format!("{origin}{}", request.target);
            let answer = Answer {
                status: "307 Temporary Redirect".to_owned(),
                ..Answer::redirect(&location)
            };
            let _ = write_answer(&mut tls, &answer).await;
        }
        Some(Fault::EndlessBody) => {
            let head = head("200 OK", &[("transfer-encoding", "chunked")]);
            let _ = chunked(&mut tls, head.as_bytes(), None).await;
        }
        Some(Fault::OversizedChunked) => {
            let head = head("200 OK", &[("transfer-encoding", "chunked")]);
            let _ = chunked(&mut tls, head.as_bytes(), Some(64)).await;
        }
        Some(Fault::OversizedContentLength) => {
            let length = (256 * PIECE).to_string();
            let head = head("200 OK", &[("content-length", &length)]);
            let _ = oversized(&mut tls, head.as_bytes(), 256).await;
        }
    }
}

/// Reads (and discards) until the peer closes or fails: the connection stays open, silent.
async fn hold_until_closed(mut stream: impl AsyncRead + Unpin) {
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

struct Request {
    method: String,
    /// Path and query.
    target: String,
    body: String,
}

/// Reads one request (head and `content-length` body); `None` on anything unexpected.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_REQUEST {
            return None;
        }
        let n = stream.read(&mut piece).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map_or(Some(0), |(_, value)| value.trim().parse().ok())?;
    if length > MAX_REQUEST {
        return None;
    }
    while buffer.len() < head_end + length {
        let n = stream.read(&mut piece).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&piece[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    Some(Request {
        method,
        target,
        body,
    })
}

struct Answer {
    status: String,
    location: Option<String>,
    body: String,
}

impl Answer {
    fn status(status: &str, body: &str) -> Answer {
        Answer {
            status: status.to_owned(),
            location: None,
            body: body.to_owned(),
        }
    }

    fn ok(body: &Value) -> Answer {
        Answer::status("200 OK", &body.to_string())
    }

    fn redirect(location: &str) -> Answer {
        Answer {
            location: Some(location.to_owned()),
            ..Answer::status("302 Found", "")
        }
    }
}

/// What the healthy server answers to `request`.
fn healthy_answer(documents: &Documents, request: &Request) -> Answer {
    let path = request.target.split('?').next().unwrap_or_default();
    let metadata = |suffix: &str| {
        let issuer = format!("{}{suffix}", documents.issuer);
        Answer::ok(&json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}{MISBEHAVING_JWKS_PATH}"),
            "introspection_endpoint": format!("{issuer}{MISBEHAVING_INTROSPECT_PATH}"),
        }))
    };
    let get = request.method == "GET";
    if path == MISBEHAVING_JWKS_PATH || path.ends_with(MISBEHAVING_JWKS_PATH) {
        if !get {
            return Answer::status("405 Method Not Allowed", "");
        }
        Answer::ok(&documents.jwks)
    } else if let Some(suffix) = path.strip_prefix(AS_METADATA) {
        metadata(suffix)
    } else if let Some(prefix) = path.strip_suffix(OIDC_CONFIG) {
        metadata(prefix)
    } else if path.ends_with(MISBEHAVING_INTROSPECT_PATH) {
        if request.method != "POST" {
            return Answer::status("405 Method Not Allowed", "");
        }
        Answer::ok(&documents.introspection)
    } else {
        Answer::status("404 Not Found", "")
    }
}

fn head(status: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    head.push_str("content-type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

async fn write_answer(
    stream: &mut (impl AsyncWrite + Unpin),
    answer: &Answer,
) -> std::io::Result<()> {
    let length = answer.body.len().to_string();
    let mut headers = vec![("content-length", length.as_str())];
    if let Some(location) = &answer.location {
        headers.push(("location", location));
    }
    stream
        .write_all(head(&answer.status, &headers).as_bytes())
        .await?;
    stream.write_all(answer.body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// The head at once, then the body one byte a second (a pace, not a wait for anything).
async fn trickle(
    stream: &mut (impl AsyncWrite + Unpin),
    head: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    stream.write_all(head).await?;
    stream.flush().await?;
    let mut pace = tokio::time::interval(Duration::from_secs(1));
    for byte in body {
        pace.tick().await;
        stream.write_all(&[*byte]).await?;
        stream.flush().await?;
    }
    stream.shutdown().await
}

/// A chunked body of `pieces` pieces of [`PIECE`] bytes, or without end; until the client
/// goes away.
async fn chunked(
    stream: &mut (impl AsyncWrite + Unpin),
    head: &[u8],
    pieces: Option<usize>,
) -> std::io::Result<()> {
    stream.write_all(head).await?;
    let chunk = format!("{PIECE:x}\r\n{}\r\n", " ".repeat(PIECE));
    let mut sent = 0;
    while pieces.is_none_or(|n| sent < n) {
        stream.write_all(chunk.as_bytes()).await?;
        stream.flush().await?;
        sent += 1;
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.shutdown().await
}

/// The head, then `pieces` pieces of [`PIECE`] bytes as long as the client reads.
async fn oversized(
    stream: &mut (impl AsyncWrite + Unpin),
    head: &[u8],
    pieces: usize,
) -> std::io::Result<()> {
    stream.write_all(head).await?;
    let piece = [b' '; PIECE];
    for _ in 0..pieces {
        stream.write_all(&piece).await?;
    }
    stream.flush().await?;
    stream.shutdown().await
}
