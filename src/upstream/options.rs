//! The options both validators share ([`UpstreamOptions`]): how to reach the authorization
//! server (trust, HTTP client, time and size limits, plain http) and how much of its word to
//! keep (leeway, cache bounds). One definition of the fields, their defaults and the public
//! setters ([`upstream_setters!`]), expanded into each builder's `impl`.
//!
//! Not shared, because the meaning differs: `cache_ttl` (validated JWTs, 5 min by default,
//! versus introspection answers, 3 s, the revocation delay), `negative_cache_ttl`
//! (introspection only), `min_refresh_interval` and `max_key_age` (remote keys only).

use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::{check_config_url, default_client, Identity};
use crate::error::ConfigError;

/// The shared options of `JwtValidatorBuilder` and `IntrospectionValidatorBuilder`.
#[derive(Clone)]
pub(crate) struct UpstreamOptions {
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    pub(crate) public_roots: bool,
    pub(crate) http_client: Option<reqwest::Client>,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_http: bool,
    pub(crate) leeway: Duration,
    pub(crate) max_cache_entries: u64,
    pub(crate) max_cache_bytes: u64,
}

impl UpstreamOptions {
    /// The defaults; only the largest accepted response differs between the validators.
    pub(crate) fn new(max_response_bytes: usize) -> Self {
        Self {
            extra_roots: Vec::new(),
            public_roots: true,
            http_client: None,
            fetch_timeout: Duration::from_secs(5),
            max_response_bytes,
            allow_http: false,
            leeway: Duration::from_secs(60),
            max_cache_entries: 100_000,
            max_cache_bytes: 64 * 1024 * 1024,
        }
    }

    /// Checks a configured URL of the authorization server (https unless allowed otherwise).
    pub(crate) fn check_url(&self, option: &'static str, url: &str) -> Result<(), ConfigError> {
        check_config_url(option, url, self.allow_http)
    }

    /// The user's HTTP client, or the default one built from these options (with `identity`
    /// for mutual TLS to the authorization server).
    pub(crate) fn client(
        &self,
        identity: Option<Identity>,
    ) -> Result<reqwest::Client, ConfigError> {
        match &self.http_client {
            Some(client) => Ok(client.clone()),
            None => default_client(
                &self.extra_roots,
                self.public_roots,
                identity,
                self.fetch_timeout,
                self.allow_http,
            ),
        }
    }
}

/// Expands the shared setters into a builder's inherent `impl`, over its `UpstreamOptions`
/// field: one definition and one doc text for both builders (no trait to import). The
/// parameters are the few words that differ: what is fetched (`$fetched`), the default and
/// subject of `max_response_bytes`, what a timeout leads to, what plain http risks, and what
/// the cache holds.
macro_rules! upstream_setters {
    (
        field: $field:ident,
        fetched: $fetched:literal,
        max_response: $max_response:literal,
        on_timeout: $on_timeout:literal,
        http_risk: $http_risk:literal,
        cached: $cached:literal $(,)?
    ) => {
        /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
        pub fn leeway(mut self, leeway: ::std::time::Duration) -> Self {
            self.$field.leeway = leeway;
            self
        }

        #[doc = concat!("Most ", $cached, " kept at once (default 100 000).")]
        pub fn max_cache_entries(mut self, entries: u64) -> Self {
            self.$field.max_cache_entries = entries;
            self
        }

        #[doc = concat!("Approximate memory the cache of ", $cached, " may use (default 64 MiB).")]
        pub fn max_cache_bytes(mut self, bytes: u64) -> Self {
            self.$field.max_cache_bytes = bytes;
            self
        }

        #[doc = concat!("Uses `client` for ", $fetched, " instead of the default one (for instance \
            with a proxy). The default client uses rustls, the public `webpki-roots` CAs (unless \
            [`only_trust_roots`](Self::only_trust_roots)) plus any \
            [`trust_root`](Self::trust_root)s, https only, at most 3 redirects and only within \
            the URL's origin (a redirect elsewhere is refused: another host would be trusted \
            with what is sent and believed for what it answers), and the \
            [`fetch_timeout`](Self::fetch_timeout).")]
        pub fn http_client(mut self, client: ::reqwest::Client) -> Self {
            self.$field.http_client = Some(client);
            self
        }

        #[doc = concat!("Trusts one more CA for the https connections to ", $fetched, ", in \
            addition to the public roots unless [`only_trust_roots`](Self::only_trust_roots). \
            Ignored with an own [`http_client`](Self::http_client).")]
        pub fn trust_root(mut self, ca: ::rustls_pki_types::CertificateDer<'static>) -> Self {
            self.$field.extra_roots.push(ca);
            self
        }

        /// Trusts only the [`trust_root`](Self::trust_root)s, not the public `webpki-roots`
        /// (Mozilla) CAs.
        pub fn only_trust_roots(mut self) -> Self {
            self.$field.public_roots = false;
            self
        }

        #[doc = concat!("Time limit for one exchange with the authorization server, discovery \
            included (default 5 s). ", $on_timeout)]
        pub fn fetch_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$field.fetch_timeout = timeout;
            self
        }

        #[doc = concat!("Largest ", $max_response, "; a larger or endless answer is refused \
            like an unreachable server (503 when nothing usable is cached).")]
        pub fn max_response_bytes(mut self, bytes: usize) -> Self {
            self.$field.max_response_bytes = bytes;
            self
        }

        #[doc = concat!("Allows plain `http://` URLs for ", $fetched, ". Insecure: ", $http_risk,
            " For local development only.")]
        pub fn insecure_allow_http(mut self) -> Self {
            self.$field.allow_http = true;
            self
        }
    };
}
pub(crate) use upstream_setters;
