//! [`RequireScopeLayer`](crate::RequireScopeLayer): route-level scope requirements behind a
//! [`BoundTokenLayer`](crate::BoundTokenLayer).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::challenge::gate::{self, Gate};
use crate::challenge::{reject, ChallengeParams, DefaultRejection, RejectionResponse, Scheme};
use crate::error::AuthError;

pub(crate) mod layer;

#[derive(Debug, Clone)]
pub(crate) struct Scopes<R> {
    pub(crate) required: Vec<String>,
    pub(crate) challenge: String,
    pub(crate) realm: Option<String>,
    /// Where the protected resource metadata is (RFC 9728 §5.1), for the challenge.
    pub(crate) resource_metadata: Option<String>,
    pub(crate) rejection: R,
}

impl<R> Scopes<R> {
    fn reject<B>(&self, error: AuthError, grpc: bool, scheme: Scheme) -> Response<B>
    where
        R: RejectionResponse<B>,
    {
        let params = ChallengeParams {
            realm: self.realm.as_deref(),
            scope: Some(&self.challenge),
            scheme,
            resource_metadata: self.resource_metadata.as_deref(),
            ..ChallengeParams::default()
        };
        reject(error, params, grpc, &self.rejection)
    }
}

/// The service of [`RequireScopeLayer`](crate::RequireScopeLayer).
pub struct RequireScope<S, R = DefaultRejection> {
    pub(crate) inner: S,
    pub(crate) scopes: Arc<Scopes<R>>,
}

impl<S: Clone, R> Clone for RequireScope<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for RequireScope<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("inner", &self.inner)
            .field("scopes", &self.scopes.required)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let checked = gate::check(
            &request,
            "RequireScopeLayer without a BoundTokenLayer in front of it",
            |token| token.require_scopes(&self.scopes.required),
        );
        ResponseFuture {
            state: Gate::new(checked, || self.inner.call(request)),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

pin_project! {
    /// Response future of [`RequireScope`].
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: Gate<F>,
        scopes: Arc<Scopes<R>>,
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    R: RejectionResponse<B>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.state.poll_gate(cx)) {
            Ok(output) => output,
            Err(refusal) => Ok(this
                .scopes
                .reject(refusal.error, refusal.grpc, refusal.scheme)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::AccessToken;
    use crate::RequireScopeLayer;
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Waker;
    use tower_layer::Layer as _;

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

    #[test]
    fn a_future_polled_after_completion_never_succeeds() {
        let layer = RequireScopeLayer::new(["read"]).unwrap();
        let mut svc = layer.layer(ok_service());
        for scope in ["read", "write"] {
            let mut future = pin!(svc.call(request(Some(scope))));
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(Ok(_first)) = future.as_mut().poll(&mut cx) else {
                panic!("ready at once");
            };
            let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else {
                panic!("ready at once");
            };
            assert_eq!(again.status(), 500, "after a {scope} request");
        }
    }

    #[test]
    fn a_custom_rejection_body_keeps_the_status_and_challenge() {
        let layer = RequireScopeLayer::new(["admin"])
            .unwrap()
            .with_rejection_response(|rejection: &crate::challenge::Rejection<'_>| {
                Response::new(format!("denied: {}", rejection.kind().description()))
            });
        let mut svc = layer.layer(ok_service());
        let res = run(svc.call(request(Some("read")))).unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(res.body(), "denied: insufficient scope");
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"admin\""));
    }
}
