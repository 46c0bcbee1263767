//! The calling side: a client's TLS identity, and sender-constrained access tokens obtained
//! with it (feature `client`).
//!
//! - [`ClientIdentity`]: the client's certificate chain and key (PEM or DER), giving the
//!   rustls and reqwest configurations that present it.
//! - [`TokenSource`]: tokens from the `client_credentials` grant, the client authenticated by
//!   its certificate (RFC 8705 §2), certificate-bound or DPoP-bound (RFC 9449), cached and
//!   refreshed before they expire, one request for any number of concurrent callers.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use certbound::client::{ClientIdentity, TokenSource};
//! use certbound::dpop::DpopKey;
//! use jsonwebtoken::Algorithm;
//!
//! let identity = ClientIdentity::from_pem_files("client.pem", "client.key")?;
//! let tokens = TokenSource::builder("my-client", identity.clone())
//!     .issuer("https://as.example")
//!     .dpop(DpopKey::generate(Algorithm::ES256)?)
//!     .build()?;
//! let token = tokens.token().await?;
//! let proof = tokens
//!     .dpop_key()
//!     .expect("DPoP is on")
//!     .proof("GET", "https://api.example/accounts")
//!     .access_token(token.secret())
//!     .sign()?;
//! let api = identity.reqwest_builder(&[], true)?.build()?;
//! let response = api
//!     .get("https://api.example/accounts")
//!     .header("authorization", token.authorization())
//!     .header("dpop", proof)
//!     .send()
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod exchange;
mod identity;
mod source;
mod token;

pub use error::{TokenError, TokenErrorKind};
pub use identity::ClientIdentity;
pub use source::{TokenSource, TokenSourceBuilder};
pub use token::{Token, TokenScheme};
