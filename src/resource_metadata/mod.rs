//! Protected resource metadata (RFC 9728): the document that tells a client which
//! authorization servers issue tokens for this resource and what the tokens must be (bound to a
//! certificate, to a DPoP key with which algorithms, with which scopes), and the challenges
//! that point at it.
//!
//! [`ResourceMetadata`](crate::ResourceMetadata) builds the document from what the layers
//! enforce, plus what only the operator knows, and renders it once into a
//! [`ResourceMetadataService`] that answers at `/.well-known/oauth-protected-resource` followed
//! by the resource's path (§3.1: for `https://api.example/v1`, at
//! `https://api.example/.well-known/oauth-protected-resource/v1`). Give its
//! [`metadata_url`](crate::ResourceMetadata::metadata_url) to the layers' `resource_metadata`
//! and every `WWW-Authenticate` challenge they send, with or without an error code, on HTTP and
//! gRPC alike, carries `resource_metadata="<url>"` (§5.1).
//!
//! The service is open to anyone: mount it outside the
//! [`BoundTokenLayer`](crate::BoundTokenLayer). With
//! [`signed_metadata`](crate::ResourceMetadata::signed_metadata), the document also carries its
//! values as a JWT signed by the attesting party (§2.2).
//!
//! # Example
//! ```
//! use certbound::dpop::Dpop;
//! use certbound::{BoundTokenLayer, JwtValidator, RequireScopeLayer, ResourceMetadata};
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use serde_json::json;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
//! let validator = JwtValidator::builder("https://as.example", "https://api.example/v1")
//!     .jwks_json(jwks)
//!     .build()?;
//! let metadata = ResourceMetadata::new("https://api.example/v1")?
//!     .authorization_server("https://as.example")
//!     .resource_name("Example API");
//! let layer = BoundTokenLayer::new(validator)
//!     .dpop(Dpop::new())
//!     .require_scope("read")?
//!     .resource_metadata(metadata.metadata_url())?;
//! let admin = RequireScopeLayer::new(["admin"])?.resource_metadata(metadata.metadata_url())?;
//! let service = metadata
//!     .bound_token_layer(&layer)
//!     .require_scope_layer(&admin)
//!     .build()?;
//! assert_eq!(service.path(), "/.well-known/oauth-protected-resource/v1");
//!
//! let request = Request::get(service.path()).body(())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let document: serde_json::Value =
//!     serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
//! assert_eq!(document["resource"], "https://api.example/v1");
//! assert_eq!(document["authorization_servers"], json!(["https://as.example"]));
//! assert_eq!(document["scopes_supported"], json!(["read", "admin"]));
//! assert_eq!(document["tls_client_certificate_bound_access_tokens"], true);
//! assert_eq!(document["dpop_bound_access_tokens_required"], false);
//! # Ok(()) }
//! ```

pub(crate) mod builder;
mod service;
mod signed;

pub use service::ResourceMetadataService;
