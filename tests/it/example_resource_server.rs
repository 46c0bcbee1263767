//! Runs `examples/resource_server.rs` as an operator would: built by cargo, started as a
//! separate process with PEM and JWKS files on disk, driven over real HTTPS with real client
//! certificates.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::common::*;
use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

/// The example, built once per test binary with the test's features.
pub(crate) fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("resource_server"))
}

/// The example on 127.0.0.1 (port 0: the OS picks), ready once it printed its start line.
pub(crate) async fn start(args: &[&str]) -> ExampleProcess {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend(args);
    ExampleProcess::spawn(example_binary(), &all).await
}

/// `GET path` with `token` (if any): status, `WWW-Authenticate`, body.
async fn get(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.expect("request");
    let status = resp.status();
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, resp.text().await.unwrap())
}

fn assert_invalid_token((status, challenge, _): (StatusCode, String, String)) {
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

fn assert_whoami(
    (status, _, body): (StatusCode, String, String),
    x5t: Option<&str>,
) -> serde_json::Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "client-a");
    assert_eq!(body["x5t#S256"].as_str(), x5t, "{body}");
    body
}

#[test]
fn bad_flags_and_unreadable_files_exit_2_with_one_line() {
    let one_line = |out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
        stderr
    };

    let out = run_to_exit(example_binary(), &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("--bogus"));

    let missing = "/nonexistent/certbound-example/server-cert.pem";
    let common = [
        "--tls-key",
        "/nonexistent/key.pem",
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
    ];
    let mut args = vec![
        "--tls-cert",
        missing,
        "--jwks-file",
        "/nonexistent/jwks.json",
    ];
    args.extend(common);
    let out = run_to_exit(example_binary(), &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains(missing));

    // At most one of --jwks-url / --jwks-file, and only with exactly one --issuer (without
    // either, keys come from each issuer's discovery); the step-up age is whole seconds; the
    // public URL is an https resource identifier.
    let tls = [
        "--tls-cert=c.pem",
        "--tls-key=k.pem",
        "--audience",
        AUDIENCE,
    ];
    for (extra, names) in [
        (
            vec![
                "--issuer",
                ISSUER,
                "--jwks-file=j.json",
                "--jwks-url=https://x",
            ],
            "--jwks-",
        ),
        (
            vec![
                "--issuer",
                ISSUER,
                "--issuer=https://b.test",
                "--jwks-url=https://x",
            ],
            "--jwks-url",
        ),
        (
            vec![
                "--issuer",
                ISSUER,
                "--issuer=https://b.test",
                "--jwks-file=j.json",
            ],
            "--jwks-file",
        ),
        (vec!["--jwks-url=https://x"], "--jwks-url"),
        (vec![], "--issuer"),
        (vec!["--issuer", ISSUER, "--issuer", ISSUER], "--issuer"),
        (
            vec!["--issuer", ISSUER, "--step-up-max-age=5m"],
            "--step-up-max-age",
        ),
        (
            vec!["--issuer", ISSUER, "--step-up-acr=a b"],
            "--step-up-acr",
        ),
        (
            vec!["--issuer", ISSUER, "--public-url=http://api.test"],
            "--public-url",
        ),
    ] {
        let mut args = tls.to_vec();
        args.extend(extra);
        let out = run_to_exit(example_binary(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains(names), "{args:?}");
    }

    // Introspection mode: its flags come together, and the TTL is whole seconds.
    let url = "--introspection-url=https://as.example/introspect";
    for (args, names) in [
        (vec!["--tls-cert=c.pem", url], "--introspection-client-id"),
        (
            vec!["--tls-cert=c.pem", url, "--introspection-client-id=rs"],
            "--introspection-client-secret",
        ),
        (
            vec![
                "--tls-cert=c.pem",
                url,
                "--introspection-client-id=rs",
                "--introspection-client-secret=s",
                "--introspection-cache-ttl=1.5",
            ],
            "--introspection-cache-ttl",
        ),
        (
            vec![
                "--tls-cert=c.pem",
                "--jwks-file=j.json",
                "--introspection-cache-ttl=3",
            ],
            "--introspection-",
        ),
    ] {
        let mut args = args;
        args.extend(common);
        let out = run_to_exit(example_binary(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains(names), "{args:?}");
    }

    // Behind a proxy: the forwarded-certificate flags come together and are checked.
    let jwks = ["--jwks-file=j.json"];
    for (args, names) in [
        (vec!["--trusted-proxy=10.0.0.0/8"], "--trust-forwarded-cert"),
        (vec!["--forwarded-cert-header=x"], "--trust-forwarded-cert"),
        (
            vec!["--trust-forwarded-cert=apache"],
            "--trust-forwarded-cert",
        ),
        (
            vec![
                "--trust-forwarded-cert=nginx",
                "--trusted-proxy=10.0.0.0/33",
            ],
            "--trusted-proxy",
        ),
        (
            vec![
                "--trust-forwarded-cert=nginx",
                "--forwarded-cert-header=bad header",
            ],
            "--forwarded-cert-header",
        ),
        (
            vec!["--trust-forwarded-cert=nginx", "--client-ca=ca.pem"],
            "--client-ca",
        ),
        (vec![], "--tls-cert"),
    ] {
        let mut args = args;
        args.extend(jwks);
        args.extend(&common[2..]);
        let out = run_to_exit(example_binary(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains(names), "{args:?}");
    }

    let out = run_to_exit(example_binary(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(help.contains("--jwks-url"));
    assert!(help.contains(
        "--introspection-url URL --introspection-client-id ID --introspection-client-secret SECRET"
    ));
    assert!(help.contains("--introspection-cache-ttl SECONDS"));
    for flag in [
        "--trust-forwarded-cert FORMAT",
        "--forwarded-cert-header NAME",
        "--trusted-proxy CIDR",
        "--dpop ",
        "--dpop-nonce ",
        "--dpop-nonce-key-file PATH",
        "--dpop-replay-redis URL",
        "--public-url URL",
        "--step-up-acr VALUE",
        "--step-up-max-age SECONDS",
        "/.well-known/oauth-protected-resource",
        "GET /step-up",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
}

/// A's bound token works on A's connection, and neither with B's certificate (a stolen token)
/// nor without a certificate. Returns A's client for further requests.
async fn assert_only_a_can_use(
    ca: &CertificateDer<'static>,
    whoami: &str,
    a: &ClientIdentity,
    b: &ClientIdentity,
    token: &str,
) -> reqwest::Client {
    let with_a = https_client(ca, Some(a));
    assert_whoami(
        get(&with_a, whoami.to_owned(), Some(token)).await,
        Some(&a.x5t_s256()),
    );
    assert_invalid_token(get(&https_client(ca, Some(b)), whoami.to_owned(), Some(token)).await);
    assert_invalid_token(get(&https_client(ca, None), whoami.to_owned(), Some(token)).await);
    with_a
}

#[tokio::test]
async fn jwks_file_with_client_ca() {
    let dir = ScratchDir::new("file");
    let pki = Pki::new("example-test-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let key = TestKey::es256("k1");
    let jwks_file = dir.write("jwks.json", jwks(&[&key]).to_string());
    let [cert, key_path, ca] = [&pem.server_cert, &pem.server_key, &pem.ca_cert]
        .map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let server = start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key_path,
        "--client-ca",
        &ca,
        &format!("--issuer={ISSUER}"),
        "--audience",
        AUDIENCE,
        "--jwks-file",
        &jwks_file,
    ])
    .await;

    let a = pki.client_identity("client-a");
    let b = pki.client_identity("client-b");
    let token = key.sign(&claims_bound_to(&a.x5t_s256()));
    let whoami = server.url("/whoami");
    let ca = pki.ca_der();

    let with_a = assert_only_a_can_use(&ca, &whoami, &a, &b, &token).await;
    // An unbound token is rejected by default.
    let unbound = key.sign(&claims_unbound());
    assert_invalid_token(get(&with_a, whoami.clone(), Some(&unbound)).await);
    // A certificate from outside the configured CA does not get through the handshake.
    let stranger = Pki::self_signed_client("stranger");
    let stranger_token = key.sign(&claims_bound_to(&stranger.x5t_s256()));
    assert!(https_client(&ca, Some(&stranger))
        .get(&whoami)
        .bearer_auth(stranger_token)
        .send()
        .await
        .is_err());

    let (status, _, body) = get(&https_client(&ca, None), server.url("/healthz"), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));

    drop(with_a);
    #[cfg(unix)]
    assert!(server.terminate().await.success(), "exit after SIGTERM");
}

#[tokio::test]
async fn jwks_url_with_upstream_ca_and_any_client_certificate() {
    let dir = ScratchDir::new("url");
    let key = TestKey::es256("k1");
    let jwks_server = JwksServer::start(jwks(&[&key])).await;
    let upstream_ca = dir.write("upstream-ca.pem", jwks_server.pki().ca_pem());
    let pki = Pki::new("example-test-server-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let [cert, key_path] =
        [&pem.server_cert, &pem.server_key].map(|p| p.to_str().expect("UTF-8 path").to_owned());
    // No --client-ca: any client certificate (self-signed too) is accepted at the TLS layer.
    let server = start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key_path,
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &jwks_server.url(JWKS_PATH),
        "--upstream-ca",
        &upstream_ca,
        "--allow-unbound",
    ])
    .await;
    // Prefetched at start.
    assert!(jwks_server.hits(JWKS_PATH) >= 1);

    let a = Pki::self_signed_client("client-a");
    let b = Pki::self_signed_client("client-b");
    let ca = pki.ca_der();
    let whoami = server.url("/whoami");
    let token = key.sign(&claims_bound_to(&a.x5t_s256()));
    let with_a = assert_only_a_can_use(&ca, &whoami, &a, &b, &token).await;
    // --allow-unbound: a token without cnf is accepted, and whoami shows no binding.
    let unbound = key.sign(&claims_unbound());
    assert_whoami(get(&with_a, whoami.clone(), Some(&unbound)).await, None);

    let (status, _, body) = get(&https_client(&ca, None), server.url("/healthz"), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn introspection_mode_with_upstream_ca_and_no_cache() {
    let dir = ScratchDir::new("introspection");
    let as_server = IntrospectionServer::start(Introspection::basic("rs", "rs secret")).await;
    let upstream_ca = dir.write("upstream-ca.pem", as_server.pki().ca_pem());
    let pki = Pki::new("example-introspection-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let [cert, key_path, ca_path] = [&pem.server_cert, &pem.server_key, &pem.ca_cert]
        .map(|p| p.to_str().expect("UTF-8 path").to_owned());
    // No --issuer / --audience: optional in introspection mode.
    let server = start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key_path,
        "--client-ca",
        &ca_path,
        "--introspection-url",
        &as_server.url(),
        "--introspection-client-id",
        "rs",
        "--introspection-client-secret",
        "rs secret",
        "--introspection-cache-ttl",
        "0",
        "--upstream-ca",
        &upstream_ca,
    ])
    .await;

    let a = pki.client_identity("client-a");
    let b = pki.client_identity("client-b");
    as_server.set_answer(
        "opaque-a",
        serde_json::json!({
            "active": true, "sub": "alice", "client_id": "client-a", "scope": "read",
            "exp": now() + 600, "cnf": {"x5t#S256": a.x5t_s256()},
        }),
    );
    let ca = pki.ca_der();
    let whoami = server.url("/whoami");
    let with_a = assert_only_a_can_use(&ca, &whoami, &a, &b, "opaque-a").await;
    let before = as_server.total_calls();
    assert_whoami(
        get(&with_a, whoami.clone(), Some("opaque-a")).await,
        Some(&a.x5t_s256()),
    );
    assert_eq!(
        as_server.total_calls(),
        before + 1,
        "TTL 0: every request asks"
    );
    // Revoked at the authorization server: refused on the very next request.
    as_server.revoke("opaque-a");
    assert_invalid_token(get(&with_a, whoami.clone(), Some("opaque-a")).await);
}

/// Plain HTTP behind a real nginx that terminates TLS and forwards the certificate
/// (`--trust-forwarded-cert nginx`), trusting only the proxy's source address.
#[tokio::test]
async fn plain_http_behind_nginx() {
    if !ProxyKind::Nginx.available() {
        return;
    }
    let dir = ScratchDir::new("nginx");
    let pki = Pki::new("example-proxy-ca");
    let key = TestKey::es256("k1");
    let jwks_file = dir.write("jwks.json", jwks(&[&key]).to_string());
    let server = start(&[
        "--trust-forwarded-cert",
        "nginx",
        "--trusted-proxy",
        &format!("{PROXY_SOURCE}/32"),
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-file",
        &jwks_file,
    ])
    .await;
    let upstream: std::net::SocketAddr = server.addr();
    let proxy = Proxy::start(ProxyKind::Nginx, &pki, upstream).await;

    let a = pki.client_identity("client-a");
    let b = pki.client_identity("client-b");
    let token = key.sign(&claims_bound_to(&a.x5t_s256()));
    assert_only_a_can_use(&pki.ca_der(), &proxy.url("/whoami"), &a, &b, &token).await;

    // Directly to the server, forging nginx's header with A's certificate: not a trusted peer.
    let escaped: String = a
        .cert_pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let forged = https_client(&pki.ca_der(), None)
        .get(server.url("/whoami"))
        .bearer_auth(&token)
        .header("x-ssl-client-cert", escaped)
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}
