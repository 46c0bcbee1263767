//! Runs `examples/resource_server.rs` as an operator would: built by cargo, started as a
//! separate process with PEM and JWKS files on disk, driven over real HTTPS with real client
//! certificates.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

/// The example, built once per test binary with the test's features.
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("resource_server"))
}

/// Runs the example to completion with `args`.
fn run_to_exit(args: &[&str]) -> Output {
    Command::new(example_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run resource_server")
}

/// The example, running. Killed on drop, so a failing test leaves no process behind.
struct RunningServer {
    child: Child,
    base: String,
    stdout: mpsc::Receiver<String>,
}

impl RunningServer {
    /// Starts the example on a free port with `args` (plus `--listen`) and returns once
    /// `/healthz` answers, with `trust` (the server certificate's CA) trusted.
    async fn start(args: &[&str], trust: &rustls_pki_types::CertificateDer<'static>) -> Self {
        Self::start_as("https", args, trust).await
    }

    /// [`RunningServer::start`] for a server speaking `scheme` (`http` behind a proxy).
    async fn start_as(
        scheme: &str,
        args: &[&str],
        trust: &rustls_pki_types::CertificateDer<'static>,
    ) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(example_binary())
            .arg("--listen")
            .arg(&listen)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn resource_server");
        let (tx, stdout) = mpsc::channel();
        let pipe = child.stdout.take().expect("stdout pipe");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = RunningServer {
            child,
            base: format!("{scheme}://{listen}"),
            stdout,
        };

        // Poll /healthz (no client certificate) every 50 ms, for at most 10 s.
        let client = https_client(trust, None);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..200 {
            tick.tick().await;
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                panic!("resource_server exited before it was ready: {status}");
            }
            if let Ok(resp) = client.get(server.url("/healthz")).send().await {
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.text().await.unwrap(), "ok");
                let first = server
                    .stdout
                    .recv_timeout(Duration::from_secs(5))
                    .expect("start line on stdout");
                assert_eq!(first, format!("listening on {scheme}://{listen}"));
                return server;
            }
        }
        panic!("resource_server did not answer /healthz within 10 s");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit.
    #[cfg(unix)]
    async fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..200 {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
        }
        panic!("resource_server did not exit within 10 s of SIGTERM");
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

    let out = run_to_exit(&["--bogus"]);
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
    let out = run_to_exit(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains(missing));

    // Exactly one of --jwks-url / --jwks-file.
    let mut both = vec![
        "--tls-cert=c.pem",
        "--jwks-file=j.json",
        "--jwks-url=https://x",
    ];
    both.extend(common);
    let mut neither = vec!["--tls-cert", "c.pem"];
    neither.extend(common);
    for args in [both, neither] {
        let out = run_to_exit(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains("--jwks-"), "{args:?}");
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
        (
            vec!["--tls-cert=c.pem", "--jwks-file=j.json", url],
            "--introspection-url",
        ),
    ] {
        let mut args = args;
        args.extend(common);
        let out = run_to_exit(&args);
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
        let out = run_to_exit(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains(names), "{args:?}");
    }

    let out = run_to_exit(&["--help"]);
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
    let server = RunningServer::start(
        &[
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
        ],
        &pki.ca_der(),
    )
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
    let server = RunningServer::start(
        &[
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
        ],
        &pki.ca_der(),
    )
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
    let server = RunningServer::start(
        &[
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
        ],
        &pki.ca_der(),
    )
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
    let server = RunningServer::start_as(
        "http",
        &[
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
        ],
        &pki.ca_der(),
    )
    .await;
    let upstream: std::net::SocketAddr = server.base["http://".len()..].parse().expect("addr");
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
