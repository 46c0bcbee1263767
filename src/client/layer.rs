//! [`TokenLayer`]: the outgoing tower layer that puts a sender-constrained token (and, for
//! DPoP, a fresh proof) on every request.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Extensions, HeaderMap, Method, Request, Response, Uri, Version};
use http_body::Body;
use http_body_util::{BodyExt as _, Full, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::attach::{challenge_of, Attacher, CallError, Retries};
use super::TokenSource;
use crate::error::{BoxError, ConfigError};

/// Puts an access token from a [`TokenSource`] on every request of the wrapped HTTP client:
/// `Authorization: Bearer <token>` for a certificate-bound token (the client's TLS connection
/// presents the certificate), or `Authorization: DPoP <token>` plus a fresh `DPoP` proof
/// (`htm`, `htu` from the request URI without query and fragment, `ath`, and the resource
/// server's latest nonce) for a DPoP-bound one.
///
/// Works with any tower HTTP client whose request body implements [`ReplayBody`]:
/// hyper-util's `Client`, tonic's `Channel`, `tower::service_fn` over reqwest...
///
/// **Retries.** On a `401` from the resource server:
/// - with `error="use_dpop_nonce"` and a new `DPoP-Nonce`, the request is sent once more with
///   a proof carrying that nonce;
/// - with `error="invalid_token"`, the token is [replaced](TokenSource::replace) (one request
///   to the authorization server for all the callers that were refused the same token) and
///   the request sent once more.
///
/// A request is sent again only when its body can be: bodies of known length up to
/// [`max_replay_bytes`](Self::max_replay_bytes) (default 64 KiB) are read into memory before
/// the first attempt; streams of unknown length (tonic's request bodies, chunked uploads) are
/// sent as they are and never retried, and the caller gets the `401`. Either way the nonce is
/// kept and a refused token dropped, so the caller's own next attempt carries the one and
/// gets another token. A gRPC rejection is an HTTP `200` with `grpc-status` 16: never retried,
/// but its `DPoP-Nonce` is kept too.
///
/// **Refusals.** A `401` with `error="insufficient_user_authentication"` (RFC 9470 step-up;
/// also as gRPC status 16) becomes the error [`CallError::StepUp`], with the server's
/// `acr_values` and `max_age`: a `client_credentials` client cannot step up, and must not keep
/// trying. Any other refusal is handed to the caller with a [`ResourceChallenge`](super::ResourceChallenge) in its
/// extensions: the `error` and the resource's `resource_metadata` URL (RFC 9728 §5.1), which
/// is not followed (see [`ResourceChallenge`](super::ResourceChallenge)).
///
/// **A renewed identity.** The wrapped client presents one certificate: the identity of the
/// source when the layer was made. After a
/// [`ReloadableClientIdentity`](super::ReloadableClientIdentity) renewal, the source's tokens
/// are bound to the new certificate, and the service sends nothing: its calls fail with
/// [`CallError::IdentityRenewed`] until the application builds a new client (from
/// [`TokenSource::identity`]) and layer. A token is never sent over a connection that
/// presented another certificate than the one it was obtained with.
///
/// The service's error is a `Box<dyn Error + Send + Sync>`: the inner client's error, or a
/// [`CallError`] when no token or proof could be made or a step-up is asked for (downcast to
/// tell them apart).
#[derive(Clone)]
pub struct TokenLayer {
    attacher: Arc<Attacher>,
    max_replay_bytes: usize,
}

impl TokenLayer {
    /// Tokens from `source`, for a client that presents `source`'s identity as it is now.
    pub fn new(source: TokenSource) -> Self {
        Self {
            attacher: Arc::new(Attacher::new(source, None)),
            max_replay_bytes: 64 * 1024,
        }
    }

    /// The origin (`https://host[:port]`) of requests whose URI has none. tonic's `Channel`
    /// sends requests in origin form (`/package.Service/Method`), so a DPoP proof's `htu`
    /// needs it; absolute request URIs are used as they are.
    ///
    /// # Errors
    /// `origin` is not an `https` or `http` URL without path, query or fragment.
    pub fn origin(self, origin: &str) -> Result<Self, ConfigError> {
        let refuse =
            || ConfigError::invalid("origin", "must be scheme://host[:port] and nothing else");
        let uri: Uri = origin.parse().map_err(|_| refuse())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(refuse());
        };
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "https" | "http")
            || !matches!(uri.path(), "" | "/")
            || uri.query().is_some()
            || origin.contains('#')
        {
            return Err(refuse());
        }
        let source = self.attacher.source.clone();
        Ok(Self {
            attacher: Arc::new(Attacher::new(
                source,
                Some(format!("{scheme}://{}", authority.as_str())),
            )),
            ..self
        })
    }

    /// The largest request body kept in memory so that the request can be sent again
    /// (default 64 KiB). Zero: never retried.
    pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
        self.max_replay_bytes = bytes;
        self
    }
}

impl std::fmt::Debug for TokenLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLayer")
            .field("source", &self.attacher.source)
            .field("origin", &self.attacher.origin)
            .field("max_replay_bytes", &self.max_replay_bytes)
            .finish()
    }
}

impl<S> Layer<S> for TokenLayer {
    type Service = TokenService<S>;

    fn layer(&self, inner: S) -> TokenService<S> {
        TokenService {
            inner,
            attacher: Arc::clone(&self.attacher),
            max_replay_bytes: self.max_replay_bytes,
        }
    }
}

/// The service of [`TokenLayer`].
#[derive(Clone)]
pub struct TokenService<S> {
    inner: S,
    attacher: Arc<Attacher>,
    max_replay_bytes: usize,
}

impl<S> std::fmt::Debug for TokenService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("origin", &self.attacher.origin)
            .field("max_replay_bytes", &self.max_replay_bytes)
            .finish_non_exhaustive()
    }
}

/// A request body that can be made again from its bytes, so that a refused request can be
/// sent once more (see [`TokenLayer`]).
pub trait ReplayBody: Body<Data = Bytes> + Sized + Send + 'static {
    /// A body of `bytes`.
    fn from_bytes(bytes: Bytes) -> Self;
}

impl ReplayBody for Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
    }
}

impl<E: 'static> ReplayBody for http_body_util::combinators::BoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    }
}

impl<E: 'static> ReplayBody for http_body_util::combinators::UnsyncBoxBody<Bytes, E> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }
}

impl ReplayBody for reqwest::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        reqwest::Body::from(bytes)
    }
}

#[cfg(feature = "tonic")]
impl ReplayBody for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        tonic::body::Body::new(Full::new(bytes))
    }
}

#[cfg(feature = "axum")]
impl ReplayBody for axum_core::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        axum_core::body::Body::from(bytes)
    }
}

/// What is needed to send a request again.
struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
}

impl Replay {
    fn request<B: ReplayBody>(&self) -> Request<B> {
        let mut request = Request::new(B::from_bytes(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }
}

impl<S, B, RB> Service<Request<B>> for TokenService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: ReplayBody,
    B::Error: Into<BoxError>,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was polled ready takes this request; the clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let attacher = Arc::clone(&self.attacher);
        let max_replay_bytes = self.max_replay_bytes;
        Box::pin(send(inner, attacher, max_replay_bytes, request))
    }
}

async fn send<S, B, RB>(
    mut inner: S,
    attacher: Arc<Attacher>,
    max_replay_bytes: usize,
    request: Request<B>,
) -> Result<Response<RB>, BoxError>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let (body, replay) = match body.size_hint().exact() {
        Some(len) if len <= max_replay_bytes as u64 => {
            // An empty body (most GETs) is sent as it is; another is read first.
            let (body, bytes) = if len == 0 && body.is_end_stream() {
                (body, Bytes::new())
            } else {
                let bytes = Limited::new(body, max_replay_bytes)
                    .collect()
                    .await?
                    .to_bytes();
                (B::from_bytes(bytes.clone()), bytes)
            };
            let replay = Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                headers: parts.headers.clone(),
                extensions: parts.extensions.clone(),
                body: bytes,
            };
            (body, Some(replay))
        }
        _ => (body, None),
    };
    let mut token = attacher.source.token().await.map_err(CallError::from)?;
    attacher.attach(&token, &parts.method, &parts.uri, &mut parts.headers)?;
    let uri = parts.uri.clone();
    let mut response = inner
        .call(Request::from_parts(parts, body))
        .await
        .map_err(Into::into)?;
    let mut retries = Retries::default();
    loop {
        let verdict = attacher.verdict(&token, &uri, response.status(), response.headers());
        let again = retries
            .again(&attacher.source, &token, verdict, replay.is_some())
            .await?;
        let (Some(next), Some(replay)) = (again, &replay) else {
            if let Some(challenge) = challenge_of(response.headers()) {
                response.extensions_mut().insert(challenge);
            }
            return Ok(response);
        };
        token = next;
        drop(response);
        let mut again = replay.request::<B>();
        attacher.attach(&token, &replay.method, &replay.uri, again.headers_mut())?;
        poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        response = inner.call(again).await.map_err(Into::into)?;
    }
}
