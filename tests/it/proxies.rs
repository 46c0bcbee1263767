//! Behind real TLS-terminating proxies: nginx and HAProxy (Debian packages) in front of a
//! service on plain HTTP (`certbound::serve_plain`) that trusts only them (`127.0.0.2/32`, the
//! address they connect from) to forward the client certificate.

use std::future::IntoFuture as _;

use crate::common::*;
use axum::Router;
use certbound::{BoundTokenLayer, ForwardedCertFormat, ForwardedCertLayer};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

const NO_CERTIFICATE: &str = "client certificate required";
const MISMATCH: &str = "access token bound to another certificate";

/// The protected service on plain HTTP, trusting the proxies' source address for `format`.
struct Upstream {
    addr: std::net::SocketAddr,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn upstream(format: ForwardedCertFormat, key: &TestKey) -> Upstream {
    let forwarded = ForwardedCertLayer::new(format)
        .trust_proxy(format!("{PROXY_SOURCE}/32").parse().expect("range"));
    let app: Router = whoami_app(BoundTokenLayer::new(static_validator(&[key]))).layer(forwarded);
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
