//! [`JwtValidator`]: local validation of JWT access tokens (RFC 9068): jsonwebtoken's keys and
//! crypto providers, certbound's own reading of the JWS and its claims.
//!
//! The validator (this file) picks the key and runs the check; [`builder`] holds the
//! configuration, [`claims`] the JOSE header and claims rules, [`keys`] the key sets and their
//! remote source.

mod builder;
mod claims;
mod header;
mod jws;
pub(crate) mod keys;
#[cfg(feature = "aws-lc-rs")]
pub(crate) mod native;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::support::jose::SIGNATURE_BUF;
pub use builder::JwtValidatorBuilder;
#[cfg(fuzzing)]
use claims::JoseHeader;
use claims::{invalid, ClaimRules, HEADER_BUF};
use header::Header;
use jws::Jws;
pub(in crate::token) use jws::Payload;
use keys::{KeySet, RemoteKeys};

use super::access::Read;
use super::fields::{Fields, Loose};
use super::{AccessToken, PresentedToken, TokenFuture, ValidateToken};
use crate::error::{AuthError, AuthErrorKind};
use crate::metrics;
use crate::readiness::{Readiness, ReadyFuture};
use crate::support::cache::{jwt_entry_bytes, Begin, Keep, ResultCache, TokenKey};
use crate::support::crypto::{self, JoseProvider};
use crate::support::time::unix_now;
use crate::upstream::FetchError;

/// Validates JWT access tokens (RFC 9068) locally: jsonwebtoken's keys and crypto providers,
/// the JWS and its claims read by certbound. Cheap to clone; clones share the key cache.
///
/// - Algorithms: an allow-list, asymmetric only by default; where `EdDSA` is allowed, RFC
///   9864's `Ed25519` is too (an Ed25519 key either way). `none` is never accepted; HMAC
///   (`HS*`) only with a secret configured through [`hmac_secret`](JwtValidatorBuilder::hmac_secret),
///   and then only with that secret, never with a public key.
/// - Claims: `iss` and `aud` must match, `exp` is required, `exp` and `nbf` are checked with a
///   leeway (60 s by default); optionally `typ` must be `at+jwt` (RFC 9068 §2.1).
/// - Keys: a static JWKS, PEM public keys, a JWKS URL, or discovery from the issuer
///   (RFC 8414, then OpenID Connect Discovery). Remote keys are cached, refreshed in the
///   background when old, and refreshed at once (at most every 10 s by default) when a token
///   names an unknown `kid`.
///
/// # Example
/// ```
/// use certbound::JwtValidator;
///
/// # fn main() -> Result<(), certbound::ConfigError> {
/// let validator = JwtValidator::builder("https://as.example", "https://api.example")
///     .jwks_json(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
///         "x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q",
///         "y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#)
///     .build()?;
/// # let _ = validator; Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtValidator(Arc<Inner>);

struct Inner {
    /// Tells this validator's cached validations from those of another in a shared cache
    /// (an issuer replaced in [`Issuers`](crate::Issuers) must not vouch for the old one's).
    id: u64,
    keys: Keys,
    /// The allowed algorithms.
    algorithms: Vec<Algorithm>,
    claims: ClaimRules,
    /// Passed to every verification (never jsonwebtoken's process-wide default).
    provider: JoseProvider,
    /// Whether `provider` is certbound's own aws-lc-rs one: then signatures are verified by
    /// aws-lc-rs directly, against the keys it parsed when they were loaded (see `native`).
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    native: bool,
    require_at_jwt: bool,
    /// Validated tokens by their key (`TokenKey::of_jwt`); `None` when disabled.
    cache: Option<Arc<ResultCache<Verified>>>,
    cache_ttl: Duration,
}

/// A token that passed validation, and the validator and key (set) that verified its signature.
#[derive(Clone)]
pub(in crate::token) struct Verified {
    token: AccessToken,
    validator: u64,
    generation: u64,
    fingerprint: [u8; 32],
    /// The `exp` claim when it is a non-negative integer: how long the validation may be kept.
    expires: Option<u64>,
    /// In a shared cache ([`Issuers`](crate::Issuers)): how the token was routed, for the
    /// fast check of a hit. `None` in a validator's own cache.
    route: Option<Route>,
}

/// A cache hit remembered by the connection that presented the token (see
/// [`PresentedToken::remembered`]), with its cache entry's deadline.
struct Remembered {
    verified: Verified,
    until: tokio::time::Instant,
}

/// How a token in a shared cache was routed: the set's epoch at the time (it changes with
/// every change of the set), the validator (weakly: the cache must not keep a removed one
/// alive), and when a resolved issuer's time is up.
#[derive(Clone)]
pub(in crate::token) struct Route {
    epoch: u64,
    validator: std::sync::Weak<Inner>,
    until: Option<tokio::time::Instant>,
}

enum Keys {
    Static(Arc<KeySet>),
    Remote(Arc<RemoteKeys>),
}

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidator")
            .field("algorithms", &self.0.algorithms)
            .field("remote_keys", &matches!(self.0.keys, Keys::Remote(_)))
            .field("require_at_jwt", &self.0.require_at_jwt)
            .field("cache", &self.0.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// The issuer this validator accepts (its exact `iss`).
    pub fn issuer(&self) -> &str {
        &self.0.claims.issuer
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
                None => Err(KeyFetchError(remote.last_error().map_or_else(
                    || "no keys fetched yet".to_owned(),
                    FetchError::into_message,
                ))),
            },
        }
    }

    /// Validates `token` with the keys at hand; `None` when the keys must be fetched first.
    fn validate_now(&self, token: &str) -> Result<Verified, Pending> {
        self.validate_now_with(token, None)
    }

    /// [`validate_now`](Self::validate_now) with the token's payload decoded and its claims
    /// read already ([`Routed`]: by [`Issuers`](crate::Issuers), to route the token by its
    /// `iss`): neither decoded nor read twice.
    ///
    /// One pass over the token: the header, the signature and the payload are each
    /// base64url-decoded once (the first two onto the stack), the signature is verified before
    /// any claim is read, and the claims are read in one serde pass over the payload's JSON.
    fn validate_now_with(&self, token: &str, routed: Option<Routed>) -> Result<Verified, Pending> {
        let mut buf = [0u8; HEADER_BUF];
        let header = Header::read(token, &mut buf).map_err(Pending::Done)?;
        // `Ed25519` (RFC 9864) wherever `EdDSA` is allowed; the key must be Ed25519 either way.
        let alg = header
            .alg
            .ok_or_else(|| Pending::Done(invalid("unknown or none algorithm")))?;
        if !self.0.algorithms.contains(&alg) {
            return Err(Pending::Done(invalid("algorithm not allowed")));
        }
        if header.crit {
            return Err(Pending::Done(invalid("the JOSE header has crit")));
        }
        if self.0.require_at_jwt && !header.at_jwt {
            return Err(Pending::Done(invalid("typ is not at+jwt")));
        }
        let jws = Jws::split(token).map_err(Pending::Done)?;
        let kid = header.kid();
        let keys = match &self.0.keys {
            Keys::Static(keys) => Arc::clone(keys),
            Keys::Remote(remote) => match remote.current() {
                Some(keys) => keys,
                None => return Err(Pending::Fetch),
            },
        };
        let fingerprint = match self.verify_with(&keys, &jws, kid, alg) {
            Err(e)
                if e.kind() == AuthErrorKind::UnknownKey
                    && matches!(self.0.keys, Keys::Remote(_)) =>
            {
                return Err(Pending::Fetch)
            }
            other => other.map_err(Pending::Done)?,
        };
        // The signature holds: now the claims (or, routed, what reading them found).
        let (payload, claims) = match routed {
            Some(Routed { payload, claims }) => (payload, claims),
            None => {
                let payload = Payload::decode(jws.payload).map_err(Pending::Done)?;
                let claims = self.read_claims(&payload);
                (payload, claims)
            }
        };
        let (read, expires) = claims.map_err(Pending::Done)?;
        Ok(Verified {
            token: AccessToken::from_json(read, payload.into_text()),
            validator: self.0.id,
            generation: keys.generation(),
            fingerprint,
            expires,
            route: None,
        })
    }

    /// The claims of `payload` read in one pass and checked against this validator's rules
    /// (at the present time): what the token keeps ([`Read`]) and its `exp` when it is a
    /// non-negative integer. Only ever acted on once the signature verified.
    fn read_claims(&self, payload: &Payload) -> Result<(Read, Option<u64>), AuthError> {
        let fields = payload.fields()?;
        self.read_fields(payload, &fields)
    }

    /// [`read_claims`](Self::read_claims) of `fields`, read from `payload` already.
    fn read_fields(
        &self,
        payload: &Payload,
        fields: &Fields<'_>,
    ) -> Result<(Read, Option<u64>), AuthError> {
        self.0.claims.check(fields, unix_now())?;
        let read = Read::of(fields, Some(payload.text()))?;
        let expires = fields
            .exp
            .as_ref()
            .and_then(Loose::as_number)
            .and_then(serde_json::Number::as_u64);
        Ok((read, expires))
    }

    /// A token's claims (`fields`, read from `payload` to route the token by its `iss`) checked
    /// by this validator before the signature is verified: one pass over the claims, not two
    /// (~5 800 instructions per new token behind [`Issuers`](crate::Issuers), issue 26). The
    /// outcome is kept as it is, and told only once the signature verified
    /// ([`Routed::new`]): a token is refused for its signature first, for its claims next, as
    /// without routing.
    pub(in crate::token) fn routed_claims(
        &self,
        payload: &Payload,
        fields: &Fields<'_>,
    ) -> RoutedClaims {
        RoutedClaims(self.read_fields(payload, fields))
    }

    /// The fingerprint of the key that verifies the signature: the candidates for `kid` and
    /// `alg` in turn.
    fn verify_with(
        &self,
        keys: &KeySet,
        jws: &Jws<'_>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<[u8; 32], AuthError> {
        let mut candidates = keys.candidates(kid, alg).peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::with_detail(
                AuthErrorKind::UnknownKey,
                "no key for this kid and algorithm",
            ));
        }
        let mut buf = [0u8; SIGNATURE_BUF];
        let signature = jws.signature(&mut buf)?;
        let message = jws.signing_input.as_bytes();
        for candidate in candidates {
            #[cfg(feature = "aws-lc-rs")]
            if self.0.native {
                if let Some(key) = candidate.native.get(alg) {
                    if native::verify(key, message, signature) {
                        return Ok(candidate.fingerprint);
                    }
                    continue;
                }
            }
            if crypto::verify(self.0.provider, alg, &candidate.key, message, signature) {
                return Ok(candidate.fingerprint);
            }
        }
        Err(invalid("bad signature"))
    }
}

enum Pending {
    Done(AuthError),
    Fetch,
}

/// A token's payload and its claims read before its signature is verified (see
/// [`JwtValidator::routed_claims`]).
pub(in crate::token) struct Routed {
    payload: Payload,
    claims: Result<(Read, Option<u64>), AuthError>,
}

/// What [`JwtValidator::routed_claims`] found, for [`Routed::new`].
pub(in crate::token) struct RoutedClaims(Result<(Read, Option<u64>), AuthError>);

impl Routed {
    /// `payload` and what its claims' reading found (by the validator it then goes to).
    pub(in crate::token) fn new(payload: Payload, claims: RoutedClaims) -> Self {
        Self {
            payload,
            claims: claims.0,
        }
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
        // This very token validated on this connection before (its last requests): no shared
        // cache look-up, only what a hit checks (lifetime, keys). BENCHMARKS.md, issue 26.
        if let Some(hit) = presented.remembered::<Remembered>() {
            if hit.verified.validator == self.0.id
                && tokio::time::Instant::now() < hit.until
                && self.still_trusted(&hit.verified)
            {
                metrics::token_cache(true);
                return TokenFuture::ready(Ok(hit.verified.token.clone()));
            }
        }
        // The JWT caches' own key: a keyed PRF of the token, not its SHA-256 (issue 26).
        let key = presented.jwt_key();
        if let Some((hit, until)) = cache.get_until(&key) {
            if self.still_trusted(&hit) {
                metrics::token_cache(true);
                let token = hit.token.clone();
                presented.remember(|| Remembered {
                    verified: hit,
                    until,
                });
                return TokenFuture::ready(Ok(token));
            }
            // The key that verified it left the key set: verify again (and fail, most likely).
            cache.remove(&key);
        }
        metrics::token_cache(false);
        self.validate_miss(cache, token, key, None, None)
    }

    /// Ready with static keys; with remote ones, once a key set was fetched (with none yet,
    /// the check tries a fetch, at most one per `min_refresh_interval`, and waits for it at
    /// most the fetch timeout). Keys that are past
    /// `max_key_age` and cannot be refreshed still verify, so they still count as loaded.
    fn ready(&self) -> ReadyFuture<'_> {
        let Keys::Remote(remote) = &self.0.keys else {
            return crate::readiness::ready_now();
        };
        Box::pin(async move {
            if remote.ready().await {
                return Readiness::ready();
            }
            let why = remote
                .last_error()
                .map_or_else(|| "no fetch yet".to_owned(), FetchError::into_message);
            Readiness::not_ready(format!("keys of {}: none loaded ({why})", self.issuer()))
        })
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
        routed: Option<Routed>,
        route: Option<Route>,
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
            Begin::Lead(leader) => match self.validate_now_with(token, routed) {
                Ok(mut verified) => {
                    verified.route = route;
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
        let now = unix_now();
        let ttl = match verified.expires {
            Some(exp) if exp > now => self.0.cache_ttl.min(Duration::from_secs(exp - now)),
            // No usable exp (or already within the leeway after it): not cached.
            _ => Duration::ZERO,
        };
        Keep {
            ttl,
            // What the entry really takes, measured (see `jwt_entry_bytes`).
            bytes: jwt_entry_bytes(token.len()),
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
                        let error = AuthError::with_detail(
                            AuthErrorKind::KeysUnavailable,
                            "keys could not be fetched and none are cached",
                        );
                        // The cause (HTTP client error, timeout, status, JSON) as the source.
                        return Err(match remote.last_error() {
                            Some(cause) => error.with_source(cause),
                            None => error,
                        });
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

/// A cache of validations shared by several validators ([`Issuers`](crate::Issuers)): one
/// lookup finds a token whatever its issuer.
pub(in crate::token) type SharedCache = ResultCache<Verified>;

impl Verified {
    /// The fast check of a hit in a shared cache: when the set has not changed since the token
    /// was routed (`epoch` is the set's epoch now), and a resolved issuer's time is not up,
    /// the validator that verified it is still the one of its issuer and only the key check
    /// remains; no lookup of the issuer. `Err` hands the hit back for the full check.
    pub(in crate::token) fn vouch_unchanged(self, epoch: u64) -> Result<AccessToken, Verified> {
        let Some(route) = &self.route else {
            return Err(self);
        };
        if route.epoch != epoch
            || route
                .until
                .is_some_and(|until| tokio::time::Instant::now() >= until)
        {
            return Err(self);
        }
        let trusted = route
            .validator
            .upgrade()
            .is_some_and(|inner| JwtValidator(inner).still_trusted(&self));
        if trusted {
            Ok(self.token)
        } else {
            Err(self)
        }
    }

    /// The issuer whose validator verified the token.
    pub(in crate::token) fn issuer(&self) -> Option<&str> {
        self.token.issuer()
    }
}

impl JwtValidator {
    /// The token of a validation found in a shared cache, if it still stands here: verified by
    /// this very validator (not by one it replaced), with a key it still holds.
    pub(in crate::token) fn vouch(&self, hit: Verified) -> Option<AccessToken> {
        (hit.validator == self.0.id && self.still_trusted(&hit)).then_some(hit.token)
    }

    /// How a token validated here for a shared cache was routed: in the set of `epoch`, with
    /// a resolved issuer's time up at `until`.
    pub(in crate::token) fn route(&self, epoch: u64, until: Option<tokio::time::Instant>) -> Route {
        Route {
            epoch,
            validator: Arc::downgrade(&self.0),
            until,
        }
    }

    /// A miss in a shared cache: validated here, and kept there for this validator's
    /// `cache_ttl` unless its cache is off.
    ///
    /// `routed`: the token's payload and claims as they were read to route it
    /// ([`routed`](Self::routed)), so that they are not read a second time.
    pub(in crate::token) fn validate_into(
        &self,
        cache: &Arc<SharedCache>,
        presented: PresentedToken<'_>,
        routed: Option<Routed>,
        route: Option<Route>,
    ) -> TokenFuture {
        match &self.0.cache {
            Some(_) => {
                let key = presented.jwt_key();
                self.validate_miss(cache, presented.token(), key, routed, route)
            }
            None => match self.validate_now_with(presented.token(), routed) {
                Ok(verified) => TokenFuture::ready(Ok(verified.token)),
                Err(Pending::Done(e)) => TokenFuture::ready(Err(e)),
                Err(Pending::Fetch) => self.validate_uncached(presented.token()),
            },
        }
    }
}

/// The payload of a compact JWS, unverified: only to route a token by its `iss` (the validator
/// it is routed to verifies the signature over these very bytes before it uses them). `None`
/// when `token` is not three segments with a base64url JSON object in the middle.
pub(in crate::token) fn unverified_payload(token: &str) -> Option<Payload> {
    Payload::decode(Jws::split(token).ok()?.payload).ok()
}

/// The fuzz target's view of [`JoseHeader::read`]: `alg`, `kid` and `typ`. Panics when the
/// validator's [`Header`] (read, then remembered) says otherwise.
#[cfg(fuzzing)]
pub(crate) fn read_jose_header(token: &str) -> Option<(String, Option<String>, Option<String>)> {
    use std::borrow::Cow;
    let mut buf = [0u8; HEADER_BUF];
    let read = JoseHeader::read(token, &mut buf).map_err(|e| e.detail().to_owned());
    for _ in 0..2 {
        let mut buf = [0u8; HEADER_BUF];
        let memo = Header::read(token, &mut buf);
        match (&read, memo) {
            (Err(a), Err(b)) => assert_eq!(a, b.detail(), "the header memo disagrees"),
            (Ok(read), Ok(memo)) => assert!(
                memo.alg == crate::support::jose::algorithm(&read.alg)
                    && memo.kid() == read.kid.as_deref()
                    && memo.at_jwt == read.typ.as_deref().is_some_and(claims::is_at_jwt)
                    && memo.crit == read.crit,
                "the header memo disagrees"
            ),
            _ => panic!("the header memo disagrees"),
        }
    }
    let header = read.ok()?;
    let kid = header.kid.map(Cow::into_owned);
    Some((
        header.alg.into_owned(),
        kid,
        header.typ.map(Cow::into_owned),
    ))
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

#[cfg(test)]
mod tests;

#[cfg(all(test, feature = "aws-lc-rs"))]
mod native_tests;
