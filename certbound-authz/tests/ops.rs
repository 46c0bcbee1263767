//! Operating the binary: the metrics listener (`/metrics` after a known sequence of checks,
//! `/healthz`, `/readyz` following the issuer's keys and the replay store), JSON log lines
//! without token material, graceful shutdown; and step-up per route (RFC 9470).

mod binary;
mod support;

use std::time::{Duration, Instant};

use binary::{Authz, JwksServer};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

fn client() -> reqwest::Client {
    // Err: installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

/// An nginx `auth_request` subrequest for `GET https://api.example.com{path}` from `client`.
fn nginx(
    client: &reqwest::Client,
    authz: &Authz,
    path: &str,
    token: &str,
    cert_pem: Option<&str>,
) -> reqwest::RequestBuilder {
    let cert = cert_pem
        .map(|pem| utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string())
        .unwrap_or_default();
    client
        .get(authz.url("/auth"))
        .header("x-original-method", "GET")
        .header("x-original-url", format!("https://api.example.com{path}"))
        .header("x-ssl-client-cert", cert)
        .header("authorization", format!("Bearer {token}"))
}

/// The nginx configuration of `binary::config` with the metrics listener and `extra` lines
/// appended (routes, `[log]`).
fn config_with_metrics(jwks_url: &str, tokens: &str, extra: &str) -> String {
    let base = binary::config("nginx", "127.0.0.1/32", jwks_url, tokens);
    let base = base.replacen("[listen]\n", "[listen]\nmetrics = \"127.0.0.1:0\"\n", 1);
    format!("{base}\n{extra}\n")
}

/// The value of the sample `series` (name and labels exactly as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

/// Polls `GET url` until it answers `status` (a readiness probe's way), for at most 30 s.
async fn until_status(client: &reqwest::Client, url: &str, status: StatusCode) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = get(client, url).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_metrics_listener_counts_each_decision_by_result_and_follows_the_issuer_s_keys() {
    let dir = TempDir::new();
    let jwks = JwksServer::start_down(&dir).await;
    let file = dir.write("authz.toml", config_with_metrics(&jwks.url, "", ""));
    let mut authz = Authz::start(&file).await;
    let client = client();
    let warning = authz.stderr_line_with("warning").await;
    assert!(
        warning.contains("no keys for https://as.example.com yet"),
        "{warning}"
    );

    // Alive at once; not ready while the issuer's keys cannot be fetched.
    let (status, body) = get(&client, &authz.metrics_url("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get(&client, &authz.metrics_url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.starts_with("not ready: keys of https://as.example.com"),
        "{body}"
    );
    // Every series of the binary exists before the first check.
    let (_, scrape) = get(&client, &authz.metrics_url("/metrics")).await;
    for result in ["allow", "deny", "error"] {
        for frontend in ["http", "grpc"] {
            let series = format!(
                "certbound_authz_decisions_total{{frontend=\"{frontend}\",result=\"{result}\"}}"
            );
            assert_eq!(sample(&scrape, &series), Some(0.0), "{series}\n{scrape}");
        }
    }
    let series = "certbound_authz_decision_duration_seconds_count{frontend=\"http\"}";
    assert_eq!(sample(&scrape, series), Some(0.0), "{scrape}");

    let (der, pem) = client_certificate("client-a");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    // The JWKS host is down: 503, an error.
    let response = nginx(&client, &authz, "/orders", &token, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    jwks.come_up();
    let body = until_status(&client, &authz.metrics_url("/readyz"), StatusCode::OK).await;
    assert_eq!(body, "ready\n");

    // Allow, deny (no certificate), and an untrusted peer's 403 (127.0.0.2 is not trusted).
    let response = nginx(&client, &authz, "/orders", &token, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = nginx(&client, &authz, "/orders", &token, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let untrusted = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = nginx(&untrusted, &authz, "/orders", &token, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = client
        .get(authz.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let scrape = response.text().await.unwrap();
    for (result, count) in [("allow", 1.0), ("deny", 2.0), ("error", 1.0)] {
        let series =
            format!("certbound_authz_decisions_total{{frontend=\"http\",result=\"{result}\"}}");
        assert_eq!(sample(&scrape, &series), Some(count), "{series}\n{scrape}");
    }
    let series = "certbound_authz_decisions_total{frontend=\"grpc\",result=\"allow\"}";
    assert_eq!(sample(&scrape, series), Some(0.0), "{scrape}");
    let series = "certbound_authz_untrusted_peers_total{frontend=\"http\"}";
    assert_eq!(sample(&scrape, series), Some(1.0), "{scrape}");
    // A histogram with the binary's buckets, not a summary.
    assert!(
        scrape.contains("# TYPE certbound_authz_decision_duration_seconds histogram"),
        "{scrape}"
    );
    let series = "certbound_authz_decision_duration_seconds_count{frontend=\"http\"}";
    assert_eq!(sample(&scrape, series), Some(4.0), "{scrape}");
    let series = "certbound_authz_decision_duration_seconds_bucket{frontend=\"http\",le=\"+Inf\"}";
    assert_eq!(sample(&scrape, series), Some(4.0), "{scrape}");
    assert!(
        scrape.contains(
            "certbound_authz_decision_duration_seconds_bucket{frontend=\"http\",le=\"0.0001\"}"
        ),
        "{scrape}"
    );
    // The library's own series, recorded because the recorder came before the engine: the
    // three checks that reached the layer (the untrusted one did not).
    let requests: f64 = scrape
        .lines()
        .filter(|line| line.starts_with("certbound_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(requests, 3.0, "{scrape}");
    assert!(scrape.contains("reason=\"keys_unavailable\""), "{scrape}");

    // Neither listener answers the other's requests.
    let (status, _) = get(&client, &authz.metrics_url("/auth")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&client, &authz.url("/healthz")).await;
    assert_ne!(status, StatusCode::OK);

    // Graceful shutdown with both listeners.
    let (code, _) = authz.terminate().await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn readyz_is_503_while_the_replay_store_cannot_answer() {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    // Nothing listens on port 1: Redis is down.
    let tokens = "replay_redis = \"redis://127.0.0.1:1\"";
    let file = dir.write("authz.toml", config_with_metrics(&jwks.url, tokens, ""));
    let authz = Authz::start(&file).await;
    let client = client();
    let (status, _) = get(&client, &authz.metrics_url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&client, &authz.metrics_url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("DPoP replay store"), "{body}");
    assert!(!body.contains("keys of"), "{body}");
}

/// Every line is a JSON object with an `event`, and no line holds `secrets`.
fn assert_json_lines(lines: &[String], secrets: &[&str]) -> Vec<Value> {
    lines
        .iter()
        .map(|line| {
            for secret in secrets {
                assert!(!line.contains(secret), "token material logged: {line}");
            }
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(value["event"].is_string(), "{line}");
            value
        })
        .collect()
}

#[tokio::test]
async fn json_log_lines_parse_as_json_and_hold_no_token_or_proof_material() {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let json = "[log]\nformat = \"json\"";
    let config = format!(
        "{}\n{json}\n",
        binary::config("nginx", "127.0.0.1/32", &jwks.url, "")
    );
    let file = dir.write("authz.toml", &config);
    let mut authz = Authz::start(&file).await;
    let client = client();
    let (der, pem) = client_certificate("client-a");
    let (_, thief) = client_certificate("thief");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let key = dpop_key();
    let dpop_token = jwks.issuer.token("read", cnf_dpop(&key));
    // A proof for another URL: refused.
    let proof = proof(
        &key,
        "GET",
        "https://elsewhere.example/x",
        &dpop_token,
        None,
    );
    let mut lines = Vec::new();

    let stolen = nginx(&client, &authz, "/orders", &token, Some(&thief))
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::UNAUTHORIZED);
    lines.push(authz.stderr_line().await);
    let bad_proof = client
        .get(authz.url("/auth"))
        .header("x-original-method", "GET")
        .header("x-original-url", "https://api.example.com/orders")
        .header("authorization", format!("DPoP {dpop_token}"))
        .header("dpop", &proof)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_proof.status(), StatusCode::UNAUTHORIZED);
    lines.push(authz.stderr_line().await);
    let allowed = nginx(&client, &authz, "/orders", &token, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);

    // A reload that moves listen.http (a warning), then one that fails.
    dir.write(
        "authz.toml",
        config.replace("http = \"127.0.0.1:0\"", "http = \"127.0.0.1:1\""),
    );
    authz.hang_up();
    lines.push(authz.stderr_line().await);
    lines.push(authz.stderr_line().await);
    dir.write(
        "authz.toml",
        config.replace("profile = \"nginx\"", "profile = \"apache\""),
    );
    authz.hang_up();
    lines.push(authz.stderr_line().await);
    let (code, rest) = authz.terminate().await;
    assert_eq!(code, Some(0));
    lines.extend(rest);

    let values = assert_json_lines(&lines, &[&token, &dpop_token, &proof]);
    let events: Vec<&str> = values
        .iter()
        .map(|v| v["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["refused", "refused", "warning", "reloaded", "reload_failed"],
        "{lines:?}"
    );
    assert_eq!(values[0]["status"], 401);
    assert_eq!(values[0]["error"], "invalid_token");
    assert_eq!(values[0]["request"], "GET api.example.com/orders");
    assert_eq!(values[1]["error"], "invalid_dpop_proof");
    assert_eq!(values[2]["key"], "listen.http");
    assert_eq!(values[3]["file"], file.display().to_string());
    assert!(
        values[4]["error"]
            .as_str()
            .unwrap()
            .starts_with("proxy.profile"),
        "{}",
        values[4]
    );
}

#[tokio::test]
async fn a_start_failure_after_the_file_is_read_is_a_json_line() {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = binary::config("nginx", "127.0.0.1/32", &jwks.url, "")
        .replace("http = \"127.0.0.1:0\"", &format!("http = \"{addr}\""));
    let file = dir.write(
        "authz.toml",
        format!("{config}\n[log]\nformat = \"json\"\n"),
    );
    // Run on a thread of its own: the JWKS server answers on this one meanwhile.
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || binary::run(&["--config".as_ref(), file.as_os_str()]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
    let values = assert_json_lines(&lines, &[]);
    assert_eq!(values.len(), 1, "{stderr}");
    assert_eq!(values[0]["event"], "failed");
    assert!(
        values[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("listen.http: cannot listen"),
        "{stderr}"
    );
}

/// Valid claims for a certificate-bound token with `acr` and `auth_time` when given.
fn step_up_token(
    jwks: &JwksServer,
    der: &[u8],
    acr: Option<&str>,
    auth_time_ago: Option<i64>,
) -> String {
    let mut claims = claims("read", cnf_certificate(der));
    if let Some(acr) = acr {
        claims["acr"] = acr.into();
    }
    if let Some(ago) = auth_time_ago {
        claims["auth_time"] = (claims["iat"].as_i64().unwrap() + 10 - ago).into();
    }
    jwks.issuer.sign(&claims)
}

const STEP_UP_ROUTES: &str = r#"
[[routes]]
path_prefix = "/transfer"
acr_values = ["urn:example:mfa", "urn:example:hwk"]

[[routes]]
path_prefix = "/recent"
max_age = 300
"#;

#[tokio::test]
async fn a_route_with_acr_values_refuses_a_token_without_the_acr_and_allows_one_with_it() {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let config = format!(
        "{}\n{STEP_UP_ROUTES}",
        binary::config("nginx", "127.0.0.1/32", &jwks.url, "")
    );
    let file = dir.write("authz.toml", config);
    let mut authz = Authz::start(&file).await;
    let client = client();
    let (der, pem) = client_certificate("client-a");

    for acr in [None, Some("urn:example:password")] {
        let token = step_up_token(&jwks, &der, acr, None);
        let refused = nginx(&client, &authz, "/transfer/1", &token, Some(&pem))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{acr:?}");
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"insufficient_user_authentication\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("acr_values=\"urn:example:mfa urn:example:hwk\""),
            "{challenge}"
        );
        assert!(!refused.headers().contains_key("x-auth-subject"));
        let line = authz.stderr_line().await;
        assert!(
            line.contains("401 insufficient_user_authentication"),
            "{line}"
        );
    }
    let token = step_up_token(&jwks, &der, Some("urn:example:hwk"), None);
    let allowed = nginx(&client, &authz, "/transfer/1", &token, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["x-auth-subject"], "alice");
    // Other routes do not ask for it.
    let plain = step_up_token(&jwks, &der, None, None);
    let other = nginx(&client, &authz, "/orders", &plain, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_route_with_max_age_refuses_an_old_authentication_and_allows_a_recent_one() {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let config = format!(
        "{}\n{STEP_UP_ROUTES}",
        binary::config("nginx", "127.0.0.1/32", &jwks.url, "")
    );
    let file = dir.write("authz.toml", config);
    let authz = Authz::start(&file).await;
    let client = client();
    let (der, pem) = client_certificate("client-a");

    for ago in [Some(3600), None] {
        let token = step_up_token(&jwks, &der, None, ago);
        let refused = nginx(&client, &authz, "/recent", &token, Some(&pem))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{ago:?}");
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"insufficient_user_authentication\""),
            "{challenge}"
        );
        assert!(challenge.contains("max_age=300"), "{challenge}");
    }
    let token = step_up_token(&jwks, &der, None, Some(60));
    let allowed = nginx(&client, &authz, "/recent", &token, Some(&pem))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
}
