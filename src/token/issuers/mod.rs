//! [`Issuers`]: one validator for several trusted issuers, each a [`JwtValidator`] with its own
//! keys, audiences, algorithms and leeway, and (feature `introspection`) an
//! `IntrospectionValidator` for every other token.
//!
//! A JWT is routed by its unverified `iss` to the one validator of that issuer, and verified
//! there once: `iss` only chooses the validator, which checks it again among the signed claims.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::time::Instant;

use super::fields::Loose;
use super::jwt::{unverified_payload, JwtValidator, Routed, SharedCache};
use super::{PresentedToken, TokenFuture, ValidateToken};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::metrics;
use crate::readiness::{self, ReadyFuture};
use crate::support::cache::ResultCache;
#[cfg(feature = "introspection")]
use crate::IntrospectionValidator;

mod resolve;
pub use resolve::{ResolveError, ResolveIssuer};
use resolve::{Resolver, ResolverOptions};

/// Validates tokens from several authorization servers: each trusted issuer has its own
/// [`JwtValidator`] (key source, audiences, algorithms, leeway), and a JWT goes to the one
/// whose issuer its `iss` names. Cheap to clone; clones share the set and the cache.
///
/// - Routing: the token's unverified `iss` is read and looked up once; the token is verified
///   by that issuer's keys only, never by trying each issuer in turn. The validator then
///   checks `iss` again among the signed claims.
/// - A JWT whose `iss` is not in the set is refused (`401 invalid_token`, detail
///   `untrusted issuer`) without any network call, and so is a token that is not a JWT.
/// - An issuer can have its JWTs introspected at its own endpoint instead
///   ([`introspect_issuer`](IssuersBuilder::introspect_issuer), feature `introspection`).
/// - With an [`introspection`](IssuersBuilder::introspection) validator (feature
///   `introspection`), every token that is not a JWT of a trusted issuer (an opaque token, or
///   a JWT with another `iss`) is introspected instead (RFC 7662), for an authorization
///   server that issues both kinds or a migration from opaque tokens to JWTs.
/// - Failures stay with their issuer: an issuer whose keys cannot be fetched refuses its own
///   tokens (`503`), and the others' tokens keep flowing.
/// - Cache: validated JWTs are kept in one cache for the whole set (keyed by a keyed 128-bit
///   hash of the whole token, never the token itself, bounded by [`max_cache_entries`](IssuersBuilder::max_cache_entries) and
///   [`max_cache_bytes`](IssuersBuilder::max_cache_bytes)), so a token seen before costs one
///   lookup whatever its issuer. Each issuer's `cache_ttl` and `no_cache` still apply to its
///   tokens; the validators' own caches are not used behind `Issuers`. The introspection
///   validator keeps its own cache.
/// - The set can change while serving ([`insert`](Self::insert), [`remove`](Self::remove)):
///   requests already being validated finish with the validator they started with; cached
///   validations of a removed or replaced issuer are no longer accepted.
/// - Tenants from the application: with a [`resolver`](IssuersBuilder::resolver), an `iss`
///   that is not in the set is looked up at request time (in the application's database, say)
///   and what is found joins the set for a while; see [`ResolveIssuer`]. Without one, the set
///   is exactly what was configured and inserted.
///
/// [`AccessToken::issuer`](crate::AccessToken::issuer) tells the application which issuer a
/// token came from.
///
/// # Example
/// ```
/// use certbound::{AuthErrorKind, BoundTokenLayer, Issuers, JwtValidator, ValidateToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
///     "x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q",
///     "y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
/// let issuers = Issuers::builder()
///     .jwt(JwtValidator::builder("https://as-a.example", "https://api.example").jwks_json(jwks).build()?)
///     .jwt(JwtValidator::builder("https://as-b.example", "https://api.example").jwks_json(jwks).build()?)
///     .build()?;
/// assert!(issuers.contains("https://as-b.example"));
///
/// // {"alg":"ES256"} . {"iss":"https://evil.example"} . signature
/// let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZSJ9.c2ln";
/// let error = issuers.validate(token).await.unwrap_err();
/// assert_eq!(error.kind(), AuthErrorKind::InvalidToken);
/// assert_eq!(error.detail(), "untrusted issuer");
///
/// let layer = BoundTokenLayer::new(issuers);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Issuers(Arc<Shared>);

struct Shared {
    /// The trusted issuers, by their exact `iss`. Held only for a lookup or an update, never
    /// across a validation.
    set: RwLock<Set>,
    /// Changes with every change of the set (taken under its write lock): a cached token
    /// routed in the same epoch needs no lookup of its issuer.
    epoch: AtomicU64,
    #[cfg(feature = "introspection")]
    introspection: Option<IntrospectionValidator>,
    /// Issuers whose JWTs are introspected at their own endpoint instead of verified here.
    #[cfg(feature = "introspection")]
    introspected: HashMap<Box<str>, IntrospectionValidator>,
    cache: Arc<SharedCache>,
    /// Asked about an `iss` that is not in the set, when configured.
    resolver: Option<Resolver>,
}

type Set = HashMap<Box<str>, Trusted>;

/// A trusted issuer's validator: configured or inserted (for good), or found by the resolver
/// (until its deadline).
struct Trusted {
    validator: JwtValidator,
    /// `None` for a configured or inserted issuer.
    until: Option<Instant>,
}

impl Trusted {
    fn fixed(validator: JwtValidator) -> Self {
        Self {
            validator,
            until: None,
        }
    }

    /// The validator, unless it was resolved and its time is up. A configured issuer's costs
    /// one comparison, and no clock reading.
    #[inline]
    fn live(&self) -> Option<&JwtValidator> {
        match self.until {
            None => Some(&self.validator),
            Some(until) => (Instant::now() < until).then_some(&self.validator),
        }
    }
}

impl Issuers {
    /// Starts a set of issuers, empty and without introspection.
    pub fn builder() -> IssuersBuilder {
        IssuersBuilder {
            validators: Vec::new(),
            #[cfg(feature = "introspection")]
            introspection: None,
            #[cfg(feature = "introspection")]
            introspected: Vec::new(),
            max_cache_entries: 100_000,
            max_cache_bytes: 64 * 1024 * 1024,
            resolving: ResolverOptions::default(),
        }
    }

    /// Trusts `validator`'s issuer from now on, in place of the validator it had if any (which
    /// is returned): an issuer added or replaced while serving, without a restart. An inserted
    /// issuer stays until it is removed, even with a [`resolver`](IssuersBuilder::resolver),
    /// which is not asked about it.
    pub fn insert(&self, validator: JwtValidator) -> Option<JwtValidator> {
        let issuer: Box<str> = validator.issuer().into();
        let old = self.write().insert(issuer, Trusted::fixed(validator));
        old.map(|old| old.validator)
    }

    /// Stops trusting `issuer`; its validator is returned if it was in the set. Its tokens are
    /// refused from now on, cached or not.
    ///
    /// With a [`resolver`](IssuersBuilder::resolver), everything known about `issuer` is
    /// forgotten (a validator it resolved, a "not a tenant" answer, an answer still on its
    /// way), so that its next token asks the resolver again: the way to make a tenant's change
    /// in the application's database take effect at once rather than when its answer expires.
    pub fn remove(&self, issuer: &str) -> Option<JwtValidator> {
        let mut set = self.write();
        if let Some(resolver) = &self.0.resolver {
            resolver.forget(issuer);
        }
        set.remove(issuer).map(|old| old.validator)
    }

    /// Whether `issuer` is trusted (configured, inserted, resolved and not expired, or
    /// [introspected](IssuersBuilder::introspect_issuer)).
    pub fn contains(&self, issuer: &str) -> bool {
        #[cfg(feature = "introspection")]
        if self.0.introspected.contains_key(issuer) {
            return true;
        }
        self.get(issuer).is_some()
    }

    /// The validator of `issuer`, if it is trusted (configured, inserted, or resolved and not
    /// expired).
    pub fn get(&self, issuer: &str) -> Option<JwtValidator> {
        self.read(|set| set.get(issuer).and_then(Trusted::live).cloned())
    }

    /// How many issuers are trusted (configured, inserted, or resolved and not expired).
    pub fn len(&self) -> usize {
        self.read(|set| set.values().filter(|t| t.live().is_some()).count())
    }

    /// Whether no issuer is trusted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read<R>(&self, f: impl FnOnce(&Set) -> R) -> R {
        // A panic elsewhere while holding the lock left the map whole (updates are single
        // inserts and removals), so a poisoned lock is still read.
        f(&self.0.set.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The set, to change it: the epoch moves on before anything changes, so a token routed
    /// in the old epoch takes the full check.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Set> {
        let set = self.0.set.write().unwrap_or_else(PoisonError::into_inner);
        self.0.epoch.fetch_add(1, Ordering::AcqRel);
        set
    }

    /// Not a JWT of a trusted issuer: introspected when configured, else refused.
    fn untrusted(&self, presented: PresentedToken<'_>) -> TokenFuture {
        #[cfg(feature = "introspection")]
        if let Some(introspection) = &self.0.introspection {
            return introspection.validate_presented(presented);
        }
        let _ = presented;
        metrics::token_cache(false);
        TokenFuture::ready(Err(AuthError::with_detail(
            AuthErrorKind::InvalidToken,
            "untrusted issuer",
        )))
    }
}

impl fmt::Debug for Issuers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers = self.read(|set| {
            let live = set.iter().filter(|(_, t)| t.live().is_some());
            live.map(|(issuer, _)| issuer.clone()).collect::<Vec<_>>()
        });
        issuers.sort_unstable();
        let mut debug = f.debug_struct("Issuers");
        debug.field("issuers", &issuers);
        #[cfg(feature = "introspection")]
        {
            let mut introspected: Vec<_> = self.0.introspected.keys().collect();
            introspected.sort_unstable();
            debug
                .field("introspection", &self.0.introspection)
                .field("introspected", &introspected);
        }
        debug.field("resolver", &self.0.resolver);
        debug.finish_non_exhaustive()
    }
}

impl ValidateToken for Issuers {
    type Future = TokenFuture;

    fn validate(&self, token: &str) -> TokenFuture {
        self.validate_presented(PresentedToken::new(token, None))
    }

    fn validate_presented(&self, presented: PresentedToken<'_>) -> TokenFuture {
        // A token seen before: one lookup, whatever its issuer, and no reading of the token.
        // The JWT caches' key (`TokenKey::of_jwt`); an introspection validator it may be routed
        // to still keys its own cache by the token's SHA-256 (`PresentedToken::key`).
        let key = presented.jwt_key();
        // Whichever JWT validator takes it next does not hash it again.
        let presented = presented.with_key(key);
        if let Some(hit) = self.0.cache.get(&key) {
            // The set unchanged since the token was routed: only the key check remains.
            let hit = match hit.vouch_unchanged(self.0.epoch.load(Ordering::Acquire)) {
                Ok(token) => {
                    metrics::token_cache(true);
                    return TokenFuture::ready(Ok(token));
                }
                Err(hit) => hit,
            };
            let vouched = self.read(|set| {
                let trusted = hit.issuer().and_then(|issuer| set.get(issuer))?;
                trusted.live()?.vouch(hit)
            });
            if let Some(token) = vouched {
                metrics::token_cache(true);
                return TokenFuture::ready(Ok(token));
            }
            // Its issuer left the set, was replaced, no longer holds the key, or was resolved
            // and is to be asked about again.
            self.0.cache.remove(&key);
        }
        self.route(presented)
    }

    /// Ready when every trusted issuer's validator is (configured, inserted, and resolved
    /// ones still in the set: keys loaded; see [`JwtValidator`]'s `ready`), and so is every
    /// introspection validator. The issuers are checked concurrently; the reasons name each
    /// issuer that is not ready.
    fn ready(&self) -> ReadyFuture<'_> {
        let validators = self.read(|set| {
            let live = set.values().filter_map(Trusted::live);
            live.cloned().collect::<Vec<_>>()
        });
        #[cfg_attr(not(feature = "introspection"), allow(unused_mut))]
        let mut checks: Vec<ReadyFuture<'_>> = validators
            .into_iter()
            .map(|validator| -> ReadyFuture<'_> {
                Box::pin(async move { validator.ready().await })
            })
            .collect();
        #[cfg(feature = "introspection")]
        {
            let introspected = self.0.introspected.values();
            checks.extend(
                self.0
                    .introspection
                    .iter()
                    .chain(introspected)
                    .map(ValidateToken::ready),
            );
        }
        Box::pin(readiness::all(checks))
    }
}

impl Issuers {
    /// A token not in the cache: to its issuer's validator, or to the resolver when its issuer
    /// is not in the set. Out of line, as the hit path above runs on nearly every request.
    #[inline(never)]
    fn route(&self, presented: PresentedToken<'_>) -> TokenFuture {
        // Decoded and read once: the validator it is routed to takes these claims instead of
        // reading them again.
        let Some(payload) = unverified_payload(presented.token()) else {
            return self.untrusted(presented);
        };
        let Ok(fields) = payload.fields() else {
            return self.untrusted(presented);
        };
        let Some(issuer) = fields.iss.as_ref().and_then(Loose::as_str) else {
            return self.untrusted(presented);
        };
        // The epoch before the lookup: a change in between makes the route stale, never wrong.
        let epoch = self.0.epoch.load(Ordering::Acquire);
        let validator = self.read(|set| {
            let trusted = set.get(issuer)?;
            Some((trusted.live()?.clone(), trusted.until))
        });
        if let Some((validator, until)) = validator {
            // The validator takes the claims as read here, and checks them (the outcome told
            // once the signature verified) instead of reading them again.
            metrics::token_cache(false);
            let claims = validator.routed_claims(&payload, &fields);
            drop(fields);
            let routed = Routed::new(payload, claims);
            let route = validator.route(epoch, until);
            return validator.validate_into(&self.0.cache, presented, Some(routed), Some(route));
        }
        #[cfg(feature = "introspection")]
        if let Some(introspection) = self.0.introspected.get(issuer) {
            return introspection.validate_presented(presented);
        }
        match &self.0.resolver {
            Some(resolver) => {
                metrics::token_cache(false);
                self.resolve(resolver, issuer, presented)
            }
            None => self.untrusted(presented),
        }
    }
}

/// Builder of an [`Issuers`] set. Checked by [`build`](Self::build).
#[must_use]
pub struct IssuersBuilder {
    validators: Vec<JwtValidator>,
    #[cfg(feature = "introspection")]
    introspection: Option<IntrospectionValidator>,
    #[cfg(feature = "introspection")]
    introspected: Vec<(Box<str>, IntrospectionValidator)>,
    max_cache_entries: u64,
    max_cache_bytes: u64,
    resolving: ResolverOptions,
}

impl fmt::Debug for IssuersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issuers: Vec<&str> = self.validators.iter().map(JwtValidator::issuer).collect();
        let mut debug = f.debug_struct("IssuersBuilder");
        debug.field("issuers", &issuers);
        #[cfg(feature = "introspection")]
        debug.field("introspection", &self.introspection).field(
            "introspected",
            &self.introspected.iter().map(|(i, _)| i).collect::<Vec<_>>(),
        );
        debug
            .field("max_cache_entries", &self.max_cache_entries)
            .field("max_cache_bytes", &self.max_cache_bytes)
            .field("resolving", &self.resolving)
            .finish()
    }
}

impl IssuersBuilder {
    /// Trusts the issuer of `validator` ([`JwtValidator::issuer`]), with its keys and rules.
    pub fn jwt(mut self, validator: JwtValidator) -> Self {
        self.validators.push(validator);
        self
    }

    /// Introspects every token that is not a JWT of a trusted issuer (opaque tokens, and JWTs
    /// with another `iss`) instead of refusing it.
    #[cfg(feature = "introspection")]
    pub fn introspection(mut self, validator: IntrospectionValidator) -> Self {
        self.introspection = Some(validator);
        self
    }

    /// Trusts `issuer`'s JWTs by asking its own RFC 7662 introspection endpoint instead of
    /// verifying them here: an issuer whose tokens must be checked for revocation at every
    /// use (within the introspection cache's `cache_ttl`), or whose keys this server cannot
    /// fetch. The token is routed by its unverified `iss`, as for [`jwt`](Self::jwt), and
    /// the endpoint's answer decides; configure `validator` to check the answer's `iss`
    /// ([`IntrospectionValidatorBuilder::issuer`](crate::token::IntrospectionValidatorBuilder::issuer)).
    ///
    /// Opaque tokens carry no `iss` to route by: they go to
    /// [`introspection`](Self::introspection), when configured.
    #[cfg(feature = "introspection")]
    pub fn introspect_issuer(
        mut self,
        issuer: impl Into<String>,
        validator: IntrospectionValidator,
    ) -> Self {
        self.introspected
            .push((issuer.into().into_boxed_str(), validator));
        self
    }

    /// Most validated JWTs kept, all issuers together (default 100 000).
    pub fn max_cache_entries(mut self, entries: u64) -> Self {
        self.max_cache_entries = entries;
        self
    }

    /// About how many bytes the validated JWTs kept may take, all issuers together (default
    /// 64 MiB). An entry takes about 800 bytes plus seven eighths of its token's length
    /// (measured): the default holds about 63 000 tokens of 300 characters, 49 000 of 650.
    pub fn max_cache_bytes(mut self, bytes: u64) -> Self {
        self.max_cache_bytes = bytes;
        self
    }

    /// The set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] (option `issuer`) when two validators are for one issuer:
    /// which of them should verify its tokens is a configuration mistake, not a choice to
    /// make silently. With a [`resolver`](Self::resolver), [`ConfigError::Invalid`] (option
    /// `max_resolutions_in_flight` or `resolve_timeout`) when either is zero: every tenant's
    /// first token would be refused.
    pub fn build(self) -> Result<Issuers, ConfigError> {
        let resolver = self.resolving.build()?;
        let mut set = HashMap::with_capacity(self.validators.len());
        for validator in self.validators {
            let issuer: Box<str> = validator.issuer().into();
            if set.contains_key(&issuer) {
                return Err(ConfigError::invalid(
                    "issuer",
                    format!("two validators for the issuer {issuer}"),
                ));
            }
            set.insert(issuer, Trusted::fixed(validator));
        }
        #[cfg(feature = "introspection")]
        let mut introspected = HashMap::with_capacity(self.introspected.len());
        #[cfg(feature = "introspection")]
        for (issuer, validator) in self.introspected {
            if set.contains_key(&issuer) || introspected.contains_key(&issuer) {
                return Err(ConfigError::invalid(
                    "issuer",
                    format!("two validators for the issuer {issuer}"),
                ));
            }
            introspected.insert(issuer, validator);
        }
        Ok(Issuers(Arc::new(Shared {
            set: RwLock::new(set),
            epoch: AtomicU64::new(0),
            #[cfg(feature = "introspection")]
            introspection: self.introspection,
            #[cfg(feature = "introspection")]
            introspected,
            cache: Arc::new(ResultCache::new(
                self.max_cache_entries,
                self.max_cache_bytes,
            )),
            resolver,
        })))
    }
}

#[cfg(test)]
mod tests;
