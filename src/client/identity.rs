//! [`ClientIdentity`]: the client's certificate chain and private key, and the TLS client
//! configurations made from them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ConfigError;
use crate::support::crypto::rustls_provider;
use crate::thumbprint::CertThumbprint;

/// A client's TLS identity: its certificate chain (leaf first) and the leaf's private key
/// (PKCS#8, PKCS#1 or SEC1; ECDSA P-256 or P-384, RSA, or Ed25519).
///
/// It authenticates the client at the token endpoint (`tls_client_auth` or
/// `self_signed_tls_client_auth`, RFC 8705 §2) and presents the certificate that a
/// certificate-bound token names, to the resource server. Its [`Debug`](fmt::Debug) shows the
/// certificate's thumbprint, never the key.
#[derive(Clone)]
pub struct ClientIdentity {
    chain: Arc<[CertificateDer<'static>]>,
    key: Arc<PrivateKeyDer<'static>>,
    thumbprint: CertThumbprint,
}

impl ClientIdentity {
    /// The identity of `chain` (leaf first) and `key`, the leaf's private key.
    ///
    /// # Errors
    /// An empty chain, a key the crypto provider cannot sign with, or a key that is not the
    /// leaf certificate's.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, ConfigError> {
        let Some(leaf) = chain.first() else {
            return Err(ConfigError::invalid(
                "client certificate",
                "the chain holds no certificate",
            ));
        };
        let thumbprint = CertThumbprint::from_der(leaf);
        let provider = rustls_provider()?;
        let signing_key = provider.key_provider.load_private_key(key.clone_key())?;
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing_key);
        match certified.keys_match() {
            // Unknown: the signing key cannot tell its public key; the handshake will.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(ConfigError::invalid(
                    "client key",
                    "the private key is not the client certificate's",
                ))
            }
        }
        Ok(Self {
            chain: chain.into(),
            key: Arc::new(key),
            thumbprint,
        })
    }

    /// The identity in PEM: every certificate of `cert_pem` (leaf first) and the first private
    /// key of `key_pem`.
    ///
    /// # Errors
    /// No certificate or no key in the PEM, or what [`ClientIdentity::new`] refuses.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| pem_error("malformed PEM certificate"))?;
        if chain.is_empty() {
            return Err(pem_error("no CERTIFICATE block found"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => pem_error("no PRIVATE KEY block found"),
            _ => pem_error("malformed PEM private key"),
        })?;
        Self::new(chain, key)
    }

    /// The identity in two PEM files, as [`ClientIdentity::from_pem`] reads them.
    ///
    /// # Errors
    /// A file cannot be read (the error names it), or what [`ClientIdentity::from_pem`]
    /// refuses.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        Self::new(
            crate::tls::load_certs(cert)?,
            crate::tls::load_private_key(key)?,
        )
    }

    /// The SHA-256 thumbprint of the leaf certificate: the `cnf.x5t#S256` of the tokens bound
    /// to this identity.
    pub fn thumbprint(&self) -> &CertThumbprint {
        &self.thumbprint
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// A rustls client configuration that presents this identity when the server asks for a
    /// certificate, trusting the Mozilla roots of `webpki-roots` (unless `public_roots` is
    /// false) and `extra_roots`, with certbound's crypto provider and ALPN `h2`, `http/1.1`.
    /// For hyper-util's client, tonic or any rustls connector.
    ///
    /// # Errors
    /// An unusable root certificate, or no crypto provider.
    pub fn tls_config(
        &self,
        extra_roots: &[CertificateDer<'static>],
        public_roots: bool,
    ) -> Result<rustls::ClientConfig, ConfigError> {
        crate::tls::client_config(extra_roots, public_roots, Some(self.parts()))
    }

    /// A reqwest client builder over [`ClientIdentity::tls_config`]; add timeouts and build.
    /// The TLS configuration offers `h2` and `http/1.1` by ALPN, which reqwest follows even
    /// with `http1_only`: for HTTP/1.1 only, take [`tls_config`](Self::tls_config), set its
    /// `alpn_protocols` to `http/1.1`, and hand it to reqwest's `tls_backend_preconfigured`.
    ///
    /// # Errors
    /// As [`ClientIdentity::tls_config`].
    pub fn reqwest_builder(
        &self,
        extra_roots: &[CertificateDer<'static>],
        public_roots: bool,
    ) -> Result<reqwest::ClientBuilder, ConfigError> {
        let tls = self.tls_config(extra_roots, public_roots)?;
        Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
    }

    /// The identity for tonic's `ClientTlsConfig::identity` (tonic takes PEM): for a
    /// `Channel` that presents the client's certificate to the resource server.
    #[cfg(feature = "tonic")]
    pub fn tonic_identity(&self) -> tonic::transport::Identity {
        let chain: String = self
            .chain
            .iter()
            .map(|cert| pem("CERTIFICATE", cert.as_ref()))
            .collect();
        let label = match &*self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        tonic::transport::Identity::from_pem(chain, pem(label, self.key.secret_der()))
    }

    /// The chain and a copy of the key, for certbound's own HTTP clients.
    pub(crate) fn parts(&self) -> crate::upstream::Identity {
        (self.chain.to_vec(), self.key.clone_key())
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("thumbprint", &self.thumbprint)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// `der` as a PEM block labelled `label` (RFC 7468: base64 in lines of 64).
#[cfg(feature = "tonic")]
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

fn pem_error(reason: &'static str) -> ConfigError {
    ConfigError::Pem {
        path: std::path::PathBuf::new(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn pem_identities_of_every_key_type_load_and_name_their_thumbprint() {
        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let rsa_cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&rsa)
            .unwrap();
        let mut pairs = vec![(rsa_cert.pem(), rsa.serialize_pem())];
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            pairs.push(pair(alg));
        }
        for (cert, key) in pairs {
            let identity = ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
            let der = CertificateDer::pem_slice_iter(cert.as_bytes())
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(identity.thumbprint(), &CertThumbprint::from_der(&der));
            assert_eq!(identity.chain().len(), 1);
            identity.tls_config(&[], false).unwrap();
            let debug = format!("{identity:?}");
            assert!(
                debug.contains(&identity.thumbprint().to_string()),
                "{debug}"
            );
            assert!(!debug.contains("PRIVATE"), "{debug}");
        }
    }

    #[test]
    fn a_key_of_another_certificate_or_missing_pem_blocks_are_refused() {
        let (cert, _) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other_key) = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let err = ClientIdentity::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("not the client certificate's"),
            "{err}"
        );
        let err = ClientIdentity::from_pem(b"", other_key.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = ClientIdentity::from_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let err = ClientIdentity::from_pem_files("/nonexistent/client.pem", "/nonexistent/key")
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/client.pem"), "{err}");
    }
}
