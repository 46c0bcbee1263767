use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::credentials::{b64token, bearer_bytes};
use super::future::ResponseFuture;
use super::Settings;
use crate::certificate::{lookup, CertificateLookup};
use crate::challenge::{is_grpc, RejectionResponse};
use crate::error::{AuthError, AuthErrorKind};
use crate::token::{PresentedToken, ValidateToken};

/// Middleware that lets a request through only with a valid access token bound to the
/// connection's client certificate. Built by [`BoundTokenLayer`](crate::BoundTokenLayer).
pub struct BoundToken<S, V, R> {
    inner: S,
    validator: Arc<V>,
    settings: Arc<Settings<R>>,
}

impl<S, V, R> BoundToken<S, V, R> {
    pub(crate) fn from_parts(inner: S, validator: Arc<V>, settings: Arc<Settings<R>>) -> Self {
        Self {
            inner,
            validator,
            settings,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, V, R> Clone for BoundToken<S, V, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            validator: Arc::clone(&self.validator),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S: fmt::Debug, V: fmt::Debug, R> fmt::Debug for BoundToken<S, V, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundToken")
            .field("inner", &self.inner)
            .field("validator", &self.validator)
            .field("policy", &self.settings.policy)
            .finish_non_exhaustive()
    }
}

impl<S, V, R, ReqBody, ResBody> Service<Request<ReqBody>> for BoundToken<S, V, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: ValidateToken,
    R: RejectionResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<V::Future, S, ReqBody, S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        let settings = Arc::clone(&self.settings);
        let peer = lookup(request.extensions());
        let certificate = match peer.certificate {
            CertificateLookup::Present(cert) => Some(cert),
            CertificateLookup::Absent => None,
            CertificateLookup::NoSource => {
                let error = AuthError::with_detail(
                    AuthErrorKind::Misconfigured,
                    "no client certificate source: serve with certbound::serve or serve_plain, axum-server or tonic TLS, or insert ClientCertificate",
                );
                return ResponseFuture::rejected(error, settings, grpc);
            }
        };
        let raw = match bearer_bytes(
            request.headers(),
            request.uri(),
            settings.policy.max_token_len,
        ) {
            Ok(raw) => raw,
            Err(error) => return ResponseFuture::rejected(error, settings, grpc),
        };
        // The token this connection presented last: its syntax was checked then and its cache
        // key is known, so it is neither scanned nor hashed again.
        let validation = match peer.memo.and_then(|memo| memo.recall(raw)) {
            Some((token, key)) => self.validator.validate_presented(
                PresentedToken::new(&token, certificate.as_ref()).with_key(key),
            ),
            None => match b64token(raw) {
                Ok(token) => self.validator.validate_presented(
                    PresentedToken::new(token, certificate.as_ref()).remembered_by(peer.memo),
                ),
                Err(error) => return ResponseFuture::rejected(error, settings, grpc),
            },
        };
        // Take the service that was driven to readiness and leave a clone in its place
        // (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::validating(validation, request, inner, certificate, settings, grpc)
    }
}
