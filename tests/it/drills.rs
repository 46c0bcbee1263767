//! Fault drills (issue 14 §3): every upstream certbound fetches from (a JWKS URL, discovery
//! metadata, an introspection endpoint, a client's `jwks_uri` at the authorization server)
//! misbehaves in every way [`MisbehavingServer`] knows, plus a host name that resolves to
//! nothing. For each drill:
//!
//! 1. a request waiting on the upstream is answered within the fetch timeout (plus slack);
//! 2. requests whose tokens (or keys) are already cached keep being served meanwhile;
//! 3. with nothing cached the answer fails closed: 503 at a resource server, and
//!    `503 temporarily_unavailable` at the token endpoint for a `jwks_uri` it cannot fetch;
//! 4. once the upstream is healthy again, the same request is served, nothing restarted.
//!
//! Each drill prints one line, `DRILL <upstream> <drill> status=<code> worst_ms=<n> ...`, for
//! the drill table. The drills of one upstream run concurrently, a few at a time, each with
//! its own servers; the upstreams take turns.
//!
//! The last tests drill what the table cannot show: keys due for a refresh while the upstream
//! hangs, and a `307` from the introspection endpoint to another origin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certbound::authorization_server::ClientAuthenticator;
use certbound::{BoundTokenLayer, IntrospectionValidator, JwtValidator};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::authz_support::start_token_endpoint;
use crate::common::*;

/// Short, so that the drills are quick; every wait below is bounded by a multiple of it.
const FETCH_TIMEOUT: Duration = Duration::from_millis(500);
/// The latest a request waiting on a misbehaving upstream may be answered: the timeout plus
/// generous slack for a loaded machine.
const BOUND: Duration = FETCH_TIMEOUT.saturating_add(Duration::from_secs(2));
/// Largest upstream answer accepted (the healthy ones are far smaller).
const MAX_RESPONSE: usize = 16 * 1024;
/// Cached traffic during a drill: this many connections, at least this many requests in all.
const TRAFFIC_CONNECTIONS: usize = 4;
const TRAFFIC_REQUESTS: usize = 200;
/// Drills of one upstream running at once.
const STAGES_AT_ONCE: usize = 4;
/// A host name that resolves to nothing (RFC 6761 §6.4); without a resolver on the machine the
/// lookup fails or hangs, and the fetch timeout bounds both.
const UNRESOLVABLE: &str = "https://nonexistent.invalid";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    /// `JwtValidator::jwks_url`.
    JwksUrl,
    /// `JwtValidator::discover`: the metadata document misbehaves first.
    Discovery,
    /// `IntrospectionValidator::endpoint`.
    Introspection,
    /// A `self_signed_tls_client_auth` client's `jwks_uri`, fetched by the token endpoint.
    ClientJwksUri,
}

impl Upstream {
    fn name(self) -> &'static str {
        match self {
            Self::JwksUrl => "jwks_url",
            Self::Discovery => "discovery",
            Self::Introspection => "introspection",
            Self::ClientJwksUri => "client_jwks_uri",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drill {
    NoHandshake,
    Hang,
    StallBody,
    Trickle,
    Reset,
    Flap,
    RedirectToHttp,
    RedirectElsewhere,
    EndlessBody,
    OversizedContentLength,
    OversizedChunked,
    UntrustedCertificate,
    WrongName,
    Unresolvable,
}

/// Every drill whose answer does not depend on reading a body to its end.
const TRANSPORT_DRILLS: [Drill; 11] = [
    Drill::NoHandshake,
    Drill::Hang,
    Drill::StallBody,
    Drill::Trickle,
    Drill::Reset,
    Drill::Flap,
    Drill::RedirectToHttp,
    Drill::RedirectElsewhere,
    Drill::UntrustedCertificate,
    Drill::WrongName,
    Drill::Unresolvable,
];

/// An answer larger than the limit, announced or not.
const SIZE_DRILLS: [Drill; 3] = [
    Drill::EndlessBody,
    Drill::OversizedContentLength,
    Drill::OversizedChunked,
];

fn all_drills() -> Vec<Drill> {
    [TRANSPORT_DRILLS.as_slice(), SIZE_DRILLS.as_slice()].concat()
}

impl Drill {
    fn name(self) -> &'static str {
        match self {
            Self::NoHandshake => "no_handshake",
            Self::Hang => "hang",
            Self::StallBody => "stall_body",
            Self::Trickle => "trickle",
            Self::Reset => "reset",
            Self::Flap => "flap",
            Self::RedirectToHttp => "redirect_http",
            Self::RedirectElsewhere => "redirect_https_elsewhere",
            Self::EndlessBody => "endless_body",
            Self::OversizedContentLength => "oversized_content_length",
            Self::OversizedChunked => "oversized_chunked",
            Self::UntrustedCertificate => "untrusted_cert",
            Self::WrongName => "wrong_name",
            Self::Unresolvable => "nxdomain",
        }
    }

    /// The server's fault; `None` when the drill is not the server's doing.
    fn fault(self, elsewhere: Option<&MisbehavingServer>) -> Option<Fault> {
        Some(match self {
            Self::NoHandshake => Fault::NoHandshake,
            Self::Hang => Fault::Hang,
            Self::StallBody => Fault::StallBody,
            Self::Trickle => Fault::Trickle,
            Self::Reset => Fault::Reset,
            Self::Flap => Fault::Flap,
            Self::RedirectToHttp => Fault::RedirectToHttp,
            Self::RedirectElsewhere => {
                Fault::RedirectTo(elsewhere.expect("a redirect target").base_url())
            }
            Self::EndlessBody => Fault::EndlessBody,
            Self::OversizedContentLength => Fault::OversizedContentLength,
            Self::OversizedChunked => Fault::OversizedChunked,
            Self::UntrustedCertificate => Fault::UntrustedCertificate,
            Self::WrongName => Fault::WrongName,
            Self::Unresolvable => return None,
        })
    }

    /// The status with nothing cached.
    fn cold_status(self, _upstream: Upstream) -> u16 {
        // Every upstream fails closed with 503; the default clients follow redirects only
        // within the origin, so a redirect to another host is a failure too.
        503
    }

    /// The status of a request that makes a validator with cached keys or answers go to the
    /// upstream again (an unknown `kid`, a new opaque token, an unknown certificate).
    fn refresh_status(self, upstream: Upstream) -> u16 {
        match upstream {
            // The refresh fails (or brings the same keys): the kid stays unknown.
            Upstream::JwksUrl | Upstream::Discovery => 401,
            Upstream::Introspection => self.cold_status(upstream),
            Upstream::ClientJwksUri => 401,
        }
    }
}

/// What every drill of one upstream shares: the PKIs, the client identities, the keys.
struct Cast {
    upstream_pki: Pki,
    resource_pki: Pki,
    alice: ClientIdentity,
    k1: TestKey,
    k2: TestKey,
    /// Self-signed clients of the token endpoint: known and cached, known and never fetched,
    /// and unknown.
    warm_client: ClientIdentity,
    cold_client: ClientIdentity,
    stranger: ClientIdentity,
}

impl Cast {
    fn new() -> Cast {
        let resource_pki = Pki::new("drills-resource-ca");
        Cast {
            upstream_pki: Pki::new("drills-upstream-ca"),
            alice: resource_pki.client_identity("alice"),
            resource_pki,
            k1: TestKey::es256("k1"),
            k2: TestKey::es256("k2"),
            warm_client: Pki::self_signed_client("warm"),
            cold_client: Pki::self_signed_client("cold"),
            stranger: Pki::self_signed_client("stranger"),
        }
    }

    /// The JWKS with the signing key k1 (never k2), or the token endpoint clients' certificates.
    fn jwks(&self, upstream: Upstream) -> Value {
        match upstream {
            Upstream::ClientJwksUri => {
                let x5c = |id: &ClientIdentity| json!({"kty": "EC", "x5c": [STANDARD.encode(id.leaf_der())]});
                json!({"keys": [x5c(&self.warm_client), x5c(&self.cold_client)]})
            }
            _ => jwks(&[&self.k1]),
        }
    }

    fn introspection_answer(&self) -> Value {
        json!({
            "active": true,
            "sub": "alice",
            "client_id": "client-a",
            "scope": "read",
            "token_type": "Bearer",
            "exp": now() + 600,
            "iat": now(),
            "cnf": {"x5t#S256": self.alice.x5t_s256()},
        })
    }

    /// A token for Alice from `issuer`, signed by `key`.
    fn jwt(&self, issuer: &str, key: &TestKey) -> String {
        let mut claims = claims_bound_to(&self.alice.x5t_s256());
        claims["iss"] = json!(issuer);
        key.sign(&claims)
    }
}

/// One request to the protected application.
#[derive(Clone)]
struct Call {
    client: reqwest::Client,
    url: String,
    what: What,
}

#[derive(Clone)]
enum What {
    /// `GET` with this bearer token.
    Bearer(String),
    /// A token request as this client (the certificate is the client's).
    TokenRequest(&'static str),
}

impl Call {
    async fn status(&self) -> u16 {
        let request = match &self.what {
            What::Bearer(token) => self.client.get(&self.url).bearer_auth(token),
            What::TokenRequest(client_id) => self
                .client
                .post(&self.url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=client_credentials&client_id={client_id}"
                )),
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", self.url));
        response.status().as_u16()
    }

    async fn timed(&self) -> (u16, Duration) {
        let start = Instant::now();
        let status = self.status().await;
        (status, start.elapsed())
    }
}

/// One drill's world: the misbehaving upstream (and a redirect target), the protected
/// application with a warm validator (cached) and a cold one (nothing fetched yet).
struct Stage {
    upstream: Upstream,
    drill: Drill,
    server: MisbehavingServer,
    elsewhere: Option<MisbehavingServer>,
    /// Held for its drop.
    _app: TestServer,
    /// Cached tokens, one call per connection.
    warm: Vec<Call>,
    /// A request that makes the warm validator ask the upstream.
    refresh: Call,
    /// The same kind of request to the cold validator.
    cold: Call,
}

/// The cold validator's upstream: another target on the same server (so that a flapping
/// server answers it independently of the warm one), or a name that does not resolve.
fn cold_target(server: &MisbehavingServer, drill: Drill, target: &str) -> String {
    if drill == Drill::Unresolvable {
        format!("{UNRESOLVABLE}{target}")
    } else {
        server.url(target)
    }
}

fn jwt_builder(issuer: &str, server: &MisbehavingServer) -> certbound::token::JwtValidatorBuilder {
    JwtValidator::builder(issuer, AUDIENCE)
        .trust_root(server.ca_der())
        .only_trust_roots()
        .fetch_timeout(FETCH_TIMEOUT)
        .max_response_bytes(MAX_RESPONSE)
        .min_refresh_interval(Duration::ZERO)
}

fn introspection(url: String, server: &MisbehavingServer) -> IntrospectionValidator {
    IntrospectionValidator::endpoint(url)
        .client_secret_basic("rs", "rs-secret")
        .trust_root(server.ca_der())
        .only_trust_roots()
        .fetch_timeout(FETCH_TIMEOUT)
        .max_response_bytes(MAX_RESPONSE)
        .cache_ttl(Duration::from_secs(60))
        .build()
        .expect("introspection validator")
}

/// `/warm` and `/cold`, each behind its own validator.
fn protected<W, C>(warm: W, cold: C) -> Router
where
    W: certbound::ValidateToken,
    C: certbound::ValidateToken,
{
    Router::new()
        .merge(
            Router::new()
                .route("/warm", get(whoami))
                .layer(BoundTokenLayer::new(warm)),
        )
        .merge(
            Router::new()
                .route("/cold", get(whoami))
                .layer(BoundTokenLayer::new(cold)),
        )
}

impl Stage {
    async fn start(cast: &Cast, upstream: Upstream, drill: Drill) -> Stage {
        let server = MisbehavingServer::start(&cast.upstream_pki).await;
        server.set_jwks(cast.jwks(upstream));
        server.set_introspection_answer(cast.introspection_answer());
        let elsewhere = if drill == Drill::RedirectElsewhere {
            // Another https origin under the same CA, serving the same documents for the same
            // issuer.
            let other = MisbehavingServer::start(&cast.upstream_pki).await;
            other.set_jwks(cast.jwks(upstream));
            other.set_introspection_answer(cast.introspection_answer());
            other.set_issuer(server.base_url());
            Some(other)
        } else {
            None
        };

        let bearer = |app: &TestServer, path: &str, token: String| Call {
            client: https_client(&cast.resource_pki.ca_der(), Some(&cast.alice)),
            url: app.url(path),
            what: What::Bearer(token),
        };
        let (app, warm, refresh, cold) = match upstream {
            Upstream::JwksUrl | Upstream::Discovery => {
                let (warm_issuer, cold_issuer, warm_builder, cold_builder) = if upstream
                    == Upstream::JwksUrl
                {
                    let jwks = cold_target(&server, drill, "/jwks?cold");
                    (
                        ISSUER.to_owned(),
                        ISSUER.to_owned(),
                        jwt_builder(ISSUER, &server).jwks_url(server.url(MISBEHAVING_JWKS_PATH)),
                        jwt_builder(ISSUER, &server).jwks_url(jwks),
                    )
                } else {
                    let cold_issuer = cold_target(&server, drill, "/cold");
                    (
                        server.base_url(),
                        cold_issuer.clone(),
                        jwt_builder(&server.base_url(), &server).discover(),
                        jwt_builder(&cold_issuer, &server).discover(),
                    )
                };
                let app = protected(
                    warm_builder.build().expect("warm validator"),
                    cold_builder.build().expect("cold validator"),
                );
                let app = TestServer::start(ca_verified_tls(&cast.resource_pki), app).await;
                let warm_token = cast.jwt(&warm_issuer, &cast.k1);
                let warm = (0..TRAFFIC_CONNECTIONS)
                    .map(|_| bearer(&app, "/warm", warm_token.clone()))
                    .collect();
                let refresh = bearer(&app, "/warm", cast.jwt(&warm_issuer, &cast.k2));
                let cold = bearer(&app, "/cold", cast.jwt(&cold_issuer, &cast.k1));
                (app, warm, refresh, cold)
            }
            Upstream::Introspection => {
                let app = protected(
                    introspection(server.url(MISBEHAVING_INTROSPECT_PATH), &server),
                    introspection(cold_target(&server, drill, "/introspect?cold"), &server),
                );
                let app = TestServer::start(ca_verified_tls(&cast.resource_pki), app).await;
                let warm = (0..TRAFFIC_CONNECTIONS)
                    .map(|_| bearer(&app, "/warm", "opaque-warm".to_owned()))
                    .collect();
                let refresh = bearer(&app, "/warm", "opaque-refresh".to_owned());
                let cold = bearer(&app, "/cold", "opaque-cold".to_owned());
                (app, warm, refresh, cold)
            }
            Upstream::ClientJwksUri => {
                let authenticator = ClientAuthenticator::builder()
                    .allow_private_jwks_uri()
                    .jwks_trust_root(server.ca_der())
                    .jwks_only_trust_roots()
                    .jwks_min_refresh_interval(Duration::ZERO)
                    .jwks_fetch_timeout(FETCH_TIMEOUT)
                    .jwks_max_response_bytes(MAX_RESPONSE)
                    .build()
                    .expect("authenticator");
                let method = "self_signed_tls_client_auth";
                let clients = json!([
                    {"client_id": "warm", "token_endpoint_auth_method": method,
                     "jwks_uri": server.url("/jwks?warm")},
                    {"client_id": "cold", "token_endpoint_auth_method": method,
                     "jwks_uri": cold_target(&server, drill, "/jwks?cold")},
                ]);
                let app = start_token_endpoint(&cast.resource_pki, clients, authenticator).await;
                let call = |identity: &ClientIdentity, client_id| Call {
                    client: https_client(&cast.resource_pki.ca_der(), Some(identity)),
                    url: app.url("/token"),
                    what: What::TokenRequest(client_id),
                };
                let warm = (0..TRAFFIC_CONNECTIONS)
                    .map(|_| call(&cast.warm_client, "warm"))
                    .collect();
                let refresh = call(&cast.stranger, "warm");
                let cold = call(&cast.cold_client, "cold");
                (app, warm, refresh, cold)
            }
        };
        Stage {
            upstream,
            drill,
            server,
            elsewhere,
            _app: app,
            warm,
            refresh,
            cold,
        }
    }

    /// Runs the drill and prints its line for the table, or panics with what went wrong.
    async fn run(self) {
        let (upstream, drill) = (self.upstream, self.drill);
        let what = format!("{} {}", upstream.name(), drill.name());
        let expected = drill.cold_status(upstream);
        let warm_up = until_served(&self.warm[0], 3).await;
        assert_eq!(
            warm_up.last().map(|a| a.0),
            Some(200),
            "{what}: warm-up {warm_up:?}"
        );

        let fault = drill.fault(self.elsewhere.as_ref());
        let server_fault = fault.is_some();
        if let Some(fault) = fault {
            self.server.inject(fault);
        }
        let requests_before = self.server.requests();
        let done = Arc::new(AtomicBool::new(false));
        let waiting = async {
            let cold = async {
                if expected == 200 {
                    until_served(&self.cold, 3).await
                } else {
                    vec![self.cold.timed().await]
                }
            };
            let refresh = async {
                // The warm validator's upstream resolves: only server faults concern it.
                if server_fault {
                    Some(self.refresh.timed().await)
                } else {
                    None
                }
            };
            let answers = tokio::join!(cold, refresh);
            done.store(true, Ordering::Release);
            answers
        };
        let ((cold, refresh), traffic) = tokio::join!(waiting, cached_traffic(&self.warm, &done));

        let cold_status = cold.last().expect("asked").0;
        assert_eq!(cold_status, expected, "{what}: nothing cached {cold:?}");
        assert!(
            cold.iter()
                .all(|(status, _)| [expected, 503].contains(status)),
            "{what}: nothing cached {cold:?}"
        );
        let mut worst = cold.iter().map(|a| a.1).max().unwrap_or_default();
        if let Some((status, latency)) = refresh {
            assert_eq!(status, drill.refresh_status(upstream), "{what}: refresh");
            worst = worst.max(latency);
        }
        assert!(
            worst < BOUND,
            "{what}: answered after {worst:?}, the bound is {BOUND:?}"
        );
        let failed: Vec<u16> = traffic
            .statuses
            .iter()
            .copied()
            .filter(|s| *s != 200)
            .collect();
        assert!(failed.is_empty(), "{what}: cached traffic got {failed:?}");
        if matches!(
            drill,
            Drill::NoHandshake | Drill::UntrustedCertificate | Drill::WrongName
        ) {
            assert_eq!(
                self.server.requests(),
                requests_before,
                "{what}: a request went over a connection that should not be used"
            );
        }

        if drill == Drill::Flap {
            // Still flapping: every other answer is the good one and no failure is kept, so
            // the request is soon served (discovery needs two good answers in a row).
            let flapped = until_served(&self.cold, 4).await;
            assert_eq!(
                flapped.last().map(|a| a.0),
                Some(200),
                "{what}: {flapped:?}"
            );
            assert!(
                flapped
                    .iter()
                    .all(|(status, _)| [200, expected].contains(status)),
                "{what}: while flapping {flapped:?}"
            );
        }
        let recovered = if server_fault {
            self.server.heal();
            let recovery = until_served(&self.cold, 3).await;
            assert_eq!(
                recovery.last().map(|a| a.0),
                Some(200),
                "{what}: recovery {recovery:?}"
            );
            format!("200/attempts={}", recovery.len())
        } else {
            // The name will not start resolving: nothing to recover.
            "n/a".to_owned()
        };

        let refresh = refresh.map_or("n/a".to_owned(), |(s, _)| s.to_string());
        eprintln!(
            "DRILL {} {} status={cold_status} worst_ms={} attempts={} refresh_status={refresh} \
             recovered={recovered} cached_ok={}/{} cached_p50_ms={} cached_max_ms={}",
            upstream.name(),
            drill.name(),
            worst.as_millis(),
            cold.len(),
            traffic.statuses.len() - failed.len(),
            traffic.statuses.len(),
            traffic.p50().as_millis(),
            traffic.max().as_millis(),
        );
    }
}

/// Asks until served (200), at most `attempts` times; every answer with its latency. For what
/// must succeed even on a loaded machine, where one short fetch timeout may expire.
async fn until_served(call: &Call, attempts: usize) -> Vec<(u16, Duration)> {
    let mut answers: Vec<(u16, Duration)> = Vec::new();
    while answers.len() < attempts && answers.last().map(|a| a.0) != Some(200) {
        answers.push(call.timed().await);
    }
    answers
}

struct Traffic {
    statuses: Vec<u16>,
    latencies: Vec<Duration>,
}

impl Traffic {
    fn p50(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn max(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }
}

/// Requests with cached tokens, one loop per connection, until at least
/// [`TRAFFIC_REQUESTS`] were made and the drill's waiting requests are answered.
async fn cached_traffic(calls: &[Call], done: &Arc<AtomicBool>) -> Traffic {
    let per_connection = TRAFFIC_REQUESTS.div_ceil(calls.len());
    let mut loops = JoinSet::new();
    for call in calls {
        let call = call.clone();
        let done = Arc::clone(done);
        loops.spawn(async move {
            let mut answers = Vec::new();
            while answers.len() < per_connection || !done.load(Ordering::Acquire) {
                answers.push(call.timed().await);
            }
            answers
        });
    }
    let mut traffic = Traffic {
        statuses: Vec::new(),
        latencies: Vec::new(),
    };
    while let Some(answers) = loops.join_next().await {
        for (status, latency) in answers.expect("traffic loop") {
            traffic.statuses.push(status);
            traffic.latencies.push(latency);
        }
    }
    traffic
}

/// Runs `drills` against `upstream` concurrently, each in its own world; fails with every
/// drill that went wrong (not just the first).
async fn run_drills(upstream: Upstream, drills: &[Drill]) {
    // One upstream at a time: the drills measure how long requests wait, and the drills of
    // all upstreams at once would mostly measure each other on a small machine.
    static ONE_UPSTREAM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_UPSTREAM_AT_A_TIME.lock().await;
    let cast = Arc::new(Cast::new());
    let started = Instant::now();
    // A few drills at a time: each one's cached traffic runs flat out, and a fetch that must
    // succeed (a redirect followed, a recovery) waits its turn behind every busy connection.
    let stages = Arc::new(tokio::sync::Semaphore::new(STAGES_AT_ONCE));
    let mut tasks = JoinSet::new();
    for &drill in drills {
        let cast = Arc::clone(&cast);
        let stages = Arc::clone(&stages);
        tasks.spawn(async move {
            let _stage = stages.acquire().await.expect("semaphore open");
            let stage = Stage::start(&cast, upstream, drill).await;
            stage.run().await
        });
    }
    let mut failures = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Err(error) = result {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(message);
        }
    }
    eprintln!(
        "DRILLS {} took_ms={}",
        upstream.name(),
        started.elapsed().as_millis()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_jwks_url_is_a_503_within_the_timeout_while_cached_tokens_are_served() {
    run_drills(Upstream::JwksUrl, &all_drills()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_discovery_is_a_503_within_the_timeout_while_cached_tokens_are_served() {
    run_drills(Upstream::Discovery, &all_drills()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_introspection_endpoint_is_a_503_in_time_while_cached_answers_are_served() {
    run_drills(Upstream::Introspection, &TRANSPORT_DRILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_endless_introspection_answer_is_a_503_not_a_401() {
    run_drills(Upstream::Introspection, &SIZE_DRILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_client_jwks_uri_refuses_only_uncached_clients_within_the_timeout() {
    run_drills(Upstream::ClientJwksUri, &all_drills()).await;
}

/// A fetch timeout long enough that a request waiting on it cannot pass for one that did not.
const LONG_FETCH_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_token_signed_by_a_key_due_for_refresh_is_not_held_up_by_a_hanging_jwks_url() {
    let cast = Cast::new();
    let server = MisbehavingServer::start(&cast.upstream_pki).await;
    server.set_jwks(cast.jwks(Upstream::JwksUrl));
    // Every cached key set is due for a refresh at once; every refresh may start.
    let validator = jwt_builder(ISSUER, &server)
        .jwks_url(server.url(MISBEHAVING_JWKS_PATH))
        .fetch_timeout(LONG_FETCH_TIMEOUT)
        .max_key_age(Duration::ZERO)
        .build()
        .expect("validator");
    let app = TestServer::start(
        ca_verified_tls(&cast.resource_pki),
        whoami_app(BoundTokenLayer::new(validator)),
    )
    .await;
    let client = https_client(&cast.resource_pki.ca_der(), Some(&cast.alice));
    let url = app.url("/whoami");
    let response = get_with_token(&client, &url, &cast.jwt(ISSUER, &cast.k1)).await;
    assert_eq!(response.status(), 200);

    server.inject(Fault::Hang);
    // Another token (not a cached validation), signed by the cached key: the stale keys are
    // used while the refresh hangs in the background.
    let mut claims = claims_bound_to(&cast.alice.x5t_s256());
    claims["jti"] = json!("another");
    let token = cast.k1.sign(&claims);
    let response = tokio::time::timeout(
        LONG_FETCH_TIMEOUT / 4,
        get_with_token(&client, &url, &token),
    )
    .await
    .expect("answered without waiting for the hanging refresh");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_client_whose_cached_keys_are_due_for_refresh_is_not_held_up_by_a_hanging_jwks_uri() {
    let cast = Cast::new();
    let server = MisbehavingServer::start(&cast.upstream_pki).await;
    server.set_jwks(cast.jwks(Upstream::ClientJwksUri));
    // Every cached key set is due for a refresh at once; every refresh may start.
    let authenticator = ClientAuthenticator::builder()
        .allow_private_jwks_uri()
        .jwks_trust_root(server.ca_der())
        .jwks_only_trust_roots()
        .jwks_min_refresh_interval(Duration::ZERO)
        .jwks_max_age(Duration::ZERO)
        .jwks_fetch_timeout(LONG_FETCH_TIMEOUT)
        .build()
        .expect("authenticator");
    let clients = json!([{"client_id": "warm",
        "token_endpoint_auth_method": "self_signed_tls_client_auth",
        "jwks_uri": server.url(MISBEHAVING_JWKS_PATH)}]);
    let app = start_token_endpoint(&cast.resource_pki, clients, authenticator).await;
    let call = Call {
        client: https_client(&cast.resource_pki.ca_der(), Some(&cast.warm_client)),
        url: app.url("/token"),
        what: What::TokenRequest("warm"),
    };
    assert_eq!(call.status().await, 200);

    // The endpoint fails: the refresh due fails at once and the stale keys decide.
    server.inject(Fault::Reset);
    assert_eq!(call.status().await, 200);
    // Still failing, now by hanging: the certificate is in the cached keys and the last
    // refresh failed, so they decide while the new refresh hangs in the background.
    server.inject(Fault::Hang);
    let status = tokio::time::timeout(LONG_FETCH_TIMEOUT / 4, call.status())
        .await
        .expect("answered without waiting for the hanging refresh");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_307_from_the_introspection_endpoint_to_another_origin_takes_no_token_there() {
    let cast = Cast::new();
    let server = MisbehavingServer::start(&cast.upstream_pki).await;
    // Another origin under the same trusted CA, answering every token as active.
    let elsewhere = MisbehavingServer::start(&cast.upstream_pki).await;
    elsewhere.set_introspection_answer(cast.introspection_answer());
    let validator = IntrospectionValidator::endpoint(server.url(MISBEHAVING_INTROSPECT_PATH))
        .client_secret_post("rs", "rs-secret")
        .trust_root(server.ca_der())
        .only_trust_roots()
        .fetch_timeout(FETCH_TIMEOUT)
        .build()
        .expect("introspection validator");
    let app = TestServer::start(
        ca_verified_tls(&cast.resource_pki),
        whoami_app(BoundTokenLayer::new(validator)),
    )
    .await;
    let client = https_client(&cast.resource_pki.ca_der(), Some(&cast.alice));

    server.inject(Fault::TemporaryRedirectTo(elsewhere.base_url()));
    let status = get_with_token(&client, &app.url("/whoami"), "opaque-redirected")
        .await
        .status();
    let leaked = elsewhere.bodies();
    assert!(
        leaked.is_empty(),
        "answered {status}; the token and the client secret went to {}: {leaked:?}",
        elsewhere.base_url()
    );
    // RFC 7662 knows no redirects: the endpoint did not answer.
    assert_eq!(status, 503);
}
