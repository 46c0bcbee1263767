//! [`IntrospectionValidator`]: opaque (reference) access tokens, validated by asking the
//! authorization server (RFC 7662 token introspection), with the certificate binding the
//! answer carries (RFC 8705 §3.2: a top-level `cnf` with `x5t#S256`).
//!
//! The answer goes through the same [`AccessToken`] parsing and the same binding check in the
//! layer as a JWT's claims: a token bound to another certificate, or not bound at all, is
//! refused exactly as a JWT would be.
//!
//! - Request: `POST` `token=…&token_type_hint=access_token` as a form, authenticated with
//!   `client_secret_basic`, `client_secret_post` or mutual TLS (`tls_client_auth`, RFC 8705 §2;
//!   with discovery the `mtls_endpoint_aliases` endpoint is used, §5).
//! - Answer: `active` must be `true`; `exp` and `nbf` are checked (with a leeway), `iss` and
//!   `aud` when configured; a `token_type` other than `Bearer` (for example `DPoP`) and a
//!   `token_use` other than `access_token` are refused.
//! - Cache: results are kept by SHA-256 of the token (never the token). An active result lives
//!   until the token's `exp` but at most [`cache_ttl`](IntrospectionValidatorBuilder::cache_ttl)
//!   (3 s by default, so that a token revoked at the authorization server is refused within
//!   seconds), an inactive one for
//!   [`negative_cache_ttl`](IntrospectionValidatorBuilder::negative_cache_ttl) (5 s). The cache
//!   is bounded in entries and in bytes. Concurrent requests with the same uncached token make
//!   one call to the authorization server.
//! - Failures fail closed and are never cached: an unreachable or slow endpoint, or an HTTP
//!   error status, gives 503 ([`AuthErrorKind::IntrospectionUnavailable`]); an answer that is not
//!   a JSON object, too large, or without a boolean `active` gives 401 `invalid_token`.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use certbound::{BoundTokenLayer, IntrospectionValidator};
//!
//! # fn main() -> Result<(), certbound::ConfigError> {
//! let validator = IntrospectionValidator::endpoint("https://as.example/introspect")
//!     .client_secret_basic("resource-server", "s3cret")
//!     .audience("https://api.example")
//!     .build()?;
//! let layer = BoundTokenLayer::new(validator);
//! # let _ = layer; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::{AccessToken, PresentedToken, TokenFuture, ValidateToken};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::support::cache::{entry_bytes, Keep, ResultCache};
use crate::upstream::{self as fetch, check_url, FetchError};

/// Validates opaque access tokens by RFC 7662 introspection (see the [module docs](self)).
/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct IntrospectionValidator(Arc<Inner>);

struct Inner {
    endpoint: Endpoint,
    client: reqwest::Client,
    auth: ClientAuth,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: i64,
    active_ttl: Duration,
    inactive_ttl: Duration,
    fetch_timeout: Duration,
    max_response_bytes: usize,
    allow_http: bool,
    cache: Arc<ResultCache<Outcome>>,
}

enum Endpoint {
    Fixed(String),
    Discover {
        issuer: String,
        resolved: OnceCell<String>,
    },
}

/// How the resource server authenticates to the introspection endpoint.
enum ClientAuth {
    /// RFC 6749 §2.3.1: the prepared `Authorization: Basic` value (marked sensitive).
    Basic(HeaderValue),
    /// RFC 6749 §2.3.1: credentials in the form body.
    Post { client_id: String, secret: String },
    /// RFC 8705 §2: the TLS client certificate authenticates; `client_id` in the form body.
    Mtls { client_id: String },
}

impl ClientAuth {
    fn method(&self) -> &'static str {
        match self {
            Self::Basic(_) => "client_secret_basic",
            Self::Post { .. } => "client_secret_post",
            Self::Mtls { .. } => "tls_client_auth",
        }
    }
}

/// An active token's parsed answer, with the times to check again on every cache hit.
#[derive(Clone)]
struct Active {
    token: AccessToken,
    exp: Option<i64>,
    nbf: Option<i64>,
}

type Outcome = Result<Active, AuthError>;

/// What a cached refusal takes (no claims).
const REFUSAL_BYTES: usize = 512;

impl fmt::Debug for IntrospectionValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.0.endpoint {
            Endpoint::Fixed(url) => url.as_str(),
            Endpoint::Discover { issuer, .. } => issuer.as_str(),
        };
        f.debug_struct("IntrospectionValidator")
            .field("endpoint", &endpoint)
            .field("client_auth", &self.0.auth.method())
            .field("cache_ttl", &self.0.active_ttl)
            .field("negative_cache_ttl", &self.0.inactive_ttl)
            .finish_non_exhaustive()
    }
}

impl IntrospectionValidator {
    /// Starts a validator that asks the introspection endpoint at `url` (https).
    pub fn endpoint(url: impl Into<String>) -> IntrospectionValidatorBuilder {
        IntrospectionValidatorBuilder::new(EndpointConfig::Url(url.into()))
    }

    /// Starts a validator that finds the introspection endpoint in the metadata of `issuer`
    /// (RFC 8414, then OpenID Connect Discovery; the document's `issuer` must match). With
    /// [`tls_client_auth`](IntrospectionValidatorBuilder::tls_client_auth), the
    /// `mtls_endpoint_aliases` entry is preferred (RFC 8705 §5).
    pub fn discover(issuer: impl Into<String>) -> IntrospectionValidatorBuilder {
        IntrospectionValidatorBuilder::new(EndpointConfig::Discover(issuer.into()))
    }

    /// Resolves the endpoint now (discovery) instead of on the first request. Does nothing
    /// when the endpoint was configured directly.
    ///
    /// # Errors
    /// [`DiscoveryError`] with the reason when the metadata cannot be fetched or names no
    /// usable introspection endpoint.
    pub async fn prefetch(&self) -> Result<(), DiscoveryError> {
        self.0
            .endpoint_url()
            .await
            .map(drop)
            .map_err(|e| DiscoveryError(e.into_message()))
    }
}

impl ValidateToken for IntrospectionValidator {
    type Future = TokenFuture;

    fn validate(&self, token: &str) -> TokenFuture {
        self.validate_presented(PresentedToken::new(token, None))
    }

    fn validate_presented(&self, presented: PresentedToken<'_>) -> TokenFuture {
        let token = presented.token();
        let key = presented.key();
        if let Some(outcome) = self.0.cache.get(&key) {
            return TokenFuture::ready(check_times(outcome, self.0.leeway));
        }
        // A miss: one call to the authorization server per token, however many requests wait.
        // Only here is the token copied.
        let this = Arc::clone(&self.0);
        let token = token.to_owned();
        let answer = self
            .0
            .cache
            .get_or_compute(key, move || async move { this.introspect(&token).await });
        let leeway = self.0.leeway;
        TokenFuture::fetching(async move {
            match answer.await {
                Some(outcome) => check_times(outcome, leeway),
                None => Err(unavailable("introspection task failed")),
            }
        })
    }
}

impl Inner {
    /// Asks the authorization server about `token`, and says how long the outcome may be kept.
    async fn introspect(&self, token: &str) -> (Outcome, Keep) {
        const DONT_KEEP: Keep = Keep {
            ttl: Duration::ZERO,
            bytes: 0,
        };
        let answer = tokio::time::timeout(self.fetch_timeout, self.call(token))
            .await
            .unwrap_or_else(|_| Err(FetchError::Unavailable("introspection timed out".into())));
        match answer {
            Ok(body) => self.interpret(&body),
            Err(FetchError::Unavailable(_reason)) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", reason = %_reason, "introspection failed");
                (
                    Err(unavailable("introspection endpoint unavailable")),
                    DONT_KEEP,
                )
            }
            Err(FetchError::Malformed(_reason)) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", reason = %_reason, "introspection answer unusable");
                (Err(invalid("malformed introspection response")), DONT_KEEP)
            }
        }
    }

    async fn call(&self, token: &str) -> Result<Vec<u8>, FetchError> {
        let url = self.endpoint_url().await?;
        let mut request = self
            .client
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let ClientAuth::Basic(value) = &self.auth {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let response = request
            .body(self.form(token))
            .send()
            .await
            .map_err(|e| FetchError::Unavailable(format!("{url}: {e}")))?;
        if response.status() != http::StatusCode::OK {
            // 401/403 here mean the resource server's own credentials were refused: a
            // configuration problem, not something the client can fix, so 503 as for 5xx.
            return Err(FetchError::Unavailable(format!(
                "{url}: HTTP {}",
                response.status()
            )));
        }
        fetch::read_limited(response, url, self.max_response_bytes).await
    }

    /// The request body (RFC 7662 §2.1), with the client's credentials where they go there.
    fn form(&self, token: &str) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", "access_token");
        match &self.auth {
            ClientAuth::Basic(_) => {}
            ClientAuth::Post { client_id, secret } => {
                form.append_pair("client_id", client_id)
                    .append_pair("client_secret", secret);
            }
            // RFC 8705 §2: client_id is required with mutual-TLS client authentication.
            ClientAuth::Mtls { client_id } => {
                form.append_pair("client_id", client_id);
            }
        }
        form.finish()
    }

    async fn endpoint_url(&self) -> Result<&str, FetchError> {
        match &self.endpoint {
            Endpoint::Fixed(url) => Ok(url),
            Endpoint::Discover { issuer, resolved } => resolved
                .get_or_try_init(|| self.discover(issuer))
                .await
                .map(String::as_str)
                .map_err(FetchError::Unavailable),
        }
    }

    async fn discover(&self, issuer: &str) -> Result<String, String> {
        let doc = fetch::discover(&self.client, issuer, self.max_response_bytes).await?;
        let alias = match self.auth {
            ClientAuth::Mtls { .. } => doc
                .get("mtls_endpoint_aliases")
                .and_then(|aliases| aliases.get("introspection_endpoint"))
                .and_then(Value::as_str),
            _ => None,
        };
        let url = alias
            .or_else(|| doc.get("introspection_endpoint").and_then(Value::as_str))
            .ok_or_else(|| format!("metadata of {issuer}: no introspection_endpoint"))?;
        check_url(url, self.allow_http)?;
        Ok(url.to_owned())
    }

    /// Turns a `200` answer into an outcome. Answers the server meant (active or not, for us or
    /// not) are cached; answers that are malformed are not.
    fn interpret(&self, body: &[u8]) -> (Outcome, Keep) {
        let dont_keep = |e| {
            (
                Err(e),
                Keep {
                    ttl: Duration::ZERO,
                    bytes: 0,
                },
            )
        };
        let keep_refusal = |e| {
            let keep = Keep {
                ttl: self.inactive_ttl,
                bytes: REFUSAL_BYTES,
            };
            (Err(e), keep)
        };
        let malformed = invalid("malformed introspection response");
        let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(body) else {
            return dont_keep(malformed);
        };
        // RFC 7662 §2.2: `active` is REQUIRED and a boolean.
        match claims.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                return keep_refusal(AuthError::with_detail(
                    AuthErrorKind::TokenInactive,
                    "introspection: token not active",
                ))
            }
            _ => return dont_keep(malformed),
        }
        let (Ok(exp), Ok(nbf)) = (timestamp(&claims, "exp"), timestamp(&claims, "nbf")) else {
            return dont_keep(malformed);
        };
        if let Err(e) = self.check_meant_for_us(&claims) {
            return keep_refusal(e);
        }
        let token = match AccessToken::from_claims(claims) {
            Ok(token) => token,
            // A `cnf`, `scope` or `sub` of the wrong shape: the answer is malformed.
            Err(e) => return dont_keep(e),
        };
        let active = Active { token, exp, nbf };
        let now = unix_now();
        if let Err(e) = check_times_at(&active, now, self.leeway) {
            return keep_refusal(e);
        }
        // RFC 7662 §4: never beyond the token's own expiry.
        let ttl = match exp {
            Some(exp) if exp <= now => Duration::ZERO,
            Some(exp) => self
                .active_ttl
                .min(Duration::from_secs((exp - now).unsigned_abs())),
            None => self.active_ttl,
        };
        let keep = Keep {
            ttl,
            bytes: entry_bytes(body.len()),
        };
        (Ok(active), keep)
    }

    /// `token_type`, `token_use`, `iss` and `aud` of an active answer.
    fn check_meant_for_us(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        // RFC 7662 §2.2 / RFC 9449 §7.2: a DPoP-bound (or any non-bearer) token presented as a
        // bearer token is refused.
        match claims.get("token_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
            Some(_) => return Err(invalid("introspection: token_type is not Bearer")),
        }
        // Some servers (Ory Hydra) introspect refresh tokens too and say so here.
        match claims.get("token_use") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "access_token" => {}
            Some(_) => return Err(invalid("introspection: not an access token")),
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
                return Err(invalid("introspection: wrong or missing iss"));
            }
        }
        if !self.audiences.is_empty() {
            let ours = |v: &Value| {
                v.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|o| o == a))
            };
            let matches = match claims.get("aud") {
                Some(Value::Array(items)) => items.iter().any(ours),
                Some(single) => ours(single),
                None => false,
            };
            if !matches {
                return Err(invalid("introspection: wrong or missing aud"));
            }
        }
        Ok(())
    }
}

fn invalid(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::InvalidToken, detail)
}

fn unavailable(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::IntrospectionUnavailable, detail)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A NumericDate member: absent (or null), or a number of seconds (fractions cut off).
fn timestamp(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ()> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
            _ => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// `exp` and `nbf` against the clock, again on every cache hit (a cached answer outlives
/// neither).
fn check_times(outcome: Outcome, leeway: i64) -> Result<AccessToken, AuthError> {
    let active = outcome?;
    if active.exp.is_some() || active.nbf.is_some() {
        check_times_at(&active, unix_now(), leeway)?;
    }
    Ok(active.token)
}

fn check_times_at(active: &Active, now: i64, leeway: i64) -> Result<(), AuthError> {
    if active
        .exp
        .is_some_and(|exp| exp.saturating_add(leeway) <= now)
    {
        return Err(AuthError::with_detail(
            AuthErrorKind::TokenExpired,
            "introspection: token expired",
        ));
    }
    if active
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(AuthError::with_detail(
            AuthErrorKind::TokenNotYetValid,
            "introspection: token not yet valid (nbf)",
        ));
    }
    Ok(())
}

/// Why the introspection endpoint could not be discovered (see
/// [`IntrospectionValidator::prefetch`]).
#[derive(Debug, Clone)]
pub struct DiscoveryError(String);

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot discover the introspection endpoint: {}", self.0)
    }
}

impl std::error::Error for DiscoveryError {}

enum EndpointConfig {
    Url(String),
    Discover(String),
}

enum AuthConfig {
    Basic {
        client_id: String,
        secret: String,
    },
    Post {
        client_id: String,
        secret: String,
    },
    Tls {
        client_id: String,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    },
}

/// Builder of an [`IntrospectionValidator`]. Options are checked by [`build`](Self::build).
#[must_use]
pub struct IntrospectionValidatorBuilder {
    endpoint: EndpointConfig,
    auth: Vec<AuthConfig>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: Duration,
    active_ttl: Duration,
    inactive_ttl: Duration,
    max_cache_entries: u64,
    max_cache_bytes: u64,
    http_client: Option<reqwest::Client>,
    extra_roots: Vec<CertificateDer<'static>>,
    public_roots: bool,
    fetch_timeout: Duration,
    max_response_bytes: usize,
    allow_http: bool,
}

impl fmt::Debug for IntrospectionValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Client secrets and keys stay out of Debug output.
        let methods: Vec<_> = self
            .auth
            .iter()
            .map(|a| match a {
                AuthConfig::Basic { .. } => "client_secret_basic",
                AuthConfig::Post { .. } => "client_secret_post",
                AuthConfig::Tls { .. } => "tls_client_auth",
            })
            .collect();
        f.debug_struct("IntrospectionValidatorBuilder")
            .field("client_auth", &methods)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("cache_ttl", &self.active_ttl)
            .field("negative_cache_ttl", &self.inactive_ttl)
            .finish_non_exhaustive()
    }
}

impl IntrospectionValidatorBuilder {
    fn new(endpoint: EndpointConfig) -> Self {
        Self {
            endpoint,
            auth: Vec::new(),
            issuer: None,
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            active_ttl: Duration::from_secs(3),
            inactive_ttl: Duration::from_secs(5),
            max_cache_entries: 100_000,
            max_cache_bytes: 64 * 1024 * 1024,
            http_client: None,
            extra_roots: Vec::new(),
            public_roots: true,
            fetch_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
            allow_http: false,
        }
    }

    /// Authenticates to the endpoint with HTTP Basic (RFC 6749 §2.3.1; id and secret are
    /// form-encoded before base64, as the RFC requires).
    pub fn client_secret_basic(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.auth.push(AuthConfig::Basic {
            client_id: client_id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Authenticates to the endpoint with `client_id` and `client_secret` in the form body.
    pub fn client_secret_post(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.auth.push(AuthConfig::Post {
            client_id: client_id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Authenticates to the endpoint with mutual TLS (RFC 8705 §2): the resource server
    /// presents `chain` (leaf first) and proves possession of `key`; `client_id` goes in the
    /// form body. Not combinable with [`http_client`](Self::http_client).
    pub fn tls_client_auth(
        mut self,
        client_id: impl Into<String>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.auth.push(AuthConfig::Tls {
            client_id: client_id.into(),
            chain,
            key,
        });
        self
    }

    /// Requires the answer's `iss` to be `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires the answer's `aud` to contain `audience` (or another configured audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Longest time an active answer is reused (default 3 s; never beyond the token's `exp`).
    ///
    /// This is how long a token revoked at the authorization server can still be used here.
    /// A longer time saves calls to the server and latency; it is the operator's trade-off.
    /// `Duration::ZERO` asks the server on every request (concurrent requests with the same
    /// token still share one call).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.active_ttl = ttl;
        self
    }

    /// How long a refusal the server meant (inactive, or not for this resource server) is
    /// reused (default 5 s). Failures to reach the server are never cached.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.inactive_ttl = ttl;
        self
    }

    /// Most answers kept at once (default 100 000).
    pub fn max_cache_entries(mut self, entries: u64) -> Self {
        self.max_cache_entries = entries;
        self
    }

    /// Approximate memory the cache may use (default 64 MiB).
    pub fn max_cache_bytes(mut self, bytes: u64) -> Self {
        self.max_cache_bytes = bytes;
        self
    }

    /// Uses `client` for introspection and discovery instead of the default one (Mozilla roots
    /// plus [`trust_root`](Self::trust_root)s, https only, the fetch timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Trusts `ca` for the endpoint's server certificate (in addition to the public roots
    /// unless [`only_trust_roots`](Self::only_trust_roots)).
    pub fn trust_root(mut self, ca: CertificateDer<'static>) -> Self {
        self.extra_roots.push(ca);
        self
    }

    /// Trusts only the [`trust_root`](Self::trust_root)s, not the public Mozilla roots.
    pub fn only_trust_roots(mut self) -> Self {
        self.public_roots = false;
        self
    }

    /// Time limit for one introspection call, discovery included (default 5 s). When it passes
    /// the request is refused with 503.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Largest answer accepted (default 64 KiB); a larger one is a malformed answer.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Allows a plain `http://` endpoint or issuer. Insecure: the tokens and the client's
    /// credentials cross the network in clear, and anyone on the path can answer "active". For
    /// local development only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the configuration and builds the validator. No network access (discovery happens
    /// on first use or in [`IntrospectionValidator::prefetch`]).
    ///
    /// # Errors
    /// No client authentication or more than one, an empty `client_id`, a non-https URL,
    /// `tls_client_auth` together with an own `http_client`, or an unusable client identity.
    pub fn build(self) -> Result<IntrospectionValidator, ConfigError> {
        let url = match &self.endpoint {
            EndpointConfig::Url(url) | EndpointConfig::Discover(url) => url,
        };
        check_url(url, self.allow_http).map_err(ConfigError::Url)?;
        let mut auth = self.auth.into_iter();
        let (Some(auth), None) = (auth.next(), auth.next()) else {
            return Err(ConfigError::Invalid(
                "choose exactly one client authentication for introspection: \
                 client_secret_basic, client_secret_post or tls_client_auth"
                    .into(),
            ));
        };
        let (auth, identity) = match auth {
            AuthConfig::Basic { client_id, secret } => {
                non_empty(&client_id)?;
                // RFC 6749 §2.3.1: both parts are form-encoded before base64.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let credentials: String = [encode(&client_id), encode(&secret)].join(":");
                let mut value =
                    HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
                        .map_err(|_| ConfigError::Invalid("client credentials".into()))?;
                value.set_sensitive(true);
                (ClientAuth::Basic(value), None)
            }
            AuthConfig::Post { client_id, secret } => {
                non_empty(&client_id)?;
                (ClientAuth::Post { client_id, secret }, None)
            }
            AuthConfig::Tls {
                client_id,
                chain,
                key,
            } => {
                non_empty(&client_id)?;
                if self.http_client.is_some() {
                    return Err(ConfigError::Invalid(
                        "tls_client_auth brings its own identity; with an own http_client, \
                         put the identity into that client and use client_id-only \
                         authentication there"
                            .into(),
                    ));
                }
                (ClientAuth::Mtls { client_id }, Some((chain, key)))
            }
        };
        let client = match self.http_client {
            Some(client) => client,
            None => fetch::default_client(
                &self.extra_roots,
                self.public_roots,
                identity,
                self.fetch_timeout,
                self.allow_http,
            )?,
        };
        let endpoint = match self.endpoint {
            EndpointConfig::Url(url) => Endpoint::Fixed(url),
            EndpointConfig::Discover(issuer) => Endpoint::Discover {
                issuer,
                resolved: OnceCell::new(),
            },
        };
        Ok(IntrospectionValidator(Arc::new(Inner {
            endpoint,
            client,
            auth,
            issuer: self.issuer,
            audiences: self.audiences,
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            active_ttl: self.active_ttl,
            inactive_ttl: self.inactive_ttl,
            fetch_timeout: self.fetch_timeout,
            max_response_bytes: self.max_response_bytes,
            allow_http: self.allow_http,
            cache: Arc::new(ResultCache::new(
                self.max_cache_entries,
                self.max_cache_bytes,
            )),
        })))
    }
}

fn non_empty(client_id: &str) -> Result<(), ConfigError> {
    if client_id.is_empty() {
        return Err(ConfigError::Invalid("client_id must not be empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

    fn validator(
        configure: impl FnOnce(IntrospectionValidatorBuilder) -> IntrospectionValidatorBuilder,
    ) -> IntrospectionValidator {
        configure(
            IntrospectionValidator::endpoint("https://as.test/introspect")
                .client_secret_basic("rs", "secret"),
        )
        .build()
        .unwrap()
    }

    fn interpret(
        v: &IntrospectionValidator,
        answer: Value,
    ) -> (Result<AccessToken, AuthError>, Duration) {
        let (outcome, keep) = v.0.interpret(answer.to_string().as_bytes());
        (outcome.map(|a| a.token), keep.ttl)
    }

    fn kind(r: &Result<AccessToken, AuthError>) -> AuthErrorKind {
        r.as_ref().err().map(AuthError::kind).expect("an error")
    }

    #[test]
    fn an_active_bound_answer_becomes_a_token_kept_at_most_the_cache_ttl() {
        let v = validator(|b| b);
        let (token, ttl) = interpret(
            &v,
            json!({"active": true, "sub": "alice", "client_id": "c", "scope": "read write",
                   "cnf": {"x5t#S256": TP}, "exp": unix_now() + 3600}),
        );
        let token = token.unwrap();
        assert_eq!(token.subject(), Some("alice"));
        assert_eq!(token.client_id(), Some("c"));
        assert_eq!(token.scopes(), ["read", "write"]);
        assert_eq!(token.thumbprint().unwrap().to_string(), TP);
        assert_eq!(ttl, Duration::from_secs(3));
    }

    #[test]
    fn an_active_answer_is_never_kept_beyond_exp() {
        let v = validator(|b| b.cache_ttl(Duration::from_secs(600)));
        let (_, ttl) = interpret(&v, json!({"active": true, "exp": unix_now() + 10}));
        assert!(
            ttl <= Duration::from_secs(10) && ttl >= Duration::from_secs(9),
            "{ttl:?}"
        );
        // Within the leeway after exp: accepted, but not cached.
        let (token, ttl) = interpret(&v, json!({"active": true, "exp": unix_now() - 5}));
        assert!(token.is_ok());
        assert_eq!(ttl, Duration::ZERO);
    }

    #[test]
    fn refusals_the_server_meant_are_kept_for_the_negative_ttl() {
        let v = validator(|b| b.issuer("https://as.test").audience("https://api.test"));
        let aud = "https://api.test";
        for (answer, expected) in [
            (json!({"active": false}), AuthErrorKind::TokenInactive),
            (
                json!({"active": true, "iss": "https://other", "aud": aud}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "aud": aud}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": "https://other"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "token_type": "DPoP"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "token_use": "refresh_token"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "exp": unix_now() - 3600}),
                AuthErrorKind::TokenExpired,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "nbf": unix_now() + 3600}),
                AuthErrorKind::TokenNotYetValid,
            ),
        ] {
            let (result, ttl) = interpret(&v, answer.clone());
            assert_eq!(kind(&result), expected, "{answer}");
            assert_eq!(ttl, Duration::from_secs(5), "{answer}");
        }
        let (ok, _) = interpret(
            &v,
            json!({"active": true, "iss": "https://as.test", "aud": ["x", aud], "token_type": "bearer"}),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn malformed_answers_are_invalid_and_never_kept() {
        let v = validator(|b| b);
        for answer in [
            json!([]),
            json!("active"),
            json!({}),
            json!({"active": "true"}),
            json!({"active": 1}),
            json!({"active": null}),
            json!({"active": true, "exp": "tomorrow"}),
            json!({"active": true, "nbf": {}}),
            json!({"active": true, "cnf": {"x5t#S256": 7}}),
            json!({"active": true, "cnf": "x"}),
            json!({"active": true, "scope": ["a"]}),
        ] {
            let (result, ttl) = interpret(&v, answer.clone());
            assert_eq!(kind(&result), AuthErrorKind::InvalidToken, "{answer}");
            assert_eq!(ttl, Duration::ZERO, "{answer}");
        }
        for body in [&b"not json"[..], b"", b"{\"active\":true", b"\xff\xfe"] {
            let (outcome, keep) = v.0.interpret(body);
            assert_eq!(outcome.err().unwrap().kind(), AuthErrorKind::InvalidToken);
            assert_eq!(keep.ttl, Duration::ZERO);
        }
    }

    #[test]
    fn fractional_timestamps_are_accepted() {
        let v = validator(|b| b);
        let exp = unix_now() as f64 + 100.5;
        let (token, _) = interpret(&v, json!({"active": true, "exp": exp}));
        assert!(token.is_ok());
        let (token, _) = interpret(&v, json!({"active": true, "exp": 1e300}));
        assert_eq!(kind(&token), AuthErrorKind::InvalidToken);
    }

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let v = IntrospectionValidator::endpoint("https://as.test/i")
            .client_secret_basic("my client", "p:ss&é")
            .build()
            .unwrap();
        let ClientAuth::Basic(value) = &v.0.auth else {
            panic!("basic expected")
        };
        assert!(value.is_sensitive());
        let encoded = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "my+client:p%3Ass%26%C3%A9");
        assert_eq!(
            v.0.form("a b+c"),
            "token=a+b%2Bc&token_type_hint=access_token"
        );
    }

    #[test]
    fn post_and_mtls_put_the_client_id_in_the_form() {
        let v = IntrospectionValidator::endpoint("https://as.test/i")
            .client_secret_post("rs", "s&1")
            .build()
            .unwrap();
        assert_eq!(
            v.0.form("t"),
            "token=t&token_type_hint=access_token&client_id=rs&client_secret=s%261"
        );
    }

    #[test]
    fn configuration_errors_are_reported() {
        let base = || IntrospectionValidator::endpoint("https://as.test/i");
        assert!(base().build().is_err(), "no client authentication");
        assert!(base()
            .client_secret_basic("a", "b")
            .client_secret_post("a", "b")
            .build()
            .is_err());
        assert!(base().client_secret_post("", "b").build().is_err());
        assert!(IntrospectionValidator::endpoint("http://as.test/i")
            .client_secret_basic("a", "b")
            .build()
            .is_err());
        assert!(IntrospectionValidator::endpoint("http://as.test/i")
            .client_secret_basic("a", "b")
            .insecure_allow_http()
            .build()
            .is_ok());
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let builder = IntrospectionValidator::endpoint("https://as.test/i")
            .client_secret_post("rs", "hunter2-secret");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let v = builder.build().unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(format!("{v:?}").contains("client_secret_post"));
    }

    #[test]
    fn a_cached_answer_is_checked_against_the_clock_on_every_hit() {
        let active = |exp, nbf| Active {
            token: AccessToken::from_claims(Map::new()).unwrap(),
            exp,
            nbf,
        };
        let now = unix_now();
        let expired = check_times(Ok(active(Some(now - 1), None)), 0);
        assert_eq!(kind(&expired), AuthErrorKind::TokenExpired);
        assert!(check_times(Ok(active(Some(now - 1), None)), 60).is_ok());
        let early = check_times(Ok(active(None, Some(now + 120))), 60);
        assert_eq!(kind(&early), AuthErrorKind::TokenNotYetValid);
        assert!(check_times(Ok(active(Some(now + 60), Some(now - 60))), 0).is_ok());
    }

    /// Seeded random answers (valid JSON of every shape, and bytes): never a panic, and never
    /// an accepted token unless the answer says `"active": true`.
    #[test]
    fn random_answers_never_panic_and_never_accept_without_active_true() {
        let v = validator(|b| b);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn value(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
            let names = [
                "active",
                "exp",
                "nbf",
                "cnf",
                "x5t#S256",
                "scope",
                "sub",
                "aud",
                "iss",
                "token_type",
                "scp",
                "client_id",
            ];
            match next() % if depth > 2 { 6 } else { 8 } {
                0 => Value::Null,
                1 => Value::Bool(next() % 2 == 0),
                2 => json!(next() as i64 >> (next() % 64)),
                3 => json!((next() as f64) / 7.0 - 1e18),
                4 => json!(TP),
                5 => json!(names[(next() % 12) as usize]),
                6 => Value::Array((0..next() % 4).map(|_| value(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 6)
                        .map(|_| {
                            (
                                names[(next() % 12) as usize].to_owned(),
                                value(next, depth + 1),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let mut accepted = 0;
        for _ in 0..5000 {
            let answer = value(&mut next, 0);
            let body = answer.to_string();
            let (outcome, _) = v.0.interpret(body.as_bytes());
            if outcome.is_ok() {
                assert_eq!(answer["active"], Value::Bool(true), "{body}");
                accepted += 1;
            }
            let mut bytes = body.into_bytes();
            if !bytes.is_empty() {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
                let _ = v.0.interpret(&bytes);
            }
        }
        assert!(accepted > 0, "the generator also makes acceptable answers");
    }
}
