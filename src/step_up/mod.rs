//! [`RequireStepUpLayer`](crate::RequireStepUpLayer): route-level step-up authentication
//! requirements (RFC 9470) behind a [`BoundTokenLayer`](crate::BoundTokenLayer).
//!
//! A route can ask for more than a valid token: a user authentication of an acceptable class
//! (the token's `acr`), or a recent one (its `auth_time`, no older than `max_age`). A token that
//! falls short is refused with `401` and
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="…", acr_values="…", max_age=…`
//! (the `DPoP` scheme when the client used DPoP; gRPC: status 16 with the same challenge), the
//! signal for the client to send the user back to the authorization server with these
//! `acr_values` and `max_age`. A token without `acr` (or without `auth_time` when `max_age` is
//! set) does not meet the requirement.
//!
//! # Example
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! use certbound::{AccessToken, RequireStepUpLayer};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let step_up = RequireStepUpLayer::acr_values(["urn:example:mfa"])?
//!     .max_age(Duration::from_secs(300));
//! let service = ServiceBuilder::new()
//!     .layer(step_up)
//!     .service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new("transferred".to_owned()))
//!     });
//!
//! // What a `BoundTokenLayer` further out leaves in the request's extensions.
//! let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
//! let request = |claims: serde_json::Value| -> Result<Request<String>, Box<dyn std::error::Error>> {
//!     let token = AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default())?;
//!     let mut request = Request::new(String::new());
//!     request.extensions_mut().insert(token);
//!     Ok(request)
//! };
//!
//! // A password login an hour ago: not enough.
//! let weak = request(serde_json::json!({ "acr": "urn:example:pwd", "auth_time": now - 3600 }))?;
//! let response = service.clone().oneshot(weak).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     "Bearer error=\"insufficient_user_authentication\", \
//!      error_description=\"insufficient user authentication\", \
//!      acr_values=\"urn:example:mfa\", max_age=300"
//! );
//!
//! // A second factor a minute ago: served.
//! let strong = request(serde_json::json!({ "acr": "urn:example:mfa", "auth_time": now - 60 }))?;
//! assert_eq!(service.oneshot(strong).await?.status(), StatusCode::OK);
//! # Ok(()) }
//! ```

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
use crate::error::{AuthError, AuthErrorKind};
use crate::support::time::unix_now_i64;
use crate::token::AccessToken;

pub(crate) mod layer;

/// How far in the future an `auth_time` may be (clock skew between the authorization server
/// and this one) before it is refused.
const AUTH_TIME_LEEWAY: i64 = 60;

/// One route's requirement: at least one of `acr_values` (non-empty) and `max_age` is set.
#[derive(Debug, Clone)]
pub(crate) struct StepUp<R> {
    /// The acceptable `acr` values; empty when any (or none) will do.
    pub(crate) acr_values: Vec<String>,
    /// `acr_values` space-separated, for the challenge.
    pub(crate) acr_challenge: Option<String>,
    /// The greatest acceptable age of the authentication, in seconds.
    pub(crate) max_age: Option<u64>,
    pub(crate) realm: Option<String>,
    /// Where the protected resource metadata is (RFC 9728 §5.1), for the challenge.
    pub(crate) resource_metadata: Option<String>,
    pub(crate) rejection: R,
}

impl<R> StepUp<R> {
    /// `Ok` when `token` meets the requirement at `now` (seconds since the Unix epoch).
    fn check(&self, token: &AccessToken, now: i64) -> Result<(), AuthError> {
        let refuse = |detail| {
            Err(AuthError::with_detail(
                AuthErrorKind::InsufficientUserAuthentication,
                detail,
            ))
        };
        if !self.acr_values.is_empty() {
            let Some(acr) = token.acr() else {
                return refuse("step-up: the token has no acr");
            };
            if !self.acr_values.iter().any(|accepted| accepted == acr) {
                return refuse("step-up: acr not among the acceptable values");
            }
        }
        if let Some(max_age) = self.max_age {
            let Some(auth_time) = token.auth_time() else {
                return refuse("step-up: the token has no auth_time");
            };
            if auth_time > now.saturating_add(AUTH_TIME_LEEWAY) {
                return refuse("step-up: auth_time is in the future");
            }
            if i128::from(now) - i128::from(auth_time) > i128::from(max_age) {
                return refuse("step-up: authentication older than max_age");
            }
        }
        Ok(())
    }

    fn reject<B>(&self, error: AuthError, grpc: bool, scheme: Scheme) -> Response<B>
    where
        R: RejectionResponse<B>,
    {
        let params = ChallengeParams {
            realm: self.realm.as_deref(),
            acr_values: self.acr_challenge.as_deref(),
            max_age: self.max_age,
            scheme,
            resource_metadata: self.resource_metadata.as_deref(),
            ..ChallengeParams::default()
        };
        reject(error, params, grpc, &self.rejection)
    }
}

/// The service of [`RequireStepUpLayer`](crate::RequireStepUpLayer).
pub struct RequireStepUp<S, R = DefaultRejection> {
    pub(crate) inner: S,
    pub(crate) step_up: Arc<StepUp<R>>,
}

impl<S: Clone, R> Clone for RequireStepUp<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            step_up: Arc::clone(&self.step_up),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for RequireStepUp<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireStepUp")
            .field("inner", &self.inner)
            .field("acr_values", &self.step_up.acr_values)
            .field("max_age", &self.step_up.max_age)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireStepUp<S, R>
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
            "RequireStepUpLayer without a BoundTokenLayer in front of it",
            |token| self.step_up.check(token, unix_now_i64()),
        );
        ResponseFuture {
            state: Gate::new(checked, || self.inner.call(request)),
            step_up: Arc::clone(&self.step_up),
        }
    }
}

pin_project! {
    /// Response future of [`RequireStepUp`].
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: Gate<F>,
        step_up: Arc<StepUp<R>>,
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
                .step_up
                .reject(refusal.error, refusal.grpc, refusal.scheme)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequireStepUpLayer;
    use serde_json::{json, Value};
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Waker;
    use std::time::Duration;
    use tower_layer::Layer as _;

    const MFA: &str = "urn:mace:incommon:iap:silver";
    const HOUR: Duration = Duration::from_secs(3600);
    const NOW: i64 = 1_700_000_000;
    const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

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

    fn token(claims: Value) -> AccessToken {
        AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default()).unwrap()
    }

    fn request(claims: Option<Value>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(claims) = claims {
            req.extensions_mut().insert(token(claims));
        }
        req
    }

    /// The detail of the refusal of `claims` at `NOW`, or `None` when they meet `layer`'s
    /// requirement.
    fn refusal(layer: &RequireStepUpLayer, claims: Value) -> Option<&'static str> {
        let svc = layer.layer(());
        match svc.step_up.check(&token(claims), NOW) {
            Ok(()) => None,
            Err(error) => {
                assert_eq!(error.kind(), AuthErrorKind::InsufficientUserAuthentication);
                Some(error.detail())
            }
        }
    }

    fn challenge(res: &Response<String>) -> &str {
        res.headers()["www-authenticate"].to_str().unwrap()
    }

    #[test]
    fn a_missing_or_unlisted_acr_is_refused_and_a_listed_one_accepted() {
        let layer = RequireStepUpLayer::acr_values([MFA, "urn:example:hw"]).unwrap();
        assert_eq!(
            refusal(&layer, json!({})),
            Some("step-up: the token has no acr")
        );
        assert_eq!(
            refusal(&layer, json!({"acr": 3})),
            Some("step-up: the token has no acr")
        );
        for wrong in ["urn:example:pwd", "urn:mace:incommon:iap:silve", ""] {
            assert_eq!(
                refusal(&layer, json!({ "acr": wrong })),
                Some("step-up: acr not among the acceptable values"),
                "{wrong}"
            );
        }
        assert_eq!(refusal(&layer, json!({ "acr": MFA })), None);
        assert_eq!(refusal(&layer, json!({"acr": "urn:example:hw"})), None);
        // No max_age: auth_time is not looked at.
        assert_eq!(refusal(&layer, json!({"acr": MFA, "auth_time": 0})), None);
    }

    #[test]
    fn max_age_refuses_a_missing_old_or_future_auth_time() {
        let layer = RequireStepUpLayer::authenticated_within(Duration::from_millis(300_900));
        let at = |auth_time: Value| refusal(&layer, json!({ "auth_time": auth_time }));
        assert_eq!(
            refusal(&layer, json!({})),
            Some("step-up: the token has no auth_time")
        );
        assert_eq!(
            at(json!("1700000000")),
            Some("step-up: the token has no auth_time")
        );
        assert_eq!(
            at(json!(NOW - 301)),
            Some("step-up: authentication older than max_age")
        );
        assert_eq!(
            at(json!(i64::MIN)),
            Some("step-up: authentication older than max_age")
        );
        assert_eq!(
            at(json!(NOW - 300)),
            None,
            "exactly max_age (fraction dropped)"
        );
        assert_eq!(at(json!(NOW - 1)), None);
        assert_eq!(at(json!(NOW + 60)), None, "within the clock-skew leeway");
        assert_eq!(
            at(json!(NOW + 61)),
            Some("step-up: auth_time is in the future")
        );
        assert_eq!(
            at(json!(i64::MAX)),
            Some("step-up: auth_time is in the future")
        );
        // No acr requirement: any acr, or none, will do.
        assert_eq!(refusal(&layer, json!({"auth_time": NOW, "acr": "x"})), None);
    }

    #[test]
    fn acr_values_and_max_age_together_must_both_hold() {
        let layer = RequireStepUpLayer::acr_values([MFA]).unwrap().max_age(HOUR);
        assert_eq!(
            refusal(&layer, json!({"acr": MFA, "auth_time": NOW - 60})),
            None
        );
        assert_eq!(
            refusal(&layer, json!({ "acr": MFA })),
            Some("step-up: the token has no auth_time")
        );
        assert_eq!(
            refusal(&layer, json!({"acr": MFA, "auth_time": NOW - 3601})),
            Some("step-up: authentication older than max_age")
        );
        assert_eq!(
            refusal(&layer, json!({"acr": "urn:example:pwd", "auth_time": NOW})),
            Some("step-up: acr not among the acceptable values")
        );
    }

    #[test]
    fn a_refusal_is_unauthorized_with_the_acr_values_and_max_age_in_the_challenge() {
        let layer = RequireStepUpLayer::acr_values([MFA, "urn:example:hw"])
            .unwrap()
            .max_age(Duration::from_secs(300))
            .realm("api")
            .unwrap();
        let mut svc = layer.layer(ok_service());
        let res = run(svc.call(request(Some(json!({"acr": "urn:example:pwd"}))))).unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(
            challenge(&res),
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", acr_values=\"urn:mace:incommon:iap:silver urn:example:hw\", max_age=300"
        );
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(AuthErrorKind::InsufficientUserAuthentication)
        );
        let fresh = json!({ "acr": MFA, "auth_time": unix_now_i64() - 10 });
        assert_eq!(run(svc.call(request(Some(fresh)))).unwrap().status(), 200);
        let stale = json!({ "acr": MFA, "auth_time": unix_now_i64() - 301 });
        assert_eq!(run(svc.call(request(Some(stale)))).unwrap().status(), 401);
    }

    #[test]
    fn the_challenge_names_only_what_the_route_requires() {
        let mut svc =
            RequireStepUpLayer::authenticated_within(Duration::from_secs(60)).layer(ok_service());
        let res = run(svc.call(request(Some(json!({"acr": MFA}))))).unwrap();
        assert_eq!(
            challenge(&res),
            "Bearer error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", max_age=60"
        );
        let mut svc = RequireStepUpLayer::acr_values([MFA])
            .unwrap()
            .layer(ok_service());
        let res = run(svc.call(request(Some(json!({}))))).unwrap();
        assert_eq!(
            challenge(&res),
            "Bearer error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", acr_values=\"urn:mace:incommon:iap:silver\""
        );
    }

    #[test]
    fn a_dpop_bound_token_is_challenged_with_the_dpop_scheme() {
        let mut svc = RequireStepUpLayer::acr_values([MFA])
            .unwrap()
            .layer(ok_service());
        let res = run(svc.call(request(Some(json!({"cnf": {"jkt": TP}}))))).unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(
            challenge(&res),
            "DPoP error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", acr_values=\"urn:mace:incommon:iap:silver\""
        );
        assert_eq!(res.headers().get_all("www-authenticate").iter().count(), 1);
    }

    #[test]
    fn a_grpc_refusal_is_unauthenticated_with_the_same_challenge() {
        let mut svc = RequireStepUpLayer::acr_values([MFA])
            .unwrap()
            .max_age(HOUR)
            .layer(ok_service());
        let mut req = request(Some(json!({ "acr": MFA })));
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        let res = run(svc.call(req)).unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(
            res.headers()["grpc-message"],
            "insufficient user authentication"
        );
        assert_eq!(
            challenge(&res),
            "Bearer error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", acr_values=\"urn:mace:incommon:iap:silver\", max_age=3600"
        );
    }

    #[test]
    fn without_a_validated_token_the_server_is_misconfigured() {
        let mut svc = RequireStepUpLayer::acr_values([MFA])
            .unwrap()
            .layer(ok_service());
        let res = run(svc.call(request(None))).unwrap();
        assert_eq!(res.status(), 500);
        assert!(res.headers().get("www-authenticate").is_none());
    }

    #[test]
    fn acr_values_that_cannot_be_sent_in_the_challenge_are_refused() {
        let none: [&str; 0] = [];
        assert!(RequireStepUpLayer::acr_values(none).is_err());
        for bad in ["", "a b", "a\"b", "a\\b", "caf\u{e9}", "a\tb"] {
            assert!(RequireStepUpLayer::acr_values([bad]).is_err(), "{bad:?}");
        }
        assert!(RequireStepUpLayer::acr_values([MFA])
            .unwrap()
            .realm("a\"b")
            .is_err());
    }

    #[test]
    fn a_future_polled_after_completion_never_succeeds() {
        let layer = RequireStepUpLayer::acr_values([MFA]).unwrap();
        let mut svc = layer.layer(ok_service());
        for acr in [MFA, "urn:example:pwd"] {
            let mut future = pin!(svc.call(request(Some(json!({ "acr": acr })))));
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(Ok(_first)) = future.as_mut().poll(&mut cx) else {
                panic!("ready at once");
            };
            let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else {
                panic!("ready at once");
            };
            assert_eq!(again.status(), 500, "after an {acr} request");
        }
    }

    #[test]
    fn a_custom_rejection_body_keeps_the_status_and_challenge() {
        let layer = RequireStepUpLayer::authenticated_within(HOUR).with_rejection_response(
            |rejection: &crate::challenge::Rejection<'_>| {
                Response::new(format!("denied: {}", rejection.kind().description()))
            },
        );
        let mut svc = layer.layer(ok_service());
        let res = run(svc.call(request(Some(json!({}))))).unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.body(), "denied: insufficient user authentication");
        assert!(challenge(&res).ends_with(", max_age=3600"));
    }

    #[test]
    fn debug_output_shows_the_requirement() {
        let layer = RequireStepUpLayer::acr_values([MFA]).unwrap().max_age(HOUR);
        let debug = format!("{:?}", layer.layer(()));
        assert!(debug.contains(MFA) && debug.contains("3600"), "{debug}");
    }
}
