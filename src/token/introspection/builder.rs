//! [`IntrospectionValidatorBuilder`]: the options of an [`IntrospectionValidator`], checked by
//! [`build`](IntrospectionValidatorBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{OnceCell, Semaphore};

use super::answer::Rules;
use super::client::{ClientAuth, Endpoint, Exchange};
use super::{Inner, IntrospectionValidator};
use crate::error::ConfigError;
use crate::support::cache::ResultCache;
use crate::upstream::{upstream_setters, UpstreamOptions};

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
}

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
    active_ttl: Duration,
    inactive_ttl: Duration,
    max_concurrent_calls: usize,
    upstream: UpstreamOptions,
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
            .field("max_concurrent_calls", &self.max_concurrent_calls)
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
            active_ttl: Duration::from_secs(3),
            inactive_ttl: Duration::from_secs(5),
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            upstream: UpstreamOptions::new(64 * 1024),
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

    upstream_setters! {
        field: upstream,
        fetched: "the introspection endpoint and the discovery metadata",
        max_response: "introspection answer or metadata document accepted (default 64 KiB)",
        on_timeout: "When it passes the request is refused with 503.",
        http_risk: "the tokens and the client's credentials cross the network in clear, and \
            anyone on the path can answer \"active\".",
        cached: "introspection answers",
    }

    // Not among the shared setters: what is cached, and so the default, differ from the JWT
    // validator's `cache_ttl`.
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

    /// Most calls to the introspection endpoint in flight at once (default 64; at least 1).
    ///
    /// A request whose token needs one more call is answered `503` at once, not queued: a
    /// flood of distinct made-up tokens opens no more than this many exchanges with the
    /// authorization server and queues no work, while requests with cached answers are served
    /// as usual. Requests joining a call already in flight for the same token do not count.
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent_calls = calls;
        self
    }

    /// Checks the configuration and builds the validator. No network access (discovery happens
    /// on first use or in [`IntrospectionValidator::prefetch`]).
    ///
    /// # Errors
    /// No client authentication or more than one, an empty `client_id`, a non-https URL,
    /// `tls_client_auth` together with an own `http_client`, or an unusable client identity.
    pub fn build(self) -> Result<IntrospectionValidator, ConfigError> {
        let (option, url) = match &self.endpoint {
            EndpointConfig::Url(url) => ("endpoint", url),
            EndpointConfig::Discover(url) => ("issuer", url),
        };
        self.upstream.check_url(option, url)?;
        if self.max_concurrent_calls == 0 {
            return Err(ConfigError::invalid(
                "max_concurrent_calls",
                "must be at least 1, or no token could ever be introspected",
            ));
        }
        let mut auth = self.auth.into_iter();
        let (Some(auth), None) = (auth.next(), auth.next()) else {
            return Err(ConfigError::invalid(
                "client authentication",
                "choose exactly one for introspection: client_secret_basic, \
                 client_secret_post or tls_client_auth",
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
                        .map_err(|_| {
                            ConfigError::invalid(
                                "client_secret_basic",
                                "the credentials do not fit an Authorization header",
                            )
                        })?;
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
                if self.upstream.http_client.is_some() {
                    return Err(ConfigError::invalid(
                        "tls_client_auth",
                        "it brings its own identity; with an own http_client, put the \
                         identity into that client and use client_id-only authentication there",
                    ));
                }
                (ClientAuth::Mtls { client_id }, Some((chain, key)))
            }
        };
        let client = self.upstream.client(identity)?;
        let endpoint = match self.endpoint {
            EndpointConfig::Url(url) => Endpoint::Fixed(url),
            EndpointConfig::Discover(issuer) => Endpoint::Discover {
                issuer,
                resolved: OnceCell::new(),
            },
        };
        Ok(IntrospectionValidator(Arc::new(Inner {
            exchange: Exchange {
                endpoint,
                http: client,
                auth,
                fetch_timeout: self.upstream.fetch_timeout,
                max_response_bytes: self.upstream.max_response_bytes,
                allow_http: self.upstream.allow_http,
                calls: Semaphore::new(self.max_concurrent_calls),
                last_failure: std::sync::Mutex::new(None),
            },
            rules: Rules {
                issuer: self.issuer,
                audiences: self.audiences,
                leeway: i64::try_from(self.upstream.leeway.as_secs()).unwrap_or(i64::MAX),
                active_ttl: self.active_ttl,
                inactive_ttl: self.inactive_ttl,
            },
            cache: Arc::new(ResultCache::new(
                self.upstream.max_cache_entries,
                self.upstream.max_cache_bytes,
            )),
        })))
    }
}

/// See [`IntrospectionValidatorBuilder::max_concurrent_calls`].
const DEFAULT_MAX_CONCURRENT_CALLS: usize = 64;

fn non_empty(client_id: &str) -> Result<(), ConfigError> {
    if client_id.is_empty() {
        return Err(ConfigError::invalid("client_id", "must not be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
