//! `grpc-check-repeated` (issue 25): the load client acts as Envoy's ext_authz filter and sends
//! `envoy.service.auth.v3.Authorization/Check` requests (envoy-types, tonic) to certbound-authz's
//! gRPC listener, filled the way Envoy fills them for `GET https://localhost/`: the method,
//! scheme, host and path in `attributes.request.http`, the request headers (pseudo-headers
//! included) in its `headers` map, the client certificate URL-encoded PEM in
//! `attributes.source.certificate` (`include_peer_certificate`). Each connection is its own
//! HTTP/2 connection (a tonic `Channel`) with one check in flight, and sends its client's
//! certificate-bound token on every check (the `repeated` workload). No nginx on the path:
//! the figure is certbound-authz's own cost of a check, to set against the layer's own work in
//! the library's `repeated` variant.

use super::*;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use tonic::transport::Channel;

/// nginx's `$ssl_client_escaped_cert` and Envoy's `source.certificate`: the PEM with every byte
/// but the unreserved ones percent-encoded.
pub(crate) fn url_encoded_pem(der: &[u8]) -> String {
    let pem = pem("CERTIFICATE", der);
    let mut out = String::with_capacity(pem.len() * 2);
    for b in pem.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The check Envoy sends for `GET https://localhost/` with these credentials.
fn check_request(certificate: &str, authorization: Option<&HeaderValue>) -> CheckRequest {
    let mut headers: std::collections::HashMap<String, String> = [
        (":authority", "localhost"),
        (":method", "GET"),
        (":path", "/"),
        (":scheme", "https"),
        ("x-forwarded-proto", "https"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(value) = authorization.and_then(|v| v.to_str().ok()) {
        headers.insert("authorization".to_owned(), value.to_owned());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                certificate: certificate.to_owned(),
                ..Default::default()
            }),
            request: Some(
                envoy_types::pb::envoy::service::auth::v3::attribute_context::Request {
                    time: None,
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        scheme: "https".into(),
                        host: "localhost".into(),
                        path: "/".into(),
                        protocol: "HTTP/2".into(),
                        headers,
                        ..Default::default()
                    }),
                },
            ),
            ..Default::default()
        }),
    }
}

/// Whether Envoy would let the request through: `status.code` 0 (`OK`).
fn allowed(response: &CheckResponse) -> bool {
    response.status.as_ref().is_none_or(|s| s.code == 0)
}

/// One connection's loop: the same check until `stop`.
async fn drive_checks(
    mut client: AuthorizationClient<Channel>,
    check: CheckRequest,
    measure_from: Instant,
    stop: Stop,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let mut sent = 0u64;
    loop {
        match stop {
            Stop::At(end) if Instant::now() >= end => break,
            Stop::After(n) if sent >= n => break,
            _ => {}
        }
        sent += 1;
        let started = Instant::now();
        let outcome = client.check(check.clone()).await;
        let done = Instant::now();
        match outcome {
            Ok(response) if allowed(response.get_ref()) => {
                stats.ok_total += 1;
                let in_window = match stop {
                    Stop::At(end) => done >= measure_from && done <= end,
                    Stop::After(_) => true,
                };
                if in_window {
                    stats.measured += 1;
                    stats.histogram.record(done - started);
                }
            }
            Ok(_) => *stats.bad_status.entry(403).or_default() += 1,
            Err(_) => stats.transport_errors += 1,
        }
    }
    stats
}

/// The `grpc-check-*` counterpart of [`run_load`]: connects `tokens.len()` channels, checks
/// that the frontend refuses a check without a token and one with a token bound to another
/// certificate, then drives them.
pub(crate) async fn run_checks(
    server: &UnderTest,
    material: &Material,
    tokens: Vec<Tokens>,
    warmup: Duration,
    stop: StopSpec,
) -> Result<RunResult, BoxError> {
    let endpoint = format!("http://{}", server.addr());
    let mut connections = Vec::with_capacity(tokens.len());
    let mut preflight = 0;
    for (i, tokens) in tokens.into_iter().enumerate() {
        let Tokens::Same(token) = tokens else {
            return Err("grpc-check: only the repeated workload".into());
        };
        let channel = Channel::from_shared(endpoint.clone())?.connect().await?;
        let mut client = AuthorizationClient::new(channel);
        let certificate = url_encoded_pem(material.clients[i].cert.as_ref());
        if i == 0 {
            let no_token = client.check(check_request(&certificate, None)).await?;
            let elsewhere = material.signer.mint(&URL_SAFE_NO_PAD.encode([0u8; 32]));
            let stolen = client
                .check(check_request(&certificate, Some(&elsewhere)))
                .await?;
            let good = client
                .check(check_request(&certificate, Some(&token)))
                .await?;
            preflight = 3;
            if allowed(no_token.get_ref()) || allowed(stolen.get_ref()) || !allowed(good.get_ref())
            {
                return Err(
                    "grpc-check preflight: no token or a token bound to another \
                            certificate allowed, or the client's own refused"
                        .into(),
                );
            }
        }
        connections.push((client, check_request(&certificate, Some(&token))));
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop = match stop {
        StopSpec::Duration(d) => Stop::At(measure_from + d),
        StopSpec::Requests(n) => Stop::After(n),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (client, check) in connections {
        tasks.spawn(drive_checks(client, check, measure_from, stop));
    }
    let pids = server.pids();
    let server_cpu_ns = || pids.iter().map(|&pid| process_cpu_ns(pid)).sum::<u64>();
    let self_pid = std::process::id();
    tokio::time::sleep_until(measure_from.into()).await;
    let (server0, client0) = (server_cpu_ns(), process_cpu_ns(self_pid));
    if let Stop::At(end) = stop {
        tokio::time::sleep_until(end.into()).await;
    }
    let (server1, client1, t1) = (server_cpu_ns(), process_cpu_ns(self_pid), Instant::now());
    let mut stats = ConnStats::new();
    while let Some(done) = tasks.join_next().await {
        stats.merge(&done?);
    }
    let elapsed = match stop {
        Stop::At(end) => end - measure_from,
        Stop::After(_) => t1 - measure_from,
    };
    let sent = preflight
        + stats.ok_total
        + stats.bad_status.values().sum::<u64>()
        + stats.transport_errors;
    // Under callgrind, the requests counted (instructions.sh reads this line).
    if std::env::var_os(WRAPPER_ENV).is_some() {
        eprintln!("load grpc-check: handled {sent} requests");
    }
    Ok(RunResult {
        stats,
        elapsed,
        server_cpu_ns: server1.saturating_sub(server0),
        client_cpu_ns: client1.saturating_sub(client0),
        server_minor_faults: 0,
        server_rss_end: 0,
        store_commands: None,
    })
}
