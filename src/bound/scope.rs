//! Route-level scope requirements.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{check_scopes, scope_challenge, trace_rejection};
use crate::challenge::{is_grpc, reject, ChallengeParams};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::token::AccessToken;

/// Requires scopes of the [`AccessToken`] a [`CertBoundLayer`](super::CertBoundLayer) further
/// out has validated: `403 insufficient_scope` with `scope="..."` when one is missing, `500` when
/// no token was validated (the outer layer is missing: a misconfiguration).
///
/// Use it on the routes that need more than the whole API does, e.g. with axum
/// `.route("/admin", get(handler).layer(RequireScopeLayer::new(["admin"])?))`.
#[derive(Clone)]
#[must_use]
pub struct RequireScopeLayer {
    scopes: Arc<Scopes>,
}

#[derive(Debug)]
struct Scopes {
    required: Vec<String>,
    challenge: String,
}

impl RequireScopeLayer {
    /// Requires every scope in `scopes`.
    ///
    /// # Errors
    /// When a scope is not an RFC 6749 §3.3 scope token.
    pub fn new<I>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let required: Vec<String> = scopes.into_iter().map(Into::into).collect();
        let challenge = scope_challenge(&required)?;
        Ok(Self {
            scopes: Arc::new(Scopes {
                required,
                challenge,
            }),
        })
    }
}

impl fmt::Debug for RequireScopeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeLayer")
            .field("scopes", &self.scopes.required)
            .finish()
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            scopes: Arc::clone(&self.scopes),
        }
    }
}

/// The service of [`RequireScopeLayer`].
#[derive(Clone)]
pub struct RequireScope<S> {
    inner: S,
    scopes: Arc<Scopes>,
}

impl<S: fmt::Debug> fmt::Debug for RequireScope<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("inner", &self.inner)
            .field("scopes", &self.scopes.required)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = scope_future::RequireScopeFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let outcome = match request.extensions().get::<AccessToken>() {
            Some(token) => check_scopes(token, &self.scopes.required),
            None => Err(AuthError::with_detail(
                AuthErrorKind::Misconfigured,
                "RequireScopeLayer without a CertBoundLayer in front of it",
            )),
        };
        match outcome {
            Ok(()) => scope_future::RequireScopeFuture::inner(self.inner.call(request)),
            Err(error) => {
                trace_rejection(&error);
                let params = ChallengeParams {
                    realm: None,
                    scope: Some(&self.scopes.challenge),
                };
                scope_future::RequireScopeFuture::ready(reject(
                    error,
                    params,
                    is_grpc(request.headers()),
                ))
            }
        }
    }
}

/// A future that is either the inner service's or an immediate rejection.
pub(crate) mod scope_future {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http::Response;
    use pin_project_lite::pin_project;

    pin_project! {
        /// Response future of [`RequireScope`](super::RequireScope).
        pub struct RequireScopeFuture<F, B, E> {
            #[pin]
            state: State<F, B, E>,
        }
    }

    pin_project! {
        #[project = StateProj]
        enum State<F, B, E> {
            Inner { #[pin] future: F },
            Ready { response: Option<Result<Response<B>, E>> },
        }
    }

    impl<F, B, E> RequireScopeFuture<F, B, E> {
        pub(crate) fn inner(future: F) -> Self {
            Self {
                state: State::Inner { future },
            }
        }

        pub(crate) fn ready(response: Response<B>) -> Self {
            Self {
                state: State::Ready {
                    response: Some(Ok(response)),
                },
            }
        }
    }

    impl<F, B, E> std::fmt::Debug for RequireScopeFuture<F, B, E> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("RequireScopeFuture")
        }
    }

    impl<F, B: Default, E> Future for RequireScopeFuture<F, B, E>
    where
        F: Future<Output = Result<Response<B>, E>>,
    {
        type Output = Result<Response<B>, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.project().state.project() {
                StateProj::Inner { future } => future.poll(cx),
                StateProj::Ready { response } => Poll::Ready(
                    response
                        .take()
                        .unwrap_or_else(|| Ok(Response::new(B::default()))),
                ),
            }
        }
    }
}
