//! certbound's connection acceptor: rustls over TCP, HTTP/1.1 and HTTP/2 (chosen by ALPN), and
//! the client certificate of each connection in every request's extensions.

use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower_service::Service;

use connection::Connection;
use limits::{Limits, Protocols, MAX_CONNECTIONS_LIMIT};

use crate::tls::TlsSource;

mod connection;
mod limits;
mod linger;
mod panics;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `service` over TLS on `listener`: every connection is a rustls handshake (in its own
/// task, with a timeout) followed by HTTP/1.1 or HTTP/2 as negotiated by ALPN.
///
/// Each request carries a [`ConnectionInfo`](crate::ConnectionInfo) extension with the
/// connection's [`ClientCertificate`](crate::ClientCertificate), whose thumbprint was computed
/// once, right after the handshake.
///
/// A request whose service panics (in `poll_ready`, `call` or the response future) is answered
/// `500 Internal Server Error` with an empty body rather than by a dropped connection; on
/// HTTP/1.1 the answer carries `connection: close` (the service's state is suspect), on HTTP/2
/// the connection's other streams go on. With the `tracing` feature the panic is logged at
/// error level with the request's method and path, never its message (which could quote the
/// request, a token included); the process's panic hook still runs. A panic while the response
/// body streams ends the connection (the head is already sent).
///
/// A connection the server ends after an answer while the client may still be sending lingers
/// (at most 5 s and 1 MiB by default) so that the answer is not lost to a TCP reset; see
/// [`lingering_timeout`](Serve::lingering_timeout).
///
/// Await the returned [`Serve`] to run the server; it stops when
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown)'s signal fires and every open
/// connection has finished. `Serve` is [`IntoFuture`]: to run it in the background, spawn
/// `serve(..).into_future()`.
///
/// `tls` is an `Arc<rustls::ServerConfig>` (e.g. from [`ServerTls::build`](crate::tls::ServerTls::build))
/// or a [`ReloadableServerTls`](crate::tls::ReloadableServerTls): each connection then takes
/// the configuration current when it is accepted, so replaced certificates, client CAs and CRLs
/// apply to new handshakes while open connections keep theirs.
///
/// With the `metrics` feature, handshakes count in
/// `certbound_tls_handshakes_total{result="ok"|"failed"|"timeout"}` (and a refused client
/// certificate in `certbound_tls_client_certificates_refused_total{reason}`), and
/// `certbound_connections_open` is the number of connections open (handshakes included).
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
pub fn serve<S>(listener: TcpListener, tls: impl Into<TlsSource>, service: S) -> Serve<S> {
    Serve {
        listener,
        tls: Some(tls.into()),
        service,
        limits: Limits::default(),
        signal: std::future::pending(),
    }
}

/// Serves `service` over plain TCP (HTTP/1.1, or HTTP/2 with prior knowledge) on `listener`,
/// for a service behind a TLS-terminating proxy that forwards the client certificate in a
/// header (see [`ForwardedCertLayer`](crate::ForwardedCertLayer)).
///
/// Each request carries a [`ConnectionInfo`](crate::ConnectionInfo) with the peer's address
/// (which the forwarded certificate layer checks against its trusted proxies) and no client
/// certificate. Otherwise as [`serve`]: graceful shutdown and the same limits.
pub fn serve_plain<S>(listener: TcpListener, service: S) -> Serve<S> {
    Serve {
        listener,
        tls: None,
        service,
        limits: Limits::default(),
        signal: std::future::pending(),
    }
}

/// A server in the making; see [`serve`] and [`serve_plain`]. Await it to run.
#[must_use = "a server does nothing until it is awaited"]
pub struct Serve<S, F = std::future::Pending<()>> {
    listener: TcpListener,
    /// `None`: plain TCP.
    tls: Option<TlsSource>,
    service: S,
    limits: Limits,
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
            limits: self.limits,
            signal,
        }
    }

    /// How long a client may take to complete the TLS handshake (default 10 s). A slow or silent
    /// client only ever holds its own task (and one of the
    /// [`max_connections`](Self::max_connections)) until then.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.handshake_timeout = timeout;
        self
    }

    /// How long an HTTP/1 client may take to send a whole request head (default 10 s), and may
    /// wait before the next request of a keep-alive connection. Slow headers (slowloris) hold a
    /// connection no longer than this. `Duration::ZERO` turns it off.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// How long a connection may go without any request in flight or started before it is
    /// closed gracefully (default 60 s; HTTP/2 gets GOAWAY). An idle connection is closed
    /// between one and two timeouts after its last request. `Duration::ZERO` turns it off.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// Most connections open at once, handshakes included (default 10 000; at least 1). At the
    /// limit the server stops accepting until one ends: new clients wait in the operating
    /// system's listen queue, while the open connections keep being served. Idle and slow
    /// clients give their place back after the timeouts above.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.max_connections = connections.clamp(1, MAX_CONNECTIONS_LIMIT);
        self
    }

    /// Most HTTP/2 streams (requests) open at once on one connection (default 200).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.limits.max_concurrent_streams = streams;
        self
    }

    /// Largest request head (default 32 KiB): the HTTP/2 decoded header list (CONTINUATION
    /// frames included) and the HTTP/1 request line and headers (at least 8 KiB there, and at
    /// most 100 header fields). Beyond it the request is refused (`431` or a stream reset).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_header_bytes = bytes;
        self
    }

    /// How long a connection may linger after an answer that ends it while the client may
    /// still be sending (default 5 s; `Duration::ZERO` turns lingering off).
    ///
    /// Closing a connection with unread input makes the operating system reset it, and the
    /// reset can destroy the answer before the client reads it: a client that writes its whole
    /// request before reading (a `431` to an oversized head, or an answer to a request whose
    /// body was not read) would see the connection fail instead. Like nginx's
    /// `lingering_close`, `serve` then shuts down its sending side (after TLS `close_notify`)
    /// and reads and discards the client's input until the client closes, this timeout passes,
    /// [`lingering_bytes`](Self::lingering_bytes) have been read, or the server shuts down. A
    /// lingering connection holds its place among [`max_connections`](Self::max_connections).
    /// Connections closed as idle (keep-alive, idle timeout, graceful shutdown) or by the
    /// client never linger.
    pub fn lingering_timeout(mut self, timeout: Duration) -> Self {
        self.limits.lingering_timeout = timeout;
        self
    }

    /// Most bytes a lingering connection reads and discards (default 1 MiB, counted as they
    /// arrive, TLS records included; `0` turns lingering off). See
    /// [`lingering_timeout`](Self::lingering_timeout).
    pub fn lingering_bytes(mut self, bytes: u64) -> Self {
        self.limits.lingering_bytes = bytes;
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
            .field("limits", &self.limits)
            .finish_non_exhaustive()
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
                limits,
                signal,
            } = self;
            let protocols = Arc::new(Protocols::new(&limits));
            let slots = Arc::new(Semaphore::new(limits.max_connections));
            let (stop, stopped) = watch::channel(false);
            let mut signal = std::pin::pin!(signal);
            loop {
                // A free slot first: at max_connections, clients wait in the listen queue.
                let slot = tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut signal => break,
                };
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
                    tls: tls.clone(),
                    protocols: Arc::clone(&protocols),
                    service: service.clone(),
                    handshake_timeout: limits.handshake_timeout,
                    idle_timeout: limits.idle_timeout,
                    lingering: limits.lingering(),
                    remote_addr,
                    stop: stopped.clone(),
                    _slot: slot,
                };
                tokio::spawn(connection.run(tcp));
            }
            drop(listener);
            // Every connection closes gracefully, then gives its slot back.
            let _ = stop.send(true);
            drop(stopped);
            let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
            let _ = slots.acquire_many(all).await;
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
