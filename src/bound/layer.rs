use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::{checked_realm, scope_challenge, CertBound, Policy};
use crate::error::ConfigError;

/// Applies [`CertBound`] to a service: certificate-bound bearer tokens validated by `V`.
///
/// See the [module docs](crate::bound) for what is checked and in which order.
#[must_use]
pub struct CertBoundLayer<V> {
    validator: Arc<V>,
    policy: Arc<Policy>,
}

impl<V> CertBoundLayer<V> {
    /// Requires certificate-bound tokens that `validator` accepts.
    pub fn new(validator: V) -> Self {
        Self {
            validator: Arc::new(validator),
            policy: Arc::new(Policy::default()),
        }
    }

    fn policy_mut(&mut self) -> &mut Policy {
        Arc::make_mut(&mut self.policy)
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

    /// Longest bearer token accepted (default 16 KiB); longer ones are `401 invalid_token`
    /// without any decoding.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.policy_mut().max_token_len = bytes;
        self
    }
}

impl<V> Clone for CertBoundLayer<V> {
    fn clone(&self) -> Self {
        Self {
            validator: Arc::clone(&self.validator),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for CertBoundLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBoundLayer")
            .field("validator", &self.validator)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, V> Layer<S> for CertBoundLayer<V> {
    type Service = CertBound<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        CertBound::from_parts(inner, Arc::clone(&self.validator), Arc::clone(&self.policy))
    }
}
