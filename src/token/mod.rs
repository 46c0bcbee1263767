//! Validated access tokens ([`AccessToken`](crate::AccessToken)) and the
//! [`ValidateToken`](crate::ValidateToken) extension point, with certbound's two validators:
//! [`JwtValidator`](crate::JwtValidator) validates JWT access tokens (RFC 9068) locally;
//! `IntrospectionValidator` (feature `introspection`) asks the authorization server about opaque
//! tokens (RFC 7662).
//!
//! A validator turns the token into an `AccessToken` or an [`AuthError`](crate::AuthError); the
//! layer then checks the token's binding to the client certificate.

pub(crate) mod access;
mod future;
#[cfg(feature = "introspection")]
pub(crate) mod introspection;
mod jwks;
pub(crate) mod jwt;
pub(crate) mod validate;

pub use crate::support::token_key::TokenKey;
pub(crate) use access::AccessToken;
pub use future::TokenFuture;
#[cfg(feature = "introspection")]
pub use introspection::{DiscoveryError, IntrospectionValidatorBuilder};
pub use jwt::{JwtValidatorBuilder, KeyFetchError};
pub use validate::PresentedToken;
pub(crate) use validate::ValidateToken;
