//! [`JwtValidator`]: local validation of JWT access tokens (RFC 9068) with jsonwebtoken.
//!
//! - Algorithms: an allow-list, asymmetric only by default. `none` is never accepted; HMAC
//!   (`HS*`) only with a secret configured through [`hmac_secret`](JwtValidatorBuilder::hmac_secret),
//!   and then only with that secret, never with a public key.
//! - Claims: `iss` and `aud` must match, `exp` is required, `exp` and `nbf` are checked with a
//!   leeway (60 s by default); optionally `typ` must be `at+jwt` (RFC 9068 §2.1).
//! - Keys: a static JWKS, PEM public keys, a JWKS URL, or discovery from the issuer
//!   (RFC 8414, then OpenID Connect Discovery). Remote keys are cached, refreshed in the
//!   background when old, and refreshed at once (at most every 10 s by default) when a token
//!   names an unknown `kid`.
//!
//! # Example
//! ```
//! use certbound::JwtValidator;
//!
//! # fn main() -> Result<(), certbound::ConfigError> {
//! let validator = JwtValidator::builder("https://as.example", "https://api.example")
//!     .jwks_json(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
//!         "x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q",
//!         "y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#)
//!     .build()?;
//! # let _ = validator; Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value};

use crate::support::cache::{entry_bytes, Begin, Keep, ResultCache, TokenKey};
use super::jwks::{
    check_url, fingerprint, KeyLocation, KeySet, RemoteKeys, RemoteSettings, VerificationKey,
    RSA_ALGS,
};
use super::{AccessToken, PresentedToken, TokenFuture, ValidateToken};
use crate::error::{AuthError, AuthErrorKind, ConfigError};

const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Validates JWT access tokens. Cheap to clone; clones share the key cache.
#[derive(Clone)]
pub struct JwtValidator(Arc<Inner>);

struct Inner {
    keys: Keys,
    /// One prepared `Validation` per allowed algorithm (no allocation per request).
    validations: Vec<(Algorithm, Validation)>,
    require_at_jwt: bool,
    /// Validated tokens by SHA-256 of the token; `None` when disabled.
    cache: Option<Arc<ResultCache<Verified>>>,
    cache_ttl: Duration,
}

/// A token that passed validation, and the key (set) that verified its signature.
#[derive(Clone)]
struct Verified {
    token: AccessToken,
    generation: u64,
    fingerprint: [u8; 32],
}

enum Keys {
    Static(Arc<KeySet>),
    Remote(Arc<RemoteKeys>),
}

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<_> = self.0.validations.iter().map(|(a, _)| *a).collect();
        f.debug_struct("JwtValidator")
            .field("algorithms", &algorithms)
            .field("remote_keys", &matches!(self.0.keys, Keys::Remote(_)))
            .field("require_at_jwt", &self.0.require_at_jwt)
            .field("cache", &self.0.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// Starts a validator for tokens issued by `issuer` (exact `iss`) for `audience` (one of
    /// the `aud` values).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> JwtValidatorBuilder {
        JwtValidatorBuilder {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            algorithms: None,
            leeway: Duration::from_secs(60),
            require_at_jwt: false,
            jwks_json: Vec::new(),
            jwks_files: Vec::new(),
            pem_keys: Vec::new(),
            hmac: None,
            remote: None,
            http_client: None,
            extra_roots: Vec::new(),
            public_roots: true,
            cache: true,
            cache_ttl: Duration::from_secs(300),
            max_cache_entries: 100_000,
            max_cache_bytes: 64 * 1024 * 1024,
            settings: RemoteSettings {
                min_refresh_interval: Duration::from_secs(10),
                max_age: Duration::from_secs(300),
                fetch_timeout: Duration::from_secs(5),
                max_response_bytes: 256 * 1024,
                allow_http: false,
            },
        }
    }

    /// Fetches the remote keys now (discovery included) instead of on the first request.
    /// Does nothing for static keys.
    ///
    /// # Errors
    /// [`KeyFetchError`] with the reason (unreachable, untrusted certificate, HTTP status,
    /// malformed document...) when no keys could be fetched.
    pub async fn prefetch(&self) -> Result<(), KeyFetchError> {
        match &self.0.keys {
            Keys::Static(_) => Ok(()),
            Keys::Remote(remote) => match remote.refresh().await {
                Some(_) => Ok(()),
                None => Err(KeyFetchError(
                    remote
                        .last_error()
                        .unwrap_or_else(|| "no keys fetched yet".to_owned()),
                )),
            },
        }
    }

    /// Validates `token` with the keys at hand; `None` when the keys must be fetched first.
    fn validate_now(&self, token: &str) -> Result<Verified, Pending> {
        let mut buf = [0u8; HEADER_BUF];
        let header = JoseHeader::read(token, &mut buf).map_err(Pending::Done)?;
        let alg = Algorithm::from_str(&header.alg)
            .map_err(|_| Pending::Done(invalid("unknown or none algorithm")))?;
        let Some((alg, validation)) = self.0.validations.iter().find(|(a, _)| *a == alg) else {
            return Err(Pending::Done(invalid("algorithm not allowed")));
        };
        if self.0.require_at_jwt && !header.typ.as_deref().is_some_and(is_at_jwt) {
            return Err(Pending::Done(invalid("typ is not at+jwt")));
        }
        let kid = header.kid.as_deref();
        let keys = match &self.0.keys {
            Keys::Static(keys) => Arc::clone(keys),
            Keys::Remote(remote) => match remote.current() {
                Some(keys) => keys,
                None => return Err(Pending::Fetch),
            },
        };
        match verify_with(&keys, token, kid, *alg, validation) {
            Err(e)
                if e.kind() == AuthErrorKind::UnknownKey
                    && matches!(self.0.keys, Keys::Remote(_)) =>
            {
                Err(Pending::Fetch)
            }
            other => other.map_err(Pending::Done),
        }
    }
}

/// Room for a decoded JOSE header on the stack (longer headers are decoded on the heap).
const HEADER_BUF: usize = 1024;

/// The JOSE header fields certbound acts on, read before choosing the key. jsonwebtoken's own
/// `decode` reads the header again and checks the algorithm against the one chosen here, so a
/// disagreement between the two parsers can only reject.
#[derive(serde::Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
}

impl<'a> JoseHeader<'a> {
    fn read(token: &str, buf: &'a mut [u8; HEADER_BUF]) -> Result<Self, AuthError> {
        let malformed = || invalid("malformed JWT or JOSE header");
        let segment = token.split('.').next().unwrap_or_default().as_bytes();
        if segment.len() > HEADER_BUF {
            // Oversized headers are rare and suspicious; only they are decoded on the heap.
            let decoded = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
            return serde_json::from_slice::<JoseHeader<'_>>(&decoded)
                .map(JoseHeader::into_owned)
                .map_err(|_| malformed());
        }
        // base64 needs at most 3/4 of the encoded length, so this always fits in `buf`.
        let n = URL_SAFE_NO_PAD
            .decode_slice(segment, buf)
            .map_err(|_| malformed())?;
        serde_json::from_slice(&buf[..n]).map_err(|_| malformed())
    }

    fn into_owned(self) -> JoseHeader<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        JoseHeader {
            alg: own(self.alg),
            kid: self.kid.map(own),
            typ: self.typ.map(own),
        }
    }
}

enum Pending {
    Done(AuthError),
    Fetch,
}

fn invalid(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::InvalidToken, detail)
}

/// RFC 9068 §2.1 / RFC 8725 §3.11: `at+jwt`, optionally with the `application/` prefix.
fn is_at_jwt(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

fn verify_with(
    keys: &KeySet,
    token: &str,
    kid: Option<&str>,
    alg: Algorithm,
    validation: &Validation,
) -> Result<Verified, AuthError> {
    let mut last = AuthError::with_detail(
        AuthErrorKind::UnknownKey,
        "no key for this kid and algorithm",
    );
    for candidate in keys.candidates(kid, alg) {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, validation) {
            Ok(data) => {
                return Ok(Verified {
                    token: AccessToken::from_claims(data.claims)?,
                    generation: keys.generation(),
                    fingerprint: candidate.fingerprint,
                })
            }
            Err(e) => {
                last = map_jwt_error(e.kind());
                // Only a bad signature is worth trying the next key for; anything else is
                // about the token itself.
                if !matches!(e.kind(), JwtErrorKind::InvalidSignature) {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

fn map_jwt_error(kind: &JwtErrorKind) -> AuthError {
    use AuthErrorKind as K;
    match kind {
        JwtErrorKind::ExpiredSignature => AuthError::with_detail(K::TokenExpired, "token expired"),
        JwtErrorKind::ImmatureSignature => {
            AuthError::with_detail(K::TokenNotYetValid, "token not yet valid (nbf)")
        }
        JwtErrorKind::InvalidSignature => invalid("bad signature"),
        JwtErrorKind::InvalidIssuer => invalid("wrong issuer"),
        JwtErrorKind::InvalidAudience => invalid("wrong audience"),
        JwtErrorKind::MissingRequiredClaim(_) => invalid("a required claim is missing"),
        JwtErrorKind::InvalidAlgorithm => invalid("algorithm does not fit the key"),
        _ => invalid("malformed JWT"),
    }
}

impl ValidateToken for JwtValidator {
    type Future = TokenFuture;

    fn validate(&self, token: &str) -> TokenFuture {
        self.validate_presented(PresentedToken::new(token, None))
    }

    fn validate_presented(&self, presented: PresentedToken<'_>) -> TokenFuture {
        let token = presented.token();
        let Some(cache) = &self.0.cache else {
            return self.validate_uncached(token);
        };
        let key = presented.key();
        if let Some(hit) = cache.get(&key) {
            if self.still_trusted(&hit) {
                return TokenFuture::ready(Ok(hit.token));
            }
            // The key that verified it left the key set: verify again (and fail, most likely).
            cache.remove(&key);
        }
        self.validate_miss(cache, token, key)
    }
}

impl JwtValidator {
    /// A cache miss (or a hit no longer trusted). Out of line: the hit path above runs on
    /// nearly every request, and stays a few cache lines of code.
    #[inline(never)]
    fn validate_miss(
        &self,
        cache: &Arc<ResultCache<Verified>>,
        token: &str,
        key: TokenKey,
    ) -> TokenFuture {
        match cache.begin(key) {
            // Another request is verifying this very token right now: wait for its outcome
            // (concurrent first uses verify the signature once).
            Begin::Wait(waiter) => {
                let this = self.clone();
                let token = token.to_owned();
                TokenFuture::fetching(async move {
                    match waiter.wait().await {
                        Some(verified) => Ok(verified.token),
                        // It failed: this request finds out why for itself.
                        None => this.validate_uncached(&token).await,
                    }
                })
            }
            Begin::Lead(leader) => match self.validate_now(token) {
                Ok(verified) => {
                    let keep = self.keep(token, &verified);
                    let access = verified.token.clone();
                    leader.finish(verified, keep);
                    TokenFuture::ready(Ok(access))
                }
                // Failures are not cached; the waiters (if any) validate for themselves.
                Err(Pending::Done(e)) => TokenFuture::ready(Err(e)),
                Err(Pending::Fetch) => {
                    drop(leader);
                    self.validate_uncached(token)
                }
            },
        }
    }

    /// Whether a cached validation still stands: the key set is the one it was verified with,
    /// or still holds that key.
    fn still_trusted(&self, hit: &Verified) -> bool {
        let holds =
            |keys: &KeySet| keys.generation() == hit.generation || keys.contains(&hit.fingerprint);
        match &self.0.keys {
            Keys::Static(keys) => holds(keys),
            Keys::Remote(remote) => remote.current().is_some_and(|keys| holds(&keys)),
        }
    }

    /// How long a validated token is kept: until its `exp`, at most the configured time.
    fn keep(&self, token: &str, verified: &Verified) -> Keep {
        let now = jsonwebtoken::get_current_timestamp();
        let ttl = match verified.token.claim("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now => self.0.cache_ttl.min(Duration::from_secs(exp - now)),
            // No usable exp (or already within the leeway after it): not cached.
            _ => Duration::ZERO,
        };
        Keep {
            ttl,
            // The payload is most of the token; base64 makes it longer than its JSON, so the
            // token's length is a safe stand-in for the claims' JSON length.
            bytes: entry_bytes(token.len()),
        }
    }

    /// Validation without the cache: at once when the keys are at hand, else after fetching.
    fn validate_uncached(&self, token: &str) -> TokenFuture {
        match self.validate_now(token) {
            Ok(verified) => TokenFuture::ready(Ok(verified.token)),
            Err(Pending::Done(e)) => TokenFuture::ready(Err(e)),
            Err(Pending::Fetch) => {
                // The slow path only: the keys are fetched (single flight) and the token checked
                // again. Only here is the token copied.
                let this = self.clone();
                let token = token.to_owned();
                TokenFuture::fetching(async move {
                    let Keys::Remote(remote) = &this.0.keys else {
                        return Err(AuthError::new(AuthErrorKind::UnknownKey));
                    };
                    if remote.refresh().await.is_none() {
                        return Err(AuthError::with_detail(
                            AuthErrorKind::KeysUnavailable,
                            "keys could not be fetched and none are cached",
                        ));
                    }
                    match this.validate_now(&token) {
                        Ok(verified) => Ok(verified.token),
                        Err(Pending::Done(e)) => Err(e),
                        Err(Pending::Fetch) => Err(AuthError::with_detail(
                            AuthErrorKind::UnknownKey,
                            "no key for this kid and algorithm after refresh",
                        )),
                    }
                })
            }
        }
    }
}

/// Why remote keys could not be fetched (see [`JwtValidator::prefetch`]).
#[derive(Debug, Clone)]
pub struct KeyFetchError(String);

impl fmt::Display for KeyFetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot fetch keys: {}", self.0)
    }
}

impl std::error::Error for KeyFetchError {}

/// Builder of a [`JwtValidator`]. Options are checked by [`build`](Self::build).
#[must_use]
pub struct JwtValidatorBuilder {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    require_at_jwt: bool,
    jwks_json: Vec<String>,
    jwks_files: Vec<PathBuf>,
    pem_keys: Vec<(Algorithm, Vec<u8>)>,
    hmac: Option<Vec<u8>>,
    remote: Option<KeyLocation>,
    http_client: Option<reqwest::Client>,
    extra_roots: Vec<CertificateDer<'static>>,
    public_roots: bool,
    settings: RemoteSettings,
    cache: bool,
    cache_ttl: Duration,
    max_cache_entries: u64,
    max_cache_bytes: u64,
}

impl fmt::Debug for JwtValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HMAC secret stays out of Debug output.
        f.debug_struct("JwtValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("remote", &self.remote)
            .field("hmac_secret", &self.hmac.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl JwtValidatorBuilder {
    /// Accepts one more audience.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The allowed signature algorithms (default: every asymmetric one). `HS*` requires
    /// [`hmac_secret`](Self::hmac_secret).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the JOSE header `typ` to be `at+jwt` (RFC 9068 §2.1).
    pub fn require_at_jwt(mut self) -> Self {
        self.require_at_jwt = true;
        self
    }

    /// Adds the keys of a JWKS document.
    pub fn jwks_json(mut self, jwks: impl Into<String>) -> Self {
        self.jwks_json.push(jwks.into());
        self
    }

    /// Adds the keys of a JWKS file (read by [`build`](Self::build), at start-up).
    pub fn jwks_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwks_files.push(path.into());
        self
    }

    /// Adds a PEM public key (SPKI, or PKCS#1 for RSA) for `algorithm`. PEM keys have no `kid`:
    /// they are tried for tokens whose `kid` matches no JWK.
    pub fn public_key_pem(mut self, algorithm: Algorithm, pem: impl Into<Vec<u8>>) -> Self {
        self.pem_keys.push((algorithm, pem.into()));
        self
    }

    /// Accepts `HS256`/`HS384`/`HS512` tokens signed with `secret` (at least 32 bytes). Add the
    /// HMAC algorithms to [`algorithms`](Self::algorithms) as well; by default HMAC is off.
    pub fn hmac_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.hmac = Some(secret.into());
        self
    }

    /// Fetches keys from this JWKS URL (https).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.remote = Some(KeyLocation::Jwks(url.into()));
        self
    }

    /// Finds the JWKS URL through the issuer's metadata: RFC 8414
    /// `/.well-known/oauth-authorization-server`, then `/.well-known/openid-configuration`. The
    /// metadata's `issuer` must equal the configured issuer.
    pub fn discover(mut self) -> Self {
        self.remote = Some(KeyLocation::Discover(self.issuer.clone()));
        self
    }

    /// The HTTP client for remote keys (for instance with an mTLS identity or a proxy). By
    /// default certbound builds one with rustls, the `webpki-roots` CAs and any
    /// [`trust_root`](Self::trust_root)s.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Trusts one more CA for https to the JWKS / discovery endpoints (ignored with a custom
    /// [`http_client`](Self::http_client)).
    pub fn trust_root(mut self, ca: CertificateDer<'static>) -> Self {
        self.extra_roots.push(ca);
        self
    }

    /// Trusts only the [`trust_root`](Self::trust_root)s, not the public `webpki-roots` CAs.
    pub fn only_trust_roots(mut self) -> Self {
        self.public_roots = false;
        self
    }

    /// The shortest time between two fetches of the remote keys (default 10 s). An unknown
    /// `kid` triggers a fetch, at most this often.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.min_refresh_interval = interval;
        self
    }

    /// Age after which cached remote keys are refreshed in the background (default 5 min).
    pub fn max_key_age(mut self, age: Duration) -> Self {
        self.settings.max_age = age;
        self
    }

    /// Time limit for one fetch, discovery included (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.settings.fetch_timeout = timeout;
        self
    }

    /// Largest JWKS or metadata response accepted (default 256 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_response_bytes = bytes;
        self
    }

    /// Longest time a validated token is reused without verifying its signature again
    /// (default 5 min; never beyond the token's `exp`).
    ///
    /// The cache makes the common case, the same token on a keep-alive connection, nearly
    /// free: a hit costs a comparison with the connection's last token (or a SHA-256 of the
    /// token when it changed) and a lookup instead of a signature check. What
    /// a hit skips is only the signature and claims check of a token already verified: the
    /// binding to the client certificate is still checked on every request, entries end at
    /// `exp`, and an entry is dropped as soon as a refreshed key set no longer holds the key
    /// that verified it. Entries are keyed by SHA-256 of the token, never the token itself.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Turns the validated-token cache off: every request verifies the signature.
    pub fn no_cache(mut self) -> Self {
        self.cache = false;
        self
    }

    /// Most validated tokens kept at once (default 100 000).
    pub fn max_cache_entries(mut self, entries: u64) -> Self {
        self.max_cache_entries = entries;
        self
    }

    /// Approximate memory the validated-token cache may use (default 64 MiB).
    pub fn max_cache_bytes(mut self, bytes: u64) -> Self {
        self.max_cache_bytes = bytes;
        self
    }

    /// Allows plain `http://` JWKS and discovery URLs. Insecure: an attacker on the path can
    /// substitute keys and forge any token. For local development only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.settings.allow_http = true;
        self
    }

    /// Checks the configuration and builds the validator. Reads key files synchronously; no
    /// network access (remote keys are fetched on first use or by
    /// [`JwtValidator::prefetch`]).
    ///
    /// # Errors
    /// No key source, unusable keys, HMAC algorithms without a secret (or a secret shorter than
    /// 32 bytes), a non-https URL, or an invalid issuer / audience.
    pub fn build(self) -> Result<JwtValidator, ConfigError> {
        crate::support::crypto::ensure_jwt_provider()?;
        if self.issuer.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid(
                "issuer and audience must not be empty".into(),
            ));
        }
        let algorithms = self.algorithms.clone().unwrap_or_else(|| {
            let mut algs = ASYMMETRIC.to_vec();
            if self.hmac.is_some() {
                algs.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
            }
            algs
        });
        if algorithms.is_empty() {
            return Err(ConfigError::Invalid("no algorithm allowed".into()));
        }
        let wants_hmac = algorithms
            .iter()
            .any(|a| a.family() == AlgorithmFamily::Hmac);
        match &self.hmac {
            None if wants_hmac => {
                return Err(ConfigError::Invalid(
                    "HS* algorithms need an hmac_secret".into(),
                ));
            }
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::Key("HMAC secret shorter than 32 bytes".into()));
            }
            _ => {}
        }

        let mut keys = KeySet::default();
        for json in &self.jwks_json {
            keys.extend(KeySet::from_jwks_json(json.as_bytes()).map_err(ConfigError::Key)?);
        }
        for path in &self.jwks_files {
            let json = std::fs::read(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            keys.extend(
                KeySet::from_jwks_json(&json)
                    .map_err(|e| ConfigError::Key(format!("{}: {e}", path.display())))?,
            );
        }
        for (alg, pem) in &self.pem_keys {
            let key = match alg.family() {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
                AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
                _ => {
                    return Err(ConfigError::Key(
                        "PEM keys are for asymmetric algorithms".into(),
                    ))
                }
            }
            .map_err(|e| ConfigError::Key(format!("PEM public key: {e}")))?;
            let algs = match alg.family() {
                AlgorithmFamily::Rsa => RSA_ALGS.to_vec(),
                _ => vec![*alg],
            };
            keys.push(VerificationKey {
                kid: None,
                algorithms: algs,
                key,
                fingerprint: fingerprint(pem),
            });
        }
        if let (true, Some(secret)) = (wants_hmac, &self.hmac) {
            keys.push(VerificationKey {
                kid: None,
                algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
                key: DecodingKey::from_secret(secret),
                fingerprint: fingerprint(secret),
            });
        }

        let keys = match self.remote {
            Some(location) => {
                if keys.len() > 0 {
                    return Err(ConfigError::Invalid(
                        "choose either remote keys (jwks_url / discover) or static keys".into(),
                    ));
                }
                let url = match &location {
                    KeyLocation::Jwks(url) | KeyLocation::Discover(url) => url,
                };
                check_url(url, self.settings.allow_http).map_err(ConfigError::Url)?;
                let client = match self.http_client {
                    Some(client) => client,
                    None => crate::upstream::default_client(
                        &self.extra_roots,
                        self.public_roots,
                        None,
                        self.settings.fetch_timeout,
                        self.settings.allow_http,
                    )?,
                };
                Keys::Remote(Arc::new(RemoteKeys::new(location, client, self.settings)))
            }
            None if keys.len() == 0 => {
                return Err(ConfigError::Invalid(
                    "no verification keys: use jwks_json, jwks_file, public_key_pem, jwks_url or discover".into(),
                ));
            }
            None => Keys::Static(Arc::new(keys)),
        };

        let leeway = self.leeway.as_secs();
        let validations = algorithms
            .into_iter()
            .map(|alg| {
                let mut v = Validation::new(alg);
                v.set_issuer(&[&self.issuer]);
                v.set_audience(&self.audiences);
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.validate_nbf = true;
                v.leeway = leeway;
                (alg, v)
            })
            .collect();
        Ok(JwtValidator(Arc::new(Inner {
            keys,
            validations,
            require_at_jwt: self.require_at_jwt,
            cache: self.cache.then(|| {
                Arc::new(ResultCache::new(
                    self.max_cache_entries,
                    self.max_cache_bytes,
                ))
            }),
            cache_ttl: self.cache_ttl,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hmac_validator() -> JwtValidator {
        JwtValidator::builder("https://as.test", "https://api.test")
            .hmac_secret(SECRET)
            .algorithms([Algorithm::HS256])
            .leeway(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    fn sign(claims: Value) -> String {
        crate::support::crypto::ensure_jwt_provider().expect("a crypto backend");
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://as.test", "aud": "https://api.test", "sub": "alice",
               "exp": now() + 60, "cnf": {"x5t#S256": TP}})
    }

    fn check(v: &JwtValidator, token: &str) -> Result<AccessToken, AuthErrorKind> {
        match v.validate_now(token) {
            Ok(verified) => Ok(verified.token),
            Err(Pending::Done(e)) => Err(e.kind()),
            Err(Pending::Fetch) => Err(AuthErrorKind::KeysUnavailable),
        }
    }

    #[test]
    fn a_valid_token_yields_its_binding() {
        let t = check(&hmac_validator(), &sign(claims())).unwrap();
        assert_eq!(t.subject(), Some("alice"));
        assert_eq!(t.thumbprint().unwrap().to_string(), TP);
    }

    #[test]
    fn lifetime_issuer_and_audience_are_checked() {
        let v = hmac_validator();
        let mut c = claims();
        c["exp"] = json!(now() - 60);
        assert_eq!(
            check(&v, &sign(c)).unwrap_err(),
            AuthErrorKind::TokenExpired
        );
        let mut c = claims();
        c["nbf"] = json!(now() + 60);
        assert_eq!(
            check(&v, &sign(c)).unwrap_err(),
            AuthErrorKind::TokenNotYetValid
        );
        let mut c = claims();
        c["iss"] = json!("https://evil.test");
        assert_eq!(
            check(&v, &sign(c)).unwrap_err(),
            AuthErrorKind::InvalidToken
        );
        let mut c = claims();
        c["aud"] = json!(["https://other.test"]);
        assert_eq!(
            check(&v, &sign(c)).unwrap_err(),
            AuthErrorKind::InvalidToken
        );
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            check(&v, &sign(c)).unwrap_err(),
            AuthErrorKind::InvalidToken
        );
    }

    #[test]
    fn algorithms_outside_the_allow_list_are_refused() {
        let v = JwtValidator::builder("https://as.test", "https://api.test")
            .hmac_secret(SECRET)
            .algorithms([Algorithm::HS384])
            .build()
            .unwrap();
        assert_eq!(
            check(&v, &sign(claims())).unwrap_err(),
            AuthErrorKind::InvalidToken
        );
    }

    #[test]
    fn garbage_is_an_invalid_token_not_a_panic() {
        let v = hmac_validator();
        for token in [
            "",
            ".",
            "..",
            "a.b.c",
            "eyJhbGciOiJub25lIn0.e30.",
            "\u{0}",
            "a.b.c.d",
        ] {
            assert_eq!(
                check(&v, token).unwrap_err(),
                AuthErrorKind::InvalidToken,
                "{token:?}"
            );
        }
    }

    #[test]
    fn hmac_needs_an_explicit_long_secret() {
        let b = || JwtValidator::builder("https://as.test", "https://api.test");
        assert!(b()
            .algorithms([Algorithm::HS256])
            .jwks_json(r#"{"keys":[]}"#)
            .build()
            .is_err());
        assert!(b().hmac_secret(&b"short"[..]).build().is_err());
        assert!(b().build().is_err(), "no key source");
        assert!(
            b().jwks_url("http://as.test/jwks").build().is_err(),
            "plain http"
        );
        assert!(b()
            .jwks_url("http://as.test/jwks")
            .insecure_allow_http()
            .build()
            .is_ok());
    }

    #[test]
    fn jose_headers_are_read_from_escaped_and_oversized_json() {
        let enc = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let mut buf = [0u8; HEADER_BUF];
        let h = JoseHeader::read(
            &format!("{}.x.y", enc(r#"{"alg":"ES256","kid":"a\u0062"}"#)),
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            (&*h.alg, h.kid.as_deref(), h.typ.as_deref()),
            ("ES256", Some("ab"), None)
        );
        let padding = "p".repeat(2 * HEADER_BUF);
        let big = format!(
            "{}.x.y",
            enc(&format!(
                r#"{{"alg":"RS256","typ":"at+jwt","x":"{padding}"}}"#
            ))
        );
        let mut buf = [0u8; HEADER_BUF];
        let h = JoseHeader::read(&big, &mut buf).unwrap();
        assert_eq!((&*h.alg, h.typ.as_deref()), ("RS256", Some("at+jwt")));
        for bad in [
            r#"{"alg":"ES256","alg":"HS256"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":5}"#,
            "[]",
        ] {
            let mut buf = [0u8; HEADER_BUF];
            assert!(
                JoseHeader::read(&format!("{}.x.y", enc(bad)), &mut buf).is_err(),
                "{bad}"
            );
        }
        let mut buf = [0u8; HEADER_BUF];
        assert!(JoseHeader::read("!!!.x.y", &mut buf).is_err());
    }

    #[test]
    fn es256_tokens_verify_with_the_selected_backend() {
        // Runs under each crypto feature in CI: aws-lc-rs, and rust-crypto alone.
        let key = crate::test_helpers::p256_key();
        let v = JwtValidator::builder("https://as.test", "https://api.test")
            .public_key_pem(Algorithm::ES256, key.public_key_pem())
            .build()
            .unwrap();
        let signing = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        let token = encode(&Header::new(Algorithm::ES256), &claims(), &signing).unwrap();
        assert_eq!(check(&v, &token).unwrap().subject(), Some("alice"));
        let other = crate::test_helpers::p256_key();
        let forged = encode(
            &Header::new(Algorithm::ES256),
            &claims(),
            &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(check(&v, &forged).unwrap_err(), AuthErrorKind::InvalidToken);
    }

    #[test]
    fn typ_at_jwt_can_be_required() {
        let v = JwtValidator::builder("https://as.test", "https://api.test")
            .hmac_secret(SECRET)
            .algorithms([Algorithm::HS256])
            .require_at_jwt()
            .build()
            .unwrap();
        assert_eq!(
            check(&v, &sign(claims())).unwrap_err(),
            AuthErrorKind::InvalidToken
        );
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+JWT".into());
        let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(check(&v, &token).is_ok());
    }
}
