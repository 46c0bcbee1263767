//! The authorization-server side of RFC 8705 (feature `authorization-server`): mutual-TLS
//! client authentication at the token endpoint (§2), binding the tokens issued to the client's
//! certificate (§3), and the metadata that announces both (§2.1.2, §3.3, §3.4, §5); and of
//! RFC 9449: DPoP proofs at the token endpoint (§5), tokens bound to the proof's key (§6),
//! and `dpop_signing_alg_values_supported` (§5.1).
//!
//! [`MtlsClientAuthLayer`] goes in front of a token, introspection or revocation endpoint. For
//! each request it
//! 1. requires `POST` and `Content-Type: application/x-www-form-urlencoded`;
//! 2. buffers the body up to a limit (64 KiB by default; `413` beyond) and parses it strictly:
//!    a parameter given twice is `400 invalid_request` (RFC 6749 §3.2);
//! 3. takes `client_id` from the body or from HTTP Basic (with an empty password; both may be
//!    given only if they agree) and requires it (RFC 8705 §2); a client secret or client
//!    assertion in the same request is a second authentication method (`400`, RFC 6749 §2.3);
//! 4. finds the connection's client certificate the same way the resource server's
//!    [`BoundTokenLayer`](crate::BoundTokenLayer) does (see [`ClientCertificate`](crate::ClientCertificate));
//! 5. looks the client up in a [`ClientRegistry`] and checks the certificate by the registered
//!    method with a [`ClientAuthenticator`]: `tls_client_auth` (chain validated against the
//!    configured trust anchors, then the one registered subject DN or SAN value matched) or
//!    `self_signed_tls_client_auth` (the certificate is in the client's JWKS);
//! 6. with [`dpop`](MtlsClientAuthLayer::dpop) set and a `DPoP` header on the request, checks
//!    the proof (see [below](#dpop-at-the-token-endpoint-rfc-9449-5));
//! 7. inserts the [`AuthenticatedClient`] (with the proof) and the [`FormParameters`] into the
//!    request's extensions and calls the inner service with the buffered body.
//!
//! Every failure is an RFC 6749 §5.2 JSON error with `Cache-Control: no-store`: `401
//! invalid_client` for any failed authentication (no client id, unknown client, another
//! registered method, no certificate, a certificate that does not authenticate the client,
//! an untrusted, expired or not-yet-valid chain), always with the same description, so that it
//! tells an attacker nothing; the precise reason is in the [`ClientAuthError`] attached to the
//! response's extensions (and traced at debug level with the `tracing` feature).
//!
//! # Mixed deployments (RFC 8705 §6.1)
//! One listener serves both kinds of client: configure TLS to accept any client certificate
//! ([`ServerTls::any_client_certificate`](crate::tls::ServerTls::any_client_certificate): the
//! handshake proves possession of the key) and give the CAs of `tls_client_auth` clients to
//! the [`ClientAuthenticator`] instead. A certificate that is untrusted or expired is then a
//! `401 invalid_client` at the token endpoint, never a TLS alert.
//!
//! # Revocation and rotation
//! [`ClientAuthenticatorBuilder::crl`] / [`crl_file`](ClientAuthenticatorBuilder::crl_file)
//! refuse revoked `tls_client_auth` certificates (`401 invalid_client`; whole chain, unknown
//! status refused and expired CRLs refused by default). The trust anchors and CRLs can be
//! replaced while serving ([`ClientAuthenticator::replace_trust`], or
//! [`ClientAuthenticator::watch`] of the files), and so can the client registrations
//! ([`ReloadableClients`]); a replacement that cannot be used is refused and the material in
//! use is kept.
//!
//! # Issuing bound tokens
//! [`bind_claims`] (or [`Confirmation`]) adds `cnf: {"x5t#S256": ...}` to the claims of a token
//! being issued; [`AuthorizationServerMetadata`] announces
//! `tls_client_certificate_bound_access_tokens` and `mtls_endpoint_aliases`.
//!
//! # DPoP at the token endpoint (RFC 9449 §5)
//! With [`MtlsClientAuthLayer::dpop`] and a [`TokenEndpointDpop`], a token request that
//! carries a `DPoP` header is checked once the client authenticated: the proof must be for
//! `POST` and the URL the request arrived on (the token endpoint's, or its mutual-TLS alias),
//! carry no `ath`, be fresh and unused, and hold a server nonce when they are required. A bad
//! proof is `400 invalid_dpop_proof`, a missing or stale nonce `400 use_dpop_nonce` with a
//! `DPoP-Nonce` header, a replay store that cannot answer `503`; all with
//! `Cache-Control: no-store`.
//!
//! [`AuthenticatedClient::sender_constraints`] then says what the token is bound to, and the
//! handler answers with its [`token_type`](SenderConstraints::token_type):
//!
//! | token request | registered `tls_client_certificate_bound_access_tokens` | `cnf` | `token_type` |
//! |---|---|---|---|
//! | no proof | any | `x5t#S256` | `Bearer` |
//! | a proof | absent or `false` | `jkt` | `DPoP` |
//! | a proof | `true` | `x5t#S256` and `jkt` | `DPoP` |
//!
//! A client that authenticates with its certificate, registered for certificate-bound tokens,
//! and sends a proof gets a token bound both ways: the resource server
//! ([`BoundTokenLayer`](crate::BoundTokenLayer) with DPoP on) then requires the certificate
//! *and* a proof by the key. Refusing the combination would lock out clients that use mutual
//! TLS client authentication with DPoP-bound tokens (as FAPI 2.0 allows); dropping the
//! certificate binding would silently weaken a client that registered for it.
//!
//! [`AuthorizationServerMetadata::dpop_signing_alg_values_supported`] announces the accepted
//! algorithms ([`TokenEndpointDpop::signing_alg_values`]).
//!
//! # Example
//! ```
//! use axum::{routing::post, Json, Router};
//! use certbound::authorization_server::{AuthenticatedClient, ClientAuthenticator, MtlsClientAuthLayer, StaticClients};
//! use certbound::ClientCertificate;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clients = StaticClients::from_json(r#"[{"client_id": "payments",
//!     "token_endpoint_auth_method": "tls_client_auth",
//!     "tls_client_auth_san_dns": "payments.example"}]"#)?;
//! let authenticator = ClientAuthenticator::builder()
//!     // .client_ca_pem_file("clients-ca.pem")?
//!     .build()?;
//! let app = Router::new()
//!     .route("/token", post(|client: AuthenticatedClient| async move {
//!         Json(serde_json::json!({ "client": client.client_id() }))
//!     }))
//!     .layer(MtlsClientAuthLayer::new(clients, authenticator));
//!
//! // A request without client_id, on a connection with some certificate.
//! let mut request = Request::post("/token")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(axum::body::Body::from("grant_type=client_credentials"))?;
//! request.extensions_mut().insert(ClientCertificate::from_der(b"certificate".to_vec()));
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["cache-control"], "no-store");
//! # Ok(()) }
//! ```

mod authenticator;
mod authenticator_builder;
mod client;
mod dn;
mod dpop;
mod error;
mod form;
mod issue;
mod jwks_uri;
mod keys;
mod metadata;
mod registry;
mod reloadable_clients;
mod service;
mod subject;
mod trust;

#[cfg(fuzzing)]
pub(crate) use {
    dn::DistinguishedName,
    form::{basic_credentials, parse_form, BasicCredentials},
};

pub use authenticator::ClientAuthenticator;
pub use authenticator_builder::ClientAuthenticatorBuilder;
pub use client::{AuthenticatedClient, RegisteredClient};
pub use dpop::TokenEndpointDpop;
pub use error::{ClientAuthError, ClientAuthErrorKind};
pub use form::FormParameters;
pub use issue::{bind_claims, Confirmation, SenderConstraints};
pub use metadata::{
    AuthorizationServerMetadata, ClientMetadata, MtlsEndpointAliases, TokenEndpointAuthMethod,
};
pub use registry::{ClientRegistry, RegistryError, StaticClients};
pub use reloadable_clients::ReloadableClients;
pub use service::{MtlsClientAuth, MtlsClientAuthLayer, ResponseFuture};

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::FromRequestParts;
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use http::StatusCode;

    use super::{AuthenticatedClient, FormParameters};

    /// A handler asked for what only [`MtlsClientAuthLayer`](super::MtlsClientAuthLayer)
    /// provides, and the layer is not in front of it: the server is misconfigured (`500`).
    #[derive(Debug, Clone, Copy)]
    pub struct MissingClientAuthLayer;

    impl IntoResponse for MissingClientAuthLayer {
        fn into_response(self) -> Response {
            (StatusCode::INTERNAL_SERVER_ERROR, "server misconfigured").into_response()
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedClient {
        type Rejection = MissingClientAuthLayer;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<AuthenticatedClient>()
                .cloned()
                .ok_or(MissingClientAuthLayer)
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for FormParameters {
        type Rejection = MissingClientAuthLayer;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<FormParameters>()
                .cloned()
                .ok_or(MissingClientAuthLayer)
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::MissingClientAuthLayer;
