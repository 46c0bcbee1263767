use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::authenticator::ClientAuthenticator;
use super::dpop::TokenEndpointDpop;
use super::error::{error_response, ClientAuthError, ClientAuthErrorKind as K};
use super::form::{basic_credentials, is_form, parse_form, AuthorizationError, BasicCredentials};
use super::registry::ClientRegistry;
use crate::bound_token::DPOP_NONCE;
use crate::certificate::{lookup, CertificateLookup};

/// Parameters that mean the client is using another authentication method as well
/// (RFC 6749 §2.3.1, RFC 7523 §2.2).
const OTHER_METHOD_PARAMETERS: &[&str] =
    &["client_secret", "client_assertion", "client_assertion_type"];

/// Default limit of a token-endpoint request body.
const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Applies [`MtlsClientAuth`]: mutual-TLS client authentication (RFC 8705 §2) in front of a
/// token, introspection or revocation endpoint.
///
/// See the [module docs](super) for what is checked and in which order.
#[must_use]
pub struct MtlsClientAuthLayer<R> {
    shared: Arc<Shared<R>>,
    max_body_bytes: usize,
    dpop: Option<Arc<TokenEndpointDpop>>,
}

struct Shared<R> {
    registry: R,
    authenticator: ClientAuthenticator,
}

impl<R> MtlsClientAuthLayer<R> {
    /// Authenticates clients found in `registry` with `authenticator`.
    pub fn new(registry: R, authenticator: ClientAuthenticator) -> Self {
        Self {
            shared: Arc::new(Shared {
                registry,
                authenticator,
            }),
            max_body_bytes: DEFAULT_MAX_BODY,
            dpop: None,
        }
    }

    /// Largest request body read (default 64 KiB); a larger one is answered `413`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Also checks DPoP proofs (RFC 9449 §5): once the client authenticated, a request with a
    /// `DPoP` header needs a valid proof for this endpoint (`400 invalid_dpop_proof`,
    /// `400 use_dpop_nonce`, or `503` when the replay store cannot answer), and the
    /// [`AuthenticatedClient`](super::AuthenticatedClient) carries the proof; bind the token
    /// with its [`sender_constraints`](super::AuthenticatedClient::sender_constraints).
    /// Requests without a `DPoP` header are unaffected.
    pub fn dpop(mut self, dpop: TokenEndpointDpop) -> Self {
        self.dpop = Some(Arc::new(dpop));
        self
    }
}

impl<R> Clone for MtlsClientAuthLayer<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            max_body_bytes: self.max_body_bytes,
            dpop: self.dpop.clone(),
        }
    }
}

impl<R> fmt::Debug for MtlsClientAuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsClientAuthLayer")
            .field("authenticator", &self.shared.authenticator)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

impl<S, R> Layer<S> for MtlsClientAuthLayer<R> {
    type Service = MtlsClientAuth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        MtlsClientAuth {
            inner,
            shared: Arc::clone(&self.shared),
            max_body_bytes: self.max_body_bytes,
            dpop: self.dpop.clone(),
        }
    }
}

/// Middleware that lets a token-endpoint request through only from a client that authenticated
/// with its TLS certificate. Built by [`MtlsClientAuthLayer`].
///
/// The inner service receives the buffered body as [`Full<Bytes>`], with the
/// [`AuthenticatedClient`](super::AuthenticatedClient) and the parsed
/// [`FormParameters`](super::FormParameters) in the request's extensions.
pub struct MtlsClientAuth<S, R> {
    inner: S,
    shared: Arc<Shared<R>>,
    max_body_bytes: usize,
    dpop: Option<Arc<TokenEndpointDpop>>,
}

impl<S: Clone, R> Clone for MtlsClientAuth<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            max_body_bytes: self.max_body_bytes,
            dpop: self.dpop.clone(),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for MtlsClientAuth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsClientAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, R> MtlsClientAuth<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

type Authentication =
    Pin<Box<dyn Future<Output = Result<Authenticated, Rejection>> + Send + 'static>>;

/// The request for the inner service, and the `DPoP-Nonce` its response gets.
struct Authenticated {
    request: Request<Full<Bytes>>,
    nonce: Option<HeaderValue>,
}

/// A rejection, whether the client used HTTP Basic (for the challenge), and the `DPoP-Nonce`
/// it carries.
struct Rejection {
    error: ClientAuthError,
    basic: bool,
    nonce: Option<HeaderValue>,
}

fn reject(kind: K, detail: &'static str, basic: bool) -> Rejection {
    Rejection {
        error: ClientAuthError::new(kind, detail),
        basic,
        nonce: None,
    }
}

/// A fresh nonce as a header value, when `dpop` requires nonces.
fn nonce_header(dpop: &TokenEndpointDpop) -> Option<HeaderValue> {
    dpop.fresh_nonce()
        .and_then(|nonce| HeaderValue::from_str(&nonce).ok())
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for MtlsClientAuth<S, R>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    R: ClientRegistry,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness and leave a clone in its place
        // (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let dpop = self.dpop.clone();
        ResponseFuture {
            state: State::Authenticating {
                authentication: Box::pin(authenticate(shared, self.max_body_bytes, dpop, request)),
                inner: Some(inner),
            },
        }
    }
}

/// Everything before the inner service: request shape, client id, registry, certificate,
/// then the DPoP proof.
async fn authenticate<R, B>(
    shared: Arc<Shared<R>>,
    limit: usize,
    dpop: Option<Arc<TokenEndpointDpop>>,
    request: Request<B>,
) -> Result<Authenticated, Rejection>
where
    R: ClientRegistry,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // RFC 6749 §3.2: the token endpoint takes POST only (so do RFC 7662 and RFC 7009).
    if request.method() != Method::POST {
        return Err(reject(K::MethodNotAllowed, "not a POST request", false));
    }
    let certificate = match lookup(request.extensions()).certificate {
        CertificateLookup::Present(cert) => Some(cert),
        CertificateLookup::Absent => None,
        CertificateLookup::NoSource => {
            return Err(reject(
                K::Misconfigured,
                "no client certificate source: serve with certbound::serve, axum-server or insert ClientCertificate",
                false,
            ))
        }
    };
    let basic = match basic_credentials(request.headers()) {
        Ok(BasicCredentials::None) => None,
        Ok(BasicCredentials::ClientId(id)) => Some(id),
        Err(AuthorizationError::Malformed(detail)) => {
            return Err(reject(K::InvalidRequest, detail, true))
        }
        Err(AuthorizationError::UnsupportedScheme) => {
            return Err(reject(
                K::InvalidClient,
                "unsupported Authorization scheme",
                false,
            ))
        }
    };
    let used_basic = basic.is_some();
    if !is_form(request.headers()) {
        return Err(reject(
            K::InvalidRequest,
            "content type is not application/x-www-form-urlencoded",
            used_basic,
        ));
    }

    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(reject(
            K::PayloadTooLarge,
            "body over the size limit",
            used_basic,
        ));
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(reject(
                K::PayloadTooLarge,
                "body over the size limit",
                used_basic,
            ))
        }
        Err(_) => {
            return Err(reject(
                K::InvalidRequest,
                "body could not be read",
                used_basic,
            ))
        }
    };
    let params = parse_form(&body).map_err(|m| reject(K::InvalidRequest, m.0, used_basic))?;
    // RFC 6749 §2.3: one authentication method per request.
    if OTHER_METHOD_PARAMETERS
        .iter()
        .any(|p| params.get(p).is_some())
    {
        return Err(reject(
            K::InvalidRequest,
            "another client authentication method in the same request",
            used_basic,
        ));
    }
    let client_id = match (params.get("client_id"), basic.as_deref()) {
        (Some(form), Some(basic)) if form != basic => {
            return Err(reject(
                K::InvalidRequest,
                "client_id in the body and in Basic credentials differ",
                true,
            ))
        }
        (Some(id), _) | (None, Some(id)) if !id.is_empty() => id.to_owned(),
        // RFC 8705 §2: client_id is required with mutual-TLS client authentication.
        _ => return Err(reject(K::InvalidClient, "no client_id", used_basic)),
    };
    let Some(certificate) = certificate else {
        return Err(reject(
            K::InvalidClient,
            "no client certificate",
            used_basic,
        ));
    };
    let client = match shared.registry.find_client(&client_id).await {
        Ok(Some(client)) if client.client_id() == client_id => client,
        Ok(_) => return Err(reject(K::InvalidClient, "unknown client", used_basic)),
        Err(_e) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", error = %_e, "client registry lookup failed");
            return Err(reject(
                K::RegistryUnavailable,
                "registry lookup failed",
                used_basic,
            ));
        }
    };
    let authenticated = shared
        .authenticator
        .authenticate(&client, &certificate)
        .await
        .map_err(|error| Rejection {
            error,
            basic: used_basic,
            nonce: None,
        })?;
    parts.extensions.insert(params);
    let mut request = Request::from_parts(parts, Full::new(body));
    // RFC 9449 §5: after the client authenticated, so that nobody else's request reaches the
    // replay store.
    let (proof, nonce) = match &dpop {
        None => (None, None),
        Some(dpop) => match dpop.check(&request).await {
            Ok(None) => (None, None),
            // RFC 9449 §8.2: a fresh nonce may go with any response.
            Ok(Some(proof)) => (Some(proof), nonce_header(dpop)),
            Err(error) => {
                let nonce = match error.kind() {
                    K::UseDpopNonce => nonce_header(dpop),
                    _ => None,
                };
                return Err(Rejection {
                    error,
                    basic: used_basic,
                    nonce,
                });
            }
        },
    };
    request
        .extensions_mut()
        .insert(authenticated.with_dpop_proof(proof));
    Ok(Authenticated { request, nonce })
}

pin_project! {
    /// Response future of [`MtlsClientAuth`].
    ///
    /// The authentication part is boxed: it buffers the body and awaits the registry, and a
    /// token endpoint is not a hot path. The inner service's future is not.
    pub struct ResponseFuture<F, S> {
        #[pin]
        state: State<F, S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S> {
        Authenticating {
            authentication: Authentication,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: F,
            nonce: Option<HeaderValue>,
        },
    }
}

impl<F, S> fmt::Debug for ResponseFuture<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Authenticating { .. } => "authenticating",
            State::Calling { .. } => "calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, S, ResBody, E> Future for ResponseFuture<F, S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating {
                    authentication,
                    inner,
                } => {
                    let result = ready!(authentication.as_mut().poll(cx));
                    let (authenticated, mut inner) = match (result, inner.take()) {
                        (Ok(authenticated), Some(inner)) => (authenticated, inner),
                        (Err(rejection), _) => {
                            trace_rejection(&rejection.error);
                            let mut response = error_response(rejection.error, rejection.basic);
                            if let Some(nonce) = rejection.nonce {
                                response.headers_mut().insert(DPOP_NONCE.clone(), nonce);
                            }
                            return Poll::Ready(Ok(response));
                        }
                        // Polled again after completion: never panic.
                        (Ok(_), None) => {
                            let error =
                                ClientAuthError::new(K::Misconfigured, "polled after completion");
                            return Poll::Ready(Ok(error_response(error, false)));
                        }
                    };
                    let future = inner.call(authenticated.request);
                    this.state.set(State::Calling {
                        future,
                        nonce: authenticated.nonce,
                    });
                }
                StateProj::Calling { future, nonce } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(nonce) = nonce.take() {
                        response.headers_mut().insert(DPOP_NONCE.clone(), nonce);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// Debug-level trace of a rejection: the kind and the fixed reason, nothing from the request.
fn trace_rejection(_error: &ClientAuthError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "certbound", kind = ?_error.kind(), detail = _error.detail(), "token endpoint request rejected");
}
