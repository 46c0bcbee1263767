//! [`ForwardedCertLayer`] and its service [`ForwardedCert`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::format::ForwardedCertFormat;
use super::origin::{self, ForwardedOrigin, OriginHeaders};
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

/// Takes the client certificate, and optionally the origin the client used, from headers set
/// by a trusted TLS-terminating proxy (see the [module docs](super)).
#[derive(Clone)]
pub struct ForwardedCertLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    /// `None` for a proxy that forwards no certificate ([`ForwardedCertLayer::origin_only`]).
    certificate: Option<CertificateHeader>,
    /// `None` unless [`ForwardedCertLayer::forwarded_origin`] was called.
    origin: Option<OriginHeaders>,
    ranges: Vec<IpRange>,
    proxy_certificates: Vec<CertThumbprint>,
}

/// Where and how the proxy forwards the client certificate.
#[derive(Clone)]
struct CertificateHeader {
    format: ForwardedCertFormat,
    header: HeaderName,
    /// RFC 9440 `Client-Cert-Chain`.
    chain_header: Option<HeaderName>,
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
        Self::with(Some(CertificateHeader {
            format,
            header: HeaderName::from_static(format.default_header()),
            chain_header,
        }))
    }

    /// A layer for a proxy that forwards the client's origin and no client certificate (DPoP
    /// behind a TLS-terminating proxy, without mutual TLS): like `new(..)` followed by
    /// [`forwarded_origin`](Self::forwarded_origin), except that every
    /// forwarded-certificate header is removed and ignored, from trusted peers too. A request
    /// from a trusted proxy is still marked as having no forwarded certificate, so that
    /// [`BoundTokenLayer`](crate::BoundTokenLayer) never takes the proxy's own TLS certificate
    /// for the client's.
    #[must_use]
    pub fn origin_only(headers: OriginHeaders) -> Self {
        Self::with(None).forwarded_origin(headers)
    }

    fn with(certificate: Option<CertificateHeader>) -> Self {
        Self {
            config: Arc::new(Config {
                certificate,
                origin: None,
                ranges: Vec::new(),
                proxy_certificates: Vec::new(),
            }),
        }
    }

    /// Reads the certificate from header `name` instead. Names are matched exactly as given
    /// (ASCII case aside): `x_ssl_client_cert` is another header than `x-ssl-client-cert`.
    ///
    /// # Errors
    /// When `name` is not a valid header name, or the layer reads no certificate
    /// ([`origin_only`](Self::origin_only)).
    pub fn header(mut self, name: &str) -> Result<Self, ConfigError> {
        let name = HeaderName::try_from(name).map_err(|_| {
            ConfigError::invalid("header", format!("{name:?} is not a header name"))
        })?;
        let Some(certificate) = &mut self.config_mut().certificate else {
            return Err(ConfigError::invalid(
                "header",
                "the layer reads no certificate (ForwardedCertLayer::origin_only)",
            ));
        };
        certificate.header = name;
        Ok(self)
    }

    /// Also takes the scheme and authority the client used from `headers`, for a DPoP proof's
    /// `htu` (see the [module docs](crate::forwarded#the-origin-the-client-used)). For every
    /// request the layer then removes any [`ForwardedOrigin`] already in its extensions; from
    /// an untrusted peer it removes `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`
    /// (both styles, whichever `headers` is); from a trusted one it leaves the headers in place
    /// and, when they are well formed, inserts the [`ForwardedOrigin`] they give.
    ///
    /// Off by default: without it the layer neither reads nor removes these headers.
    #[must_use]
    pub fn forwarded_origin(mut self, headers: OriginHeaders) -> Self {
        self.config_mut().origin = Some(headers);
        self
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

impl fmt::Debug for ForwardedCertLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("ForwardedCertLayer")
            .field("format", &c.format())
            .field("header", &c.header())
            .field("origin", &c.origin)
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
            .field("format", &self.config.format())
            .field("header", &self.config.header())
            .field("origin", &self.config.origin)
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
        let trusted = self.config.trusts(&request);
        if let Some(forwarded) = self.config.examine(&mut request, trusted) {
            request.extensions_mut().insert(forwarded);
        }
        if let Some(headers) = self.config.origin {
            examine_origin(headers, trusted, &mut request);
        }
        self.inner.call(request)
    }
}

impl Config {
    fn format(&self) -> Option<ForwardedCertFormat> {
        self.certificate.as_ref().map(|c| c.format)
    }

    fn header(&self) -> Option<&HeaderName> {
        self.certificate.as_ref().map(|c| &c.header)
    }

    /// Removes every forwarded-certificate header from `request`, and for a trusted peer says
    /// what its header means.
    fn examine<B>(
        &self,
        request: &mut Request<B>,
        trusted: bool,
    ) -> Option<ForwardedClientCertificate> {
        let already = request
            .extensions()
            .get::<ForwardedClientCertificate>()
            .is_some();
        let headers = request.headers_mut();
        let (values, chain) = match &self.certificate {
            Some(certificate) => (
                take(headers, &certificate.header),
                match &certificate.chain_header {
                    Some(name) => take(headers, name),
                    None => Vec::new(),
                },
            ),
            None => (Vec::new(), Vec::new()),
        };
        let mut other_sources = false;
        for name in KNOWN_HEADERS {
            other_sources |= headers.remove(name).is_some();
        }
        if !trusted {
            if !values.is_empty() || !chain.is_empty() || other_sources {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "certbound", header = self.header().map_or("", HeaderName::as_str), "forwarded client certificate header from an untrusted peer removed and ignored");
            }
            return None;
        }
        let parsed = if already {
            Err("a certificate was already forwarded by another layer")
        } else if other_sources {
            Err("another forwarded-certificate header next to the configured one")
        } else {
            match (&self.certificate, values.as_slice(), chain.as_slice()) {
                (None, _, _) | (_, [], []) => Ok(None),
                (_, [], _) => Err("a chain header without the certificate header"),
                (Some(c), [value], []) => c.format.parse(value.as_bytes(), None),
                (Some(c), [value], [chain]) => {
                    c.format.parse(value.as_bytes(), Some(chain.as_bytes()))
                }
                (_, [_], _) => Err("the chain header given more than once"),
                _ => Err("the certificate header given more than once"),
            }
        };
        let certificate = parsed.unwrap_or_else(|_reason| {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", header = self.header().map_or("", HeaderName::as_str), reason = _reason, "forwarded client certificate unusable; treated as none");
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

/// Removes a [`ForwardedOrigin`] already in `request` (only this layer vouches for one), and
/// the origin headers of an untrusted peer; inserts what a trusted peer's headers say.
fn examine_origin<B>(headers: OriginHeaders, trusted: bool, request: &mut Request<B>) {
    request.extensions_mut().remove::<ForwardedOrigin>();
    if !trusted {
        let mut removed = false;
        for name in &origin::HEADERS {
            removed |= request.headers_mut().remove(name).is_some();
        }
        if removed {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", "forwarded origin headers from an untrusted peer removed and ignored");
        }
        return;
    }
    match headers.read(request.uri(), request.headers()) {
        Ok(Some(origin)) => {
            request.extensions_mut().insert(origin);
        }
        Ok(None) => {}
        Err(_reason) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "certbound", headers = %headers, reason = _reason, "forwarded origin unusable; treated as none");
        }
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

    /// What the inner service saw: the origin and the remaining headers.
    async fn origin_seen(
        layer: ForwardedCertLayer,
        request: Request<()>,
    ) -> (Option<ForwardedOrigin>, HeaderMap) {
        layer
            .layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>((
                    req.extensions().get::<ForwardedOrigin>().cloned(),
                    req.headers().clone(),
                ))
            }))
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {})
    }

    fn origin_layer(headers: OriginHeaders) -> ForwardedCertLayer {
        haproxy_layer().forwarded_origin(headers)
    }

    const X_FORWARDED: [(&str, &str); 2] = [
        ("x-forwarded-proto", "HTTPS"),
        ("x-forwarded-host", "API.Example:8443"),
    ];

    #[tokio::test]
    async fn a_trusted_x_forwarded_pair_becomes_the_origin_and_stays() {
        let (origin, headers) = origin_seen(
            origin_layer(OriginHeaders::XForwarded),
            request("10.1.2.3:5000", None, &X_FORWARDED),
        )
        .await;
        let origin = origin.expect("an origin");
        assert_eq!(
            (origin.scheme(), origin.authority()),
            ("https", "api.example:8443")
        );
        assert_eq!(headers["x-forwarded-host"], "API.Example:8443");
    }

    #[tokio::test]
    async fn a_trusted_forwarded_header_gives_its_last_element() {
        let (origin, _) = origin_seen(
            origin_layer(OriginHeaders::Forwarded),
            request(
                "10.1.2.3:5000",
                None,
                &[
                    ("forwarded", "proto=http;host=\"evil.example\""),
                    (
                        "forwarded",
                        "for=192.0.2.1;proto=http;host=evil.example, for=\"[2001:db8::17]:4711\";PROTO=\"https\";Host=\"[2001:DB8::1]:443\"",
                    ),
                    // The other style is not this layer's source: ignored.
                    ("x-forwarded-host", "evil.example"),
                ],
            ),
        )
        .await;
        assert_eq!(
            origin.expect("an origin").to_string(),
            "https://[2001:db8::1]"
        );
    }

    #[tokio::test]
    async fn origin_headers_from_an_untrusted_peer_are_removed_and_give_no_origin() {
        for style in [OriginHeaders::XForwarded, OriginHeaders::Forwarded] {
            let mut headers = X_FORWARDED.to_vec();
            headers.push(("forwarded", "proto=https;host=api.example"));
            headers.push(("x-forwarded-for", "192.0.2.1"));
            let (origin, remaining) = origin_seen(
                origin_layer(style),
                request("10.2.0.1:5000", None, &headers),
            )
            .await;
            assert_eq!(origin, None, "{style:?}");
            // Both styles removed; what is not about the origin stays.
            let names: Vec<_> = remaining.keys().map(HeaderName::as_str).collect();
            assert_eq!(names, ["x-forwarded-for"], "{style:?}");
        }
        // No peer address known at all: nobody is trusted.
        let mut builder = Request::builder();
        for (name, value) in X_FORWARDED {
            builder = builder.header(name, value);
        }
        let (origin, remaining) = origin_seen(
            origin_layer(OriginHeaders::XForwarded),
            builder.body(()).unwrap(),
        )
        .await;
        assert_eq!(origin, None);
        assert!(remaining.is_empty());
    }

    #[tokio::test]
    async fn an_origin_already_in_the_extensions_is_removed() {
        let smuggled = ForwardedOrigin::parse(b"https", b"evil.example").unwrap();
        for (peer, headers) in [
            ("10.2.0.1:5000", &X_FORWARDED[..]),
            ("10.1.0.1:5000", &[]),
            ("10.1.0.1:5000", &[("x-forwarded-proto", "gopher")]),
        ] {
            let mut request = request(peer, None, headers);
            request.extensions_mut().insert(smuggled.clone());
            let (origin, _) = origin_seen(origin_layer(OriginHeaders::XForwarded), request).await;
            assert_eq!(origin, None, "{peer} {headers:?}");
        }
    }

    #[tokio::test]
    async fn duplicates_and_malformed_origins_from_a_trusted_proxy_give_no_origin() {
        let x_forwarded: [&[(&str, &str)]; 7] = [
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example"),
            ],
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example"),
                ("x-forwarded-host", "api.example"),
            ],
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "a.example, b.example"),
            ],
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.com/path"),
            ],
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "user@api.example"),
            ],
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example:65536"),
            ],
            &[
                ("x-forwarded-proto", "ht tps"),
                ("x-forwarded-host", "api.example"),
            ],
        ];
        for headers in x_forwarded {
            let (origin, remaining) = origin_seen(
                origin_layer(OriginHeaders::XForwarded),
                request("10.1.0.1:1", None, headers),
            )
            .await;
            assert_eq!(origin, None, "{headers:?}");
            // A trusted proxy's headers are left as they came.
            assert_eq!(remaining.len(), headers.len(), "{headers:?}");
        }
        for value in [
            "proto=https;host=evil.com/path",
            "proto=https;host=\"user@api.example\"",
            "proto=https;host=\"api.example:x\"",
            "proto=https;proto=http;host=api.example",
            "proto=https;host=\"api.example",
            "proto=https;host=api.example,",
            "garbage",
        ] {
            let (origin, _) = origin_seen(
                origin_layer(OriginHeaders::Forwarded),
                request(
                    "10.1.0.1:1",
                    None,
                    &[("forwarded", value), ("host", "api.example")],
                ),
            )
            .await;
            assert_eq!(origin, None, "{value}");
        }
    }

    #[tokio::test]
    async fn a_forwarded_scheme_alone_goes_with_the_requests_host() {
        let (origin, _) = origin_seen(
            origin_layer(OriginHeaders::XForwarded),
            request(
                "10.1.0.1:1",
                None,
                &[("x-forwarded-proto", "https"), ("host", "Api.Example:443")],
            ),
        )
        .await;
        assert_eq!(
            origin.expect("an origin").to_string(),
            "https://api.example"
        );
        // A host without the scheme: no origin.
        let (origin, _) = origin_seen(
            origin_layer(OriginHeaders::Forwarded),
            request(
                "10.1.0.1:1",
                None,
                &[("forwarded", "host=api.example"), ("host", "api.example")],
            ),
        )
        .await;
        assert_eq!(origin, None);
    }

    #[tokio::test]
    async fn without_forwarded_origin_the_headers_and_extension_are_left_alone() {
        let earlier = ForwardedOrigin::parse(b"https", b"api.example").unwrap();
        for peer in ["10.1.0.1:1", "10.2.0.1:1"] {
            let mut headers = X_FORWARDED.to_vec();
            headers.push(("forwarded", "proto=https;host=api.example"));
            let mut request = request(peer, None, &headers);
            request.extensions_mut().insert(earlier.clone());
            let (origin, remaining) = origin_seen(haproxy_layer(), request).await;
            assert_eq!(origin.as_ref(), Some(&earlier), "{peer}");
            assert_eq!(remaining.len(), 3, "{peer}");
        }
    }

    #[tokio::test]
    async fn an_origin_only_layer_forwards_no_certificate() {
        let proxy_cert = ClientCertificate::from_der(der());
        let layer = ForwardedCertLayer::origin_only(OriginHeaders::XForwarded)
            .trust_proxy_certificate(*proxy_cert.thumbprint());
        let forged = STANDARD.encode(der());
        let mut headers = X_FORWARDED.to_vec();
        headers.push(("x-ssl-client-cert", &forged));
        // From the proxy: its origin, no certificate (never the proxy's own), the header gone.
        let (found, remaining) = seen(
            layer.clone(),
            request("192.0.2.1:1", Some(proxy_cert.clone()), &headers),
        )
        .await;
        assert!(matches!(found, CertificateLookup::Absent), "{found:?}");
        assert!(remaining.get("x-ssl-client-cert").is_none());
        let (origin, _) = origin_seen(
            layer.clone(),
            request("192.0.2.1:1", Some(proxy_cert), &headers),
        )
        .await;
        assert_eq!(origin.expect("an origin").authority(), "api.example:8443");
        // From a direct client: its own certificate, no origin.
        let own = ClientCertificate::from_der(der());
        let (found, remaining) = seen(
            layer.clone(),
            request("192.0.2.1:1", Some(own.clone()), &headers),
        )
        .await;
        assert!(
            matches!(found, CertificateLookup::Present(c) if c.thumbprint() == own.thumbprint())
        );
        assert!(remaining.is_empty(), "{remaining:?}");
        // No certificate header to rename.
        assert!(layer.header("x-client-cert").is_err());
    }
}
