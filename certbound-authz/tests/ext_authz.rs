//! The Envoy ext_authz v3 gRPC listener of the real binary, asked by a tonic client built from
//! `envoy-types` with `CheckRequest`s filled as Envoy fills them: `attributes.request.http`
//! (method, scheme, host, the path with its query, lower-case headers, `header_map` with
//! `encode_raw_headers: true` or the `headers` map otherwise), `attributes.source` (the client's
//! address, and its certificate as URL-encoded PEM with `include_peer_certificate: true`), or an
//! Istio ingress gateway's `x-forwarded-client-cert`. The issuer's keys are fetched over HTTPS.

mod binary;
mod support;

use std::collections::HashMap;

use base64::Engine as _;
use binary::{Authz, JwksServer};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address, Address, HeaderMap, HeaderValue, SocketAddress,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use support::*;

/// `OVERWRITE_IF_EXISTS_OR_ADD`.
const OVERWRITE: i32 = 2;

/// A configuration with only the gRPC listener, trusting `trusted`; `tokens` and `proxy` are
/// extra lines of `[tokens]` and `[proxy]`, `rest` more tables.
fn config(jwks_url: &str, trusted: &str, tokens: &str, proxy: &str, rest: &str) -> String {
    format!(
        r#"
[listen]
grpc = "127.0.0.1:0"

[[issuers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks_url = "{jwks_url}"
ca_file = "as-ca.pem"

[tokens]
{tokens}

[proxy]
trusted = ["{trusted}"]
{proxy}

[identity_headers]
subject = "x-auth-subject"
client_id = "x-auth-client-id"
binding = "x-auth-binding"

{rest}
"#
    )
}

struct Running {
    _dir: TempDir,
    jwks: JwksServer,
    authz: Authz,
    client: AuthorizationClient<tonic::transport::Channel>,
}

async fn start(trusted: &str, tokens: &str, proxy: &str, rest: &str) -> Running {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let file = dir.write(
        "authz.toml",
        config(&jwks.url, trusted, tokens, proxy, rest),
    );
    let authz = Authz::start_with(&file, &["grpc"]).await;
    let client = connect(&authz).await;
    Running {
        _dir: dir,
        jwks,
        authz,
        client,
    }
}

async fn connect(authz: &Authz) -> AuthorizationClient<tonic::transport::Channel> {
    AuthorizationClient::connect(format!("http://{}", authz.listener("grpc")))
        .await
        .expect("connect to the gRPC listener")
}

/// How Envoy sends the headers.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `header_map`, each line as it came, in `raw_value` (`encode_raw_headers: true`).
    HeaderMap,
    /// The `headers` map: repeated headers joined with `,`.
    Map,
}

/// Envoy's check for `method https://api.example.com{target}` with the client's `headers`
/// (lower case, as Envoy sends them), and its certificate (`source.certificate`) when given.
fn envoy_check(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    certificate_pem: Option<&str>,
    shape: Shape,
) -> CheckRequest {
    let mut all = vec![
        (":authority", "api.example.com"),
        (":path", target),
        (":method", method),
        (":scheme", "https"),
        ("user-agent", "curl/8.5.0"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "8d3f0c6e-2a51-4f7e-9a0b-6c1d2e3f4a5b"),
    ];
    all.extend_from_slice(headers);
    let (map, header_map) = match shape {
        Shape::HeaderMap => {
            let lines = all
                .iter()
                .map(|(key, value)| HeaderValue {
                    key: (*key).to_owned(),
                    value: String::new(),
                    raw_value: value.as_bytes().to_vec(),
                })
                .collect();
            (HashMap::new(), Some(HeaderMap { headers: lines }))
        }
        Shape::Map => {
            let mut map: HashMap<String, String> = HashMap::new();
            for (key, value) in &all {
                map.entry((*key).to_owned())
                    .and_modify(|joined| {
                        joined.push(',');
                        joined.push_str(value);
                    })
                    .or_insert_with(|| (*value).to_owned());
            }
            (map, None)
        }
    };
    let socket = |ip: &str, port: u32| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(socket("203.0.113.7", 51234)),
                certificate: certificate_pem.map(url_encoded).unwrap_or_default(),
                ..Default::default()
            }),
            destination: Some(Peer {
                address: Some(socket("10.0.0.5", 443)),
                ..Default::default()
            }),
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    id: "8d3f0c6e-2a51-4f7e-9a0b-6c1d2e3f4a5b".into(),
                    method: method.into(),
                    headers: map,
                    header_map,
                    path: target.into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

/// Envoy's URL-encoded PEM.
fn url_encoded(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

async fn ask(running: &mut Running, check: CheckRequest) -> CheckResponse {
    running
        .client
        .check(check)
        .await
        .expect("a CheckResponse")
        .into_inner()
}

fn allowed(response: CheckResponse) -> OkHttpResponse {
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(0),
        "{response:?}"
    );
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an ok_response: {other:?}"),
    }
}

/// The denied response, its HTTP status and its headers as (name, value).
fn denied(response: CheckResponse) -> (DeniedHttpResponse, i32, Vec<(String, String)>) {
    let code = response.status.as_ref().map_or(0, |s| s.code);
    assert_ne!(code, 0, "a denial has a non-OK status: {response:?}");
    let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
        panic!("not a denied_response: {response:?}");
    };
    let status = denied.status.as_ref().map_or(0, |s| s.code);
    let headers = denied
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    (denied, status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The headers an allow sets upstream: (name, value, append action).
fn set(ok: &OkHttpResponse) -> Vec<(String, String, i32)> {
    ok.headers
        .iter()
        .filter_map(|h| {
            h.header
                .as_ref()
                .map(|header| (header.key.clone(), header.value.clone(), h.append_action))
        })
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_certificate_bound_token_with_its_certificate_is_allowed_with_the_identity_headers_replacing_client_copies(
) {
    let mut running = start("127.0.0.1/32", "", "", "").await;
    let (der, pem) = client_certificate("client-a");
    let token = running.jwks.issuer.token("read", cnf_certificate(&der));
    for shape in [Shape::HeaderMap, Shape::Map] {
        let auth = bearer(&token);
        let headers = [
            ("authorization", auth.as_str()),
            ("x-auth-subject", "mallory"),
        ];
        let check = envoy_check("GET", "/orders?page=2", &headers, Some(&pem), shape);
        let ok = allowed(ask(&mut running, check).await);
        let set = set(&ok);
        for (name, value) in [
            ("x-auth-subject", "alice"),
            ("x-auth-client-id", "client-a"),
            ("x-auth-binding", "certificate"),
        ] {
            assert!(
                set.contains(&(name.to_owned(), value.to_owned(), OVERWRITE)),
                "{shape:?}: {name}: {set:?}"
            );
        }
        // Every identity header is set (replacing the client's `x-auth-subject`), so none is
        // removed: Envoy removes after it sets.
        assert!(
            ok.headers_to_remove.is_empty(),
            "{:?}",
            ok.headers_to_remove
        );
    }
}

#[tokio::test]
async fn identity_headers_without_a_value_are_removed_so_client_copies_never_reach_the_upstream() {
    let rest = "[[routes]]\npath_prefix = \"/public\"\nopen = true\n";
    let mut running = start("127.0.0.1/32", "", "", rest).await;
    // A token without `client_id`: that header is removed, the others set.
    let (der, pem) = client_certificate("client-a");
    let mut claims = claims("read", cnf_certificate(&der));
    claims.as_object_mut().unwrap().remove("client_id");
    let token = running.jwks.issuer.sign(&claims);
    let auth = bearer(&token);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-auth-client-id", "forged"),
    ];
    let check = envoy_check("GET", "/orders", &headers, Some(&pem), Shape::HeaderMap);
    let ok = allowed(ask(&mut running, check).await);
    assert_eq!(ok.headers_to_remove, ["x-auth-client-id"]);
    assert!(set(&ok)
        .iter()
        .all(|(name, _, _)| name != "x-auth-client-id"));

    // An open route: no identity, every identity header removed.
    let headers = [("x-auth-subject", "mallory"), ("x-auth-binding", "dpop")];
    let check = envoy_check("GET", "/public/status", &headers, None, Shape::HeaderMap);
    let ok = allowed(ask(&mut running, check).await);
    assert!(ok.headers.is_empty(), "{:?}", ok.headers);
    assert_eq!(
        ok.headers_to_remove,
        ["x-auth-subject", "x-auth-client-id", "x-auth-binding"]
    );
}

#[tokio::test]
async fn a_certificate_bound_token_stolen_to_another_certificate_or_without_one_is_denied_with_401_and_a_challenge(
) {
    let mut running = start("127.0.0.1/32", "", "", "").await;
    let (der, _) = client_certificate("client-a");
    let (_, thief) = client_certificate("thief");
    let token = running.jwks.issuer.token("read", cnf_certificate(&der));
    let auth = bearer(&token);
    for certificate in [Some(thief.as_str()), None] {
        let headers = [("authorization", auth.as_str())];
        let check = envoy_check(
            "GET",
            "/orders?page=2",
            &headers,
            certificate,
            Shape::HeaderMap,
        );
        let (_, status, headers) = denied(ask(&mut running, check).await);
        assert_eq!(status, 401);
        let challenge = header(&headers, "www-authenticate").expect("a challenge");
        assert!(challenge.contains("invalid_token"), "{challenge}");
        // One line per refusal, without the token.
        let line = running.authz.stderr_line_with("refused").await;
        assert!(
            line.contains("refused \"GET api.example.com/orders\" from 127.0.0.1"),
            "{line}"
        );
        assert!(line.contains("401 invalid_token"), "{line}");
        assert!(!line.contains(&token), "{line}");
    }
}

#[tokio::test]
async fn a_dpop_proof_is_good_once_and_a_proof_by_a_foreign_key_is_denied() {
    let mut running = start("127.0.0.1/32", "", "", "").await;
    let key = dpop_key();
    let token = running.jwks.issuer.token("read", cnf_dpop(&key));
    let url = "https://api.example.com/orders";
    let auth = format!("DPoP {token}");
    let good = proof(&key, "POST", url, &token, None);
    let check = |proof: &str| {
        let headers = [("authorization", auth.as_str()), ("dpop", proof)];
        envoy_check("POST", "/orders?page=2", &headers, None, Shape::HeaderMap)
    };

    let ok = allowed(ask(&mut running, check(&good)).await);
    assert!(set(&ok).contains(&("x-auth-binding".into(), "dpop".into(), OVERWRITE)));

    let (_, status, _) = denied(ask(&mut running, check(&good)).await);
    assert_eq!(status, 401, "the same proof again");

    let foreign = proof(&dpop_key(), "POST", url, &token, None);
    let (_, status, headers) = denied(ask(&mut running, check(&foreign)).await);
    assert_eq!(status, 401, "a proof by another key");
    assert!(header(&headers, "www-authenticate").is_some());
}

#[tokio::test]
async fn two_dpop_lines_in_the_header_map_are_denied() {
    let mut running = start("127.0.0.1/32", "", "", "").await;
    let key = dpop_key();
    let token = running.jwks.issuer.token("read", cnf_dpop(&key));
    let url = "https://api.example.com/orders";
    let auth = format!("DPoP {token}");
    let one = proof(&key, "GET", url, &token, None);
    let two = proof(&key, "GET", url, &token, None);
    let headers = [
        ("authorization", auth.as_str()),
        ("dpop", one.as_str()),
        ("dpop", two.as_str()),
    ];
    let check = envoy_check("GET", "/orders", &headers, None, Shape::HeaderMap);
    let (_, status, headers) = denied(ask(&mut running, check).await);
    // RFC 9449 §7.1: an unusable proof is `401 invalid_dpop_proof`.
    assert_eq!(status, 401);
    let challenge = header(&headers, "www-authenticate").expect("a challenge");
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
}

#[tokio::test]
async fn a_nonce_is_demanded_with_401_use_dpop_nonce_then_accepted() {
    let dir = TempDir::new();
    let key_file = dir.write("nonce.key", [9u8; 32]);
    let tokens = format!("dpop_nonce_key_file = {:?}", key_file.display().to_string());
    let mut running = start("127.0.0.1/32", &tokens, "", "").await;
    let key = dpop_key();
    let token = running.jwks.issuer.token("read", cnf_dpop(&key));
    let url = "https://api.example.com/orders";
    let auth = format!("DPoP {token}");
    let check = |proof: &str| {
        let headers = [("authorization", auth.as_str()), ("dpop", proof)];
        envoy_check("GET", "/orders", &headers, None, Shape::HeaderMap)
    };

    let first = proof(&key, "GET", url, &token, None);
    let (_, status, headers) = denied(ask(&mut running, check(&first)).await);
    assert_eq!(status, 401);
    let challenge = header(&headers, "www-authenticate").expect("a challenge");
    assert!(challenge.contains("use_dpop_nonce"), "{challenge}");
    let nonce = header(&headers, "dpop-nonce").expect("a nonce").to_owned();

    let second = proof(&key, "GET", url, &token, Some(&nonce));
    let ok = allowed(ask(&mut running, check(&second)).await);
    assert!(set(&ok).contains(&("x-auth-binding".into(), "dpop".into(), OVERWRITE)));
}

/// An Istio ingress gateway's element: `forward_client_cert_details: SANITIZE_SET` with
/// `set_current_client_cert_details: { subject: true, cert: true, uri: true }`.
fn xfcc(der: &[u8], pem: &str) -> String {
    let thumbprint = certbound::CertThumbprint::from_der(der).to_string();
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(thumbprint)
        .expect("a base64url thumbprint");
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "By=spiffe://cluster.local/ns/default/sa/api;Hash={hash};Cert=\"{}\";Subject=\"CN=client-a\";URI=",
        url_encoded(pem)
    )
}

#[tokio::test]
async fn with_grpc_client_cert_xfcc_the_certificate_comes_from_the_gateway_s_xfcc() {
    let proxy = "grpc_client_cert = \"xfcc\"";
    let mut running = start("127.0.0.1/32", "", proxy, "").await;
    let (der, pem) = client_certificate("client-a");
    let (thief_der, thief) = client_certificate("thief");
    let token = running.jwks.issuer.token("read", cnf_certificate(&der));
    let auth = bearer(&token);

    let element = xfcc(&der, &pem);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-forwarded-client-cert", element.as_str()),
    ];
    // Istio never sets `include_peer_certificate`: no `source.certificate`.
    let check = envoy_check("GET", "/orders", &headers, None, Shape::HeaderMap);
    let ok = allowed(ask(&mut running, check).await);
    assert!(set(&ok).contains(&("x-auth-binding".into(), "certificate".into(), OVERWRITE)));

    // Another certificate in XFCC; the right one in `source.certificate` is not read.
    let element = xfcc(&thief_der, &thief);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-forwarded-client-cert", element.as_str()),
    ];
    let check = envoy_check("GET", "/orders", &headers, Some(&pem), Shape::HeaderMap);
    let (_, status, _) = denied(ask(&mut running, check).await);
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_route_with_scopes_denies_a_token_without_them_with_403_insufficient_scope() {
    let rest = "[[routes]]\npath_prefix = \"/admin\"\nscopes = [\"admin\"]\n";
    let mut running = start("127.0.0.1/32", "", "", rest).await;
    let (der, pem) = client_certificate("client-a");
    let token = running.jwks.issuer.token("read", cnf_certificate(&der));
    let auth = bearer(&token);
    let headers = [("authorization", auth.as_str())];
    let check = envoy_check(
        "POST",
        "/admin/users",
        &headers,
        Some(&pem),
        Shape::HeaderMap,
    );
    let response = ask(&mut running, check).await;
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(tonic::Code::PermissionDenied as i32)
    );
    let (_, status, headers) = denied(response);
    assert_eq!(status, 403);
    let challenge = header(&headers, "www-authenticate").expect("a challenge");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    let admin = running.jwks.issuer.token("admin", cnf_certificate(&der));
    let auth = bearer(&admin);
    let headers = [("authorization", auth.as_str())];
    let check = envoy_check(
        "POST",
        "/admin/users",
        &headers,
        Some(&pem),
        Shape::HeaderMap,
    );
    allowed(ask(&mut running, check).await);
}

#[tokio::test]
async fn an_untrusted_peer_is_denied_with_403_whatever_its_check_says() {
    let mut running = start("10.0.0.0/8", "", "", "").await;
    let (der, pem) = client_certificate("client-a");
    let token = running.jwks.issuer.token("read", cnf_certificate(&der));
    let auth = bearer(&token);
    let headers = [("authorization", auth.as_str())];
    let check = envoy_check("GET", "/orders", &headers, Some(&pem), Shape::HeaderMap);
    let (_, status, headers) = denied(ask(&mut running, check).await);
    assert_eq!(status, 403);
    assert!(header(&headers, "x-auth-subject").is_none());
    let line = running.authz.stderr_line_with("refused").await;
    assert!(line.contains("403 untrusted_peer"), "{line}");
}

#[tokio::test]
async fn a_replay_store_that_cannot_answer_denies_with_503() {
    // Nothing listens on port 1: every proof check fails to reach the store.
    let tokens = "replay_redis = \"redis://127.0.0.1:1\"";
    let mut running = start("127.0.0.1/32", tokens, "", "").await;
    let key = dpop_key();
    let token = running.jwks.issuer.token("read", cnf_dpop(&key));
    let auth = format!("DPoP {token}");
    let good = proof(&key, "GET", "https://api.example.com/orders", &token, None);
    let headers = [("authorization", auth.as_str()), ("dpop", good.as_str())];
    let check = envoy_check("GET", "/orders", &headers, None, Shape::HeaderMap);
    let response = ask(&mut running, check).await;
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(tonic::Code::Unavailable as i32)
    );
    let (_, status, _) = denied(response);
    assert_eq!(status, 503);
}

#[tokio::test]
async fn both_listeners_serve_one_process_and_sighup_reaches_the_grpc_frontend() {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let both = |rest: &str| {
        config(
            &jwks.url,
            "127.0.0.1/32",
            "",
            "profile = \"envoy-http\"",
            rest,
        )
        .replace(
            "grpc = \"127.0.0.1:0\"",
            "http = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"",
        )
    };
    let admin_only = "[[routes]]\npath_prefix = \"/orders\"\nscopes = [\"admin\"]\n";
    let file = dir.write("authz.toml", both(admin_only));
    let mut authz = Authz::start_with(&file, &["http", "grpc"]).await;
    let mut client = connect(&authz).await;
    let (der, pem) = client_certificate("client-a");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let auth = bearer(&token);
    let headers = [("authorization", auth.as_str())];
    let check = || envoy_check("GET", "/orders", &headers, Some(&pem), Shape::HeaderMap);

    let before = client.check(check()).await.unwrap().into_inner();
    assert_eq!(denied(before).1, 403);
    // The HTTP listener answers too (no token: a challenge).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::new()
        .get(authz.url("/orders"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("the HTTP listener");
    assert_eq!(http.status(), reqwest::StatusCode::UNAUTHORIZED);

    dir.write("authz.toml", both(""));
    authz.hang_up();
    let line = authz.stderr_line_with("reloaded").await;
    assert!(line.contains("authz.toml"), "{line}");
    let after = client.check(check()).await.unwrap().into_inner();
    allowed(after);
}

#[tokio::test]
async fn sigterm_ends_the_process_with_0_while_envoy_holds_its_connection() {
    let running = start("127.0.0.1/32", "", "", "").await;
    let Running {
        _dir,
        jwks: _jwks,
        authz,
        mut client,
    } = running;
    // A check first: the client's HTTP/2 connection is open, as Envoy's stays.
    let check = envoy_check("GET", "/orders", &[], None, Shape::HeaderMap);
    let (_, status, _) = denied(client.check(check).await.unwrap().into_inner());
    assert_eq!(status, 401);
    let (code, _) = tokio::time::timeout(std::time::Duration::from_secs(20), authz.terminate())
        .await
        .expect("the process ends after SIGTERM");
    assert_eq!(code, Some(0));
    drop(client);
}
