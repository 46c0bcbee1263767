//! [`ClientAuthenticator`]: checks a presented certificate against a client's registration.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::FromDer as _;

use super::client::{AuthenticatedClient, Method, RegisteredClient};
use super::error::{ClientAuthError, ClientAuthErrorKind};
use super::jwks_uri::{JwksUriCache, JwksUriError, JwksUriSettings};
use crate::certificate::ClientCertificate;
use crate::error::ConfigError;
use crate::support::crypto::rustls_provider;
use crate::upstream::{self, destination};

/// Authenticates a client by the certificate it presented (RFC 8705 §2), by its registered
/// method:
///
/// - `tls_client_auth`: the chain is validated against the configured trust anchors with
///   rustls' own WebPKI verifier (RFC 5280 path validation, validity dates, the clientAuth
///   extended key usage), then the registered subject value is matched. Without trust anchors
///   no `tls_client_auth` client can authenticate.
/// - `self_signed_tls_client_auth`: the certificate must be in the client's JWKS (by value or
///   from its `jwks_uri`, cached, fetched again on a miss); no chain validation.
///
/// This is what [`MtlsClientAuthLayer`](super::MtlsClientAuthLayer) runs; call it directly to
/// authenticate clients outside an HTTP token endpoint. Cheap to clone.
#[derive(Clone)]
pub struct ClientAuthenticator(Arc<Inner>);

struct Inner {
    chain_verifier: Option<Arc<dyn ClientCertVerifier>>,
    jwks_uris: Arc<JwksUriCache>,
}

impl fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("trust_anchors", &self.0.chain_verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientAuthenticator {
    /// Starts the configuration.
    pub fn builder() -> ClientAuthenticatorBuilder {
        ClientAuthenticatorBuilder {
            roots: RootCertStore::empty(),
            http_client: None,
            extra_roots: Vec::new(),
            public_roots: true,
            settings: JwksUriSettings::default(),
        }
    }

    /// Checks `certificate` against `client`'s registration.
    ///
    /// # Errors
    /// [`ClientAuthErrorKind::InvalidClient`] when the client is not registered for a
    /// mutual-TLS method, or the certificate does not authenticate it (untrusted, expired or
    /// not yet valid chain; another subject; not in the JWKS; a `jwks_uri` the SSRF guard
    /// refuses, see
    /// [`allow_private_jwks_uri`](ClientAuthenticatorBuilder::allow_private_jwks_uri));
    /// [`ClientAuthErrorKind::JwksUriUnavailable`] when the client's `jwks_uri` cannot be
    /// fetched and none of its keys are cached.
    pub async fn authenticate(
        &self,
        client: &RegisteredClient,
        certificate: &ClientCertificate,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        let fail = |detail| {
            Err(ClientAuthError::new(
                ClientAuthErrorKind::InvalidClient,
                detail,
            ))
        };
        // A certificate known only by its thumbprint (a proxy forwarded just a hash) cannot be
        // matched against a registration.
        let Some(leaf) = certificate.leaf() else {
            return fail("only the certificate's thumbprint is known");
        };
        let leaf = leaf.as_ref();
        match client.method() {
            Method::Other => return fail("client is not registered for mutual-TLS authentication"),
            Method::Tls(subject) => {
                let Some(verifier) = &self.0.chain_verifier else {
                    return fail("no trust anchors for tls_client_auth");
                };
                let chain = certificate.chain();
                if verifier
                    .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
                    .is_err()
                {
                    return fail("certificate chain not valid for client authentication");
                }
                let Some(cert) = parse(leaf) else {
                    return fail("unparsable certificate");
                };
                if !subject.matches(&cert) {
                    return fail("certificate subject is not the registered one");
                }
            }
            Method::SelfSignedStatic(keys) => {
                let Some(cert) = parse(leaf) else {
                    return fail("unparsable certificate");
                };
                if !keys.matches(leaf, &cert) {
                    return fail("certificate not in the client's jwks");
                }
            }
            Method::SelfSignedUri(uri) => {
                if parse(leaf).is_none() {
                    return fail("unparsable certificate");
                }
                let matched = self
                    .0
                    .jwks_uris
                    .matches(uri, |keys| {
                        parse(leaf).is_some_and(|cert| keys.matches(leaf, &cert))
                    })
                    .await;
                match matched {
                    Ok(true) => {}
                    Ok(false) => return fail("certificate not in the client's jwks_uri"),
                    Err(JwksUriError::Refused) => {
                        return fail(
                            "client's jwks_uri is a loopback, private or link-local address",
                        )
                    }
                    Err(JwksUriError::Unavailable) => {
                        return Err(ClientAuthError::new(
                            ClientAuthErrorKind::JwksUriUnavailable,
                            "client's jwks_uri unavailable and no keys cached",
                        ))
                    }
                }
            }
        }
        Ok(AuthenticatedClient::new(
            client.clone(),
            certificate.clone(),
        ))
    }
}

/// Parses a whole DER certificate (no trailing data).
fn parse(der: &[u8]) -> Option<x509_parser::certificate::X509Certificate<'_>> {
    match x509_parser::certificate::X509Certificate::from_der(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

/// Builder of a [`ClientAuthenticator`].
#[must_use]
pub struct ClientAuthenticatorBuilder {
    roots: RootCertStore,
    http_client: Option<reqwest::Client>,
    extra_roots: Vec<CertificateDer<'static>>,
    public_roots: bool,
    settings: JwksUriSettings,
}

impl fmt::Debug for ClientAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthenticatorBuilder")
            .field("trust_anchors", &self.roots.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ClientAuthenticatorBuilder {
    /// Trusts these CAs for `tls_client_auth` clients (RFC 8705 §2.1; keep the set limited,
    /// §7.4). Calls accumulate.
    ///
    /// # Errors
    /// rustls refuses a certificate as a trust anchor.
    pub fn client_ca(
        mut self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, ConfigError> {
        for root in roots {
            self.roots.add(root)?;
        }
        Ok(self)
    }

    /// Like [`client_ca`](Self::client_ca), from a PEM file (read now, synchronously).
    ///
    /// # Errors
    /// The file cannot be read, holds no certificate, or one is refused as a trust anchor.
    pub fn client_ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let certs = crate::tls::load_certs(path)?;
        self.client_ca(certs)
    }

    /// The HTTP client for clients' `jwks_uri` (for instance with a proxy). By default
    /// certbound builds one with rustls, the `webpki-roots` CAs and any
    /// [`jwks_trust_root`](Self::jwks_trust_root)s; https only, no more than 3 redirects, all
    /// within the `jwks_uri`'s origin.
    pub fn jwks_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Trusts one more CA for https to clients' `jwks_uri` (ignored with a custom
    /// [`jwks_http_client`](Self::jwks_http_client)).
    pub fn jwks_trust_root(mut self, ca: CertificateDer<'static>) -> Self {
        self.extra_roots.push(ca);
        self
    }

    /// Trusts only the [`jwks_trust_root`](Self::jwks_trust_root)s for `jwks_uri`, not the
    /// public `webpki-roots` CAs.
    pub fn jwks_only_trust_roots(mut self) -> Self {
        self.public_roots = false;
        self
    }

    /// The shortest time between two fetches of one `jwks_uri` (default 10 s). A certificate
    /// that matches none of the cached keys triggers a fetch, at most this often, so that
    /// unknown certificates cannot make the server hammer a client's endpoint.
    pub fn jwks_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.min_refresh_interval = interval;
        self
    }

    /// Age after which a cached `jwks_uri` document is fetched again before use (default
    /// 5 min), so that a certificate the client removed stops working. While the client's
    /// endpoint is failing, the stale keys decide and the refresh runs in the background.
    pub fn jwks_max_age(mut self, age: Duration) -> Self {
        self.settings.max_age = age;
        self
    }

    /// Time limit for one `jwks_uri` fetch (default 5 s).
    pub fn jwks_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.settings.fetch_timeout = timeout;
        self
    }

    /// Lets clients' `jwks_uri` point at loopback, private (RFC 1918, RFC 4193, RFC 6598) and
    /// link-local addresses, cloud metadata endpoints included. Off by default: a `jwks_uri`
    /// is a URL the server fetches on a client's behalf, so without this guard a registration
    /// could make it call services only it can reach (SSRF).
    ///
    /// With the guard on, the default client resolves names itself and connects only to
    /// public unicast addresses (a name with none fails, on every connection, so DNS
    /// rebinding is caught too), and IP-literal URLs are checked (redirects stay within the
    /// URL's origin). A
    /// custom [`jwks_http_client`](Self::jwks_http_client) keeps its own resolver: only
    /// IP-literal URLs are checked then. A refused IP literal is `invalid_client` (the
    /// registration is wrong); a name that resolves to no public address fails like an
    /// unreachable `jwks_uri` (`503`).
    ///
    /// For tests and private deployments whose clients publish their keys inside the network.
    pub fn allow_private_jwks_uri(mut self) -> Self {
        self.settings.public_only = false;
        self
    }

    /// Largest `jwks_uri` document accepted (default 256 KiB).
    pub fn jwks_max_response_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_response_bytes = bytes;
        self
    }

    /// Builds the authenticator.
    ///
    /// # Errors
    /// The HTTP client or the chain verifier cannot be built.
    pub fn build(self) -> Result<ClientAuthenticator, ConfigError> {
        let chain_verifier = if self.roots.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(
                    Arc::new(self.roots),
                    rustls_provider()?,
                )
                .build()
                .map_err(|e| {
                    ConfigError::invalid_because("client CA", "no usable client verifier", e)
                })?,
            )
        };
        let client = match self.http_client {
            Some(client) => client,
            None => {
                let builder = upstream::default_client_builder(
                    &self.extra_roots,
                    self.public_roots,
                    None,
                    self.settings.fetch_timeout,
                    false,
                )?;
                let builder = if self.settings.public_only {
                    builder.dns_resolver(Arc::new(destination::PublicOnly))
                } else {
                    builder
                };
                upstream::build_client(builder)?
            }
        };
        Ok(ClientAuthenticator(Arc::new(Inner {
            chain_verifier,
            jwks_uris: Arc::new(JwksUriCache::new(client, self.settings)),
        })))
    }
}
