use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::bearer::{b64token, bearer_bytes};
use super::future::ResponseFuture;
use super::Policy;
use crate::challenge::is_grpc;
use crate::error::{AuthError, AuthErrorKind};
use crate::peer::{lookup, CertificateLookup};
use crate::token::{PresentedToken, ValidateToken};

/// Middleware that lets a request through only with a valid access token bound to the
/// connection's client certificate. Built by [`CertBoundLayer`](super::CertBoundLayer).
pub struct CertBound<S, V> {
    inner: S,
    validator: Arc<V>,
    policy: Arc<Policy>,
}

impl<S, V> CertBound<S, V> {
    pub(crate) fn from_parts(inner: S, validator: Arc<V>, policy: Arc<Policy>) -> Self {
        Self {
            inner,
            validator,
            policy,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, V> Clone for CertBound<S, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            validator: Arc::clone(&self.validator),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<S: fmt::Debug, V: fmt::Debug> fmt::Debug for CertBound<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBound")
            .field("inner", &self.inner)
            .field("validator", &self.validator)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for CertBound<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: ValidateToken,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<V::Future, S, ReqBody, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        let policy = Arc::clone(&self.policy);
        let certificate = match lookup(request.extensions()) {
            CertificateLookup::Present(cert) => Some(cert),
            CertificateLookup::Absent => None,
            CertificateLookup::NoSource => {
                let error = AuthError::with_detail(
                    AuthErrorKind::Misconfigured,
                    "no client certificate source: serve with certbound::serve or serve_plain, axum-server or tonic TLS, or insert ClientCertificate",
                );
                return ResponseFuture::rejected(error, policy, grpc);
            }
        };
        let raw = match bearer_bytes(request.headers(), request.uri(), policy.max_token_len) {
            Ok(raw) => raw,
            Err(error) => return ResponseFuture::rejected(error, policy, grpc),
        };
        // The token this connection presented last: its syntax was checked then and its cache
        // key is known, so it is neither scanned nor hashed again.
        let recalled = certificate
            .as_ref()
            .and_then(|c| Some((c, c.recall_token(raw)?)));
        let validation = match &recalled {
            Some((certificate, (token, key))) => self
                .validator
                .validate_presented(PresentedToken::recalled(token, certificate, *key)),
            None => match b64token(raw) {
                Ok(token) => self
                    .validator
                    .validate_presented(PresentedToken::new(token, certificate.as_ref())),
                Err(error) => return ResponseFuture::rejected(error, policy, grpc),
            },
        };
        // Take the service that was driven to readiness and leave a clone in its place
        // (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::validating(validation, request, inner, certificate, policy, grpc)
    }
}
