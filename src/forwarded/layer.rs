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
        // A closure (not `unwrap_or`) for the trace; without it clippy sees a needless one.
        #[cfg_attr(not(feature = "tracing"), allow(clippy::unnecessary_lazy_evaluations))]
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
#[path = "layer_tests.rs"]
mod tests;
