//! Validated access tokens ([`AccessToken`]) and the [`ValidateToken`] extension point, with
//! certbound's two validators: [`JwtValidator`](crate::JwtValidator) validates JWT access tokens (RFC 9068) locally;
//! `IntrospectionValidator` (feature `introspection`) asks the authorization server about opaque
//! tokens (RFC 7662); [`Issuers`](crate::Issuers) routes each token to the validator of its
//! issuer among several.
//!
//! A validator turns the token into an `AccessToken` or an [`AuthError`](crate::AuthError); the
//! layer then checks the token's binding to the client certificate.
//!
//! # Example
//! ```
//! use certbound::token::{PresentedToken, TokenKey};
//! use certbound::{AccessToken, AuthErrorKind};
//! use serde_json::json;
//!
//! let claims = json!({
//!     "sub": "alice",
//!     "client_id": "app",
//!     "scope": "read write",
//!     "cnf": { "x5t#S256": "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0" },
//! });
//! let token = AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default())?;
//! assert_eq!(token.subject(), Some("alice"));
//! assert!(token.has_scope("write"));
//! assert_eq!(
//!     token.thumbprint().map(ToString::to_string).as_deref(),
//!     Some("A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0")
//! );
//!
//! // A malformed binding is never read as "no binding".
//! let bad = json!({ "cnf": { "x5t#S256": 42 } });
//! let error = AccessToken::from_claims(bad.as_object().cloned().unwrap_or_default()).unwrap_err();
//! assert_eq!(error.kind(), AuthErrorKind::InvalidToken);
//!
//! // Validators key their caches by the token's SHA-256, never by the token.
//! let presented = PresentedToken::new("some.access.token", None);
//! assert!(presented.key() == TokenKey::of("some.access.token"));
//! assert!(!format!("{presented:?}").contains("access"));
//! # Ok::<(), certbound::AuthError>(())
//! ```

pub(crate) mod access;
pub(crate) mod fields;
mod future;
#[cfg(feature = "introspection")]
pub(crate) mod introspection;
pub(crate) mod issuers;
pub(crate) mod jwt;
pub(crate) mod validate;

pub use crate::support::token_key::TokenKey;
pub(crate) use access::AccessToken;
pub use access::Binding;
pub use future::TokenFuture;
#[cfg(feature = "introspection")]
pub use introspection::{DiscoveryError, IntrospectionValidatorBuilder};
pub use issuers::{IssuersBuilder, ResolveError, ResolveIssuer};
pub use jwt::{JwtValidatorBuilder, KeyFetchError};
pub use validate::PresentedToken;
pub(crate) use validate::ValidateToken;
