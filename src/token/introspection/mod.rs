//! [`IntrospectionValidator`]: opaque access tokens, validated by RFC 7662 introspection.
//!
//! The validator (this file) runs the cache and turns failures into refusals; [`builder`] holds
//! the configuration, [`client`] makes the HTTP exchange with the endpoint (client
//! authentication, discovery), [`answer`] turns the RFC 7662 answer into an outcome.

mod answer;
mod builder;
mod client;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use answer::{check_times, invalid, Outcome, Rules};
pub use builder::IntrospectionValidatorBuilder;
use client::{Answer, Endpoint, Exchange};

use super::{PresentedToken, TokenFuture, ValidateToken};
use crate::error::{AuthError, AuthErrorKind};
use crate::metrics;
use crate::readiness::ReadyFuture;
use crate::support::cache::{Keep, ResultCache};

/// The fuzz target's view of [`Rules::interpret`]: an answer for `issuer` and `audience`.
#[cfg(fuzzing)]
pub(crate) fn interpret_answer(
    body: &[u8],
    issuer: &str,
    audience: &str,
) -> Result<crate::AccessToken, AuthError> {
    let rules = Rules {
        issuer: Some(issuer.to_owned()),
        audiences: vec![audience.to_owned()],
        leeway: 60,
        active_ttl: Duration::from_secs(3),
        inactive_ttl: Duration::from_secs(3),
    };
    check_times(rules.interpret(body).0, rules.leeway)
}

/// Validates opaque (reference) access tokens by asking the authorization server (RFC 7662
/// token introspection), with the certificate binding the answer carries (RFC 8705 §3.2: a
/// top-level `cnf` with `x5t#S256`). Cheap to clone; clones share the cache.
///
/// The answer goes through the same [`AccessToken`](crate::AccessToken) parsing and the same binding check in the
/// layer as a JWT's claims: a token bound to another certificate, or not bound at all, is
/// refused exactly as a JWT would be.
///
/// - Request: `POST` `token=…&token_type_hint=access_token` as a form, authenticated with
///   `client_secret_basic`, `client_secret_post` or mutual TLS (`tls_client_auth`, RFC 8705 §2;
///   with discovery the `mtls_endpoint_aliases` endpoint is used, §5).
/// - Answer: `active` must be `true`; `exp` and `nbf` are checked (with a leeway), `iss` and
///   `aud` when configured; a `token_type` other than `Bearer` (for example `DPoP`) and a
///   `token_use` other than `access_token` are refused.
/// - Cache: results are kept by SHA-256 of the token (never the token). An active result lives
///   until the token's `exp` but at most [`cache_ttl`](IntrospectionValidatorBuilder::cache_ttl)
///   (3 s by default, so that a token revoked at the authorization server is refused within
///   seconds), an inactive one for
///   [`negative_cache_ttl`](IntrospectionValidatorBuilder::negative_cache_ttl) (5 s). The cache
///   is bounded in entries and in bytes. Concurrent requests with the same uncached token make
///   one call to the authorization server.
/// - Failures fail closed and are never cached: an unreachable or slow endpoint, an HTTP
///   error status (`401`/`403`, the resource server's own credentials refused, is also logged
///   at `warn`), a redirect (RFC 7662 has none; at most 3 within the endpoint's origin are
///   followed, never one to another origin, which would receive the token), an answer larger
///   than [`max_response_bytes`](IntrospectionValidatorBuilder::max_response_bytes), or more
///   calls in flight than
///   [`max_concurrent_calls`](IntrospectionValidatorBuilder::max_concurrent_calls) gives 503
///   ([`AuthErrorKind::IntrospectionUnavailable`](crate::AuthErrorKind::IntrospectionUnavailable));
///   an answer that is not a JSON object or has no boolean `active` gives 401 `invalid_token`.
/// - A `400` whose RFC 6749 `error` is about the token (`unsupported_token_type`, as some
///   servers answer for a JWT they cannot introspect, `invalid_request`, `invalid_token`) gives
///   401 `invalid_token`, kept like an inactive answer: the token will never work here.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use certbound::{BoundTokenLayer, IntrospectionValidator};
///
/// # fn main() -> Result<(), certbound::ConfigError> {
/// let validator = IntrospectionValidator::endpoint("https://as.example/introspect")
///     .client_secret_basic("resource-server", "s3cret")
///     .audience("https://api.example")
///     .build()?;
/// let layer = BoundTokenLayer::new(validator);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct IntrospectionValidator(Arc<Inner>);

struct Inner {
    /// The endpoint and how to talk to it.
    exchange: Exchange,
    /// What an answer must say to be accepted, and how long it is kept.
    rules: Rules,
    cache: Arc<ResultCache<Outcome>>,
}

impl fmt::Debug for IntrospectionValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.0.exchange.endpoint {
            Endpoint::Fixed(url) => url.as_str(),
            Endpoint::Discover { issuer, .. } => issuer.as_str(),
        };
        f.debug_struct("IntrospectionValidator")
            .field("endpoint", &endpoint)
            .field("client_auth", &self.0.exchange.auth.method())
            .field("cache_ttl", &self.0.rules.active_ttl)
            .field("negative_cache_ttl", &self.0.rules.inactive_ttl)
            .finish_non_exhaustive()
    }
}

impl IntrospectionValidator {
    /// Resolves the endpoint now (discovery) instead of on the first request. Does nothing
    /// when the endpoint was configured directly.
    ///
    /// # Errors
    /// [`DiscoveryError`] with the reason when the metadata cannot be fetched or names no
    /// usable introspection endpoint.
    pub async fn prefetch(&self) -> Result<(), DiscoveryError> {
        self.0
            .exchange
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
            metrics::token_cache(true);
            return TokenFuture::ready(check_times(outcome, self.0.rules.leeway));
        }
        metrics::token_cache(false);
        // A miss: one call to the authorization server per token, however many requests wait.
        // Only here is the token copied.
        let this = Arc::clone(&self.0);
        let token = token.to_owned();
        let answer = self
            .0
            .cache
            .get_or_compute(key, move || async move { this.introspect(&token).await });
        let leeway = self.0.rules.leeway;
        TokenFuture::fetching(async move {
            match answer.await {
                Some(outcome) => check_times(outcome, leeway),
                None => Err(unavailable("introspection task failed")),
            }
        })
    }

    /// Ready when the endpoint is known (with discovery: the metadata fetched, tried now if
    /// need be, within the fetch timeout) and it answered the last call, or that call failed
    /// more than 10 s ago: with no traffic (a server out of rotation gets none) an endpoint
    /// that failed once is assumed back after 10 s, so that the next requests find out.
    /// Answers about tokens (active or not) count as answers; unreachable, a timeout, an HTTP
    /// error status do not. Shed calls (`max_concurrent_calls`) say nothing about the endpoint.
    fn ready(&self) -> ReadyFuture<'_> {
        Box::pin(self.0.exchange.ready())
    }
}

impl Inner {
    /// Asks the authorization server about `token`, and says how long the outcome may be kept.
    async fn introspect(&self, token: &str) -> (Outcome, Keep) {
        const DONT_KEEP: Keep = Keep {
            ttl: Duration::ZERO,
            bytes: 0,
        };
        match self.exchange.ask(token).await {
            Ok(Answer::Introspected(body)) => self.rules.interpret(&body),
            Ok(Answer::TokenRefused) => self.rules.refused_by_the_endpoint(),
            // The cause (HTTP client error, timeout, status) goes along as the source.
            Err(cause) if cause.is_unavailable() => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", reason = %cause.message(), "introspection failed");
                let error = unavailable("introspection endpoint unavailable").with_source(cause);
                (Err(error), DONT_KEEP)
            }
            Err(cause) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", reason = %cause.message(), "introspection answer unusable");
                let error = invalid("malformed introspection response").with_source(cause);
                (Err(error), DONT_KEEP)
            }
        }
    }
}

fn unavailable(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::IntrospectionUnavailable, detail)
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::net::SocketAddr;

    use super::*;
    use crate::upstream::HttpStatus;

    const TOKEN: &str = "opaque-token-value";

    /// An HTTP server on 127.0.0.1 that answers every request with `status` and no body.
    async fn answering(status: &'static str) -> SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    fn validator(addr: SocketAddr) -> IntrospectionValidator {
        IntrospectionValidator::endpoint(format!("http://{addr}/introspect"))
            .client_secret_basic("rs", "secret")
            .insecure_allow_http()
            .build()
            .unwrap()
    }

    /// The 503's source is the upstream cause; no token material anywhere in the chain.
    fn cause_of(err: &AuthError) -> &(dyn std::error::Error + 'static) {
        assert_eq!(err.kind(), AuthErrorKind::IntrospectionUnavailable);
        let mut chain = format!("{err} {err:?}");
        let mut next = err.source();
        while let Some(e) = next {
            chain.push_str(&format!(" {e} {e:?}"));
            next = e.source();
        }
        assert!(!chain.contains(TOKEN), "{chain}");
        let fetch = err.source().expect("the upstream cause as source");
        fetch.source().expect("the HTTP client's error or status")
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_503_with_the_client_error_as_source() {
        // Nothing listens on a port just released.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = validator(addr).validate(TOKEN).await.unwrap_err();
        assert!(cause_of(&err).is::<reqwest::Error>(), "{err:?}");
    }

    #[tokio::test]
    async fn introspection_is_not_ready_after_a_call_the_endpoint_did_not_answer() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let v = validator(addr);
        assert!(v.ready().await.is_ready(), "nothing failed yet");
        let _ = v.validate(TOKEN).await.unwrap_err();
        let readiness = v.ready().await;
        assert!(!readiness.is_ready());
        assert!(!readiness.to_string().contains(TOKEN), "{readiness}");
        // An answer, even one that is no use, says the endpoint is there.
        let v = validator(answering("200 OK").await);
        let _ = v.validate(TOKEN).await.unwrap_err();
        assert!(v.ready().await.is_ready());
    }

    #[tokio::test]
    async fn an_error_status_is_a_503_with_the_status_as_source() {
        let addr = answering("500 Internal Server Error").await;
        let err = validator(addr).validate(TOKEN).await.unwrap_err();
        let status = cause_of(&err)
            .downcast_ref::<HttpStatus>()
            .expect("a status");
        assert_eq!(status.0, http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
