//! DPoP at the token endpoint (RFC 9449 §5): [`TokenEndpointDpop`], the proof check of a token
//! request and the URL its `htu` must name.

use std::fmt;

use http::header::HOST;

use crate::dpop::DPOP;
use http::Request;
use reqwest::Url;

use super::error::{ClientAuthError, ClientAuthErrorKind as K};
use crate::dpop::{Dpop, VerifiedProof};
use crate::error::{AuthError, AuthErrorKind, ConfigError};

/// DPoP proofs at a token endpoint (RFC 9449 §5): which proofs are accepted (a [`Dpop`]) and
/// the URLs clients send token requests to, one of which a proof's `htu` must name.
///
/// Give it to [`MtlsClientAuthLayer::dpop`](super::MtlsClientAuthLayer::dpop); the layer then
/// checks the proof of every token request that carries a `DPoP` header, after the client
/// authenticated, and the handler binds the token it issues with
/// [`AuthenticatedClient::sender_constraints`](super::AuthenticatedClient::sender_constraints).
/// A token endpoint without that layer calls [`check`](Self::check) itself.
///
/// The proof must be for `POST` and for the URL the request arrived on: the token endpoint's
/// URL, or one of its [aliases](Self::alias) (the `mtls_endpoint_aliases` of RFC 8705 §5, or
/// another host name of the same endpoint). Which one is chosen by the request's host and
/// path; a request that matches none is checked against the first URL. The host is the
/// client's word, but it only chooses among the endpoint's own URLs.
///
/// A proof must not carry `ath` (a token request presents no access token), and is checked
/// for nonces when the [`Dpop`] requires them (RFC 9449 §8: the client is told
/// `use_dpop_nonce` with a fresh `DPoP-Nonce`, and every response to a request with a proof
/// carries a fresh one).
///
/// # Example
/// ```
/// use certbound::authorization_server::{AuthorizationServerMetadata, TokenEndpointDpop};
/// use certbound::dpop::Dpop;
///
/// # fn main() -> Result<(), certbound::ConfigError> {
/// let dpop = TokenEndpointDpop::new(Dpop::new(), "https://as.example/token")?
///     .alias("https://mtls.as.example/token")?;
/// let metadata = AuthorizationServerMetadata::new("https://as.example")
///     .token_endpoint("https://as.example/token")
///     .mtls_token_endpoint("https://mtls.as.example/token")
///     .dpop_signing_alg_values_supported(dpop.signing_alg_values());
/// assert_eq!(
///     metadata.dpop_signing_alg_values_supported.as_deref().unwrap()[0],
///     "ES256"
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenEndpointDpop {
    dpop: Dpop,
    /// The endpoint's URL first, then its aliases.
    urls: Vec<EndpointUrl>,
}

#[derive(Clone)]
struct EndpointUrl {
    /// As configured: what the proof's `htu` is compared with.
    given: String,
    parsed: Url,
}

impl fmt::Debug for TokenEndpointDpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointDpop")
            .field("dpop", &self.dpop)
            .field(
                "urls",
                &self.urls.iter().map(|u| &u.given).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TokenEndpointDpop {
    /// Checks proofs with `dpop` for the token endpoint at `token_endpoint` (the URL of the
    /// metadata's `token_endpoint`).
    ///
    /// # Errors
    /// [`ConfigError::Url`] when `token_endpoint` is not an absolute `https` URL with a host
    /// and without a fragment (RFC 6749 §3.2); [`ConfigError::NoCryptoProvider`] without a
    /// backend feature when the application installed no jsonwebtoken provider.
    pub fn new(dpop: Dpop, token_endpoint: &str) -> Result<Self, ConfigError> {
        crate::support::crypto::jose_provider()?;
        Ok(Self {
            dpop,
            urls: vec![EndpointUrl::parse(token_endpoint)?],
        })
    }

    /// Another URL clients reach the same endpoint by: its mutual-TLS alias (RFC 8705 §5), or
    /// another host name. Proofs made for it are accepted on requests that arrive on it.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn alias(mut self, url: &str) -> Result<Self, ConfigError> {
        self.urls.push(EndpointUrl::parse(url)?);
        Ok(self)
    }

    /// The proof settings.
    pub fn dpop(&self) -> &Dpop {
        &self.dpop
    }

    /// The accepted proof algorithms by their JWA names: the metadata's
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1). `EdDSA` is followed by its
    /// fully-specified name `Ed25519` (RFC 9864), which is accepted too.
    pub fn signing_alg_values(&self) -> impl Iterator<Item = &str> + '_ {
        self.dpop.algs().split(' ').filter(|alg| !alg.is_empty())
    }

    /// A fresh nonce for a `DPoP-Nonce` header, when nonces are required.
    pub fn fresh_nonce(&self) -> Option<String> {
        self.dpop.fresh_nonce()
    }

    /// Checks the DPoP proof of a token request: `Ok(None)` without a `DPoP` header,
    /// `Ok(Some(proof))` for a valid proof (its `jti` is then recorded), an error otherwise.
    /// `htm` must be the request's method and `htu` the URL it arrived on (see the
    /// [type docs](Self)).
    ///
    /// # Errors
    /// A [`ClientAuthError`] of kind [`InvalidDpopProof`](K::InvalidDpopProof),
    /// [`UseDpopNonce`](K::UseDpopNonce) (send a [`fresh_nonce`](Self::fresh_nonce) with
    /// it) or [`ReplayStoreUnavailable`](K::ReplayStoreUnavailable); render it as an
    /// RFC 6749 §5.2 JSON error with its
    /// [`status_and_code`](super::ClientAuthErrorKind::status_and_code).
    pub async fn check<B>(
        &self,
        request: &Request<B>,
    ) -> Result<Option<VerifiedProof>, ClientAuthError> {
        let headers = request.headers();
        if !headers.contains_key(&DPOP) {
            return Ok(None);
        }
        // A proof with `ath` is refused by the proof check itself (it was made for a request
        // with an access token), before the replay store is asked.
        let url = self.url_for(request);
        self.dpop
            .check_token_request(headers, request.method().as_str(), url)
            .await
            .map(Some)
            .map_err(|error| rejection(&error))
    }

    /// The configured URL the request arrived on: same host, port and path; else the first
    /// with the same host and port (a proxy may rewrite the path); else the endpoint's URL.
    fn url_for<B>(&self, request: &Request<B>) -> &str {
        let authority = request.uri().authority().map(|a| a.as_str()).or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|host| host.to_str().ok())
        });
        let arrived = authority
            .and_then(|authority| Url::parse(&format!("https://{authority}")).ok())
            .filter(|url| url.username().is_empty() && url.password().is_none());
        if let Some(arrived) = arrived {
            let same_origin = |url: &&EndpointUrl| {
                url.parsed.host_str() == arrived.host_str()
                    && url.parsed.port_or_known_default() == arrived.port_or_known_default()
            };
            let path = request.uri().path();
            let found = self
                .urls
                .iter()
                .filter(same_origin)
                .find(|url| url.parsed.path() == path)
                .or_else(|| self.urls.iter().find(same_origin));
            if let Some(url) = found {
                return &url.given;
            }
        }
        &self.urls[0].given
    }
}

impl EndpointUrl {
    fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Url {
            option: "token_endpoint",
            url: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|_| bad("not an absolute URL"))?;
        if parsed.scheme() != "https" {
            return Err(bad("not an https URL"));
        }
        if parsed.host().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("no host, or a user name"));
        }
        if parsed.fragment().is_some() {
            return Err(bad("has a fragment"));
        }
        Ok(Self {
            given: url.to_owned(),
            parsed,
        })
    }
}

/// The token-endpoint rejection for a proof check's error.
fn rejection(error: &AuthError) -> ClientAuthError {
    let kind = match error.kind() {
        AuthErrorKind::InvalidDpopProof => K::InvalidDpopProof,
        AuthErrorKind::UseDpopNonce => K::UseDpopNonce,
        AuthErrorKind::ReplayStoreUnavailable => K::ReplayStoreUnavailable,
        _ => K::Misconfigured,
    };
    ClientAuthError::new(kind, error.detail())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> TokenEndpointDpop {
        // Building a Dpop is all these tests need; nothing is checked.
        TokenEndpointDpop {
            dpop: Dpop::new(),
            urls: [
                "https://as.example/token",
                "https://mtls.as.example:8443/oauth/token",
            ]
            .iter()
            .map(|url| EndpointUrl::parse(url).unwrap())
            .collect(),
        }
    }

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::post(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_url_is_the_one_the_request_arrived_on() {
        let endpoint = endpoint();
        let alias = "https://mtls.as.example:8443/oauth/token";
        for (uri, host, url) in [
            ("/token", Some("as.example"), "https://as.example/token"),
            ("/token", Some("AS.example:443"), "https://as.example/token"),
            ("/oauth/token", Some("mtls.as.example:8443"), alias),
            // HTTP/2: the authority is in the URI.
            ("https://mtls.as.example:8443/oauth/token", None, alias),
            // A proxy that rewrote the path, on the alias's host.
            ("/token", Some("mtls.as.example:8443"), alias),
            // Nothing matches: the endpoint's own URL.
            ("/token", Some("other.example"), "https://as.example/token"),
            (
                "/token",
                Some("mtls.as.example"),
                "https://as.example/token",
            ),
            (
                "/token",
                Some("user@mtls.as.example:8443"),
                "https://as.example/token",
            ),
            ("/token", None, "https://as.example/token"),
        ] {
            assert_eq!(endpoint.url_for(&request(uri, host)), url, "{uri} {host:?}");
        }
    }

    #[test]
    fn token_endpoint_urls_must_be_https_without_fragment() {
        for url in [
            "http://as.example/token",
            "/token",
            "https://as.example/token#f",
            "https://user@as.example/token",
            "urn:token",
        ] {
            assert!(
                matches!(EndpointUrl::parse(url), Err(ConfigError::Url { .. })),
                "{url}"
            );
        }
        assert!(EndpointUrl::parse("https://as.example/token?tenant=a").is_ok());
    }

    #[test]
    fn proof_errors_map_to_token_endpoint_errors() {
        for (kind, expected) in [
            (AuthErrorKind::InvalidDpopProof, K::InvalidDpopProof),
            (AuthErrorKind::UseDpopNonce, K::UseDpopNonce),
            (
                AuthErrorKind::ReplayStoreUnavailable,
                K::ReplayStoreUnavailable,
            ),
            (AuthErrorKind::Misconfigured, K::Misconfigured),
        ] {
            let error = rejection(&AuthError::with_detail(kind, "why"));
            assert_eq!(error.kind(), expected);
            assert_eq!(error.detail(), "why");
        }
    }
}
