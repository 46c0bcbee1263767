//! [`ClientCertificate`] and [`ConnectionInfo`]: the TLS client certificate of the connection a
//! request came in on, and how it reaches the request (documented on [`ClientCertificate`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::support::slot::Slot;
use crate::support::token_key::KeyMemo;
use crate::thumbprint::CertThumbprint;

mod source;
pub(crate) use source::{lookup, CertificateLookup};

/// A client certificate chain presented in a TLS handshake, with its leaf's thumbprint.
///
/// Cheap to clone (reference counted). The thumbprint is computed when the value is created, so
/// creating it once per connection makes the binding check free per request. A plain value:
/// equal chains make equal certificates, and nothing about a request is kept in it.
///
/// # Where it comes from
/// certbound's own acceptor ([`serve`](crate::serve)) computes the certificate's thumbprint once
/// per connection and inserts a [`ConnectionInfo`] into every request's extensions. Other
/// sources can insert a [`ClientCertificate`] directly (a test, or an adapter for another
/// server); with the `axum-server` feature, axum-server's `TlsInfo` is read as well, and with the
/// `tonic` feature, tonic's `TlsConnectInfo`.
///
/// Where the certificate comes from, the first present wins:
/// 1. a [`ForwardedClientCertificate`](crate::forwarded::ForwardedClientCertificate) extension: what a trusted TLS-terminating proxy said,
///    set by [`ForwardedCertLayer`](crate::ForwardedCertLayer) (see
///    [`forwarded`](crate::forwarded)); when present it is the only
///    source (the connection's own certificate is then the proxy's, never the client's);
/// 2. a [`ClientCertificate`] extension;
/// 3. a [`ConnectionInfo`] extension (certbound's acceptors);
/// 4. axum-server's `Arc<TlsInfo>` (feature `axum-server`);
/// 5. tonic's `TlsConnectInfo<TcpConnectInfo>` (feature `tonic`; see [`crate::tonic`]).
///
/// When none of them is present the server is misconfigured (it is not serving through a TLS
/// source certbound knows), and the layer answers `500` rather than blaming the client.
///
/// # Example: a certificate inserted by hand
/// Tests, and adapters for servers certbound does not know, insert a [`ClientCertificate`]
/// (or a [`ConnectionInfo`], as the acceptor does) into the request's extensions: the
/// equivalent of axum's `MockConnectInfo`.
/// ```
/// use certbound::{BoundTokenLayer, ClientCertificate, ConnectionInfo, JwtValidator};
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
/// let validator = JwtValidator::builder("https://as.example", "https://api.example")
///     .jwks_json(jwks)
///     .build()?;
/// let service = ServiceBuilder::new()
///     .layer(BoundTokenLayer::new(validator))
///     .service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
///     });
///
/// // No certificate source at all: the server is misconfigured, not the client.
/// let response = service.clone().oneshot(Request::new(())).await?;
/// assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
///
/// // A connection without a client certificate: a bound token cannot be used on it.
/// let mut request = Request::new(());
/// request.extensions_mut().insert(ConnectionInfo::new(([192, 0, 2, 1], 50000).into(), None));
/// request.headers_mut().insert("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln".parse()?);
/// let response = service.clone().oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
///
/// // A certificate inserted by hand, and no token.
/// let certificate = ClientCertificate::from_der(b"client certificate".to_vec());
/// assert_eq!(certificate.thumbprint().to_string().len(), 43);
/// let mut request = Request::new(());
/// request.extensions_mut().insert(certificate);
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(response.headers()["www-authenticate"], "Bearer");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCertificate(Arc<Inner>);

struct Inner {
    /// Leaf first; empty when only the thumbprint is known.
    chain: Vec<CertificateDer<'static>>,
    thumbprint: CertThumbprint,
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
        Self(Arc::new(Inner { chain, thumbprint }))
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
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.0.thumbprint)
            .field("chain_len", &self.0.chain.len())
            .finish()
    }
}

/// Facts about the connection a request arrived on, inserted into every request's extensions
/// by certbound's acceptors ([`serve`](crate::serve), [`serve_plain`](crate::serve_plain)).
///
/// Beside the certificate it carries per-connection state of the layer: a memo of the last
/// access token presented on the connection and its cache key, so that the same token again
/// on a keep-alive connection is neither scanned nor hashed again (see
/// [`PresentedToken`](crate::token::PresentedToken)). Clones share it; `Debug` shows none of it.
#[derive(Clone)]
pub struct ConnectionInfo(Arc<Connection>);

/// One allocation per connection, so that a request's copy costs one reference count.
struct Connection {
    remote_addr: SocketAddr,
    client_certificate: Option<ClientCertificate>,
    memo: KeyMemo,
    /// The key of the connection's last DPoP proof that verified, and what was derived from it.
    proof_keys: Slot,
    tls: bool,
}

impl fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("remote_addr", &self.0.remote_addr)
            .field("client_certificate", &self.0.client_certificate)
            .field("tls", &self.0.tls)
            .finish_non_exhaustive()
    }
}

impl ConnectionInfo {
    /// Connection facts of a TLS connection, as an acceptor would record them.
    pub fn new(remote_addr: SocketAddr, client_certificate: Option<ClientCertificate>) -> Self {
        Self(Arc::new(Connection {
            remote_addr,
            client_certificate,
            memo: KeyMemo::default(),
            proof_keys: Slot::default(),
            tls: true,
        }))
    }

    /// Connection facts of a plain-TCP connection (behind a TLS-terminating proxy, say).
    pub fn plain(remote_addr: SocketAddr) -> Self {
        Self(Arc::new(Connection {
            remote_addr,
            client_certificate: None,
            memo: KeyMemo::default(),
            proof_keys: Slot::default(),
            tls: false,
        }))
    }

    /// Whether the connection is TLS: the scheme of its requests' URLs (`https` or `http`),
    /// which DPoP proofs sign.
    pub fn is_tls(&self) -> bool {
        self.0.tls
    }

    /// The TCP peer address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.0.remote_addr
    }

    /// The client certificate, if the client presented one.
    pub fn client_certificate(&self) -> Option<&ClientCertificate> {
        self.0.client_certificate.as_ref()
    }

    /// The connection's token memo.
    pub(crate) fn memo(&self) -> &KeyMemo {
        &self.0.memo
    }

    /// The connection's DPoP proof-key memo (`dpop::key_memo`).
    pub(crate) fn proof_keys(&self) -> &Slot {
        &self.0.proof_keys
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
