//! The token request itself: discovery, the `client_credentials` form, the DPoP proof and
//! nonce, retries, and reading the answer (RFC 6749 §5).

use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use http::header::{ACCEPT, CONTENT_TYPE};
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::error::oauth_text;
use super::identity::ClientIdentity;
use super::resource::{protected_resource, ProtectedResource};
use super::token::{Schedule, Token, TokenScheme};
use super::TokenError;
use crate::dpop::{DpopKey, ProofBuilder};
use crate::metrics::{Upstream, UpstreamResult};
use crate::support::jose;
use crate::upstream::{check_url, discover, observe, read_limited, Observed};

/// Where the token endpoint is.
pub(crate) enum Endpoint {
    Fixed(String),
    Discover {
        issuer: String,
        resolved: tokio::sync::OnceCell<String>,
    },
    /// From the resource's RFC 9728 metadata, then the chosen issuer's RFC 8414 metadata.
    Resource {
        url: String,
        prefer: Option<String>,
        resolved: tokio::sync::OnceCell<(ProtectedResource, String)>,
    },
}

/// Where a token request goes, and the resource the metadata named (when it came from there).
struct Target<'a> {
    endpoint: &'a str,
    resource: Option<&'a str>,
}

impl Endpoint {
    pub(crate) fn fixed(url: String) -> Self {
        Self::Fixed(url)
    }

    pub(crate) fn discover(issuer: String) -> Self {
        Self::Discover {
            issuer,
            resolved: tokio::sync::OnceCell::new(),
        }
    }

    pub(crate) fn resource(url: String) -> Self {
        Self::Resource {
            url,
            prefer: None,
            resolved: tokio::sync::OnceCell::new(),
        }
    }

    /// The builder option that set it, for configuration errors.
    pub(crate) fn option(&self) -> &'static str {
        match self {
            Self::Fixed(_) => "token_endpoint",
            Self::Discover { .. } => "issuer",
            Self::Resource { .. } => "resource_url",
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            Self::Fixed(url) | Self::Discover { issuer: url, .. } | Self::Resource { url, .. } => {
                url
            }
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(url) => f.debug_tuple("TokenEndpoint").field(url).finish(),
            Self::Discover { issuer, resolved } => f
                .debug_struct("Issuer")
                .field("issuer", issuer)
                .field("token_endpoint", &resolved.get())
                .finish(),
            Self::Resource {
                url,
                prefer,
                resolved,
            } => f
                .debug_struct("ResourceUrl")
                .field("url", url)
                .field("prefer", prefer)
                .field("issuer", &resolved.get().map(|(found, _)| &found.issuer))
                .field("token_endpoint", &resolved.get().map(|(_, url)| url))
                .finish(),
        }
    }
}

/// Everything a token request needs.
///
/// The HTTP client is not part of it: each request gets the one made for the identity it
/// presents (see [`ReloadableClientIdentity`](super::ReloadableClientIdentity)).
pub(crate) struct Exchange {
    pub(crate) endpoint: Endpoint,
    pub(crate) client_id: String,
    pub(crate) scope: Option<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) dpop: Option<DpopKey>,
    /// Whether proofs name an Ed25519 key's algorithm `Ed25519` (RFC 9864): set by discovery
    /// when the server's `dpop_signing_alg_values_supported` lists only one of `EdDSA` and
    /// `Ed25519`; unset, the key's own choice (`EdDSA` by default).
    pub(crate) fully_specified_alg: OnceLock<bool>,
    /// The authorization server's latest `DPoP-Nonce`.
    pub(crate) nonce: Mutex<Option<String>>,
    pub(crate) default_lifetime: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_http: bool,
}

/// `Some(true)` when the metadata's `dpop_signing_alg_values_supported` lists `Ed25519` but
/// not `EdDSA`, `Some(false)` for the other way round, `None` when it lists both or neither.
fn lists_one_ed25519_name(metadata: &serde_json::Map<String, Value>) -> Option<bool> {
    let algs = metadata
        .get("dpop_signing_alg_values_supported")?
        .as_array()?;
    let lists = |name: &str| algs.iter().any(|alg| alg.as_str() == Some(name));
    match (lists(jose::ED25519), lists("EdDSA")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// Why one attempt did not give a token.
enum Failure {
    /// `use_dpop_nonce` with a new nonce: worth one more attempt at once.
    NonceRequired(TokenError),
    Error(TokenError),
}

/// The longest `DPoP-Nonce` kept (RFC 9449 leaves it open; nonces are short in practice).
const MAX_NONCE: usize = 1024;

/// The longest `error_description` kept.
const MAX_DESCRIPTION: usize = 200;

impl Exchange {
    /// A token, with up to `max_attempts` attempts while the server is unavailable and one
    /// more when it asks for a DPoP nonce.
    pub(crate) async fn fetch(
        &self,
        http: &reqwest::Client,
        identity: &ClientIdentity,
        schedule: Schedule,
    ) -> Result<Token, TokenError> {
        let mut attempt = 1;
        let mut nonce_retried = false;
        let mut backoff = self.retry_backoff;
        loop {
            match self.attempt(http, identity, schedule).await {
                Ok(token) => return Ok(token),
                Err(Failure::NonceRequired(_)) if !nonce_retried => nonce_retried = true,
                Err(Failure::NonceRequired(error)) => return Err(error),
                Err(Failure::Error(error))
                    if error.is_transient() && attempt < self.max_attempts =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
                Err(Failure::Error(error)) => return Err(error),
            }
        }
    }

    /// The token endpoint: configured, or discovered once (a failed discovery is tried again
    /// on the next attempt).
    async fn target(&self, http: &reqwest::Client) -> Result<Target<'_>, TokenError> {
        match &self.endpoint {
            Endpoint::Fixed(url) => Ok(Target {
                endpoint: url,
                resource: None,
            }),
            Endpoint::Discover { issuer, resolved } => {
                let endpoint = resolved
                    .get_or_try_init(|| self.discover(http, issuer))
                    .await?;
                Ok(Target {
                    endpoint,
                    resource: None,
                })
            }
            Endpoint::Resource {
                url,
                prefer,
                resolved,
            } => {
                let (found, endpoint) = resolved
                    .get_or_try_init(|| async {
                        let found = protected_resource(
                            http,
                            url,
                            prefer.as_deref(),
                            self.allow_http,
                            self.max_response_bytes,
                        )
                        .await?;
                        let endpoint = self.discover(http, &found.issuer).await?;
                        Ok::<_, TokenError>((found, endpoint))
                    })
                    .await?;
                Ok(Target {
                    endpoint,
                    resource: Some(&found.resource),
                })
            }
        }
    }

    async fn discover(&self, http: &reqwest::Client, issuer: &str) -> Result<String, TokenError> {
        let metadata = observe(
            Upstream::Discovery,
            discover(http, issuer, self.max_response_bytes),
        )
        .await
        .map_err(|e| {
            if e.is_unavailable() {
                TokenError::unavailable(e.message())
            } else {
                TokenError::invalid_response(e.message())
            }
        })?;
        let alias = metadata
            .get("mtls_endpoint_aliases")
            .and_then(|aliases| aliases.get("token_endpoint"))
            .and_then(Value::as_str);
        let url = alias
            .or_else(|| metadata.get("token_endpoint").and_then(Value::as_str))
            .ok_or_else(|| {
                TokenError::invalid_response(format!(
                    "the metadata of {issuer} has no token_endpoint"
                ))
            })?;
        check_url(url, self.allow_http).map_err(|reason| {
            TokenError::invalid_response(format!(
                "the metadata of {issuer} names an unusable token endpoint: {reason}"
            ))
        })?;
        if let Some(fully_specified) = lists_one_ed25519_name(&metadata) {
            let _ = self.fully_specified_alg.set(fully_specified);
        }
        Ok(url.to_owned())
    }

    /// A proof by `key` for a request to `url`, naming the algorithm as the server expects.
    pub(crate) fn proof<'a>(&self, key: &'a DpopKey, method: &str, url: &str) -> ProofBuilder<'a> {
        let proof = key.proof(method, url);
        match self.fully_specified_alg.get() {
            Some(&fully_specified) => proof.fully_specified_alg(fully_specified),
            None => proof,
        }
    }

    async fn attempt(
        &self,
        http: &reqwest::Client,
        identity: &ClientIdentity,
        schedule: Schedule,
    ) -> Result<Token, Failure> {
        let Target { endpoint, resource } = self.target(http).await.map_err(Failure::Error)?;
        let mut request = http
            .post(endpoint)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(self.form(resource));
        if let Some(key) = &self.dpop {
            let nonce = self
                .nonce
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let mut proof = self.proof(key, "POST", endpoint);
            if let Some(nonce) = &nonce {
                proof = proof.nonce(nonce);
            }
            let proof = proof.sign().map_err(|e| {
                Failure::Error(TokenError::local("the DPoP proof could not be signed").because(e))
            })?;
            request = request.header("dpop", proof);
        }
        let observed = Observed::start(Upstream::TokenEndpoint);
        let answer = self.answer(request, endpoint, schedule, identity).await;
        observed.finish(match &answer {
            // A nonce asked for is the protocol's step, not a failure.
            Ok(_) | Err(Failure::NonceRequired(_)) => UpstreamResult::Ok,
            Err(Failure::Error(e)) if e.is_timeout() => UpstreamResult::Timeout,
            Err(Failure::Error(_)) => UpstreamResult::Error,
        });
        answer
    }

    /// Sends the token request to `endpoint`, and reads the answer.
    async fn answer(
        &self,
        request: reqwest::RequestBuilder,
        endpoint: &str,
        schedule: Schedule,
        identity: &ClientIdentity,
    ) -> Result<Token, Failure> {
        let sent = Instant::now();
        let response = request.send().await.map_err(|e| {
            Failure::Error(TokenError::unavailable(format!("{endpoint}: no answer")).because(e))
        })?;
        let status = response.status();
        let new_nonce = self.take_nonce(response.headers());
        let body = read_limited(response, endpoint, self.max_response_bytes)
            .await
            .map_err(|e| {
                Failure::Error(if e.is_unavailable() {
                    TokenError::unavailable(e.message())
                } else {
                    TokenError::invalid_response(e.message())
                })
            })?;
        if status == StatusCode::OK {
            return self
                .token(&body, sent, schedule, identity)
                .map_err(|reason| Failure::Error(TokenError::invalid_response(reason)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Err(Failure::Error(TokenError::unavailable(format!(
                "{endpoint}: {status}"
            ))));
        }
        match refusal(&body) {
            Some((error, description)) => {
                let nonce_required = error == "use_dpop_nonce" && new_nonce;
                let error = TokenError::refused(status.as_u16(), error, description);
                Err(if nonce_required {
                    Failure::NonceRequired(error)
                } else {
                    Failure::Error(error)
                })
            }
            None => Err(Failure::Error(TokenError::invalid_response(format!(
                "{endpoint}: {status} without an RFC 6749 error"
            )))),
        }
    }

    /// The `client_credentials` request (RFC 6749 §4.4.2), `client_id` in the form as RFC
    /// 8705 §2 asks. The configured `resource`s (RFC 8707), or else the one the resource's
    /// metadata named.
    fn form(&self, discovered: Option<&str>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        form.append_pair("client_id", &self.client_id);
        if let Some(scope) = &self.scope {
            form.append_pair("scope", scope);
        }
        for resource in &self.resources {
            form.append_pair("resource", resource);
        }
        if let (true, Some(resource)) = (self.resources.is_empty(), discovered) {
            form.append_pair("resource", resource);
        }
        form.finish()
    }

    /// Keeps the answer's `DPoP-Nonce` (when DPoP is on and it is a valid nonce); `true` when
    /// it was a new one.
    fn take_nonce(&self, headers: &http::HeaderMap) -> bool {
        if self.dpop.is_none() {
            return false;
        }
        let Some(nonce) = headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|n| is_nonce(n))
        else {
            return false;
        };
        let mut kept = self.nonce.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.as_deref() == Some(nonce) {
            return false;
        }
        *kept = Some(nonce.to_owned());
        true
    }

    /// Reads a successful token response (RFC 6749 §5.1).
    fn token(
        &self,
        body: &[u8],
        sent: Instant,
        schedule: Schedule,
        identity: &ClientIdentity,
    ) -> Result<Token, String> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            token_type: String,
            #[serde(default)]
            expires_in: Option<Value>,
            #[serde(default)]
            scope: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|_| "not a token response (access_token and token_type)".to_owned())?;
        let scheme = if answer.token_type.eq_ignore_ascii_case("bearer") {
            TokenScheme::Bearer
        } else if answer.token_type.eq_ignore_ascii_case("dpop") && self.dpop.is_some() {
            TokenScheme::Dpop
        } else {
            return Err(format!(
                "token_type {:?} is not one this client can present",
                oauth_text(&answer.token_type, 20).unwrap_or_default()
            ));
        };
        let lifetime = match &answer.expires_in {
            None | Some(Value::Null) => self.default_lifetime,
            Some(value) => expires_in(value).ok_or("expires_in is not a number of seconds")?,
        };
        Token::new(
            &answer.access_token,
            scheme,
            answer.scope,
            sent,
            lifetime,
            schedule,
            identity.clone(),
        )
        .ok_or_else(|| "access_token is empty or not visible ASCII".to_owned())
    }
}

/// `expires_in` in seconds: a non-negative integer (also as a string of digits, which some
/// servers send), at most ten years.
fn expires_in(value: &Value) -> Option<Duration> {
    let seconds = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }?;
    (seconds <= 10 * 365 * 24 * 3600).then(|| Duration::from_secs(seconds))
}

/// The RFC 6749 §5.2 `error` and `error_description` of an error answer.
fn refusal(body: &[u8]) -> Option<(String, Option<String>)> {
    #[derive(Deserialize)]
    struct Refusal {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    let refusal: Refusal = serde_json::from_slice(body).ok()?;
    let error = oauth_text(&refusal.error, 64)?;
    let description = refusal
        .error_description
        .as_deref()
        .and_then(|d| oauth_text(d, MAX_DESCRIPTION));
    Some((error, description))
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR`, NQCHAR = `%x21 / %x23-5B / %x5D-7E`.
pub(crate) fn is_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE
        && nonce
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_in_is_whole_non_negative_seconds() {
        assert_eq!(expires_in(&json!(300)), Some(Duration::from_secs(300)));
        assert_eq!(expires_in(&json!("3600")), Some(Duration::from_secs(3600)));
        assert_eq!(expires_in(&json!(0)), Some(Duration::ZERO));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("1h"),
            json!(""),
            json!(true),
            json!(1e12),
        ] {
            assert_eq!(expires_in(&bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_are_read_only_from_rfc_6749_error_objects() {
        assert_eq!(
            refusal(br#"{"error":"invalid_scope","error_description":"no such scope"}"#),
            Some(("invalid_scope".to_owned(), Some("no such scope".to_owned())))
        );
        assert_eq!(
            refusal(br#"{"error":"invalid_client","error_description":"bad\nline"}"#),
            Some(("invalid_client".to_owned(), None))
        );
        for bad in [&br#"{"error":""}"#[..], b"{}", b"<html>", br#"{"error":7}"#] {
            assert_eq!(refusal(bad), None);
        }
    }

    #[test]
    fn nonces_are_rfc_9449_nqchar_strings() {
        assert!(is_nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
        assert!(!is_nonce(""));
        assert!(!is_nonce("has space"));
        assert!(!is_nonce("quote\""));
        assert!(!is_nonce(&"n".repeat(MAX_NONCE + 1)));
    }

    #[test]
    fn the_ed25519_name_follows_a_server_that_lists_only_one_of_the_two() {
        let metadata = |algs: Value| match json!({ "dpop_signing_alg_values_supported": algs }) {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let pick = |algs: Value| lists_one_ed25519_name(&metadata(algs));
        assert_eq!(pick(json!(["ES256", "Ed25519"])), Some(true));
        assert_eq!(pick(json!(["ES256", "EdDSA"])), Some(false));
        // Both, neither, or an unreadable list: the key's own choice (EdDSA by default).
        assert_eq!(pick(json!(["EdDSA", "Ed25519"])), None);
        assert_eq!(pick(json!(["ES256"])), None);
        assert_eq!(pick(json!("Ed25519")), None);
        assert_eq!(lists_one_ed25519_name(&serde_json::Map::new()), None);
    }
}
