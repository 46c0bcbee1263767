//! What the route-level requirements behind a [`BoundTokenLayer`](crate::BoundTokenLayer)
//! share (`RequireScopeLayer`, `RequireStepUpLayer`): the check of the request's validated
//! token, and the response future that either runs the inner service or renders the refusal.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Request;
use pin_project_lite::pin_project;

use super::{is_grpc, Scheme};
use crate::error::{AuthError, AuthErrorKind};
use crate::token::AccessToken;

/// A request refused by a route-level requirement: why, and how to answer (gRPC or not, the
/// scheme the token was presented with).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: AuthError,
    pub(crate) grpc: bool,
    pub(crate) scheme: Scheme,
}

/// Checks the request's validated token with `check`. Without one, the route has no
/// `BoundTokenLayer` in front of the requirement's layer: the server is misconfigured (`500`,
/// with `misconfigured` as the detail), not the client.
pub(crate) fn check<B>(
    request: &Request<B>,
    misconfigured: &'static str,
    check: impl FnOnce(&AccessToken) -> Result<(), AuthError>,
) -> Result<(), Refusal> {
    let (outcome, scheme) = match request.extensions().get::<AccessToken>() {
        // The challenge names the scheme the token was presented with.
        Some(token) => (
            check(token),
            if token.dpop_thumbprint().is_some() {
                Scheme::Dpop
            } else {
                Scheme::Bearer
            },
        ),
        None => (
            Err(AuthError::with_detail(
                AuthErrorKind::Misconfigured,
                misconfigured,
            )),
            Scheme::Unknown,
        ),
    };
    outcome.map_err(|error| Refusal {
        error,
        grpc: is_grpc(request.headers()),
        scheme,
    })
}

pin_project! {
    /// The inner service's future, or a refusal to render.
    #[project = GateProj]
    pub(crate) enum Gate<F> {
        Open { #[pin] future: F },
        Refused { refusal: Option<Refusal> },
        Done,
    }
}

impl<F: Future> Gate<F> {
    pub(crate) fn new(checked: Result<(), Refusal>, call: impl FnOnce() -> F) -> Self {
        match checked {
            Ok(()) => Gate::Open { future: call() },
            Err(refusal) => Gate::Refused {
                refusal: Some(refusal),
            },
        }
    }

    /// The inner future's output, or the refusal. Polled after completion: a refusal, never a
    /// success.
    pub(crate) fn poll_gate(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<F::Output, Refusal>> {
        let refusal = match self.as_mut().project() {
            GateProj::Open { future } => {
                let output = ready!(future.poll(cx));
                self.set(Gate::Done);
                return Poll::Ready(Ok(output));
            }
            GateProj::Refused { refusal } => refusal.take(),
            GateProj::Done => None,
        };
        self.set(Gate::Done);
        Poll::Ready(Err(refusal.unwrap_or_else(|| Refusal {
            error: AuthError::polled_after_completion(),
            grpc: false,
            scheme: Scheme::Unknown,
        })))
    }
}
