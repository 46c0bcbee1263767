use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::Policy as LayerPolicy;
use super::{BoundToken, Settings};
use crate::challenge::{
    checked_realm, checked_resource_metadata_url, scope_challenge, DefaultRejection,
};
use crate::error::ConfigError;
use crate::readiness::{self, Readiness};
use crate::token::ValidateToken;

/// Applies [`BoundToken`] to a service: sender-constrained access tokens validated by `V`.
///
/// See the [module docs](crate::bound_token) for what is checked and in which order. `R` makes
/// the rejection responses ([`DefaultRejection`]: empty bodies; see
/// [`with_rejection_response`](Self::with_rejection_response)).
#[must_use]
pub struct BoundTokenLayer<V, R = DefaultRejection> {
    validator: Arc<V>,
    settings: Arc<Settings<R>>,
}

impl<V> BoundTokenLayer<V> {
    /// Requires certificate-bound tokens that `validator` accepts.
    pub fn new(validator: V) -> Self {
        Self {
            validator: Arc::new(validator),
            settings: Arc::new(Settings {
                policy: LayerPolicy::default(),
                rejection: DefaultRejection,
            }),
        }
    }
}

impl<V, R: Clone> BoundTokenLayer<V, R> {
    fn policy_mut(&mut self) -> &mut LayerPolicy {
        &mut Arc::make_mut(&mut self.settings).policy
    }

    /// Also accepts tokens without a `cnf.x5t#S256` binding. **Weaker**: such tokens are plain
    /// bearer tokens again, usable by whoever holds them. Bound tokens are still checked against
    /// the certificate, and a malformed `cnf` is still rejected.
    pub fn allow_unbound(mut self) -> Self {
        self.policy_mut().allow_unbound = true;
        self
    }

    /// Requires `scope` in the token (`scope` or `scp` claim); otherwise `403
    /// insufficient_scope`. Calls accumulate.
    ///
    /// # Errors
    /// When `scope` is not an RFC 6749 §3.3 scope token.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Result<Self, ConfigError> {
        let policy = self.policy_mut();
        policy.required_scopes.push(scope.into());
        policy.scope_challenge = Some(scope_challenge(&policy.required_scopes)?);
        Ok(self)
    }

    /// Adds `realm="..."` to every challenge.
    ///
    /// # Errors
    /// When the realm holds characters that would need escaping (`"`, `\`, controls).
    pub fn realm(mut self, realm: impl Into<String>) -> Result<Self, ConfigError> {
        self.policy_mut().realm = Some(checked_realm(realm.into())?);
        Ok(self)
    }

    /// Adds `resource_metadata="<url>"` to every challenge (RFC 9728 §5.1): where clients find
    /// the protected resource metadata, and in it the authorization servers to ask for a token.
    /// Give it [`ResourceMetadata::metadata_url`](crate::ResourceMetadata::metadata_url), and
    /// the same URL to the [`RequireScopeLayer`](crate::RequireScopeLayer)s and
    /// [`RequireStepUpLayer`](crate::RequireStepUpLayer)s behind this layer.
    ///
    /// # Errors
    /// When `url` is not an absolute `https` URL without fragment, or holds characters a
    /// quoted-string cannot carry unescaped.
    pub fn resource_metadata(mut self, url: &str) -> Result<Self, ConfigError> {
        self.policy_mut().resource_metadata = Some(checked_resource_metadata_url(url)?);
        Ok(self)
    }

    /// Also accepts DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with one
    /// `DPoP` proof header, checked as `dpop` says. Certificate-bound `Bearer` tokens work as
    /// before; a token bound both ways needs the certificate and the proof.
    ///
    /// With DPoP on, a server without any client certificate source (no TLS client
    /// authentication, behind a CDN) still accepts DPoP-bound tokens; a certificate-bound
    /// token there is a server misconfiguration (`500`).
    pub fn dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.policy_mut().dpop = Some(dpop);
        self
    }

    /// Longest access token accepted (default 16 KiB); longer ones are `401 invalid_token`
    /// without any decoding.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.policy_mut().max_token_len = bytes;
        self
    }

    /// Makes rejection responses with `rejection` (for example JSON problem details; see
    /// [`RejectionResponse`](crate::challenge::RejectionResponse)). Whatever it returns, the
    /// layer sets the status, the `WWW-Authenticate` challenge, the gRPC status and the typed
    /// [`AuthError`](crate::AuthError) extension.
    pub fn with_rejection_response<R2>(self, rejection: R2) -> BoundTokenLayer<V, R2> {
        BoundTokenLayer {
            validator: self.validator,
            settings: Arc::new(Settings {
                policy: self.settings.policy.clone(),
                rejection,
            }),
        }
    }
}

impl<V: ValidateToken, R> BoundTokenLayer<V, R> {
    /// Whether the layer can decide requests now, rather than answer `503` for want of
    /// something upstream: its validator's [`ready`](ValidateToken::ready) (a
    /// [`JwtValidator`](crate::JwtValidator): keys loaded, fetched now if there are none and
    /// the last attempt is older than `min_refresh_interval`; an
    /// [`Issuers`](crate::Issuers) set: every issuer's; introspection: the endpoint
    /// answering) and, with [`dpop`](Self::dpop), the replay store's
    /// ([`ReplayStore::ready`](crate::dpop::ReplayStore::ready): Redis answering a `PING`).
    /// Both are asked at once, each within its own timeout (the validator's fetch timeout,
    /// the store's timeout).
    ///
    /// For a readiness endpoint: keep a clone of the layer (cheap: shared settings) and
    /// answer `200` when [`Readiness::is_ready`], else `503`. The reasons name issuers and
    /// parts, never secrets; they are for logs, and need not be served.
    ///
    /// # Example
    /// ```
    /// use certbound::{BoundTokenLayer, JwtValidator};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), certbound::ConfigError> {
    /// # let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
    /// let layer = BoundTokenLayer::new(
    ///     JwtValidator::builder("https://as.example", "https://api.example")
    ///         .jwks_json(jwks)
    ///         .build()?,
    /// );
    /// let readiness = layer.ready().await;
    /// assert!(readiness.is_ready(), "{readiness}");
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Readiness {
        let validator = self.validator.ready();
        match &self.settings.policy.dpop {
            Some(dpop) => readiness::all(vec![validator, dpop.store_ready()]).await,
            None => validator.await,
        }
    }
}

impl<V, R> BoundTokenLayer<V, R> {
    /// What the layer enforces, for the protected resource metadata it is described by.
    pub(crate) fn policy(&self) -> &LayerPolicy {
        &self.settings.policy
    }
}

impl<V, R> Clone for BoundTokenLayer<V, R> {
    fn clone(&self) -> Self {
        Self {
            validator: Arc::clone(&self.validator),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<V: fmt::Debug, R> fmt::Debug for BoundTokenLayer<V, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundTokenLayer")
            .field("validator", &self.validator)
            .field("policy", &self.settings.policy)
            .finish_non_exhaustive()
    }
}

impl<S, V, R> Layer<S> for BoundTokenLayer<V, R> {
    type Service = BoundToken<S, V, R>;

    fn layer(&self, inner: S) -> Self::Service {
        BoundToken::from_parts(
            inner,
            Arc::clone(&self.validator),
            Arc::clone(&self.settings),
        )
    }
}
