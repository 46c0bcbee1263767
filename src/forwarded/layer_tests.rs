//! Tests of `ForwardedCertLayer`: certificates and origins from trusted and untrusted peers.

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
async fn seen(layer: ForwardedCertLayer, request: Request<()>) -> (CertificateLookup, HeaderMap) {
    layer
        .layer(tower::service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>((lookup(req.extensions()).certificate, req.headers().clone()))
        }))
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {})
}

fn request(peer: &str, own: Option<ClientCertificate>, headers: &[(&str, &str)]) -> Request<()> {
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
    let layer =
        ForwardedCertLayer::new(Format::Haproxy).trust_proxy_certificate(*proxy_cert.thumbprint());
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
        let (found, remaining) = seen(haproxy_layer(), request("10.1.0.1:1", None, headers)).await;
        assert!(matches!(found, CertificateLookup::Absent), "{headers:?}");
        assert!(remaining.is_empty());
    }
    // Two forwarding layers on one service: the inner one sees a certificate already
    // forwarded, a conflict. (One ForwardedCertLayer per service.)
    let twice = haproxy_layer().layer(haproxy_layer().layer(tower::service_fn(
        |req: Request<()>| async move { Ok::<_, Infallible>(lookup(req.extensions()).certificate) },
    )));
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
    assert!(matches!(found, CertificateLookup::Present(c) if c.thumbprint() == own.thumbprint()));
    assert!(remaining.is_empty(), "{remaining:?}");
    // No certificate header to rename.
    assert!(layer.header("x-client-cert").is_err());
}

#[test]
fn the_layer_and_its_service_name_their_format_and_header_in_debug() {
    let layer = ForwardedCertLayer::new(Format::Nginx).trust_proxy("10.1.0.0/16".parse().unwrap());
    let debug = format!("{layer:?}");
    assert!(debug.starts_with("ForwardedCertLayer {"), "{debug}");
    assert!(
        debug.contains("Nginx") && debug.contains("x-ssl-client-cert"),
        "{debug}"
    );
    assert!(debug.contains("10.1.0.0/16"), "{debug}");
    let service = layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(())
    }));
    let debug = format!("{service:?}");
    assert!(debug.starts_with("ForwardedCert {"), "{debug}");
    assert!(
        debug.contains("Nginx") && debug.contains("x-ssl-client-cert"),
        "{debug}"
    );
}

#[test]
fn the_inner_services_readiness_and_its_errors_pass_through() {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut pending = haproxy_layer().layer(NeverReady);
    assert!(Service::<Request<()>>::poll_ready(&mut pending, &mut cx).is_pending());
    let mut failing = haproxy_layer().layer(Failing);
    assert_eq!(
        Service::<Request<()>>::poll_ready(&mut failing, &mut cx),
        Poll::Ready(Err("overloaded"))
    );
}

/// A service that is never ready.
struct NeverReady;

impl Service<Request<()>> for NeverReady {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

/// A service whose readiness is an error.
struct Failing;

impl Service<Request<()>> for Failing {
    type Response = ();
    type Error = &'static str;
    type Future = std::future::Ready<Result<(), &'static str>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), &'static str>> {
        Poll::Ready(Err("overloaded"))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Err("overloaded"))
    }
}

#[tokio::test]
async fn an_rfc_9440_certificate_comes_with_its_chain_from_a_trusted_proxy() {
    let (leaf, intermediate) = (der(), der());
    let layer =
        ForwardedCertLayer::new(Format::Rfc9440).trust_proxy("10.1.0.0/16".parse().unwrap());
    let cert = format!(":{}:", STANDARD.encode(&leaf));
    let chain = format!(":{}:", STANDARD.encode(&intermediate));
    let (found, headers) = seen(
        layer,
        request(
            "10.1.2.3:5000",
            None,
            &[("client-cert", &cert), ("client-cert-chain", &chain)],
        ),
    )
    .await;
    match found {
        CertificateLookup::Present(found) => {
            assert_eq!(
                found.thumbprint(),
                ClientCertificate::from_der(leaf).thumbprint()
            );
            assert_eq!(found.chain().len(), 2);
            assert_eq!(found.chain()[1].as_ref(), intermediate.as_slice());
        }
        other => panic!("{other:?}"),
    }
    assert!(headers.get("client-cert-chain").is_none());
}

#[tokio::test]
async fn a_proxy_certificate_listed_twice_is_still_trusted() {
    let proxy_cert = ClientCertificate::from_der(der());
    let layer = ForwardedCertLayer::new(Format::Haproxy)
        .trust_proxy_certificate(*proxy_cert.thumbprint())
        .trust_proxy_certificate(*proxy_cert.thumbprint());
    let client = der();
    let value = STANDARD.encode(&client);
    let (found, _) = seen(
        layer,
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
}
