//! `BoundTokenLayer` in front of a tonic gRPC service, driven by a real tonic client over mTLS:
//! with tonic's own TLS (the certificate from tonic's `TlsConnectInfo`), and through
//! `certbound::serve` for RFC 8705 §6.2 self-signed client certificates.

use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::common::*;
use crate::whoami::{CountRequest, WhoamiClient, WhoamiRequest, WhoamiServer};
use certbound::tls::ServerTls;
use certbound::{BoundTokenLayer, JwtValidator};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request};
use tower_layer::Layer as _;

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(20);

/// tonic's `ServerTlsConfig` uses rustls' process-wide provider, and with `--all-features` two
/// are compiled in: pick one, as an application would in `main`.
fn install_rustls_default() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A gRPC server on 127.0.0.1, in a task of the test's runtime; stopped on drop.
struct GrpcServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

impl GrpcServer {
    /// tonic's own TLS, client chains verified against `pki`'s CA, the layer in front of the
    /// service (`Server::builder().layer(..)`).
    async fn tonic_tls(pki: &Pki, layer: BoundTokenLayer<JwtValidator>) -> GrpcServer {
        install_rustls_default();
        let (cert, key) = pki.server_identity_pem();
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .client_ca_root(Certificate::from_pem(pki.ca_pem()));
        let router = Server::builder()
            .tls_config(tls)
            .expect("tonic TLS config")
            .layer(layer)
            .add_service(WhoamiServer);
        Self::spawn(|listener, stopped| async move {
            router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stopped)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// tonic without TLS: no certificate source at all.
    async fn tonic_plaintext(layer: BoundTokenLayer<JwtValidator>) -> GrpcServer {
        let router = Server::builder().layer(layer).add_service(WhoamiServer);
        Self::spawn(|listener, stopped| async move {
            router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stopped)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// certbound's acceptor with `tls`, the layer wrapped around the tonic service.
    async fn certbound_serve(
        tls: Arc<rustls::ServerConfig>,
        layer: BoundTokenLayer<JwtValidator>,
    ) -> GrpcServer {
        let service = layer.layer(WhoamiServer);
        Self::spawn(|listener, stopped| async move {
            certbound::serve(listener, tls, service)
                .with_graceful_shutdown(stopped)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Binds first, so connections are accepted (queued) as soon as this returns.
    async fn spawn<F, Fut>(serve: F) -> GrpcServer
    where
        F: FnOnce(
            TcpListener,
            std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = Box::pin(async {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serve(listener, stopped));
        GrpcServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops gracefully; the server must not have failed.
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ended = tokio::time::timeout(SAFETY, &mut self.task)
            .await
            .expect("server stops");
        ended.expect("server task").expect("server result");
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tonic client over mTLS to `server`, trusting `pki`'s CA and presenting `identity`.
async fn client(server: &GrpcServer, pki: &Pki, identity: &ClientIdentity) -> WhoamiClient {
    WhoamiClient::new(grpc_channel(server.addr, &pki.ca_pem(), identity).await)
}

/// A CA, two clients, an ES256 key, and a token bound to alice's certificate.
struct Fixture {
    pki: Pki,
    alice: ClientIdentity,
    mallory: ClientIdentity,
    key: TestKey,
    alice_token: String,
}

impl Fixture {
    fn new() -> Fixture {
        let pki = Pki::new("tonic-ca");
        let alice = pki.client_identity("alice");
        let mallory = pki.client_identity("mallory");
        let key = TestKey::es256("es-1");
        let alice_token = key.sign(&claims_bound_to(&alice.x5t_s256()));
        Fixture {
            pki,
            alice,
            mallory,
            key,
            alice_token,
        }
    }

    fn layer(&self) -> BoundTokenLayer<JwtValidator> {
        BoundTokenLayer::new(static_validator(&[&self.key]))
    }
}

#[tokio::test]
async fn the_right_certificate_with_its_token_is_served() {
    let f = Fixture::new();
    let server = GrpcServer::tonic_tls(&f.pki, f.layer()).await;
    let mut alice = client(&server, &f.pki, &f.alice).await;

    let reply = alice
        .whoami(with_token(WhoamiRequest {}, &f.alice_token))
        .await
        .expect("alice is served")
        .into_inner();
    assert_eq!(reply.sub, "alice");
    assert_eq!(reply.client_id, "client-a");
    assert_eq!(reply.scope, ["read", "write"]);
    // The binding the layer checked, computed independently from the presented certificate.
    assert_eq!(reply.x5t_s256, f.alice.x5t_s256());

    // Several calls on one HTTP/2 connection.
    for _ in 0..3 {
        let reply = alice
            .whoami(with_token(WhoamiRequest {}, &f.alice_token))
            .await
            .expect("alice is served again");
        assert_eq!(reply.get_ref().sub, "alice");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_stolen_token_on_another_certificate_is_unauthenticated_with_a_challenge() {
    let f = Fixture::new();
    let server = GrpcServer::tonic_tls(&f.pki, f.layer()).await;
    let mut mallory = client(&server, &f.pki, &f.mallory).await;

    let status = mallory
        .whoami(with_token(WhoamiRequest {}, &f.alice_token))
        .await
        .expect_err("a token bound to alice is useless to mallory");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "access token bound to another certificate"
    );
    let challenge = grpc_challenge(&status);
    assert_eq!(
        challenge,
        invalid_token_challenge("access token bound to another certificate")
    );
    assert_no_token_material(&challenge, &f.alice_token);
    assert_no_token_material(status.message(), &f.alice_token);

    // Mallory's own token works on mallory's certificate: the rejection was the binding.
    let own = f.key.sign(&claims_bound_to(&f.mallory.x5t_s256()));
    let reply = mallory.whoami(with_token(WhoamiRequest {}, &own)).await;
    assert_eq!(reply.expect("mallory's own token").get_ref().sub, "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn rejections_follow_the_one_table() {
    let f = Fixture::new();
    let server = GrpcServer::tonic_tls(&f.pki, f.layer()).await;
    let mut alice = client(&server, &f.pki, &f.alice).await;

    // No token: UNAUTHENTICATED, a bare challenge.
    let status = alice
        .whoami(Request::new(WhoamiRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "no access token");
    assert_eq!(grpc_challenge(&status), "Bearer");

    // Malformed Authorization: INVALID_ARGUMENT, invalid_request.
    let status = alice
        .whoami(with_token(WhoamiRequest {}, "a b"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        grpc_challenge(&status).starts_with("Bearer error=\"invalid_request\""),
        "{status:?}"
    );

    // A forged signature: UNAUTHENTICATED, invalid_token.
    let forged = TestKey::es256("es-1").sign(&claims_bound_to(&f.alice.x5t_s256()));
    let status = alice
        .whoami(with_token(WhoamiRequest {}, &forged))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        grpc_challenge(&status),
        invalid_token_challenge("invalid access token")
    );

    // An unbound token, binding required: UNAUTHENTICATED.
    let unbound = f.key.sign(&claims_unbound());
    let status = alice
        .whoami(with_token(WhoamiRequest {}, &unbound))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        grpc_challenge(&status),
        invalid_token_challenge("access token not sender-constrained")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let f = Fixture::new();
    let layer = f.layer().require_scope("admin").expect("scope");
    let server = GrpcServer::tonic_tls(&f.pki, layer).await;
    let mut alice = client(&server, &f.pki, &f.alice).await;

    let status = alice
        .whoami(with_token(WhoamiRequest {}, &f.alice_token))
        .await
        .expect_err("read write is not admin");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "insufficient scope");
    assert_eq!(
        grpc_challenge(&status),
        "Bearer error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\""
    );

    let mut claims = claims_bound_to(&f.alice.x5t_s256());
    claims["scope"] = "read admin".into();
    let admin = f.key.sign(&claims);
    let reply = alice.whoami(with_token(WhoamiRequest {}, &admin)).await;
    assert_eq!(
        reply.expect("admin scope").get_ref().scope,
        ["read", "admin"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_streaming_rpc_is_protected_too() {
    let f = Fixture::new();
    let server = GrpcServer::tonic_tls(&f.pki, f.layer()).await;

    let mut alice = client(&server, &f.pki, &f.alice).await;
    let mut stream = alice
        .count(with_token(CountRequest { count: 5 }, &f.alice_token))
        .await
        .expect("alice may stream")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(reply) = stream.next().await {
        let reply = reply.expect("stream item");
        assert_eq!(reply.sub, "alice");
        seen.push(reply.n);
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);

    let mut mallory = client(&server, &f.pki, &f.mallory).await;
    let status = mallory
        .count(with_token(CountRequest { count: 5 }, &f.alice_token))
        .await
        .expect_err("no stream for a stolen token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        grpc_challenge(&status),
        invalid_token_challenge("access token bound to another certificate")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rest_requests_on_the_same_layer_get_rfc6750_responses() {
    let f = Fixture::new();
    let server = GrpcServer::tonic_tls(&f.pki, f.layer()).await;
    let url = format!("https://{}/certbound.example.v1.Whoami/Whoami", server.addr);

    // Not application/grpc: the HTTP rejections of RFC 6750, over tonic's HTTP/2.
    let mallory = https_client(&f.pki.ca_der(), Some(&f.mallory));
    let response = get_with_token(&mallory, &url, &f.alice_token).await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert!(response.headers().get("grpc-status").is_none());
    assert_invalid_token(
        &response,
        &f.alice_token,
        "access token bound to another certificate",
    );

    let response = send(&mallory, &url, Default::default()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(www_authenticate(&response).as_deref(), Some("Bearer"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_tonic_server_without_tls_is_a_misconfiguration_not_the_clients_fault() {
    let f = Fixture::new();
    let server = GrpcServer::tonic_plaintext(f.layer()).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .timeout(SAFETY)
        .connect()
        .await
        .expect("connect");
    let status = WhoamiClient::new(channel)
        .whoami(with_token(WhoamiRequest {}, &f.alice_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "server misconfigured");
    assert!(status.metadata().get("www-authenticate").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn self_signed_client_certificates_are_served_through_certbound_serve() {
    let f = Fixture::new();
    let (chain, key) = f.pki.server_identity();
    let tls = ServerTls::new(chain, key)
        .any_client_certificate()
        .build()
        .expect("server TLS");
    let server = GrpcServer::certbound_serve(tls, f.layer()).await;

    // RFC 8705 §2.2: a certificate no CA issued, and a token bound to it.
    let own = Pki::self_signed_client("self-signed");
    let token = f.key.sign(&claims_bound_to(&own.x5t_s256()));
    let mut client = client(&server, &f.pki, &own).await;
    let reply = client
        .whoami(with_token(WhoamiRequest {}, &token))
        .await
        .expect("self-signed client is served")
        .into_inner();
    assert_eq!(reply.x5t_s256, own.x5t_s256());

    let mut stream = client
        .count(with_token(CountRequest { count: 3 }, &token))
        .await
        .expect("stream")
        .into_inner();
    let mut n = 0;
    while let Some(reply) = stream.next().await {
        n = reply.expect("stream item").n;
    }
    assert_eq!(n, 3);

    // Alice's token is still useless on this certificate.
    let status = client
        .whoami(with_token(WhoamiRequest {}, &f.alice_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        grpc_challenge(&status),
        invalid_token_challenge("access token bound to another certificate")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tonic_tls_refuses_self_signed_client_certificates() {
    // Why the §6.2 deployment needs certbound::serve: tonic's TLS verifies every client chain.
    let f = Fixture::new();
    let server = GrpcServer::tonic_tls(&f.pki, f.layer()).await;
    let own = Pki::self_signed_client("self-signed");
    let token = f.key.sign(&claims_bound_to(&own.x5t_s256()));

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(f.pki.ca_pem()))
        .identity(Identity::from_pem(&own.cert_pem, &own.key_pem))
        .domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://{}", server.addr))
        .expect("endpoint")
        .tls_config(tls)
        .expect("client TLS config")
        .timeout(SAFETY);
    // The handshake fails on connect or, with TLS 1.3, on the first call.
    if let Ok(channel) = endpoint.connect().await {
        let status = WhoamiClient::new(channel)
            .whoami(with_token(WhoamiRequest {}, &token))
            .await
            .expect_err("tonic's TLS rejects a self-signed client certificate");
        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.metadata().get("www-authenticate").is_none());
    }
    server.shutdown().await;
}
