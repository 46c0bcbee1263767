//! [`BoundTokenLayer`](crate::BoundTokenLayer): sender-constrained access tokens as a tower
//! middleware. The constraints are the client certificate (RFC 8705 §3, `cnf.x5t#S256`) and,
//! when [`dpop`](crate::BoundTokenLayer::dpop) is on, a DPoP key (RFC 9449, `cnf.jkt`; see
//! [`crate::dpop`] for the proof checks). A token bound both ways needs both.
//!
//! For each request the service:
//! 1. finds the connection's client certificate (from certbound's acceptor, a
//!    [`ClientCertificate`] extension, axum-server, tonic, or a trusted
//!    proxy via [`ForwardedCertLayer`](crate::ForwardedCertLayer)); none configured at all is
//!    a server misconfiguration (`500`), with DPoP on only once a certificate-bound token
//!    arrives;
//! 2. takes the token from the single `Authorization` header (`Bearer`, RFC 6750 §2.1, or,
//!    with DPoP on, `DPoP`, RFC 9449 §7.1), and for `DPoP` checks the request's proof;
//! 3. validates it with the [`ValidateToken`](crate::ValidateToken) implementation
//!    (e.g. [`JwtValidator`](crate::JwtValidator));
//! 4. compares the token's `cnf.x5t#S256` with the certificate's thumbprint and its `cnf.jkt`
//!    with the proof's key, in constant time; a missing certificate or proof, a mismatch, a
//!    `jkt` token presented as `Bearer`, or (unless
//!    [`allow_unbound`](crate::BoundTokenLayer::allow_unbound)) an unbound token is
//!    `401 invalid_token`;
//! 5. checks the required scopes (`403 insufficient_scope`), then, with a proof, records its
//!    `jti` (a replay is `401 invalid_dpop_proof`, a store that cannot answer `503`);
//! 6. inserts the [`AccessToken`] into the request's extensions and calls
//!    the inner service.
//!
//! Rejections are responses (the inner service's error type is kept), built from the one table
//! in [`crate::challenge`], with the typed [`AuthError`] in their extensions; their body comes
//! from the layer's [`RejectionResponse`].
//! gRPC requests get `grpc-status` instead of an HTTP status. A response future polled again
//! after it completed answers `500`, never a success.
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
#[cfg(fuzzing)]
pub(crate) use credentials::{b64token, credentials};
mod future;
pub(crate) mod layer;
mod service;

pub use future::ResponseFuture;
pub use service::BoundToken;

use crate::certificate::ClientCertificate;
use crate::challenge::{reject, ChallengeParams, RejectionResponse, Scheme};
use crate::dpop::{Dpop, VerifiedProof};
use crate::error::{AuthError, AuthErrorKind};
use crate::metrics;
use crate::token::AccessToken;

/// What the layer's services share: the policy and how rejections are rendered.
#[derive(Debug, Clone)]
pub(crate) struct Settings<R> {
    pub(crate) policy: Policy,
    pub(crate) rejection: R,
}

/// What a rejection depends on besides the error: the request's kind and scheme.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestContext {
    pub(crate) grpc: bool,
    pub(crate) scheme: Scheme,
}

impl<R> Settings<R> {
    /// The rejection response for `error`.
    pub(crate) fn reject<B>(&self, error: AuthError, context: RequestContext) -> http::Response<B>
    where
        R: RejectionResponse<B>,
    {
        let nonce = match (error.kind(), &self.policy.dpop) {
            (AuthErrorKind::UseDpopNonce, Some(dpop)) => dpop.nonce_header(),
            _ => None,
        };
        let mut response = reject(
            error,
            self.policy.params(context.scheme),
            context.grpc,
            &self.rejection,
        );
        if let Some(nonce) = nonce {
            response.headers_mut().insert(DPOP_NONCE.clone(), nonce);
        }
        response
    }
}

/// The `scheme` label of the request counts.
#[inline]
pub(crate) fn metrics_scheme(scheme: Scheme) -> metrics::Scheme {
    match scheme {
        Scheme::Bearer => metrics::Scheme::Bearer,
        Scheme::Dpop => metrics::Scheme::Dpop,
        Scheme::Unknown => metrics::Scheme::None,
    }
}

/// Counts a request the layer let through, once its inner service answered: accepted, unless
/// a certbound layer inside (a [`RequireScopeLayer`](crate::RequireScopeLayer), a
/// [`RequireStepUpLayer`](crate::RequireStepUpLayer)) refused it, whose rejection carries the
/// [`AuthError`]: then rejected with that reason. So each request the layer decides is counted
/// once, as what it finally was.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn count_response<B, E>(output: &Result<http::Response<B>, E>, scheme: Scheme) {
    #[cfg(feature = "metrics")]
    match output
        .as_ref()
        .ok()
        .and_then(|response| response.extensions().get::<AuthError>())
    {
        Some(refused) => metrics::request_rejected(refused.kind(), metrics_scheme(scheme)),
        None => metrics::request_accepted(metrics_scheme(scheme)),
    }
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub(crate) static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// Where the certificate lookup left the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateSource {
    /// A source was configured (the certificate may still be absent).
    Configured,
    /// None: only DPoP-bound tokens can be accepted; a certificate-bound one means the server
    /// is misconfigured.
    Missing,
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
    /// DPoP, when accepted.
    pub(crate) dpop: Option<Dpop>,
    /// Where the protected resource metadata is (RFC 9728 §5.1), for the challenges.
    pub(crate) resource_metadata: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_unbound: false,
            required_scopes: Vec::new(),
            scope_challenge: None,
            realm: None,
            max_token_len: 16 * 1024,
            dpop: None,
            resource_metadata: None,
        }
    }
}

impl Policy {
    pub(crate) fn params(&self, scheme: Scheme) -> ChallengeParams<'_> {
        ChallengeParams {
            realm: self.realm.as_deref(),
            scope: self.scope_challenge.as_deref(),
            scheme,
            dpop_algs: self.dpop.as_ref().map(Dpop::algs),
            resource_metadata: self.resource_metadata.as_deref(),
            ..ChallengeParams::default()
        }
    }

    /// The sender constraints of `token` against the request: RFC 8705 §3 (`cnf.x5t#S256`
    /// must name the connection's certificate) and RFC 9449 §7 (`cnf.jkt` must name the key of
    /// the request's proof, which only the `DPoP` scheme carries). A token with both needs
    /// both; one with neither is accepted only when unbound tokens are allowed. Then the
    /// required scopes.
    pub(crate) fn authorize(
        &self,
        token: &AccessToken,
        certificate: Option<&ClientCertificate>,
        source: CertificateSource,
        proof: Option<&VerifiedProof>,
    ) -> Result<(), AuthError> {
        use AuthErrorKind as K;
        let mut bound = false;
        if let Some(jkt) = token.dpop_thumbprint() {
            match proof {
                // JwkThumbprint's equality is constant-time.
                Some(proof) if proof.jkt() == jkt => {}
                Some(_) => return Err(AuthError::new(K::DpopKeyMismatch)),
                None => return Err(AuthError::new(K::DpopTokenAsBearer)),
            }
            bound = true;
        }
        if let Some(x5t) = token.thumbprint() {
            match (certificate, source) {
                // CertThumbprint's equality is constant-time.
                (Some(cert), _) if cert.thumbprint() == x5t => {}
                (Some(_), _) => return Err(AuthError::new(K::CertificateMismatch)),
                (None, CertificateSource::Configured) => {
                    return Err(AuthError::new(K::MissingCertificate))
                }
                (None, CertificateSource::Missing) => {
                    return Err(AuthError::with_detail(
                        K::Misconfigured,
                        "certificate-bound token, but no client certificate source: serve with certbound::serve, axum-server or tonic TLS, or insert ClientCertificate",
                    ))
                }
            }
            bound = true;
        }
        if !bound && !self.allow_unbound {
            return Err(AuthError::new(K::UnboundToken));
        }
        token.require_scopes(&self.required_scopes)
    }
}

#[cfg(all(test, feature = "metrics"))]
mod metrics_tests;

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod dpop_tests;

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{ready, Future, Ready};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use http::{Request, Response, StatusCode};
    use serde_json::json;
    use tower_layer::Layer as _;
    use tower_service::Service as _;

    use crate::dpop::VerifiedProof;
    use crate::token::PresentedToken;
    use crate::{
        AccessToken, AuthError, AuthErrorKind, BoundTokenLayer, ClientCertificate, JwkThumbprint,
    };

    fn certificate() -> ClientCertificate {
        ClientCertificate::from_der(b"client".to_vec())
    }

    /// Accepts the token "good", bound to [`certificate`].
    fn validator(presented: PresentedToken<'_>) -> Ready<Result<AccessToken, AuthError>> {
        let claims = json!({ "sub": "alice", "cnf": { "x5t#S256": certificate().thumbprint().to_string() } });
        ready(match presented.token() {
            "good" => AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default()),
            _ => Err(AuthError::new(AuthErrorKind::InvalidToken)),
        })
    }

    fn request(token: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request.extensions_mut().insert(certificate());
        request
    }

    fn poll_twice<F: Future>(future: F) -> (F::Output, F::Output) {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        match (future.as_mut().poll(&mut cx), future.as_mut().poll(&mut cx)) {
            (Poll::Ready(first), Poll::Ready(second)) => (first, second),
            _ => unreachable!("nothing here waits"),
        }
    }

    #[test]
    fn a_future_polled_after_completion_answers_500_whatever_came_first() {
        let mut service =
            BoundTokenLayer::new(validator).layer(tower::service_fn(|_: Request<()>| {
                ready(Ok::<_, Infallible>(Response::new(String::from("secret"))))
            }));
        for (token, first_status) in [("good", StatusCode::OK), ("bad", StatusCode::UNAUTHORIZED)] {
            let (first, second) = poll_twice(service.call(request(token)));
            let (first, second) = (first.unwrap(), second.unwrap());
            assert_eq!(first.status(), first_status, "{token}");
            assert_eq!(
                second.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{token}"
            );
            assert!(second.body().is_empty());
            assert_eq!(
                second.extensions().get::<AuthError>().map(AuthError::kind),
                Some(AuthErrorKind::Misconfigured)
            );
        }
        let mut request = request("good");
        request.extensions_mut().clear();
        let (first, second) = poll_twice(service.call(request));
        assert_eq!(first.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(second.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// Claims bound by `cnf` members `x5t` and `jkt` (either may be absent).
    fn bound(x5t: Option<&ClientCertificate>, jkt: Option<&JwkThumbprint>) -> AccessToken {
        let mut cnf = serde_json::Map::new();
        if let Some(cert) = x5t {
            cnf.insert("x5t#S256".into(), json!(cert.thumbprint().to_string()));
        }
        if let Some(jkt) = jkt {
            cnf.insert("jkt".into(), json!(jkt.to_string()));
        }
        let mut claims = json!({"sub": "alice", "scope": "read"});
        if !cnf.is_empty() {
            claims["cnf"] = serde_json::Value::Object(cnf);
        }
        AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default()).unwrap()
    }

    #[test]
    fn the_binding_check_demands_every_constraint_the_token_carries() {
        use super::{CertificateSource as Source, Policy};
        use AuthErrorKind as K;
        let key = JwkThumbprint::from_digest([1; 32]);
        let other_key = JwkThumbprint::from_digest([2; 32]);
        let (cert, other_cert) = (
            certificate(),
            ClientCertificate::from_der(b"other".to_vec()),
        );
        let (proof, other_proof) = (VerifiedProof::by_key(key), VerifiedProof::by_key(other_key));
        let policy = Policy::default();
        let check = |token: &AccessToken, c, source, p| {
            policy.authorize(token, c, source, p).map_err(|e| e.kind())
        };
        let dpop = bound(None, Some(&key));
        assert_eq!(check(&dpop, None, Source::Missing, Some(&proof)), Ok(()));
        assert_eq!(
            check(&dpop, Some(&cert), Source::Configured, Some(&other_proof)),
            Err(K::DpopKeyMismatch)
        );
        assert_eq!(
            check(&dpop, Some(&cert), Source::Configured, None),
            Err(K::DpopTokenAsBearer)
        );
        let mtls = bound(Some(&cert), None);
        assert_eq!(check(&mtls, Some(&cert), Source::Configured, None), Ok(()));
        assert_eq!(
            check(&mtls, Some(&cert), Source::Configured, Some(&other_proof)),
            Ok(()),
            "a certificate-bound token needs no particular proof"
        );
        assert_eq!(
            check(&mtls, Some(&other_cert), Source::Configured, None),
            Err(K::CertificateMismatch)
        );
        assert_eq!(
            check(&mtls, None, Source::Configured, None),
            Err(K::MissingCertificate)
        );
        assert_eq!(
            check(&mtls, None, Source::Missing, Some(&proof)),
            Err(K::Misconfigured)
        );
        let both = bound(Some(&cert), Some(&key));
        assert_eq!(
            check(&both, Some(&cert), Source::Configured, Some(&proof)),
            Ok(())
        );
        assert_eq!(
            check(&both, Some(&other_cert), Source::Configured, Some(&proof)),
            Err(K::CertificateMismatch)
        );
        assert_eq!(
            check(&both, Some(&cert), Source::Configured, Some(&other_proof)),
            Err(K::DpopKeyMismatch)
        );
        let unbound = bound(None, None);
        assert_eq!(
            check(&unbound, Some(&cert), Source::Configured, Some(&proof)),
            Err(K::UnboundToken)
        );
        let lenient = Policy {
            allow_unbound: true,
            required_scopes: vec!["write".into()],
            ..Policy::default()
        };
        assert_eq!(
            lenient
                .authorize(&unbound, None, Source::Configured, None)
                .map_err(|e| e.kind()),
            Err(K::InsufficientScope),
            "unbound tokens allowed, scopes still required"
        );
    }

    #[test]
    fn a_nonce_rejection_carries_a_fresh_nonce_and_the_configured_challenge() {
        use super::{RequestContext, Settings};
        use crate::challenge::Scheme;
        use crate::dpop::{Dpop, DpopNonces};
        let settings = Settings {
            policy: super::Policy {
                realm: Some("api".into()),
                dpop: Some(Dpop::new().require_nonce(DpopNonces::random().unwrap())),
                ..super::Policy::default()
            },
            rejection: crate::challenge::DefaultRejection,
        };
        let context = RequestContext {
            grpc: false,
            scheme: Scheme::Dpop,
        };
        let response: Response<String> =
            settings.reject(AuthError::new(AuthErrorKind::UseDpopNonce), context);
        assert!(response.headers().contains_key("dpop-nonce"));
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(challenge.contains("realm=\"api\""), "{challenge}");
        assert!(
            challenge.contains("error=\"use_dpop_nonce\""),
            "{challenge}"
        );
        let other: Response<String> =
            settings.reject(AuthError::new(AuthErrorKind::InvalidDpopProof), context);
        assert!(!other.headers().contains_key("dpop-nonce"));
    }

    #[test]
    fn a_closure_validates_and_the_binding_is_still_checked() {
        let mut service =
            BoundTokenLayer::new(validator).layer(tower::service_fn(|req: Request<()>| {
                let subject = req
                    .extensions()
                    .get::<AccessToken>()
                    .and_then(|t| t.subject().map(str::to_owned));
                ready(Ok::<_, Infallible>(Response::new(
                    subject.unwrap_or_default(),
                )))
            }));
        let (response, _) = poll_twice(service.call(request("good")));
        assert_eq!(response.unwrap().body(), "alice");
        let mut stolen = request("good");
        stolen
            .extensions_mut()
            .insert(ClientCertificate::from_der(b"attacker".to_vec()));
        let (response, _) = poll_twice(service.call(stolen));
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .extensions()
                .get::<AuthError>()
                .map(AuthError::kind),
            Some(AuthErrorKind::CertificateMismatch)
        );
    }
}
