//! One accepted connection: the TLS handshake (bounded in time), the HTTP connection, the
//! client certificate in every request, and the connection's end: when it is done, when the
//! server shuts down, or when it has been idle too long.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use super::limits::{Protocol, Protocols};
use super::linger::{linger, Bounds, Transport, Watched};
use super::panics::CatchPanic;
use super::BoxError;
use crate::certificate::{ClientCertificate, ConnectionInfo};
use crate::metrics::{self, CertificateRefusal, Handshake};
use crate::tls::TlsSource;

pub(super) struct Connection<S> {
    /// `None`: plain TCP.
    pub(super) tls: Option<TlsSource>,
    pub(super) protocols: Arc<Protocols>,
    pub(super) service: S,
    pub(super) handshake_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) lingering: Bounds,
    pub(super) remote_addr: SocketAddr,
    /// Turns `true` when the server shuts down.
    pub(super) stop: watch::Receiver<bool>,
    /// This connection's slot among `max_connections`, given back when it ends.
    pub(super) _slot: OwnedSemaphorePermit,
}

impl<S> Connection<S> {
    pub(super) async fn run<B>(self, tcp: TcpStream)
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let _open = Open::new();
        let Some(source) = &self.tls else {
            let info = ConnectionInfo::plain(self.remote_addr);
            return self.serve_http(Protocol::Sniff, tcp, info).await;
        };
        // The configuration current now: a reload after this applies to the next connection.
        let acceptor = TlsAcceptor::from(source.current());
        let tls = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                metrics::tls_handshake(Handshake::Failed);
                // tokio-rustls reports rustls' error as the io::Error's inner error.
                if let Some(refusal) = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .and_then(CertificateRefusal::of)
                {
                    metrics::client_certificate_refused(refusal);
                }
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", remote = %self.remote_addr, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics::tls_handshake(Handshake::Timeout);
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", remote = %self.remote_addr, "TLS handshake timed out");
                return;
            }
        };
        metrics::tls_handshake(Handshake::Ok);
        let (_, session) = tls.get_ref();
        // RFC 8705 §3: the thumbprint is computed here, once for the whole connection.
        let client_certificate = session.peer_certificates().and_then(|chain| {
            ClientCertificate::from_chain(chain.iter().map(|c| c.clone().into_owned()).collect())
        });
        let info = ConnectionInfo::new(self.remote_addr, client_certificate);
        let protocol = Protocol::from_alpn(session.alpn_protocol());
        self.serve_http(protocol, tls, info).await;
    }

    async fn serve_http<T, B>(self, protocol: Protocol, io: T, info: ConnectionInfo)
    where
        T: Transport,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let activity = Arc::new(Activity::default());
        let service = AddConnectInfo {
            inner: self.service,
            info,
            activity: Arc::clone(&activity),
        };
        let (io, mut returned) = Watched::new(io);
        let conn = self.protocols.get(protocol).serve_connection_with_upgrades(
            TokioIo::new(io),
            CatchPanic::new(TowerToHyperService::new(service)),
        );
        let mut stop = self.stop;
        let ended = {
            // The connection, and the IO in it, is dropped at the end of this block.
            let mut conn = std::pin::pin!(conn);
            let mut closing = false;
            // A graceful shutdown lets the requests in flight finish: HTTP/1 closes after the
            // current response, HTTP/2 sends GOAWAY.
            loop {
                tokio::select! {
                    result = conn.as_mut() => break ended(result, closing, self.remote_addr),
                    // A dropped sender (the server future dropped) stops too.
                    _ = stop.wait_for(|stop| *stop), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    () = activity.idle(self.idle_timeout), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        };
        let Ok((io, seen)) = returned.try_recv() else {
            // Upgraded: the IO lives on elsewhere.
            return;
        };
        // Only a connection the server ended on its own, after answering, while the client may
        // still be sending: never one closed as idle (keep-alive, shutdown) or by the client.
        if seen.may_have_unread_input() && ended == Ended::Done && !self.lingering.is_off() {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", remote = %self.remote_addr, "lingering close");
            // The task still holds its slot among `max_connections` meanwhile.
            linger(io, seen, self.lingering, &mut stop).await;
        }
    }
}

/// Counts the connection in `certbound_connections_open` for as long as it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::connection_opened();
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::connection_closed();
    }
}

/// How the HTTP connection ended.
#[derive(PartialEq, Eq)]
enum Ended {
    /// The server closed it as idle or shutting down (graceful shutdown).
    Closed,
    /// hyper closed an HTTP/1 connection that waited too long for a request head.
    TimedOut,
    /// By itself: the client closed it, an error, or an answer that ends it.
    Done,
}

/// How a connection that ended with `result` ended.
fn ended(result: Result<(), BoxError>, closing: bool, _remote: SocketAddr) -> Ended {
    if closing {
        return Ended::Closed;
    }
    let Err(e) = result else {
        return Ended::Done;
    };
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "certbound", remote = %_remote, error = %e, "connection ended with an error");
    if e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
    {
        Ended::TimedOut
    } else {
        Ended::Done
    }
}

/// Requests of one connection: how many started, and how many are in flight (until their
/// response head is ready; the body then finishes even if the connection is closing).
#[derive(Default)]
struct Activity {
    started: AtomicUsize,
    in_flight: AtomicUsize,
}

impl Activity {
    /// Completes once no request was in flight and none started for a whole `timeout`
    /// (checked every `timeout`, so an idle connection ends after one to two timeouts); never
    /// when `timeout` is zero. Two atomic counters per request, no clock reading.
    async fn idle(&self, timeout: Duration) {
        if timeout.is_zero() {
            // Turned off.
            return std::future::pending().await;
        }
        let mut seen = self.started.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(timeout).await;
            let now = self.started.load(Ordering::Relaxed);
            if now == seen && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            seen = now;
        }
    }
}

/// Inserts the connection's [`ConnectionInfo`] into each request, and counts the requests.
#[derive(Clone)]
struct AddConnectInfo<S> {
    inner: S,
    info: ConnectionInfo,
    activity: Arc<Activity>,
}

impl<S, B> Service<Request<B>> for AddConnectInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        self.activity.started.fetch_add(1, Ordering::Relaxed);
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Counted {
            inner: self.inner.call(req),
            _done: Done(Arc::clone(&self.activity)),
        }
    }
}

pin_project! {
    /// A request's future, counted in flight until it completes or is dropped.
    struct Counted<F> {
        #[pin]
        inner: F,
        _done: Done,
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// Takes a request off the in-flight count when dropped.
struct Done(Arc<Activity>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
