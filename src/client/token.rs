//! [`Token`]: an access token as the client holds it, ready to be attached to requests.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use sha2::{Digest, Sha256};

use super::identity::ClientIdentity;
use crate::thumbprint::CertThumbprint;

/// How a [`Token`] is presented (its `token_type`, RFC 6749 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenScheme {
    /// `Authorization: Bearer <token>` (RFC 6750); certificate-bound tokens (RFC 8705) are
    /// Bearer tokens presented over mutual TLS.
    Bearer,
    /// `Authorization: DPoP <token>` plus a `DPoP` proof header (RFC 9449).
    Dpop,
}

/// An access token from a [`TokenSource`](super::TokenSource): cheap to clone (one reference
/// count), its `Authorization` value made once. Its [`Debug`](fmt::Debug) never shows the
/// token.
#[derive(Clone)]
pub struct Token(Arc<Inner>);

struct Inner {
    /// `Bearer <token>` or `DPoP <token>`, marked sensitive.
    authorization: HeaderValue,
    /// Where the token starts in `authorization`.
    start: usize,
    scheme: TokenScheme,
    /// base64url SHA-256 of the token: a DPoP proof's `ath`.
    ath: Option<Box<str>>,
    scope: Option<Box<str>>,
    expires_at: Instant,
    /// From here on the token is not handed out any more: a new one is asked for.
    pub(super) stale_at: Instant,
    /// From here on a new token is asked for in the background while this one is handed out.
    pub(super) early_at: Instant,
    /// The identity the client presented when it asked for the token: a certificate-bound
    /// token is bound to its certificate, and is sent only over connections that present it.
    identity: ClientIdentity,
}

/// When a token received at `received`, valid for `lifetime`, stops being handed out and when
/// its successor is asked for in the background: `margin` (at most half the lifetime) before
/// expiry, and `early` (at most half of what remains) before that.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) margin: Duration,
    pub(crate) early: Duration,
}

impl Token {
    /// A token of `scheme`, obtained with `identity`; `None` when `value` cannot be a header value (empty, or other than
    /// visible ASCII).
    pub(crate) fn new(
        value: &str,
        scheme: TokenScheme,
        scope: Option<String>,
        received: Instant,
        lifetime: Duration,
        schedule: Schedule,
        identity: ClientIdentity,
    ) -> Option<Self> {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let prefix = match scheme {
            TokenScheme::Bearer => "Bearer ",
            TokenScheme::Dpop => "DPoP ",
        };
        let mut authorization = HeaderValue::try_from(format!("{prefix}{value}")).ok()?;
        authorization.set_sensitive(true);
        let ath = (scheme == TokenScheme::Dpop).then(|| {
            URL_SAFE_NO_PAD
                .encode(Sha256::digest(value))
                .into_boxed_str()
        });
        let margin = schedule.margin.min(lifetime / 2);
        let usable = lifetime - margin;
        let early = schedule.early.min(usable / 2);
        let stale_at = received + usable;
        Some(Self(Arc::new(Inner {
            authorization,
            start: prefix.len(),
            scheme,
            ath,
            scope: scope.map(String::into_boxed_str),
            expires_at: received + lifetime,
            stale_at,
            early_at: stale_at - early,
            identity,
        })))
    }

    /// The access token itself. Keep it out of logs.
    pub fn secret(&self) -> &str {
        // Visible ASCII by construction.
        self.0
            .authorization
            .to_str()
            .map_or("", |value| &value[self.0.start..])
    }

    /// How the token is presented.
    pub fn scheme(&self) -> TokenScheme {
        self.0.scheme
    }

    /// The `Authorization` header value (`Bearer <token>` or `DPoP <token>`), marked
    /// sensitive so that HTTP/2 never indexes it.
    pub fn authorization(&self) -> &HeaderValue {
        &self.0.authorization
    }

    /// For a DPoP token, the `ath` its proofs carry (base64url SHA-256 of the token).
    pub fn ath(&self) -> Option<&str> {
        self.0.ath.as_deref()
    }

    /// The `scope` the authorization server granted, when it said.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// When the token expires (`expires_in` after it was asked for).
    pub fn expires_at(&self) -> Instant {
        self.0.expires_at
    }

    /// The SHA-256 thumbprint of the client certificate presented to the authorization server
    /// when this token was asked for: for a certificate-bound token, its `cnf.x5t#S256`. After
    /// the client's identity is renewed, tokens of the old certificate are no longer handed
    /// out (see [`ReloadableClientIdentity`](super::ReloadableClientIdentity)).
    pub fn client_thumbprint(&self) -> &CertThumbprint {
        self.0.identity.thumbprint()
    }

    /// The identity the token was obtained with.
    pub(crate) fn identity(&self) -> &ClientIdentity {
        &self.0.identity
    }

    pub(crate) fn stale_at(&self) -> Instant {
        self.0.stale_at
    }

    pub(crate) fn early_at(&self) -> Instant {
        self.0.early_at
    }

    /// Whether `self` and `other` are the same token from the same answer.
    pub(crate) fn same(&self, other: &Token) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("scheme", &self.0.scheme)
            .field("scope", &self.0.scope)
            .field("client_thumbprint", self.client_thumbprint())
            .field(
                "expires_in",
                &self.0.expires_at.saturating_duration_since(Instant::now()),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ClientIdentity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        ClientIdentity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    }

    const SCHEDULE: Schedule = Schedule {
        margin: Duration::from_secs(30),
        early: Duration::from_secs(30),
    };

    #[test]
    fn a_token_knows_its_header_value_and_never_shows_itself() {
        let now = Instant::now();
        let token = Token::new(
            "mF_9.B5f-4.1JqM",
            TokenScheme::Bearer,
            Some("read".to_owned()),
            now,
            Duration::from_secs(300),
            SCHEDULE,
            identity(),
        )
        .unwrap();
        assert_eq!(token.secret(), "mF_9.B5f-4.1JqM");
        assert_eq!(token.authorization(), "Bearer mF_9.B5f-4.1JqM");
        assert!(token.authorization().is_sensitive());
        assert_eq!(token.ath(), None);
        assert_eq!(token.scope(), Some("read"));
        let debug = format!("{token:?}");
        assert!(!debug.contains("mF_9"), "{debug}");
        let dpop = Token::new(
            "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU",
            TokenScheme::Dpop,
            None,
            now,
            Duration::from_secs(300),
            SCHEDULE,
            identity(),
        )
        .unwrap();
        assert_eq!(
            dpop.authorization(),
            "DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
        );
        // RFC 9449 §7.1's example ath for this token.
        assert_eq!(
            dpop.ath(),
            Some("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo")
        );
        for bad in ["", "two words", "tab\t", "é"] {
            assert!(
                Token::new(
                    bad,
                    TokenScheme::Bearer,
                    None,
                    now,
                    SCHEDULE.margin,
                    SCHEDULE,
                    identity()
                )
                .is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_schedule_keeps_a_margin_before_expiry_and_refreshes_early_in_proportion() {
        let now = Instant::now();
        let at = |lifetime: u64| {
            let token = Token::new(
                "t",
                TokenScheme::Bearer,
                None,
                now,
                Duration::from_secs(lifetime),
                SCHEDULE,
                identity(),
            )
            .unwrap();
            (
                token.early_at() - now,
                token.stale_at() - now,
                token.expires_at() - now,
            )
        };
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(at(3600), (s(3540), s(3570), s(3600)));
        assert_eq!(at(300), (s(240), s(270), s(300)));
        // Short lifetimes: the margin is at most half the lifetime, the early window at most
        // half of what remains.
        assert_eq!(at(40), (s(10), s(20), s(40)));
        assert_eq!(at(2), (ms(500), s(1), s(2)));
        assert_eq!(at(0), (s(0), s(0), s(0)));
    }
}
