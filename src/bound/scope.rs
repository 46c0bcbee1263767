//! Route-level scope requirements.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{check_scopes, checked_realm, scope_challenge, trace_rejection};
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

#[derive(Debug, Clone)]
struct Scopes {
    required: Vec<String>,
    challenge: String,
    realm: Option<String>,
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
                realm: None,
            }),
        })
    }

    /// Adds `realm="..."` to this layer's challenges (give it the realm of the
    /// [`CertBoundLayer`](super::CertBoundLayer) in front).
    ///
    /// # Errors
    /// When the realm holds characters that would need escaping (`"`, `\`, controls).
    pub fn realm(mut self, realm: impl Into<String>) -> Result<Self, ConfigError> {
        let realm = checked_realm(realm.into())?;
        Arc::make_mut(&mut self.scopes).realm = Some(realm);
        Ok(self)
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
                    realm: self.scopes.realm.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Waker;

    fn run<F: Future>(fut: F) -> F::Output {
        // The services here never wait, so one poll settles them.
        match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => unreachable!("nothing here waits"),
        }
    }

    fn ok_service() -> impl Service<Request<()>, Response = Response<String>, Error = Infallible> {
        struct Hello;
        impl Service<Request<()>> for Hello {
            type Response = Response<String>;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Response<String>, Infallible>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                std::future::ready(Ok(Response::new("ok".into())))
            }
        }
        Hello
    }

    fn request(scope: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(scope) = scope {
            let claims = serde_json::json!({ "scope": scope });
            let token = AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default());
            req.extensions_mut().insert(token.unwrap());
        }
        req
    }

    #[test]
    fn missing_scope_is_forbidden_with_the_scope_and_realm() {
        let layer = RequireScopeLayer::new(["admin", "write"])
            .unwrap()
            .realm("api")
            .unwrap();
        let mut svc = layer.layer(ok_service());
        let res = run(svc.call(request(Some("read write")))).unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin write\""
        );
        let res = run(svc.call(request(Some("write admin")))).unwrap();
        assert_eq!(res.status(), 200);
    }

    #[test]
    fn without_a_validated_token_the_server_is_misconfigured() {
        let mut svc = RequireScopeLayer::new(["admin"])
            .unwrap()
            .layer(ok_service());
        assert_eq!(run(svc.call(request(None))).unwrap().status(), 500);
    }

    #[test]
    fn scopes_and_realms_that_need_escaping_are_refused() {
        assert!(RequireScopeLayer::new(["a b"]).is_err());
        assert!(RequireScopeLayer::new(["a\"b"]).is_err());
        assert!(RequireScopeLayer::new(["ok"])
            .unwrap()
            .realm("a\\b")
            .is_err());
    }
}
