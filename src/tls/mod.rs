//! rustls configurations for the two RFC 8705 deployments, revocation lists, rotation without a
//! restart, and PEM loading.
//!
//! - **CA-verified clients** (RFC 8705 §2.1, PKI): client chains must verify to one of the
//!   given roots; the certificate can be required or optional.
//! - **Any client certificate** (RFC 8705 §2.2 and §6.2, self-signed): no chain validation, but
//!   the handshake signature is still verified, so the client proves it holds the certificate's
//!   key. The token binding (and, on the authorization server, the client's registered JWKS)
//!   decides whether the certificate means anything.
//!
//! An *optional* client certificate suits a resource server with public routes (a health check):
//! the [`BoundTokenLayer`](crate::BoundTokenLayer) rejects protected requests that arrive without
//! one (`401 invalid_token`).
//!
//! # Revocation
//! With CA-verified clients, [`ServerTls::crl`] / [`ServerTls::crl_file`] add certificate
//! revocation lists (RFC 5280 CRLs, PEM or DER). A client certificate they revoke is refused
//! during the TLS handshake (a TLS alert: no HTTP request is ever read from that connection).
//! The policies, each named, each off by default:
//!
//! | Default (strict) | Weakened by |
//! |---|---|
//! | every certificate of the chain is checked, intermediates included | [`crl_end_entity_only`](ServerTls::crl_end_entity_only) |
//! | a certificate whose issuer has no CRL among those given is refused (status unknown) | [`allow_unknown_revocation_status`](ServerTls::allow_unknown_revocation_status) |
//! | a CRL past its `nextUpdate` refuses the certificates it covers (as nginx / OpenSSL and Envoy do) | [`allow_expired_crl`](ServerTls::allow_expired_crl) |
//!
//! So with CRLs, give one for every CA that issues client certificates (intermediates
//! included), and renew them before their `nextUpdate`: [`ReloadableServerTls::watch`] takes a
//! renewed file without a restart.
//!
//! # Rotation
//! [`ReloadableServerTls`] holds the configuration in use and swaps it atomically: new
//! handshakes use the new material, connections already open keep theirs. Its
//! [`watch`](ReloadableServerTls::watch)er re-reads the files a [`ServerTls`] was read from when
//! they change (see [`reload`](crate::reload)); a replacement that does not build (a half-written
//! file, a key that is not the certificate's, no client CA, an unparsable CRL) is refused and the
//! old material stays. [`serve`](crate::serve) takes either a fixed configuration or the handle.
//!
//! # Example
//! ```no_run
//! use certbound::tls::ServerTls;
//!
//! # fn main() -> Result<(), certbound::ConfigError> {
//! let config = ServerTls::from_pem_files("server.pem", "server.key")?
//!     .client_ca_pem_file("clients-ca.pem")?
//!     .crl_file("clients-ca.crl")?
//!     .client_certificate_optional()
//!     .build()?;
//! # let _ = config; Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::ConfigError;
use crate::metrics;
use crate::support::crypto::rustls_provider;

mod client;
mod expiry;
mod files;
mod reloadable;
mod verify;

pub(crate) use client::client_config;
pub use files::{load_certs, load_crls, load_private_key};
pub use reloadable::{ReloadableServerTls, TlsSource};
use verify::AnyClientCertificate;
// The authorization server's `tls_client_auth` verifier is built the same way, with the same
// policies (authorization_server/trust.rs).
#[cfg(feature = "authorization-server")]
pub(crate) use verify::webpki as webpki_client_verifier;
pub(crate) use verify::RevocationPolicy;

/// Items given in memory (`file: None`) or read from a file, which a reload reads again.
#[derive(Clone)]
struct Loaded<T> {
    file: Option<PathBuf>,
    items: Vec<T>,
}

impl<T: Clone> Loaded<T> {
    fn reread(
        &self,
        load: impl Fn(&Path) -> Result<Vec<T>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        Ok(match &self.file {
            Some(path) => Self {
                file: Some(path.clone()),
                items: load(path)?,
            },
            None => self.clone(),
        })
    }
}

/// How the server treats client certificates.
#[derive(Clone)]
enum ClientAuth {
    /// Chains must verify to these roots.
    Verified(Vec<Loaded<CertificateDer<'static>>>),
    /// Any certificate; only possession of its key is checked (RFC 8705 §6.2).
    AnyCertificate,
    /// No client certificates requested (for servers that are not resource servers, e.g. a
    /// JWKS endpoint).
    None,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified(roots) => {
                let count: usize = roots.iter().map(|r| r.items.len()).sum();
                write!(f, "Verified({count} roots)")
            }
            Self::AnyCertificate => f.write_str("AnyCertificate"),
            Self::None => f.write_str("None"),
        }
    }
}

/// Builder of a rustls [`ServerConfig`] for an RFC 8705 resource server.
///
/// ALPN is set to `h2` and `http/1.1`. Without a call to
/// [`client_ca`](Self::client_ca) / [`client_ca_pem_file`](Self::client_ca_pem_file), any client
/// certificate is accepted at the TLS layer (RFC 8705 §6.2), self-signed included.
///
/// A `ServerTls` remembers the files it was read from ([`from_pem_files`](Self::from_pem_files),
/// [`client_ca_pem_file`](Self::client_ca_pem_file), [`crl_file`](Self::crl_file)), so that a
/// [`ReloadableServerTls`] can read them again; material given in memory stays as given.
#[must_use]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Where `chain` and `key` were read from, if they were.
    identity_files: Option<(PathBuf, PathBuf)>,
    client_auth: ClientAuth,
    optional: bool,
    crls: Vec<Loaded<CertificateRevocationListDer<'static>>>,
    revocation: RevocationPolicy,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of Debug output.
        f.debug_struct("ServerTls")
            .field("chain_len", &self.chain.len())
            .field("client_auth", &self.client_auth)
            .field("optional", &self.optional)
            .field(
                "crls",
                &self.crls.iter().map(|c| c.items.len()).sum::<usize>(),
            )
            .field("revocation", &self.revocation)
            .field("files", &self.paths())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The server's certificate chain (leaf first) and private key.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key,
            identity_files: None,
            client_auth: ClientAuth::AnyCertificate,
            optional: false,
            crls: Vec::new(),
            revocation: RevocationPolicy::default(),
        }
    }

    /// Reads the server's certificate chain and private key from PEM files (read synchronously:
    /// call at start-up). A [`ReloadableServerTls`] reads them again on reload.
    ///
    /// # Errors
    /// A file that cannot be read, holds no certificate, or holds no private key.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let mut tls = Self::new(load_certs(cert)?, load_private_key(key)?);
        tls.identity_files = Some((cert.to_owned(), key.to_owned()));
        Ok(tls)
    }

    /// Requires client chains to verify to one of `roots` (RFC 8705 §2.1). Replaces the
    /// default "any certificate" mode; calls accumulate roots.
    ///
    /// # Errors
    /// rustls refuses a certificate as a trust anchor.
    pub fn client_ca(
        self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, ConfigError> {
        self.add_client_ca(None, roots.into_iter().collect())
    }

    /// Like [`client_ca`](Self::client_ca), reading the CA certificates from a PEM file.
    ///
    /// # Errors
    /// The file cannot be read, holds no certificate, or rustls refuses one as a trust anchor.
    pub fn client_ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let certs = load_certs(path)?;
        self.add_client_ca(Some(path.to_owned()), certs)
    }

    fn add_client_ca(
        mut self,
        file: Option<PathBuf>,
        items: Vec<CertificateDer<'static>>,
    ) -> Result<Self, ConfigError> {
        // Refused here rather than at build: the error comes from the call that gave the root.
        let mut check = RootCertStore::empty();
        for root in &items {
            check.add(root.clone())?;
        }
        let mut roots = match self.client_auth {
            ClientAuth::Verified(roots) => roots,
            _ => Vec::new(),
        };
        roots.push(Loaded { file, items });
        self.client_auth = ClientAuth::Verified(roots);
        Ok(self)
    }

    /// Accepts any client certificate, self-signed too, without chain validation
    /// (RFC 8705 §2.2 / §6.2). The TLS handshake still proves possession of the key. Replaces
    /// any [`client_ca`](Self::client_ca) given before. Not with CRLs (there is no chain to check
    /// them against): [`build`](Self::build) refuses the combination.
    pub fn any_client_certificate(mut self) -> Self {
        self.client_auth = ClientAuth::AnyCertificate;
        self
    }

    /// Does not ask clients for certificates at all. Not for resource servers: a
    /// [`BoundTokenLayer`](crate::BoundTokenLayer) behind it rejects every bound token. Not with
    /// CRLs: [`build`](Self::build) refuses the combination.
    pub fn no_client_auth(mut self) -> Self {
        self.client_auth = ClientAuth::None;
        self
    }

    /// Lets clients connect without a certificate (the layer then rejects protected requests
    /// from them). Default: a certificate is required. A client that presents one is still
    /// checked against the client CAs and the CRLs.
    pub fn client_certificate_optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Adds certificate revocation lists (DER): a client certificate they revoke is refused at
    /// the handshake. Calls accumulate. Needs [`client_ca`](Self::client_ca) (the CRLs are
    /// checked along the verified chain); see the [module docs](self#revocation) for the
    /// policies and their defaults.
    ///
    /// A CRL that does not parse makes [`build`](Self::build) fail.
    pub fn crl(
        mut self,
        crls: impl IntoIterator<Item = CertificateRevocationListDer<'static>>,
    ) -> Self {
        self.crls.push(Loaded {
            file: None,
            items: crls.into_iter().collect(),
        });
        self
    }

    /// Like [`crl`](Self::crl), reading the CRLs from a file: one DER CRL, or PEM `X509 CRL`
    /// blocks (see [`load_crls`]). Repeatable; a [`ReloadableServerTls`] reads the file again on
    /// reload.
    ///
    /// # Errors
    /// The file cannot be read, holds no CRL, or a CRL in it does not parse.
    pub fn crl_file(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        self.crls.push(Loaded {
            items: load_crls(path)?,
            file: Some(path.to_owned()),
        });
        Ok(self)
    }

    /// Checks only the client's own certificate against the CRLs, not the intermediate CAs of
    /// its chain. Default: every certificate of the verified chain (the trust anchor excepted).
    pub fn crl_end_entity_only(mut self) -> Self {
        self.revocation.end_entity_only = true;
        self
    }

    /// Accepts a certificate whose revocation status the CRLs cannot tell (none of them is from
    /// its issuer). Default: refused, so that a CA whose CRL was forgotten does not silently go
    /// unchecked.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.revocation.allow_unknown_status = true;
        self
    }

    /// Uses CRLs past their `nextUpdate` as if current. Default: a certificate whose status
    /// rests on an expired CRL is refused (as nginx / OpenSSL and Envoy do): a CRL that stopped
    /// being renewed cannot vouch for anything revoked since.
    pub fn allow_expired_crl(mut self) -> Self {
        self.revocation.allow_expired = true;
        self
    }

    /// Builds the rustls configuration, with certbound's crypto provider. Sets the
    /// `certbound_tls_certificate_expiry_timestamp_seconds` gauge (feature `metrics`) to the
    /// leaf's notAfter: install the metrics recorder before, or the value is lost until the
    /// next reload.
    ///
    /// # Errors
    /// rustls refuses the key or the chain; the private key is not the certificate's; a client
    /// CA was asked for but no root was given; a CRL does not parse; CRLs were given with
    /// [`any_client_certificate`](Self::any_client_certificate) (the default without a client
    /// CA) or [`no_client_auth`](Self::no_client_auth), which have no chain to check them
    /// against.
    pub fn build(self) -> Result<Arc<ServerConfig>, ConfigError> {
        let provider = rustls_provider()?;
        let crls: Vec<_> = self.crls.into_iter().flat_map(|c| c.items).collect();
        let verifier: Arc<dyn ClientCertVerifier> = match self.client_auth {
            ClientAuth::Verified(batches) => {
                let mut roots = RootCertStore::empty();
                for root in batches.into_iter().flat_map(|b| b.items) {
                    roots.add(root)?;
                }
                verify::webpki(roots, crls, self.revocation, self.optional, &provider)?
            }
            ClientAuth::AnyCertificate | ClientAuth::None if !crls.is_empty() => {
                return Err(ConfigError::invalid(
                    "CRL",
                    "revocation lists need client CA verification (client_ca); \
                     with any or no client certificate there is no chain to check them against",
                ));
            }
            ClientAuth::AnyCertificate => Arc::new(AnyClientCertificate {
                provider: Arc::clone(&provider),
                mandatory: !self.optional,
            }),
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        };
        check_key_matches(&self.chain, &self.key, &provider)?;
        let not_after = self.chain.first().and_then(|leaf| expiry::not_after(leaf));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain, self.key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if let Some(not_after) = not_after {
            metrics::tls_certificate_expiry(not_after);
        }
        Ok(Arc::new(config))
    }

    /// The files this configuration was read from, in a fixed order.
    fn paths(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if let Some((cert, key)) = &self.identity_files {
            paths.extend([cert.clone(), key.clone()]);
        }
        if let ClientAuth::Verified(roots) = &self.client_auth {
            paths.extend(roots.iter().filter_map(|r| r.file.clone()));
        }
        paths.extend(self.crls.iter().filter_map(|c| c.file.clone()));
        paths
    }

    /// A copy (the private key included: `PrivateKeyDer` is deliberately not `Clone`).
    fn duplicate(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            identity_files: self.identity_files.clone(),
            client_auth: self.client_auth.clone(),
            optional: self.optional,
            crls: self.crls.clone(),
            revocation: self.revocation,
        }
    }

    /// A copy with every part that came from a file read again.
    fn reread(&self) -> Result<Self, ConfigError> {
        let (chain, key) = match &self.identity_files {
            Some((cert, key)) => (load_certs(cert)?, load_private_key(key)?),
            None => (self.chain.clone(), self.key.clone_key()),
        };
        let client_auth = match &self.client_auth {
            ClientAuth::Verified(roots) => ClientAuth::Verified(
                roots
                    .iter()
                    .map(|r| r.reread(|p| load_certs(p)))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        };
        let crls = self
            .crls
            .iter()
            .map(|c| c.reread(|p| load_crls(p)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            chain,
            key,
            identity_files: self.identity_files.clone(),
            client_auth,
            optional: self.optional,
            crls,
            revocation: self.revocation,
        })
    }
}

/// The private key must be the leaf certificate's: a certificate renewed with a new key whose
/// key file is not yet written is refused, not served (every handshake would fail).
fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(), ConfigError> {
    let signing_key = provider.key_provider.load_private_key(key.clone_key())?;
    match rustls::sign::CertifiedKey::new(chain.to_vec(), signing_key).keys_match() {
        // Unknown: the signing key cannot tell its public key; the handshake will.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(ConfigError::invalid(
            "server key",
            "the private key is not the server certificate's",
        )),
        Err(e) => Err(e.into()),
    }
}
