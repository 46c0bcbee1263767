//! Reading certificates, private keys and CRLs from files.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::ConfigError;

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

/// Reads the certificate revocation lists in a file: one DER-encoded CRL, or any number of PEM
/// `X509 CRL` blocks (told apart by the first byte: DER starts with a SEQUENCE tag, `0x30`).
/// Every CRL is parsed, so that an unparsable one is refused here rather than at a handshake.
///
/// # Errors
/// The file cannot be read, holds no CRL, or a CRL does not parse (a half-written file).
pub fn load_crls(
    path: impl AsRef<Path>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let crls = if bytes.first() == Some(&0x30) {
        vec![CertificateRevocationListDer::from(bytes)]
    } else {
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| pem_error(path, "malformed PEM"))?;
        if crls.is_empty() {
            return Err(pem_error(path, "no X509 CRL block found"));
        }
        crls
    };
    for crl in &crls {
        webpki::BorrowedCertRevocationList::from_der(crl)
            .map_err(|_| pem_error(path, "unparsable certificate revocation list"))?;
    }
    Ok(crls)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("certbound-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

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
        let path = dir("empty").join("empty.pem");
        std::fs::write(&path, "not a pem\n").unwrap();
        let err = load_certs(&path).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = load_private_key(&path).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let err = load_crls(&path).unwrap_err();
        assert!(err.to_string().contains("no X509 CRL"), "{err}");
    }

    #[test]
    fn a_truncated_crl_is_refused_in_der_and_in_pem() {
        let dir = dir("crl");
        let der = dir.join("truncated.crl");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x00, 0x30]).unwrap();
        let err = load_crls(&der).unwrap_err();
        assert!(err.to_string().contains("unparsable"), "{err}");
        let pem = dir.join("truncated.pem");
        std::fs::write(
            &pem,
            "-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n",
        )
        .unwrap();
        let err = load_crls(&pem).unwrap_err();
        assert!(err.to_string().contains("unparsable"), "{err}");
    }
}
