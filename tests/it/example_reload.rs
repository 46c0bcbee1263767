//! The example servers' rotation and revocation contract, run as an operator would: the TLS
//! files in a Kubernetes-style secret directory swapped while serving, a bad replacement
//! reported in one stderr line while serving goes on, SIGHUP with `--reload-interval 0`, and
//! `--crl`.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use crate::common::*;
use rustls::AlertDescription;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(30);

/// The server files, a JWKS, and the flags that serve them from `secret`.
struct Setup {
    pki: Pki,
    dir: ScratchDir,
    secret: KubeSecretDir,
    jwks_file: String,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = ScratchDir::new(name);
        let pki = Pki::new(&format!("{name}-ca"));
        let (cert, key) = pki.server_identity_pem();
        let secret_dir = dir.0.join("secret");
        std::fs::create_dir(&secret_dir).expect("secret dir");
        let secret = KubeSecretDir::new(&secret_dir, &Self::files(&cert, &key, &pki.ca_pem()));
        let jwks_file = dir.write("jwks.json", jwks(&[&TestKey::es256("k1")]).to_string());
        Setup {
            pki,
            dir,
            secret,
            jwks_file,
        }
    }

    fn files<'a>(cert: &'a str, key: &'a str, ca: &'a str) -> [(&'static str, &'a [u8]); 3] {
        [
            ("tls.crt", cert.as_bytes()),
            ("tls.key", key.as_bytes()),
            ("ca.crt", ca.as_bytes()),
        ]
    }

    fn path(&self, name: &str) -> String {
        self.secret.path(name).to_str().expect("UTF-8").to_owned()
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &self.path("tls.crt"),
            "--tls-key",
            &self.path("tls.key"),
            "--client-ca",
            &self.path("ca.crt"),
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--jwks-file",
            &self.jwks_file,
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    }

    /// Swaps the secret to a renewed server certificate; returns its leaf.
    fn renew(&mut self) -> CertificateDer<'static> {
        let (cert, key) = self.pki.renewed_server_identity_pem();
        let ca = self.pki.ca_pem();
        self.secret.update(&Self::files(&cert, &key, &ca));
        CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM")
    }
}

/// The server certificate a new connection gets (after `GET /healthz` answered 200 on it).
async fn served_leaf(
    addr: SocketAddr,
    pki: &Pki,
    client: &ClientIdentity,
) -> CertificateDer<'static> {
    let connector = raw_tls_client(&[pki.ca_der()], Some(client));
    let mut conn = HeldConnection::open(&connector, addr)
        .await
        .expect("handshake");
    let (status, body) = conn.get("/healthz").await.expect("answer");
    assert_eq!(status, 200, "{body}");
    conn.server_leaf()
}

/// Opens new connections until one gets `leaf` (the watcher checks every second).
async fn until_served(
    addr: SocketAddr,
    pki: &Pki,
    client: &ClientIdentity,
    leaf: &CertificateDer<'static>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tokio::time::timeout(SAFETY, async {
        loop {
            tick.tick().await;
            if served_leaf(addr, pki, client).await == *leaf {
                return;
            }
        }
    })
    .await
    .expect("the renewed certificate served in time");
}

#[tokio::test]
async fn the_example_takes_a_renewed_certificate_and_reports_a_bad_one_in_one_line_while_serving() {
    let mut setup = Setup::new("example-reload");
    let alice = setup.pki.client_identity("alice");
    let args = setup.args(&["--reload-interval", "1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let binary = crate::example_resource_server::example_binary();
    let mut server = ExampleProcess::spawn_capturing_stderr(binary, &args).await;
    let addr = server.addr();

    let connector = raw_tls_client(&[setup.pki.ca_der()], Some(&alice));
    let mut held = HeldConnection::open(&connector, addr)
        .await
        .expect("handshake");
    assert_eq!(held.get("/healthz").await.expect("answer").0, 200);
    let first = held.server_leaf();

    let renewed = setup.renew();
    until_served(addr, &setup.pki, &alice, &renewed).await;
    assert_eq!(
        server.next_stderr_line().await,
        "resource_server: reloaded server TLS"
    );
    // The connection opened before goes on.
    assert_eq!(held.get("/healthz").await.expect("held connection").0, 200);
    assert_eq!(held.server_leaf(), first);

    // A certificate cut in half: refused, one line, the renewed one still served.
    let (cert, key) = setup.pki.renewed_server_identity_pem();
    let ca = setup.pki.ca_pem();
    setup
        .secret
        .update(&Setup::files(&cert[..cert.len() / 2], &key, &ca));
    let line = server.next_stderr_line().await;
    assert!(
        line.starts_with("resource_server: reloading server TLS failed, keeping the previous one:")
            && line.contains("tls.crt"),
        "{line}"
    );
    assert_eq!(served_leaf(addr, &setup.pki, &alice).await, renewed);

    // Repaired: taken, and the bad contents were reported once, not at every check.
    let repaired = setup.renew();
    until_served(addr, &setup.pki, &alice, &repaired).await;
    assert_eq!(
        server.next_stderr_line().await,
        "resource_server: reloaded server TLS"
    );
    assert_eq!(server.stderr_lines_so_far(), Vec::<String>::new());
    drop(setup.dir);
}

#[tokio::test]
async fn with_reload_interval_zero_the_example_reloads_on_sighup() {
    let mut setup = Setup::new("example-sighup");
    let alice = setup.pki.client_identity("alice");
    let args = setup.args(&["--reload-interval", "0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let binary = crate::example_resource_server::example_binary();
    let server = ExampleProcess::spawn(binary, &args).await;
    let addr = server.addr();
    let first = served_leaf(addr, &setup.pki, &alice).await;

    let renewed = setup.renew();
    // No interval: nothing reloads by itself.
    assert_eq!(served_leaf(addr, &setup.pki, &alice).await, first);
    server.signal("HUP");
    until_served(addr, &setup.pki, &alice, &renewed).await;
    // SIGHUP did not end it: it still serves, and stops cleanly.
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_example_refuses_certificates_revoked_by_its_crl_at_the_handshake() {
    let setup = Setup::new("example-crl");
    let alice = setup.pki.client_identity_serial("alice", 70);
    let bob = setup.pki.client_identity_serial("bob", 71);
    let crl = setup.dir.write(
        "clients.crl",
        setup.pki.crl(&[70], 3600).pem().expect("PEM"),
    );
    let args = setup.args(&["--crl", &crl]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let binary = crate::example_resource_server::example_binary();
    let server = ExampleProcess::spawn(binary, &args).await;
    let roots = [setup.pki.ca_der()];

    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&alice)).await,
        AlertDescription::CertificateRevoked
    );
    served_leaf(server.addr(), &setup.pki, &bob).await;
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn the_tonic_example_refuses_revoked_certificates_and_takes_a_renewed_certificate() {
    let mut setup = Setup::new("example-tonic-reload");
    let alice = setup.pki.client_identity_serial("alice", 80);
    let bob = setup.pki.client_identity_serial("bob", 81);
    let crl = setup
        .dir
        .write("clients.crl", setup.pki.crl(&[80], 3600).der());
    let args = setup.args(&["--crl", &crl, "--reload-interval", "1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let binary = crate::example_tonic_server::example_binary();
    let server = ExampleProcess::spawn(binary, &args).await;
    let roots = [setup.pki.ca_der()];

    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&alice)).await,
        AlertDescription::CertificateRevoked
    );
    // Bob's handshake is taken (an HTTP/1.1 request to a gRPC server gets an HTTP answer).
    let connector = raw_tls_client(&roots, Some(&bob));
    let mut conn = HeldConnection::open(&connector, server.addr())
        .await
        .expect("handshake");
    conn.get("/")
        .await
        .expect("an HTTP answer, not a TLS alert");
    let first = conn.server_leaf();

    let renewed = setup.renew();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tokio::time::timeout(SAFETY, async {
        loop {
            tick.tick().await;
            let mut conn = HeldConnection::open(&connector, server.addr())
                .await
                .expect("handshake");
            conn.get("/").await.expect("an HTTP answer");
            if conn.server_leaf() == renewed {
                return;
            }
            assert_eq!(conn.server_leaf(), first);
        }
    })
    .await
    .expect("the renewed certificate served in time");
}

#[test]
fn reload_and_crl_flags_are_checked_and_listed() {
    let one_line = |out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
        stderr
    };
    let dir = ScratchDir::new("example-reload-flags");
    let pki = Pki::new("example-reload-flags-ca");
    let pem = pki.write_pem_files(&dir.0).expect("PEM files");
    let [cert, key, ca] = [&pem.server_cert, &pem.server_key, &pem.ca_cert]
        .map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let jwks_file = dir.write("jwks.json", jwks(&[&TestKey::es256("k1")]).to_string());
    let crl = dir.write("clients.crl", pki.crl(&[], 3600).der());
    let garbage = dir.write("garbage.crl", "not a CRL");
    let base = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-file",
        &jwks_file,
    ];
    #[cfg_attr(not(feature = "tonic"), allow(unused_mut))]
    let mut binaries = vec![crate::example_resource_server::example_binary()];
    #[cfg(feature = "tonic")]
    binaries.push(crate::example_tonic_server::example_binary());
    for binary in binaries {
        for (extra, expected) in [
            (vec!["--crl", crl.as_str()], "--crl needs --client-ca"),
            (vec!["--client-ca", &ca, "--crl", &garbage], "garbage.crl"),
            (vec!["--reload-interval", "soon"], "--reload-interval"),
            (vec!["--reload-interval", "-1"], "--reload-interval"),
        ] {
            let args: Vec<&str> = base.iter().copied().chain(extra).collect();
            let out = run_to_exit(binary, &args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert!(one_line(&out).contains(expected), "{args:?}");
        }
        let usage = String::from_utf8(run_to_exit(binary, &["--help"]).stdout).expect("UTF-8");
        for flag in ["--crl PATH", "--reload-interval SECONDS", "SIGHUP"] {
            assert!(usage.contains(flag), "{flag} missing from --help");
        }
    }
}
