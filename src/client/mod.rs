//! The calling side: a client's TLS identity, sender-constrained access tokens obtained with
//! it, and the outgoing layer that uses them (feature `client`).
//!
//! - [`ClientIdentity`]: the client's certificate chain and key (PEM or DER), giving the
//!   rustls and reqwest configurations that present it; [`ReloadableClientIdentity`] renews
//!   it while the client runs (files watched, or replaced by a call), new tokens and new
//!   connections following the new certificate together.
//! - [`TokenSource`]: tokens from the `client_credentials` grant, the client authenticated by
//!   its certificate (RFC 8705 §2), certificate-bound or DPoP-bound (RFC 9449), cached and
//!   refreshed before they expire, one request for any number of concurrent callers. It can
//!   start from the API's URL alone ([`resource_url`](TokenSourceBuilder::resource_url)),
//!   finding the authorization server in the resource's RFC 9728 metadata.
//! - [`TokenLayer`]: a tower layer for any HTTP client (hyper-util, tonic's `Channel`) that
//!   puts the token, and for DPoP a fresh proof, on every request, and retries once on a
//!   resource server's `use_dpop_nonce` or `invalid_token`. A step-up request (RFC 9470) is
//!   the error [`CallError::StepUp`]; other refusals carry a [`ResourceChallenge`]
//!   (`error`, `resource_metadata`). [`ReqwestClient`] does the same for reqwest.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use certbound::client::{ClientIdentity, ReqwestClient, TokenSource};
//! use certbound::dpop::DpopKey;
//! use jsonwebtoken::Algorithm;
//!
//! let identity = ClientIdentity::from_pem_files("client.pem", "client.key")?;
//! let tokens = TokenSource::builder("my-client", identity.clone())
//!     .issuer("https://as.example")
//!     .dpop(DpopKey::generate(Algorithm::ES256)?)
//!     .build()?;
//! let api = ReqwestClient::new(identity.reqwest_builder(&[], true)?.build()?, tokens);
//! let response = api
//!     .execute(api.http().get("https://api.example/accounts").build()?)
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod attach;
mod challenge;
mod error;
mod exchange;
mod identity;
mod layer;
mod reloadable;
mod reqwest_client;
mod resource;
mod source;
mod token;

pub use attach::CallError;
pub use challenge::ResourceChallenge;
pub use error::{TokenError, TokenErrorKind};
pub use identity::ClientIdentity;
pub use layer::{ReplayBody, TokenLayer, TokenService};
pub use reloadable::ReloadableClientIdentity;
pub use reqwest_client::ReqwestClient;
pub use source::{TokenSource, TokenSourceBuilder};
pub use token::{Token, TokenScheme};
