//! A minimal HTTPS server loop for the test doubles of the authorization server (JWKS,
//! discovery, introspection): rustls + hyper-util, independent of certbound's own acceptor.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// The leaf certificate the client presented on the connection, if any; put into the
/// extensions of every request.
#[derive(Clone, Debug)]
pub struct PresentedCertificate(pub Option<CertificateDer<'static>>);

/// A running HTTPS server on `127.0.0.1:0`.
pub struct HttpsServer {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl HttpsServer {
    /// Binds `127.0.0.1:0` (the address is needed before the router can be built).
    pub async fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    }

    /// Serves `router` with `tls` on `listener`.
    pub fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        router: Router,
    ) -> HttpsServer {
        let acceptor = TlsAcceptor::from(tls);
        let (shutdown, mut shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    // Fires on stop() and when the server is dropped.
                    _ = &mut shutdown_rx => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        let router = router.clone();
                        connections.spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                            let peer = PresentedCertificate(
                                tls.get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|certs| certs.first())
                                    .map(|c| c.clone().into_owned()),
                            );
                            let service = router.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                                req.extensions_mut().insert(peer.clone());
                                req
                            });
                            let _ = auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            // Close the listener first (new connections are refused), then kill live ones
            // (pooled keep-alive connections must not keep "working").
            drop(listener);
            connections.shutdown().await;
        });
        HttpsServer { shutdown, task }
    }

    /// Closes the listener and every open connection; returns once they are closed.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}
