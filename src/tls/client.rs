//! The rustls client configuration of certbound's outgoing HTTPS.

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ConfigError;
use crate::support::crypto::rustls_provider;

/// A rustls client configuration for outgoing HTTPS (JWKS, discovery, introspection): the
/// Mozilla roots of `webpki-roots` (unless `public_roots` is off) plus `extra_roots`, with
/// certbound's crypto provider, presenting `identity` (chain, key) when the server asks for a
/// client certificate (mutual TLS to an authorization server, RFC 8705 §2).
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    public_roots: bool,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    if public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for root in extra_roots {
        roots.add(root.clone())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(rustls_provider()?)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
