//! The client certificate verifiers of [`ServerTls`](super::ServerTls): webpki's, with the CA
//! roots and the CRLs and their policy, or RFC 8705 §6.2's "any certificate".

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use crate::error::ConfigError;

/// How CRLs are applied; each field is a weakening of the default, off unless asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RevocationPolicy {
    /// Check only the client's own certificate, not the intermediates of its chain.
    pub(crate) end_entity_only: bool,
    /// Accept a certificate whose issuer has no CRL among those given.
    pub(crate) allow_unknown_status: bool,
    /// Accept CRLs past their `nextUpdate`.
    pub(crate) allow_expired: bool,
}

/// webpki's verifier: chains to `roots`, checked against `crls` under `policy`.
pub(crate) fn webpki(
    roots: RootCertStore,
    crls: Vec<CertificateRevocationListDer<'static>>,
    policy: RevocationPolicy,
    optional: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
    if roots.is_empty() {
        return Err(ConfigError::invalid(
            "client CA",
            "no client CA certificate (an empty CA set): every client would be refused",
        ));
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    if optional {
        builder = builder.allow_unauthenticated();
    }
    if !crls.is_empty() {
        builder = builder.with_crls(crls);
        if policy.end_entity_only {
            builder = builder.only_check_end_entity_revocation();
        }
        if policy.allow_unknown_status {
            builder = builder.allow_unknown_revocation_status();
        }
        // rustls accepts expired CRLs unless told otherwise; certbound refuses them, like
        // nginx / OpenSSL and Envoy.
        if !policy.allow_expired {
            builder = builder.enforce_revocation_expiration();
        }
    }
    builder
        .build()
        .map_err(|e| ConfigError::invalid_because("client CA", "no usable client verifier", e))
}

/// RFC 8705 §6.2: accepts any certificate, but still verifies the handshake signature made
/// with its key.
#[derive(Debug)]
pub(super) struct AnyClientCertificate {
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) mandatory: bool,
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
