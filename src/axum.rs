//! axum extractors (feature `axum`).
//!
//! - [`AccessToken`] itself is an extractor: the token the [`BoundTokenLayer`](crate::BoundTokenLayer)
//!   validated for this request.
//! - [`TokenClaims<T>`] deserializes the token's claims into an application type.
//!
//! A handler that uses them on a route without the layer answers `500`: the server is
//! misconfigured, and that is not the client's fault.

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::challenge::{is_grpc, reject, ChallengeParams, DefaultRejection};
use crate::error::{AuthError, AuthErrorKind};
use crate::token::AccessToken;

/// Why an extractor failed.
#[derive(Debug, Clone)]
pub struct TokenRejection {
    error: AuthError,
    grpc: bool,
}

impl TokenRejection {
    fn new(error: AuthError, parts: &Parts) -> Self {
        Self {
            error,
            grpc: is_grpc(&parts.headers),
        }
    }

    /// The underlying error.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl IntoResponse for TokenRejection {
    fn into_response(self) -> Response {
        reject(
            self.error,
            ChallengeParams::default(),
            self.grpc,
            &DefaultRejection,
        )
    }
}

impl std::fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for TokenRejection {}

fn token_of(parts: &Parts) -> Result<&AccessToken, TokenRejection> {
    parts.extensions.get::<AccessToken>().ok_or_else(|| {
        let error = AuthError::with_detail(
            AuthErrorKind::Misconfigured,
            "AccessToken extractor on a route without BoundTokenLayer",
        );
        TokenRejection::new(error, parts)
    })
}

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = TokenRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        token_of(parts).cloned()
    }
}

/// The validated token's claims as `T`.
///
/// Claims that do not fit `T` are `401 invalid_token`: the token, though valid, lacks what
/// this route needs. [`AccessToken`] itself is an extractor too; either on a route without the
/// layer answers `500`: the server is misconfigured, and that is not the client's fault.
///
/// # Example
/// ```
/// use axum::{routing::get, Router};
/// use certbound::{AccessToken, TokenClaims};
///
/// #[derive(serde::Deserialize)]
/// struct Claims { tenant: String }
///
/// async fn whoami(token: AccessToken) -> String {
///     format!("{} via {}", token.subject().unwrap_or("?"), token.client_id().unwrap_or("?"))
/// }
///
/// async fn tenant(TokenClaims(claims): TokenClaims<Claims>) -> String {
///     claims.tenant
/// }
///
/// let app: Router = Router::new().route("/whoami", get(whoami)).route("/tenant", get(tenant));
/// ```
#[derive(Debug, Clone)]
pub struct TokenClaims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for TokenClaims<T> {
    type Rejection = TokenRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        token_of(parts)?
            .deserialize_claims()
            .map(TokenClaims)
            .map_err(|_| {
                let error = AuthError::with_detail(
                    AuthErrorKind::InvalidToken,
                    "token claims do not fit the handler's claims type",
                );
                TokenRejection::new(error, parts)
            })
    }
}
