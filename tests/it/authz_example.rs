//! Runs `examples/authorization_server.rs` as an operator would: built by cargo, started as a
//! separate process with PEM and client-registration files on disk, driven over real HTTPS
//! by clients presenting real certificates (and DPoP proofs). The tokens it issues are then
//! used at a resource server built from the crate's own `BoundTokenLayer`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::authz_support::*;
use crate::common::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use certbound::dpop::Dpop;
use certbound::{BoundTokenLayer, JwtValidator};
use rcgen::{date_time_ymd, DnType};
use serde_json::{json, Value};

/// The example, built once per test binary with the test's features.
pub(crate) fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("authorization_server"))
}

fn one_line_stderr(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    stderr
}

#[test]
fn bad_flags_and_files_exit_2_with_one_line() {
    let dir = ScratchDir::new("flags");
    let pki = Pki::new("authz-example-flags-ca");
    let pem = pki.write_pem_files(&dir.0).expect("PEM files");
    let cert = pem.server_cert.to_str().unwrap().to_owned();
    let key = pem.server_key.to_str().unwrap().to_owned();
    let good_clients = dir.write("clients.json", "[]");
    let base = |clients: &str| {
        vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--tls-cert".to_owned(),
            cert.clone(),
            "--tls-key".to_owned(),
            key.clone(),
            "--issuer".to_owned(),
            "https://as.test".to_owned(),
            "--audience".to_owned(),
            "https://api.test".to_owned(),
            "--clients".to_owned(),
            clients.to_owned(),
        ]
    };
    let run = |args: Vec<String>| {
        run_to_exit(
            example_binary(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    let out = run_to_exit(example_binary(), &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_stderr(&out).contains("--bogus"));

    // Each required flag missing in turn.
    for flag in [
        "--listen",
        "--tls-cert",
        "--tls-key",
        "--issuer",
        "--audience",
        "--clients",
    ] {
        let mut args = base(&good_clients);
        let i = args.iter().position(|a| a == flag).unwrap();
        args.drain(i..i + 2);
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(one_line_stderr(&out).contains(flag), "{flag}");
    }

    let missing = "/nonexistent/certbound/clients.json";
    let out = run(base(missing));
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_stderr(&out).contains(missing));

    // Registrations that cannot work are refused at start.
    for (name, clients) in [
        (
            "two-subjects",
            json!([{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "c.example", "tls_client_auth_san_uri": "https://c.example"}]),
        ),
        (
            "no-subject",
            json!([{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth"}]),
        ),
        (
            "bad-dn",
            json!([{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=a;O=b"}]),
        ),
        (
            "no-jwks",
            json!([{"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth"}]),
        ),
        ("not-an-array", json!({"client_id": "c"})),
    ] {
        let path = dir.write(&format!("{name}.json"), clients.to_string());
        let out = run(base(&path));
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(one_line_stderr(&out).contains("--clients"), "{name}");
    }

    let mut args = base(&good_clients);
    args.extend(["--client-ca".to_owned(), "/nonexistent/ca.pem".to_owned()]);
    let out = run(args);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_stderr(&out).contains("/nonexistent/ca.pem"));

    let crl = dir.write(
        "crl.pem",
        TestCa::new("authz-example-flags-crl")
            .crl(&[])
            .pem()
            .unwrap(),
    );
    for (what, extra, expected) in [
        (
            "a reload interval that is no number",
            vec!["--reload-interval", "soon"],
            "--reload-interval",
        ),
        (
            "a missing CRL file",
            vec![
                "--client-ca",
                &pem.ca_cert.to_str().unwrap(),
                "--crl",
                "/nonexistent/c.crl",
            ],
            "/nonexistent/c.crl",
        ),
        ("a CRL without a client CA", vec!["--crl", &crl], "--crl"),
    ] {
        let mut args = base(&good_clients);
        args.extend(extra.into_iter().map(str::to_owned));
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert!(one_line_stderr(&out).contains(expected), "{what}");
    }

    let mut args = base(&good_clients);
    args[7] = "http://as.test".to_owned();
    let out = run(args);
    assert_eq!(out.status.code(), Some(2), "http issuer");
    one_line_stderr(&out);

    let out = run_to_exit(example_binary(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--clients"));
}

/// The JOSE header and the claims of a compact JWS, without verifying it.
fn decode_jwt(token: &str) -> (Value, Value) {
    let part = |i: usize| {
        let segment = token.split('.').nth(i).expect("JWS segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON")
    };
    (part(0), part(1))
}

async fn token_request(client: &reqwest::Client, url: &str, body: &str) -> (u16, Value) {
    let (status, body, headers) = post_form(client, url, body).await;
    assert_eq!(headers["cache-control"], "no-store", "{body}");
    (status, body)
}

#[tokio::test]
async fn issues_bound_tokens_that_the_resource_server_layer_accepts() {
    let dir = ScratchDir::new("run");
    let pki = Pki::new("authz-example-server-ca");
    let pem = pki.write_pem_files(&dir.0).expect("PEM files");
    let client_ca = TestCa::new("authz-example-client-ca");
    let client_ca_path = dir.write("client-ca.pem", client_ca.pem());
    let bank = client_ca.issue(|p| {
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        p.distinguished_name.push(DnType::CommonName, "bank-client");
    });
    let expired_bank = client_ca.issue(|p| {
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        p.distinguished_name.push(DnType::CommonName, "bank-client");
        p.not_before = date_time_ymd(2000, 1, 1);
        p.not_after = date_time_ymd(2001, 1, 1);
    });
    let own = Pki::self_signed_client("self-signed-client");
    let stranger = Pki::self_signed_client("stranger");
    let clients = json!([
        {"client_id": "bank", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": "CN=bank-client,O=Example", "scope": "read write"},
        {"client_id": "own", "token_endpoint_auth_method": "self_signed_tls_client_auth",
         "jwks": {"keys": [{"kty": "EC", "x5c": [STANDARD.encode(own.leaf_der())]}]}},
    ]);
    let clients_path = dir.write("clients.json", clients.to_string());
    let listen = format!("127.0.0.1:{}", free_port());
    let issuer = format!("https://{listen}");
    let server = ExampleProcess::spawn(
        example_binary(),
        &[
            "--listen",
            &listen,
            "--tls-cert",
            pem.server_cert.to_str().unwrap(),
            "--tls-key",
            pem.server_key.to_str().unwrap(),
            "--client-ca",
            &client_ca_path,
            &format!("--issuer={issuer}"),
            "--audience",
            AUDIENCE,
            "--clients",
            &clients_path,
        ],
    )
    .await;
    let ca = pki.ca_der();
    let token_url = server.url("/token");

    // RFC 8414 metadata, readable without a client certificate.
    let anonymous = https_client(&ca, None);
    let metadata: Value = anonymous
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], issuer.as_str());
    assert_eq!(metadata["token_endpoint"], token_url.as_str());
    assert_eq!(metadata["jwks_uri"], server.url("/jwks").as_str());
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        metadata["mtls_endpoint_aliases"]["token_endpoint"],
        token_url.as_str()
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["tls_client_auth", "self_signed_tls_client_auth"])
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA", "Ed25519"])
    );
    let jwks: Value = anonymous
        .get(server.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // tls_client_auth: a CA-issued certificate with the registered subject DN.
    let with_bank = https_client(&ca, Some(&bank));
    let (status, body) = token_request(
        &with_bank,
        &token_url,
        "grant_type=client_credentials&client_id=bank",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read write");
    let bank_token = body["access_token"].as_str().unwrap().to_owned();
    let (header, claims) = decode_jwt(&bank_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "bank");
    assert_eq!(claims["client_id"], "bank");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        claims["exp"].as_u64().unwrap(),
        claims["iat"].as_u64().unwrap() + 300
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    // The independent oracle: base64url(SHA-256(leaf DER)).
    assert_eq!(claims["cnf"]["x5t#S256"], bank.x5t_s256());

    let (status, body) = token_request(
        &with_bank,
        &token_url,
        "grant_type=client_credentials&client_id=bank&scope=read",
    )
    .await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("read")));
    let (status, body) = token_request(
        &with_bank,
        &token_url,
        "grant_type=client_credentials&client_id=bank&scope=admin",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) =
        token_request(&with_bank, &token_url, "grant_type=password&client_id=bank").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    // Failed authentications: 401 invalid_client over a completed TLS handshake.
    for (who, identity, client_id) in [
        ("bank as own", Some(&bank), "own"),
        ("own as bank", Some(&own), "bank"),
        ("stranger as own", Some(&stranger), "own"),
        ("expired bank", Some(&expired_bank), "bank"),
        ("no certificate", None, "bank"),
    ] {
        let client = https_client(&ca, identity);
        let (status, body) = token_request(
            &client,
            &token_url,
            &format!("grant_type=client_credentials&client_id={client_id}"),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{who}"
        );
    }
    let (status, body) =
        token_request(&with_bank, &token_url, "grant_type=client_credentials").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "no client_id"
    );

    // self_signed_tls_client_auth.
    let with_own = https_client(&ca, Some(&own));
    let (status, body) = token_request(
        &with_own,
        &token_url,
        "grant_type=client_credentials&client_id=own",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let own_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(decode_jwt(&own_token).1["cnf"]["x5t#S256"], own.x5t_s256());

    // With a DPoP proof for the token endpoint (RFC 9449 §5): bound to the proof's key only
    // (own did not register for certificate-bound tokens), token_type DPoP.
    let own_key = ProofKey::es256();
    let proof = own_key.sign(&own_key.header(), &proof_claims("POST", &token_url, None));
    let response = with_own
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", &proof)
        .body("grant_type=client_credentials&client_id=own")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let own_dpop_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        decode_jwt(&own_dpop_token).1["cnf"],
        json!({"jkt": own_key.jkt()})
    );
    // The same proof again: a replay.
    let response = with_own
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", &proof)
        .body("grant_type=client_credentials&client_id=own")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");

    // The crate's own resource server accepts the tokens, each on its own certificate only.
    let validator = JwtValidator::builder(&issuer, AUDIENCE)
        .jwks_url(server.url("/jwks"))
        .trust_root(ca.clone())
        .only_trust_roots()
        .require_at_jwt()
        .build()
        .unwrap();
    let rs = TestServer::start(
        any_certificate_tls(&pki),
        whoami_app(BoundTokenLayer::new(validator).dpop(Dpop::new())),
    )
    .await;
    let whoami = rs.url("/whoami");
    let response = get_with_token(&with_bank, &whoami, &bank_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "bank");
    assert_eq!(body["thumbprint"], bank.x5t_s256());
    let response = get_with_token(&with_own, &whoami, &own_token).await;
    assert_eq!(response.status(), 200);
    for (who, client, token) in [
        (
            "bank's token with own's certificate",
            &with_own,
            &bank_token,
        ),
        (
            "own's token with bank's certificate",
            &with_bank,
            &own_token,
        ),
        (
            "bank's token without a certificate",
            &anonymous,
            &bank_token,
        ),
    ] {
        let response = get_with_token(client, &whoami, token).await;
        assert_eq!(response.status(), 401, "{who}");
        let challenge = www_authenticate(&response).unwrap();
        assert!(challenge.contains("invalid_token"), "{who}: {challenge}");
    }
    // The DPoP token: with a fresh proof by own's key, no certificate needed; not as Bearer.
    let proof = own_key.proof("GET", &whoami, &own_dpop_token);
    let response = send(&anonymous, &whoami, dpop_headers(&own_dpop_token, &proof)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "own");
    let response = get_with_token(&with_own, &whoami, &own_dpop_token).await;
    assert_eq!(response.status(), 401, "DPoP token as Bearer");

    drop((with_bank, with_own, anonymous));
    #[cfg(unix)]
    assert!(server.terminate().await.success(), "exit after SIGTERM");
}

/// The example as its own process, its stderr lines read as they come (for the reload lines).
/// Killed on drop.
struct Watched {
    child: std::process::Child,
    base: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Watched {
    /// Spawns the example with `args` and returns once it is listening.
    async fn spawn(args: &[&str]) -> Watched {
        use std::io::{BufRead as _, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(example_binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the example");
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().expect("stdout")));
        let stderr = lines(Box::new(child.stderr.take().expect("stderr")));
        let first = tokio::task::spawn_blocking(move || {
            stdout.recv_timeout(std::time::Duration::from_secs(20))
        })
        .await
        .unwrap()
        .expect("a start line");
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("start line {first:?}"))
            .to_owned();
        Watched {
            child,
            base,
            stderr,
        }
    }

    /// Waits (at most 20 s for each) for a stderr line containing `text` and returns it.
    async fn stderr_line(&mut self, text: &str) -> String {
        self.stderr_lines(&[text]).await.remove(0)
    }

    /// Waits (at most 20 s for each) until stderr said every one of `texts`, in any order;
    /// the first line containing each.
    async fn stderr_lines(&mut self, texts: &[&str]) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; texts.len()];
        let mut seen = Vec::new();
        while found.iter().any(Option::is_none) {
            let rx = std::mem::replace(&mut self.stderr, std::sync::mpsc::channel().1);
            let (rx, line) = tokio::task::spawn_blocking(move || {
                let line = rx.recv_timeout(std::time::Duration::from_secs(20));
                (rx, line)
            })
            .await
            .unwrap();
            self.stderr = rx;
            let line = line.unwrap_or_else(|_| panic!("no stderr lines {texts:?}: {seen:?}"));
            for (text, slot) in texts.iter().zip(&mut found) {
                if slot.is_none() && line.contains(text) {
                    *slot = Some(line.clone());
                }
            }
            seen.push(line);
        }
        found.into_iter().flatten().collect()
    }

    #[cfg(unix)]
    fn hangup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed");
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces `path` by an atomic rename of a file written beside it.
fn replace_file(path: &str, contents: impl AsRef<[u8]>) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn registration(id: &str) -> Value {
    json!({"client_id": id, "token_endpoint_auth_method": "tls_client_auth",
           "tls_client_auth_subject_dn": format!("CN={id}")})
}

#[tokio::test]
async fn the_example_reloads_its_clients_file_when_it_changes_and_keeps_serving_after_a_broken_one()
{
    let dir = ScratchDir::new("reload-clients");
    let pki = Pki::new("authz-example-reload-server-ca");
    let pem = pki.write_pem_files(&dir.0).expect("PEM files");
    let client_ca = TestCa::new("authz-example-reload-client-ca");
    let ca_path = dir.write("client-ca.pem", client_ca.pem());
    let first = client_ca.issue_serial(1, "first");
    let second = client_ca.issue_serial(2, "second");
    let clients = dir.write("clients.json", json!([registration("first")]).to_string());
    let listen = format!("127.0.0.1:{}", free_port());
    let issuer = format!("https://{listen}");
    let mut server = Watched::spawn(&[
        "--listen",
        &listen,
        "--tls-cert",
        pem.server_cert.to_str().unwrap(),
        "--tls-key",
        pem.server_key.to_str().unwrap(),
        "--client-ca",
        &ca_path,
        "--issuer",
        &issuer,
        "--audience",
        AUDIENCE,
        "--clients",
        &clients,
        "--reload-interval",
        "1",
    ])
    .await;
    let token_url = format!("{}/token", server.base);
    let ca = pki.ca_der();
    let status_as = |identity: &ClientIdentity, id: &str| {
        let client = https_client(&ca, Some(identity));
        let url = token_url.clone();
        let body = format!("grant_type=client_credentials&client_id={id}");
        async move { token_request(&client, &url, &body).await.0 }
    };
    assert_eq!(status_as(&first, "first").await, 200);
    assert_eq!(status_as(&second, "second").await, 401);

    let both = json!([registration("first"), registration("second")]).to_string();
    replace_file(&clients, &both);
    server.stderr_line("reloaded --clients").await;
    assert_eq!(
        status_as(&second, "second").await,
        200,
        "registered while serving"
    );

    replace_file(&clients, &both[..both.len() / 2]);
    let line = server.stderr_line("--clients").await;
    assert!(line.contains("failed, keeping the previous one"), "{line}");
    assert_eq!(status_as(&first, "first").await, 200, "after a broken file");
    assert_eq!(
        status_as(&second, "second").await,
        200,
        "after a broken file"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_clients_and_the_crl_of_the_example_at_once() {
    let dir = ScratchDir::new("reload-sighup");
    let pki = Pki::new("authz-example-sighup-server-ca");
    let pem = pki.write_pem_files(&dir.0).expect("PEM files");
    let client_ca = TestCa::new("authz-example-sighup-client-ca");
    let ca_path = dir.write("client-ca.pem", client_ca.pem());
    let crl_path = dir.write("client-ca.crl", client_ca.crl(&[]).pem().unwrap());
    let first = client_ca.issue_serial(1, "first");
    let second = client_ca.issue_serial(2, "second");
    let clients = dir.write("clients.json", json!([registration("first")]).to_string());
    let listen = format!("127.0.0.1:{}", free_port());
    let issuer = format!("https://{listen}");
    let mut server = Watched::spawn(&[
        "--listen",
        &listen,
        "--tls-cert",
        pem.server_cert.to_str().unwrap(),
        "--tls-key",
        pem.server_key.to_str().unwrap(),
        "--client-ca",
        &ca_path,
        "--crl",
        &crl_path,
        "--issuer",
        &issuer,
        "--audience",
        AUDIENCE,
        "--clients",
        &clients,
        // Only on SIGHUP.
        "--reload-interval",
        "0",
    ])
    .await;
    let token_url = format!("{}/token", server.base);
    let ca = pki.ca_der();
    let status_as = |identity: &ClientIdentity, id: &str| {
        let client = https_client(&ca, Some(identity));
        let url = token_url.clone();
        let body = format!("grant_type=client_credentials&client_id={id}");
        async move { token_request(&client, &url, &body).await.0 }
    };
    assert_eq!(status_as(&first, "first").await, 200);

    // first's certificate revoked, second registered; then SIGHUP.
    replace_file(&crl_path, client_ca.crl(&[1]).pem().unwrap());
    replace_file(
        &clients,
        json!([registration("first"), registration("second")]).to_string(),
    );
    server.hangup();
    server
        .stderr_lines(&[
            "authorization_server: reloaded --clients",
            "authorization_server: reloaded --client-ca/--crl",
            // Its own certificate too (unchanged here: read again, taken again).
            "authorization_server: reloaded --tls-cert/--tls-key",
        ])
        .await;
    assert_eq!(status_as(&first, "first").await, 401, "revoked");
    assert_eq!(status_as(&second, "second").await, 200, "registered");
}
