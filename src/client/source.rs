//! [`TokenSource`]: access tokens from the `client_credentials` grant, with the client
//! authenticated by its certificate, cached and refreshed before they expire.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;

use super::exchange::{Endpoint, Exchange};
use super::identity::ClientIdentity;
use super::reloadable::{PerIdentity, ReloadableClientIdentity};
use super::token::{Schedule, Token};
use super::TokenError;
use crate::dpop::{DpopKey, ProofBuilder};
use crate::error::ConfigError;
use crate::upstream::{check_config_url, default_client};

/// Access tokens for one client from one authorization server: the `client_credentials` grant
/// (RFC 6749 §4.4) with the client authenticated by its TLS certificate (`tls_client_auth` or
/// `self_signed_tls_client_auth`, RFC 8705 §2), optionally DPoP-bound (RFC 9449 §5).
///
/// - **One request for any number of callers.** [`token`](Self::token) answers from the cache
///   (a read lock and a clock reading) while the token is fresh. When it is not, one caller asks
///   the authorization server and the others wait for that answer, success or failure.
/// - **Refreshed before expiry.** A token is handed out until `expiry_margin` (default 30 s,
///   at most half its lifetime) before it expires. In the `early_refresh` window before that
///   (default 30 s, at most half of what remains), callers still get the cached token while
///   one background task asks for its successor.
/// - **Bounded retries.** An unreachable server, a timeout, `429` or `5xx` is retried up to
///   `max_attempts` times in all (default 3), with a doubling pause from `retry_backoff`
///   (default 200 ms). A refusal (RFC 6749 §5.2 `error`) is returned at once, as
///   [`TokenErrorKind::Refused`](super::TokenErrorKind::Refused).
/// - **DPoP.** With [`dpop`](TokenSourceBuilder::dpop), every token request carries a fresh
///   proof for `POST` and the token endpoint. The server's `DPoP-Nonce` is kept and sent, and a
///   `use_dpop_nonce` refusal is retried once with the new nonce.
/// - **A renewed identity.** With a [`ReloadableClientIdentity`] renewed (its files changed,
///   or [`replace`](ReloadableClientIdentity::replace)d), a token obtained with the old
///   certificate is no longer handed out: the next caller asks for a new one, over a new
///   connection to the authorization server that presents the new certificate. Each
///   [`Token`] knows the identity it was obtained with
///   ([`client_thumbprint`](Token::client_thumbprint)).
/// - Tokens, proofs and keys are never logged and never in `Debug`.
///
/// Cheap to clone: clones share the cache.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use certbound::client::{ClientIdentity, TokenSource};
///
/// let identity = ClientIdentity::from_pem_files("client.pem", "client.key")?;
/// let tokens = TokenSource::builder("my-client", identity)
///     .issuer("https://as.example")
///     .scope("payments")
///     .build()?;
/// let token = tokens.token().await?;
/// assert!(token.authorization().as_bytes().starts_with(b"Bearer "));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    exchange: Exchange,
    identity: ReloadableClientIdentity,
    /// The client for the authorization server (and the resource's metadata), made for the
    /// identity it presents.
    http: PerIdentity<reqwest::Client>,
    settings: HttpSettings,
    schedule: Schedule,
    current: RwLock<Option<Token>>,
    /// Held while a token is being asked for: one request at a time.
    refresh: tokio::sync::Mutex<()>,
    /// Counts failed requests, so that callers that waited for one get its answer.
    failures: AtomicU64,
    last_failure: Mutex<Option<TokenError>>,
    /// A background refresh is running.
    background: AtomicBool,
    /// No background refresh before this (after one failed).
    background_pause_until: Mutex<Option<Instant>>,
}

/// What the HTTP client for the authorization server is made with, besides the identity.
struct HttpSettings {
    extra_roots: Vec<CertificateDer<'static>>,
    public_roots: bool,
    timeout: Duration,
    allow_http: bool,
}

impl HttpSettings {
    fn client(&self, identity: &ClientIdentity) -> Result<reqwest::Client, ConfigError> {
        default_client(
            &self.extra_roots,
            self.public_roots,
            Some(identity.parts()),
            self.timeout,
            self.allow_http,
        )
    }
}

/// How long background refreshes pause after one failed (callers still get the cached token,
/// and ask themselves once it is stale).
const BACKGROUND_PAUSE: Duration = Duration::from_secs(1);

impl TokenSource {
    /// A builder for `client_id`, authenticating with `identity`: a [`ClientIdentity`] (fixed)
    /// or a [`ReloadableClientIdentity`] (renewed while running). Set where tokens come from
    /// with [`issuer`](TokenSourceBuilder::issuer),
    /// [`token_endpoint`](TokenSourceBuilder::token_endpoint) or
    /// [`resource_url`](TokenSourceBuilder::resource_url).
    pub fn builder(
        client_id: impl Into<String>,
        identity: impl Into<ReloadableClientIdentity>,
    ) -> TokenSourceBuilder {
        TokenSourceBuilder {
            client_id: client_id.into(),
            identity: identity.into(),
            endpoint: None,
            prefer_authorization_server: None,
            extra_roots: Vec::new(),
            public_roots: true,
            scope: None,
            resources: Vec::new(),
            dpop: None,
            schedule: Schedule {
                margin: Duration::from_secs(30),
                early: Duration::from_secs(30),
            },
            default_lifetime: Duration::from_secs(60),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            allow_http: false,
        }
    }

    /// A fresh access token: the cached one, or a new one from the authorization server. The
    /// token was obtained with the client identity in use (see
    /// [`Token::client_thumbprint`]).
    ///
    /// # Errors
    /// The server refused the request (its RFC 6749 error), could not be reached on any
    /// attempt, or answered unusably.
    pub async fn token(&self) -> Result<Token, TokenError> {
        if let Some(token) = self.inner.fresh(Instant::now()) {
            return Ok(token);
        }
        self.inner.refresh(None).await
    }

    /// A new token in place of `rejected`, which a resource server refused (`401
    /// invalid_token`): unless another caller already replaced it, the cache is dropped and
    /// the authorization server asked.
    ///
    /// # Errors
    /// As [`token`](Self::token).
    pub async fn replace(&self, rejected: &Token) -> Result<Token, TokenError> {
        self.inner.refresh(Some(rejected)).await
    }

    /// Drops `rejected` from the cache (unless another token replaced it already), so that
    /// the next [`token`](Self::token) call asks for a new one.
    pub(crate) fn forget(&self, rejected: &Token) {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|token| token.same(rejected)) {
            *current = None;
        }
    }

    /// The client's identity in use (the renewed one, after a renewal).
    pub fn identity(&self) -> ClientIdentity {
        self.inner.identity.current()
    }

    /// The client's identity as it was given: renewable when it is a
    /// [`ReloadableClientIdentity`] (a fixed [`ClientIdentity`] became one that nothing
    /// renews).
    pub fn reloadable_identity(&self) -> &ReloadableClientIdentity {
        &self.inner.identity
    }

    /// The DPoP key, when tokens are DPoP-bound.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.inner.exchange.dpop.as_ref()
    }

    /// A proof by the DPoP key for a request to `url`, its algorithm named as the
    /// authorization server's metadata asks (see [`DpopKey::fully_specified_alg`]).
    pub(crate) fn proof(&self, method: &str, url: &str) -> Option<ProofBuilder<'_>> {
        let key = self.inner.exchange.dpop.as_ref()?;
        Some(self.inner.exchange.proof(key, method, url))
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.inner.exchange.client_id)
            .field("endpoint", &self.inner.exchange.endpoint)
            .field("identity", &self.inner.identity)
            .field("dpop", &self.inner.exchange.dpop.is_some())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// The cached token while it is fresh; starts a background refresh inside its early
    /// window.
    fn fresh(self: &Arc<Self>, now: Instant) -> Option<Token> {
        let token = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            let token = current.as_ref()?;
            if now >= token.stale_at() || !self.identity.is_current(token.client_thumbprint()) {
                return None;
            }
            token.clone()
        };
        if now >= token.early_at() {
            self.refresh_in_background(now);
        }
        Some(token)
    }

    fn current(&self) -> Option<Token> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, token: &Token) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
    }

    /// A token from the authorization server, asked for with the identity in use, over a
    /// client that presents it.
    async fn fetch(&self) -> Result<Token, TokenError> {
        let identity = self.identity.current();
        let http = self
            .http
            .get(&identity, |identity| self.settings.client(identity))
            .map_err(|e| {
                TokenError::local("no HTTP client for the client's identity").because(e)
            })?;
        self.exchange.fetch(&http, &identity, self.schedule).await
    }

    /// One request for all the callers that find the cache stale (or `rejected` in it), or
    /// obtained with an identity that is no longer in use.
    async fn refresh(self: &Arc<Self>, rejected: Option<&Token>) -> Result<Token, TokenError> {
        let failures = self.failures.load(Ordering::Acquire);
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(current) = self.current() {
            let refused = rejected.is_some_and(|r| r.same(&current));
            if !refused
                && Instant::now() < current.stale_at()
                && self.identity.is_current(current.client_thumbprint())
            {
                return Ok(current);
            }
        }
        if self.failures.load(Ordering::Acquire) != failures {
            // The request this caller waited for failed: its answer is this caller's too.
            let last = self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(error) = last {
                return Err(error);
            }
        }
        match self.fetch().await {
            Ok(token) => {
                self.store(&token);
                Ok(token)
            }
            Err(error) => {
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error.clone());
                self.failures.fetch_add(1, Ordering::AcqRel);
                Err(error)
            }
        }
    }

    /// Asks for the next token in a background task, unless one is running, a foreground
    /// request is on its way, or the last background attempt failed less than
    /// [`BACKGROUND_PAUSE`] ago. Needs a tokio runtime (else nothing happens, and the token is
    /// replaced once stale).
    fn refresh_in_background(self: &Arc<Self>, now: Instant) {
        let paused = self
            .background_pause_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| now < until);
        if paused || self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.background.store(false, Ordering::Release);
            return;
        };
        let inner = Arc::clone(self);
        runtime.spawn(async move {
            if let Ok(_one_at_a_time) = inner.refresh.try_lock() {
                let due = inner
                    .current()
                    .is_none_or(|token| Instant::now() >= token.early_at());
                if due {
                    match inner.fetch().await {
                        Ok(token) => inner.store(&token),
                        Err(_error) => {
                            #[cfg(feature = "tracing")]
                            tracing::warn!(target: "certbound", error = %_error, "background token refresh failed; the cached token is used until it is stale");
                            *inner
                                .background_pause_until
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner) =
                                Some(Instant::now() + BACKGROUND_PAUSE);
                        }
                    }
                }
            }
            inner.background.store(false, Ordering::Release);
        });
    }
}

/// Builds a [`TokenSource`]; made by [`TokenSource::builder`].
#[must_use]
#[derive(Debug)]
pub struct TokenSourceBuilder {
    client_id: String,
    identity: ReloadableClientIdentity,
    endpoint: Option<Endpoint>,
    prefer_authorization_server: Option<String>,
    extra_roots: Vec<CertificateDer<'static>>,
    public_roots: bool,
    scope: Option<String>,
    resources: Vec<String>,
    dpop: Option<DpopKey>,
    schedule: Schedule,
    default_lifetime: Duration,
    max_attempts: u32,
    retry_backoff: Duration,
    timeout: Duration,
    max_response_bytes: usize,
    allow_http: bool,
}

impl TokenSourceBuilder {
    /// The authorization server's issuer identifier: its token endpoint comes from its RFC
    /// 8414 metadata (then OpenID Connect Discovery), fetched on first use. The
    /// `mtls_endpoint_aliases.token_endpoint` (RFC 8705 §5) is preferred over
    /// `token_endpoint`. The document's `issuer` must be this one.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::discover(issuer.into()));
        self
    }

    /// The token endpoint's URL, without discovery.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::fixed(url.into()));
        self
    }

    /// Starts from the API's URL (RFC 9728): on first use, the resource's metadata is fetched
    /// from its well-known URL (§3.1: for `https://api.example/v1`,
    /// `https://api.example/.well-known/oauth-protected-resource/v1`; when there is none
    /// (`404`), the origin's, `https://api.example/.well-known/oauth-protected-resource`, which
    /// must then name the resource `https://api.example`). The document is used only when its
    /// `resource` is the resource asked about (§3.3, an exact comparison). Its first
    /// `authorization_servers` entry, or the one named with
    /// [`prefer_authorization_server`](Self::prefer_authorization_server), is the issuer, and
    /// its token endpoint comes from RFC 8414 discovery as with [`issuer`](Self::issuer).
    /// Tokens are asked for with `resource=` the metadata's `resource` (RFC 8707), unless
    /// [`resource`](Self::resource) names others.
    ///
    /// A failure (no metadata, another `resource`, no authorization server) is a
    /// [`TokenErrorKind::ResourceMetadata`](super::TokenErrorKind::ResourceMetadata), and
    /// nothing is sent to an authorization server; the next request for a token tries again.
    /// Once found, the authorization server is kept for the source's life. `url` is an
    /// `https` URL without query or fragment; the client's certificate is presented to the
    /// resource server for the metadata, as for the calls.
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::resource(url.into()));
        self
    }

    /// With [`resource_url`](Self::resource_url): the authorization server to use, by its
    /// issuer identifier, instead of the first the metadata lists. The metadata must list it
    /// (exactly), or no token is asked for.
    pub fn prefer_authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.prefer_authorization_server = Some(issuer.into());
        self
    }

    /// Also trusts `ca` for the authorization server's certificate.
    pub fn trust_root(mut self, ca: CertificateDer<'static>) -> Self {
        self.extra_roots.push(ca);
        self
    }

    /// Trusts only the roots given by [`trust_root`](Self::trust_root), not the Mozilla roots.
    pub fn only_trust_roots(mut self) -> Self {
        self.public_roots = false;
        self
    }

    /// The `scope` to ask for (space-separated).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// An RFC 8707 `resource` to ask a token for (repeatable).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// DPoP-bound tokens: every token request carries a proof by `key` (RFC 9449 §5).
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// How long before expiry a token stops being handed out (default 30 s; at most half of
    /// a token's lifetime is kept back).
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.schedule.margin = margin;
        self
    }

    /// How long before that a new token is asked for in the background while the cached one
    /// is still handed out (default 30 s; at most half of the usable lifetime). Zero turns
    /// background refreshes off.
    pub fn early_refresh(mut self, early: Duration) -> Self {
        self.schedule.early = early;
        self
    }

    /// The lifetime assumed when the server's answer has no `expires_in` (default 60 s).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Attempts per token when the server is unavailable (default 3; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The pause before the second attempt, doubled before each further one (default 200 ms).
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The limit for connecting and for each whole exchange with the server (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest answer read from the server (default 64 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Allows `http://` URLs for the issuer, the token endpoint and the resource (and the
    /// authorization servers its metadata names). **Insecure**: the client's
    /// requests and the tokens travel in the clear, and there is no mutual TLS, so no
    /// certificate-bound token. For tests against a local server only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the configuration and builds the source. No network access: the first
    /// [`token`](TokenSource::token) call discovers the endpoint and asks for a token.
    ///
    /// # Errors
    /// No issuer, token endpoint or resource URL, a URL that is not https, a resource URL
    /// with a query or fragment, `prefer_authorization_server` without `resource_url`, an
    /// empty `client_id`, `max_attempts` of 0, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<TokenSource, ConfigError> {
        let Some(mut endpoint) = self.endpoint else {
            return Err(ConfigError::invalid(
                "issuer",
                "set where tokens come from: issuer (discovery), token_endpoint or resource_url",
            ));
        };
        check_config_url(endpoint.option(), endpoint.url(), self.allow_http)?;
        match (&mut endpoint, self.prefer_authorization_server) {
            (Endpoint::Resource { url, prefer, .. }, chosen) => {
                if url.contains(['?', '#']) {
                    return Err(ConfigError::Url {
                        option: "resource_url",
                        url: url.clone(),
                        reason: "a resource identifier has no query or fragment (RFC 9728 §1.2)",
                    });
                }
                *prefer = chosen;
            }
            (_, Some(_)) => {
                return Err(ConfigError::invalid(
                    "prefer_authorization_server",
                    "chooses among the authorization servers of resource_url's metadata; \
                     without resource_url there are none",
                ));
            }
            (_, None) => {}
        }
        if self.client_id.is_empty() {
            return Err(ConfigError::invalid("client_id", "must not be empty"));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "max_attempts",
                "must be at least 1, or no token could ever be asked for",
            ));
        }
        let settings = HttpSettings {
            extra_roots: self.extra_roots,
            public_roots: self.public_roots,
            timeout: self.timeout,
            allow_http: self.allow_http,
        };
        // The first identity's client now, so that a configuration error shows here.
        let http = PerIdentity::new();
        http.get(&self.identity.current(), |identity| {
            settings.client(identity)
        })?;
        Ok(TokenSource {
            inner: Arc::new(Inner {
                exchange: Exchange {
                    endpoint,
                    client_id: self.client_id,
                    scope: self.scope,
                    resources: self.resources,
                    dpop: self.dpop,
                    fully_specified_alg: std::sync::OnceLock::new(),
                    nonce: Mutex::new(None),
                    default_lifetime: self.default_lifetime,
                    max_attempts: self.max_attempts,
                    retry_backoff: self.retry_backoff,
                    max_response_bytes: self.max_response_bytes,
                    allow_http: self.allow_http,
                },
                identity: self.identity,
                http,
                settings,
                schedule: self.schedule,
                current: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
                failures: AtomicU64::new(0),
                last_failure: Mutex::new(None),
                background: AtomicBool::new(false),
                background_pause_until: Mutex::new(None),
            }),
        })
    }
}
