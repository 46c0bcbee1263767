//! Behind real TLS-terminating proxies: nginx and HAProxy (Debian packages) in front of a
//! service on plain HTTP (`certbound::serve_plain`) that trusts only them (`127.0.0.2/32`, the
//! address they connect from) to forward the client certificate, and the origin the client
//! used (`X-Forwarded-*` from nginx, RFC 7239 `Forwarded` from HAProxy).

use std::future::IntoFuture as _;

use crate::common::*;
use axum::extract::Request;
use axum::routing::get;
use axum::{Json, Router};
use certbound::forwarded::{ForwardedOrigin, IpRange, OriginHeaders};
use certbound::{BoundTokenLayer, ForwardedCertFormat, ForwardedCertLayer};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const NO_CERTIFICATE: &str = "client certificate required";
const MISMATCH: &str = "access token bound to another certificate";

/// The protected service on plain HTTP, trusting the proxies' source address for `format`.
struct Upstream {
    addr: std::net::SocketAddr,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn upstream(format: ForwardedCertFormat, key: &TestKey) -> Upstream {
    let forwarded = ForwardedCertLayer::new(format).trust_proxy(proxy_range());
    serve_upstream(whoami_app(BoundTokenLayer::new(static_validator(&[key]))).layer(forwarded))
        .await
}

/// The proxies' source address, as a trusted range.
fn proxy_range() -> IpRange {
    format!("{PROXY_SOURCE}/32").parse().expect("range")
}

/// `app` on plain HTTP on 127.0.0.1.
async fn serve_upstream(app: Router) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(certbound::serve_plain(listener, app).into_future());
    Upstream { addr, _task: task }
}

/// Everything one proxy test needs.
struct Setup {
    pki: Pki,
    alice: ClientIdentity,
    bob: ClientIdentity,
    key: TestKey,
    upstream: Upstream,
    proxy: Proxy,
}

async fn setup(kind: ProxyKind) -> Option<Setup> {
    if !kind.available() {
        return None;
    }
    let pki = Pki::new(&format!("{kind:?}-test-ca"));
    let alice = pki.client_identity("alice");
    let bob = pki.client_identity("bob");
    let key = TestKey::es256("k1");
    let format = match kind {
        ProxyKind::Nginx => ForwardedCertFormat::Nginx,
        ProxyKind::Haproxy => ForwardedCertFormat::Haproxy,
    };
    let upstream = upstream(format, &key).await;
    let proxy = Proxy::start(kind, &pki, upstream.addr).await;
    Some(Setup {
        pki,
        alice,
        bob,
        key,
        upstream,
        proxy,
    })
}

fn forged_header(kind: ProxyKind, victim: &ClientIdentity) -> HeaderMap {
    let value = match kind {
        ProxyKind::Nginx => victim
            .cert_pem
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>(),
        ProxyKind::Haproxy => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(victim.leaf_der())
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-ssl-client-cert",
        HeaderValue::from_str(&value).expect("header value"),
    );
    headers
}

async fn behind(kind: ProxyKind) {
    let Some(s) = setup(kind).await else { return };
    let whoami = s.proxy.url("/whoami");
    let ca = s.pki.ca_der();
    let alice_token = s.key.sign(&claims_bound_to(&s.alice.x5t_s256()));
    let as_alice = https_client(&ca, Some(&s.alice));

    // The right certificate through the proxy: accepted, and the binding is Alice's.
    let response = get_with_token(&as_alice, &whoami, &alice_token).await;
    assert_eq!(response.status(), 200, "{kind:?}");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["thumbprint"], s.alice.x5t_s256(), "{kind:?}");

    // Stolen token, used through the proxy with Bob's certificate.
    let as_bob = https_client(&ca, Some(&s.bob));
    let response = get_with_token(&as_bob, &whoami, &alice_token).await;
    assert_invalid_token(&response, &alice_token, MISMATCH);

    // Through the proxy without a client certificate, forging Alice's header: the proxy
    // overwrites (or drops) it.
    let anonymous = https_client(&ca, None);
    let mut headers = forged_header(kind, &s.alice);
    headers.extend(bearer(&alice_token));
    let response = send(&anonymous, &whoami, headers).await;
    assert_invalid_token(&response, &alice_token, NO_CERTIFICATE);

    // The same forgery on a direct connection to the service (an untrusted peer).
    // (An HTTPS-capable client, used here for plain http://.)
    let direct = https_client(&ca, None);
    let mut headers = forged_header(kind, &s.alice);
    headers.extend(bearer(&alice_token));
    let response = send(
        &direct,
        &format!("http://{}/whoami", s.upstream.addr),
        headers,
    )
    .await;
    assert_invalid_token(&response, &alice_token, NO_CERTIFICATE);

    // And still working afterwards.
    let response = get_with_token(&as_alice, &whoami, &alice_token).await;
    assert_eq!(response.status(), 200, "{kind:?}");
}

#[tokio::test]
async fn behind_nginx() {
    behind(ProxyKind::Nginx).await;
}

#[tokio::test]
async fn behind_haproxy() {
    behind(ProxyKind::Haproxy).await;
}

/// The formats no Debian proxy speaks (RFC 9440, Envoy's XFCC), sent by a client that plays the
/// proxy: it connects from the trusted 127.0.0.2, everyone else from 127.0.0.1.
#[tokio::test]
async fn rfc9440_and_xfcc_from_a_trusted_peer() {
    use base64::Engine as _;
    let pki = Pki::new("formats-ca");
    let alice = pki.client_identity("alice");
    let bob = pki.client_identity("bob");
    let key = TestKey::es256("k1");
    let token = key.sign(&claims_bound_to(&alice.x5t_s256()));
    let b64 = base64::engine::general_purpose::STANDARD.encode(alice.leaf_der());
    let hex_sha256 = |der: &[u8]| -> String {
        use sha2::Digest as _;
        sha2::Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let (hex, bob_hex) = (hex_sha256(alice.leaf_der()), hex_sha256(bob.leaf_der()));
    let as_proxy = reqwest::Client::builder()
        .local_address(PROXY_SOURCE.parse::<std::net::IpAddr>().expect("ip"))
        .tls_backend_preconfigured(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
        .build()
        .expect("client");
    let elsewhere = https_client(&pki.ca_der(), None);

    let cases: [(ForwardedCertFormat, &str, String, u16); 5] = [
        (
            ForwardedCertFormat::Rfc9440,
            "client-cert",
            format!(":{b64}:"),
            200,
        ),
        (
            ForwardedCertFormat::Xfcc,
            "x-forwarded-client-cert",
            // An earlier hop's element first; the nearest proxy's (last) one counts.
            format!("By=spiffe://edge;Hash={bob_hex},By=spiffe://mesh;Hash={hex}"),
            200,
        ),
        (
            ForwardedCertFormat::Xfcc,
            "x-forwarded-client-cert",
            format!("By=spiffe://edge;Hash={hex},By=spiffe://mesh;Hash={bob_hex}"),
            401,
        ),
        (
            ForwardedCertFormat::Rfc9440,
            "client-cert",
            b64.clone(),
            401,
        ),
        (
            ForwardedCertFormat::Xfcc,
            "x-forwarded-client-cert",
            String::new(),
            401,
        ),
    ];
    for (format, header, value, status) in cases {
        let upstream = upstream(format, &key).await;
        let url = format!("http://{}/whoami", upstream.addr);
        let mut headers = bearer(&token);
        headers.insert(header, HeaderValue::from_str(&value).expect("value"));
        let response = send(&as_proxy, &url, headers.clone()).await;
        assert_eq!(response.status(), status, "{format:?} {value}");
        // The same header from an untrusted peer never counts.
        let response = send(&elsewhere, &url, headers).await;
        assert_eq!(response.status(), 401, "{format:?} from 127.0.0.1");
    }
}

/// The origin tests' service: `GET /origin` answers the [`ForwardedOrigin`] it was given and
/// the origin headers that reached it.
async fn origin_upstream(layer: ForwardedCertLayer) -> Upstream {
    async fn echo(request: Request) -> Json<Value> {
        let origin = request.extensions().get::<ForwardedOrigin>();
        let header = |name| {
            let values = request.headers().get_all(name).iter();
            values
                .map(|v| v.to_str().expect("ASCII").to_owned())
                .collect::<Vec<_>>()
        };
        Json(json!({
            "origin": origin.map(ToString::to_string),
            "x-forwarded-host": header("x-forwarded-host"),
            "forwarded": header("forwarded"),
        }))
    }
    serve_upstream(Router::new().route("/origin", get(echo)).layer(layer)).await
}

/// What a proxy tells the upstream about the client's origin, in its configuration.
fn origin_config(kind: ProxyKind, dir: &std::path::Path, port: u16, upstream: &Upstream) -> String {
    let (d, upstream) = (dir.display(), upstream.addr);
    match kind {
        // As the module docs advise: nginx replaces whatever the client sent in both headers.
        ProxyKind::Nginx => format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server-cert.pem;
        ssl_certificate_key {d}/server-key.pem;
        location / {{
            proxy_pass http://{upstream};
            proxy_bind {PROXY_SOURCE};
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
"#
        ),
        // HAProxy 2.6 has no `option forwarded`: it appends its own element by hand, after
        // whatever the client sent, and refuses a Host that could break out of the quotes.
        ProxyKind::Haproxy => format!(
            r#"global
    maxconn 64
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tls
    bind 127.0.0.1:{port} ssl crt {d}/haproxy.pem
    http-request deny unless {{ req.hdr_cnt(host) eq 1 }} {{ req.hdr(host) -m reg '^[][A-Za-z0-9.:-]+$' }}
    http-request add-header Forwarded 'proto=https;host="%[req.hdr(host)]"'
    default_backend app
backend app
    server app {upstream} source {PROXY_SOURCE}
"#
        ),
    }
}

/// [`origin_request`], answered `200` with JSON.
async fn origin_seen(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Value {
    let response = origin_request(client, url, headers)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    assert_eq!(response.status(), 200, "{url} {headers:?}");
    response.json().await.expect("JSON")
}

/// `GET url` with `headers`, a `Host` among them sent as given.
fn origin_request(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    headers
        .iter()
        .fold(client.get(url), |request, (name, value)| {
            request.header(*name, HeaderValue::from_str(value).expect("header value"))
        })
}

/// The origin the client used, through `kind` configured with [`origin_config`], in front of
/// a service behind `layer`.
async fn origin_behind(kind: ProxyKind, layer: ForwardedCertLayer) {
    if !kind.available() {
        return;
    }
    let pki = Pki::new(&format!("{kind:?}-origin-ca"));
    let upstream = origin_upstream(layer.trust_proxy(proxy_range())).await;
    let proxy = Proxy::start_with_config(kind, &pki, upstream.addr, |dir, port| {
        origin_config(kind, dir, port, &upstream)
    })
    .await;
    let url = proxy.url("/origin");
    let client = https_client(&pki.ca_der(), None);
    // Whatever the client says about its origin is replaced (nginx) or comes before the
    // proxy's own element and is ignored (HAProxy).
    let forged = [
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "proto=http;host=evil.example"),
    ];

    let host = format!("API.Example:{}", proxy.port());
    let mut headers = vec![("host", host.as_str())];
    headers.extend(forged);
    let seen = origin_seen(&client, &url, &headers).await;
    let expected = format!("https://api.example:{}", proxy.port());
    assert_eq!(seen["origin"], expected.as_str(), "{kind:?}: {seen}");
    // A trusted proxy's headers reach the service as it wrote them.
    match kind {
        ProxyKind::Nginx => assert_eq!(seen["x-forwarded-host"], json!([host]), "{seen}"),
        ProxyKind::Haproxy => assert_eq!(
            seen["forwarded"],
            json!([forged[2].1, format!("proto=https;host=\"{host}\"")]),
            "{seen}"
        ),
    }

    // The default port is no part of the origin.
    let seen = origin_seen(&client, &url, &[("host", "Api.Example:443")]).await;
    assert_eq!(seen["origin"], "https://api.example", "{kind:?}: {seen}");

    // A Host that would end HAProxy's quoted value and add an element of its own: refused by
    // the proxy (see the module docs' deployment caveat); nginx refuses it by itself.
    let injection = origin_request(
        &client,
        &url,
        &[("host", "a.example\", proto=http;host=\"evil.example")],
    );
    let status = injection.send().await.expect("response").status();
    assert!(status.is_client_error(), "{kind:?}: {status}");

    // The same headers on a direct connection (an untrusted peer): no origin, and none of them
    // reaches the service.
    let direct = format!("http://{}/origin", upstream.addr);
    let seen = origin_seen(&client, &direct, &forged).await;
    assert_eq!(
        seen,
        json!({"origin": null, "x-forwarded-host": [], "forwarded": []}),
        "{kind:?}"
    );
}

#[tokio::test]
async fn origin_behind_nginx() {
    let layer = ForwardedCertLayer::new(ForwardedCertFormat::Nginx)
        .forwarded_origin(OriginHeaders::XForwarded);
    origin_behind(ProxyKind::Nginx, layer).await;
}

#[tokio::test]
async fn origin_behind_haproxy() {
    origin_behind(
        ProxyKind::Haproxy,
        ForwardedCertLayer::origin_only(OriginHeaders::Forwarded),
    )
    .await;
}
