//! Outgoing HTTPS shared by remote JWKS, discovery and introspection: the default client, body
//! reading with a size limit, and authorization server metadata discovery.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value};

use crate::error::ConfigError;

#[cfg(feature = "authorization-server")]
pub(crate) mod destination;
mod error;
mod observe;
mod options;
pub(crate) use error::{FetchError, HttpStatus};
pub(crate) use observe::observe;
#[cfg(feature = "introspection")]
pub(crate) use observe::shed;
#[cfg(any(
    feature = "introspection",
    feature = "client",
    feature = "authorization-server"
))]
pub(crate) use observe::Observed;
pub(crate) use options::{upstream_setters, UpstreamOptions};

/// A TLS client identity: certificate chain (leaf first) and private key.
pub(crate) type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certbound builds when the user hands in none: the Mozilla roots (unless
/// `public_roots` is off) plus `extra_roots`, certbound's crypto provider, https only unless
/// `allow_http`, at most 3 redirects within the URL's origin, `timeout` for connecting and for the whole exchange, and
/// `identity` for mutual TLS to the authorization server.
pub(crate) fn default_client(
    extra_roots: &[CertificateDer<'static>],
    public_roots: bool,
    identity: Option<Identity>,
    timeout: Duration,
    allow_http: bool,
) -> Result<reqwest::Client, ConfigError> {
    let builder = default_client_builder(extra_roots, public_roots, identity, timeout, allow_http)?;
    build_client(builder)
}

/// The builder of [`default_client`], for a caller that adds to it.
pub(crate) fn default_client_builder(
    extra_roots: &[CertificateDer<'static>],
    public_roots: bool,
    identity: Option<Identity>,
    timeout: Duration,
    allow_http: bool,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    let tls = crate::tls::client_config(extra_roots, public_roots, identity)?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(!allow_http)
        .redirect(same_origin_redirects(MAX_REDIRECTS))
        .connect_timeout(timeout)
        .timeout(timeout))
}

/// At most `max` redirects, all within the origin of the first URL: the authorization server's
/// answers are trusted (keys, metadata, introspection verdicts) and what is sent to it can
/// include the token and the client's credentials, so another origin is never asked, however
/// trusted its certificate. (reqwest drops `Authorization` across origins, but not a form body.)
fn same_origin_redirects(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let same_origin = attempt.previous().first().is_none_or(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if !same_origin {
            attempt.error("redirect to another origin")
        } else if attempt.previous().len() > max {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Redirects the default client follows.
const MAX_REDIRECTS: usize = 3;

/// Builds a client from [`default_client_builder`].
pub(crate) fn build_client(
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, ConfigError> {
    builder.build().map_err(|e| {
        ConfigError::invalid_because("http_client", "the default HTTP client cannot be built", e)
    })
}

/// Reads a response body of at most `limit` bytes.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::malformed(format!("{url}: response larger than {limit} bytes"));
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::unavailable(url).because(e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `GET url` expecting a successful JSON answer of at most `limit` bytes.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let response = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| FetchError::unavailable(url).because(e))?;
    if !response.status().is_success() {
        return Err(FetchError::unavailable(url).because(HttpStatus(response.status())));
    }
    read_limited(response, url, limit).await
}

/// Fetches the authorization server metadata of `issuer`: RFC 8414 §3 first, then OpenID
/// Connect Discovery. The document's `issuer` must be the configured one (RFC 8414 §3.3).
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    limit: usize,
) -> Result<Map<String, Value>, FetchError> {
    let mut last_error = FetchError::unavailable(format!("metadata of {issuer}: no discovery URL"));
    for url in discovery_urls(issuer) {
        let body = match get(client, &url, limit).await {
            Ok(body) => body,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        let doc: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| FetchError::malformed(format!("{url}: not a JSON object")).because(e))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(FetchError::malformed(format!(
                "{url}: issuer does not match the configured issuer"
            )));
        }
        return Ok(doc);
    }
    Err(last_error)
}

/// The discovery documents to try for `issuer`, in order: RFC 8414 §3.1 inserts the well-known
/// path between host and path; OpenID Connect Discovery §4 appends it.
pub(crate) fn discovery_urls(issuer: &str) -> [String; 2] {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = match trimmed.find("://") {
        Some(scheme_end) => match trimmed[scheme_end + 3..].find('/') {
            Some(p) => trimmed.split_at(scheme_end + 3 + p),
            None => (trimmed, ""),
        },
        None => (trimmed, ""),
    };
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{trimmed}/.well-known/openid-configuration"),
    ]
}

/// Accepts `https://` URLs (and `http://` when allowed); else says why not.
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<(), &'static str> {
    let lower = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("https://") && url.len() > 8 {
        return Ok(());
    }
    if allow_http && lower.starts_with("http://") && url.len() > 7 {
        return Ok(());
    }
    if lower.starts_with("http://") && !allow_http {
        return Err("plain http is refused without insecure_allow_http");
    }
    Err("not an https URL")
}

/// [`check_url`] for a configured URL: the error names the `option` that holds it.
pub(crate) fn check_config_url(
    option: &'static str,
    url: &str,
    allow_http: bool,
) -> Result<(), ConfigError> {
    check_url(url, allow_http).map_err(|reason| ConfigError::Url {
        option,
        url: url.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_rfc8414_then_openid() {
        assert_eq!(
            discovery_urls("https://as.example"),
            [
                "https://as.example/.well-known/oauth-authorization-server".to_owned(),
                "https://as.example/.well-known/openid-configuration".to_owned(),
            ]
        );
        assert_eq!(
            discovery_urls("https://as.example/tenant/1"),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant/1".to_owned(),
                "https://as.example/tenant/1/.well-known/openid-configuration".to_owned(),
            ]
        );
    }

    #[test]
    fn only_https_urls_unless_allowed() {
        assert!(check_url("https://as.example/jwks", false).is_ok());
        assert!(check_url("HTTPS://as.example/jwks", false).is_ok());
        assert!(check_url("http://as.example/jwks", false).is_err());
        assert!(check_url("http://as.example/jwks", true).is_ok());
        assert!(check_url("ftp://x", true).is_err());
        assert!(check_url("https://", false).is_err());
    }
}
