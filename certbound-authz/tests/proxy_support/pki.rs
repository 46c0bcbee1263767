//! The certificates of a deployment, made at test time: a CA and the proxy's server
//! certificate for `api.example.com` it issued, and self-signed client certificates with
//! their keys (the proxies accept any client certificate; the token's binding decides).

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The public host name of the API in every deployment.
pub const HOST: &str = "api.example.com";
/// `tokens.public_url` in every deployment.
pub const PUBLIC_URL: &str = "https://api.example.com";

/// The proxy's TLS identity and the CA clients trust it by.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl Pki {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certbound-authz proxy test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let server = rcgen::CertificateParams::new(vec![HOST.to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        Self {
            ca: ca.der().clone(),
            server_cert_pem: server.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

/// A client's certificate and key.
pub struct ClientId {
    pub der: Vec<u8>,
    pub pem: String,
    key: Vec<u8>,
}

impl ClientId {
    pub fn new(name: &str) -> Self {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("certificate");
        Self {
            der: made.cert.der().to_vec(),
            pem: made.cert.pem(),
            key: made.signing_key.serialize_der(),
        }
    }

    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.der.clone())]
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}
