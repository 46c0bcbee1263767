//! certbound's own acceptor (`certbound::serve`): HTTP/1.1 and HTTP/2 over rustls, the client
//! certificate once per connection, handshake timeouts, graceful shutdown.

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::routing::get;
use axum::Router;
use certbound::BoundTokenLayer;
use reqwest::header::HeaderMap;
use reqwest::Version;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(20);

struct Fixture {
    pki: Pki,
    alice: ClientIdentity,
    token: String,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
}

impl Fixture {
    fn new() -> Fixture {
        let pki = Pki::new("serve-ca");
        let alice = pki.client_identity("alice");
        let key = TestKey::es256("es-1");
        let token = key.sign(&claims_bound_to(&alice.x5t_s256()));
        let app = whoami_app(BoundTokenLayer::new(static_validator(&[&key])));
        let tls = ca_verified_tls(&pki);
        Fixture {
            pki,
            alice,
            token,
            app,
            tls,
        }
    }

    fn h2(&self) -> reqwest::Client {
        https_client(&self.pki.ca_der(), Some(&self.alice))
    }

    fn h1(&self) -> reqwest::Client {
        https_client_http1(&self.pki.ca_der(), Some(&self.alice))
    }

    async fn start(&self) -> TestServer {
        TestServer::start(self.tls.clone(), self.app.clone()).await
    }

    /// `GET /whoami` with Alice's token: asserts 200 and returns the body.
    async fn whoami(&self, client: &reqwest::Client, url: &str) -> (Version, Value) {
        let response = get_with_token(client, url, &self.token).await;
        assert_eq!(response.status(), 200);
        let version = response.version();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["thumbprint"], self.alice.x5t_s256().as_str());
        assert_eq!(
            body["connection"]["thumbprint"],
            self.alice.x5t_s256().as_str()
        );
        (version, body)
    }
}

/// `(remote address, certificate identity)` of the connection a response came over.
fn connection_of(body: &Value) -> (String, u64) {
    let conn = &body["connection"];
    (
        conn["remote_addr"]
            .as_str()
            .expect("remote_addr")
            .to_owned(),
        conn["cert_id"].as_u64().expect("cert_id"),
    )
}

/// A TLS client config offering no ALPN at all, presenting `identity`.
fn tls_client_without_alpn(pki: &Pki, identity: &ClientIdentity) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain.clone(), identity.key())
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn http1_and_http2_are_both_served() {
    let fx = Fixture::new();
    let server = fx.start().await;
    let url = server.url("/whoami");

    let (version, _) = fx.whoami(&fx.h2(), &url).await;
    assert_eq!(version, Version::HTTP_2);
    let (version, _) = fx.whoami(&fx.h1(), &url).await;
    assert_eq!(version, Version::HTTP_11);

    // Without ALPN the server serves HTTP/1.1 (it sniffs for the HTTP/2 preface).
    let connector = tls_client_without_alpn(&fx.pki, &fx.alice);
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let request = format!(
        "GET /whoami HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
        fx.token
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(SAFETY, tls.read_to_string(&mut response))
        .await
        .expect("response")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response:.40}");
    assert!(response.contains(&fx.alice.x5t_s256()));
}

#[tokio::test]
async fn serve_reports_its_local_address() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = certbound::serve(listener, fx.tls.clone(), fx.app.clone());
    assert_eq!(serve.local_addr().unwrap(), addr);
}

#[tokio::test]
async fn client_certificate_is_shared_by_all_requests_of_a_connection() {
    let fx = Fixture::new();
    let server = fx.start().await;
    let url = server.url("/whoami");

    // HTTP/2: several requests, sequential and concurrent, over one connection.
    let h2 = fx.h2();
    let (_, first) = fx.whoami(&h2, &url).await;
    let h2_conn = connection_of(&first);
    for _ in 0..3 {
        let (_, body) = fx.whoami(&h2, &url).await;
        assert_eq!(connection_of(&body), h2_conn);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (h2, url, token) = (h2.clone(), url.clone(), fx.token.clone());
        tasks.spawn(async move {
            let response = get_with_token(&h2, &url, &token).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        });
    }
    while let Some(body) = tasks.join_next().await {
        assert_eq!(connection_of(&body.unwrap()), h2_conn);
    }

    // HTTP/1.1 keep-alive: sequential requests reuse the connection and its certificate.
    let h1 = fx.h1();
    let (_, first) = fx.whoami(&h1, &url).await;
    let h1_conn = connection_of(&first);
    for _ in 0..3 {
        let (_, body) = fx.whoami(&h1, &url).await;
        assert_eq!(connection_of(&body), h1_conn);
    }

    // Another connection (both are still open) has its own certificate value, with the same
    // thumbprint.
    assert_ne!(h1_conn.0, h2_conn.0);
    assert_ne!(h1_conn.1, h2_conn.1);
}

#[tokio::test]
async fn silent_tcp_client_does_not_block_other_clients() {
    let fx = Fixture::new();
    let server = fx.start().await;
    // Several connections that never send a ClientHello (the default handshake timeout is 10 s).
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    for client in [fx.h2(), fx.h1()] {
        fx.whoami(&client, &server.url("/whoami")).await;
    }
    // A client that sends garbage instead of a ClientHello is dropped without harm.
    let mut garbage = TcpStream::connect(server.addr()).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(SAFETY, garbage.read_to_end(&mut buf))
        .await
        .expect("the server closes a connection that does not speak TLS");
    fx.whoami(&fx.h2(), &server.url("/whoami")).await;
    drop(silent);
}

#[tokio::test]
async fn silent_client_is_disconnected_after_the_handshake_timeout() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        certbound::serve(listener, fx.tls.clone(), fx.app.clone())
            .handshake_timeout(Duration::from_millis(200))
            .into_future(),
    );

    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Other clients are served meanwhile.
    fx.whoami(&fx.h2(), &format!("https://{addr}/whoami")).await;

    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(SAFETY, silent.read(&mut buf))
        .await
        .expect("the server closes the silent connection");
    match read {
        Ok(n) => assert_eq!(n, 0, "the server sent bytes to a silent client"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // And the server is still fine.
    fx.whoami(&fx.h1(), &format!("https://{addr}/whoami")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let fx = Fixture::new();
    // `/slow` reports that it started and then waits for a permit.
    let (entered_tx, mut entered_rx) = mpsc::unbounded_channel::<()>();
    let release = Arc::new(Semaphore::new(0));
    let slow = {
        let release = release.clone();
        get(move || {
            let (entered_tx, release) = (entered_tx.clone(), release.clone());
            async move {
                let _ = entered_tx.send(());
                release.acquire().await.expect("semaphore").forget();
                "done"
            }
        })
    };
    let app = fx.app.clone().route("/slow", slow);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal_tx, signal_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        certbound::serve(listener, fx.tls.clone(), app)
            .with_graceful_shutdown(async move {
                let _ = signal_rx.await;
            })
            .into_future(),
    );
    let url = |path: &str| format!("https://{addr}{path}");

    // An idle keep-alive connection, and one in-flight request per protocol.
    let idle = fx.h2();
    fx.whoami(&idle, &url("/whoami")).await;
    let mut in_flight = tokio::task::JoinSet::new();
    for client in [fx.h2(), fx.h1()] {
        let slow_url = url("/slow");
        in_flight.spawn(async move {
            let response = send(&client, &slow_url, HeaderMap::new()).await;
            (response.version(), response.status(), response.text().await)
        });
    }
    for _ in 0..2 {
        entered_rx.recv().await.expect("a slow request started");
    }

    signal_tx.send(()).unwrap();
    // The in-flight requests are allowed to finish ...
    assert!(!server.is_finished());
    release.add_permits(2);
    let mut versions = Vec::new();
    while let Some(result) = in_flight.join_next().await {
        let (version, status, text) = result.unwrap();
        assert_eq!(status, 200);
        assert_eq!(text.unwrap(), "done");
        versions.push(version);
    }
    versions.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(versions, [Version::HTTP_11, Version::HTTP_2]);

    // ... then the serve future completes (idle connections do not hold it up) ...
    tokio::time::timeout(SAFETY, server)
        .await
        .expect("serve completes after the shutdown signal")
        .expect("serve task")
        .expect("serve result");

    // ... and new connections are refused.
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(idle.get(url("/whoami")).send().await.is_err());
}

#[tokio::test]
async fn test_server_shuts_down_gracefully_when_idle() {
    let fx = Fixture::new();
    let server = fx.start().await;
    let addr = server.addr();
    fx.whoami(&fx.h1(), &server.url("/whoami")).await;
    tokio::time::timeout(SAFETY, server.shutdown())
        .await
        .expect("shutdown completes")
        .expect("serve result");
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn graceful_shutdown_waits_for_a_silent_client_only_until_the_handshake_timeout() {
    // A connection still in its TLS handshake counts as open for graceful shutdown; the
    // handshake timeout bounds how long a silent client can hold the shutdown up.
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal_tx, signal_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        certbound::serve(listener, fx.tls.clone(), fx.app.clone())
            .handshake_timeout(Duration::from_millis(200))
            .with_graceful_shutdown(async move {
                let _ = signal_rx.await;
            })
            .into_future(),
    );
    let mut silent = TcpStream::connect(addr).await.unwrap();
    fx.whoami(&fx.h2(), &format!("https://{addr}/whoami")).await;
    signal_tx.send(()).unwrap();
    tokio::time::timeout(SAFETY, server)
        .await
        .expect("serve completes")
        .expect("serve task")
        .expect("serve result");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(SAFETY, silent.read(&mut buf))
        .await
        .expect("the silent connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
