use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{trace_rejection, Policy};
use crate::challenge::reject;
use crate::error::{AuthError, AuthErrorKind};
use crate::peer::ClientCertificate;
use crate::token::AccessToken;

pin_project! {
    /// Response future of [`CertBound`](super::CertBound).
    pub struct ResponseFuture<VF, S, ReqBody, F> {
        #[pin]
        state: State<VF, S, ReqBody, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<VF, S, ReqBody, F> {
        Validating {
            #[pin]
            validation: VF,
            request: Option<Request<ReqBody>>,
            inner: Option<S>,
            certificate: Option<ClientCertificate>,
            policy: Arc<Policy>,
            grpc: bool,
        },
        Calling {
            #[pin]
            future: F,
        },
        Rejected {
            error: Option<AuthError>,
            policy: Arc<Policy>,
            grpc: bool,
        },
    }
}

impl<VF, S, ReqBody, F> ResponseFuture<VF, S, ReqBody, F> {
    pub(crate) fn validating(
        validation: VF,
        request: Request<ReqBody>,
        inner: S,
        certificate: Option<ClientCertificate>,
        policy: Arc<Policy>,
        grpc: bool,
    ) -> Self {
        Self {
            state: State::Validating {
                validation,
                request: Some(request),
                inner: Some(inner),
                certificate,
                policy,
                grpc,
            },
        }
    }

    pub(crate) fn rejected(error: AuthError, policy: Arc<Policy>, grpc: bool) -> Self {
        Self {
            state: State::Rejected {
                error: Some(error),
                policy,
                grpc,
            },
        }
    }
}

impl<VF, S, ReqBody, F> fmt::Debug for ResponseFuture<VF, S, ReqBody, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Validating { .. } => "validating",
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<VF, S, ReqBody, F, ResBody, E> Future for ResponseFuture<VF, S, ReqBody, F>
where
    VF: Future<Output = Result<AccessToken, AuthError>>,
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Validating {
                    validation,
                    request,
                    inner,
                    certificate,
                    policy,
                    grpc,
                } => {
                    let result = ready!(validation.poll(cx)).and_then(|token| {
                        policy
                            .authorize(&token, certificate.as_ref())
                            .map(|()| token)
                    });
                    let (token, mut request, mut inner) =
                        match (result, request.take(), inner.take()) {
                            (Ok(token), Some(request), Some(inner)) => (token, request, inner),
                            (Err(error), _, _) => {
                                trace_rejection(&error);
                                return Poll::Ready(Ok(reject(error, policy.params(), *grpc)));
                            }
                            // Polled again after completion: never panic.
                            _ => {
                                let error = AuthError::new(AuthErrorKind::Misconfigured);
                                return Poll::Ready(Ok(reject(error, policy.params(), *grpc)));
                            }
                        };
                    request.extensions_mut().insert(token);
                    let future = inner.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Rejected {
                    error,
                    policy,
                    grpc,
                } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| AuthError::new(AuthErrorKind::Misconfigured));
                    trace_rejection(&error);
                    return Poll::Ready(Ok(reject(error, policy.params(), *grpc)));
                }
            }
        }
    }
}
