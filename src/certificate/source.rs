//! Where a request's client certificate comes from: one adapter per source, tried in the order
//! the [module docs](super) give. Only the trusted-proxy source (a [`ForwardedClientCertificate`]
//! that [`ForwardedCertLayer`](crate::ForwardedCertLayer) inserted after vetting the peer) ever
//! stands for a header; every other source is the TLS connection itself.

use http::Extensions;

use super::{ClientCertificate, ConnectionInfo, ForwardedClientCertificate};
use crate::support::slot::Slot;
use crate::support::token_key::KeyMemo;

/// What the request's extensions say about the client certificate.
#[derive(Debug)]
pub(crate) enum CertificateLookup {
    /// A certificate was presented.
    Present(ClientCertificate),
    /// The connection is known, and no certificate was presented.
    Absent,
    /// No certificate source is configured at all (server misconfigured).
    NoSource,
}

impl CertificateLookup {
    fn of(certificate: Option<ClientCertificate>) -> Self {
        match certificate {
            Some(certificate) => Self::Present(certificate),
            None => Self::Absent,
        }
    }
}

/// The client certificate of a request and the per-connection memo found beside it.
#[derive(Debug)]
pub(crate) struct Peer<'a> {
    /// The certificate, or why there is none.
    pub(crate) certificate: CertificateLookup,
    /// The connection's token memo, when the connection came through certbound's acceptor.
    pub(crate) memo: Option<&'a KeyMemo>,
    /// The connection's DPoP proof-key memo (`dpop::key_memo`), likewise.
    pub(crate) proof_keys: Option<&'a Slot>,
}

/// Finds the client certificate in `extensions` (see the [module docs](super) for the order).
pub(crate) fn lookup(extensions: &Extensions) -> Peer<'_> {
    let connection = extensions.get::<ConnectionInfo>();
    let memo = connection.map(ConnectionInfo::memo);
    let proof_keys = connection.map(ConnectionInfo::proof_keys);
    // The common case: certbound's acceptor, no proxy, nothing inserted by hand. With the
    // connection the only extension, the sources that take precedence cannot be there: their
    // two look-ups are skipped (issue 26: ~80 instructions of a cache hit's ~1 000).
    if let (Some(connection), 1) = (connection, extensions.len()) {
        let certificate = CertificateLookup::of(connection.client_certificate().cloned());
        return Peer {
            certificate,
            memo,
            proof_keys,
        };
    }
    // Precedence: a trusted proxy's word, a hand-inserted certificate, the acceptor's
    // connection, then the framework adapters.
    let certificate = if let Some(found) = forwarded(extensions) {
        found
    } else if let Some(certificate) = extensions.get::<ClientCertificate>() {
        CertificateLookup::Present(certificate.clone())
    } else if let Some(connection) = connection {
        CertificateLookup::of(connection.client_certificate().cloned())
    } else {
        axum_server(extensions)
            .or_else(|| tonic(extensions))
            .unwrap_or(CertificateLookup::NoSource)
    };
    Peer {
        certificate,
        memo,
        proof_keys,
    }
}

/// A trusted proxy's word: when present, the only source (the connection's own certificate is
/// the proxy's, never the client's).
fn forwarded(extensions: &Extensions) -> Option<CertificateLookup> {
    let forwarded = extensions.get::<ForwardedClientCertificate>()?;
    Some(CertificateLookup::of(
        forwarded.client_certificate().cloned(),
    ))
}

/// axum-server's `TlsInfo` (feature `axum-server`). axum-server keeps the raw chain, so the
/// thumbprint is computed here, per request; certbound's own acceptor does it per connection.
#[cfg(feature = "axum-server")]
fn axum_server(extensions: &Extensions) -> Option<CertificateLookup> {
    use rustls_pki_types::CertificateDer;
    let info = extensions.get::<std::sync::Arc<axum_server::tls::TlsInfo>>()?;
    let chain = info
        .peer_certificates
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    Some(CertificateLookup::of(ClientCertificate::from_chain(chain)))
}

#[cfg(not(feature = "axum-server"))]
fn axum_server(_: &Extensions) -> Option<CertificateLookup> {
    None
}

/// tonic's own TLS (feature `tonic`): its `TlsConnectInfo<TcpConnectInfo>`. tonic keeps only the
/// raw chain, so the thumbprint is computed here, per request.
#[cfg(feature = "tonic")]
fn tonic(extensions: &Extensions) -> Option<CertificateLookup> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let info = extensions.get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let chain = info.peer_certs().map(|certs| certs.as_ref().clone());
    Some(CertificateLookup::of(
        chain.and_then(ClientCertificate::from_chain),
    ))
}

#[cfg(not(feature = "tonic"))]
fn tonic(_: &Extensions) -> Option<CertificateLookup> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::ClientCertificate;

    #[test]
    fn a_direct_certificate_extension_wins() {
        let mut ext = Extensions::new();
        ext.insert(ConnectionInfo::new(([127, 0, 0, 1], 1).into(), None));
        assert!(matches!(
            lookup(&ext).certificate,
            CertificateLookup::Absent
        ));
        ext.insert(ClientCertificate::from_der(b"leaf".to_vec()));
        assert!(matches!(
            lookup(&ext).certificate,
            CertificateLookup::Present(_)
        ));
    }

    #[test]
    fn a_forwarded_certificate_is_the_only_source_when_present() {
        let mut ext = Extensions::new();
        let proxy = ClientCertificate::from_der(b"proxy".to_vec());
        ext.insert(ConnectionInfo::new(([127, 0, 0, 1], 1).into(), Some(proxy)));
        ext.insert(ClientCertificate::from_der(b"other".to_vec()));
        ext.insert(ForwardedClientCertificate(None));
        assert!(matches!(
            lookup(&ext).certificate,
            CertificateLookup::Absent
        ));
        let client = ClientCertificate::from_der(b"client".to_vec());
        ext.insert(ForwardedClientCertificate(Some(client.clone())));
        match lookup(&ext).certificate {
            CertificateLookup::Present(found) => {
                assert_eq!(found.thumbprint(), client.thumbprint())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_thumbprint_alone_is_a_certificate_without_der() {
        let tp = *ClientCertificate::from_der(b"x".to_vec()).thumbprint();
        let cert = ClientCertificate::from_thumbprint(tp);
        assert_eq!(cert.thumbprint(), &tp);
        assert!(cert.leaf().is_none());
        assert!(cert.chain().is_empty());
    }

    #[test]
    fn no_source_is_reported_as_such() {
        assert!(matches!(
            lookup(&Extensions::new()).certificate,
            CertificateLookup::NoSource
        ));
    }

    #[test]
    fn empty_chain_is_no_certificate() {
        assert!(ClientCertificate::from_chain(Vec::new()).is_none());
    }

    #[test]
    fn the_connection_memo_is_found_beside_any_certificate_source() {
        let mut ext = Extensions::new();
        assert!(lookup(&ext).memo.is_none());
        ext.insert(ConnectionInfo::new(([127, 0, 0, 1], 1).into(), None));
        ext.insert(ForwardedClientCertificate(None));
        assert!(lookup(&ext).memo.is_some());
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn tonic_connect_info_without_tls_is_no_source() {
        use tonic::transport::server::TcpConnectInfo;
        let mut extensions = Extensions::new();
        extensions.insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: None,
        });
        // Plain TCP connect info is not a TLS source.
        assert!(matches!(
            lookup(&extensions).certificate,
            CertificateLookup::NoSource
        ));
    }
}
