use std::any::Any;
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
use crate::dpop::replay_outcome;
use crate::error::{AuthError, AuthErrorKind};
use crate::token::{AccessToken, PresentedToken, TokenFuture, ValidateToken};

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

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let settings = Arc::clone(&self.settings);
        // Whether the request is a gRPC call matters only to a rejection: it is read then
        // (`refuse` here, the response future later), not on every request.
        let mut context = RequestContext {
            grpc: false,
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
                return refuse(&request, error, settings, context);
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
                return refuse(&request, error, settings, context);
            }
        };
        // The token this connection presented last: its syntax was checked then and its cache
        // key is known, so it is neither scanned nor hashed again.
        let recalled = peer.memo.and_then(|memo| memo.recall(raw));
        let presented = match &recalled {
            Some(held) => PresentedToken::recalled(held, certificate.as_ref()),
            None => match b64token(raw) {
                Ok(token) => {
                    PresentedToken::new(token, certificate.as_ref()).remembered_by(peer.memo)
                }
                Err(error) => return refuse(&request, error, settings, context),
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
                    return refuse(&request, error, settings, context);
                };
                let checked = dpop.check(
                    request.headers(),
                    request.method().as_str(),
                    &htu,
                    Some(key.as_sha256()),
                    peer.proof_keys,
                );
                match checked {
                    Ok(proof) => (presented.with_key(key), Some(proof)),
                    Err(error) => return refuse(&request, error, settings, context),
                }
            }
            _ => (presented, None),
        };
        let mut validation = self.validator.validate_presented(presented);
        // The answer at hand (a cache hit): every check is done here and the request goes
        // straight to the inner service, never parked in this layer's future (moving it in and
        // out again was most of the layer's cost on a cache hit; BENCHMARKS.md, issue 26).
        if let Some(result) = settled(&mut validation) {
            let authorized = result.and_then(|token| {
                settings
                    .policy
                    .authorize(
                        &token,
                        certificate.as_ref(),
                        source,
                        proof.as_ref().map(|(proof, _)| proof),
                    )
                    .map(|()| token)
            });
            let token = match authorized {
                Ok(token) => token,
                Err(error) => return refuse(&request, error, settings, context),
            };
            let (Some((proof, refresh)), Some(dpop)) = (proof, dpop) else {
                request.extensions_mut().insert(token);
                return ResponseFuture::calling(self.inner.call(request), None, settings, context);
            };
            // The jti is recorded only now that everything else passed. An in-memory store
            // answers at once: the request is settled here too (parking it for the answer, in
            // a `Box` moved in and out and polled again, was ~1 100 instructions of a `dpop`
            // request; BENCHMARKS.md, issue 26). A store across the network parks it until
            // the answer comes.
            let mut replay = dpop.record_future(&proof);
            let Some(answer) = replay.take_ready() else {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::recording(
                    replay, request, inner, token, refresh, settings, context,
                );
            };
            return match replay_outcome(answer) {
                Ok(()) => {
                    // A fresh nonce goes with the response when the proof's was of the
                    // previous step.
                    let nonce = if refresh {
                        dpop.nonce_header().map(Box::new)
                    } else {
                        None
                    };
                    request.extensions_mut().insert(token);
                    ResponseFuture::calling(self.inner.call(request), nonce, settings, context)
                }
                Err(error) => refuse(&request, error, settings, context),
            };
        }
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

/// The validation's result when it is at hand already, without polling: certbound's own
/// validators answer a cache hit with a ready [`TokenFuture`]. Any other future (a custom
/// validator's) is polled as usual.
fn settled<F: Any>(validation: &mut F) -> Option<Result<AccessToken, crate::error::AuthError>> {
    (validation as &mut dyn Any)
        .downcast_mut::<TokenFuture>()?
        .take_ready()
}

/// The future answering `error`, in the request's kind (gRPC or not).
fn refuse<B, VF, S, F, R>(
    request: &Request<B>,
    error: crate::error::AuthError,
    settings: Arc<Settings<R>>,
    mut context: RequestContext,
) -> ResponseFuture<VF, S, B, F, R> {
    context.grpc = is_grpc(request.headers());
    ResponseFuture::rejected(error, settings, context)
}
