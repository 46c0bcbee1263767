//! [`BoundTokenLayer`]: certificate-bound access tokens (RFC 8705 §3) as a tower middleware.
//!
//! For each request the service:
//! 1. finds the connection's client certificate (see [`crate::certificate`]); none configured at all
//!    is a server misconfiguration (`500`);
//! 2. takes the bearer token from the single `Authorization` header (RFC 6750 §2.1);
//! 3. validates it with the [`ValidateToken`](crate::ValidateToken) implementation
//!    (e.g. [`JwtValidator`](crate::JwtValidator));
//! 4. compares the token's `cnf.x5t#S256` with the certificate's thumbprint in constant time;
//!    a missing certificate, a mismatch, or (unless [`allow_unbound`](BoundTokenLayer::allow_unbound))
//!    an unbound token is `401 invalid_token`;
//! 5. checks the required scopes (`403 insufficient_scope`);
//! 6. inserts the [`AccessToken`] into the request's extensions and calls
//!    the inner service.
//!
//! Rejections are responses (the inner service's error type is kept), built from the one table
//! in [`crate::challenge`], with the typed [`AuthError`] in their extensions.
//! gRPC requests get `grpc-status` instead of an HTTP status.
//!
//! # Example
//! ```
//! use certbound::{BoundTokenLayer, ClientCertificate, JwtValidator};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
//! let validator = JwtValidator::builder("https://as.example", "https://api.example")
//!     .jwks_json(jwks)
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(BoundTokenLayer::new(validator))
//!     .service_fn(|_req: Request<String>| async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) });
//!
//! // A request from a client certificate, without a token.
//! let mut request = Request::new(String::new());
//! request.extensions_mut().insert(ClientCertificate::from_der(b"client certificate".to_vec()));
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # Ok(()) }
//! ```

mod credentials;
mod future;
pub(crate) mod layer;
mod service;

pub use future::ResponseFuture;
pub use service::BoundToken;

use crate::certificate::ClientCertificate;
use crate::challenge::{reject, ChallengeParams, RejectionResponse};
use crate::error::{AuthError, AuthErrorKind};
use crate::token::AccessToken;

/// What the layer's services share: the policy and how rejections are rendered.
#[derive(Debug, Clone)]
pub(crate) struct Settings<R> {
    pub(crate) policy: Policy,
    pub(crate) rejection: R,
}

impl<R> Settings<R> {
    /// The rejection response for `error`.
    pub(crate) fn reject<B>(&self, error: AuthError, grpc: bool) -> http::Response<B>
    where
        R: RejectionResponse<B>,
    {
        reject(error, self.policy.params(), grpc, &self.rejection)
    }
}

/// What the layer enforces beyond token validity.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) allow_unbound: bool,
    pub(crate) required_scopes: Vec<String>,
    /// `required_scopes` joined for the challenge.
    pub(crate) scope_challenge: Option<String>,
    pub(crate) realm: Option<String>,
    pub(crate) max_token_len: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_unbound: false,
            required_scopes: Vec::new(),
            scope_challenge: None,
            realm: None,
            max_token_len: 16 * 1024,
        }
    }
}

impl Policy {
    pub(crate) fn params(&self) -> ChallengeParams<'_> {
        ChallengeParams {
            realm: self.realm.as_deref(),
            scope: self.scope_challenge.as_deref(),
        }
    }

    /// RFC 8705 §3: the token must be bound to the certificate presented on this connection.
    pub(crate) fn authorize(
        &self,
        token: &AccessToken,
        certificate: Option<&ClientCertificate>,
    ) -> Result<(), AuthError> {
        use AuthErrorKind as K;
        match (token.thumbprint(), certificate) {
            (Some(bound), Some(cert)) => {
                // CertThumbprint's equality is constant-time.
                if bound != cert.thumbprint() {
                    return Err(AuthError::new(K::CertificateMismatch));
                }
            }
            (Some(_), None) => return Err(AuthError::new(K::MissingCertificate)),
            (None, _) if self.allow_unbound => {}
            (None, _) => return Err(AuthError::new(K::UnboundToken)),
        }
        token.require_scopes(&self.required_scopes)
    }
}
