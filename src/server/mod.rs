//! certbound's connection acceptor: rustls over TCP, HTTP/1.1 and HTTP/2 (chosen by ALPN), and
//! the client certificate of each connection in every request's extensions.

use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::certificate::{ClientCertificate, ConnectionInfo};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Default time a client gets to complete the TLS handshake.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` over TLS on `listener`: every connection is a rustls handshake (in its own
/// task, with a timeout) followed by HTTP/1.1 or HTTP/2 as negotiated by ALPN.
///
/// Each request carries a [`ConnectionInfo`] extension with the connection's
/// [`ClientCertificate`], whose thumbprint was computed once, right after the handshake.
///
/// Await the returned [`Serve`] to run the server; it stops when
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown)'s signal fires and every open
/// connection has finished. `Serve` is [`IntoFuture`]: to run it in the background, spawn
/// `serve(..).into_future()`.
///
/// # Example
/// ```no_run
/// # async fn run(tls: std::sync::Arc<rustls::ServerConfig>) -> std::io::Result<()> {
/// use axum::{routing::get, Router};
///
/// let app = Router::new().route("/", get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// certbound::serve(listener, tls, app)
///     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
///     .await
/// # }
/// ```
pub fn serve<S>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, service: S) -> Serve<S> {
    Serve {
        listener,
        tls: Some(tls),
        service,
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        signal: std::future::pending(),
    }
}

/// Serves `service` over plain TCP (HTTP/1.1, or HTTP/2 with prior knowledge) on `listener`,
/// for a service behind a TLS-terminating proxy that forwards the client certificate in a
/// header (see [`ForwardedCertLayer`](crate::ForwardedCertLayer)).
///
/// Each request carries a [`ConnectionInfo`] with the peer's address (which the forwarded
/// certificate layer checks against its trusted proxies) and no client certificate. Otherwise
/// as [`serve`]: graceful shutdown, and an HTTP/1 header-read timeout.
pub fn serve_plain<S>(listener: TcpListener, service: S) -> Serve<S> {
    Serve {
        listener,
        tls: None,
        service,
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        signal: std::future::pending(),
    }
}

/// A server in the making; see [`serve`] and [`serve_plain`]. Await it to run.
#[must_use = "a server does nothing until it is awaited"]
pub struct Serve<S, F = std::future::Pending<()>> {
    listener: TcpListener,
    /// `None`: plain TCP.
    tls: Option<Arc<rustls::ServerConfig>>,
    service: S,
    handshake_timeout: Duration,
    signal: F,
}

impl<S, F> Serve<S, F> {
    /// Stops accepting when `signal` completes, then waits for open connections to finish
    /// (HTTP/1 connections close after their current request, HTTP/2 ones get a GOAWAY).
    pub fn with_graceful_shutdown<G>(self, signal: G) -> Serve<S, G>
    where
        G: Future<Output = ()> + Send + 'static,
    {
        Serve {
            listener: self.listener,
            tls: self.tls,
            service: self.service,
            handshake_timeout: self.handshake_timeout,
            signal,
        }
    }

    /// How long a client may take to complete the TLS handshake (default 10 s). A slow or silent
    /// client only ever holds its own task.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// When the operating system cannot report it.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<S, F> fmt::Debug for Serve<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// The three HTTP flavours a connection can get, built once per server.
struct Protocols {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    /// No ALPN: sniff the HTTP/2 preface.
    any: auto::Builder<TokioExecutor>,
}

impl Protocols {
    fn new() -> Self {
        let mut any = auto::Builder::new(TokioExecutor::new());
        // Bounds how long an HTTP/1 client may dribble its request head (slowloris).
        any.http1().timer(TokioTimer::new());
        any.http2().timer(TokioTimer::new());
        Self {
            h1: any.clone().http1_only(),
            h2: any.clone().http2_only(),
            any,
        }
    }

    fn get(&self, protocol: Protocol) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Protocol::Http2 => &self.h2,
            Protocol::Http1 => &self.h1,
            Protocol::Sniff => &self.any,
        }
    }
}

/// Which HTTP a connection speaks.
#[derive(Clone, Copy)]
enum Protocol {
    Http1,
    Http2,
    /// No ALPN (or plain TCP): sniff the HTTP/2 preface.
    Sniff,
}

impl Protocol {
    fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            Some(b"http/1.1") => Self::Http1,
            _ => Self::Sniff,
        }
    }
}

impl<S, B, F> IntoFuture for Serve<S, F>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Serve {
                listener,
                tls,
                service,
                handshake_timeout,
                signal,
            } = self;
            let acceptor = tls.map(TlsAcceptor::from);
            let protocols = Arc::new(Protocols::new());
            let graceful = GracefulShutdown::new();
            let mut signal = std::pin::pin!(signal);
            loop {
                let (tcp, remote_addr) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(e) if is_per_connection_error(&e) => continue,
                        Err(_) => {
                            // Out of file descriptors or similar: back off instead of spinning.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = &mut signal => break,
                };
                let _ = tcp.set_nodelay(true);
                let connection = Connection {
                    acceptor: acceptor.clone(),
                    protocols: Arc::clone(&protocols),
                    service: service.clone(),
                    handshake_timeout,
                    remote_addr,
                };
                let watcher = graceful.watcher();
                tokio::spawn(connection.run(tcp, watcher));
            }
            drop(listener);
            graceful.shutdown().await;
            Ok(())
        })
    }
}

fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

struct Connection<S> {
    acceptor: Option<TlsAcceptor>,
    protocols: Arc<Protocols>,
    service: S,
    handshake_timeout: Duration,
    remote_addr: SocketAddr,
}

impl<S> Connection<S> {
    async fn run<B>(self, tcp: TcpStream, watcher: hyper_util::server::graceful::Watcher)
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let Some(acceptor) = &self.acceptor else {
            let info = ConnectionInfo::plain(self.remote_addr);
            return self
                .serve_http(Protocol::Sniff, TokioIo::new(tcp), info, watcher)
                .await;
        };
        let tls = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(_e)) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", remote = %self.remote_addr, error = %_e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", remote = %self.remote_addr, "TLS handshake timed out");
                return;
            }
        };
        let (_, session) = tls.get_ref();
        // RFC 8705 §3: the thumbprint is computed here, once for the whole connection.
        let client_certificate = session.peer_certificates().and_then(|chain| {
            ClientCertificate::from_chain(chain.iter().map(|c| c.clone().into_owned()).collect())
        });
        let info = ConnectionInfo::new(self.remote_addr, client_certificate);
        let protocol = Protocol::from_alpn(session.alpn_protocol());
        self.serve_http(protocol, TokioIo::new(tls), info, watcher)
            .await;
    }

    async fn serve_http<I, B>(
        self,
        protocol: Protocol,
        io: I,
        info: ConnectionInfo,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let service = AddConnectInfo {
            inner: self.service,
            info,
        };
        let conn = self
            .protocols
            .get(protocol)
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        if let Err(_e) = watcher.watch(conn.into_owned()).await {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", remote = %self.remote_addr, error = %_e, "connection ended with an error");
        }
    }
}

/// Inserts the connection's [`ConnectionInfo`] into each request.
#[derive(Clone)]
struct AddConnectInfo<S> {
    inner: S,
    info: ConnectionInfo,
}

impl<S, B> Service<Request<B>> for AddConnectInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        self.inner.call(req)
    }
}
