//! [`ClientCertificate`]: the TLS client certificate of the connection a request came in on, and
//! how it reaches the request.
//!
//! certbound's own acceptor ([`serve`](crate::serve)) computes the certificate's thumbprint once
//! per connection and inserts a [`TlsConnectInfo`] into every request's extensions. Other
//! sources can insert a [`ClientCertificate`] directly (a test, or an adapter for another
//! server); with the `axum-server` feature, axum-server's `TlsInfo` is read as well, and with the
//! `tonic` feature, tonic's `TlsConnectInfo`.
//!
//! Where the certificate comes from, the first present wins:
//! 1. a [`ForwardedClientCertificate`] extension: what a trusted TLS-terminating proxy said,
//!    set by [`ForwardedCertLayer`](crate::ForwardedCertLayer); when present it is the only
//!    source (the connection's own certificate is then the proxy's, never the client's);
//! 2. a [`ClientCertificate`] extension;
//! 3. a [`TlsConnectInfo`] extension (certbound's acceptors);
//! 4. axum-server's `Arc<TlsInfo>` (feature `axum-server`);
//! 5. tonic's `TlsConnectInfo<TcpConnectInfo>` (feature `tonic`; see [`crate::tonic`]).
//!
//! When none of them is present the server is misconfigured (it is not serving through a TLS
//! source certbound knows), and the layer answers `500` rather than blaming the client.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::Extensions;
use rustls_pki_types::CertificateDer;

use crate::thumbprint::CertThumbprint;
use crate::token::cache::{KeyMemo, TokenKey};

pub(crate) mod serve;

/// A client certificate chain presented in a TLS handshake, with its leaf's thumbprint.
///
/// Cheap to clone (reference counted). The thumbprint is computed when the value is created, so
/// creating it once per connection makes the binding check free per request. Clones share a
/// memo of the last bearer token's cache key, so that the same token presented again on the
/// connection is not hashed again (see [`PresentedToken`](crate::token::PresentedToken)).
#[derive(Clone)]
pub struct ClientCertificate(Arc<Inner>);

struct Inner {
    /// Leaf first; empty when only the thumbprint is known.
    chain: Vec<CertificateDer<'static>>,
    thumbprint: CertThumbprint,
    /// The last token presented with this certificate and its cache key.
    memo: KeyMemo,
}

impl ClientCertificate {
    /// Builds from the chain as presented (leaf first). `None` for an empty chain.
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Option<Self> {
        let thumbprint = CertThumbprint::from_der(chain.first()?.as_ref());
        Some(Self::with(chain, thumbprint))
    }

    /// Builds from a single DER leaf certificate.
    pub fn from_der(leaf: impl Into<Vec<u8>>) -> Self {
        let leaf = CertificateDer::from(leaf.into());
        let thumbprint = CertThumbprint::from_der(leaf.as_ref());
        Self::with(vec![leaf], thumbprint)
    }

    /// Builds from the leaf's thumbprint alone, for sources that forward only a hash of the
    /// certificate (Envoy's `x-forwarded-client-cert` with `Hash=` and no `Cert=`). Enough for
    /// the binding check; [`leaf`](Self::leaf) is then `None` and [`chain`](Self::chain) empty.
    pub fn from_thumbprint(thumbprint: CertThumbprint) -> Self {
        Self::with(Vec::new(), thumbprint)
    }

    fn with(chain: Vec<CertificateDer<'static>>, thumbprint: CertThumbprint) -> Self {
        Self(Arc::new(Inner {
            chain,
            thumbprint,
            memo: KeyMemo::default(),
        }))
    }

    /// The leaf (end-entity) certificate, DER; `None` when only its thumbprint is known
    /// ([`from_thumbprint`](Self::from_thumbprint)).
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.0.chain.first()
    }

    /// The whole chain as presented, leaf first (empty when only the thumbprint is known).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.0.chain
    }

    /// The leaf's `x5t#S256` thumbprint.
    pub fn thumbprint(&self) -> &CertThumbprint {
        &self.0.thumbprint
    }

    /// The cache key of a token presented with this certificate (memoized, see above).
    pub(crate) fn token_key(&self, token: &str) -> TokenKey {
        self.0.memo.key(token)
    }

    /// The last token presented with this certificate and its cache key, if `token` is it (it
    /// was checked to be a b64token then).
    pub(crate) fn recall_token(&self, token: &[u8]) -> Option<(Arc<str>, TokenKey)> {
        self.0.memo.recall(token)
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.0.thumbprint)
            .field("chain_len", &self.0.chain.len())
            .finish()
    }
}

/// Facts about the TLS connection a request arrived on, inserted into every request's
/// extensions by certbound's acceptor.
#[derive(Clone, Debug)]
pub struct TlsConnectInfo {
    remote_addr: SocketAddr,
    client_certificate: Option<ClientCertificate>,
}

impl TlsConnectInfo {
    /// Connection facts, as an acceptor would record them.
    pub fn new(remote_addr: SocketAddr, client_certificate: Option<ClientCertificate>) -> Self {
        Self {
            remote_addr,
            client_certificate,
        }
    }

    /// The TCP peer address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The client certificate, if the client presented one.
    pub fn client_certificate(&self) -> Option<&ClientCertificate> {
        self.client_certificate.as_ref()
    }
}

/// The client certificate a trusted TLS-terminating proxy forwarded for this request, or `None`
/// when it forwarded none or an unusable one. Inserted by
/// [`ForwardedCertLayer`](crate::ForwardedCertLayer) for requests from trusted proxies only;
/// when present, the layer uses it and nothing else.
#[derive(Clone, Debug)]
pub struct ForwardedClientCertificate(pub(crate) Option<ClientCertificate>);

impl ForwardedClientCertificate {
    /// The forwarded certificate, if the proxy forwarded a usable one.
    pub fn client_certificate(&self) -> Option<&ClientCertificate> {
        self.0.as_ref()
    }
}

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

/// Finds the client certificate in `extensions` (see the [module docs](self) for the order).
pub(crate) fn lookup(extensions: &Extensions) -> CertificateLookup {
    if let Some(forwarded) = extensions.get::<ForwardedClientCertificate>() {
        return match &forwarded.0 {
            Some(cert) => CertificateLookup::Present(cert.clone()),
            None => CertificateLookup::Absent,
        };
    }
    if let Some(cert) = extensions.get::<ClientCertificate>() {
        return CertificateLookup::Present(cert.clone());
    }
    if let Some(info) = extensions.get::<TlsConnectInfo>() {
        return match &info.client_certificate {
            Some(cert) => CertificateLookup::Present(cert.clone()),
            None => CertificateLookup::Absent,
        };
    }
    #[cfg(feature = "axum-server")]
    if let Some(info) = extensions.get::<Arc<axum_server::tls::TlsInfo>>() {
        // axum-server keeps the raw chain; the thumbprint is computed here, per request
        // (one SHA-256 over about a kilobyte). certbound's own acceptor does it per connection.
        let chain = info
            .peer_certificates
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        return match ClientCertificate::from_chain(chain) {
            Some(cert) => CertificateLookup::Present(cert),
            None => CertificateLookup::Absent,
        };
    }
    #[cfg(feature = "tonic")]
    if let Some(found) = crate::tonic::lookup(extensions) {
        return found;
    }
    CertificateLookup::NoSource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_certificate_extension_wins() {
        let mut ext = Extensions::new();
        ext.insert(TlsConnectInfo::new(([127, 0, 0, 1], 1).into(), None));
        assert!(matches!(lookup(&ext), CertificateLookup::Absent));
        ext.insert(ClientCertificate::from_der(b"leaf".to_vec()));
        assert!(matches!(lookup(&ext), CertificateLookup::Present(_)));
    }

    #[test]
    fn a_forwarded_certificate_is_the_only_source_when_present() {
        let mut ext = Extensions::new();
        let proxy = ClientCertificate::from_der(b"proxy".to_vec());
        ext.insert(TlsConnectInfo::new(([127, 0, 0, 1], 1).into(), Some(proxy)));
        ext.insert(ClientCertificate::from_der(b"other".to_vec()));
        ext.insert(ForwardedClientCertificate(None));
        assert!(matches!(lookup(&ext), CertificateLookup::Absent));
        let client = ClientCertificate::from_der(b"client".to_vec());
        ext.insert(ForwardedClientCertificate(Some(client.clone())));
        match lookup(&ext) {
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
            lookup(&Extensions::new()),
            CertificateLookup::NoSource
        ));
    }

    #[test]
    fn empty_chain_is_no_certificate() {
        assert!(ClientCertificate::from_chain(Vec::new()).is_none());
    }
}
