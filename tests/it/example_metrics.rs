//! The example resource server's operations endpoints, as an operator scrapes them: a known
//! sequence of requests over mutual TLS, then `/metrics` over plain HTTP with exact counts per
//! series and label; `/readyz` 503 while the JWKS host fails and 200 once it answers, without
//! a restart; `/healthz` at once.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use crate::example_resource_server::start;
use reqwest::StatusCode;

/// The example on 127.0.0.1 with keys from `jwks`'s server, `--metrics-listen` on port 0, and
/// the metrics listener's base URL (`http://ADDR`, from its second stdout line).
async fn start_with_metrics(
    dir: &ScratchDir,
    pki: &Pki,
    jwks: &JwksServer,
) -> (ExampleProcess, String) {
    let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
    let upstream_ca = dir.write("upstream-ca.pem", jwks.pki().ca_pem());
    let [cert, key, ca] = [&pem.server_cert, &pem.server_key, &pem.ca_cert]
        .map(|p| p.to_str().expect("UTF-8 path").to_owned());
    let mut server = start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        &ca,
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &jwks.url(JWKS_PATH),
        "--upstream-ca",
        &upstream_ca,
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .await;
    let line = server.next_line().await;
    let metrics = line
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    (server, metrics)
}

/// `GET url`: status and body.
async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    (response.status(), response.text().await.expect("body"))
}

/// The certbound samples of a Prometheus text exposition: `name{labels sorted}` → value.
/// Histogram samples are left out (their counts depend on timing).
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("certbound_")) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                (name, labels.join(","))
            }
            None => (series, String::new()),
        };
        if name.ends_with("_bucket") || name.ends_with("_sum") || name.ends_with("_count") {
            continue;
        }
        samples.insert(
            format!("{name}{{{labels}}}"),
            value.parse().expect("a value"),
        );
    }
    samples
}

#[tokio::test]
async fn a_known_sequence_of_requests_is_counted_exactly_per_series_and_label() {
    let dir = ScratchDir::new("metrics-counts");
    let pki = Pki::new("metrics-test-ca");
    let key = TestKey::es256("k1");
    let jwks = JwksServer::start(jwks(&[&key])).await;
    let (server, metrics) = start_with_metrics(&dir, &pki, &jwks).await;
    let plain = https_client(&pki.ca_der(), None); // for http:// too
    assert_eq!(
        get(&plain, &format!("{metrics}/healthz"), None).await,
        (StatusCode::OK, "ok".to_owned())
    );

    let a = pki.client_identity("client-a");
    let b = pki.client_identity("client-b");
    let ca = pki.ca_der();
    let (with_a, with_b) = (https_client(&ca, Some(&a)), https_client(&ca, Some(&b)));
    let whoami = server.url("/whoami");
    let token = key.sign(&claims_bound_to(&a.x5t_s256()));
    // Accepted twice: a cache miss, then a hit.
    assert_eq!(get(&with_a, &whoami, Some(&token)).await.0, StatusCode::OK);
    assert_eq!(get(&with_a, &whoami, Some(&token)).await.0, StatusCode::OK);
    // Rejected: no token (no validation), A's token on B's connection (a cache hit, then the
    // binding fails), an unbound token (a miss), a token that is no JWT (a miss).
    assert_eq!(
        get(&with_a, &whoami, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&with_b, &whoami, Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let unbound = key.sign(&claims_unbound());
    assert_eq!(
        get(&with_a, &whoami, Some(&unbound)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&with_a, &whoami, Some("abc")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Open routes are not the layer's: not counted.
    assert_eq!(
        get(&with_a, &server.url("/healthz"), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&with_a, &server.url("/readyz"), None).await.0,
        StatusCode::OK
    );

    let (status, text) = get(&plain, &format!("{metrics}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK);
    let samples = samples(&text);
    let count = |series: &str| samples.get(series).copied();
    let requests = |result: &str, reason: &str, scheme: &str| {
        count(&format!(
            "certbound_requests_total{{reason=\"{reason}\",result=\"{result}\",scheme=\"{scheme}\"}}"
        ))
    };
    assert_eq!(requests("accepted", "", "bearer"), Some(2.0), "{text}");
    assert_eq!(
        requests("rejected", "missing_token", "none"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests("rejected", "certificate_mismatch", "bearer"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests("rejected", "unbound_token", "bearer"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests("rejected", "invalid_token", "bearer"),
        Some(1.0),
        "{text}"
    );
    let all_requests: f64 = samples
        .iter()
        .filter(|(series, _)| series.starts_with("certbound_requests_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(all_requests, 6.0, "{text}");
    assert_eq!(
        count("certbound_token_cache_total{result=\"hit\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count("certbound_token_cache_total{result=\"miss\"}"),
        Some(3.0),
        "{text}"
    );
    // The keys were fetched once, at start (prefetch); readiness needed no other fetch.
    let jwks_ok = "certbound_upstream_requests_total{result=\"ok\",upstream=\"jwks\"}";
    assert_eq!(count(jwks_ok), Some(1.0), "{text}");
    assert!(
        text.contains("certbound_upstream_request_duration_seconds_bucket{upstream=\"jwks\""),
        "{text}"
    );
    assert_eq!(
        count("certbound_upstream_requests_total{result=\"error\",upstream=\"jwks\"}"),
        None
    );
    // Labels never carry tokens or subjects.
    assert!(!text.contains(&token) && !text.contains("alice"), "{text}");

    // The TLS side: the served certificate's expiry, the handshakes so far (A's and B's
    // connections, at least), then a client of another CA refused at its handshake and a
    // server certificate file corrupted and reloaded (refused, the old one kept).
    let expiry = count("certbound_tls_certificate_expiry_timestamp_seconds{}").expect("expiry");
    // The test PKI's certificates are rcgen's default: valid until 4096-01-01.
    assert_eq!(expiry, 67_090_118_400.0);
    let handshakes = |result: &str, samples: &BTreeMap<String, f64>| {
        samples
            .get(&format!(
                "certbound_tls_handshakes_total{{result=\"{result}\"}}"
            ))
            .copied()
    };
    assert!(
        handshakes("ok", &samples).is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(handshakes("failed", &samples), None, "{text}");
    assert!(
        count("certbound_connections_open{}").is_some_and(|n| n >= 2.0),
        "{text}"
    );

    let stranger = Pki::new("metrics-other-ca").client_identity("stranger");
    let with_stranger = https_client(&ca, Some(&stranger));
    with_stranger
        .get(&whoami)
        .send()
        .await
        .expect_err("a certificate of another CA is refused at the handshake");
    let server_cert = dir.0.join("server-cert.pem");
    assert!(server_cert.exists(), "the example's certificate file");
    replace_atomically(&server_cert, "-----BEGIN CERTIFICATE-----\nnot base64\n");
    server.signal("HUP");
    // Polled as an operator's scraper would, until the refused reload shows.
    let refused = "certbound_tls_reloads_total{result=\"failed\"}";
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let after = loop {
        tick.tick().await;
        let (_, text) = get(&plain, &format!("{metrics}/metrics"), None).await;
        let after = self::samples(&text);
        if after.contains_key(refused) {
            break after;
        }
    };
    let samples = after;
    assert_eq!(samples.get(refused).copied(), Some(1.0), "{samples:?}");
    assert_eq!(
        samples
            .get("certbound_tls_reloads_total{result=\"ok\"}")
            .copied(),
        None
    );
    assert_eq!(handshakes("failed", &samples), Some(1.0), "{samples:?}");
    let untrusted = "certbound_tls_client_certificates_refused_total{reason=\"untrusted\"}";
    assert_eq!(samples.get(untrusted).copied(), Some(1.0), "{samples:?}");
    // Still serving the old certificate, with the same expiry.
    assert_eq!(get(&with_a, &whoami, Some(&token)).await.0, StatusCode::OK);
    assert_eq!(
        samples
            .get("certbound_tls_certificate_expiry_timestamp_seconds{}")
            .copied(),
        Some(expiry)
    );
}

#[tokio::test]
async fn readyz_is_503_while_the_jwks_host_fails_and_200_once_it_answers_without_a_restart() {
    let dir = ScratchDir::new("metrics-readyz");
    let pki = Pki::new("readyz-test-ca");
    let key = TestKey::es256("k1");
    let jwks = JwksServer::start(jwks(&[&key])).await;
    jwks.set_status(JWKS_PATH, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let (server, metrics) = start_with_metrics(&dir, &pki, &jwks).await;
    let plain = https_client(&pki.ca_der(), None); // for http:// too
    let open = https_client(&pki.ca_der(), None);

    // Serving at once, though not ready.
    assert_eq!(
        get(&plain, &format!("{metrics}/healthz"), None).await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(
        get(&open, &server.url("/readyz"), None).await,
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
    );
    let (status, why) = get(&plain, &format!("{metrics}/readyz"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(why.contains(&format!("keys of {ISSUER}")), "{why}");
    // A request meanwhile is refused for want of keys.
    let a = pki.client_identity("client-a");
    let token = key.sign(&claims_bound_to(&a.x5t_s256()));
    let with_a = https_client(&pki.ca_der(), Some(&a));
    let whoami = server.url("/whoami");
    assert_eq!(
        get(&with_a, &whoami, Some(&token)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The host answers again: ready once the next fetch is allowed (min_refresh_interval,
    // 10 s by default), polled as a probe would.
    jwks.clear_status(JWKS_PATH);
    let mut probe = tokio::time::interval(Duration::from_millis(250));
    let mut polls = 0;
    loop {
        probe.tick().await;
        polls += 1;
        let (status, _) = get(&open, &server.url("/readyz"), None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(polls < 120, "not ready 30 s after the JWKS host came back");
    }
    assert_eq!(
        get(&plain, &format!("{metrics}/readyz"), None).await,
        (StatusCode::OK, "ready\n".to_owned())
    );
    assert_eq!(get(&with_a, &whoami, Some(&token)).await.0, StatusCode::OK);

    let (_, text) = get(&plain, &format!("{metrics}/metrics"), None).await;
    let samples = samples(&text);
    let jwks_series = |result: &str| {
        samples
            .get(&format!(
                "certbound_upstream_requests_total{{result=\"{result}\",upstream=\"jwks\"}}"
            ))
            .copied()
    };
    assert_eq!(jwks_series("ok"), Some(1.0), "{text}");
    assert!(jwks_series("error").is_some_and(|n| n >= 1.0), "{text}");
    let unavailable = "certbound_requests_total{reason=\"keys_unavailable\",result=\"rejected\",scheme=\"bearer\"}";
    assert_eq!(samples.get(unavailable).copied(), Some(1.0), "{text}");
}
