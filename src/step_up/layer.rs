use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::{RequireStepUp, StepUp};
use crate::challenge::{
    acr_values_challenge, checked_realm, checked_resource_metadata_url, DefaultRejection,
};
use crate::error::ConfigError;

/// Requires a strong or recent enough user authentication (RFC 9470 step-up) of the
/// [`AccessToken`](crate::AccessToken) a [`BoundTokenLayer`](crate::BoundTokenLayer) further out
/// has validated: its `acr` one of the acceptable values, and/or its `auth_time` no older than
/// `max_age`. Otherwise `401 insufficient_user_authentication` with `acr_values="..."` and
/// `max_age=N` (gRPC: 16 UNAUTHENTICATED with the same challenge), so the client can ask the
/// authorization server for a new token; `500` when no token was validated (the outer layer
/// is missing: a misconfiguration).
///
/// A token without `acr` does not meet an `acr` requirement, nor one without `auth_time` a
/// `max_age` (see [`AccessToken::acr`](crate::AccessToken::acr) and
/// [`AccessToken::auth_time`](crate::AccessToken::auth_time) for what counts as absent). An
/// `auth_time` more than a minute in the future (beyond clock skew) is refused too: it would
/// otherwise stay fresh for longer than `max_age`.
///
/// Use it on the routes that need more than the whole API does, e.g. with axum
/// `.route("/transfer", post(handler).layer(RequireStepUpLayer::acr_values(["urn:example:mfa"])?))`.
/// See the [module docs](crate::step_up) for an example.
#[must_use]
pub struct RequireStepUpLayer<R = DefaultRejection> {
    step_up: Arc<StepUp<R>>,
}

impl RequireStepUpLayer {
    /// Requires the token's `acr` to be one of `values` (in the challenge in this order: list
    /// the preferred first). Add a [`max_age`](Self::max_age) to require a recent
    /// authentication as well.
    ///
    /// # Errors
    /// When `values` is empty, or a value holds a space, a `"`, a `\` or a character outside
    /// printable ASCII (it could not be sent in the challenge's `acr_values`).
    pub fn acr_values<I>(values: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let acr_values: Vec<String> = values.into_iter().map(Into::into).collect();
        let acr_challenge = acr_values_challenge(&acr_values)?;
        Ok(Self::with(StepUp {
            acr_values,
            acr_challenge: Some(acr_challenge),
            max_age: None,
            realm: None,
            resource_metadata: None,
            rejection: DefaultRejection,
        }))
    }

    /// Requires the user to have authenticated at most `max_age` ago (the token's
    /// `auth_time`), whatever the `acr`. Whole seconds count; a fraction is dropped.
    pub fn authenticated_within(max_age: Duration) -> Self {
        Self::with(StepUp {
            acr_values: Vec::new(),
            acr_challenge: None,
            max_age: Some(max_age.as_secs()),
            realm: None,
            resource_metadata: None,
            rejection: DefaultRejection,
        })
    }

    fn with(step_up: StepUp<DefaultRejection>) -> Self {
        Self {
            step_up: Arc::new(step_up),
        }
    }
}

impl<R: Clone> RequireStepUpLayer<R> {
    /// Requires the user to have authenticated at most `max_age` ago as well (the token's
    /// `auth_time`). Whole seconds count; a fraction is dropped.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        Arc::make_mut(&mut self.step_up).max_age = Some(max_age.as_secs());
        self
    }

    /// Adds `realm="..."` to this layer's challenges (give it the realm of the
    /// [`BoundTokenLayer`](crate::BoundTokenLayer) in front).
    ///
    /// # Errors
    /// When the realm holds characters that would need escaping (`"`, `\`, controls).
    pub fn realm(mut self, realm: impl Into<String>) -> Result<Self, ConfigError> {
        let realm = checked_realm(realm.into())?;
        Arc::make_mut(&mut self.step_up).realm = Some(realm);
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
        Arc::make_mut(&mut self.step_up).resource_metadata = Some(url);
        Ok(self)
    }

    /// Makes rejection responses with `rejection` (see
    /// [`RejectionResponse`](crate::challenge::RejectionResponse)); the layer still sets the status, challenge and gRPC headers.
    pub fn with_rejection_response<R2>(self, rejection: R2) -> RequireStepUpLayer<R2> {
        let step_up = &self.step_up;
        RequireStepUpLayer {
            step_up: Arc::new(StepUp {
                acr_values: step_up.acr_values.clone(),
                acr_challenge: step_up.acr_challenge.clone(),
                max_age: step_up.max_age,
                realm: step_up.realm.clone(),
                resource_metadata: step_up.resource_metadata.clone(),
                rejection,
            }),
        }
    }
}

impl<R> Clone for RequireStepUpLayer<R> {
    fn clone(&self) -> Self {
        Self {
            step_up: Arc::clone(&self.step_up),
        }
    }
}

impl<R> fmt::Debug for RequireStepUpLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireStepUpLayer")
            .field("acr_values", &self.step_up.acr_values)
            .field("max_age", &self.step_up.max_age)
            .finish_non_exhaustive()
    }
}

impl<S, R> Layer<S> for RequireStepUpLayer<R> {
    type Service = RequireStepUp<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireStepUp {
            inner,
            step_up: Arc::clone(&self.step_up),
        }
    }
}
