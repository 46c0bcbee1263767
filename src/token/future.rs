//! [`TokenFuture`]: the future of the built-in validators.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::AccessToken;
use crate::error::AuthError;

type Boxed = Pin<Box<dyn Future<Output = Result<AccessToken, AuthError>> + Send>>;

/// The future of [`JwtValidator::validate`](crate::JwtValidator) and of the introspection
/// validator: ready at once when the answer is at hand (keys or a cached result: no
/// allocation), boxed only when something must be fetched first.
pub struct TokenFuture(State);

enum State {
    Ready(Option<Result<AccessToken, AuthError>>),
    Fetching(Boxed),
}

impl TokenFuture {
    /// A future that is already complete.
    pub(crate) fn ready(result: Result<AccessToken, AuthError>) -> Self {
        Self(State::Ready(Some(result)))
    }

    /// A future that must fetch (keys, an introspection answer) before it completes.
    pub(crate) fn fetching(
        future: impl Future<Output = Result<AccessToken, AuthError>> + Send + 'static,
    ) -> Self {
        Self(State::Fetching(Box::pin(future)))
    }

    /// The result, if it is at hand without polling (then the future is complete, and polling
    /// it again is answered as any poll after completion). The layer uses it to finish a cache
    /// hit in its `call`, without parking the request in its own future first.
    pub(crate) fn take_ready(&mut self) -> Option<Result<AccessToken, AuthError>> {
        match &mut self.0 {
            State::Ready(result) => result.take(),
            State::Fetching(_) => None,
        }
    }
}

impl fmt::Debug for TokenFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            State::Ready(_) => "ready",
            State::Fetching(_) => "fetching",
        };
        f.debug_tuple("TokenFuture").field(&state).finish()
    }
}

impl Future for TokenFuture {
    type Output = Result<AccessToken, AuthError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            // Polled again after completion: a contract violation, answered with an error
            // rather than a panic.
            State::Ready(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(AuthError::polled_after_completion())),
            ),
            State::Fetching(fut) => fut.as_mut().poll(cx),
        }
    }
}
