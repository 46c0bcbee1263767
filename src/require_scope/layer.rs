use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::{RequireScope, Scopes};
use crate::challenge::{
    checked_realm, checked_resource_metadata_url, scope_challenge, DefaultRejection,
};
use crate::error::ConfigError;

/// Requires scopes of the [`AccessToken`](crate::AccessToken) a [`BoundTokenLayer`](crate::BoundTokenLayer) further
/// out has validated: `403 insufficient_scope` with `scope="..."` when one is missing, `500` when
/// no token was validated (the outer layer is missing: a misconfiguration).
///
/// Use it on the routes that need more than the whole API does, e.g. with axum
/// `.route("/admin", get(handler).layer(RequireScopeLayer::new(["admin"])?))`.
#[must_use]
pub struct RequireScopeLayer<R = DefaultRejection> {
    scopes: Arc<Scopes<R>>,
}

impl RequireScopeLayer {
    /// Requires every scope in `scopes`.
    ///
    /// # Errors
    /// When a scope is not an RFC 6749 §3.3 scope token.
    pub fn new<I>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let required: Vec<String> = scopes.into_iter().map(Into::into).collect();
        let challenge = scope_challenge(&required)?;
        Ok(Self {
            scopes: Arc::new(Scopes {
                required,
                challenge,
                realm: None,
                resource_metadata: None,
                rejection: DefaultRejection,
            }),
        })
    }
}

impl<R: Clone> RequireScopeLayer<R> {
    /// Adds `realm="..."` to this layer's challenges (give it the realm of the
    /// [`BoundTokenLayer`](crate::BoundTokenLayer) in front).
    ///
    /// # Errors
    /// When the realm holds characters that would need escaping (`"`, `\`, controls).
    pub fn realm(mut self, realm: impl Into<String>) -> Result<Self, ConfigError> {
        let realm = checked_realm(realm.into())?;
        Arc::make_mut(&mut self.scopes).realm = Some(realm);
        Ok(self)
    }

    /// Adds `resource_metadata="<url>"` to this layer's challenges (RFC 9728 §5.1; give it the
    /// URL the [`BoundTokenLayer`](crate::BoundTokenLayer) in front has).
    ///
    /// # Errors
    /// When `url` is not an absolute `https` URL without fragment, or holds characters a
    /// quoted-string cannot carry unescaped.
    pub fn resource_metadata(mut self, url: &str) -> Result<Self, ConfigError> {
        let url = checked_resource_metadata_url(url)?;
        Arc::make_mut(&mut self.scopes).resource_metadata = Some(url);
        Ok(self)
    }

    /// Makes rejection responses with `rejection` (see
    /// [`RejectionResponse`](crate::challenge::RejectionResponse)); the layer still sets the status, challenge and gRPC headers.
    pub fn with_rejection_response<R2>(self, rejection: R2) -> RequireScopeLayer<R2> {
        let scopes = &self.scopes;
        RequireScopeLayer {
            scopes: Arc::new(Scopes {
                required: scopes.required.clone(),
                challenge: scopes.challenge.clone(),
                realm: scopes.realm.clone(),
                resource_metadata: scopes.resource_metadata.clone(),
                rejection,
            }),
        }
    }
}

impl<R> RequireScopeLayer<R> {
    /// The scopes this layer requires (for `scopes_supported` in the resource's metadata).
    pub(crate) fn required_scopes(&self) -> &[String] {
        &self.scopes.required
    }

    /// The `resource_metadata` URL of its challenges.
    pub(crate) fn resource_metadata_url(&self) -> Option<&str> {
        self.scopes.resource_metadata.as_deref()
    }
}

impl<R> Clone for RequireScopeLayer<R> {
    fn clone(&self) -> Self {
        Self {
            scopes: Arc::clone(&self.scopes),
        }
    }
}

impl<R> fmt::Debug for RequireScopeLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeLayer")
            .field("scopes", &self.scopes.required)
            .finish_non_exhaustive()
    }
}

impl<S, R> Layer<S> for RequireScopeLayer<R> {
    type Service = RequireScope<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            scopes: Arc::clone(&self.scopes),
        }
    }
}
