//! tonic client helpers: an mTLS channel, bearer metadata, the challenge of a status.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Request, Status};

use super::ClientIdentity;

/// A tonic channel to `https://addr` over mTLS: trusts the CA in `ca_pem`, presents `identity`,
/// expects the server name `localhost`. Requests time out after 20 s.
pub async fn grpc_channel(addr: SocketAddr, ca_pem: &str, identity: &ClientIdentity) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .domain_name("localhost");
    Channel::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("client TLS config")
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e:?}"))
}

/// `message` with `authorization: Bearer <token>` metadata.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata value"),
    );
    request
}

/// The status's `www-authenticate` metadata; panics without one.
pub fn grpc_challenge(status: &Status) -> String {
    status
        .metadata()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("no www-authenticate in {status:?}"))
        .to_str()
        .expect("ASCII challenge")
        .to_owned()
}
