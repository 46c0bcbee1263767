//! Runs `examples/client.rs` as an operator would: built by cargo, its own process, PEM files
//! on disk, against the example authorization server's routes and a `BoundTokenLayer`
//! resource server served by this test over real mutual TLS.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use certbound::dpop::{Dpop, DpopKey, DpopNonces};
use certbound::{BoundTokenLayer, ResourceMetadata};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::client_tokens::{self_signed, Authority};
use crate::common::*;

/// The example, built once per test binary with the test's features.
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("client"))
}

/// Runs the client with `args` without holding up the servers this test runs.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        run_to_exit(
            example_binary(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    })
    .await
    .expect("client process")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Files for client `client_id` (registered with `authority`), and the flags naming them.
struct Files {
    dir: ScratchDir,
    base: Vec<String>,
}

fn files(authority: &Authority, test: &ClientIdentity, client_id: &str, name: &str) -> Files {
    let dir = ScratchDir::new(name);
    let cert = dir.write("client.pem", &test.cert_pem);
    let key = dir.write("client.key", &test.key_pem);
    let ca = dir.write("ca.pem", authority.pki.ca_pem());
    let base = [
        "--issuer",
        &authority.issuer,
        "--client-id",
        client_id,
        "--cert",
        &cert,
        "--key",
        &key,
        "--ca",
        &ca,
    ]
    .map(str::to_owned)
    .to_vec();
    Files { dir, base }
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(more.iter().map(|s| (*s).to_owned()))
        .collect()
}

#[tokio::test]
async fn bad_flags_and_unreadable_files_exit_2_with_one_line() {
    let (test, _, registration) = self_signed("flags");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let files = files(&authority, &test, "flags", "client-flags");
    let url = "https://127.0.0.1:1/whoami";
    let cases: Vec<(Vec<String>, &str)> = vec![
        (files.base.clone(), "missing --url"),
        (
            with(&files.base, &["--url", url, "--token-endpoint", url]),
            "at most one of --issuer and --token-endpoint",
        ),
        (
            with(&files.base, &["--url", url, "--count", "0"]),
            "--count",
        ),
        (
            with(&files.base, &["--url", url, "--interval", "soon"]),
            "--interval",
        ),
        (
            with(&files.base, &["--url", url, "--reload-interval", "-1"]),
            "--reload-interval",
        ),
        (
            with(&files.base, &["--url", url, "--method", "GE T"]),
            "--method",
        ),
        (with(&files.base, &["--url", "ftp://x/"]), "--url"),
        (
            with(&files.base, &["--url", url, "--dpop-key", "k.pem"]),
            "--dpop-key needs --dpop",
        ),
        (
            with(&files.base, &["--url", url, "--bogus", "1"]),
            "unknown flag --bogus",
        ),
        (
            with(
                &files.base,
                &["--url", url, "--dpop", "--dpop-key", "/nonexistent/k.pem"],
            ),
            "/nonexistent/k.pem",
        ),
        (
            with(
                &files.base[..8],
                &["--url", url, "--ca", "/nonexistent/ca.pem"],
            ),
            "/nonexistent/ca.pem",
        ),
    ];
    for (args, expected) in cases {
        let out = run(args.clone()).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // A key that is not the certificate's.
    let other = Pki::self_signed_client("other");
    let wrong_key = files.dir.write("other.key", &other.key_pem);
    let mut args = with(&files.base, &["--url", url]);
    args[7] = wrong_key;
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not the client certificate's"));
    let help = run(vec!["--help".to_owned()]).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("--token-endpoint"));
}

#[tokio::test]
async fn certificate_bound_calls_print_one_line_each_and_exit_0() {
    let (test, _, registration) = self_signed("operator");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let api = authority.resource_server().await;
    let files = files(&authority, &test, "operator", "client-bound");
    let out = run(with(
        &files.base,
        &[
            "--url",
            &api.url("/whoami"),
            "--count",
            "3",
            "--scope",
            "read",
        ],
    ))
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (n, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("{} 200 {{", n + 1)), "{line}");
        assert!(line.contains(&test.x5t_s256()), "{line}");
    }
    assert!(
        !stdout.contains("eyJ"),
        "no token or proof in the output: {stdout}"
    );
    assert_eq!(authority.requests(), 1);

    // A resource that answers 404: every call is still made and printed, and the exit is 1.
    let out = run(with(
        &files.base,
        &["--url", &api.url("/missing"), "--count", "2"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.contains(" 404 "))
            .count(),
        2
    );
}

#[tokio::test]
async fn dpop_calls_follow_the_nonce_and_outlive_an_expiring_token() {
    let (test, _, registration) = self_signed("dpop-operator");
    let authority = Authority::start(json!([registration]), 2, None).await;
    let nonces = DpopNonces::new([5u8; 32]).expect("secret");
    let layer = BoundTokenLayer::new(authority.validator()).dpop(Dpop::new().require_nonce(nonces));
    let api = TestServer::start(any_certificate_tls(&authority.pki), whoami_app(layer)).await;
    let files = files(&authority, &test, "dpop-operator", "client-dpop");
    let key = DpopKey::generate(Algorithm::EdDSA).expect("key");
    let key_path = files.dir.write("dpop.pem", key.to_pkcs8_pem());
    let out = run(with(
        &files.base,
        &[
            "--url",
            &api.url("/whoami"),
            "--dpop",
            "--dpop-key",
            &key_path,
            "--count",
            "3",
            "--interval",
            "1.2",
        ],
    ))
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in &lines {
        assert!(
            line.contains(" 200 ") && line.contains(&key.thumbprint().to_string()),
            "{line}"
        );
    }
    // Tokens live 2 s (handed out for 1 s): calls 1.2 s apart need a new one each.
    assert_eq!(authority.requests(), 3);
}

#[tokio::test]
async fn refusals_and_unreachable_servers_exit_1_within_bounded_time() {
    let (test, _, registration) = self_signed("refused");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let api = authority.resource_server().await;
    let files = files(&authority, &test, "someone-else", "client-refused");
    let out = run(with(&files.base, &["--url", &api.url("/whoami")])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("no token: ") && stdout.contains("invalid_client"),
        "{stdout}"
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let mut args = with(&files.base[2..], &["--url", &api.url("/whoami")]);
    args.extend([
        "--token-endpoint".to_owned(),
        format!("https://{closed}/token"),
    ]);
    let started = Instant::now();
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("unavailable"),
        "{}",
        text(&out.stdout)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A resource server whose resource is its origin, `https://127.0.0.1:PORT`: `GET /whoami`
/// behind the token layer, the RFC 9728 document naming `published` (given the origin) as its
/// resource and `authority` as its authorization server (none when `published` gives `None`),
/// and a count of the requests that carried an `Authorization` header.
async fn discoverable_api(
    authority: &Authority,
    published: impl FnOnce(&str) -> Option<String>,
) -> (TestServer, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("https://{}", listener.local_addr().expect("address"));
    let layer = BoundTokenLayer::new(authority.validator()).dpop(Dpop::new());
    let mut app = axum::Router::new()
        .route("/whoami", axum::routing::get(whoami))
        .route_layer(layer);
    if let Some(resource) = published(&origin) {
        let service = ResourceMetadata::new(&resource)
            .expect("resource")
            .authorization_server(&authority.issuer)
            .build()
            .expect("metadata");
        app = app.route_service(service.path(), service.clone());
    }
    let with_token = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&with_token);
    let app = app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            if request.headers().contains_key("authorization") {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            next.run(request)
        },
    ));
    let server = TestServer::start_on(listener, any_certificate_tls(&authority.pki), app);
    (server, with_token)
}

#[tokio::test]
async fn without_issuer_or_token_endpoint_the_client_finds_the_authorization_server_in_the_metadata(
) {
    let (test, _, registration) = self_signed("finder");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let (api, with_token) = discoverable_api(&authority, |origin| Some(origin.to_owned())).await;
    let files = files(&authority, &test, "finder", "client-finder");
    let origin = api.url("");
    let origin = origin.trim_end_matches('/');
    let out = run(with(&files.base[2..], &["--url", &api.url("/whoami")])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("1 200 {"), "{stdout}");
    assert!(stdout.contains(&test.x5t_s256()), "{stdout}");
    assert_eq!(authority.forms().len(), 1);
    // Without --resource, the metadata's resource names the resource.
    assert_eq!(authority.requested_resources(0), [origin]);
    assert_eq!(with_token.load(Ordering::SeqCst), 1);

    // --resource still names it when given.
    let out = run(with(
        &files.base[2..],
        &[
            "--url",
            &api.url("/whoami"),
            "--resource",
            "https://named.example/",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(authority.requested_resources(1), ["https://named.example/"]);
}

#[tokio::test]
async fn metadata_that_is_missing_or_names_another_resource_exits_1_with_nothing_sent() {
    let (test, _, registration) = self_signed("wary");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let files = files(&authority, &test, "wary", "client-wary");
    let (elsewhere, elsewhere_tokens) = discoverable_api(&authority, |origin| {
        Some(origin.replace("127.0.0.1", "localhost"))
    })
    .await;
    let (bare, bare_tokens) = discoverable_api(&authority, |_| None).await;
    for (api, expected) in [
        (&elsewhere, "is not https://127.0.0.1:"),
        (&bare, "no protected resource metadata at"),
    ] {
        let out = run(with(&files.base[2..], &["--url", &api.url("/whoami")])).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(
            stdout.starts_with("no token: the resource's metadata is unusable: ")
                && stdout.contains(expected),
            "{stdout}"
        );
    }
    assert_eq!(authority.all_requests(), 0, "nothing sent to the AS");
    assert_eq!(elsewhere_tokens.load(Ordering::SeqCst), 0);
    assert_eq!(bare_tokens.load(Ordering::SeqCst), 0);
}

/// The example client against the example servers: the example resource server (its own
/// process, trusting the example authorization server by `--issuer` and discovery) names the
/// authorization server in its RFC 9728 document, and the client, given only the API's URL,
/// finds it there, gets a token for that resource and calls the API with it.
#[tokio::test]
async fn the_client_given_only_the_apis_url_calls_the_example_resource_server() {
    let (test, _, registration) = self_signed("url-only");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let files = files(&authority, &test, "url-only", "client-url-only");
    // The resource server's certificate from the authorization server's CA, which the client
    // trusts (`--ca`) and the resource server trusts for discovery (`--upstream-ca`).
    let pem = authority
        .pki
        .write_pem_files(&files.dir.0)
        .expect("write PEM files");
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_owned();
    let server = crate::example_resource_server::start(&[
        "--tls-cert",
        &path(&pem.server_cert),
        "--tls-key",
        &path(&pem.server_key),
        "--issuer",
        &authority.issuer,
        "--audience",
        AUDIENCE,
        "--upstream-ca",
        &path(&pem.ca_cert),
    ])
    .await;
    let out = run(with(&files.base[2..], &["--url", &server.url("/whoami")])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("1 200 {"), "{stdout}");
    assert!(stdout.contains(&test.x5t_s256()), "{stdout}");
    assert!(
        stdout.contains(&authority.issuer),
        "the token's iss: {stdout}"
    );
    // The token was asked for the resource the document names: the server's origin.
    let forms = authority.forms();
    assert_eq!(forms.len(), 1);
    assert_eq!(
        authority.requested_resources(0),
        [format!("https://{}", server.addr())]
    );
}

#[tokio::test]
async fn a_certificate_renewed_mid_run_is_reloaded_and_the_next_calls_present_it_with_a_new_token()
{
    // One client, registered with its certificate and the renewal (RFC 8705 §2.2 jwks).
    let (old, _, mut registration) = self_signed("renewing");
    let (new, _, renewed) = self_signed("renewing");
    let mut keys = registration["jwks"]["keys"]
        .as_array()
        .expect("keys")
        .clone();
    keys.extend(renewed["jwks"]["keys"].as_array().expect("keys").clone());
    registration["jwks"]["keys"] = serde_json::Value::Array(keys);
    let authority = Authority::start(json!([registration]), 300, None).await;
    let files = files(&authority, &old, "renewing", "client-renewing");
    let (cert, key) = (
        files.dir.0.join("client.pem"),
        files.dir.0.join("client.key"),
    );

    // The client's stderr, line by line.
    let (lines, stderr_lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stderr_lines = Arc::new(tokio::sync::Mutex::new(stderr_lines));
    // The resource server answers the first call only once it has renewed the files (by
    // rename) and the client has said on stderr that it reloaded them: the next calls are
    // made after the renewal, whatever the timing.
    let calls = Arc::new(AtomicUsize::new(0));
    let renew = {
        let (calls, stderr_lines) = (Arc::clone(&calls), Arc::clone(&stderr_lines));
        let (new_cert, new_key) = (new.cert_pem.clone(), new.key_pem.clone());
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let (calls, stderr_lines) = (Arc::clone(&calls), Arc::clone(&stderr_lines));
            let (cert, key, new_cert, new_key) =
                (cert.clone(), key.clone(), new_cert.clone(), new_key.clone());
            async move {
                let response = next.run(request).await;
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    for (path, contents) in [(&cert, &new_cert), (&key, &new_key)] {
                        let tmp = path.with_extension("new");
                        std::fs::write(&tmp, contents).expect("write");
                        std::fs::rename(&tmp, path).expect("rename");
                    }
                    let mut stderr_lines = stderr_lines.lock().await;
                    let reloaded = tokio::time::timeout(Duration::from_secs(20), async {
                        while let Some(line) = stderr_lines.recv().await {
                            if line == "client: reloaded --cert/--key" {
                                return Some(line);
                            }
                        }
                        None
                    })
                    .await;
                    assert!(
                        matches!(reloaded, Ok(Some(_))),
                        "no reload line: {reloaded:?}"
                    );
                }
                response
            }
        }
    };
    let layer = BoundTokenLayer::new(authority.validator());
    let app = whoami_app(layer).layer(axum::middleware::from_fn(renew));
    let api = TestServer::start(any_certificate_tls(&authority.pki), app).await;

    let args = with(
        &files.base,
        &[
            "--url",
            &api.url("/whoami"),
            "--count",
            "3",
            "--interval",
            "0.1",
            "--reload-interval",
            "0.05",
        ],
    );
    let mut child = std::process::Command::new(example_binary())
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn client");
    let stderr = child.stderr.take().expect("stderr pipe");
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("wait")
        .expect("client output");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let calls: Vec<&str> = stdout.lines().collect();
    assert_eq!(calls.len(), 3, "{stdout}");
    let (old, new) = (old.x5t_s256(), new.x5t_s256());
    // Bound to the certificate the connection presented, both named in the answer.
    assert!(calls[0].starts_with("1 200 "), "{stdout}");
    assert_eq!(calls[0].matches(&old).count(), 2, "{stdout}");
    for call in &calls[1..] {
        assert!(call.contains(" 200 "), "{stdout}");
        assert_eq!(call.matches(&new).count(), 2, "{stdout}");
        assert!(!call.contains(&old), "{stdout}");
    }
    assert_eq!(authority.requests(), 2, "one token per certificate");
}
