//! Runs `examples/tonic_server.rs` as an operator would: built by cargo, started as a separate
//! process with PEM and JWKS files on disk, driven by a real tonic client over mTLS.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::common::*;
use crate::whoami::{CountRequest, WhoamiClient, WhoamiRequest};
use tokio_stream::StreamExt as _;
use tonic::Code;

pub(crate) fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("tonic_server"))
}

/// The example on 127.0.0.1 (port 0: the OS picks), ready once it printed its start line.
struct RunningServer(ExampleProcess);

impl RunningServer {
    async fn start(args: &[&str]) -> Self {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend(args);
        RunningServer(ExampleProcess::spawn(example_binary(), &all).await)
    }

    /// `GET /readyz` (HTTP/2, with `identity`'s certificate): its status.
    async fn readyz(&self, pki: &Pki, identity: &ClientIdentity) -> reqwest::StatusCode {
        let client = https_client(&pki.ca_der(), Some(identity));
        let response = client.get(self.0.url("/readyz")).send().await;
        response.expect("GET /readyz").status()
    }

    async fn client(&self, ca_pem: &str, identity: &ClientIdentity) -> WhoamiClient {
        WhoamiClient::new(grpc_channel(self.0.addr(), ca_pem, identity).await)
    }

    /// Sends SIGTERM and expects a clean exit within 10 s.
    #[cfg(unix)]
    async fn terminate(self) {
        let status = self.0.terminate().await;
        assert!(status.success(), "exit after SIGTERM: {status}");
    }
}

/// A's token works for A (unary and streaming), and B cannot use it.
async fn assert_only_a_can_use(
    server: &RunningServer,
    ca_pem: &str,
    a: &ClientIdentity,
    b: &ClientIdentity,
    token: &str,
) {
    let mut with_a = server.client(ca_pem, a).await;
    let reply = with_a
        .whoami(with_token(WhoamiRequest {}, token))
        .await
        .expect("A is served")
        .into_inner();
    assert_eq!(reply.sub, "alice");
    assert_eq!(reply.x5t_s256, a.x5t_s256());
    let mut stream = with_a
        .count(with_token(CountRequest { count: 4 }, token))
        .await
        .expect("A may stream")
        .into_inner();
    let mut ns = Vec::new();
    while let Some(reply) = stream.next().await {
        ns.push(reply.expect("stream item").n);
    }
    assert_eq!(ns, [1, 2, 3, 4]);

    let mut with_b = server.client(ca_pem, b).await;
    for status in [
        with_b
            .whoami(with_token(WhoamiRequest {}, token))
            .await
            .unwrap_err(),
        with_b
            .count(with_token(CountRequest { count: 4 }, token))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            grpc_challenge(&status),
            invalid_token_challenge("access token bound to another certificate")
        );
    }
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

    let dir = ScratchDir::new("tonic-flags");
    let pki = Pki::new("tonic-example-flags-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let jwks_file = dir.write("jwks.json", jwks(&[&TestKey::es256("k1")]).to_string());
    let [cert, key, ca] = [&pem.server_cert, &pem.server_key, &pem.ca_cert]
        .map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let common = ["--issuer", ISSUER, "--audience", AUDIENCE];

    // Missing files, in both TLS modes, name the path.
    let missing = "/nonexistent/certbound-example/file.pem";
    for args in [
        vec!["--tls-cert", missing, "--tls-key", &key],
        vec![
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            missing,
        ],
        vec!["--tls-cert", missing, "--tls-key", &key, "--client-ca", &ca],
    ] {
        let mut args = args.clone();
        args.extend(["--jwks-file", &jwks_file]);
        args.extend(common);
        let out = run_to_exit(example_binary(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains(missing), "{args:?}");
    }
    // A CA file without certificates.
    let not_pem = dir.write("not.pem", "not a certificate\n");
    let mut args = vec![
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        &not_pem,
    ];
    args.extend(["--jwks-file", &jwks_file]);
    args.extend(common);
    let out = run_to_exit(example_binary(), &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("--client-ca"));

    // At most one of --jwks-url / --jwks-file, and only with exactly one --issuer (without
    // either, keys come from each issuer's discovery).
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
    ] {
        let mut args = tls.to_vec();
        args.extend(extra);
        let out = run_to_exit(example_binary(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line(&out).contains(names), "{args:?}");
    }

    let out = run_to_exit(example_binary(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--tls-cert",
        "--tls-key",
        "--client-ca",
        "--issuer",
        "--audience",
        "--jwks-url",
        "--jwks-file",
        "--dpop ",
        "--dpop-nonce ",
        "--dpop-nonce-key-file PATH",
        "--dpop-replay-redis URL",
        "--public-url URL",
    ] {
        assert!(usage.contains(flag), "{flag} missing from --help");
    }
}

#[tokio::test]
async fn jwks_file_with_client_ca_serves_clients_of_that_ca_only() {
    let dir = ScratchDir::new("tonic-file");
    let pki = Pki::new("tonic-example-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let key = TestKey::es256("k1");
    let jwks_file = dir.write("jwks.json", jwks(&[&key]).to_string());
    let [cert, key_path, ca] = [&pem.server_cert, &pem.server_key, &pem.ca_cert]
        .map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let server = RunningServer::start(&[
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
    assert_only_a_can_use(&server, &pki.ca_pem(), &a, &b, &token).await;
    // Open, before the token layer: static keys are always ready.
    assert_eq!(server.readyz(&pki, &a).await, reqwest::StatusCode::OK);

    // Unbound tokens are rejected by default.
    let unbound = key.sign(&claims_unbound());
    let status = server
        .client(&pki.ca_pem(), &a)
        .await
        .whoami(with_token(WhoamiRequest {}, &unbound))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    #[cfg(unix)]
    server.terminate().await;
}

#[tokio::test]
async fn jwks_url_without_client_ca_accepts_self_signed_certificates() {
    let key = TestKey::es256("k1");
    let jwks_server = JwksServer::start(jwks(&[&key])).await;
    let dir = ScratchDir::new("tonic-url");
    let pki = Pki::new("tonic-example-url-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let upstream_ca = dir.write("upstream-ca.pem", jwks_server.pki().ca_pem());
    let [cert, key_path] =
        [&pem.server_cert, &pem.server_key].map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let jwks_url = jwks_server.url(JWKS_PATH);
    let server = RunningServer::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key_path,
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &jwks_url,
        "--upstream-ca",
        &upstream_ca,
    ])
    .await;

    // RFC 8705 §6.2: self-signed client certificates, no CA at all.
    let a = Pki::self_signed_client("self-signed-a");
    let b = Pki::self_signed_client("self-signed-b");
    let token = key.sign(&claims_bound_to(&a.x5t_s256()));
    assert_only_a_can_use(&server, &pki.ca_pem(), &a, &b, &token).await;
    assert!(jwks_server.hits(JWKS_PATH) >= 1);
    assert_eq!(server.readyz(&pki, &a).await, reqwest::StatusCode::OK);
    // Keys that can no longer be fetched still verify: still ready.
    jwks_server.set_status(JWKS_PATH, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.readyz(&pki, &a).await, reqwest::StatusCode::OK);

    #[cfg(unix)]
    server.terminate().await;
}

#[tokio::test]
async fn tokens_of_two_discovered_issuers_are_accepted_and_a_third_issuers_are_refused() {
    let (key_a, key_b) = (TestKey::es256("a1"), TestKey::es256("b1"));
    let as_a = JwksServer::start(jwks(&[&key_a])).await;
    let as_b = JwksServer::start(jwks(&[&key_b])).await;
    let dir = ScratchDir::new("tonic-issuers");
    let pki = Pki::new("tonic-example-issuers-ca");
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let ca_a = dir.write("as-a.pem", as_a.pki().ca_pem());
    let ca_b = dir.write("as-b.pem", as_b.pki().ca_pem());
    let [cert, key_path] =
        [&pem.server_cert, &pem.server_key].map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let (issuer_a, issuer_b) = (as_a.base_url(), as_b.base_url());
    let server = RunningServer::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key_path,
        "--issuer",
        &issuer_a,
        "--issuer",
        &issuer_b,
        "--audience",
        AUDIENCE,
        "--upstream-ca",
        &ca_a,
        "--upstream-ca",
        &ca_b,
    ])
    .await;
    // Each issuer's keys found by RFC 8414 discovery at start.
    for as_server in [&as_a, &as_b] {
        assert_eq!(as_server.hits(AS_METADATA_PATH), 1);
        assert_eq!(as_server.hits(JWKS_PATH), 1);
    }

    let a = Pki::self_signed_client("self-signed-a");
    let b = Pki::self_signed_client("self-signed-b");
    let from = |iss: &str| {
        let mut claims = claims_bound_to(&a.x5t_s256());
        claims["iss"] = iss.into();
        claims
    };
    for (key, issuer) in [(&key_a, &issuer_a), (&key_b, &issuer_b)] {
        let token = key.sign(&from(issuer));
        assert_only_a_can_use(&server, &pki.ca_pem(), &a, &b, &token).await;
    }

    let fetches = |s: &JwksServer| s.hits(JWKS_PATH) + s.hits(AS_METADATA_PATH);
    let before = (fetches(&as_a), fetches(&as_b));
    let third = key_a.sign(&from("https://third.test"));
    let status = server
        .client(&pki.ca_pem(), &a)
        .await
        .whoami(with_token(WhoamiRequest {}, &third))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        grpc_challenge(&status).contains(r#"error="invalid_token""#),
        "{}",
        grpc_challenge(&status)
    );
    assert_eq!((fetches(&as_a), fetches(&as_b)), before, "no network call");
}
