//! A throw-away test PKI built with rcgen (ECDSA P-256).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationList,
    CertificateRevocationListParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use super::{b64url, init};

/// A test certificate authority plus a server identity it issued at construction.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_cert: rcgen::Certificate,
    /// The certificates between this CA and its root (this CA's first), for an intermediate.
    chain_tail: Vec<CertificateDer<'static>>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_pkcs8: Vec<u8>,
    server_cert_pem: String,
    server_key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// Paths written by [`Pki::write_pem_files`].
#[derive(Debug, Clone)]
pub struct PemPaths {
    /// Server certificate chain (leaf only), PEM.
    pub server_cert: PathBuf,
    /// Server private key, PKCS#8 PEM.
    pub server_key: PathBuf,
    /// The CA certificate, PEM.
    pub ca_cert: PathBuf,
}

/// A client certificate and its private key.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key, PKCS#8 DER (see [`ClientIdentity::key`]).
    pub key_pkcs8: Vec<u8>,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl ClientIdentity {
    /// The private key as rustls wants it.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// DER of the leaf certificate.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    /// The RFC 8705 §3.1 thumbprint, computed independently of the library:
    /// base64url-no-pad(SHA-256(leaf DER)).
    pub fn x5t_s256(&self) -> String {
        b64url(Sha256::digest(self.leaf_der()))
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate P-256 key")
}

fn client_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn identity(cert: rcgen::Certificate, key: KeyPair) -> ClientIdentity {
    ClientIdentity {
        chain: vec![cert.der().clone()],
        key_pkcs8: key.serialize_der(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Pki {
    /// A new CA named `name` (its subject CN), with a fresh server identity for
    /// `localhost` / `127.0.0.1`.
    pub fn new(name: &str) -> Pki {
        Self::issued(name, None)
    }

    /// An intermediate CA named `name`, issued by this CA (serial `serial`): its client
    /// identities carry the chain up to this CA's certificate (excluded when this CA is a root).
    pub fn intermediate(&self, name: &str, serial: u64) -> Pki {
        Self::issued(name, Some((self, serial)))
    }

    fn issued(name: &str, parent: Option<(&Pki, u64)>) -> Pki {
        init();
        let ca_key = p256();
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn(name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (ca_cert, chain_tail) = match parent {
            None => (
                ca_params.self_signed(&ca_key).expect("self-sign CA"),
                Vec::new(),
            ),
            Some((parent, serial)) => {
                ca_params.serial_number = Some(serial.into());
                let cert = ca_params
                    .signed_by(&ca_key, &parent.issuer)
                    .expect("sign intermediate CA");
                let mut tail = vec![cert.der().clone()];
                tail.extend(parent.chain_tail.iter().cloned());
                (cert, tail)
            }
        };
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = p256();
        let server_cert = server_params()
            .signed_by(&server_key, &issuer)
            .expect("sign server cert");

        Pki {
            issuer,
            ca_cert,
            chain_tail,
            server_chain: vec![server_cert.der().clone()],
            server_key_pkcs8: server_key.serialize_der(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_cert.der().clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_cert.pem()
    }

    /// The server identity (SAN `localhost` and IP `127.0.0.1`, serverAuth EKU), issued by this
    /// CA. Always the same identity for a given `Pki`.
    pub fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            self.server_chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_pkcs8.clone())),
        )
    }

    /// The server certificate (leaf only) and its PKCS#8 private key, PEM: what tonic's
    /// `Identity::from_pem` takes.
    pub fn server_identity_pem(&self) -> (String, String) {
        (self.server_cert_pem.clone(), self.server_key_pem.clone())
    }

    /// A fresh client identity (subject `CN=cn`, clientAuth EKU) issued by this CA.
    pub fn client_identity(&self, cn: &str) -> ClientIdentity {
        self.client_identity_with(cn, |_| {})
    }

    /// Like [`Pki::client_identity`], letting the caller adjust the certificate parameters first
    /// (e.g. add SANs or DN attributes for `tls_client_auth` tests).
    pub fn client_identity_with(
        &self,
        cn: &str,
        customize: impl FnOnce(&mut CertificateParams),
    ) -> ClientIdentity {
        let key = p256();
        let mut params = client_params(cn);
        customize(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign client cert");
        let mut identity = identity(cert, key);
        identity.chain.extend(self.chain_tail.iter().cloned());
        identity
    }

    /// A client identity like [`Pki::client_identity`], with serial number `serial` (for CRLs).
    pub fn client_identity_serial(&self, cn: &str, serial: u64) -> ClientIdentity {
        self.client_identity_with(cn, |params| params.serial_number = Some(serial.into()))
    }

    /// A fresh server identity (another key, same names as the first), PEM certificate chain and
    /// PKCS#8 key: a renewed server certificate.
    pub fn renewed_server_identity_pem(&self) -> (String, String) {
        let key = p256();
        let cert = server_params()
            .signed_by(&key, &self.issuer)
            .expect("sign server cert");
        (cert.pem(), key.serialize_pem())
    }

    /// A CRL of this CA revoking the certificates with these serial numbers, issued an hour ago
    /// and next updated `next_update_in_secs` from now (negative: expired).
    pub fn crl(&self, revoked: &[u64], next_update_in_secs: i64) -> CertificateRevocationList {
        let epoch = rcgen::date_time_ymd(2020, 1, 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            - 1_577_836_800; // 2020-01-01
        let at = |secs_from_now: i64| {
            let secs = now.checked_add_signed(secs_from_now).expect("after 2020");
            epoch + std::time::Duration::from_secs(secs)
        };
        let params = CertificateRevocationListParams {
            this_update: at(-3600 - next_update_in_secs.min(0).abs()),
            next_update: at(next_update_in_secs),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(*serial),
                    revocation_time: at(-60),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).expect("sign CRL")
    }

    /// A self-signed client identity (RFC 8705 §2.2), not issued by any CA.
    pub fn self_signed_client(cn: &str) -> ClientIdentity {
        init();
        let key = p256();
        let cert = client_params(cn)
            .self_signed(&key)
            .expect("self-sign client cert");
        identity(cert, key)
    }

    /// Writes `server-cert.pem` (chain), `server-key.pem` and `ca.pem` into `dir` (which must
    /// exist) and returns their paths.
    pub fn write_pem_files(&self, dir: &Path) -> std::io::Result<PemPaths> {
        let paths = PemPaths {
            server_cert: dir.join("server-cert.pem"),
            server_key: dir.join("server-key.pem"),
            ca_cert: dir.join("ca.pem"),
        };
        std::fs::write(&paths.server_cert, &self.server_cert_pem)?;
        std::fs::write(&paths.server_key, &self.server_key_pem)?;
        std::fs::write(&paths.ca_cert, self.ca_pem())?;
        Ok(paths)
    }
}

/// The test server's certificate parameters: `localhost` and 127.0.0.1, for server auth.
fn server_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("localhost");
    params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().expect("dns name")),
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}
