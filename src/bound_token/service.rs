use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::credentials::{b64token, credentials};
use super::future::{Checked, ResponseFuture};
use super::{CertificateSource, RequestContext, Settings};
use crate::certificate::{lookup, CertificateLookup};
use crate::challenge::{is_grpc, RejectionResponse, Scheme};
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
        let settings = Arc::clone(&self.settings);
        let mut context = RequestContext {
            grpc: is_grpc(request.headers()),
            scheme: Scheme::Unknown,
        };
        let dpop = settings.policy.dpop.as_ref();
        let peer = lookup(request.extensions());
        let (certificate, source) = match peer.certificate {
            CertificateLookup::Present(cert) => (Some(cert), CertificateSource::Configured),
            CertificateLookup::Absent => (None, CertificateSource::Configured),
            // DPoP-bound tokens need no certificate; a certificate-bound one is refused as a
            // misconfiguration once it is known.
            CertificateLookup::NoSource if dpop.is_some() => (None, CertificateSource::Missing),
            CertificateLookup::NoSource => {
                let error = AuthError::with_detail(
                    AuthErrorKind::Misconfigured,
                    "no client certificate source: serve with certbound::serve or serve_plain, axum-server or tonic TLS, or insert ClientCertificate",
                );
                return ResponseFuture::rejected(error, settings, context);
            }
        };
        let raw = match credentials(
            request.headers(),
            request.uri(),
            settings.policy.max_token_len,
            dpop.is_some(),
        ) {
            Ok((scheme, raw)) => {
                context.scheme = scheme;
                raw
            }
            Err((scheme, error)) => {
                context.scheme = scheme;
                return ResponseFuture::rejected(error, settings, context);
            }
        };
        // The token this connection presented last: its syntax was checked then and its cache
        // key is known, so it is neither scanned nor hashed again.
        let recalled = peer.memo.and_then(|memo| memo.recall(raw));
        let presented = match &recalled {
            Some((token, key)) => PresentedToken::new(token, certificate.as_ref()).with_key(*key),
            None => match b64token(raw) {
                Ok(token) => {
                    PresentedToken::new(token, certificate.as_ref()).remembered_by(peer.memo)
                }
                Err(error) => return ResponseFuture::rejected(error, settings, context),
            },
        };
        // RFC 9449 §4.3: the proof is checked before the token (it is local work, and a bad
        // proof needs no upstream); its key is compared with the token's cnf.jkt afterwards.
        let (presented, proof) = match (context.scheme, dpop) {
            (Scheme::Dpop, Some(dpop)) => {
                let key = presented.key();
                let Some(htu) = dpop.request_htu(&request) else {
                    let error = AuthError::with_detail(
                        AuthErrorKind::InvalidDpopProof,
                        "the request has no authority to check the proof's htu against",
                    );
                    return ResponseFuture::rejected(error, settings, context);
                };
                let checked = dpop.check(
                    request.headers(),
                    request.method().as_str(),
                    &htu,
                    Some(key.as_sha256()),
                );
                match checked {
                    Ok(proof) => (presented.with_key(key), Some(proof)),
                    Err(error) => return ResponseFuture::rejected(error, settings, context),
                }
            }
            _ => (presented, None),
        };
        let validation = self.validator.validate_presented(presented);
        // Take the service that was driven to readiness and leave a clone in its place
        // (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::validating(
            validation,
            request,
            inner,
            Checked {
                certificate,
                source,
                proof,
            },
            settings,
            context,
        )
    }
}
