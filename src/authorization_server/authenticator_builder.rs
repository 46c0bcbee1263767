//! [`ClientAuthenticatorBuilder`]: trust anchors, CRLs and their policies, and the `jwks_uri`
//! client of a [`ClientAuthenticator`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use super::authenticator::{ClientAuthenticator, Inner};
use super::jwks_uri::{JwksUriCache, JwksUriSettings};
use super::trust::{load_crls, ClientTrust, RevocationPolicy, TrustSources};
use crate::error::ConfigError;
use crate::upstream::{self, destination};

impl ClientAuthenticator {
    /// Starts the configuration.
    pub fn builder() -> ClientAuthenticatorBuilder {
        ClientAuthenticatorBuilder {
            sources: TrustSources::default(),
            file_roots: Vec::new(),
            file_crls: Vec::new(),
            policy: RevocationPolicy::default(),
            http_client: None,
            extra_roots: Vec::new(),
            public_roots: true,
            settings: JwksUriSettings::default(),
        }
    }
}

/// Builder of a [`ClientAuthenticator`].
#[must_use]
pub struct ClientAuthenticatorBuilder {
    /// In memory, and the files to read again on reload.
    sources: TrustSources,
    /// The files' contents, read when they were given.
    file_roots: Vec<CertificateDer<'static>>,
    file_crls: Vec<CertificateRevocationListDer<'static>>,
    policy: RevocationPolicy,
    http_client: Option<reqwest::Client>,
    extra_roots: Vec<CertificateDer<'static>>,
    public_roots: bool,
    settings: JwksUriSettings,
}

impl fmt::Debug for ClientAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthenticatorBuilder")
            .field(
                "trust_anchors",
                &(self.sources.roots.len() + self.file_roots.len()),
            )
            .field("crls", &(self.sources.crls.len() + self.file_crls.len()))
            .field("revocation", &self.policy)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Checks that rustls takes every one of `roots` as a trust anchor.
fn check_roots(roots: &[CertificateDer<'static>]) -> Result<(), ConfigError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    Ok(())
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
        let roots: Vec<_> = roots.into_iter().collect();
        check_roots(&roots)?;
        self.sources.roots.extend(roots);
        Ok(self)
    }

    /// Like [`client_ca`](Self::client_ca), from a PEM file (read now, synchronously). The
    /// file is read again by [`ClientAuthenticator::reload_trust`] and
    /// [`ClientAuthenticator::watch`]. Calls accumulate.
    ///
    /// # Errors
    /// The file cannot be read, holds no certificate, or one is refused as a trust anchor.
    pub fn client_ca_pem_file(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let certs = crate::tls::load_certs(path)?;
        check_roots(&certs)?;
        self.file_roots.extend(certs);
        self.sources.ca_files.push(path.to_owned());
        Ok(self)
    }

    /// Refuses `tls_client_auth` certificates revoked by these CRLs (DER). Calls accumulate.
    ///
    /// With at least one CRL, a `tls_client_auth` chain is checked for revocation with these
    /// defaults, each of which an option below relaxes:
    /// - the whole chain (every certificate but the trust anchor) is checked:
    ///   [`crl_end_entity_only`](Self::crl_end_entity_only) checks only the client's own;
    /// - a certificate whose issuer has no CRL here (unknown revocation status) is refused:
    ///   [`allow_unknown_revocation_status`](Self::allow_unknown_revocation_status);
    /// - a CRL past its `nextUpdate` makes the certificates it covers refused:
    ///   [`allow_expired_crl`](Self::allow_expired_crl).
    ///
    /// A refused certificate fails authentication (`401 invalid_client`, the reason in the
    /// [`ClientAuthError`](super::ClientAuthError)), and counts in
    /// `certbound_tls_client_certificates_refused_total{reason}` (feature `metrics`). Without
    /// any CRL no revocation is checked. CRLs need [`client_ca`](Self::client_ca) trust
    /// anchors (otherwise [`build`](Self::build) fails). `self_signed_tls_client_auth` clients
    /// are not concerned: remove a revoked key from the client's JWKS.
    ///
    /// A CRL is parsed when the authenticator is built (an unparsable one fails
    /// [`build`](Self::build)); its signature is checked against its issuer when a chain is
    /// verified (a CRL whose signature does not verify refuses the chains it would cover).
    pub fn crl(
        mut self,
        crls: impl IntoIterator<Item = CertificateRevocationListDer<'static>>,
    ) -> Self {
        self.sources.crls.extend(crls);
        self
    }

    /// Like [`crl`](Self::crl), from a file (read now, synchronously): PEM with one or more
    /// `X509 CRL` blocks, or one DER CRL. The file is read again by
    /// [`ClientAuthenticator::reload_trust`] and [`ClientAuthenticator::watch`]. Calls
    /// accumulate.
    ///
    /// # Errors
    /// The file cannot be read, or is PEM without a CRL.
    pub fn crl_file(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        self.file_crls.extend(load_crls(path)?);
        self.sources.crl_files.push(path.to_owned());
        Ok(self)
    }

    /// Checks only the client's own certificate against the CRLs, not the intermediate CAs
    /// of its chain (default: the whole chain). For PKIs whose CAs publish no CRL of their
    /// intermediates.
    pub fn crl_end_entity_only(mut self) -> Self {
        self.policy.end_entity_only = true;
        self
    }

    /// Accepts a certificate whose revocation status cannot be established because no CRL
    /// of its issuer is configured (default: refused). With it, a CRL of one CA does not lock
    /// out the clients of another; without it, a CA whose CRL is missing (not yet fetched,
    /// deleted) fails its clients closed.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.policy.allow_unknown_status = true;
        self
    }

    /// Still uses a CRL past its `nextUpdate` (default: the certificates its issuer signed are
    /// refused until a current CRL is loaded, so that a CRL no longer refreshed does not
    /// silently stop newer revocations from counting).
    pub fn allow_expired_crl(mut self) -> Self {
        self.policy.allow_expired = true;
        self
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
    /// The HTTP client or the chain verifier cannot be built (a CRL rustls cannot parse, CRLs
    /// without trust anchors).
    pub fn build(self) -> Result<ClientAuthenticator, ConfigError> {
        let trust = ClientTrust::new(self.sources, self.file_roots, self.file_crls, self.policy)?;
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
        Ok(ClientAuthenticator::from_inner(Inner {
            trust: Arc::new(trust),
            jwks_uris: Arc::new(JwksUriCache::new(client, self.settings)),
        }))
    }
}
