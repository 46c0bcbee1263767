//! Floods of requests that cost the resource server work upstream: each distinct made-up token
//! in introspection mode is a call to the authorization server, unless the validator sheds it.
//!
//! Runs alone in a child process ([`runs_alone`]) so that the resident memory it reports is its
//! own, not that of the other tests of this binary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use certbound::{BoundTokenLayer, IntrospectionValidator};
use tokio::sync::Semaphore;

const TOKENS: usize = 10_000;
/// The validator's bound on calls in flight.
const BOUND: usize = 8;
/// Requests the flooding client keeps in flight.
const CLIENT_CONCURRENCY: usize = 256;

/// Resident memory of this process in KiB (Linux).
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Statuses of the flood's answers, counted.
#[derive(Default)]
struct Tally {
    unauthorized: AtomicUsize,
    unavailable: AtomicUsize,
    other: AtomicUsize,
}

impl Tally {
    fn count(&self, status: u16) {
        match status {
            401 => &self.unauthorized,
            503 => &self.unavailable,
            _ => &self.other,
        }
        .fetch_add(1, Ordering::SeqCst);
    }

    fn answered(&self) -> usize {
        self.unauthorized.load(Ordering::SeqCst)
            + self.unavailable.load(Ordering::SeqCst)
            + self.other.load(Ordering::SeqCst)
    }
}

/// Sends `TOKENS` requests with distinct made-up tokens (`prefix-N`), `CLIENT_CONCURRENCY` at a
/// time, and counts their statuses.
fn flood(
    client: &reqwest::Client,
    url: String,
    prefix: &'static str,
    tally: &Arc<Tally>,
) -> tokio::task::JoinSet<()> {
    let gate = Arc::new(Semaphore::new(CLIENT_CONCURRENCY));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..TOKENS {
        let (client, url, tally, gate) = (
            client.clone(),
            url.clone(),
            Arc::clone(tally),
            Arc::clone(&gate),
        );
        requests.spawn(async move {
            let _slot = gate.acquire_owned().await.expect("gate");
            let response = get_with_token(&client, &url, &format!("{prefix}-{i}")).await;
            tally.count(response.status().as_u16());
        });
    }
    requests
}

/// 10 000 distinct bogus tokens: at most `max_concurrent_calls` calls are ever in flight, the
/// rest are shed with an immediate 503 while the endpoint is slow, a token with a cached answer
/// keeps being served throughout, and memory stays bounded by the cache's bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_bogus_tokens_is_bounded_in_upstream_calls_and_memory() {
    if !runs_alone(
        "floods::a_flood_of_distinct_bogus_tokens_is_bounded_in_upstream_calls_and_memory",
    )
    .await
    {
        return;
    }
    let as_server = IntrospectionServer::start(Introspection::basic("rs", "rs-secret")).await;
    let validator = IntrospectionValidator::endpoint(as_server.url())
        .client_secret_basic("rs", "rs-secret")
        .trust_root(as_server.ca_der())
        .max_concurrent_calls(BOUND)
        // The held calls must outlast the flood (a timeout would free their permits).
        .fetch_timeout(Duration::from_secs(300))
        .cache_ttl(Duration::from_secs(600))
        .max_cache_entries(2_000)
        .max_cache_bytes(2 * 1024 * 1024)
        .build()
        .expect("validator");
    let pki = Pki::new("flood-clients");
    let alice = pki.client_identity("alice");
    let rs = TestServer::start(
        ca_verified_tls(&pki),
        whoami_app(BoundTokenLayer::new(validator)),
    )
    .await;
    let client = https_client(&pki.ca_der(), Some(&alice));
    let url = rs.url("/whoami");
    let good = "opaque-good-token";
    as_server.set_answer(
        good,
        serde_json::json!({"active": true, "sub": "alice", "cnf": {"x5t#S256": alice.x5t_s256()}}),
    );
    assert_eq!(get_with_token(&client, &url, good).await.status(), 200);
    let rss_before = rss_kib();

    // 1. The endpoint holds its answers: BOUND calls wait, every other token is shed at once.
    let release = as_server.hold_answers();
    let held = Arc::new(Tally::default());
    let mut requests = flood(&client, url.clone(), "bogus-held", &held);
    // Every request but the BOUND waiting ones is answered while the endpoint says nothing.
    while held.answered() < TOKENS - BOUND {
        assert_eq!(
            get_with_token(&client, &url, good).await.status(),
            200,
            "the cached token is served during the flood"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(held.unavailable.load(Ordering::SeqCst), TOKENS - BOUND);
    as_server.wait_for_calls(1 + BOUND).await;
    assert_eq!(
        as_server.total_calls(),
        1 + BOUND,
        "the warm-up call and BOUND"
    );
    release.send(true).expect("release");
    while requests.join_next().await.is_some() {}
    assert_eq!(held.unauthorized.load(Ordering::SeqCst), BOUND);
    assert_eq!(held.other.load(Ordering::SeqCst), 0);

    // 2. The endpoint answers at once: every token is refused (401) or shed (503), and no more
    //    than BOUND calls are ever in flight.
    let fast = Arc::new(Tally::default());
    let mut requests = flood(&client, url.clone(), "bogus-fast", &fast);
    while requests.join_next().await.is_some() {}
    let rss_after = rss_kib();
    assert_eq!(fast.other.load(Ordering::SeqCst), 0, "only 401 and 503");
    assert!(
        as_server.most_in_flight() <= BOUND,
        "{}",
        as_server.most_in_flight()
    );
    assert_eq!(get_with_token(&client, &url, good).await.status(), 200);
    eprintln!(
        "FLOOD tokens={} shed_while_held={} refused={} shed_fast={} calls={} most_in_flight={} \
         rss_before_kib={rss_before} rss_after_kib={rss_after}",
        2 * TOKENS,
        TOKENS - BOUND,
        fast.unauthorized.load(Ordering::SeqCst),
        fast.unavailable.load(Ordering::SeqCst),
        as_server.total_calls(),
        as_server.most_in_flight(),
    );
    // The cache holds at most 2 000 entries in 2 MiB; everything else is per-request and gone.
    // Generous: allocator slack and the client's own buffers are in the same process.
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}
