//! Error types: [`ConfigError`] for builders, [`AuthError`] for rejected requests.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// An underlying error kept as a [`ConfigError`]'s [`source`](std::error::Error::source).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a builder refused its configuration. Returned as a `Result`; builders never panic.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable of what was expected.
    Pem {
        /// The file (empty when the PEM came from memory).
        path: PathBuf,
        /// What was wrong, in a few words.
        reason: &'static str,
    },
    /// rustls refused the TLS configuration.
    Tls(rustls::Error),
    /// A key, JWKS document or secret could not be used.
    Key {
        /// What was wrong with it (never the key material).
        reason: String,
        /// The parser's error, when there is one (a JWKS that is not JSON, say).
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A URL is unusable: not an `https` URL (see `insecure_allow_http`).
    Url {
        /// The option that holds it (`jwks_url`, `issuer`, `endpoint`...).
        option: &'static str,
        /// The URL as given.
        url: String,
        /// What is wrong with it, in a few words.
        reason: &'static str,
    },
    /// An option has a value that cannot work, or options that do not go together.
    Invalid {
        /// The option (builder method, setting or metadata field) at fault.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
        /// The underlying error, when there is one (the HTTP client could not be built, say).
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No crypto provider is available for `library`: neither of certbound's backend features
    /// (`aws-lc-rs`, `rust-crypto`) is enabled and the application installed none.
    NoCryptoProvider {
        /// The library without a provider: `"rustls"` or `"jsonwebtoken"`.
        library: &'static str,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] without an underlying error.
    pub(crate) fn invalid(option: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            option,
            reason: reason.into(),
            source: None,
        }
    }

    /// [`ConfigError::Invalid`] caused by `source`.
    pub(crate) fn invalid_because(
        option: &'static str,
        reason: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Invalid {
            option,
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// [`ConfigError::Key`], with the parser's error when there is one.
    pub(crate) fn key(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Key {
            reason: reason.into(),
            source,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Pem { path, reason } if path.as_os_str().is_empty() => {
                write!(f, "invalid PEM: {reason}")
            }
            Self::Pem { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Tls(e) => write!(f, "invalid TLS configuration: {e}"),
            Self::Key { reason, .. } => write!(f, "unusable key: {reason}"),
            Self::Url {
                option,
                url,
                reason,
            } => write!(f, "invalid URL for {option} ({url:?}): {reason}"),
            Self::Invalid { option, reason, .. } => write!(f, "invalid {option}: {reason}"),
            Self::NoCryptoProvider { library } => write!(
                f,
                "no {library} crypto provider: enable certbound's `aws-lc-rs` or `rust-crypto` \
                 feature, or call {library}::crypto::CryptoProvider::install_default first"
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Tls(e) => Some(e),
            Self::Key {
                source: Some(source),
                ..
            }
            | Self::Invalid {
                source: Some(source),
                ..
            } => Some(&**source),
            _ => None,
        }
    }
}

impl From<rustls::Error> for ConfigError {
    fn from(e: rustls::Error) -> Self {
        Self::Tls(e)
    }
}

/// What kind of failure rejected a request. Each kind maps to exactly one row of the rejection
/// table (see [`crate::challenge`]) and owns its fixed [`description`](Self::description).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The request carries no bearer token (no `Authorization` header, or another scheme).
    MissingToken,
    /// The `Authorization` header is malformed: empty token, bad b64token syntax, two headers,
    /// or a token in the query string.
    InvalidRequest,
    /// The token is not a valid JWT for this resource server: syntax, signature, algorithm,
    /// `typ`, `iss`, `aud`, or claims of the wrong shape.
    InvalidToken,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The token's `nbf` is in the future.
    TokenNotYetValid,
    /// The token is not (or no longer) active according to the authorization server.
    TokenInactive,
    /// No key of the authorization server matches the token's `kid` and algorithm.
    UnknownKey,
    /// The connection presented no client certificate.
    MissingCertificate,
    /// The token is bound to another certificate (`cnf.x5t#S256` mismatch).
    CertificateMismatch,
    /// The token has no `cnf.x5t#S256` binding and binding is required.
    UnboundToken,
    /// The token lacks a scope the route requires.
    InsufficientScope,
    /// The user authentication behind the token is not enough for the route (RFC 9470): its
    /// `acr` is missing or not one the route accepts, or its `auth_time` is missing, older than
    /// the route's `max_age`, or in the future.
    InsufficientUserAuthentication,
    /// The token-signing keys could not be fetched and none are cached.
    KeysUnavailable,
    /// The introspection endpoint could not be asked: unreachable, timed out, or answered with
    /// an HTTP error status. Nothing about the token is known, so the request is refused.
    IntrospectionUnavailable,
    /// The server is misconfigured: no certificate source, or a layer missing.
    Misconfigured,
    /// The DPoP proof fails a check of RFC 9449 §4.3: missing, two `DPoP` headers, malformed,
    /// wrong `typ` or `alg`, a private or unusable `jwk`, a bad signature, `htm`, `htu`,
    /// `iat` or `ath` not those of the request, or a replayed `jti`.
    InvalidDpopProof,
    /// The server requires a nonce it issued in DPoP proofs, and the proof has none, a stale
    /// one, or a forged one (RFC 9449 §9). The rejection carries a fresh `DPoP-Nonce`.
    UseDpopNonce,
    /// The DPoP proof is valid but signed by another key than the one the token is bound to
    /// (`cnf.jkt`).
    DpopKeyMismatch,
    /// A DPoP-bound token (`cnf.jkt`) presented with the `Bearer` scheme (RFC 9449 §7.2: a
    /// downgrade).
    DpopTokenAsBearer,
    /// The DPoP replay store (where proof identifiers are recorded) could not answer:
    /// unreachable, timed out, or full. Nothing is known about the proof's freshness, so the
    /// request is refused.
    ReplayStoreUnavailable,
}

impl AuthErrorKind {
    /// The kind's fixed, client-facing text: the `error_description` of its challenge and the
    /// `grpc-message` of its gRPC status. Never token material.
    pub const fn description(self) -> &'static str {
        match self {
            Self::MissingToken => "no access token",
            Self::InvalidRequest => "malformed authorization header",
            Self::InvalidToken => "invalid access token",
            Self::TokenExpired => "access token expired",
            Self::TokenNotYetValid => "access token not yet valid",
            Self::TokenInactive => "access token not active",
            Self::UnknownKey => "unknown signing key",
            Self::MissingCertificate => "client certificate required",
            Self::CertificateMismatch => "access token bound to another certificate",
            Self::UnboundToken => "access token not sender-constrained",
            Self::InsufficientScope => "insufficient scope",
            Self::InsufficientUserAuthentication => "insufficient user authentication",
            Self::KeysUnavailable => "token validation temporarily unavailable",
            Self::IntrospectionUnavailable => "token introspection temporarily unavailable",
            Self::Misconfigured => "server misconfigured",
            Self::InvalidDpopProof => "invalid DPoP proof",
            Self::UseDpopNonce => "a DPoP nonce from the server is required",
            Self::DpopKeyMismatch => "access token bound to another DPoP key",
            Self::DpopTokenAsBearer => "DPoP-bound access token presented as a bearer token",
            Self::ReplayStoreUnavailable => "DPoP replay state unavailable",
        }
    }
}

impl AuthErrorKind {
    /// The kind's name in snake_case: the `reason` label of `certbound_requests_total`.
    pub const fn snake_case(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::TokenInactive => "token_inactive",
            Self::UnknownKey => "unknown_key",
            Self::MissingCertificate => "missing_certificate",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::UnboundToken => "unbound_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InsufficientUserAuthentication => "insufficient_user_authentication",
            Self::KeysUnavailable => "keys_unavailable",
            Self::IntrospectionUnavailable => "introspection_unavailable",
            Self::Misconfigured => "misconfigured",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
            Self::DpopTokenAsBearer => "dpop_token_as_bearer",
            Self::ReplayStoreUnavailable => "replay_store_unavailable",
        }
    }
}

/// A rejected request: an opaque error with a [`kind`](AuthError::kind), a fixed
/// [`detail`](AuthError::detail) for logs, and where there is one the upstream cause as its
/// [`source`](std::error::Error::source) (the HTTP client's error behind a `503`, say).
///
/// Its `Display` is short fixed text; it never contains token material.
#[derive(Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    detail: &'static str,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl AuthError {
    /// An error of `kind` with the kind's standard description.
    pub const fn new(kind: AuthErrorKind) -> Self {
        Self::with_detail(kind, kind.description())
    }

    /// An error of `kind` with a more precise fixed text, for logs and for applications that
    /// read the [`AuthError`] a rejection carries. The client still sees only the kind's
    /// [`description`](AuthErrorKind::description). A third-party validator uses this to say
    /// why it refused a token; the text must hold no token material.
    pub const fn with_detail(kind: AuthErrorKind, detail: &'static str) -> Self {
        Self {
            kind,
            detail,
            source: None,
        }
    }

    /// The one answer of every certbound future polled again after it completed: a contract
    /// violation by the caller, answered as a server error and never as a success.
    pub(crate) const fn polled_after_completion() -> Self {
        Self::with_detail(
            AuthErrorKind::Misconfigured,
            "response future polled after completion",
        )
    }

    /// Records the underlying cause (for example the HTTP client's error when an upstream
    /// could not be reached), returned by [`source`](std::error::Error::source). The cause is
    /// never sent to the client; make sure its `Display` holds no token material.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub const fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The precise fixed description of this failure (what is traced; for the client-facing
    /// `error_description` see [`crate::challenge::Challenge`]).
    pub const fn detail(&self) -> &'static str {
        self.detail
    }
}

impl From<AuthErrorKind> for AuthError {
    fn from(kind: AuthErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail)
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
