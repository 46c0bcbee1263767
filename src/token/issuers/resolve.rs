//! [`ResolveIssuer`]: tenants from the application, looked up at request time and kept in the
//! [`Issuers`] set for a while.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Issuers, IssuersBuilder, Set, Trusted};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::support::cache::{Keep, ResultCache, TokenKey};
use crate::token::jwt::JwtValidator;
use crate::token::{PresentedToken, TokenFuture};

/// Resolves an issuer to its validator at request time: the extension point through which
/// [`Issuers`] trusts tenants the application knows of (see
/// [`IssuersBuilder::resolver`]).
///
/// The answer is `Ok(Some(validator))` for a trusted issuer (the validator's
/// [`issuer`](JwtValidator::issuer) must be the one asked about; any other is not trusted,
/// and logged), `Ok(None)` for an issuer that is not a tenant (its tokens are refused, or
/// introspected when [`introspection`](IssuersBuilder::introspection) is configured), and
/// `Err` when the lookup failed (refused with `503`, and asked again on the next token).
///
/// What is kept, and for how long:
/// - Found: the validator joins the set, so the tenant's next token costs one map lookup, for
///   [`resolved_ttl`](IssuersBuilder::resolved_ttl); then the resolver is asked again, so that
///   a tenant removed from the database stops being trusted without a restart.
/// - Not a tenant: the answer is kept for [`negative_ttl`](IssuersBuilder::negative_ttl), at
///   most [`max_negative_entries`](IssuersBuilder::max_negative_entries) of them (keyed by the
///   SHA-256 of the issuer), so that made-up `iss` values cost neither memory nor database
///   queries beyond that bound.
/// - Concurrent first uses of one issuer are resolved once; the resolution runs in its own
///   task, so a cancelled request does not cancel it for the others.
/// - The lookup failed (the database is down), took longer than
///   [`resolve_timeout`](IssuersBuilder::resolve_timeout), or
///   [`max_resolutions_in_flight`](IssuersBuilder::max_resolutions_in_flight) are running
///   already: `503` ([`AuthErrorKind::KeysUnavailable`]), and nothing is kept.
/// - [`Issuers::remove`] forgets what was answered about an issuer, so that a change in the
///   database takes effect at once.
///
/// Any `Fn(&str) -> impl Future<Output = Result<Option<JwtValidator>, ResolveError>>`
/// (`Send + Sync + 'static`, its future `Send + 'static`) is a resolver; annotate the
/// closure's argument (`|issuer: &str|`).
///
/// Each resolution that builds a new validator starts without keys (its JWKS is fetched on its
/// first token) and without cached validations. To keep them across re-resolutions, keep the
/// validators built and return a clone of the same one while the tenant's configuration has
/// not changed.
///
/// # Example
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
///
/// use certbound::token::ResolveError;
/// use certbound::{AuthErrorKind, Issuers, JwtValidator, ValidateToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
///     "x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q",
///     "y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
/// // The application's tenants, by issuer: a database in real life.
/// let tenants = Arc::new(Mutex::new(HashMap::new()));
/// let tenant = "https://tenant-7.example";
/// let validator = JwtValidator::builder(tenant, "https://api.example").jwks_json(jwks).build()?;
/// tenants.lock().unwrap().insert(tenant.to_owned(), validator);
///
/// let db = Arc::clone(&tenants);
/// let issuers = Issuers::builder()
///     .resolver(move |issuer: &str| {
///         let found = db.lock().map(|tenants| tenants.get(issuer).cloned());
///         let found = found.map_err(|_| ResolveError::new("tenant table unavailable"));
///         async move { found }
///     })
///     .build()?;
/// assert!(!issuers.contains(tenant), "not asked about yet");
///
/// // {"alg":"ES256","kid":"k1"} . {"iss":"https://tenant-7.example"} . signature
/// let token = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.\
///              eyJpc3MiOiJodHRwczovL3RlbmFudC03LmV4YW1wbGUifQ.c2ln";
/// let error = issuers.validate(token).await.unwrap_err();
/// assert_ne!(error.detail(), "untrusted issuer", "the tenant's keys judged it");
/// assert!(issuers.contains(tenant), "resolved, and kept for a while");
///
/// // {"alg":"ES256"} . {"iss":"https://evil.example"} . signature
/// let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZSJ9.c2ln";
/// let error = issuers.validate(token).await.unwrap_err();
/// assert_eq!((error.kind(), error.detail()), (AuthErrorKind::InvalidToken, "untrusted issuer"));
/// # Ok(()) }
/// ```
pub trait ResolveIssuer: Send + Sync + 'static {
    /// The lookup in progress.
    type Future: Future<Output = Result<Option<JwtValidator>, ResolveError>> + Send + 'static;

    /// Looks `issuer` up: the token's unverified `iss`, exactly as it is written there
    /// (attacker-chosen until the token is verified; never build URLs from it).
    fn resolve(&self, issuer: &str) -> Self::Future;
}

impl<F, Fut> ResolveIssuer for F
where
    F: Fn(&str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<JwtValidator>, ResolveError>> + Send + 'static,
{
    type Future = Fut;

    fn resolve(&self, issuer: &str) -> Fut {
        self(issuer)
    }
}

/// Why an issuer could not be resolved: the lookup failed (the application's database is
/// down, say), or the resolver was not asked or did not answer (too many resolutions in
/// flight, timed out). Its tokens are refused with `503`; the error is the
/// [`source`](std::error::Error::source) of that [`AuthError`], never shown to the client.
#[derive(Clone)]
pub struct ResolveError {
    detail: &'static str,
    cause: Option<Arc<dyn Error + Send + Sync>>,
}

impl ResolveError {
    /// The lookup failed because of `cause` (kept as the [`source`](Error::source)).
    pub fn new(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            detail: "cannot resolve the issuer",
            cause: Some(Arc::from(cause.into())),
        }
    }

    const fn not_asked(detail: &'static str) -> Self {
        Self {
            detail,
            cause: None,
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {cause}", self.detail),
            None => f.write_str(self.detail),
        }
    }
}

impl fmt::Debug for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResolveError")
            .field(&format_args!("{self}"))
            .finish()
    }
}

impl Error for ResolveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let cause = self.cause.as_deref()?;
        Some(cause)
    }
}

/// A resolver's answer.
type Answer = Result<Option<JwtValidator>, ResolveError>;

type BoxedAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// [`ResolveIssuer`] with its future boxed, so that [`Issuers`] needs no type parameter. The
/// box is paid once per resolution, never per request.
trait DynResolve: Send + Sync {
    fn resolve_boxed(&self, issuer: &str) -> BoxedAnswer;
}

impl<R: ResolveIssuer> DynResolve for R {
    fn resolve_boxed(&self, issuer: &str) -> BoxedAnswer {
        Box::pin(self.resolve(issuer))
    }
}

/// Longest time an answer is kept (longer settings are cut to it), far below what the clock
/// can add without overflowing.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Sweeps of expired resolved issuers start above this many issuers in the set.
const SWEEP_FROM: usize = 64;

const DONT_KEEP: Keep = Keep {
    ttl: Duration::ZERO,
    bytes: 0,
};

/// The resolver settings of an [`IssuersBuilder`].
pub(super) struct ResolverOptions {
    resolve: Option<Arc<dyn DynResolve>>,
    resolved_ttl: Duration,
    negative_ttl: Duration,
    max_negative_entries: u64,
    max_in_flight: usize,
    timeout: Duration,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        Self {
            resolve: None,
            resolved_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            max_negative_entries: 10_000,
            max_in_flight: 32,
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for ResolverOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolverOptions")
            .field("resolver", &self.resolve.is_some())
            .field("resolved_ttl", &self.resolved_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_negative_entries", &self.max_negative_entries)
            .field("max_resolutions_in_flight", &self.max_in_flight)
            .field("resolve_timeout", &self.timeout)
            .finish()
    }
}

impl ResolverOptions {
    pub(super) fn build(self) -> Result<Option<Resolver>, ConfigError> {
        let Some(resolve) = self.resolve else {
            return Ok(None);
        };
        if self.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "max_resolutions_in_flight",
                "must be at least 1",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("resolve_timeout", "must not be zero"));
        }
        // The entry bound is what matters; an answer weighs next to nothing.
        let entries = self.max_negative_entries.max(1);
        Ok(Some(Resolver {
            resolve,
            resolved_ttl: self.resolved_ttl.min(MAX_TTL),
            negative_ttl: self.negative_ttl.min(MAX_TTL),
            timeout: self.timeout,
            answers: Arc::new(ResultCache::new(entries, entries.saturating_mul(256))),
            permits: Arc::new(Semaphore::new(
                self.max_in_flight.min(Semaphore::MAX_PERMITS),
            )),
            generation: AtomicU64::new(0),
            sweep_at: AtomicUsize::new(SWEEP_FROM),
        }))
    }
}

/// The resolver of an [`Issuers`] set, with what it answered.
pub(super) struct Resolver {
    resolve: Arc<dyn DynResolve>,
    resolved_ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    /// By SHA-256 of the issuer: "not a tenant" answers, kept for `negative_ttl`, and the
    /// single flight of every resolution (the other answers are not kept here).
    answers: Arc<ResultCache<Answer>>,
    /// One per resolution running.
    permits: Arc<Semaphore>,
    /// Moved on by every [`Issuers::remove`]: an answer to a question asked before is handed
    /// to whoever waits for it, but not kept.
    generation: AtomicU64,
    /// The set's size from which expired resolved issuers are swept out (under the set's lock).
    sweep_at: AtomicUsize,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("resolved_ttl", &self.resolved_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("resolve_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Forgets what was answered about `issuer` (called under the set's write lock).
    pub(super) fn forget(&self, issuer: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.answers.remove(&TokenKey::of(issuer));
    }

    /// How a "not a tenant" answer to a question asked at `generation` is kept.
    fn keep_negative(&self, generation: u64) -> Keep {
        if self.generation.load(Ordering::SeqCst) != generation {
            return DONT_KEEP;
        }
        Keep {
            ttl: self.negative_ttl,
            bytes: 0,
        }
    }

    /// Puts a resolved validator in the set until its time is up, unless the issuer was
    /// inserted for good meanwhile; sweeps out expired ones once the set has doubled.
    fn store(&self, set: &mut Set, issuer: &str, validator: JwtValidator) {
        let now = Instant::now();
        let resolved = Trusted {
            validator,
            until: Some(now + self.resolved_ttl),
        };
        match set.get_mut(issuer) {
            Some(fixed) if fixed.until.is_none() => {}
            Some(old) => *old = resolved,
            None => drop(set.insert(issuer.into(), resolved)),
        }
        if set.len() >= self.sweep_at.load(Ordering::Relaxed) {
            set.retain(|_, trusted| trusted.until.is_none_or(|until| now < until));
            let next = set.len().saturating_mul(2).max(SWEEP_FROM);
            self.sweep_at.store(next, Ordering::Relaxed);
        }
    }
}

impl Issuers {
    /// A token whose `issuer` is not in the set: refused at once when the resolver said "not a
    /// tenant" lately, else validated once the resolver has answered.
    pub(super) fn resolve(
        &self,
        resolver: &Resolver,
        issuer: &str,
        presented: PresentedToken<'_>,
    ) -> TokenFuture {
        let key = TokenKey::of(issuer);
        if let Some(Ok(None)) = resolver.answers.get(&key) {
            return self.untrusted(presented);
        }
        let answer = resolver
            .answers
            .get_or_compute(key, || self.ask(resolver, issuer));
        let this = self.clone();
        let token: Box<str> = presented.token().into();
        // The JWT caches' key: what the validators read (an introspection validator makes its
        // own SHA-256 key from the token).
        let token_key = presented.jwt_key();
        TokenFuture::fetching(async move {
            // The validators read the token and its key only.
            let presented = PresentedToken::new(&token, None).with_key(token_key);
            let unavailable =
                |detail| AuthError::with_detail(AuthErrorKind::KeysUnavailable, detail);
            match answer.await {
                Some(Ok(Some(validator))) => {
                    validator
                        .validate_into(&this.0.cache, presented, None, None)
                        .await
                }
                Some(Ok(None)) => this.untrusted(presented).await,
                Some(Err(error)) => Err(unavailable(error.detail).with_source(error)),
                // The resolver panicked.
                None => Err(unavailable("the issuer resolver ended without an answer")),
            }
        })
    }

    /// The one resolution of `issuer` in flight (started by [`ResultCache::get_or_compute`],
    /// which runs it in its own task): asks the resolver, bounded in number and time, and
    /// settles the answer.
    fn ask(
        &self,
        resolver: &Resolver,
        issuer: &str,
    ) -> impl Future<Output = (Answer, Keep)> + Send + 'static {
        let generation = resolver.generation.load(Ordering::SeqCst);
        let permit = Arc::clone(&resolver.permits).try_acquire_owned().ok();
        // Beyond the bound the resolver is not asked at all: 503 at once, no queue.
        let lookup = permit
            .as_ref()
            .map(|_| resolver.resolve.resolve_boxed(issuer));
        let timeout = resolver.timeout;
        let asked: Box<str> = issuer.into();
        let this = self.clone();
        async move {
            let Some(lookup) = lookup else {
                let busy = ResolveError::not_asked("too many issuer resolutions in flight");
                return (Err(busy), DONT_KEEP);
            };
            let answer = tokio::time::timeout(timeout, lookup)
                .await
                .unwrap_or_else(|_| Err(ResolveError::not_asked("the issuer resolver timed out")));
            drop(permit);
            this.settle(&asked, answer, generation)
        }
    }

    /// Keeps what the resolver answered about `asked`: a validator in the set (before the
    /// waiters are woken), "not a tenant" in the answers; a failure nowhere.
    fn settle(&self, asked: &str, answer: Answer, generation: u64) -> (Answer, Keep) {
        let Some(resolver) = &self.0.resolver else {
            return (answer, DONT_KEEP);
        };
        match answer {
            Ok(Some(validator)) if validator.issuer() != asked => {
                // The validator would refuse every token of `asked` anyway (it checks the
                // signed `iss`); refusing here says why, once per `negative_ttl`.
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "certbound",
                    asked = ?asked,
                    resolved = ?validator.issuer(),
                    "the issuer resolver answered with another issuer's validator; not trusted"
                );
                (Ok(None), resolver.keep_negative(generation))
            }
            Ok(Some(validator)) => {
                let mut set = self.write();
                if resolver.generation.load(Ordering::SeqCst) == generation {
                    resolver.store(&mut set, asked, validator.clone());
                }
                (Ok(Some(validator)), DONT_KEEP)
            }
            Ok(None) => (Ok(None), resolver.keep_negative(generation)),
            Err(error) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", %error, "issuer resolution failed");
                (Err(error), DONT_KEEP)
            }
        }
    }
}

impl IssuersBuilder {
    /// Asks `resolver` about every `iss` that is not in the set, at request time: tenants
    /// the application looks up in its own database. See [`ResolveIssuer`] for the answers,
    /// what is kept and for how long.
    ///
    /// Configured and [inserted](Issuers::insert) issuers come first: the resolver is never
    /// asked about them.
    pub fn resolver(mut self, resolver: impl ResolveIssuer) -> Self {
        self.resolving.resolve = Some(Arc::new(resolver));
        self
    }

    /// How long a validator found by the resolver stays in the set before the resolver is
    /// asked again (default 5 minutes; at most a year): how long a tenant removed from the
    /// application's database stays trusted, unless the application calls
    /// [`Issuers::remove`]. Zero asks on every token not in the validated-token cache.
    pub fn resolved_ttl(mut self, ttl: Duration) -> Self {
        self.resolving.resolved_ttl = ttl;
        self
    }

    /// How long the resolver's "not a tenant" answer is kept (default 30 seconds; at most a
    /// year): how long a tenant added to the application's database is still refused, unless
    /// the application calls [`Issuers::remove`]. Zero keeps none.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.resolving.negative_ttl = ttl;
        self
    }

    /// Most "not a tenant" answers kept (default 10 000), so that tokens with made-up `iss`
    /// values cannot grow memory; beyond it the least used are forgotten and asked about
    /// again.
    pub fn max_negative_entries(mut self, entries: u64) -> Self {
        self.resolving.max_negative_entries = entries;
        self
    }

    /// Most resolutions running at once, all issuers together (default 32). Beyond it, the
    /// token of an issuer not yet resolved is refused with `503` at once rather than queued,
    /// so a flood of made-up `iss` values cannot pile up on the application's database.
    pub fn max_resolutions_in_flight(mut self, resolutions: usize) -> Self {
        self.resolving.max_in_flight = resolutions;
        self
    }

    /// How long the resolver may take (default 10 seconds); a slower answer is a failure
    /// (`503`), and its place in [`max_resolutions_in_flight`](Self::max_resolutions_in_flight)
    /// is given back.
    pub fn resolve_timeout(mut self, timeout: Duration) -> Self {
        self.resolving.timeout = timeout;
        self
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
