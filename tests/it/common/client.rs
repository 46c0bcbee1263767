//! reqwest clients with an explicit rustls configuration.

use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::{init, provider, ClientIdentity};

fn client(
    trust: &CertificateDer<'static>,
    identity: Option<&ClientIdentity>,
    alpn: &[&[u8]],
) -> reqwest::Client {
    init();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).expect("add trust anchor");
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key())
            .expect("client auth cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .no_proxy();
    if alpn == [b"http/1.1".as_slice()] {
        builder = builder.http1_only();
    }
    builder.build().expect("build reqwest client")
}

/// An HTTPS client trusting only `trust`, presenting `identity` if given, offering ALPN
/// `h2` and `http/1.1`. No redirects, 10 s timeout, no proxy.
pub fn https_client(
    trust: &CertificateDer<'static>,
    identity: Option<&ClientIdentity>,
) -> reqwest::Client {
    client(trust, identity, &[b"h2", b"http/1.1"])
}

/// Like [`https_client`], but HTTP/1.1 only (ALPN `http/1.1`).
pub fn https_client_http1(
    trust: &CertificateDer<'static>,
    identity: Option<&ClientIdentity>,
) -> reqwest::Client {
    client(trust, identity, &[b"http/1.1"])
}
