//! [`ForwardedCertLayer`](crate::ForwardedCertLayer): the client certificate from a TLS-terminating proxy (nginx, HAProxy,
//! Envoy, Apache, a cloud load balancer), accepted **only** from proxies the operator trusts;
//! optionally the [origin the client used](#the-origin-the-client-used) too.
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
//! # The origin the client used
//! A DPoP proof names the URL the client used (`htu`, RFC 9449 §4.3). Behind a TLS-terminating
//! proxy the request's own scheme and `Host` are those of the proxy's connection, and only
//! the proxy knows the client's. With
//! [`forwarded_origin`](crate::ForwardedCertLayer::forwarded_origin) (or
//! [`origin_only`](crate::ForwardedCertLayer::origin_only), for a proxy that forwards no
//! certificate) the layer also reads them, with the same trust as the certificate:
//! - from an untrusted peer, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` are
//!   removed and ignored, so a client cannot choose its origin; a [`ForwardedOrigin`] already
//!   in the request's extensions is removed from every request;
//! - from a trusted peer the headers stay, and a well-formed pair becomes a [`ForwardedOrigin`]
//!   extension: the scheme (`http` or `https`) and the authority (`host[:port]`: a DNS name, a
//!   dotted-decimal IPv4 address or a bracketed IPv6 address; no userinfo, path, percent-escape
//!   or list), normalized to lower case without the scheme's default port.
//!
//! | [`OriginHeaders`] | the scheme | the authority |
//! |---|---|---|
//! | `XForwarded` | `X-Forwarded-Proto` | `X-Forwarded-Host` |
//! | `Forwarded` | `proto=` of the last element of RFC 7239 `Forwarded` | `host=` of that element |
//!
//! - **The last `Forwarded` element** is the one the proxy next to the service appended; the
//!   ones before it came with the request, from the client or from hops that are not trusted.
//!   Several `Forwarded` lines are one list; parameter names are case-insensitive; values may
//!   be quoted strings; unknown parameters (`for`, `by`) are ignored. Only the adjacent proxy
//!   is believed: behind a chain of proxies it must pass on the origin the edge reported, as
//!   its own element (or in the `X-Forwarded` headers), not add one describing its own hop.
//! - **A scheme without an authority** goes with the request's own authority (HTTP/2
//!   `:authority`, else its one `Host` header): the proxy forwarded the scheme and passed the
//!   client's `Host` on.
//! - **An authority without a scheme** gives no origin: the request's own scheme is that of
//!   the proxy's connection, and guessing `https` would be a silent assumption.
//! - **Anything unusable from a trusted peer** gives no origin: either `X-Forwarded` header
//!   given twice or holding a list, a duplicated or malformed `Forwarded` parameter, an empty
//!   last element, a scheme other than `http` and `https`, a host with a path, userinfo or a
//!   bad port. The `htu` check then uses the request's own scheme and `Host`, which behind the
//!   proxy most likely makes it refuse the proof: it fails closed.
//!
//! | proxy | configuration |
//! |---|---|
//! | nginx | `proxy_set_header X-Forwarded-Proto $scheme;`<br>`proxy_set_header X-Forwarded-Host $http_host;` |
//! | HAProxy | `http-request set-header X-Forwarded-Proto https`<br>`http-request set-header X-Forwarded-Host %[req.hdr(host)]` |
//!
//! # Deployment caveat
//! Trusting a proxy means trusting every request that reaches the service through it, and
//! every host in a trusted range. The proxy must overwrite the header on every request (nginx
//! `proxy_set_header`, HAProxy `http-request set-header`, Envoy's XFCC `SANITIZE_SET`), and the
//! service must not be reachable from a trusted address by anyone but the proxy. Keep the
//! ranges narrow, or trust the proxy by its certificate.
//!
//! The same holds for the origin headers: the proxy must overwrite both `X-Forwarded-Proto` and
//! `X-Forwarded-Host` (a client's `X-Forwarded-Host` passed on next to the proxy's scheme would
//! be believed), or append its own `Forwarded` element. A proxy that writes the client's
//! `Host` into `Forwarded` by text substitution must make sure it holds no `"`, `,` or `;`
//! (reject such requests), or the client can end the proxy's element and write the last one
//! itself; the `X-Forwarded` headers have no such structure to break out of.
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
//!
//! # Example: the origin
//! ```
//! use std::net::SocketAddr;
//! use certbound::{ConnectionInfo, ForwardedCertLayer};
//! use certbound::forwarded::{ForwardedOrigin, OriginHeaders};
//! use http::Request;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = ForwardedCertLayer::origin_only(OriginHeaders::XForwarded)
//!     .trust_proxy("10.0.0.5/32".parse()?);
//! let service = ServiceBuilder::new().layer(layer).service_fn(|req: Request<()>| async move {
//!     let origin = req.extensions().get::<ForwardedOrigin>();
//!     Ok::<_, std::convert::Infallible>(origin.map(ToString::to_string))
//! });
//! let request = |peer: &str| -> Result<Request<()>, Box<dyn std::error::Error>> {
//!     let peer: SocketAddr = peer.parse()?;
//!     Ok(Request::builder()
//!         .header("x-forwarded-proto", "https")
//!         .header("x-forwarded-host", "API.Example:8443")
//!         .extension(ConnectionInfo::new(peer, None))
//!         .body(())?)
//! };
//!
//! // From the trusted proxy: the origin, normalized.
//! let origin = service.clone().oneshot(request("10.0.0.5:40000")?).await?;
//! assert_eq!(origin.as_deref(), Some("https://api.example:8443"));
//! // The same headers from anyone else: removed and ignored.
//! assert_eq!(service.oneshot(request("192.0.2.7:40000")?).await?, None);
//! # Ok(()) }
//! ```

pub(crate) mod format;
pub(crate) mod layer;
mod origin;
mod parse;
mod trust;

pub use crate::certificate::ForwardedClientCertificate;
pub use layer::ForwardedCert;
pub use origin::{ForwardedOrigin, OriginHeaders};
pub use trust::IpRange;
