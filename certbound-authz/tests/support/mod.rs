//! Test material made at test time: an issuer's ES256 key and its tokens, client certificates,
//! DPoP keys. Shared by the unit tests (`src/engine_tests.rs` includes this file) and the
//! tests that run the binary.
#![allow(dead_code, unreachable_pub)]
// Signing as an authorization server with jsonwebtoken's process-wide provider, installed
// first (`init`): with both backends in the graph (`--workspace --all-features`) its own pick
// would panic. As in certbound's tests.
#![allow(clippy::disallowed_methods)]

use std::time::{SystemTime, UNIX_EPOCH};

use certbound::{CertThumbprint, DpopKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The `iss` of every test token.
pub const ISSUER: &str = "https://as.example.com";
/// The `aud` of every test token.
pub const AUDIENCE: &str = "https://api.example.com";

/// Installs jsonwebtoken's aws-lc-rs provider once.
pub fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // Err: another one was installed first; fine.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
    });
}

/// An issuer's signing key.
pub struct Issuer {
    key: rcgen::KeyPair,
}

impl Issuer {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ES256 key");
        Self { key }
    }

    /// The public key, PEM (SPKI).
    pub fn public_pem(&self) -> String {
        self.key.public_key_pem()
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> Value {
        // The SPKI of a P-256 key ends with the uncompressed point 04 || x || y.
        let spki = rcgen::PublicKeyData::der_bytes(&self.key);
        let point = &spki[spki.len() - 64..];
        let b64 = |bytes: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
            "x": b64(&point[..32]), "y": b64(&point[32..]),
        }]})
    }

    /// A signed token with `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".to_owned());
        header.typ = Some("at+jwt".to_owned());
        init();
        let key = EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).expect("EC key");
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    /// A token with `scope`, bound as `cnf` says.
    pub fn token(&self, scope: &str, cnf: Value) -> String {
        self.sign(&claims(scope, cnf))
    }
}

/// Valid claims with `scope` and `cnf` (`Value::Null`: none).
pub fn claims(scope: &str, cnf: Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "client-a",
        "scope": scope, "iat": now - 10, "nbf": now - 10, "exp": now + 300,
        "jti": format!("{now}-{}", rand_suffix()),
    });
    if !cnf.is_null() {
        claims["cnf"] = cnf;
    }
    claims
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A self-signed client certificate: (DER, PEM).
pub fn client_certificate(name: &str) -> (Vec<u8>, String) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("certificate");
    (cert.cert.der().to_vec(), cert.cert.pem())
}

/// `cnf` binding to the certificate `der`.
pub fn cnf_certificate(der: &[u8]) -> Value {
    json!({ "x5t#S256": CertThumbprint::from_der(der).to_string() })
}

/// `cnf` binding to the DPoP key.
pub fn cnf_dpop(key: &DpopKey) -> Value {
    json!({ "jkt": key.thumbprint().to_string() })
}

/// A fresh DPoP key.
pub fn dpop_key() -> DpopKey {
    DpopKey::generate(Algorithm::ES256).expect("DPoP key")
}

/// A proof for `method` `url` and `token`, with `nonce` when given.
pub fn proof(key: &DpopKey, method: &str, url: &str, token: &str, nonce: Option<&str>) -> String {
    let mut proof = key.proof(method, url).access_token(token);
    if let Some(nonce) = nonce {
        proof = proof.nonce(nonce);
    }
    proof.sign().expect("proof")
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "certbound-authz-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temporary directory");
        Self(path)
    }

    /// Writes `contents` to `name` in the directory; its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 it signed:
/// (CA PEM, server chain DER, server key PKCS#8 DER).
pub fn server_pki() -> (String, Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "certbound-authz test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    let leaf = params.signed_by(&key, &issuer).expect("server certificate");
    (ca.pem(), leaf.der().to_vec(), key.serialize_der())
}
