//! Shared support for the integration tests.
//!
//! Everything (CA, certificates, signing keys, tokens) is generated at test time; nothing is
//! committed.
//!
//! The x5t#S256 thumbprint computed here ([`ClientIdentity::x5t_s256`]) deliberately does not call
//! any `certbound` API: it is the independent oracle the library is checked against.

mod alone;
mod client;
mod dpop;
mod example;
mod grpc;
mod https_server;
mod introspection_server;
mod jwks_server;
mod keys;
mod misbehaving;
mod pki;
mod proxy;
#[cfg(feature = "redis")]
mod redis_server;
mod rotation;
mod server;
mod tokens;

use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub use alone::runs_alone;
pub use client::{https_client, https_client_http1};
pub use dpop::{ath, claims_dpop_bound, dpop_headers, proof_claims, ProofKey};
pub use example::{build_example, run_to_exit, ExampleProcess, ScratchDir};
pub use grpc::{grpc_challenge, grpc_channel, with_token};
pub use https_server::{HttpsServer, PresentedCertificate};
pub use introspection_server::{
    Behaviour, Introspection, IntrospectionServer, INTROSPECT_PATH, MTLS_INTROSPECT_PATH,
};
pub use jwks_server::{JwksServer, AS_METADATA_PATH, JWKS_PATH, OIDC_CONFIG_PATH};
pub use keys::{jwks, TestKey};
pub use misbehaving::{
    Fault, MisbehavingServer, MISBEHAVING_INTROSPECT_PATH, MISBEHAVING_JWKS_PATH,
};
pub use pki::{ClientIdentity, Pki};
pub use proxy::{free_port, Proxy, ProxyKind, PROXY_SOURCE};
#[cfg(feature = "redis")]
pub use redis_server::RedisServer;
#[cfg(unix)]
pub use rotation::KubeSecretDir;
pub use rotation::{
    expect_refused, expect_served, raw_tls_client, replace_atomically, scratch, HeldConnection,
};
pub use server::*;
pub use tokens::{
    alg_none_token, claims_bound_to, claims_unbound, hs256_token, tamper_payload, AUDIENCE, ISSUER,
};

/// One-time process setup: installs jsonwebtoken's aws-lc-rs crypto provider.
///
/// Called by every constructor in this module; safe to call any number of times.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Err means another provider was installed first (e.g. by the library); that is fine.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
    });
}

/// The rustls crypto provider every helper passes explicitly (never the process default).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Current time in unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs()
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
