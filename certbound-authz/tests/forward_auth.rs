//! The HTTP forward-auth listener over real HTTP, the binary deciding with keys fetched over
//! HTTPS, and reqwest acting as each proxy does: the headers nginx (`auth_request`), Traefik
//! (`ForwardAuth` + `PassTLSClientCert`), Caddy (`forward_auth`) and Envoy (HTTP ext_authz)
//! send. Real proxies in front are for later (issue 25).

mod binary;
mod support;

use base64::Engine as _;
use binary::{Authz, JwksServer};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use support::*;

/// A running authz with `profile`, trusting `trusted`, deciding for tokens of the JWKS
/// server's issuer; `tokens` is extra `[tokens]` lines.
async fn authz(profile: &str, trusted: &str, tokens: &str) -> (TempDir, JwksServer, Authz) {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let config = binary::config(profile, trusted, &jwks.url, tokens);
    let file = dir.write("authz.toml", config);
    let authz = Authz::start(&file).await;
    (dir, jwks, authz)
}

fn client() -> reqwest::Client {
    // Err: installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

/// nginx `$ssl_client_escaped_cert`: the PEM, URL-encoded.
fn nginx_cert(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// An nginx `auth_request` subrequest for `GET https://api.example.com/orders?page=2`.
fn nginx(authz: &Authz, token: &str, cert_pem: Option<&str>) -> reqwest::RequestBuilder {
    client()
        .get(authz.url("/auth"))
        .header("x-original-method", "GET")
        .header("x-original-url", "https://api.example.com/orders?page=2")
        .header(
            "x-ssl-client-cert",
            cert_pem.map(nginx_cert).unwrap_or_default(),
        )
        .header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn nginx_a_bound_token_with_its_certificate_is_allowed_and_a_stolen_one_refused() {
    let (_dir, jwks, mut authz) = authz("nginx", "127.0.0.1/32", "").await;
    let (der, pem) = client_certificate("client-a");
    let (_, thief) = client_certificate("thief");
    let token = jwks.issuer.token("read", cnf_certificate(&der));

    let allowed = nginx(&authz, &token, Some(&pem)).send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["x-auth-subject"], "alice");
    assert_eq!(allowed.headers()["x-auth-binding"], "certificate");

    for cert in [Some(thief.as_str()), None] {
        let refused = nginx(&authz, &token, cert).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().contains_key("www-authenticate"));
        assert!(!refused.headers().contains_key("x-auth-subject"));
        // One line per refusal, without the token.
        let line = authz.stderr_line().await;
        assert!(
            line.contains("refused \"GET api.example.com/orders\" from 127.0.0.1"),
            "{line}"
        );
        assert!(line.contains("401 invalid_token"), "{line}");
        assert!(!line.contains(&token), "{line}");
    }
}

#[tokio::test]
async fn nginx_gets_401_where_the_answer_would_be_400() {
    let (_dir, _jwks, authz) = authz("nginx", "127.0.0.1/32", "").await;
    // No X-Original-URL: the proxy's facts are incomplete.
    let response = client()
        .get(authz.url("/auth"))
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_untrusted_peer_gets_403_whatever_its_headers_say() {
    let (_dir, jwks, authz) = authz("nginx", "192.0.2.1/32", "").await;
    let (der, pem) = client_certificate("client-a");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let response = nginx(&authz, &token, Some(&pem)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.headers().contains_key("x-auth-subject"));
}

/// A Traefik `ForwardAuth` request for `METHOD https://api.example.com/orders?page=2`.
fn traefik(authz: &Authz, method: &str, chain: &[&[u8]]) -> reqwest::RequestBuilder {
    let mut request = client()
        .get(authz.url("/"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.com")
        .header("x-forwarded-uri", "/orders?page=2");
    if !chain.is_empty() {
        let value = chain
            .iter()
            .map(|der| b64(der))
            .collect::<Vec<_>>()
            .join(",");
        request = request.header(
            "x-forwarded-tls-client-cert",
            utf8_percent_encode(&value, NON_ALPHANUMERIC).to_string(),
        );
    }
    request
}

#[tokio::test]
async fn traefik_a_bound_token_with_its_certificate_chain_is_allowed_and_a_stolen_one_refused() {
    let (_dir, jwks, authz) = authz("traefik", "127.0.0.1/32", "").await;
    let (der, _) = client_certificate("client-a");
    let (ca, _) = client_certificate("some CA");
    let (thief, _) = client_certificate("thief");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let bearer = format!("Bearer {token}");

    let allowed = traefik(&authz, "GET", &[&der, &ca])
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["x-auth-subject"], "alice");

    let refused = traefik(&authz, "GET", &[&thief])
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn traefik_a_dpop_proof_is_good_once_and_a_replay_is_refused() {
    let (_dir, jwks, authz) = authz("traefik", "127.0.0.1/32", "dpop = true").await;
    let key = dpop_key();
    let token = jwks.issuer.token("read", cnf_dpop(&key));
    let proof = proof(&key, "POST", "https://api.example.com/orders", &token, None);
    let send = || {
        traefik(&authz, "POST", &[])
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .send()
    };
    let allowed = send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["x-auth-binding"], "dpop");
    let replayed = send().await.unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn traefik_a_nonce_round_trip_through_the_listener() {
    let dir = TempDir::new();
    let key_file = dir.write("nonce.key", [9u8; 32]);
    let tokens = format!("dpop_nonce_key_file = {:?}", key_file.display().to_string());
    let (_dir, jwks, authz) = authz("traefik", "127.0.0.1/32", &tokens).await;
    let key = dpop_key();
    let token = jwks.issuer.token("read", cnf_dpop(&key));
    let url = "https://api.example.com/orders";
    let send = |proof: String| {
        traefik(&authz, "GET", &[])
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };
    let first = send(proof(&key, "GET", url, &token, None)).await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let second = send(proof(&key, "GET", url, &token, Some(&nonce)))
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::OK);
}

#[tokio::test]
async fn caddy_a_bound_token_with_its_certificate_is_allowed_and_a_stolen_one_refused() {
    let (_dir, jwks, authz) = authz("caddy", "127.0.0.1/32", "").await;
    let (der, _) = client_certificate("client-a");
    let (thief, _) = client_certificate("thief");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let send = |cert: &[u8]| {
        client()
            .get(authz.url("/"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .header("x-forwarded-uri", "/orders")
            .header("x-client-cert", b64(cert))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let allowed = send(&der).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["x-auth-subject"], "alice");
    assert_eq!(
        send(&thief).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn envoy_http_a_bound_token_with_its_xfcc_certificate_is_allowed_and_a_stolen_one_refused() {
    let (_dir, jwks, authz) = authz("envoy-http", "127.0.0.1/32", "").await;
    let (der, pem) = client_certificate("client-a");
    let (_, thief) = client_certificate("thief");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let send = |pem: &str| {
        let xfcc = format!(
            "By=spiffe://example/authz;Cert=\"{}\"",
            utf8_percent_encode(pem, NON_ALPHANUMERIC)
        );
        client()
            .get(authz.url("/orders?page=2"))
            .header("host", "api.example.com")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-client-cert", xfcc)
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let allowed = send(&pem).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["x-auth-subject"], "alice");
    assert_eq!(
        send(&thief).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}
