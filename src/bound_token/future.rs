use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use http::HeaderValue;

use super::{
    count_response, metrics_scheme, CertificateSource, RequestContext, Settings, DPOP_NONCE,
};
use crate::certificate::ClientCertificate;
use crate::challenge::{is_grpc, RejectionResponse};
use crate::dpop::{replay_outcome, ReplayFuture, VerifiedProof};
use crate::error::AuthError;
use crate::metrics;
use crate::token::AccessToken;

/// What the layer learnt about the request before the token was validated.
pub(crate) struct Checked {
    pub(crate) certificate: Option<ClientCertificate>,
    pub(crate) source: CertificateSource,
    /// The DPoP proof, when the request came with the DPoP scheme (and nonce refresh).
    pub(crate) proof: Option<(VerifiedProof, bool)>,
}

pin_project! {
    /// Response future of [`BoundToken`](super::BoundToken).
    pub struct ResponseFuture<VF, S, ReqBody, F, R> {
        #[pin]
        state: State<VF, S, ReqBody, F>,
        settings: Arc<Settings<R>>,
        context: RequestContext,
    }
}

/// The request while its token is validated (or its proof's jti recorded), with the inner
/// service and what the layer checked. Boxed: the response future stays the size of the inner
/// service's future plus a few words, since futures are moved whole (into the connection's
/// state, into a task on HTTP/2) and a cache hit, decided in `call`, never parks anything
/// (BENCHMARKS.md, issue 26).
struct Parked<S, ReqBody> {
    request: Request<ReqBody>,
    inner: S,
    checked: Checked,
}

pin_project! {
    #[project = StateProj]
    enum State<VF, S, ReqBody, F> {
        Validating {
            #[pin]
            validation: VF,
            parked: Option<Box<Parked<S, ReqBody>>>,
        },
        // Every check passed; the proof's jti is being recorded.
        Recording {
            replay: ReplayFuture,
            parked: Option<Box<Parked<S, ReqBody>>>,
            token: Option<AccessToken>,
            nonce: bool,
        },
        Calling {
            #[pin]
            future: F,
            // A fresh DPoP nonce for the response (the proof's was of the previous step).
            nonce: Option<Box<HeaderValue>>,
        },
        Rejected {
            error: Option<AuthError>,
        },
        Done,
    }
}

impl<VF, S, ReqBody, F, R> ResponseFuture<VF, S, ReqBody, F, R> {
    pub(crate) fn validating(
        validation: VF,
        request: Request<ReqBody>,
        inner: S,
        checked: Checked,
        settings: Arc<Settings<R>>,
        context: RequestContext,
    ) -> Self {
        Self {
            state: State::Validating {
                validation,
                parked: Some(Box::new(Parked {
                    request,
                    inner,
                    checked,
                })),
            },
            settings,
            context,
        }
    }

    /// Every check passed already (in the service's `call`): the inner service's future, and
    /// a fresh DPoP nonce for its response when the proof's was of the previous step.
    pub(crate) fn calling(
        future: F,
        nonce: Option<Box<HeaderValue>>,
        settings: Arc<Settings<R>>,
        context: RequestContext,
    ) -> Self {
        Self {
            state: State::Calling { future, nonce },
            settings,
            context,
        }
    }

    /// Every check passed (in the service's `call`) and the proof's jti is being recorded by a
    /// store that did not answer at once; `nonce` says a fresh nonce goes with the response.
    pub(crate) fn recording(
        replay: ReplayFuture,
        request: Request<ReqBody>,
        inner: S,
        token: AccessToken,
        nonce: bool,
        settings: Arc<Settings<R>>,
        context: RequestContext,
    ) -> Self {
        Self {
            state: State::Recording {
                replay,
                parked: Some(Box::new(Parked {
                    request,
                    inner,
                    checked: Checked {
                        certificate: None,
                        source: CertificateSource::Configured,
                        proof: None,
                    },
                })),
                token: Some(token),
                nonce,
            },
            settings,
            context,
        }
    }

    pub(crate) fn rejected(
        error: AuthError,
        settings: Arc<Settings<R>>,
        context: RequestContext,
    ) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            settings,
            context,
        }
    }
}

impl<VF, S, ReqBody, F, R> fmt::Debug for ResponseFuture<VF, S, ReqBody, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Validating { .. } => "validating",
            State::Recording { .. } => "recording",
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<VF, S, ReqBody, F, ResBody, E, R> Future for ResponseFuture<VF, S, ReqBody, F, R>
where
    VF: Future<Output = Result<AccessToken, AuthError>>,
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
    R: RejectionResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, E>;

    // The common case, a request whose checks all passed in `call` (a cache hit), is the
    // `Calling` arm alone: small enough to be inlined into the caller's poll, where the inner
    // service's response is copied once rather than twice (144 bytes, a `memcpy` call, in the
    // load test's server; BENCHMARKS.md, issue 26). The other states are driven by `advance`,
    // out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Calling { future, nonce } = this.state.as_mut().project() {
                let mut poll = future.poll(cx);
                if let Poll::Ready(output) = &mut poll {
                    count_response(output, this.context.scheme);
                    if let (Ok(response), Some(nonce)) = (output, nonce.take()) {
                        response.headers_mut().insert(DPOP_NONCE.clone(), *nonce);
                    }
                    this.state.set(State::Done);
                }
                return poll;
            }
            if let Some(rejection) = ready!(advance(
                this.state.as_mut(),
                this.settings,
                this.context,
                cx
            )) {
                return Poll::Ready(Ok(rejected(rejection, this.settings, *this.context)));
            }
        }
    }
}

/// Drives the states before `Calling`: `Ready(None)` once the inner service is called (the
/// state is `Calling`), `Ready(Some(error))` when the request is refused (the state is `Done`).
#[inline(never)]
fn advance<VF, S, ReqBody, F, ResBody, E, R>(
    mut state: Pin<&mut State<VF, S, ReqBody, F>>,
    settings: &Settings<R>,
    context: &mut RequestContext,
    cx: &mut Context<'_>,
) -> Poll<Option<AuthError>>
where
    VF: Future<Output = Result<AccessToken, AuthError>>,
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = E, Future = F>,
{
    let rejection = match state.as_mut().project() {
        StateProj::Validating { validation, parked } => {
            let outcome = ready!(validation.poll(cx));
            match parked.take() {
                Some(mut parked) => {
                    let checked = &parked.checked;
                    let result = outcome.and_then(|token| {
                        settings
                            .policy
                            .authorize(
                                &token,
                                checked.certificate.as_ref(),
                                checked.source,
                                checked.proof.as_ref().map(|(proof, _)| proof),
                            )
                            .map(|()| token)
                    });
                    match result {
                        Ok(token) => {
                            // The jti is recorded only now that everything else passed.
                            let proof = parked.checked.proof.take();
                            let next = match (proof, &settings.policy.dpop) {
                                (Some((proof, nonce)), Some(dpop)) => State::Recording {
                                    replay: dpop.record_future(&proof),
                                    parked: Some(parked),
                                    token: Some(token),
                                    nonce,
                                },
                                _ => call(*parked, token, None),
                            };
                            state.set(next);
                            return Poll::Ready(None);
                        }
                        Err(error) => {
                            context.grpc = is_grpc(parked.request.headers());
                            error
                        }
                    }
                }
                // Unreachable: the state is left as soon as it is taken.
                None => AuthError::polled_after_completion(),
            }
        }
        StateProj::Recording {
            replay,
            parked,
            token,
            nonce,
        } => {
            let outcome = replay_outcome(ready!(Pin::new(replay).poll(cx)));
            match (outcome, parked.take(), token.take()) {
                (Ok(()), Some(parked), Some(token)) => {
                    let nonce = match (*nonce, &settings.policy.dpop) {
                        (true, Some(dpop)) => dpop.nonce_header().map(Box::new),
                        _ => None,
                    };
                    state.set(call(*parked, token, nonce));
                    return Poll::Ready(None);
                }
                (Err(error), Some(parked), _) => {
                    context.grpc = is_grpc(parked.request.headers());
                    error
                }
                (Err(error), None, _) => error,
                _ => AuthError::polled_after_completion(),
            }
        }
        StateProj::Rejected { error } => error
            .take()
            .unwrap_or_else(AuthError::polled_after_completion),
        // `Calling` is the caller's; here only when it was left already.
        StateProj::Calling { .. } | StateProj::Done => AuthError::polled_after_completion(),
    };
    state.set(State::Done);
    Poll::Ready(Some(rejection))
}

/// The rejection response for `error`, counted.
#[cold]
fn rejected<B, R: RejectionResponse<B>>(
    error: AuthError,
    settings: &Settings<R>,
    context: RequestContext,
) -> Response<B> {
    metrics::request_rejected(error.kind(), metrics_scheme(context.scheme));
    settings.reject(error, context)
}

/// Hands the request, with its validated token, to the inner service.
fn call<VF, S, ReqBody, F>(
    parked: Parked<S, ReqBody>,
    token: AccessToken,
    nonce: Option<Box<HeaderValue>>,
) -> State<VF, S, ReqBody, F>
where
    S: Service<Request<ReqBody>, Future = F>,
{
    let Parked {
        mut request,
        mut inner,
        ..
    } = parked;
    request.extensions_mut().insert(token);
    State::Calling {
        future: inner.call(request),
        nonce,
    }
}
