//! [`ForwardedCertLayer`](crate::ForwardedCertLayer): the client certificate from a TLS-terminating proxy (nginx, HAProxy,
//! Envoy, Apache, a cloud load balancer), accepted **only** from proxies the operator trusts.
//!
//! Put it in front of [`BoundTokenLayer`](crate::BoundTokenLayer) (outermost). For every request
//! it:
//! 1. decides whether the TCP peer is a trusted proxy: its address is in a configured range
//!    ([`trust_proxy`](crate::ForwardedCertLayer::trust_proxy)), or it connected with mutual TLS
//!    presenting a configured proxy certificate
//!    ([`trust_proxy_certificate`](crate::ForwardedCertLayer::trust_proxy_certificate)). The peer
//!    address comes from the connection's [`ConnectionInfo`](crate::ConnectionInfo), which
//!    [`serve`](crate::serve) and [`serve_plain`](crate::serve_plain) insert; without it no peer
//!    is trusted;
//! 2. removes the configured header and every other common forwarded-certificate header
//!    (`client-cert`, `client-cert-chain`, `x-forwarded-client-cert`, `x-ssl-client-cert`,
//!    `ssl-client-cert`) from the request, whoever sent it, so the inner service never sees an
//!    unvetted one;
//! 3. for a trusted peer only, parses the header and records the outcome as a
//!    [`ForwardedClientCertificate`], which
//!    `BoundTokenLayer` then uses as the one certificate source. The proxy's own TLS
//!    certificate on that connection is never taken for the client's.
//!
//! Headers from untrusted peers are ignored (traced at debug level). From a trusted peer, an
//! unusable value means *no certificate* (so a bound token gets `401 invalid_token`): the
//! header given twice, a value holding two certificates, trailing bytes after the DER, a PEM
//! block that is not a certificate, Apache's `(null)`, an empty value, or another
//! forwarded-certificate header next to the configured one (two sources that could disagree).
//!
//! | [`ForwardedCertFormat`](crate::ForwardedCertFormat) | default header | value |
//! |---|---|---|
//! | `Rfc9440` | `client-cert` (+ `client-cert-chain`) | RFC 9440: `:base64 DER:` |
//! | `Xfcc` | `x-forwarded-client-cert` | Envoy: the nearest proxy's element; `Cert=` URL-encoded PEM and/or `Hash=` hex SHA-256 |
//! | `Nginx` | `x-ssl-client-cert` | nginx `$ssl_client_escaped_cert`: URL-encoded PEM |
//! | `Haproxy` | `x-ssl-client-cert` | HAProxy `%[ssl_c_der,base64]`: base64 DER |
//! | `Apache` | `x-ssl-client-cert` | Apache `%{SSL_CLIENT_CERT}s`: PEM, `(null)` for none |
//!
//! # Deployment caveat
//! Trusting a proxy means trusting every request that reaches the service through it, and
//! every host in a trusted range. The proxy must overwrite the header on every request (nginx
//! `proxy_set_header`, HAProxy `http-request set-header`, Envoy's XFCC `SANITIZE_SET`), and the
//! service must not be reachable from a trusted address by anyone but the proxy. Keep the
//! ranges narrow, or trust the proxy by its certificate.
//!
//! # Example
//! ```
//! use std::net::SocketAddr;
//! use certbound::{ForwardedCertFormat, ForwardedCertLayer, ConnectionInfo};
//! use certbound::forwarded::ForwardedClientCertificate;
//! use http::Request;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = ForwardedCertLayer::new(ForwardedCertFormat::Nginx)
//!     .trust_proxy("10.0.0.0/8".parse()?);
//! let service = ServiceBuilder::new().layer(layer).service_fn(|req: Request<()>| async move {
//!     // The header is gone; what the proxy said is in the extensions.
//!     assert!(req.headers().get("x-ssl-client-cert").is_none());
//!     Ok::<_, std::convert::Infallible>(req.extensions().get::<ForwardedClientCertificate>().is_some())
//! });
//!
//! // A request from an untrusted peer that forges the header: ignored.
//! let peer: SocketAddr = "192.0.2.7:40000".parse()?;
//! let request = Request::builder()
//!     .header("x-ssl-client-cert", "-----BEGIN%20CERTIFICATE-----...")
//!     .extension(ConnectionInfo::new(peer, None))
//!     .body(())?;
//! assert!(!service.oneshot(request).await?);
//! # Ok(()) }
//! ```

pub(crate) mod format;
pub(crate) mod layer;
mod parse;
mod trust;

pub use crate::certificate::ForwardedClientCertificate;
pub use layer::ForwardedCert;
pub use trust::IpRange;
