use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::Settings;
use crate::certificate::ClientCertificate;
use crate::challenge::RejectionResponse;
use crate::error::AuthError;
use crate::token::AccessToken;

pin_project! {
    /// Response future of [`BoundToken`](super::BoundToken).
    pub struct ResponseFuture<VF, S, ReqBody, F, R> {
        #[pin]
        state: State<VF, S, ReqBody, F>,
        settings: Arc<Settings<R>>,
        grpc: bool,
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
        },
        Calling {
            #[pin]
            future: F,
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
        certificate: Option<ClientCertificate>,
        settings: Arc<Settings<R>>,
        grpc: bool,
    ) -> Self {
        Self {
            state: State::Validating {
                validation,
                request: Some(request),
                inner: Some(inner),
                certificate,
            },
            settings,
            grpc,
        }
    }

    pub(crate) fn rejected(error: AuthError, settings: Arc<Settings<R>>, grpc: bool) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            settings,
            grpc,
        }
    }
}

impl<VF, S, ReqBody, F, R> fmt::Debug for ResponseFuture<VF, S, ReqBody, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Validating { .. } => "validating",
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let rejection = match this.state.as_mut().project() {
                StateProj::Validating {
                    validation,
                    request,
                    inner,
                    certificate,
                } => {
                    let result = ready!(validation.poll(cx)).and_then(|token| {
                        this.settings
                            .policy
                            .authorize(&token, certificate.as_ref())
                            .map(|()| token)
                    });
                    match (result, request.take(), inner.take()) {
                        (Ok(token), Some(mut request), Some(mut inner)) => {
                            request.extensions_mut().insert(token);
                            let future = inner.call(request);
                            this.state.set(State::Calling { future });
                            continue;
                        }
                        (Err(error), _, _) => error,
                        // Unreachable: the state is left as soon as they are taken.
                        _ => AuthError::polled_after_completion(),
                    }
                }
                StateProj::Calling { future } => {
                    let output = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
                StateProj::Rejected { error } => error
                    .take()
                    .unwrap_or_else(AuthError::polled_after_completion),
                StateProj::Done => AuthError::polled_after_completion(),
            };
            this.state.set(State::Done);
            return Poll::Ready(Ok(this.settings.reject(rejection, *this.grpc)));
        }
    }
}
