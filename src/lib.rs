//! # certbound
//!
//! OAuth 2.0 access tokens that are useless to anyone who steals them: RFC 8705
//! certificate-bound access tokens as tower middleware, for axum, tonic and plain hyper services
//! over rustls.
//!
//! A token bound to a client certificate carries the certificate's SHA-256 thumbprint in its
//! `cnf` claim (`x5t#S256`). The resource server accepts it only on a TLS connection where the
//! client presented that certificate, so proving possession of the certificate's private key.
//!
//! # Quick start (axum)
//! ```no_run
//! use axum::{routing::get, Router};
//! use certbound::{tls::ServerTls, AccessToken, CertBoundLayer, JwtValidator};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = JwtValidator::builder("https://as.example", "https://api.example")
//!     .discover() // keys from the issuer's metadata, cached and rotated
//!     .build()?;
//! let app = Router::new()
//!     .route("/whoami", get(|t: AccessToken| async move { t.subject().unwrap_or_default().to_owned() }))
//!     .layer(CertBoundLayer::new(validator));
//! let tls = ServerTls::from_pem_files("server.pem", "server.key")?
//!     .client_ca_pem_file("client-ca.pem")?
//!     .build()?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! certbound::serve(listener, tls, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `aws-lc-rs` | yes | crypto backend for rustls and jsonwebtoken (wins if both are enabled) |
//! | `rust-crypto` | no | RustCrypto for jsonwebtoken, *ring* for rustls |
//! | `axum` | yes | extractors: [`AccessToken`], [`TokenClaims`] |
//! | `axum-server` | no | reads the client certificate from axum-server's `TlsInfo` |
//! | `tonic` | no | reads the client certificate from tonic's `TlsConnectInfo`; [`tonic::CertBoundRequestExt`] |
//! | `tracing` | yes | debug-level traces of rejections (target `certbound`, no token material) |
//! | `authorization-server` | no | [`authz`]: mutual-TLS client authentication at the token endpoint, binding issued tokens, RFC 8414 / RFC 7591 metadata |
//!
//! With neither crypto backend feature, certbound uses the process-wide rustls and jsonwebtoken
//! providers the application installed, and the builders return a [`ConfigError`] when there
//! are none (see the README's Features section).
//!
//! # Rejections
//! See [`challenge`] for the table; in short: no token `401`, malformed header `400`,
//! any invalid or wrongly bound token `401 invalid_token`, missing scope `403`, keys unreachable
//! `503`, misconfigured server `500`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "authorization-server")]
pub mod authz;
#[cfg(feature = "axum")]
pub mod axum;
pub mod bound;
pub mod challenge;
mod crypto;
mod ct;
mod error;
pub mod forwarded;
pub mod peer;
pub mod thumbprint;
pub mod tls;
pub mod token;
#[cfg(feature = "tonic")]
pub mod tonic;

#[cfg(feature = "axum")]
pub use crate::axum::TokenClaims;
pub use crate::bound::{CertBound, CertBoundLayer, RequireScopeLayer};
pub use crate::error::{AuthError, AuthErrorKind, ConfigError};
pub use crate::forwarded::{ForwardedCertFormat, ForwardedCertLayer};
pub use crate::peer::serve::{serve, serve_plain, Serve};
pub use crate::peer::{ClientCertificate, TlsConnectInfo};
pub use crate::thumbprint::{CertThumbprint, InvalidThumbprint};
pub use crate::token::{
    AccessToken, JwtValidator, JwtValidatorBuilder, KeyFetchError, PresentedToken, TokenFuture,
    ValidateToken,
};
#[cfg(feature = "introspection")]
pub use crate::token::{DiscoveryError, IntrospectionValidator, IntrospectionValidatorBuilder};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The signature algorithms of JWTs (re-exported from jsonwebtoken).
pub use jsonwebtoken::Algorithm;
