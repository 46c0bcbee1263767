//! [`ForwardedCertLayer`] and its service [`ForwardedCert`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::format::ForwardedCertFormat;
use super::trust::IpRange;
use crate::certificate::{ConnectionInfo, ForwardedClientCertificate};
use crate::error::ConfigError;
use crate::thumbprint::CertThumbprint;

/// Header names that carry forwarded client certificates in common deployments. All of them
/// are removed from every request, so that the inner service never sees one that was not
/// vetted, and one of them next to the configured header is a conflict.
const KNOWN_HEADERS: [&str; 5] = [
    "client-cert",
    "client-cert-chain",
    "x-forwarded-client-cert",
    "x-ssl-client-cert",
    "ssl-client-cert",
];

/// Takes the client certificate from a header set by a trusted TLS-terminating proxy (see the
/// [module docs](super)).
#[derive(Clone)]
pub struct ForwardedCertLayer {
    config: Arc<Config>,
}

struct Config {
    format: ForwardedCertFormat,
    header: HeaderName,
    /// RFC 9440 `Client-Cert-Chain`.
    chain_header: Option<HeaderName>,
    ranges: Vec<IpRange>,
    proxy_certificates: Vec<CertThumbprint>,
}

impl ForwardedCertLayer {
    /// A layer reading `format` from its usual header ([`ForwardedCertFormat::default_header`]).
    /// It trusts no proxy until told to ([`trust_proxy`](Self::trust_proxy),
    /// [`trust_proxy_certificate`](Self::trust_proxy_certificate)); until then every forwarded
    /// certificate header is removed and ignored.
    pub fn new(format: ForwardedCertFormat) -> Self {
        let chain_header = match format {
            ForwardedCertFormat::Rfc9440 => Some(HeaderName::from_static("client-cert-chain")),
            _ => None,
        };
        Self {
            config: Arc::new(Config {
                format,
                header: HeaderName::from_static(format.default_header()),
                chain_header,
                ranges: Vec::new(),
                proxy_certificates: Vec::new(),
            }),
        }
    }

    /// Reads the certificate from header `name` instead. Names are matched exactly as given
    /// (ASCII case aside): `x_ssl_client_cert` is another header than `x-ssl-client-cert`.
    ///
    /// # Errors
    /// When `name` is not a valid header name.
    pub fn header(mut self, name: &str) -> Result<Self, ConfigError> {
        let name = HeaderName::try_from(name).map_err(|_| {
            ConfigError::invalid("header", format!("{name:?} is not a header name"))
        })?;
        self.config_mut().header = name;
        Ok(self)
    }

    /// Trusts peers in `range` (the proxy's address as the TCP connection shows it).
    pub fn trust_proxy(mut self, range: IpRange) -> Self {
        self.config_mut().ranges.push(range);
        self
    }

    /// Trusts a proxy that connects with mutual TLS and presents the certificate with this
    /// thumbprint (its own identity, not a client's). The handshake proves the proxy holds the
    /// certificate's key, so the TLS layer may accept any client certificate.
    pub fn trust_proxy_certificate(mut self, thumbprint: CertThumbprint) -> Self {
        self.config_mut().proxy_certificates.push(thumbprint);
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        // Cloned only while building, before the layer is shared.
        Arc::make_mut(&mut self.config)
    }
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Self {
            format: self.format,
            header: self.header.clone(),
            chain_header: self.chain_header.clone(),
            ranges: self.ranges.clone(),
            proxy_certificates: self.proxy_certificates.clone(),
        }
    }
}

impl fmt::Debug for ForwardedCertLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("ForwardedCertLayer")
            .field("format", &c.format)
            .field("header", &c.header)
            .field("trusted_ranges", &c.ranges)
            .field("trusted_proxy_certificates", &c.proxy_certificates.len())
            .finish()
    }
}

impl<S> Layer<S> for ForwardedCertLayer {
    type Service = ForwardedCert<S>;

    fn layer(&self, inner: S) -> ForwardedCert<S> {
        ForwardedCert {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`ForwardedCertLayer`].
#[derive(Clone)]
pub struct ForwardedCert<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for ForwardedCert<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardedCert")
            .field("format", &self.config.format)
            .field("header", &self.config.header)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for ForwardedCert<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        if let Some(forwarded) = self.config.examine(&mut request) {
            request.extensions_mut().insert(forwarded);
        }
        self.inner.call(request)
    }
}

impl Config {
    /// Removes every forwarded-certificate header from `request`, and for a trusted peer says
    /// what its header means.
    fn examine<B>(&self, request: &mut Request<B>) -> Option<ForwardedClientCertificate> {
        let trusted = self.trusts(request);
        let already = request
            .extensions()
            .get::<ForwardedClientCertificate>()
            .is_some();
        let headers = request.headers_mut();
        let values = take(headers, &self.header);
        let chain = match &self.chain_header {
            Some(name) => take(headers, name),
            None => Vec::new(),
        };
        let mut other_sources = false;
        for name in KNOWN_HEADERS {
            other_sources |= headers.remove(name).is_some();
        }
        if !trusted {
            if !values.is_empty() || !chain.is_empty() || other_sources {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", header = %self.header, "forwarded client certificate header from an untrusted peer removed and ignored");
            }
            return None;
        }
        let parsed = if already {
            Err("a certificate was already forwarded by another layer")
        } else if other_sources {
            Err("another forwarded-certificate header next to the configured one")
        } else {
            match (values.as_slice(), chain.as_slice()) {
                ([], []) => Ok(None),
                ([], _) => Err("a chain header without the certificate header"),
                ([value], []) => self.format.parse(value.as_bytes(), None),
                ([value], [chain]) => self.format.parse(value.as_bytes(), Some(chain.as_bytes())),
                ([_], _) => Err("the chain header given more than once"),
                _ => Err("the certificate header given more than once"),
            }
        };
        let certificate = parsed.unwrap_or_else(|_reason| {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", header = %self.header, reason = _reason, "forwarded client certificate unusable; treated as none");
            None
        });
        Some(ForwardedClientCertificate(certificate))
    }

    /// Whether the connection's peer is a trusted proxy, by its address or by the certificate
    /// it presented on its own TLS connection.
    fn trusts<B>(&self, request: &Request<B>) -> bool {
        let Some(info) = request.extensions().get::<ConnectionInfo>() else {
            return false;
        };
        let addr = info.remote_addr().ip();
        if self.ranges.iter().any(|range| range.contains(addr)) {
            return true;
        }
        info.client_certificate().is_some_and(|cert| {
            // Constant-time comparisons, and no early exit on the first match.
            self.proxy_certificates
                .iter()
                .fold(false, |found, trusted| {
                    found | (trusted == cert.thumbprint())
                })
        })
    }
}

/// Removes all lines of header `name`, returning them.
fn take(headers: &mut HeaderMap, name: &HeaderName) -> Vec<HeaderValue> {
    match headers.entry(name) {
        http::header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{lookup, CertificateLookup, ClientCertificate};
    use crate::forwarded::format::ForwardedCertFormat as Format;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use tower::ServiceExt as _;

    fn der() -> Vec<u8> {
        crate::test_helpers::self_signed_certificate("client")
            .der()
            .to_vec()
    }

    /// What the inner service saw: the certificate lookup and the remaining headers.
    async fn seen(
        layer: ForwardedCertLayer,
        request: Request<()>,
    ) -> (CertificateLookup, HeaderMap) {
        layer
            .layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>((lookup(req.extensions()).certificate, req.headers().clone()))
            }))
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {})
    }

    fn request(
        peer: &str,
        own: Option<ClientCertificate>,
        headers: &[(&str, &str)],
    ) -> Request<()> {
        let addr: SocketAddr = peer.parse().unwrap();
        let mut builder = Request::builder().extension(ConnectionInfo::new(addr, own));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn haproxy_layer() -> ForwardedCertLayer {
        ForwardedCertLayer::new(Format::Haproxy).trust_proxy("10.1.0.0/16".parse().unwrap())
    }

    #[tokio::test]
    async fn a_trusted_proxy_header_becomes_the_certificate_and_is_removed() {
        let der = der();
        let value = STANDARD.encode(&der);
        let (found, headers) = seen(
            haproxy_layer(),
            request("10.1.2.3:5000", None, &[("x-ssl-client-cert", &value)]),
        )
        .await;
        match found {
            CertificateLookup::Present(cert) => {
                assert_eq!(
                    cert.thumbprint(),
                    ClientCertificate::from_der(der).thumbprint()
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(headers.get("x-ssl-client-cert").is_none());
    }

    #[tokio::test]
    async fn headers_from_untrusted_peers_are_removed_and_ignored() {
        let own = ClientCertificate::from_der(der());
        let forged = STANDARD.encode(der());
        let (found, headers) = seen(
            haproxy_layer(),
            request(
                "10.2.0.1:5000",
                Some(own.clone()),
                &[
                    ("x-ssl-client-cert", &forged),
                    ("client-cert", ":AAAA:"),
                    ("x-forwarded-client-cert", "Hash=00"),
                ],
            ),
        )
        .await;
        // A direct client keeps its own TLS certificate.
        match found {
            CertificateLookup::Present(cert) => assert_eq!(cert.thumbprint(), own.thumbprint()),
            other => panic!("{other:?}"),
        }
        assert!(headers.is_empty(), "{headers:?}");
        // No peer address known at all: nobody is trusted.
        let (found, _) = seen(
            haproxy_layer(),
            Request::builder()
                .header("x-ssl-client-cert", forged)
                .body(())
                .unwrap(),
        )
        .await;
        assert!(matches!(found, CertificateLookup::NoSource));
    }

    #[tokio::test]
    async fn a_trusted_proxy_without_header_means_no_certificate_not_its_own() {
        let proxy_cert = ClientCertificate::from_der(der());
        let (found, _) = seen(
            haproxy_layer(),
            request("10.1.0.9:1", Some(proxy_cert), &[]),
        )
        .await;
        assert!(matches!(found, CertificateLookup::Absent));
    }

    #[tokio::test]
    async fn a_proxy_can_be_trusted_by_its_own_certificate() {
        let proxy_cert = ClientCertificate::from_der(der());
        let layer = ForwardedCertLayer::new(Format::Haproxy)
            .trust_proxy_certificate(*proxy_cert.thumbprint());
        let client = der();
        let value = STANDARD.encode(&client);
        let (found, _) = seen(
            layer.clone(),
            request(
                "192.0.2.1:1",
                Some(proxy_cert),
                &[("x-ssl-client-cert", &value)],
            ),
        )
        .await;
        assert!(
            matches!(found, CertificateLookup::Present(c) if c.thumbprint() == ClientCertificate::from_der(client).thumbprint())
        );
        // Another certificate on the connection: not the proxy, header ignored.
        let stranger = ClientCertificate::from_der(der());
        let (found, _) = seen(
            layer,
            request(
                "192.0.2.1:1",
                Some(stranger.clone()),
                &[("x-ssl-client-cert", &value)],
            ),
        )
        .await;
        assert!(
            matches!(found, CertificateLookup::Present(c) if c.thumbprint() == stranger.thumbprint())
        );
    }

    #[tokio::test]
    async fn duplicates_conflicts_and_garbage_from_a_trusted_proxy_mean_no_certificate() {
        let value = STANDARD.encode(der());
        let cases: [&[(&str, &str)]; 4] = [
            &[("x-ssl-client-cert", &value), ("x-ssl-client-cert", &value)],
            &[("x-ssl-client-cert", &value), ("client-cert", ":AAAA:")],
            &[("x-ssl-client-cert", "")],
            &[("x-ssl-client-cert", "bm90IGEgY2VydGlmaWNhdGU=")],
        ];
        for headers in cases {
            let (found, remaining) =
                seen(haproxy_layer(), request("10.1.0.1:1", None, headers)).await;
            assert!(matches!(found, CertificateLookup::Absent), "{headers:?}");
            assert!(remaining.is_empty());
        }
        // Two forwarding layers on one service: the inner one sees a certificate already
        // forwarded, a conflict. (One ForwardedCertLayer per service.)
        let twice = haproxy_layer().layer(
            haproxy_layer().layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(lookup(req.extensions()).certificate)
            })),
        );
        let found = twice
            .oneshot(request(
                "10.1.0.1:1",
                None,
                &[("x-ssl-client-cert", &value)],
            ))
            .await
            .unwrap_or_else(|never| match never {});
        assert!(matches!(found, CertificateLookup::Absent));
    }

    #[tokio::test]
    async fn header_names_are_matched_exactly_as_configured() {
        let value = STANDARD.encode(der());
        let layer = haproxy_layer().header("x_ssl_client_cert").unwrap();
        let (found, remaining) = seen(
            layer,
            request("10.1.0.1:1", None, &[("x-ssl-client-cert", &value)]),
        )
        .await;
        // The dashed header is not the configured one: a conflicting second source, removed.
        assert!(matches!(found, CertificateLookup::Absent));
        assert!(remaining.is_empty());
        assert!(ForwardedCertLayer::new(Format::Nginx)
            .header("bad header")
            .is_err());
    }
}
