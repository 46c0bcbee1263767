//! `certbound::serve` under hostile clients: slow headers, idle connections filling the
//! server, unfinished TLS handshakes, HTTP/2 rapid reset and CONTINUATION floods, oversized
//! header lists. Each is bounded by a limit `serve` sets explicitly, and a well-behaved client
//! keeps being served meanwhile.
//!
//! Times asserted are only upper bounds, generous multiples of the configured limits.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use certbound::{BoundTokenLayer, Serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(20);
/// The short limits the servers here run with.
const LIMIT: Duration = Duration::from_millis(300);

/// A server with its own limits, Alice as the well-behaved client.
struct Hostile {
    pki: Pki,
    alice: ClientIdentity,
    token: String,
    addr: SocketAddr,
    /// Requests that reached the application.
    arrived: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Hostile {
    async fn start(configure: impl FnOnce(Serve<axum::Router>) -> Serve<axum::Router>) -> Self {
        let pki = Pki::new("hostile-ca");
        let alice = pki.client_identity("alice");
        let key = TestKey::es256("es-1");
        let token = key.sign(&claims_bound_to(&alice.x5t_s256()));
        let arrived = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&arrived);
        let app = whoami_app(BoundTokenLayer::new(static_validator(&[&key]))).layer(
            axum::middleware::map_request(move |request: axum::extract::Request| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { request }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = configure(certbound::serve(listener, ca_verified_tls(&pki), app));
        tokio::spawn(
            serve
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Hostile {
            pki,
            alice,
            token,
            addr,
            arrived,
            _stop: stop,
        }
    }

    /// Alice, on a new connection each time (HTTP/2), is served.
    async fn assert_serves_alice(&self) {
        let client = https_client(&self.pki.ca_der(), Some(&self.alice));
        let url = format!("https://{}/whoami", self.addr);
        let response = tokio::time::timeout(SAFETY, get_with_token(&client, &url, &self.token))
            .await
            .expect("a well-behaved client is answered");
        assert_eq!(response.status(), 200);
    }

    /// A TLS connection as Alice offering `alpn`.
    async fn tls(&self, alpn: &[u8]) -> TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.pki.ca_der()).expect("root");
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(self.alice.chain.clone(), self.alice.key())
            .expect("client auth");
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("localhost".try_into().expect("name"), tcp)
            .await
            .expect("handshake")
    }
}

/// Reads until the peer closes (EOF or an error); returns everything read.
async fn until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off_at_the_header_read_timeout_while_others_are_served() {
    let server = Hostile::start(|s| s.header_read_timeout(LIMIT)).await;
    let mut slow = server.tls(b"http/1.1").await;
    let started = Instant::now();
    slow.write_all(b"GET /whoami HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .expect("write");
    // One header byte every 50 ms: the head would take 10 s to arrive.
    let dribble = async {
        for _ in 0..200 {
            if slow.write_all(b"x").await.is_err() || slow.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (_, ()) = tokio::join!(dribble, server.assert_serves_alice());
    let cut_off = started.elapsed();
    assert!(
        cut_off < SAFETY / 4,
        "the slow client held its connection for {cut_off:?}"
    );
    eprintln!("HOSTILE slowloris cut_off_ms={}", cut_off.as_millis());
}

#[tokio::test]
async fn at_max_connections_new_clients_wait_while_open_connections_keep_being_served() {
    const MAX: usize = 4;
    let server = Hostile::start(|s| s.max_connections(MAX)).await;
    let url = format!("https://{}/whoami", server.addr);
    // One slot is a working client's HTTP/2 connection, the others silent connections.
    let working = https_client(&server.pki.ca_der(), Some(&server.alice));
    assert_eq!(
        get_with_token(&working, &url, &server.token).await.status(),
        200
    );
    let mut silent = Vec::new();
    for _ in 1..MAX {
        silent.push(server.tls(b"http/1.1").await);
    }
    // A new client is not taken: its request waits, while the open connection is served.
    let newcomer = https_client(&server.pki.ca_der(), Some(&server.alice));
    let waiting = tokio::spawn({
        let (url, token) = (url.clone(), server.token.clone());
        async move { get_with_token(&newcomer, &url, &token).await.status() }
    });
    for _ in 0..5 {
        assert_eq!(
            get_with_token(&working, &url, &server.token).await.status(),
            200
        );
    }
    assert!(!waiting.is_finished(), "a fifth connection was taken");
    // A slot frees up: the newcomer is served.
    drop(silent.pop());
    let status = tokio::time::timeout(SAFETY, waiting)
        .await
        .expect("the newcomer is served once a slot is free")
        .expect("task");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn idle_connections_are_closed_by_the_server() {
    const IDLE: usize = 20;
    // HTTP/1 keep-alive waits are bounded by the header read timeout, HTTP/2 ones by the idle
    // timeout: both short here.
    let server = Hostile::start(|s| s.idle_timeout(LIMIT).header_read_timeout(LIMIT)).await;
    let started = Instant::now();
    let mut idle = tokio::task::JoinSet::new();
    for i in 0..IDLE {
        let mut tls = server
            .tls(if i % 2 == 0 { b"http/1.1" } else { b"h2" })
            .await;
        if i % 2 == 1 {
            // Preface and settings exchanged, then no request.
            let (_send, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
            idle.spawn(async move {
                let _ = connection.await;
            });
        } else {
            idle.spawn(async move {
                until_closed(&mut tls).await;
            });
        }
    }
    tokio::time::timeout(SAFETY, async { while idle.join_next().await.is_some() {} })
        .await
        .expect("every idle connection is closed by the server");
    server.assert_serves_alice().await;
    eprintln!(
        "HOSTILE idle connections={IDLE} all_closed_ms={}",
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn a_flood_of_unfinished_tls_handshakes_does_not_stop_well_behaved_clients() {
    const FLOOD: usize = 300;
    let server = Hostile::start(|s| s.handshake_timeout(LIMIT)).await;
    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let addr = server.addr;
        flood.spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            // A TLS record header announcing a 16 KiB ClientHello that never comes, or junk.
            let first: &[u8] = if i % 2 == 0 {
                &[0x16, 0x03, 0x01, 0x40, 0x00, 0x01]
            } else {
                b"GET / HTTP/1.1\r\n\r\n"
            };
            let _ = tcp.write_all(first).await;
            until_closed(&mut tcp).await;
        });
    }
    server.assert_serves_alice().await;
    tokio::time::timeout(SAFETY, async { while flood.join_next().await.is_some() {} })
        .await
        .expect("every unfinished handshake is closed by the server");
    server.assert_serves_alice().await;
    eprintln!(
        "HOSTILE handshake_flood connections={FLOOD} all_closed_ms={}",
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn http2_rapid_reset_gets_the_connection_closed_and_others_are_served() {
    let server = Hostile::start(|s| s).await;
    let tls = server.tls(b"h2").await;
    let (mut send, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    let connection = tokio::spawn(connection);
    const STREAMS: usize = 100_000;
    let mut sent = 0;
    // Open and cancel streams as fast as the client can (CVE-2023-44487). The client queues
    // its frames: `sent` counts streams queued, not necessarily written.
    for _ in 0..STREAMS {
        let request = http::Request::get(format!("https://{}/whoami", server.addr))
            .header("authorization", format!("Bearer {}", server.token))
            .body(())
            .expect("request");
        let ready = match send.ready().await {
            Ok(ready) => ready,
            Err(_) => break,
        };
        send = ready;
        let Ok((_response, mut stream)) = send.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
    }
    let ended = tokio::time::timeout(SAFETY, connection)
        .await
        .expect("the server ends the connection")
        .expect("connection task");
    // The server sends GOAWAY (ENHANCE_YOUR_CALM) and closes; the client sees either, as the
    // close can reach it while it is still writing.
    let error = ended.expect_err("the server ends the connection");
    assert!(
        error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || error.is_io(),
        "{error:?}"
    );
    let arrived = server.arrived.load(Ordering::SeqCst);
    assert!(
        arrived < STREAMS / 10,
        "{arrived} of {sent} reset streams reached the application"
    );
    server.assert_serves_alice().await;
    eprintln!(
        "HOSTILE rapid_reset streams_queued={sent} reached_the_application={arrived} ended_with={error:?}"
    );
}

/// An HTTP/2 frame header: 24-bit length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame length");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const GOAWAY: u8 = 0x7;

/// The types of the whole HTTP/2 frames in `bytes` (a server's side of a connection).
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = bytes.get(9 + len..).unwrap_or_default();
    }
    types
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off_at_the_header_list_limit() {
    const HEADERS: u8 = 0x1;
    const SETTINGS: u8 = 0x4;
    const CONTINUATION: u8 = 0x9;
    let server = Hostile::start(|s| s.max_header_bytes(16 * 1024)).await;
    let tls = server.tls(b"h2").await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let closed = tokio::spawn(async move { until_closed(&mut reader).await });
    writer
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    writer
        .write_all(&frame(SETTINGS, 0, 0, &[]))
        .await
        .expect("settings");
    // GET https / : static table entries; END_STREAM, but never END_HEADERS.
    writer
        .write_all(&frame(HEADERS, 0x1, 1, &[0x82, 0x87, 0x84]))
        .await
        .expect("headers");
    // Literal header fields without indexing, new name: 0x00, name, value (under 127 bytes).
    let mut field = vec![0x00, 5];
    field.extend_from_slice(b"x-pad");
    field.push(120);
    field.extend_from_slice(&[b'v'; 120]);
    let block: Vec<u8> = field.iter().copied().cycle().take(16_000).collect();
    let mut written = 0usize;
    let limit = 64 * 1024 * 1024;
    while written < limit {
        if writer
            .write_all(&frame(CONTINUATION, 0, 1, &block))
            .await
            .is_err()
        {
            break;
        }
        written += block.len();
        if closed.is_finished() {
            break;
        }
    }
    let received = tokio::time::timeout(SAFETY, closed)
        .await
        .expect("the server closes the connection")
        .expect("reader task");
    assert!(
        written < limit,
        "{written} bytes of header block were taken without closing"
    );
    // Among the frames the server sent before closing is a GOAWAY.
    assert!(
        frame_types(&received).contains(&GOAWAY),
        "no GOAWAY in {} bytes",
        received.len()
    );
    server.assert_serves_alice().await;
    eprintln!("HOSTILE continuation_flood header_block_bytes_before_close={written}");
}

#[tokio::test]
async fn oversized_header_lists_are_refused_and_others_are_served() {
    let server = Hostile::start(|s| s.max_header_bytes(16 * 1024)).await;
    let url = format!("https://{}/whoami", server.addr);
    let big = "v".repeat(32 * 1024);
    for client in [
        https_client_http1(&server.pki.ca_der(), Some(&server.alice)),
        https_client(&server.pki.ca_der(), Some(&server.alice)),
    ] {
        let response = client
            .get(&url)
            .header("authorization", format!("Bearer {}", server.token))
            .header("x-big", big.as_str())
            .send()
            .await;
        match response {
            Ok(response) => assert_eq!(response.status(), 431),
            // HTTP/2: the stream is refused before a response.
            Err(e) => assert!(e.is_request(), "{e:?}"),
        }
    }
    // More than 100 header fields (HTTP/1).
    let client = https_client_http1(&server.pki.ca_der(), Some(&server.alice));
    let mut request = client
        .get(&url)
        .header("authorization", format!("Bearer {}", server.token));
    for i in 0..120 {
        request = request.header(format!("x-h-{i}"), "1");
    }
    let response = request.send().await.expect("answered");
    assert_eq!(response.status(), 431);
    server.assert_serves_alice().await;
}
