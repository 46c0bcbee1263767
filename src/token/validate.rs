//! The [`ValidateToken`] extension point and what the layer hands it ([`PresentedToken`]).

use std::fmt;
use std::future::Future;

use super::AccessToken;
use crate::certificate::ClientCertificate;
use crate::error::AuthError;
use crate::readiness::ReadyFuture;
use crate::support::token_key::{Derivation, Held, KeyMemo, TokenKey};

/// Turns an access token into a validated [`AccessToken`].
///
/// Implementations check everything about the token itself (signature or introspection,
/// issuer, audience, lifetime) and parse its `cnf` claim; the binding to the client certificate
/// is checked by the layer, whoever validated the token.
///
/// Any `Fn(PresentedToken<'_>) -> impl Future<Output = Result<AccessToken, AuthError>>`
/// (`Send + Sync + 'static`, its future `Send + 'static`) is a validator too, so a third-party
/// token format takes a few lines. Refuse with an [`AuthError`] of the fitting kind; its
/// [`with_detail`](AuthError::with_detail) text reaches logs and the application, never the
/// client.
///
/// # Example
/// ```
/// use certbound::token::PresentedToken;
/// use certbound::{AccessToken, AuthError, AuthErrorKind, BoundTokenLayer, ClientCertificate};
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let certificate = ClientCertificate::from_der(b"client certificate".to_vec());
/// let thumbprint = certificate.thumbprint().to_string();
///
/// // A toy token format: "user.<name>", bound to one certificate.
/// let validate = move |presented: PresentedToken<'_>| {
///     let claims = presented.token().strip_prefix("user.").map(|name| {
///         serde_json::json!({ "sub": name, "cnf": { "x5t#S256": thumbprint } })
///     });
///     async move {
///         match claims {
///             Some(serde_json::Value::Object(claims)) => AccessToken::from_claims(claims),
///             _ => Err(AuthError::with_detail(AuthErrorKind::InvalidToken, "not a user token")),
///         }
///     }
/// };
/// let service = ServiceBuilder::new()
///     .layer(BoundTokenLayer::new(validate))
///     .service_fn(|request: Request<String>| async move {
///         let token = request.extensions().get::<AccessToken>().cloned();
///         let subject = token.and_then(|t| t.subject().map(str::to_owned)).unwrap_or_default();
///         Ok::<_, std::convert::Infallible>(Response::new(subject))
///     });
///
/// let request = |token: &str| {
///     let mut request = Request::new(String::new());
///     request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
///     request.extensions_mut().insert(certificate.clone());
///     request
/// };
/// let response = service.clone().oneshot(request("user.alice")).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.body(), "alice");
///
/// let response = service.oneshot(request("admin.root")).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// let error = response.extensions().get::<AuthError>().unwrap();
/// assert_eq!(error.detail(), "not a user token");
/// # Ok(()) }
/// ```
pub trait ValidateToken: Send + Sync + 'static {
    /// The validation in progress.
    type Future: Future<Output = Result<AccessToken, AuthError>> + Send + 'static;

    /// Validates `token` (the b64token of the `Authorization` header).
    fn validate(&self, token: &str) -> Self::Future;

    /// Validates a token as the layer received it, with the connection's certificate. This is
    /// what the layer calls; the default is [`validate`](Self::validate) of
    /// [`presented.token()`](PresentedToken::token), and the binding is checked by the layer
    /// either way.
    ///
    /// certbound's validators use it to skip hashing: [`PresentedToken::key`] is remembered
    /// per connection, so the same token again on a keep-alive connection costs a comparison
    /// instead of a SHA-256.
    fn validate_presented(&self, presented: PresentedToken<'_>) -> Self::Future {
        self.validate(presented.token())
    }

    /// Whether this validator can decide now, rather than answer `503` for want of something
    /// upstream (keys not loaded, the introspection endpoint not answering): what
    /// [`BoundTokenLayer::ready`](crate::BoundTokenLayer::ready) asks. The default is ready,
    /// for a validator that needs nothing upstream; certbound's validators say what their
    /// docs describe.
    fn ready(&self) -> ReadyFuture<'_> {
        crate::readiness::ready_now()
    }
}

/// An access token as the layer received it: the token and the client certificate of the
/// connection it came on. Its `Debug` output shows no token material.
#[derive(Clone, Copy)]
pub struct PresentedToken<'a> {
    token: &'a str,
    certificate: Option<&'a ClientCertificate>,
    /// Known when a caller computed it already (of either derivation).
    key: Option<TokenKey>,
    /// The connection's memo, which learns the keys once they are computed.
    memo: Option<&'a KeyMemo>,
    /// The memo's entry for this very token (with its keys), when the connection presented it
    /// last time.
    held: Option<&'a Held>,
}

impl<'a> PresentedToken<'a> {
    /// `token` presented with `certificate` (`None` without one).
    pub fn new(token: &'a str, certificate: Option<&'a ClientCertificate>) -> Self {
        Self {
            token,
            certificate,
            key: None,
            memo: None,
            held: None,
        }
    }

    /// The same token with its [`key`](Self::key) known already (a caller that memoizes keys
    /// itself), so that validators do not hash it again. `key` must be
    /// [`TokenKey::of`] this token. (Inside the crate, a key of the JWT caches' derivation may
    /// be handed on this way too; it is used only where that derivation is asked for.)
    pub fn with_key(self, key: TokenKey) -> Self {
        Self {
            key: Some(key),
            ..self
        }
    }

    /// The token the connection presented last time, again: its key is known, and what a
    /// validator remembered of it is at hand.
    pub(crate) fn recalled(held: &'a Held, certificate: Option<&'a ClientCertificate>) -> Self {
        Self {
            held: Some(held),
            ..Self::new(held.token(), certificate)
        }
    }

    /// What a validator remembered of this token on this connection (see
    /// [`remember`](Self::remember)), if it is a `T`. The validator checks that it still holds.
    pub(crate) fn remembered<T: std::any::Any>(&self) -> Option<&'a T> {
        self.held?.verdict()
    }

    /// Remembers `make()` for this token on this connection (when the connection presented it
    /// last time too, and nothing is remembered yet), for its next requests.
    pub(crate) fn remember<T: std::any::Any + Send + Sync>(&self, make: impl FnOnce() -> T) {
        if let Some(held) = self.held {
            held.remember(make);
        }
    }

    /// Lets the connection's memo learn this token's keys when they are computed. The token
    /// must be a well-formed b64token (the layer calls this right after its check): the memo
    /// holds only those, and does not check again.
    pub(crate) fn remembered_by(self, memo: Option<&'a KeyMemo>) -> Self {
        debug_assert!(
            memo.is_none() || crate::support::encoding::is_b64token(self.token.as_bytes()),
            "only a checked b64token is remembered"
        );
        Self { memo, ..self }
    }

    /// The bearer token (a b64token, RFC 6750 §2.1).
    pub fn token(&self) -> &'a str {
        self.token
    }

    /// The client certificate of the connection, if it presented one.
    pub fn certificate(&self) -> Option<&'a ClientCertificate> {
        self.certificate
    }

    /// The token's SHA-256 cache key ([`TokenKey::of`]): known already from the connection's
    /// memo, or hashed now (and then remembered for the connection). A validator that caches
    /// results keys them by this, never by the token itself.
    pub fn key(&self) -> TokenKey {
        self.key_by(Derivation::Sha256)
    }

    /// The token's key in the caches of validated JWTs (`TokenKey::of_jwt`), from the memo
    /// or made now as [`key`](Self::key) is.
    pub(crate) fn jwt_key(&self) -> TokenKey {
        self.key_by(Derivation::Jwt)
    }

    fn key_by(&self, derivation: Derivation) -> TokenKey {
        match (self.key, self.held, self.memo) {
            (Some(key), ..) if key.derivation() == derivation => key,
            (_, Some(held), _) => held.key(derivation),
            (_, None, Some(memo)) => memo.key(self.token, derivation),
            (_, None, None) => TokenKey::derive(derivation, self.token),
        }
    }
}

impl fmt::Debug for PresentedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedToken")
            .field("token_len", &self.token.len())
            .field("certificate", &self.certificate)
            .finish()
    }
}

impl<F, Fut> ValidateToken for F
where
    F: Fn(PresentedToken<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, AuthError>> + Send + 'static,
{
    type Future = Fut;

    fn validate(&self, token: &str) -> Self::Future {
        self(PresentedToken::new(token, None))
    }

    fn validate_presented(&self, presented: PresentedToken<'_>) -> Self::Future {
        self(presented)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_tokens_show_no_token_material_and_key_by_sha256() {
        let certificate = ClientCertificate::from_der(b"leaf".to_vec());
        let presented = PresentedToken::new("secret-token-value", Some(&certificate));
        let shown = format!("{presented:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("token_len: 18"), "{shown}");
        assert!(presented.key() == TokenKey::of("secret-token-value"));
        assert!(PresentedToken::new("t", None).key() == TokenKey::of("t"));
    }

    #[test]
    fn the_connection_memo_learns_a_computed_key() {
        let memo = KeyMemo::default();
        let presented = PresentedToken::new("abc", None).remembered_by(Some(&memo));
        assert!(presented.key() == TokenKey::of("abc"));
        let held = memo.recall(b"abc").expect("remembered");
        assert_eq!(held.token(), "abc");
        assert!(held.key(Derivation::Sha256) == TokenKey::of("abc"));
    }

    #[test]
    fn the_public_key_is_the_sha256_one_whatever_key_a_validator_handed_on() {
        // Issuers hands its validators the JWT caches' key; an introspection validator behind
        // it (or the application) still gets the token's SHA-256 from `key`.
        let token = "h.p.s";
        let presented = PresentedToken::new(token, None).with_key(TokenKey::of_jwt(token));
        assert!(presented.key() == TokenKey::of(token));
        assert!(presented.jwt_key() == TokenKey::of_jwt(token));
        let presented = PresentedToken::new(token, None).with_key(TokenKey::of(token));
        assert!(presented.jwt_key() == TokenKey::of_jwt(token));
        // Recalled from the connection's memo: each derivation's own key.
        let memo = KeyMemo::default();
        let first = PresentedToken::new(token, None).remembered_by(Some(&memo));
        assert!(first.jwt_key() == TokenKey::of_jwt(token));
        let held = memo.recall(token.as_bytes()).expect("remembered");
        let again = PresentedToken::recalled(&held, None);
        assert!(again.key() == TokenKey::of(token));
        assert!(again.jwt_key() == TokenKey::of_jwt(token));
    }
}
