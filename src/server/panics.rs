//! A request whose service panics (in `poll_ready`, `call` or its future) is answered
//! `500 Internal Server Error` with an empty body, instead of the panic ending the connection
//! (and every other request on it) with no answer.
//!
//! Written here rather than taken from tower-http's `CatchPanic`: that one would change the
//! response body type to its own, sends a text body, and logs the panic message, which may
//! quote request material (a token); this one is a few lines over `std::panic::catch_unwind`.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{Either, Empty};
use pin_project_lite::pin_project;

/// Wraps a hyper service: its panics become `500` answers.
#[derive(Debug, Clone)]
pub(super) struct CatchPanic<H> {
    inner: H,
}

impl<H> CatchPanic<H> {
    pub(super) fn new(inner: H) -> Self {
        Self { inner }
    }
}

/// What is kept of a request to answer (and log) its panic: the log has its method and path,
/// never its headers or query.
struct Requested {
    version: Version,
    #[cfg(feature = "tracing")]
    method: http::Method,
    #[cfg(feature = "tracing")]
    uri: http::Uri,
}

impl Requested {
    fn of<T>(request: &Request<T>) -> Self {
        Self {
            version: request.version(),
            #[cfg(feature = "tracing")]
            method: request.method().clone(),
            #[cfg(feature = "tracing")]
            uri: request.uri().clone(),
        }
    }

    /// The answer to a request whose service panicked. The panic's message is neither sent
    /// nor logged: it may quote the request (a token, a header).
    fn panicked<B: http_body::Body>(&self) -> Response<Either<B, Empty<B::Data>>> {
        #[cfg(feature = "tracing")]
        tracing::error!(
            target: "certbound",
            method = %self.method,
            path = self.uri.path(),
            "the service panicked; the request is answered 500"
        );
        let mut response = Response::new(Either::Right(Empty::new()));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        // HTTP/1: the connection closes after this answer, the service's state being suspect.
        // (HTTP/2 has no such header; the other streams of the connection go on.)
        if self.version <= Version::HTTP_11 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl<H, T, B> hyper::service::Service<Request<T>> for CatchPanic<H>
where
    H: hyper::service::Service<Request<T>, Response = Response<B>>,
    B: http_body::Body,
{
    type Response = Response<Either<B, Empty<B::Data>>>;
    type Error = H::Error;
    type Future = Caught<H::Future>;

    fn call(&self, request: Request<T>) -> Self::Future {
        let requested = Requested::of(&request);
        // The service's state is not used again after a panic on this connection's HTTP/1,
        // and HTTP/2's other streams accept the risk of a service that panicked once: the
        // alternative is failing all of them.
        let inner = catch_unwind(AssertUnwindSafe(|| self.inner.call(request))).ok();
        Caught { inner, requested }
    }
}

pin_project! {
    /// A response future whose panic becomes a `500` answer (`inner` is `None`: `call`
    /// panicked).
    pub(super) struct Caught<F> {
        #[pin]
        inner: Option<F>,
        requested: Requested,
    }
}

impl<F, B, E> Future for Caught<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<Either<B, Empty<B::Data>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(this.requested.panicked()));
        };
        // hyper does not poll a future again once it is ready, so a future that panicked is
        // never polled again.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(result.map(|r| r.map(Either::Left))),
            Err(_payload) => Poll::Ready(Ok(this.requested.panicked())),
        }
    }
}
