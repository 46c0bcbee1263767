//! Runs `examples/resource_server.rs` and `examples/tonic_server.rs` with `--dpop` as an operator
//! would: separate processes, PEM, JWKS and nonce-secret files on disk, real TLS, and clients
//! (reqwest, tonic) that sign a fresh DPoP proof per request, as a DPoP client does. With the
//! `redis` feature, two instances share a real `redis-server`.
//!
//! Proofs are signed, and the `jkt` the servers report is computed, by the tests' own
//! [`ProofKey`], independently of certbound.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::example_resource_server::{example_binary, start};

/// What the example servers need besides DPoP flags: TLS files (a client CA among them) and a
/// JWKS file with the key that signs the test's access tokens.
struct Fixture {
    dir: ScratchDir,
    pki: Pki,
    issuer_key: TestKey,
    /// TLS, issuer, audience and JWKS flags.
    common: Vec<String>,
    client_ca: String,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = ScratchDir::new(&format!("dpop-{name}"));
        let pki = Pki::new(&format!("dpop-{name}-ca"));
        let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
        let issuer_key = TestKey::es256("k1");
        let jwks_file = dir.write("jwks.json", jwks(&[&issuer_key]).to_string());
        let path = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_owned();
        let common = vec![
            "--tls-cert".into(),
            path(&pem.server_cert),
            "--tls-key".into(),
            path(&pem.server_key),
            format!("--issuer={ISSUER}"),
            "--audience".into(),
            AUDIENCE.into(),
            "--jwks-file".into(),
            jwks_file,
        ];
        Fixture {
            dir,
            pki,
            issuer_key,
            common,
            client_ca: path(&pem.ca_cert),
        }
    }

    /// The common flags, `--client-ca`, and `extra`.
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = self.args_without_client_ca(&["--client-ca", &self.client_ca]);
        args.extend(extra);
        args
    }

    /// The common flags and `extra`: any client certificate, self-signed too.
    fn args_without_client_ca<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args: Vec<&str> = self.common.iter().map(String::as_str).collect();
        args.extend(extra);
        args
    }

    /// An access token bound to the DPoP key `key` (`cnf.jkt`), and to a certificate too when
    /// `x5t` is given.
    fn token_for(&self, key: &ProofKey, x5t: Option<&str>) -> String {
        let mut claims = claims_dpop_bound(&key.jkt());
        if let Some(x5t) = x5t {
            claims["cnf"]["x5t#S256"] = json!(x5t);
        }
        self.issuer_key.sign(&claims)
    }

    /// A client trusting the server's CA, without a certificate.
    fn client(&self) -> reqwest::Client {
        https_client(&self.pki.ca_der(), None)
    }
}

/// A fresh proof by `key` for `method url`, bound to `token`, with `nonce` if given.
fn proof(key: &ProofKey, method: &str, url: &str, token: &str, nonce: Option<&str>) -> String {
    let mut claims = proof_claims(method, url, Some(token));
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    key.sign(&key.header(), &claims)
}

/// What a response says.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenge: String,
    nonce: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        serde_json::from_str(&self.body).expect("JSON body")
    }

    /// A `401` with a DPoP challenge carrying `error`.
    fn assert_dpop_error(&self, error: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert!(
            self.challenge.starts_with("DPoP ")
                && self.challenge.contains(&format!(r#"error="{error}""#)),
            "{self:?}"
        );
    }
}

/// `method url` with `Authorization: <scheme> <token>` and, if given, a `DPoP` proof.
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    authorization: Option<(&str, &str)>,
    proof: Option<&str>,
) -> Answer {
    let mut request = client.request(method, url);
    if let Some((scheme, token)) = authorization {
        request = request.header("authorization", format!("{scheme} {token}"));
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header").to_owned())
            .collect::<Vec<_>>()
    };
    let challenge = header("www-authenticate").join(", ");
    let nonce = header("dpop-nonce").into_iter().next();
    Answer {
        status: response.status(),
        challenge,
        nonce,
        body: response.text().await.expect("body"),
    }
}

/// `GET url` as a DPoP client: `Authorization: DPoP <token>` and a fresh proof by `key`.
async fn get_with_proof(
    client: &reqwest::Client,
    key: &ProofKey,
    url: &str,
    token: &str,
    nonce: Option<&str>,
) -> Answer {
    let proof = proof(key, "GET", url, token, nonce);
    send(
        client,
        reqwest::Method::GET,
        url,
        Some(("DPoP", token)),
        Some(&proof),
    )
    .await
}

#[tokio::test]
async fn a_dpop_bound_token_is_served_without_a_client_certificate_and_its_proof_only_once() {
    let fx = Fixture::new("basic");
    let server = start(&fx.args(&["--dpop"])).await;
    let whoami = server.url("/whoami");
    let client = fx.client();
    let key = ProofKey::es256();
    let token = fx.token_for(&key, None);

    let proof = proof(&key, "GET", &whoami, &token, None);
    let served = send(
        &client,
        reqwest::Method::GET,
        &whoami,
        Some(("DPoP", &token)),
        Some(&proof),
    )
    .await;
    let body = served.json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "client-a");
    assert!(body["x5t#S256"].is_null(), "{body}");

    // RFC 9449 §11.1: the same proof again is a replay.
    send(
        &client,
        reqwest::Method::GET,
        &whoami,
        Some(("DPoP", &token)),
        Some(&proof),
    )
    .await
    .assert_dpop_error("invalid_dpop_proof");
    // The DPoP-bound token as a bearer token, with or without a proof: refused.
    for proof in [None, Some(proof.as_str())] {
        let answer = send(
            &client,
            reqwest::Method::GET,
            &whoami,
            Some(("Bearer", &token)),
            proof,
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    }
    // A good proof by another key: the token is not theirs (invalid_token). A proof by the
    // right key for another URL: a bad proof.
    get_with_proof(&client, &ProofKey::es256(), &whoami, &token, None)
        .await
        .assert_dpop_error("invalid_token");
    let elsewhere = server.url("/elsewhere");
    let misdirected = self::proof(&key, "GET", &elsewhere, &token, None);
    send(
        &client,
        reqwest::Method::GET,
        &whoami,
        Some(("DPoP", &token)),
        Some(&misdirected),
    )
    .await
    .assert_dpop_error("invalid_dpop_proof");

    // Unknown paths and methods are behind the layer: 401 without a token, 404 / 405 with one.
    let nowhere = send(&client, reqwest::Method::GET, &elsewhere, None, None).await;
    assert_eq!(nowhere.status, StatusCode::UNAUTHORIZED, "{nowhere:?}");
    let nowhere = get_with_proof(&client, &key, &elsewhere, &token, None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{nowhere:?}");
    let post = self::proof(&key, "POST", &whoami, &token, None);
    let wrong_method = send(
        &client,
        reqwest::Method::POST,
        &whoami,
        Some(("DPoP", &token)),
        Some(&post),
    )
    .await;
    assert_eq!(
        wrong_method.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{wrong_method:?}"
    );
    let healthz = send(
        &client,
        reqwest::Method::GET,
        &server.url("/healthz"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (healthz.status, healthz.body.as_str()),
        (StatusCode::OK, "ok")
    );

    // Certificate-bound tokens work as before, on connections with the certificate only.
    let a = fx.pki.client_identity("client-a");
    let with_a = https_client(&fx.pki.ca_der(), Some(&a));
    let bound = fx.issuer_key.sign(&claims_bound_to(&a.x5t_s256()));
    let body = send(
        &with_a,
        reqwest::Method::GET,
        &whoami,
        Some(("Bearer", &bound)),
        None,
    )
    .await
    .json();
    assert_eq!(body["x5t#S256"], a.x5t_s256(), "{body}");
    assert!(body["jkt"].is_null(), "{body}");
    let stolen = send(
        &client,
        reqwest::Method::GET,
        &whoami,
        Some(("Bearer", &bound)),
        None,
    )
    .await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED, "{stolen:?}");
    // A certificate from outside --client-ca does not get through the handshake, even though a
    // certificate is optional.
    let stranger = Pki::self_signed_client("stranger");
    assert!(https_client(&fx.pki.ca_der(), Some(&stranger))
        .get(server.url("/healthz"))
        .send()
        .await
        .is_err());

    // Bound both ways: the certificate and a proof, and whoami shows both.
    let both = fx.token_for(&key, Some(&a.x5t_s256()));
    let body = get_with_proof(&with_a, &key, &whoami, &both, None)
        .await
        .json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
    assert_eq!(body["x5t#S256"], a.x5t_s256(), "{body}");
    let without_certificate = get_with_proof(&client, &key, &whoami, &both, None).await;
    assert_eq!(
        without_certificate.status,
        StatusCode::UNAUTHORIZED,
        "{without_certificate:?}"
    );
}

#[tokio::test]
async fn with_dpop_nonce_the_first_proof_gets_a_nonce_and_the_retry_with_it_is_served() {
    let fx = Fixture::new("nonce");
    let server = start(&fx.args(&["--dpop", "--dpop-nonce"])).await;
    let whoami = server.url("/whoami");
    let client = fx.client();
    let key = ProofKey::es256();
    let token = fx.token_for(&key, None);

    let first = get_with_proof(&client, &key, &whoami, &token, None).await;
    first.assert_dpop_error("use_dpop_nonce");
    let nonce = first.nonce.expect("DPoP-Nonce with use_dpop_nonce");
    let body = get_with_proof(&client, &key, &whoami, &token, Some(&nonce))
        .await
        .json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
    // A nonce the server never issued.
    get_with_proof(&client, &key, &whoami, &token, Some("made-up"))
        .await
        .assert_dpop_error("use_dpop_nonce");
}

#[tokio::test]
async fn two_instances_with_one_nonce_key_file_accept_each_others_nonces() {
    let fx = Fixture::new("nonce-file");
    let secret = fx.dir.write("nonce.key", [0x5a; 32]);
    let shared = fx.args(&["--dpop", "--dpop-nonce", "--dpop-nonce-key-file", &secret]);
    let (one, two) = tokio::join!(start(&shared), start(&shared));
    // Without the file: a random secret of its own.
    let other = start(&fx.args(&["--dpop", "--dpop-nonce"])).await;
    let client = fx.client();
    let key = ProofKey::es256();
    let token = fx.token_for(&key, None);

    let nonce = get_with_proof(&client, &key, &one.url("/whoami"), &token, None)
        .await
        .nonce
        .expect("DPoP-Nonce from the first instance");
    let body = get_with_proof(&client, &key, &two.url("/whoami"), &token, Some(&nonce))
        .await
        .json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
    get_with_proof(&client, &key, &one.url("/whoami"), &token, Some(&nonce))
        .await
        .json();
    get_with_proof(&client, &key, &other.url("/whoami"), &token, Some(&nonce))
        .await
        .assert_dpop_error("use_dpop_nonce");
}

#[tokio::test]
async fn a_rotated_nonce_key_file_is_reloaded_on_sighup_and_the_previous_keys_nonces_still_work() {
    let fx = Fixture::new("nonce-rotation");
    let key_file = fx.dir.write("nonce.key", [0x11; 32]);
    let new_key_file = fx.dir.write("new-nonce.key", [0x22; 32]);
    let binary = example_binary();
    let rotating = fx.args(&[
        "--dpop",
        "--dpop-nonce",
        "--dpop-nonce-key-file",
        &key_file,
        "--reload-interval",
        "0",
    ]);
    let mut one = ExampleProcess::spawn_capturing_stderr(binary, &rotating).await;
    // An instance that only ever had the new key: it accepts exactly the nonces made with it.
    let with_new_key = fx.args(&[
        "--dpop",
        "--dpop-nonce",
        "--dpop-nonce-key-file",
        &new_key_file,
    ]);
    let two = start(&with_new_key).await;
    let client = fx.client();
    let key = ProofKey::es256();
    let token = fx.token_for(&key, None);
    // A proof without a nonce: refused, with the server's current nonce.
    let first_nonce = |url: String| {
        let (client, key, token) = (&client, &key, &token);
        async move {
            let answer = get_with_proof(client, key, &url, token, None).await;
            answer.nonce.expect("DPoP-Nonce with use_dpop_nonce")
        }
    };

    let old_nonce = first_nonce(one.url("/whoami")).await;
    get_with_proof(&client, &key, &two.url("/whoami"), &token, Some(&old_nonce))
        .await
        .assert_dpop_error("use_dpop_nonce");

    // The key file rotated in place (atomic rename), then SIGHUP.
    replace_atomically(std::path::Path::new(&key_file), [0x22; 32]);
    one.signal("HUP");
    // SIGHUP reloads the server TLS too: each says so in a line of its own.
    let line = one.next_stderr_line_with("--dpop-nonce-key-file").await;
    assert_eq!(line, "resource_server: reloaded --dpop-nonce-key-file");
    // The previous key's nonce is still good for its step; the new nonces are the new key's.
    let body = get_with_proof(&client, &key, &one.url("/whoami"), &token, Some(&old_nonce))
        .await
        .json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
    let new_nonce = first_nonce(one.url("/whoami")).await;
    let body = get_with_proof(&client, &key, &two.url("/whoami"), &token, Some(&new_nonce))
        .await
        .json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");

    // A key too short to use: refused in one line, the new key kept.
    replace_atomically(std::path::Path::new(&key_file), [0x33; 8]);
    one.signal("HUP");
    let line = one.next_stderr_line_with("--dpop-nonce-key-file").await;
    assert!(
        line.starts_with(
            "resource_server: reloading --dpop-nonce-key-file failed, keeping the previous one: "
        ),
        "{line}"
    );
    let body = get_with_proof(&client, &key, &one.url("/whoami"), &token, Some(&new_nonce))
        .await
        .json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
}

#[tokio::test]
async fn a_public_url_with_a_path_prefix_is_what_htu_is_checked_against() {
    let fx = Fixture::new("public-url");
    let server = start(&fx.args(&["--dpop", "--public-url", "https://api.test/v1"])).await;
    let client = fx.client();
    let key = ProofKey::es256();
    let token = fx.token_for(&key, None);
    let whoami = server.url("/whoami");

    let by_url = |htu: &str| proof(&key, "GET", htu, &token, None);
    let answer = |proof: String| {
        let (client, whoami, token) = (&client, &whoami, &token);
        async move {
            send(
                client,
                reqwest::Method::GET,
                whoami,
                Some(("DPoP", token)),
                Some(&proof),
            )
            .await
        }
    };
    let body = answer(by_url("https://api.test/v1/whoami")).await.json();
    assert_eq!(body["jkt"], key.jkt(), "{body}");
    for htu in [
        "https://api.test/whoami",
        "https://api.test/v2/whoami",
        "https://other.test/v1/whoami",
        &whoami,
    ] {
        answer(by_url(htu))
            .await
            .assert_dpop_error("invalid_dpop_proof");
    }
}

#[test]
fn bad_dpop_flags_exit_2_with_one_line() {
    let fx = Fixture::new("flags");
    let short = fx.dir.write("short.key", [7u8; 31]);
    let missing = "/nonexistent/certbound-example/nonce.key";
    let cases: &[(&[&str], &str)] = &[
        (&["--dpop-nonce"], "--dpop"),
        (&["--dpop-replay-redis", "redis://127.0.0.1:6379"], "--dpop"),
        (
            &["--dpop", "--dpop-nonce-key-file", &short],
            "--dpop-nonce-key-file",
        ),
        (
            &["--dpop", "--dpop-nonce", "--dpop-nonce-key-file", missing],
            missing,
        ),
        (
            &["--dpop", "--dpop-nonce", "--dpop-nonce-key-file", &short],
            "--dpop-nonce-key-file",
        ),
        (
            &["--dpop", "--public-url", "ftp://api.test"],
            "--public-url",
        ),
        (&["--dpop", "--public-url", "api.test/v1"], "--public-url"),
        (
            &["--dpop", "--public-url", "https://api.test/v1?x=1"],
            "--public-url",
        ),
        (&["--dpop=yes"], "--dpop"),
        (
            &["--dpop", "--dpop-replay-redis", "http://127.0.0.1:6379"],
            "--dpop-replay-redis",
        ),
    ];
    let binaries = [
        ("resource_server", example_binary()),
        #[cfg(feature = "tonic")]
        (
            "tonic_server",
            crate::example_tonic_server::example_binary(),
        ),
    ];
    for (name, binary) in binaries {
        for (extra, names) in cases {
            let args = fx.args(extra);
            let out = run_to_exit(binary, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {extra:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name} {extra:?}: {stderr:?}");
            assert!(stderr.contains(names), "{name} {extra:?}: {stderr}");
        }
        if name == "tonic_server" {
            // The resource server takes --public-url alone too (its RFC 9728 resource).
            let args = fx.args(&["--public-url", "https://api.test"]);
            let out = run_to_exit(binary, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains("--dpop"), "{name}: {stderr}");
        }
        #[cfg(not(feature = "redis"))]
        {
            let args = fx.args(&["--dpop", "--dpop-replay-redis", "redis://127.0.0.1:6379"]);
            let out = run_to_exit(binary, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains("--features redis"), "{name}: {stderr}");
        }
    }
}

/// Two instances behind one public URL, sharing their replay state in a real Redis: of one proof
/// sent to both at the same moment, exactly one is served.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_instances_sharing_redis_serve_a_proof_sent_to_both_at_once_exactly_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let fx = Fixture::new("redis");
    let url = redis.url();
    let args = fx.args(&[
        "--dpop",
        "--dpop-replay-redis",
        &url,
        "--public-url",
        "https://api.test",
    ]);
    let (one, two) = tokio::join!(start(&args), start(&args));
    let client = fx.client();
    let key = ProofKey::es256();
    let token = fx.token_for(&key, None);

    for _ in 0..5 {
        let proof = proof(&key, "GET", "https://api.test/whoami", &token, None);
        let to = |server: &ExampleProcess| {
            let (client, token, proof) = (&client, &token, &proof);
            let url = server.url("/whoami");
            async move {
                send(
                    client,
                    reqwest::Method::GET,
                    &url,
                    Some(("DPoP", token)),
                    Some(proof),
                )
                .await
            }
        };
        let (a, b) = tokio::join!(to(&one), to(&two));
        let served = [&a, &b]
            .iter()
            .filter(|answer| answer.status == StatusCode::OK)
            .count();
        assert_eq!(served, 1, "{a:?} {b:?}");
        let refused = if a.status == StatusCode::OK { &b } else { &a };
        refused.assert_dpop_error("invalid_dpop_proof");
    }
}

/// The tonic example: the same layer on gRPC, proofs made by a tonic interceptor.
#[cfg(feature = "tonic")]
mod tonic_server {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio_stream::StreamExt as _;
    use tonic::service::Interceptor;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    use tonic::{Code, GrpcMethod, Status};

    use super::{proof, Fixture};
    use crate::common::*;
    use crate::example_tonic_server::example_binary;
    use crate::whoami::{CountRequest, WhoamiClient, WhoamiRequest};

    async fn start(args: &[&str]) -> ExampleProcess {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend(args);
        ExampleProcess::spawn(example_binary(), &all).await
    }

    /// A TLS channel to `addr` that presents no client certificate.
    async fn channel_without_certificate(addr: SocketAddr, ca_pem: &str) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        Channel::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("client TLS config")
            .timeout(Duration::from_secs(20))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e:?}"))
    }

    /// Adds `authorization: DPoP <token>` and a `dpop` proof for the call's method
    /// (`htu` = `base` + `/package.Service/Method`, `htm` POST) to every call, with the last
    /// nonce the server sent once there is one.
    #[derive(Clone)]
    struct DpopInterceptor {
        key: Arc<ProofKey>,
        token: String,
        base: String,
        /// `POST` for gRPC; anything else makes bad proofs.
        htm: &'static str,
        /// Sent instead of a fresh proof (a replay, when sent twice).
        fixed: Option<String>,
        nonce: Arc<Mutex<Option<String>>>,
    }

    impl Interceptor for DpopInterceptor {
        fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
            let method = request
                .extensions()
                .get::<GrpcMethod<'static>>()
                .ok_or_else(|| Status::internal("the client set no GrpcMethod"))?;
            let url = format!("{}/{}/{}", self.base, method.service(), method.method());
            let nonce = self.nonce.lock().expect("nonce lock").clone();
            let proof = match &self.fixed {
                Some(proof) => proof.clone(),
                None => proof(&self.key, self.htm, &url, &self.token, nonce.as_deref()),
            };
            let metadata = request.metadata_mut();
            metadata.insert(
                "authorization",
                format!("DPoP {}", self.token).parse().expect("metadata"),
            );
            metadata.insert("dpop", proof.parse().expect("metadata"));
            Ok(request)
        }
    }

    fn unauthenticated_with(status: &Status, error: &str) {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let challenge = grpc_challenge(status);
        assert!(
            challenge.starts_with("DPoP ") && challenge.contains(&format!(r#"error="{error}""#)),
            "{challenge}"
        );
    }

    #[tokio::test]
    async fn the_tonic_example_serves_dpop_proofs_from_an_interceptor_and_refuses_bad_ones() {
        let fx = Fixture::new("tonic");
        // With --client-ca: chains verified, the client certificate optional.
        let server = start(&fx.args(&["--dpop"])).await;
        let ca_pem = fx.pki.ca_pem();
        let channel = channel_without_certificate(server.addr(), &ca_pem).await;
        let key = Arc::new(ProofKey::es256());
        let token = fx.token_for(&key, None);
        let interceptor = DpopInterceptor {
            key: Arc::clone(&key),
            token: token.clone(),
            base: server.url(""),
            htm: "POST",
            fixed: None,
            nonce: Arc::default(),
        };

        let mut client = WhoamiClient::with_interceptor(channel.clone(), interceptor.clone());
        let reply = client
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .expect("served")
            .into_inner();
        assert_eq!(reply.jkt, key.jkt());
        assert_eq!(reply.sub, "alice");
        assert_eq!(reply.x5t_s256, "");
        let mut stream = client
            .count(tonic::Request::new(CountRequest { count: 3 }))
            .await
            .expect("may stream")
            .into_inner();
        let mut ns = Vec::new();
        while let Some(reply) = stream.next().await {
            ns.push(reply.expect("stream item").n);
        }
        assert_eq!(ns, [1, 2, 3]);

        // A proof for GET; a proof for the other method; one proof sent twice.
        let get = DpopInterceptor {
            htm: "GET",
            ..interceptor.clone()
        };
        let status = WhoamiClient::with_interceptor(channel.clone(), get)
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .unwrap_err();
        unauthenticated_with(&status, "invalid_dpop_proof");
        let count_url = server.url("/certbound.example.v1.Whoami/Count");
        let for_count = DpopInterceptor {
            fixed: Some(proof(&key, "POST", &count_url, &token, None)),
            ..interceptor.clone()
        };
        let status = WhoamiClient::with_interceptor(channel.clone(), for_count)
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .unwrap_err();
        unauthenticated_with(&status, "invalid_dpop_proof");
        let whoami_url = server.url("/certbound.example.v1.Whoami/Whoami");
        let once = DpopInterceptor {
            fixed: Some(proof(&key, "POST", &whoami_url, &token, None)),
            ..interceptor.clone()
        };
        let mut replaying = WhoamiClient::with_interceptor(channel.clone(), once);
        replaying
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .expect("first use of the proof");
        let status = replaying
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .unwrap_err();
        unauthenticated_with(&status, "invalid_dpop_proof");

        // Certificate-bound tokens still work for clients with their certificate.
        let a = fx.pki.client_identity("client-a");
        let bound = fx.issuer_key.sign(&claims_bound_to(&a.x5t_s256()));
        let reply = WhoamiClient::new(grpc_channel(server.addr(), &ca_pem, &a).await)
            .whoami(with_token(WhoamiRequest {}, &bound))
            .await
            .expect("certificate-bound token served")
            .into_inner();
        assert_eq!(reply.x5t_s256, a.x5t_s256());
        assert_eq!(reply.jkt, "");
    }

    #[tokio::test]
    async fn the_tonic_example_sends_a_nonce_in_metadata_and_serves_the_retry() {
        let fx = Fixture::new("tonic-nonce");
        // Without --client-ca: certbound's TLS acceptor, any certificate, optional.
        let server = start(&fx.args_without_client_ca(&["--dpop", "--dpop-nonce"])).await;
        let channel = channel_without_certificate(server.addr(), &fx.pki.ca_pem()).await;
        let key = Arc::new(ProofKey::es256());
        let interceptor = DpopInterceptor {
            key: Arc::clone(&key),
            token: fx.token_for(&key, None),
            base: server.url(""),
            htm: "POST",
            fixed: None,
            nonce: Arc::default(),
        };
        let nonce = Arc::clone(&interceptor.nonce);
        let mut client = WhoamiClient::with_interceptor(channel, interceptor);

        let status = client
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .unwrap_err();
        unauthenticated_with(&status, "use_dpop_nonce");
        let issued = status
            .metadata()
            .get("dpop-nonce")
            .expect("dpop-nonce metadata")
            .to_str()
            .expect("ASCII nonce")
            .to_owned();
        *nonce.lock().expect("nonce lock") = Some(issued);
        let reply = client
            .whoami(tonic::Request::new(WhoamiRequest {}))
            .await
            .expect("served with the nonce")
            .into_inner();
        assert_eq!(reply.jkt, key.jkt());
    }
}
