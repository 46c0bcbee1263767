//! The [`ValidateToken`] extension point and what the layer hands it ([`PresentedToken`]).

use std::fmt;
use std::future::Future;

use super::AccessToken;
use crate::certificate::ClientCertificate;
use crate::error::AuthError;
use crate::readiness::ReadyFuture;
use crate::support::token_key::{Held, KeyMemo, SigningDigest, TokenKey};

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
    /// Known when the connection presented this very token last time.
    key: Option<TokenKey>,
    /// The connection's memo, which learns the key once it is computed.
    memo: Option<&'a KeyMemo>,
    /// The memo's entry for this very token, when the connection presented it last time.
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
    /// [`TokenKey::of`] this token.
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
            ..Self::new(held.token(), certificate).with_key(held.key())
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

    /// Lets the connection's memo learn this token's key when it is computed.
    pub(crate) fn remembered_by(self, memo: Option<&'a KeyMemo>) -> Self {
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

    /// The token's SHA-256 cache key: known already from the connection's memo, or hashed
    /// now (and then remembered for the connection). A validator that caches results keys
    /// them by this, never by the token itself.
    pub fn key(&self) -> TokenKey {
        match (self.key, self.memo) {
            (Some(key), _) => key,
            (None, Some(memo)) => memo.key(self.token),
            (None, None) => TokenKey::of(self.token),
        }
    }

    /// [`key`](Self::key), and when it is hashed now, the SHA-256 of the token's signing input
    /// from the same pass ([`TokenKey::of_jws`]), for the signature check of a JWS.
    pub(crate) fn key_and_signing_digest(&self) -> (TokenKey, Option<SigningDigest>) {
        match (self.key, self.memo) {
            (Some(key), _) => (key, None),
            (None, Some(memo)) => {
                let (key, signed) = memo.key_and(self.token, TokenKey::of_jws);
                (key, signed.flatten())
            }
            (None, None) => TokenKey::of_jws(self.token),
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
        assert!(held.key() == TokenKey::of("abc"));
    }
}
