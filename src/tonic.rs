//! gRPC services with [tonic] (feature `tonic`): the same [`BoundTokenLayer`](crate::BoundTokenLayer)
//! protects them, with gRPC-correct rejections.
//!
//! # Two ways to serve
//!
//! **tonic's own TLS.** Put the layer on tonic's server; it reads the client certificate from
//! the `TlsConnectInfo<TcpConnectInfo>` tonic inserts into every request:
//!
//! ```no_run
//! # mod pb { #[derive(Clone)] pub struct Svc; impl tonic::server::NamedService for Svc { const NAME: &'static str = "x"; }
//! # impl tower_service::Service<http::Request<tonic::body::Body>> for Svc { type Response = http::Response<tonic::body::Body>; type Error = std::convert::Infallible; type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
//! # fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> { std::task::Poll::Ready(Ok(())) }
//! # fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future { std::future::ready(Ok(http::Response::new(tonic::body::Body::empty()))) } } }
//! use certbound::{BoundTokenLayer, JwtValidator};
//! use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
//!
//! # async fn run(my_service: pb::Svc) -> Result<(), Box<dyn std::error::Error>> {
//! let validator = JwtValidator::builder("https://as.example", "https://api.example")
//!     .discover()
//!     .build()?;
//! let tls = ServerTlsConfig::new()
//!     .identity(Identity::from_pem(std::fs::read("server.pem")?, std::fs::read("server.key")?))
//!     .client_ca_root(Certificate::from_pem(std::fs::read("clients-ca.pem")?));
//! Server::builder()
//!     .tls_config(tls)?
//!     .layer(BoundTokenLayer::new(validator))
//!     .add_service(my_service)
//!     .serve("0.0.0.0:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! tonic keeps only the raw certificate chain per connection, so the layer computes the
//! thumbprint per request here (one SHA-256 over the leaf, about a kilobyte, plus a copy of the
//! chain): small next to validating a token, but not free.
//!
//! **certbound's acceptor** ([`serve`](crate::serve)). tonic's TLS verifies every client chain
//! against its CA roots, so it cannot accept the self-signed client certificates of RFC 8705
//! §2.2 / §6.2. Serve the tonic service through certbound's own acceptor instead, with
//! [`ServerTls::any_client_certificate`](crate::tls::ServerTls::any_client_certificate) (or
//! CA-verified clients); the thumbprint is then computed once per connection:
//!
//! ```no_run
//! # #[derive(Clone)] struct Svc;
//! # impl tower_service::Service<http::Request<hyper::body::Incoming>> for Svc { type Response = http::Response<tonic::body::Body>; type Error = std::convert::Infallible; type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
//! # fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> { std::task::Poll::Ready(Ok(())) }
//! # fn call(&mut self, _: http::Request<hyper::body::Incoming>) -> Self::Future { std::future::ready(Ok(http::Response::new(tonic::body::Body::empty()))) } }
//! use certbound::{tls::ServerTls, BoundTokenLayer, JwtValidator};
//! use tower_layer::Layer as _;
//!
//! # async fn run(my_service: Svc) -> Result<(), Box<dyn std::error::Error>> {
//! # let validator = JwtValidator::builder("https://as.example", "https://api.example").discover().build()?;
//! let tls = ServerTls::from_pem_files("server.pem", "server.key")?
//!     .any_client_certificate() // RFC 8705 §6.2: self-signed client certificates
//!     .build()?;
//! // `my_service` is a generated `FooServer<T>`, or tonic's `Routes` for several services.
//! let service = BoundTokenLayer::new(validator).layer(my_service);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:50051").await?;
//! certbound::serve(listener, tls, service).await?;
//! # Ok(()) }
//! ```
//!
//! # Rejections
//!
//! Requests with `content-type: application/grpc*` are rejected the gRPC way: HTTP `200`,
//! trailers-only, `grpc-status` from the [one table](crate::challenge) (16 `UNAUTHENTICATED`,
//! 7 `PERMISSION_DENIED`, 3 `INVALID_ARGUMENT`, 14 `UNAVAILABLE`, 13 `INTERNAL`), a
//! percent-encoded `grpc-message`, and the same `www-authenticate` header an HTTP client gets,
//! which tonic clients see as metadata of the [`Status`]. Other requests on the same layer keep
//! the RFC 6750 HTTP responses.
//!
//! # In handlers
//!
//! The validated token is in the request's extensions; [`AccessTokenExt`] reads it:
//!
//! ```
//! use certbound::tonic::AccessTokenExt as _;
//! use tonic::{Request, Response, Status};
//!
//! async fn whoami(request: Request<()>) -> Result<Response<String>, Status> {
//!     let token = request.access_token()?;
//!     Ok(Response::new(token.subject().unwrap_or_default().to_owned()))
//! }
//! ```
//!
//! # Crypto providers
//!
//! tonic's `ServerTlsConfig` builds its rustls configuration with rustls' process-wide default
//! provider. When both rustls providers are compiled into a binary (aws-lc-rs and *ring*, e.g.
//! through another dependency), call `rustls::crypto::CryptoProvider::install_default` at the
//! start of `main`, or tonic cannot pick one. certbound's `aws-lc-rs` / `rust-crypto` features
//! enable tonic's `tls-aws-lc` / `tls-ring` to match.

use http::header::WWW_AUTHENTICATE;
use serde::de::DeserializeOwned;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::challenge::{www_authenticate, Challenge, ChallengeParams};
use crate::error::{AuthError, AuthErrorKind};
use crate::token::AccessToken;

/// Reads what the [`BoundTokenLayer`](crate::BoundTokenLayer) validated from a tonic request.
///
/// Implemented for [`tonic::Request`]; see the [module docs](self) for an example.
pub trait AccessTokenExt {
    /// The validated access token.
    ///
    /// # Errors
    /// `INTERNAL` when no [`BoundTokenLayer`](crate::BoundTokenLayer) validated this request (the
    /// server is misconfigured, not the client's fault).
    fn access_token(&self) -> Result<&AccessToken, Status>;

    /// The validated token's claims as `T`.
    ///
    /// # Errors
    /// `INTERNAL` as for [`access_token`](Self::access_token); `UNAUTHENTICATED` with an
    /// `invalid_token` challenge when the claims do not fit `T` (the token, though valid, lacks
    /// what this method needs).
    fn token_claims<T: DeserializeOwned>(&self) -> Result<T, Status>;
}

impl<M> AccessTokenExt for tonic::Request<M> {
    fn access_token(&self) -> Result<&AccessToken, Status> {
        self.extensions().get::<AccessToken>().ok_or_else(|| {
            status(&AuthError::with_detail(
                AuthErrorKind::Misconfigured,
                "access_token() on a request without BoundTokenLayer",
            ))
        })
    }

    fn token_claims<T: DeserializeOwned>(&self) -> Result<T, Status> {
        self.access_token()?.deserialize_claims().map_err(|_| {
            status(&AuthError::with_detail(
                AuthErrorKind::InvalidToken,
                "token claims do not fit the handler's claims type",
            ))
        })
    }
}

/// The [`Status`] for `error`, from the same table row the layer's rejections use, with the
/// `www-authenticate` challenge as metadata where the row has one.
fn status(error: &AuthError) -> Status {
    let row = Challenge::of(error.kind());
    let mut metadata = MetadataMap::new();
    let challenges = www_authenticate(error.kind(), ChallengeParams::default());
    for value in challenges.into_iter().flatten() {
        if let Ok(challenge) = MetadataValue::<Ascii>::try_from(value.as_bytes()) {
            metadata.append(WWW_AUTHENTICATE.as_str(), challenge);
        }
    }
    Status::with_metadata(
        Code::from(i32::from(row.grpc_status)),
        row.description,
        metadata,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(token: Option<serde_json::Value>) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        if let Some(claims) = token {
            let token = AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default());
            request.extensions_mut().insert(token.unwrap());
        }
        request
    }

    #[test]
    fn the_token_is_read_from_the_extensions() {
        let request = request_with(Some(serde_json::json!({"sub": "alice", "tenant": "t1"})));
        assert_eq!(request.access_token().unwrap().subject(), Some("alice"));

        #[derive(serde::Deserialize)]
        struct Claims {
            tenant: String,
        }
        assert_eq!(request.token_claims::<Claims>().unwrap().tenant, "t1");
    }

    #[test]
    fn claims_that_do_not_fit_are_unauthenticated_with_a_challenge() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Claims {
            tenant: u64,
        }
        let request = request_with(Some(serde_json::json!({"tenant": "t1"})));
        let status = request.token_claims::<Claims>().unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "invalid access token");
        let challenge = status.metadata().get("www-authenticate").unwrap();
        assert!(challenge
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\""));
    }

    #[test]
    fn without_the_layer_the_server_is_misconfigured() {
        let status = request_with(None).access_token().unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert!(status.metadata().get("www-authenticate").is_none());
    }
}
