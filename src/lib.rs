//! # certbound
//!
//! OAuth 2.0 access tokens that are useless to anyone who steals them: RFC 8705
//! certificate-bound and RFC 9449 DPoP-bound access tokens as tower middleware, for axum, tonic
//! and plain hyper services over rustls.
//!
//! A token bound to a client certificate carries the certificate's SHA-256 thumbprint in its
//! `cnf` claim (`x5t#S256`). The resource server accepts it only on a TLS connection where the
//! client presented that certificate, so proving possession of the certificate's private key.
//! A DPoP-bound token carries the thumbprint of a key instead (`jkt`), and every request comes
//! with a fresh proof signed by that key (see [`dpop`]).
//!
//! # Quick start (axum)
//! ```no_run
//! use axum::{routing::get, Router};
//! use certbound::{tls::ServerTls, AccessToken, BoundTokenLayer, JwtValidator};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = JwtValidator::builder("https://as.example", "https://api.example")
//!     .discover() // keys from the issuer's metadata, cached and rotated
//!     .build()?;
//! let app = Router::new()
//!     .route("/whoami", get(|t: AccessToken| async move { t.subject().unwrap_or_default().to_owned() }))
//!     .layer(BoundTokenLayer::new(validator));
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
//! | `tonic` | no | reads the client certificate from tonic's `TlsConnectInfo`; [`tonic::AccessTokenExt`] |
//! | `tracing` | yes | debug-level traces of rejections (target `certbound`, no token material) |
//! | `redis` | no | `dpop::RedisReplayStore`: DPoP replay state shared by a fleet of instances |
//! | `authorization-server` | no | [`authorization_server`]: mutual-TLS client authentication and DPoP proofs at the token endpoint, binding issued tokens, RFC 8414 / RFC 7591 metadata |
//!
//! With neither crypto backend feature, certbound uses the process-wide rustls and jsonwebtoken
//! providers the application installed, and the builders return a [`ConfigError`] when there
//! are none (see the README's Features section).
//!
//! # Rejections
//! See [`challenge`] for the table; in short: no token `401`, malformed header `400`,
//! any invalid or wrongly bound token `401 invalid_token`, a bad DPoP proof `401
//! invalid_dpop_proof`, missing scope `403`, a user authentication too weak or too old for
//! the route (step-up, RFC 9470) `401 insufficient_user_authentication`, keys or replay store
//! unreachable `503`,
//! misconfigured server `500`. The body of a rejection is yours to choose
//! ([`challenge::RejectionResponse`]); its status, challenge and typed [`AuthError`] are not.
//! With [`ResourceMetadata`] configured, every challenge names the metadata URL (RFC 9728).
//!
//! # Architecture
//! The modules form layers; a module uses only those below it, never one beside or above
//! (no cycles). A change belongs in the lowest layer that can hold it.
//!
//! ```text
//!  authorization_server   client authentication and DPoP at the token endpoint, binding tokens
//!  server  axum  tonic    the acceptor (serve, serve_plain); framework adapters
//!  resource_metadata      RFC 9728 protected resource metadata, from the layers' settings
//!  bound_token  require_scope  step_up   the tower layers that check tokens
//!  dpop                   DPoP proofs, replay stores, nonces; the client's proof signer
//!  forwarded              the trusted-proxy layer: forwarded certificates and origins
//!  challenge              the rejection table, its renderers, the rejection response trait
//!  token                  ValidateToken, AccessToken; JWT and introspection validators
//!  upstream  certificate  outgoing HTTPS to the authorization server; ClientCertificate and its sources
//!  tls  thumbprint        rustls configurations; CertThumbprint, JwkThumbprint
//!  support                (private) constant-time compare, encodings, token keys, cache,
//!                         single flight, crypto backend
//!  error  metrics  readiness   AuthError, AuthErrorKind (each kind owns its fixed text), ConfigError;
//!                         what is counted (feature `metrics`); Readiness
//! ```
//!
//! Each item has one public path. The everyday ones are at the crate root; a module is public
//! where its path is part of the API: [`dpop`] holds DPoP's settings, stores and signer;
//! [`bound_token`], [`require_scope`], [`step_up`] and [`forwarded`]
//! hold each layer's service and future types, [`resource_metadata`] the metadata service, [`token`] the validator builders and the
//! extension point's types, [`challenge`] the rejection table and response trait, [`tls`] the
//! rustls configurations, and [`forwarded`] also what a trusted proxy forwarded.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod metrics;
mod readiness;
pub mod reload;
mod support;

mod thumbprint;
pub mod tls;

mod certificate;
mod upstream;

pub mod token;

pub mod challenge;

pub mod bound_token;
pub mod dpop;
pub mod forwarded;
pub mod require_scope;
pub mod step_up;

pub mod resource_metadata;

#[cfg(feature = "axum")]
mod axum;
mod server;
#[cfg(feature = "tonic")]
pub mod tonic;

#[cfg(feature = "authorization-server")]
pub mod authorization_server;
#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "axum")]
pub use crate::axum::{TokenClaims, TokenRejection};
pub use crate::bound_token::layer::BoundTokenLayer;
pub use crate::certificate::{ClientCertificate, ConnectionInfo};
pub use crate::dpop::DpopKey;
pub use crate::error::{AuthError, AuthErrorKind, ConfigError};
pub use crate::forwarded::format::ForwardedCertFormat;
pub use crate::forwarded::layer::ForwardedCertLayer;
pub use crate::readiness::{Readiness, ReadyFuture};
pub use crate::require_scope::layer::RequireScopeLayer;
pub use crate::resource_metadata::builder::ResourceMetadata;
pub use crate::server::{serve, serve_plain, Serve};
pub use crate::step_up::layer::RequireStepUpLayer;
pub use crate::thumbprint::{CertThumbprint, InvalidThumbprint, JwkThumbprint};
pub use crate::token::access::AccessToken;
#[cfg(feature = "introspection")]
pub use crate::token::introspection::IntrospectionValidator;
pub use crate::token::issuers::Issuers;
pub use crate::token::jwt::JwtValidator;
pub use crate::token::validate::ValidateToken;

#[cfg(test)]
pub(crate) mod test_helpers;

// The fuzz targets' entry points (`fuzz/`); cargo-fuzz builds with `--cfg fuzzing`.
#[cfg(all(fuzzing, feature = "authorization-server", feature = "introspection"))]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod fuzzing;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The signature algorithms of JWTs (re-exported from jsonwebtoken).
pub use jsonwebtoken::Algorithm;
