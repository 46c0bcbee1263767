//! rustls configurations for the two RFC 8705 deployments, and PEM loading.
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
//! # Example
//! ```no_run
//! use certbound::tls::ServerTls;
//!
//! # fn main() -> Result<(), certbound::ConfigError> {
//! let config = ServerTls::from_pem_files("server.pem", "server.key")?
//!     .client_ca_pem_file("clients-ca.pem")?
//!     .client_certificate_optional()
//!     .build()?;
//! # let _ = config; Ok(()) }
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::error::ConfigError;
use crate::support::crypto::rustls_provider;

/// How the server treats client certificates.
#[derive(Debug, Clone)]
enum ClientAuth {
    /// Chains must verify to these roots.
    Verified(RootCertStore),
    /// Any certificate; only possession of its key is checked (RFC 8705 §6.2).
    AnyCertificate,
    /// No client certificates requested (for servers that are not resource servers, e.g. a
    /// JWKS endpoint).
    None,
}

/// Builder of a rustls [`ServerConfig`] for an RFC 8705 resource server.
///
/// ALPN is set to `h2` and `http/1.1`. Without a call to
/// [`client_ca`](Self::client_ca) / [`client_ca_pem_file`](Self::client_ca_pem_file), any client
/// certificate is accepted at the TLS layer (RFC 8705 §6.2), self-signed included.
#[must_use]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
    optional: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of Debug output.
        f.debug_struct("ServerTls")
            .field("chain_len", &self.chain.len())
            .field("client_auth", &self.client_auth)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The server's certificate chain (leaf first) and private key.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key,
            client_auth: ClientAuth::AnyCertificate,
            optional: false,
        }
    }

    /// Reads the server's certificate chain and private key from PEM files (read synchronously:
    /// call at start-up).
    ///
    /// # Errors
    /// A file that cannot be read, holds no certificate, or holds no private key.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(load_certs(cert)?, load_private_key(key)?))
    }

    /// Requires client chains to verify to one of `roots` (RFC 8705 §2.1). Replaces the
    /// default "any certificate" mode; calls accumulate roots.
    pub fn client_ca(
        mut self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, ConfigError> {
        let mut store = match self.client_auth {
            ClientAuth::Verified(store) => store,
            _ => RootCertStore::empty(),
        };
        for root in roots {
            store.add(root)?;
        }
        self.client_auth = ClientAuth::Verified(store);
        Ok(self)
    }

    /// Like [`client_ca`](Self::client_ca), reading the CA certificates from a PEM file.
    ///
    /// # Errors
    /// The file cannot be read, holds no certificate, or rustls refuses one as a trust anchor.
    pub fn client_ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let certs = load_certs(path)?;
        self.client_ca(certs)
    }

    /// Accepts any client certificate, self-signed too, without chain validation
    /// (RFC 8705 §2.2 / §6.2). The TLS handshake still proves possession of the key. Replaces
    /// any [`client_ca`](Self::client_ca) given before.
    pub fn any_client_certificate(mut self) -> Self {
        self.client_auth = ClientAuth::AnyCertificate;
        self
    }

    /// Does not ask clients for certificates at all. Not for resource servers: a
    /// [`BoundTokenLayer`](crate::BoundTokenLayer) behind it rejects every bound token.
    pub fn no_client_auth(mut self) -> Self {
        self.client_auth = ClientAuth::None;
        self
    }

    /// Lets clients connect without a certificate (the layer then rejects protected requests
    /// from them). Default: a certificate is required.
    pub fn client_certificate_optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Builds the rustls configuration, with certbound's crypto provider.
    ///
    /// # Errors
    /// rustls refuses the key or the chain, or no client CA could be used.
    pub fn build(self) -> Result<Arc<ServerConfig>, ConfigError> {
        let provider = rustls_provider()?;
        let verifier: Arc<dyn ClientCertVerifier> = match self.client_auth {
            ClientAuth::Verified(roots) => {
                let builder = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                );
                let builder = if self.optional {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder.build().map_err(|e| {
                    ConfigError::invalid_because("client CA", "no usable client verifier", e)
                })?
            }
            ClientAuth::AnyCertificate => Arc::new(AnyClientCertificate {
                provider: Arc::clone(&provider),
                mandatory: !self.optional,
            }),
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain, self.key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// RFC 8705 §6.2: accepts any certificate, but still verifies the handshake signature made
/// with its key.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately no chain or validity check (RFC 8705 §2.2): what the certificate is worth
        // is decided by the token's binding. The signature checks below prove key possession.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Reads every certificate in a PEM file.
///
/// # Errors
/// The file cannot be read or holds no certificate.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let path = path.as_ref();
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| pem_error(path, "malformed PEM"))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// # Errors
/// The file cannot be read or holds no private key.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let path = path.as_ref();
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => pem_error(path, "no PRIVATE KEY block found"),
        _ => pem_error(path, "malformed PEM private key"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, reason: &'static str) -> ConfigError {
    ConfigError::Pem {
        path: path.to_owned(),
        reason,
    }
}

/// A rustls client configuration for outgoing HTTPS (JWKS, discovery, introspection): the
/// Mozilla roots of `webpki-roots` (unless `public_roots` is off) plus `extra_roots`, with
/// certbound's crypto provider, presenting `identity` (chain, key) when the server asks for a
/// client certificate (mutual TLS to an authorization server, RFC 8705 §2).
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    public_roots: bool,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    if public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for root in extra_roots {
        roots.add(root.clone())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(rustls_provider()?)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_path() {
        let err = load_certs("/nonexistent/certbound.pem").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/certbound.pem"),
            "{err}"
        );
    }

    #[test]
    fn files_without_certificates_are_refused() {
        let dir = std::env::temp_dir().join(format!("certbound-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a pem\n").unwrap();
        let err = load_certs(&path).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = load_private_key(&path).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
    }
}
