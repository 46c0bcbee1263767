//! [`Dpop`]: what a resource server (or a token endpoint) accepts as DPoP proofs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request};
use jsonwebtoken::Algorithm;

use super::htu::{ExpectedHtu, PublicUrl};
use super::key_cache::{self, Memos, ProofKeyCache};
use super::key_memo::ProofKeyMemo;
use super::memory::MemoryReplayStore;
use super::nonce::{DpopNonces, NonceCheck};
use super::proof::{self, Expected, ProofRules, VerifiedProof};
use super::replay::{Replay, ReplayFuture, ReplayKey, ReplayStore};
use crate::certificate::ConnectionInfo;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::support::time::unix_now;

/// DPoP (RFC 9449) settings: which proofs are accepted, where proof identifiers are recorded,
/// whether server nonces are required, and the public URL proofs are made for.
///
/// Give it to [`BoundTokenLayer::dpop`](crate::BoundTokenLayer::dpop) to accept
/// `Authorization: DPoP` next to certificate-bound `Bearer` tokens, or use
/// [`check_token_request`](Self::check_token_request) at a token endpoint.
///
/// Defaults: algorithms ES256, ES384, PS256, PS384, PS512 and EdDSA (by that name or by RFC
/// 9864's `Ed25519`, wherever EdDSA is allowed); a proof's `iat` at most
/// 60 s in the past and 15 s in the future; proofs up to 8 KiB; replay state in a
/// [`MemoryReplayStore`]; no nonces; the `htu` origin from the request (see
/// [`public_url`](Self::public_url)); the last 4 096 proof keys remembered (see
/// [`max_cached_proof_keys`](Self::max_cached_proof_keys)).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use certbound::dpop::{Dpop, DpopNonces, MemoryReplayStore};
///
/// # fn main() -> Result<(), certbound::ConfigError> {
/// let dpop = Dpop::new()
///     .public_url("https://api.example/v1")?
///     .iat_window(Duration::from_secs(30), Duration::from_secs(5))
///     .replay_store(MemoryReplayStore::new().max_entries(100_000))
///     .require_nonce(DpopNonces::new([7u8; 32])?);
/// # let _ = dpop; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dpop {
    rules: ProofRules,
    /// The `algs` challenge attribute: the allowed algorithms, space-separated.
    algs: String,
    store: Arc<dyn ReplayStore>,
    nonces: Option<DpopNonces>,
    public_url: Option<PublicUrl>,
    /// Recent proof keys, shared by this value's clones; `None` when turned off.
    proof_keys: Option<Arc<ProofKeyCache>>,
}

impl Default for Dpop {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("algorithms", &self.algs)
            .field("max_age_s", &self.rules.max_age)
            .field("max_ahead_s", &self.rules.max_ahead)
            .field("replay_store", &self.store)
            .field("nonces", &self.nonces)
            .field("public_url", &self.public_url)
            .field("proof_keys", &self.proof_keys)
            .finish()
    }
}

/// Seconds beyond the acceptance window for which a proof identifier is kept: `iat` has
/// one-second resolution, and a store's clock may lag a little behind ours.
const REPLAY_LEEWAY_S: i64 = 5;

impl Dpop {
    /// The defaults (see [`Dpop`]).
    pub fn new() -> Self {
        let rules = ProofRules::default();
        Self {
            algs: algs(&rules.algorithms),
            rules,
            store: Arc::new(MemoryReplayStore::new()),
            nonces: None,
            public_url: None,
            proof_keys: Some(Arc::new(ProofKeyCache::new(key_cache::DEFAULT_MAX_KEYS))),
        }
    }

    /// The signature algorithms accepted in proofs.
    ///
    /// # Errors
    /// When `algorithms` is empty or holds a symmetric algorithm (HS256, HS384, HS512: a DPoP
    /// key is a public key; RFC 9449 §4.3 forbids MACs, and `none` has no `Algorithm`).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Result<Self, ConfigError> {
        if algorithms.is_empty() {
            return Err(ConfigError::invalid("algorithms", "no algorithm"));
        }
        if let Some(symmetric) = algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(ConfigError::invalid(
                "algorithms",
                format!("{symmetric:?} is symmetric; DPoP proofs are signed with private keys"),
            ));
        }
        self.rules.algorithms = algorithms.to_vec();
        self.algs = algs(algorithms);
        Ok(self)
    }

    /// Verifies proof signatures with `provider` instead of the crypto backend the crate
    /// features select (a FIPS-validated or hardware-backed implementation, say). Without a
    /// backend feature and without this, the provider the application installed as
    /// jsonwebtoken's process-wide default is used; when there is none, proofs are answered
    /// `500` ([`Misconfigured`](crate::AuthErrorKind::Misconfigured)), never with a panic.
    pub fn crypto_provider(
        mut self,
        provider: &'static jsonwebtoken::crypto::CryptoProvider,
    ) -> Self {
        self.rules.provider = Some(crate::support::crypto::JoseProvider::Explicit(provider));
        self
    }

    /// How far a proof's `iat` may lie in the past (`max_age`, default 60 s) and in the future
    /// (`max_skew`, default 15 s, for clients whose clock runs ahead). The window applies
    /// with nonces too. Proof identifiers are kept for the whole window plus a few seconds.
    pub fn iat_window(mut self, max_age: Duration, max_skew: Duration) -> Self {
        self.rules.max_age = seconds(max_age);
        self.rules.max_ahead = seconds(max_skew);
        self
    }

    /// Where proof identifiers (`jti`) are recorded. The default, a [`MemoryReplayStore`],
    /// protects one process; a fleet of instances shares a store (`RedisReplayStore` with the
    /// `redis` feature), or a proof refused by one instance is accepted by the next.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Requires every proof to carry a nonce issued by `nonces` (RFC 9449 §9). A proof
    /// without one, or with a stale or forged one, is refused with `use_dpop_nonce` and a
    /// fresh `DPoP-Nonce`; accepted requests get a fresh nonce when the time step changed.
    /// Without this, a `nonce` claim in a proof is ignored.
    pub fn require_nonce(mut self, nonces: DpopNonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// The URL clients use to reach this server: an origin and optionally a path prefix
    /// (`https://api.example/v1`). A proof's `htu` must then be this URL followed by the
    /// request's path, whatever the request's `Host` header says (a trailing slash on the
    /// public URL does not matter).
    ///
    /// Without it, the `htu` origin is the request's own: the scheme of the connection
    /// (`https` over TLS, `http` on a plain connection, or the scheme a trusted proxy reports
    /// through [`ForwardedCertLayer::forwarded_origin`](crate::ForwardedCertLayer::forwarded_origin)) and the
    /// authority of the request (`Host` or `:authority`). That default needs no
    /// configuration; its trade-off is that the host is the client's word: a proof made for
    /// `https://other.example/whoami` passes here when the client also sends
    /// `Host: other.example` and this server answers it (the token's audience is still
    /// checked). Pinning the public URL refuses such proofs, and is required behind a proxy
    /// that rewrites the path (a prefix) or the host.
    ///
    /// # Errors
    /// When `url` is not an absolute `http(s)` URL without query or fragment.
    pub fn public_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.public_url = Some(PublicUrl::parse(url)?);
        Ok(self)
    }

    /// Longest `DPoP` header accepted (default 8 KiB); a longer one is an invalid proof.
    pub fn max_proof_len(mut self, bytes: usize) -> Self {
        self.rules.max_len = bytes;
        self
    }

    /// How many recent proof keys the process remembers (default 4 096; `0` turns the memory
    /// off), shared by this value's clones (every layer and connection it serves).
    ///
    /// A proof's key is parsed and its RFC 7638 thumbprint hashed (~23 000 instructions for a
    /// P-256 key, beside its signature's ~750 000 verification). Each connection remembers the
    /// key of its last proof, which serves a client that keeps its connection; behind a reverse
    /// proxy or a service mesh's sidecar, one connection carries many clients' proofs, and this
    /// memory, keyed by the proof header's exact text, serves them. A hit never skips the
    /// signature's verification nor any claim's check, and only keys of proofs that passed
    /// every check are remembered. Memory: each key is charged at least 1.5 KiB (an ES256 or
    /// EdDSA key's entry), an RSA key more (its header and members' text), within
    /// `keys × 1.5 KiB` all told (6 MiB by default). A client minting a new key per proof only
    /// churns it: the bound holds.
    pub fn max_cached_proof_keys(mut self, keys: usize) -> Self {
        self.proof_keys = (keys > 0).then(|| Arc::new(ProofKeyCache::new(keys)));
        self
    }

    /// The process's memory of recent proof keys, if on.
    #[cfg(test)]
    pub(crate) fn proof_keys(&self) -> Option<&ProofKeyCache> {
        self.proof_keys.as_deref()
    }

    /// A fresh nonce to send in a `DPoP-Nonce` header, when nonces are required.
    pub fn fresh_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(|n| n.issue(unix_now()))
    }

    /// Checks the DPoP proof of a request that carries no access token: a token request at an
    /// authorization server (RFC 9449 §5), whose URL is `url` (the token endpoint). Every
    /// check of RFC 9449 §4.3 but `ath`, then the nonce when required, then (only when all
    /// passed) the replay check.
    ///
    /// # Errors
    /// [`AuthErrorKind::InvalidDpopProof`] for a bad or replayed proof,
    /// [`AuthErrorKind::UseDpopNonce`] when a nonce is required and missing or stale (send
    /// [`fresh_nonce`](Self::fresh_nonce) back), and
    /// [`AuthErrorKind::ReplayStoreUnavailable`] when the store cannot answer.
    pub async fn check_token_request(
        &self,
        headers: &HeaderMap,
        method: &str,
        url: &str,
    ) -> Result<VerifiedProof, AuthError> {
        let htu = ExpectedHtu::of_url(url).ok_or_else(|| {
            AuthError::with_detail(
                AuthErrorKind::Misconfigured,
                "token endpoint URL is not an absolute http(s) URL",
            )
        })?;
        let (proof, _) = self.check(headers, method, &htu, None, None)?;
        self.record(&proof).await?;
        Ok(proof)
    }

    /// Whether the replay store answers ([`ReplayStore::ready`]).
    pub(crate) fn store_ready(&self) -> crate::ReadyFuture<'_> {
        self.store.ready()
    }

    /// The `algs` challenge attribute.
    pub(crate) fn algs(&self) -> &str {
        &self.algs
    }

    /// A fresh nonce as a header value.
    pub(crate) fn nonce_header(&self) -> Option<HeaderValue> {
        self.fresh_nonce()
            .and_then(|n| HeaderValue::from_str(&n).ok())
    }

    /// The `htu` a request's proof must carry (its scheme, authority and path, compared with
    /// the proof's under normalisation); `None` when the request has no usable authority.
    pub(crate) fn request_htu<'a, B>(&'a self, request: &'a Request<B>) -> Option<ExpectedHtu<'a>> {
        let path = request.uri().path();
        if let Some(public) = &self.public_url {
            return public.expected(path);
        }
        // A trusted proxy's word (ForwardedCertLayer::forwarded_origin removes the headers
        // and any such extension from everyone else).
        if let Some(origin) = request
            .extensions()
            .get::<crate::forwarded::ForwardedOrigin>()
        {
            return ExpectedHtu::of_request(origin.scheme(), origin.authority(), path);
        }
        // The connection's scheme when an acceptor recorded it; else the request's own
        // (`:scheme` in HTTP/2); else https.
        let scheme = match request.extensions().get::<ConnectionInfo>() {
            Some(connection) if connection.is_tls() => "https",
            Some(_) => "http",
            None => request.uri().scheme_str().unwrap_or("https"),
        };
        let authority = match request.uri().authority() {
            Some(authority) => authority.as_str(),
            None => request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())?,
        };
        ExpectedHtu::of_request(scheme, authority, path)
    }

    /// Every check but replay. The `bool` says the proof's nonce is of the previous step (a
    /// fresh one goes with the response). `keys` is the connection's memory of its last proof
    /// key, when there is a connection at hand (see [`ProofKeyMemo`]), consulted before the
    /// process's ([`ProofKeyCache`]).
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        method: &str,
        htu: &ExpectedHtu<'_>,
        ath: Option<&[u8; 32]>,
        keys: Option<&ProofKeyMemo>,
    ) -> Result<(VerifiedProof, bool), AuthError> {
        let value = proof::single_proof(headers, self.rules.max_len)?;
        // One clock reading for the iat window and the nonce step.
        let now_u64 = unix_now();
        let now = i64::try_from(now_u64).unwrap_or(i64::MAX);
        let expected = Expected {
            method,
            htu,
            ath,
            now,
        };
        let memos = Memos {
            connection: keys,
            shared: self.proof_keys.as_deref(),
        };
        let verified = proof::verify(value, &expected, &self.rules, memos)?;
        let refresh = match &self.nonces {
            None => false,
            Some(nonces) => {
                let Some(nonce) = verified.nonce() else {
                    return Err(AuthError::with_detail(
                        AuthErrorKind::UseDpopNonce,
                        "DPoP proof has no nonce",
                    ));
                };
                match nonces.check(nonce, now_u64) {
                    NonceCheck::Current => false,
                    NonceCheck::Previous => true,
                    NonceCheck::Invalid => {
                        return Err(AuthError::with_detail(
                            AuthErrorKind::UseDpopNonce,
                            "DPoP proof nonce is stale or not ours",
                        ))
                    }
                }
            }
        };
        Ok((verified, refresh))
    }

    /// Records the proof's identifier; the future resolves to `Ok` for a fresh proof.
    pub(crate) fn record_future(&self, proof: &VerifiedProof) -> ReplayFuture {
        let key = ReplayKey::new(proof.jkt(), proof.jti());
        self.store.record(&key, self.replay_ttl())
    }

    async fn record(&self, proof: &VerifiedProof) -> Result<(), AuthError> {
        replay_outcome(self.record_future(proof).await)
    }

    fn replay_ttl(&self) -> Duration {
        let seconds = self.rules.max_age + self.rules.max_ahead + REPLAY_LEEWAY_S;
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }
}

/// What a replay store's answer means for the request.
pub(crate) fn replay_outcome(
    answer: Result<Replay, super::replay::StoreError>,
) -> Result<(), AuthError> {
    match answer {
        Ok(Replay::Fresh) => Ok(()),
        Ok(Replay::Replayed) => Err(AuthError::with_detail(
            AuthErrorKind::InvalidDpopProof,
            "DPoP proof replayed (jti seen before)",
        )),
        Err(error) => Err(AuthError::with_detail(
            AuthErrorKind::ReplayStoreUnavailable,
            "DPoP replay store did not answer",
        )
        .with_source(error)),
    }
}

/// The `algs` challenge parameter: every accepted name, `Ed25519` (RFC 9864) beside `EdDSA`.
fn algs(algorithms: &[Algorithm]) -> String {
    crate::support::jose::accepted_names(algorithms).join(" ")
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarded::ForwardedOrigin;

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut request = Request::get(uri).body(()).unwrap();
        if let Some(host) = host {
            request
                .headers_mut()
                .insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        }
        request
    }

    #[test]
    fn the_htu_origin_is_the_connections_scheme_and_the_requests_host_by_default() {
        let dpop = Dpop::new();
        let tls = ConnectionInfo::new(([192, 0, 2, 1], 1).into(), None);
        let plain = ConnectionInfo::plain(([192, 0, 2, 1], 1).into());
        let mut r = request("/whoami?x=1", Some("API.example:443"));
        assert_eq!(
            dpop.request_htu(&r).map(|h| h.to_url()).as_deref(),
            Some("https://api.example/whoami")
        );
        r.extensions_mut().insert(plain);
        assert_eq!(
            dpop.request_htu(&r).map(|h| h.to_url()).as_deref(),
            Some("http://api.example:443/whoami")
        );
        // HTTP/2: the URI carries :scheme and :authority; the connection's scheme wins.
        let mut r = request("http://api.example:8443/whoami", None);
        assert_eq!(
            dpop.request_htu(&r).map(|h| h.to_url()).as_deref(),
            Some("http://api.example:8443/whoami")
        );
        r.extensions_mut().insert(tls);
        assert_eq!(
            dpop.request_htu(&r).map(|h| h.to_url()).as_deref(),
            Some("https://api.example:8443/whoami")
        );
        assert!(dpop.request_htu(&request("/whoami", None)).is_none());
    }

    #[test]
    fn a_public_url_wins_over_a_trusted_proxys_origin_which_wins_over_the_host() {
        let mut r = request("/whoami", Some("internal:8080"));
        r.extensions_mut()
            .insert(ForwardedOrigin::parse(b"https", b"Edge.example").unwrap());
        assert_eq!(
            Dpop::new().request_htu(&r).map(|h| h.to_url()).as_deref(),
            Some("https://edge.example/whoami")
        );
        let pinned = Dpop::new().public_url("https://api.example/v1").unwrap();
        assert_eq!(
            pinned.request_htu(&r).map(|h| h.to_url()).as_deref(),
            Some("https://api.example/v1/whoami")
        );
    }

    #[test]
    fn symmetric_or_empty_algorithm_lists_are_refused() {
        use jsonwebtoken::Algorithm as A;
        assert!(Dpop::new().algorithms(&[]).is_err());
        assert!(Dpop::new().algorithms(&[A::ES256, A::HS256]).is_err());
        let dpop = Dpop::new().algorithms(&[A::EdDSA, A::ES256]).unwrap();
        assert_eq!(dpop.algs(), "EdDSA Ed25519 ES256");
    }

    #[test]
    fn proof_identifiers_outlive_the_whole_acceptance_window() {
        let dpop = Dpop::new().iat_window(Duration::from_secs(60), Duration::from_secs(15));
        // A proof dated 15 s ahead is acceptable until 60 s after its iat: 75 s from now.
        assert!(dpop.replay_ttl() >= Duration::from_secs(76));
    }
}
