//! DPoP (RFC 9449): tokens bound to a key the client proves it holds, with a fresh signed
//! proof on every request.
//!
//! A DPoP-bound token carries `cnf.jkt`, the RFC 7638 thumbprint of the client's public key.
//! The client sends it as `Authorization: DPoP <token>` with a `DPoP` header: a JWT signed by
//! that key, naming the request's method (`htm`) and URL (`htu`), the token's hash (`ath`), a
//! time (`iat`) and a unique identifier (`jti`). A stolen token is useless without the key, and
//! a stolen proof is useless for any other request, after its time window, and a second time.
//!
//! [`BoundTokenLayer::dpop`](crate::BoundTokenLayer::dpop) turns it on beside certificate-bound
//! tokens; per request the layer then:
//! 1. reads `Authorization: Bearer` or `DPoP` (one header);
//! 2. for `DPoP`, checks the proof (RFC 9449 §4.3): exactly one `DPoP` header within
//!    [`max_proof_len`](Dpop::max_proof_len); a JWS with `typ` `dpop+jwt`; an `alg` from the
//!    [allow-list](Dpop::algorithms) (never `none` or a MAC); a public `jwk` of that algorithm's
//!    type (a private member is refused); the signature; `htm` and `htu` (normalised, see
//!    [`public_url`](Dpop::public_url)); `iat` within the [window](Dpop::iat_window); `jti`;
//!    `ath`; and, when [required](Dpop::require_nonce), a server nonce;
//! 3. validates the token (cached, as for `Bearer`);
//! 4. requires each constraint in `cnf`: `jkt` must be the proof's key (and a `jkt` token
//!    presented as `Bearer` is refused: a downgrade), `x5t#S256` the connection's certificate;
//! 5. only then records the proof's `jti` in the [`ReplayStore`] (so a proof that fails any
//!    other check never burns its identifier); a replay is `401 invalid_dpop_proof`, a store
//!    that cannot answer `503`;
//! 6. hands the request, with its [`AccessToken`](crate::AccessToken) (see
//!    [`binding`](crate::AccessToken::binding)), to the inner service.
//!
//! Rejections follow [the table](crate::challenge): `WWW-Authenticate: DPoP
//! error="invalid_dpop_proof", algs="..."`, `use_dpop_nonce` with a `DPoP-Nonce` header, and
//! the token's errors in the scheme the client used.
//!
//! Clients sign proofs with [`DpopKey`]; authorization servers check proofs at their token
//! endpoint with [`Dpop::check_token_request`].
//!
//! # A fleet of instances
//! Replay protection only holds if every instance that accepts a token sees every `jti`: share
//! one store (`RedisReplayStore`, feature `redis`: one atomic `SET NX PX` per proof). Nonces
//! are stateless (an HMAC over a time step), so instances only share their secret
//! ([`DpopNonces::from_file`]).
//!
//! # Example
//! ```
//! use certbound::dpop::{Dpop, DpopKey};
//! use certbound::{AccessToken, Algorithm, BoundTokenLayer, JwtValidator};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let as_key = DpopKey::generate(Algorithm::ES256)?;
//! # let jwks = serde_json::json!({"keys": [as_key.public_jwk()]}).to_string();
//! let validator = JwtValidator::builder("https://as.example", "https://api.example")
//!     .jwks_json(&jwks)
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(BoundTokenLayer::new(validator).dpop(Dpop::new()))
//!     .service_fn(|request: Request<String>| async move {
//!         let token = request.extensions().get::<AccessToken>().cloned();
//!         let jkt = token.and_then(|t| t.dpop_thumbprint().map(|j| j.to_string()));
//!         Ok::<_, std::convert::Infallible>(Response::new(jkt.unwrap_or_default()))
//!     });
//!
//! // The client's key, and a token the authorization server bound to it.
//! let client = DpopKey::generate(Algorithm::ES256)?;
//! # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! # let claims = serde_json::json!({"iss": "https://as.example", "aud": "https://api.example",
//! #     "exp": now + 300, "cnf": {"jkt": client.thumbprint().to_string()}});
//! # // The authorization server signs with jsonwebtoken's process-wide provider, which it
//! # // installs (with both backends compiled in, jsonwebtoken cannot pick one itself).
//! # #[cfg(feature = "aws-lc-rs")]
//! # let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
//! # let signing = jsonwebtoken::EncodingKey::from_ec_pem(as_key.to_pkcs8_pem().as_bytes())?;
//! # let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::ES256), &claims, &signing)?;
//! let proof = client
//!     .proof("GET", "https://api.example/whoami")
//!     .access_token(&token)
//!     .sign()?;
//! let request = Request::get("https://api.example/whoami")
//!     .header("authorization", format!("DPoP {token}"))
//!     .header("dpop", &proof)
//!     .body(String::new())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.body(), &client.thumbprint().to_string());
//!
//! // The same proof again is a replay.
//! let replay = Request::get("https://api.example/whoami")
//!     .header("authorization", format!("DPoP {token}"))
//!     .header("dpop", &proof)
//!     .body(String::new())?;
//! let response = service.oneshot(replay).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert!(response.headers()["www-authenticate"]
//!     .to_str()?
//!     .starts_with("DPoP error=\"invalid_dpop_proof\""));
//! # Ok(()) }
//! ```

mod backend;
mod config;
mod htu;
mod jwk;
mod key;
mod key_cache;
pub(crate) mod key_memo;
mod memory;
mod nonce;
mod pkcs8;
mod proof;
mod proof_key;
#[cfg(feature = "redis")]
mod redis;
mod replay;

#[cfg(feature = "redis")]
pub use self::redis::RedisReplayStore;
pub(crate) use config::replay_outcome;
pub use config::Dpop;
pub use key::{DpopKey, ProofBuilder};
pub use memory::MemoryReplayStore;
pub use nonce::DpopNonces;
pub use proof::VerifiedProof;
#[cfg(feature = "authorization-server")]
pub(crate) use proof::DPOP;
pub use replay::{Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError};
#[cfg(fuzzing)]
pub(crate) use {
    htu::{from_parts as htu_from_parts, normalize as normalize_htu, ExpectedHtu, PublicUrl},
    key_cache::Memos as ProofMemos,
    proof::{verify as verify_proof, Expected, ProofRules},
};
