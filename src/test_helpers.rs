//! Helpers shared by the unit tests of several modules.

/// A fresh P-256 key pair.
pub(crate) fn p256_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// A fresh self-signed certificate (P-256) for the DNS name `name`.
pub(crate) fn self_signed_certificate(name: &str) -> rcgen::Certificate {
    rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&p256_key())
        .unwrap()
}
