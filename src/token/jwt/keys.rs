//! Verification keys: a parsed JWKS ([`KeySet`]) and the remote, cached, self-refreshing
//! source of one ([`RemoteKeys`]).
//!
//! Concurrency: the current key set is an `Arc` behind a `std` lock that is only held to clone
//! or swap the `Arc`, never across a fetch. Refreshes run in their own task; concurrent callers
//! wait on one shared outcome (single flight), and a refresh starts at most once per
//! `min_refresh_interval` so that forged `kid`s cannot make us hammer the authorization server.
//! A failed refresh keeps the previous keys.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::error::ConfigError;
use crate::metrics::Upstream;
use crate::support::single_flight::{spawn, Begin, SingleFlight, Waiter};
use crate::upstream::{self as fetch, check_url, FetchError};

/// One key usable to verify signatures.
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    /// Algorithms this key may verify (from the JWK's `alg`, else from its type and curve).
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
    /// SHA-256 of the key as configured or published (its JWK, PEM or secret): tells whether a
    /// refreshed key set still holds the key a cached token was verified with.
    pub(crate) fingerprint: [u8; 32],
    /// `key` as aws-lc-rs parsed it, once, for each of `algorithms` (see `native`).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) native: super::native::NativeKeys,
}

impl VerificationKey {
    pub(crate) fn new(
        kid: Option<String>,
        algorithms: Vec<Algorithm>,
        key: DecodingKey,
        fingerprint: [u8; 32],
    ) -> Self {
        Self {
            #[cfg(feature = "aws-lc-rs")]
            native: super::native::NativeKeys::parse(&key, &algorithms),
            kid,
            algorithms,
            key,
            fingerprint,
        }
    }
}

/// A set of verification keys.
pub(crate) struct KeySet {
    keys: Vec<VerificationKey>,
    /// Unique per set (process-wide): a cached validation made with this set needs no check.
    generation: u64,
}

impl Default for KeySet {
    fn default() -> Self {
        static GENERATIONS: AtomicU64 = AtomicU64::new(1);
        Self {
            keys: Vec::new(),
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

pub(crate) const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl KeySet {
    pub(crate) fn push(&mut self, key: VerificationKey) {
        self.keys.push(key);
    }

    pub(crate) fn extend(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the set holds the key with this fingerprint.
    pub(crate) fn contains(&self, fingerprint: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| k.fingerprint == *fingerprint)
    }

    /// Parses a JWKS document. Keys certbound cannot use for verifying JWS signatures
    /// (encryption keys, symmetric `oct` keys, unknown types) are skipped; a document left with
    /// none is an error.
    pub(crate) fn from_jwks_json(json: &[u8]) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_slice(json).map_err(|e| JwksError {
            reason: "JWKS is not JSON",
            source: Some(e),
        })?;
        let keys = doc.get("keys").and_then(Value::as_array).ok_or(JwksError {
            reason: "JWKS has no \"keys\" array",
            source: None,
        })?;
        let mut set = KeySet::default();
        for key in keys {
            // One odd key must not make the whole set unusable.
            let Some(jwk) = read_jwk(key) else {
                continue;
            };
            if let Some(key) = verification_key(&jwk) {
                set.push(key);
            }
        }
        // An empty set would verify nothing: for a remote JWKS that counts as a failed fetch
        // (the cached keys stay), for a static one as a configuration error.
        if set.len() == 0 {
            return Err(JwksError {
                reason: "JWKS holds no usable signature verification key",
                source: None,
            });
        }
        Ok(set)
    }

    /// Keys that may verify a token with this `kid` and `alg`: those with the same `kid`, else
    /// those without any `kid` (PEM keys, kid-less JWKs).
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerificationKey> + 'a {
        let by_alg = move |k: &&VerificationKey| k.algorithms.contains(&alg);
        let with_kid = kid.filter(|kid| self.keys.iter().any(|k| k.kid.as_deref() == Some(*kid)));
        self.keys
            .iter()
            .filter(by_alg)
            .filter(move |k| match (kid, with_kid) {
                (Some(_), Some(kid)) => k.kid.as_deref() == Some(kid),
                (Some(_), None) => k.kid.is_none(),
                (None, _) => true,
            })
    }
}

/// Why a JWKS document is unusable: a fixed reason, and the JSON parser's error if any.
#[derive(Debug)]
pub(crate) struct JwksError {
    reason: &'static str,
    source: Option<serde_json::Error>,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for JwksError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl JwksError {
    /// The configuration error of a static JWKS; `origin` says where it came from.
    pub(crate) fn into_config_error(self, origin: Option<&std::path::Path>) -> ConfigError {
        let reason = match origin {
            Some(path) => format!("{}: {}", path.display(), self.reason),
            None => self.reason.to_owned(),
        };
        ConfigError::key(reason, self.source.map(Into::into))
    }
}

/// A JWK as jsonwebtoken reads it. jsonwebtoken knows `alg` values of RFC 7518 only: an
/// `alg` of `Ed25519` (RFC 9864) is read as `EdDSA`, which in jsonwebtoken is Ed25519 only, and
/// [`verification_key`] then requires an Ed25519 key, as for `EdDSA`.
fn read_jwk(key: &Value) -> Option<Jwk> {
    let mut key = key.clone();
    if let Some(alg) = key.get_mut("alg") {
        if alg == crate::support::jose::ED25519 {
            *alg = Value::from("EdDSA");
        }
    }
    serde_json::from_value::<Jwk>(key).ok()
}

fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // Symmetric keys have no place in a published key set: anyone who can read it could
        // sign with them.
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(ka) => {
            let alg = key_algorithm(ka)?;
            if !by_type.contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let fingerprint = fingerprint(&serde_json::to_vec(jwk).ok()?);
    Some(VerificationKey::new(
        jwk.common.key_id.clone(),
        algorithms,
        key,
        fingerprint,
    ))
}

/// SHA-256 of a key's published or configured form.
pub(crate) fn fingerprint(bytes: &[u8]) -> [u8; 32] {
    crate::support::sha256::sha256(bytes)
}

fn key_algorithm(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Where remote keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeyLocation {
    /// A JWKS URL.
    Jwks(String),
    /// RFC 8414 / OpenID discovery from this issuer.
    Discover(String),
}

/// Settings of a [`RemoteKeys`].
#[derive(Debug, Clone)]
pub(crate) struct RemoteSettings {
    pub(crate) min_refresh_interval: Duration,
    pub(crate) max_age: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_http: bool,
}

/// A remote JWKS, cached and refreshed.
pub(crate) struct RemoteKeys {
    location: KeyLocation,
    client: reqwest::Client,
    settings: RemoteSettings,
    keys: RwLock<Option<Fetched>>,
    refresh: Mutex<RefreshState>,
    flight: Arc<SingleFlight<(), bool>>,
}

#[derive(Clone)]
struct Fetched {
    set: Arc<KeySet>,
    at: Instant,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    /// The JWKS URL found by discovery.
    jwks_uri: Option<String>,
    /// Why the last fetch failed (no token material: URLs and transport errors only).
    last_error: Option<FetchError>,
}

impl RemoteKeys {
    pub(crate) fn new(
        location: KeyLocation,
        client: reqwest::Client,
        settings: RemoteSettings,
    ) -> Self {
        Self {
            location,
            client,
            settings,
            keys: RwLock::new(None),
            refresh: Mutex::new(RefreshState::default()),
            flight: Arc::default(),
        }
    }

    /// The cached keys, if any. Starts a background refresh when they are older than `max_age`.
    pub(crate) fn current(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        let fetched = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        if fetched.at.elapsed() >= self.settings.max_age {
            // Stale keys keep working while the refresh runs (or fails).
            drop(self.start_refresh());
        }
        Some(fetched.set)
    }

    /// Refreshes (or joins the refresh in flight), then returns the current keys. Does not start
    /// a new fetch within `min_refresh_interval` of the previous one.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        if let Some(waiter) = self.start_refresh() {
            // `None` means the refresh ended without reporting: treated as failed.
            let _ = waiter.wait().await;
        }
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|f| Arc::clone(&f.set))
    }

    /// Whether keys are loaded (stale ones count: they still verify). With none, tries a
    /// fetch first, as a request would: joins the one in flight, or starts one unless the
    /// last attempt was within `min_refresh_interval`, and waits for it (at most the fetch
    /// timeout).
    pub(crate) async fn ready(self: &Arc<Self>) -> bool {
        let loaded = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        loaded || self.refresh().await.is_some()
    }

    /// Starts a refresh in its own task unless one is in flight (then joins it) or one started
    /// too recently, or there is no tokio runtime to run it (then returns `None`).
    fn start_refresh(self: &Arc<Self>) -> Option<Waiter<bool>> {
        let mut state = self.refresh.lock().unwrap_or_else(|e| e.into_inner());
        let leader = match self.flight.begin((), || None) {
            Begin::Wait(waiter) => return Some(waiter),
            Begin::Lead(leader) => leader,
        };
        if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.settings.min_refresh_interval)
        {
            return None;
        }
        state.last_attempt = Some(Instant::now());
        drop(state);
        let waiter = leader.waiter();
        let this = Arc::clone(self);
        // Its own task, so that a cancelled request does not cancel the fetch that other
        // requests are waiting for. Started from synchronous code too (a stale key set), so
        // without a runtime no refresh happens.
        spawn(async move {
            let ok = this.fetch_and_store().await;
            leader.finish(ok);
        })
        .then_some(waiter)
    }

    /// Why the last fetch failed, if it did.
    pub(crate) fn last_error(&self) -> Option<FetchError> {
        self.refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error
            .clone()
    }

    async fn fetch_and_store(&self) -> bool {
        let result = tokio::time::timeout(self.settings.fetch_timeout, self.fetch())
            .await
            .unwrap_or_else(|elapsed| Err(FetchError::unavailable("timed out").because(elapsed)));
        self.refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error = result.as_ref().err().cloned();
        match result {
            Ok(set) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", keys = set.len(), "JWKS refreshed");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(Fetched {
                    set: Arc::new(set),
                    at: Instant::now(),
                });
                true
            }
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", error = %_e.message(), "JWKS refresh failed; keeping cached keys");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let jwks_uri = match &self.location {
            KeyLocation::Jwks(url) => url.clone(),
            KeyLocation::Discover(issuer) => {
                let known = self
                    .refresh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .jwks_uri
                    .clone();
                match known {
                    Some(uri) => uri,
                    None => {
                        let uri =
                            fetch::observe(Upstream::Discovery, self.discover(issuer)).await?;
                        self.refresh
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .jwks_uri = Some(uri.clone());
                        uri
                    }
                }
            }
        };
        fetch::observe(Upstream::Jwks, self.fetch_jwks(&jwks_uri)).await
    }

    /// The key set at `jwks_uri`.
    async fn fetch_jwks(&self, jwks_uri: &str) -> Result<KeySet, FetchError> {
        let body = match fetch::get(&self.client, jwks_uri, self.settings.max_response_bytes).await
        {
            Ok(body) => body,
            Err(e) => {
                // The metadata may have moved the JWKS: discover again next time.
                self.refresh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .jwks_uri = None;
                return Err(e);
            }
        };
        KeySet::from_jwks_json(&body).map_err(|e| {
            let error = FetchError::malformed(format!("{jwks_uri}: {}", e.reason));
            match e.source {
                Some(json) => error.because(json),
                None => error,
            }
        })
    }

    /// The `jwks_uri` of the issuer's metadata; it must be https (unless allowed otherwise).
    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let doc = fetch::discover(&self.client, issuer, self.settings.max_response_bytes).await?;
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| FetchError::malformed(format!("metadata of {issuer}: no jwks_uri")))?;
        check_url(jwks_uri, self.settings.allow_http)
            .map_err(|reason| FetchError::malformed(format!("{jwks_uri:?}: {reason}")))?;
        Ok(jwks_uri.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let jwks = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"},
            {"kty":"EC","crv":"P-256","use":"enc","kid":"e",
             "x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"},
            {"kty":"EC","crv":"P-256","kid":"s",
             "x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"},
            {"kty":"weird"}
        ]}"#;
        let set = KeySet::from_jwks_json(jwks).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.candidates(Some("s"), Algorithm::ES256).count(), 1);
        assert_eq!(set.candidates(Some("s"), Algorithm::RS256).count(), 0);
        assert_eq!(set.candidates(Some("h"), Algorithm::HS256).count(), 0);
        assert_eq!(set.candidates(Some("zzz"), Algorithm::ES256).count(), 0);
        assert_eq!(set.candidates(None, Algorithm::ES256).count(), 1);
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(KeySet::from_jwks_json(b"not json").is_err());
        assert!(KeySet::from_jwks_json(b"{\"keys\": 5}").is_err());
        assert!(KeySet::from_jwks_json(b"[]").is_err());
        assert!(KeySet::from_jwks_json(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::from_jwks_json(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
    }
}
