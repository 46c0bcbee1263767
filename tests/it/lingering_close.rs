//! Lingering close: an error answer to a client that is still sending its request reaches it.
//!
//! The clients here write their whole request before reading anything, as Python's
//! `http.client` and many others do. When the server answers `431` and closes while such a
//! client is still sending, the bytes it never read make the kernel reset the connection, and
//! the reset can destroy the answer in flight; `serve` half-closes and reads the rest (within
//! bounds) instead.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use certbound::{BoundTokenLayer, Serve};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(60);
/// Tries per request head, run at once.
const TRIES: usize = 50;
/// The clients' `SO_SNDBUF` (the kernel doubles it).
const CLIENT_SEND_BUFFER: u32 = 16 * 1024;

/// A byte stream to the server, TLS or plain.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// `serve` (TLS, Alice as the client) or `serve_plain` on 127.0.0.1, stopped when dropped.
struct Server {
    pki: Pki,
    alice: ClientIdentity,
    addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(
        tls: bool,
        configure: impl FnOnce(Serve<axum::Router>) -> Serve<axum::Router>,
    ) -> Server {
        let pki = Pki::new("lingering-ca");
        let alice = pki.client_identity("alice");
        let key = TestKey::es256("es-1");
        let app = whoami_app(BoundTokenLayer::new(static_validator(&[&key])));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serve = if tls {
            certbound::serve(listener, ca_verified_tls(&pki), app)
        } else {
            certbound::serve_plain(listener, app)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            configure(serve)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Server {
            pki,
            alice,
            addr,
            tls,
            stop: Some(stop),
            task,
        }
    }

    /// A new connection (TLS with ALPN `http/1.1` as Alice, or plain TCP).
    ///
    /// Its send buffer is small: over a real network path a client is still sending when the
    /// answer comes back, while on loopback the kernel's default (autotuned) buffers would take
    /// a whole 1 MiB request at once and the client would only ever be reading.
    async fn connect(&self) -> Box<dyn Io> {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .set_send_buffer_size(CLIENT_SEND_BUFFER)
            .expect("SO_SNDBUF");
        let tcp = socket.connect(self.addr).await.expect("connect");
        if !self.tls {
            return Box::new(tcp);
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.pki.ca_der()).expect("root");
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(self.alice.chain.clone(), self.alice.key())
            .expect("client auth");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("localhost".try_into().expect("name"), tcp)
            .await
            .expect("handshake");
        Box::new(tls)
    }

    /// Signals graceful shutdown and waits until `serve` has returned.
    async fn shutdown(mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(SAFETY, &mut self.task)
            .await
            .expect("serve returns after its shutdown signal")
            .expect("serve task")
            .expect("serve result");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET /whoami` whose head has a `bytes`-long `authorization` header.
fn long_header(bytes: usize) -> Vec<u8> {
    let mut request = b"GET /whoami HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ".to_vec();
    request.resize(request.len() + bytes, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    request
}

/// `GET /whoami` with `fields` short header fields.
fn many_fields(fields: usize) -> Vec<u8> {
    let mut request = b"GET /whoami HTTP/1.1\r\nhost: localhost\r\n".to_vec();
    for i in 0..fields {
        request.extend_from_slice(format!("x-field-{i}: 1\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// Reads until the server ends the connection: what was read, and the error it ended with.
async fn read_to_the_end(io: &mut (impl AsyncRead + Unpin + ?Sized)) -> (Vec<u8>, Option<String>) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match io.read(&mut buf).await {
            Ok(0) => return (all, None),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => return (all, Some(e.to_string())),
        }
    }
}

/// One client: writes the whole `request`, only then reads. `Ok` when it read the `431` head
/// before the connection ended.
async fn one_try(server: &Server, request: &[u8]) -> Result<(), String> {
    let mut io = server.connect().await;
    if let Err(e) = io.write_all(request).await {
        return Err(format!("writing the request: {e}"));
    }
    if let Err(e) = io.flush().await {
        return Err(format!("flushing the request: {e}"));
    }
    let (read, ended) = read_to_the_end(&mut io).await;
    if read.starts_with(b"HTTP/1.1 431 ") {
        Ok(())
    } else {
        let head = String::from_utf8_lossy(&read[..read.len().min(40)]).into_owned();
        Err(format!(
            "read {head:?}, then the connection ended with {ended:?}"
        ))
    }
}

/// [`TRIES`] clients at once send `request`; every one must read `431`.
async fn assert_every_try_reads_431(tls: bool, what: &str, request: Vec<u8>) {
    let server = Arc::new(Server::start(tls, |s| s).await);
    let request = Arc::new(request);
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..TRIES {
        let (server, request) = (Arc::clone(&server), Arc::clone(&request));
        tries.spawn(async move { one_try(&server, &request).await });
    }
    let outcomes = tokio::time::timeout(SAFETY, tries.join_all())
        .await
        .expect("every try ends");
    let failures: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    let transport = if tls { "tls" } else { "plain" };
    eprintln!(
        "LINGERING {what} {transport}: {} of {TRIES} tries read 431",
        TRIES - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {TRIES} tries did not read 431; first: {}",
        failures.len(),
        failures[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_a_64_kib_header_over_tls_reads_431_before_the_connection_ends() {
    assert_every_try_reads_431(true, "64 KiB header", long_header(64 * 1024)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_a_1_mib_header_over_tls_reads_431_before_the_connection_ends() {
    assert_every_try_reads_431(true, "1 MiB header", long_header(1024 * 1024)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_200_header_fields_over_tls_reads_431_before_the_connection_ends() {
    assert_every_try_reads_431(true, "200 header fields", many_fields(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_a_64_kib_header_in_plain_http_reads_431_before_the_connection_ends() {
    assert_every_try_reads_431(false, "64 KiB header", long_header(64 * 1024)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_a_1_mib_header_in_plain_http_reads_431_before_the_connection_ends() {
    assert_every_try_reads_431(false, "1 MiB header", long_header(1024 * 1024)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_sending_200_header_fields_in_plain_http_reads_431_before_the_connection_ends()
{
    assert_every_try_reads_431(false, "200 header fields", many_fields(200)).await;
}

/// A client that sent an oversized head, read the `431` and the server's half-close, and keeps
/// its side open without sending: the lingering server waits for it.
async fn holding_after_431(server: &Server) -> Box<dyn Io> {
    let mut io = server.connect().await;
    io.write_all(&long_header(64 * 1024)).await.expect("write");
    // The server's half-close ends the client's reading; its side stays open.
    let (read, _) = read_to_the_end(&mut io).await;
    assert!(read.starts_with(b"HTTP/1.1 431 "), "{read:?}");
    io
}

/// Writes a byte at a time until the server has closed the connection (a write fails).
async fn until_the_server_closes(io: &mut (impl AsyncWrite + Unpin + ?Sized)) {
    tokio::time::timeout(SAFETY, async {
        while io.write_all(b"x").await.is_ok() && io.flush().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server closes the connection");
}

#[tokio::test]
async fn a_client_that_keeps_sending_after_431_is_cut_off_at_the_lingering_bytes() {
    const BOUND: u64 = 256 * 1024;
    let server = Server::start(false, |s| {
        s.lingering_bytes(BOUND)
            .lingering_timeout(Duration::from_secs(3600))
    })
    .await;
    let mut io = server.connect().await;
    io.write_all(&long_header(64 * 1024)).await.expect("write");
    // Then an endless head: only the byte bound can end the lingering.
    let chunk = vec![b'a'; 16 * 1024];
    let limit = 64 * 1024 * 1024;
    let mut written = 0usize;
    let ended = tokio::time::timeout(SAFETY, async {
        while written < limit {
            if io.write_all(&chunk).await.is_err() {
                return;
            }
            written += chunk.len();
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept reading");
    assert!(
        written < limit,
        "{written} bytes were taken after the 431 without closing"
    );
    eprintln!("LINGERING bytes_bound={BOUND} written_after_the_head={written}");
}

#[tokio::test]
async fn a_silent_client_after_431_is_closed_at_the_lingering_timeout() {
    let server = Server::start(true, |s| s.lingering_timeout(Duration::from_millis(200))).await;
    let mut io = holding_after_431(&server).await;
    until_the_server_closes(&mut io).await;
}

#[tokio::test]
async fn a_lingering_connection_holds_its_slot_until_the_client_closes() {
    let server = Server::start(true, |s| {
        s.max_connections(2)
            .lingering_timeout(Duration::from_secs(3600))
    })
    .await;
    let url = format!("https://{}/open", server.addr);
    let working = https_client(&server.pki.ca_der(), Some(&server.alice));
    assert_eq!(working.get(&url).send().await.expect("GET").status(), 200);
    let lingering = holding_after_431(&server).await;
    // A newcomer waits in the listen queue while the open connection is served.
    let newcomer = https_client(&server.pki.ca_der(), Some(&server.alice));
    let waiting = tokio::spawn({
        let url = url.clone();
        async move { newcomer.get(&url).send().await.expect("GET").status() }
    });
    for _ in 0..5 {
        assert_eq!(working.get(&url).send().await.expect("GET").status(), 200);
    }
    assert!(
        !waiting.is_finished(),
        "the lingering connection gave its slot up"
    );
    // The client closes: lingering ends, the slot is free.
    drop(lingering);
    let status = tokio::time::timeout(SAFETY, waiting)
        .await
        .expect("the newcomer is served once the lingering connection ended")
        .expect("task");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn graceful_shutdown_ends_lingering_connections() {
    let server = Server::start(true, |s| s.lingering_timeout(Duration::from_secs(3600))).await;
    let mut io = holding_after_431(&server).await;
    server.shutdown().await;
    until_the_server_closes(&mut io).await;
}

#[tokio::test]
async fn a_connection_closed_as_idle_does_not_linger() {
    // One slot: were the idle connection lingering, the next client would wait an hour.
    let server = Server::start(true, |s| {
        s.max_connections(1)
            .idle_timeout(Duration::from_millis(200))
            .header_read_timeout(Duration::from_millis(200))
            .lingering_timeout(Duration::from_secs(3600))
    })
    .await;
    let mut idle = server.connect().await;
    idle.write_all(b"GET /open HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    // The keep-alive response, then the server's close; the client keeps its side open.
    let (read, _) = tokio::time::timeout(SAFETY, read_to_the_end(&mut idle))
        .await
        .expect("the server closes the idle connection");
    assert!(read.starts_with(b"HTTP/1.1 200 "), "{read:?}");
    assert!(read.ends_with(b"open"), "{read:?}");
    let next = https_client(&server.pki.ca_der(), Some(&server.alice));
    let response = tokio::time::timeout(
        SAFETY,
        next.get(format!("https://{}/open", server.addr)).send(),
    )
    .await
    .expect("the next client is served")
    .expect("GET");
    assert_eq!(response.status(), 200);
    drop(idle);
}
