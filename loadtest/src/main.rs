//! Load benchmark: a real mTLS server under C concurrent keep-alive connections, with and
//! without authentication, against a peer crate (issue 7).
//!
//! Each run starts a fresh server in a child process (this same binary with `--server-only`), on
//! its own tokio runtime with `--server-threads` workers (default 1, leaving the other core of a
//! 2-core machine to the load generator). The child process gives exact server figures: its CPU
//! time (sum of its threads' `/proc/<pid>/task/<tid>/schedstat`) and its peak RSS (`VmHWM`), and a
//! fresh server per run means a token pool reused across runs is still unseen by each server.
//!
//! Server variants, all served by `certbound::serve` over mTLS (client certificates required and
//! verified against a CA made at start), handler `GET /` → `200 ok`:
//! - `baseline`: no auth layer (the physical limit of this stack);
//! - `repeated`: `BoundTokenLayer<JwtValidator>` (static JWKS), the same bound token on every
//!   request of a connection;
//! - `distinct`: the same server, every request a different token, pre-minted and bound to the
//!   connection's certificate (every request a cache miss);
//! - `peer-repeated`, `peer-distinct`: `tower-oauth2-resource-server` (JWT only, no binding) with
//!   a static JWKS, the same issuer, audience and `exp`/`nbf` checks, on the same two workloads;
//! - `dpop`: `BoundTokenLayer<JwtValidator>` with `.dpop(Dpop::new())` (in-memory replay store):
//!   the same DPoP-bound token (`cnf.jkt`) on every request of a connection, with a fresh proof
//!   per request, signed by the client before the run;
//! - `dpop-redis`: the same with a `RedisReplayStore` on a `redis-server` this tool starts;
//! - `huskarl-repeated`, `huskarl-distinct`, `huskarl-dpop`: `huskarl-resource-server`'s
//!   `Rfc9068Validator` (static JWKS, aws-lc-rs verifier platform, an in-process `jti` set for
//!   DPoP proofs), given each request's headers, method, absolute URI and client certificate, on
//!   the certificate-bound and DPoP workloads;
//! - `issuers1-distinct`, `issuers1000-repeated`, `issuers1000-distinct`: `BoundTokenLayer` over
//!   `certbound::Issuers` (routing by `iss`) holding the tokens' issuer alone, or among 999
//!   others, on the `distinct` and `repeated` workloads.
//!
//! The client opens C connections, each a TLS connection with its own client certificate, HTTP/1.1
//! or HTTP/2 (on h2, one connection per client and one request in flight per connection, so
//! that both protocols measure the same concurrency), warms up, then measures for a fixed time:
//! requests/s, p50/p99 latency (log-linear histogram, ~1.6 % buckets), errors (any non-200, any
//! transport error), server CPU per request. Variants alternate within each round and every
//! ratio is to the baseline of the same round, protocol and connection count.
//!
//! Run (see BENCHMARKS.md):
//! ```text
//! cargo run --release --manifest-path loadtest/Cargo.toml                      # 2 rounds, h1+h2, 16 and 64 connections, 5 s
//! cargo run --release --manifest-path loadtest/Cargo.toml -- --quick           # smoke run, well under a minute
//! cargo run --release --manifest-path loadtest/Cargo.toml -- --memory          # peak RSS after 200k distinct tokens
//! cargo run --release --manifest-path loadtest/Cargo.toml -- --help
//! ```
//! The process exits with status 1 when any request failed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::IntoFuture as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use certbound::tls::ServerTls;
use certbound::dpop::{Dpop, MemoryReplayStore, RedisReplayStore};
use certbound::{BoundTokenLayer, JwtValidator};
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tower::Layer as _;

mod huskarl_peer;

const ISS: &str = "https://as.load.test";
const AUD: &str = "https://api.load.test";
const KID: &str = "load-key";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const USAGE: &str = "\
cargo run --release --manifest-path loadtest/Cargo.toml -- [options]
  --duration SECS          measured time per run (default 3; --quick 0.5)
  --warmup SECS            warm-up per run, after the connections are up (default 1; --quick 0.2)
  --rounds N               rounds of all variants (default 5; --quick 1)
  --connections LIST       concurrent connections, e.g. 16,64 (default 16,64)
  --protocols LIST         h1,h2 (default both)
  --variants LIST          baseline,repeated,distinct,peer-repeated,peer-distinct,dpop,dpop-redis,
                           huskarl-repeated,huskarl-distinct,huskarl-dpop,issuers1-distinct,
                           issuers1000-repeated,issuers1000-distinct (default all)
  --server-threads N       server runtime workers (default 1)
  --client-threads N       load generator runtime workers (default: cores - server threads, min 1)
  --pool-rate RPS          distinct-token pool sized for this rate per server thread (default 12000)
  --memory                 peak server RSS after --memory-tokens distinct tokens instead
  --memory-tokens N        (default 200000; --quick 20000)
  --memory-connections N   (default 4)
  --replay-max-entries N   bound of the in-memory DPoP replay store (default: none; --memory with
                           the dpop variant: the flood's proofs beyond it are answered 503)
  --no-pin                 do not pin the load generator and the server to separate cores
  --quick                  short smoke run
  --server-only            internal: run one server (the child process)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Protocol {
    H1,
    H2,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::H1 => "HTTP/1.1",
            Protocol::H2 => "HTTP/2",
        }
    }

    fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::H1 => b"http/1.1",
            Protocol::H2 => b"h2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    Baseline,
    Repeated,
    Distinct,
    PeerRepeated,
    PeerDistinct,
    Dpop,
    DpopRedis,
    HuskarlRepeated,
    HuskarlDistinct,
    HuskarlDpop,
    Issuers1Distinct,
    Issuers1000Repeated,
    Issuers1000Distinct,
}

impl Variant {
    const ALL: [Variant; 13] = [
        Variant::Baseline,
        Variant::Repeated,
        Variant::Distinct,
        Variant::PeerRepeated,
        Variant::PeerDistinct,
        Variant::Dpop,
        Variant::DpopRedis,
        Variant::HuskarlRepeated,
        Variant::HuskarlDistinct,
        Variant::HuskarlDpop,
        Variant::Issuers1Distinct,
        Variant::Issuers1000Repeated,
        Variant::Issuers1000Distinct,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Baseline => "baseline",
            Variant::Repeated => "repeated",
            Variant::Distinct => "distinct",
            Variant::PeerRepeated => "peer-repeated",
            Variant::PeerDistinct => "peer-distinct",
            Variant::Dpop => "dpop",
            Variant::DpopRedis => "dpop-redis",
            Variant::HuskarlRepeated => "huskarl-repeated",
            Variant::HuskarlDistinct => "huskarl-distinct",
            Variant::HuskarlDpop => "huskarl-dpop",
            Variant::Issuers1Distinct => "issuers1-distinct",
            Variant::Issuers1000Repeated => "issuers1000-repeated",
            Variant::Issuers1000Distinct => "issuers1000-distinct",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown variant {s:?}"))
    }

    fn server(self) -> ServerKind {
        match self {
            Variant::Baseline => ServerKind::Plain,
            Variant::Repeated | Variant::Distinct => ServerKind::Certbound,
            Variant::PeerRepeated | Variant::PeerDistinct => ServerKind::Peer,
            Variant::Dpop => ServerKind::CertboundDpop,
            Variant::DpopRedis => ServerKind::CertboundDpopRedis,
            Variant::HuskarlRepeated | Variant::HuskarlDistinct | Variant::HuskarlDpop => {
                ServerKind::Huskarl
            }
            Variant::Issuers1Distinct => ServerKind::Issuers1,
            Variant::Issuers1000Repeated | Variant::Issuers1000Distinct => ServerKind::Issuers1000,
        }
    }

    fn workload(self) -> Workload {
        match self {
            // The baseline gets the same request bytes (a token it ignores), so that the ratio
            // measures the layer, not the parsing of a longer header (HPACK on HTTP/2).
            Variant::Baseline
            | Variant::Repeated
            | Variant::PeerRepeated
            | Variant::HuskarlRepeated
            | Variant::Issuers1000Repeated => Workload::Repeated,
            Variant::Distinct
            | Variant::PeerDistinct
            | Variant::HuskarlDistinct
            | Variant::Issuers1Distinct
            | Variant::Issuers1000Distinct => Workload::Distinct,
            Variant::Dpop | Variant::DpopRedis | Variant::HuskarlDpop => Workload::Dpop,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerKind {
    Plain,
    Certbound,
    Peer,
    CertboundDpop,
    CertboundDpopRedis,
    Huskarl,
    /// `certbound::Issuers` with the one issuer of the tokens.
    Issuers1,
    /// `certbound::Issuers` with the issuer of the tokens among 999 others.
    Issuers1000,
}

impl ServerKind {
    const ALL: [ServerKind; 8] = [
        ServerKind::Plain,
        ServerKind::Certbound,
        ServerKind::Peer,
        ServerKind::CertboundDpop,
        ServerKind::CertboundDpopRedis,
        ServerKind::Huskarl,
        ServerKind::Issuers1,
        ServerKind::Issuers1000,
    ];

    fn name(self) -> &'static str {
        match self {
            ServerKind::Plain => "plain",
            ServerKind::Certbound => "certbound",
            ServerKind::Peer => "peer",
            ServerKind::CertboundDpop => "certbound-dpop",
            ServerKind::CertboundDpopRedis => "certbound-dpop-redis",
            ServerKind::Huskarl => "huskarl",
            ServerKind::Issuers1 => "issuers1",
            ServerKind::Issuers1000 => "issuers1000",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown server kind {s:?}"))
    }

    /// Whether the server checks `cnf.x5t#S256` against the connection's certificate.
    fn binds_certificates(self) -> bool {
        !matches!(self, ServerKind::Plain | ServerKind::Peer)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// The same certificate-bound Bearer token on every request of a connection.
    Repeated,
    /// A different certificate-bound Bearer token on every request.
    Distinct,
    /// The same DPoP-bound token on every request of a connection, a fresh proof each time.
    Dpop,
}

#[derive(Debug)]
struct Args {
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    connections: Vec<usize>,
    protocols: Vec<Protocol>,
    variants: Vec<Variant>,
    server_threads: usize,
    client_threads: usize,
    pool_rate: u64,
    memory: bool,
    memory_tokens: u64,
    memory_connections: usize,
    /// `max_entries` of the in-memory DPoP replay store.
    replay_max_entries: Option<usize>,
    quick: bool,
    /// Client threads on the first cores, the server child on the others (`taskset`).
    pin: bool,
    /// The machine's cores, counted before pinning (which narrows what the process sees).
    cores: usize,
    /// `Some(kind)`: this process is a server child.
    server_only: Option<ServerKind>,
}

fn parse_list<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    let items = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() {
        return Err(format!("empty list {s:?}"));
    }
    Ok(items)
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("seconds must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_count<T: std::str::FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        _ => Err(format!("not a positive integer: {s:?}")),
    }
}

impl Args {
    fn parse(argv: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut duration = None;
        let mut warmup = None;
        let mut rounds = None;
        let mut connections = vec![16, 64];
        let mut protocols = vec![Protocol::H1, Protocol::H2];
        let mut variants = Variant::ALL.to_vec();
        let mut server_threads = 1;
        let mut client_threads = None;
        let mut pool_rate = 12_000;
        let mut memory = false;
        let mut memory_tokens = None;
        let mut memory_connections = 4;
        let mut replay_max_entries = None;
        let mut quick = false;
        let mut pin = true;
        let mut bench_flag = false;
        let mut server_only = None;

        let mut argv = argv.into_iter();
        while let Some(arg) = argv.next() {
            let mut value = || argv.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--duration" => duration = Some(parse_secs(&value()?)?),
                "--warmup" => warmup = Some(parse_secs(&value()?)?),
                "--rounds" => rounds = Some(parse_count(&value()?)?),
                "--connections" => connections = parse_list(&value()?, parse_count)?,
                "--protocols" => {
                    protocols = parse_list(&value()?, |s| match s {
                        "h1" | "http1" => Ok(Protocol::H1),
                        "h2" | "http2" => Ok(Protocol::H2),
                        other => Err(format!("unknown protocol {other:?} (h1, h2)")),
                    })?;
                }
                "--variants" => variants = parse_list(&value()?, Variant::parse)?,
                "--server-threads" => server_threads = parse_count(&value()?)?,
                "--client-threads" => client_threads = Some(parse_count(&value()?)?),
                "--pool-rate" => pool_rate = parse_count(&value()?)?,
                "--memory" => memory = true,
                "--memory-tokens" => memory_tokens = Some(parse_count(&value()?)?),
                "--memory-connections" => memory_connections = parse_count(&value()?)?,
                "--replay-max-entries" => replay_max_entries = Some(parse_count(&value()?)?),
                "--quick" => quick = true,
                "--no-pin" => pin = false,
                "--server-only" => server_only = Some(ServerKind::parse(&value()?)?),
                // cargo bench passes `--bench`; without it (cargo test --benches) run quick.
                "--bench" => bench_flag = true,
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let _ = bench_flag;
        protocols.sort();
        protocols.dedup();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Args {
            duration: duration.unwrap_or(if quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(3)
            }),
            warmup: warmup.unwrap_or(if quick {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            }),
            rounds: rounds.unwrap_or(if quick { 1 } else { 5 }),
            connections,
            protocols,
            variants,
            server_threads,
            client_threads: client_threads
                .unwrap_or_else(|| cores.saturating_sub(server_threads).max(1)),
            pool_rate,
            memory,
            memory_tokens: memory_tokens.unwrap_or(if quick { 20_000 } else { 200_000 }),
            memory_connections,
            replay_max_entries,
            quick,
            // Pinning needs a core for each side and `taskset` (util-linux).
            pin: pin && cores >= server_threads + 1,
            cores,
            server_only,
        })
    }
}

impl Args {
    /// The load generator's cores: the first `client_threads` (always leaving one).
    fn client_cpus(&self) -> String {
        let last = self.client_threads.min(self.cores - 1).max(1) - 1;
        format!("0-{last}")
    }

    /// The server's cores: all the others.
    fn server_cpus(&self) -> String {
        let first = self.client_threads.min(self.cores - 1).max(1);
        format!("{first}-{}", self.cores - 1)
    }

    fn pin_server(&self, server: &ServerProcess) -> Result<(), BoxError> {
        if self.pin {
            pin(server.pid(), &self.server_cpus())?;
        }
        Ok(())
    }
}

/// Pins every thread of process `pid` to `cpus` (a list such as `0-0`), with util-linux's
/// `taskset`. Threads made later inherit it.
fn pin(pid: u32, cpus: &str) -> Result<(), BoxError> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset (pass --no-pin to run without it): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -a -c -p {cpus} {pid} failed").into())
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates and tokens (made at start; nothing committed)
// ---------------------------------------------------------------------------------------------

/// What the server child needs, sent to it as one JSON line on its stdin.
struct ServerMaterial {
    ca_der: Vec<u8>,
    cert_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    jwks: String,
    /// The DPoP variants: `max_entries` of the in-memory replay store.
    replay_max_entries: Option<usize>,
    /// `dpop-redis`: the redis-server this tool started.
    redis_url: Option<String>,
}

impl ServerMaterial {
    fn to_json_line(&self) -> String {
        let mut line = json!({
            "ca": STANDARD.encode(&self.ca_der),
            "cert": STANDARD.encode(&self.cert_der),
            "key": STANDARD.encode(&self.key_pkcs8),
            "jwks": self.jwks,
            "replay_max_entries": self.replay_max_entries,
            "redis_url": self.redis_url,
        })
        .to_string();
        line.push('\n');
        line
    }

    fn from_json_line(line: &str) -> Result<Self, BoxError> {
        let v: Value = serde_json::from_str(line)?;
        let field = |name: &str| -> Result<String, BoxError> {
            Ok(v[name]
                .as_str()
                .ok_or_else(|| format!("material: no {name}"))?
                .to_owned())
        };
        Ok(ServerMaterial {
            ca_der: STANDARD.decode(field("ca")?)?,
            cert_der: STANDARD.decode(field("cert")?)?,
            key_pkcs8: STANDARD.decode(field("key")?)?,
            jwks: field("jwks")?,
            replay_max_entries: v["replay_max_entries"]
                .as_u64()
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            redis_url: v["redis_url"].as_str().map(str::to_owned),
        })
    }
}

/// One simulated client: its certificate, key and thumbprint.
struct ClientIdentity {
    cert: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
    /// RFC 8705 §3.1, computed here independently of certbound.
    x5t_s256: String,
    /// This client's DPoP key (P-256), which signs its proofs.
    dpop: DpopSigner,
}

/// A client's DPoP key: signs proofs (RFC 9449 §4.2) with jsonwebtoken's aws-lc-rs backend,
/// independently of certbound's own signer.
struct DpopSigner {
    key: EncodingKey,
    /// The proof header, base64url-encoded once: `typ`, `alg` and the public `jwk`.
    header_b64: String,
    /// RFC 7638 thumbprint of the public key (the token's `cnf.jkt`).
    jkt: String,
    /// Makes every proof's `jti` unique.
    serial: AtomicU64,
}

/// The `htu` of every proof: what both servers see as the request's URL (`https`, the `Host`
/// or `:authority` the client sends, path `/`).
const HTU: &str = "https://localhost/";

impl DpopSigner {
    fn new(client: usize) -> Self {
        let key = p256();
        let point = key.public_key_raw();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        let header = json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": { "kty": "EC", "crv": "P-256", "x": x, "y": y },
        });
        // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        DpopSigner {
            key: EncodingKey::from_ec_der(&key.serialize_der()),
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            jkt: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)),
            // Distinct per client, so that two clients never share a jti either.
            serial: AtomicU64::new((client as u64) << 40),
        }
    }

    /// A fresh proof for `GET https://localhost/` with access token hash `ath`.
    fn proof(&self, ath: &str) -> HeaderValue {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let jti = self.serial.fetch_add(1, Ordering::Relaxed);
        let claims = format!(
            r#"{{"jti":"p-{jti:x}","htm":"GET","htu":"{HTU}","iat":{now},"ath":"{ath}"}}"#
        );
        let input = format!("{}.{}", self.header_b64, URL_SAFE_NO_PAD.encode(claims));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256)
            .expect("proof signs");
        HeaderValue::try_from(format!("{input}.{signature}")).expect("header value")
    }

    /// `count` fresh proofs, signed on all cores.
    fn proofs(&self, ath: &str, count: usize) -> Vec<HeaderValue> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_thread = count.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let n = per_thread.min(count.saturating_sub(t * per_thread));
                    s.spawn(move || (0..n).map(|_| self.proof(ath)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("signing thread"))
                .collect()
        })
    }
}

/// A client's DPoP-bound access token (`Authorization: DPoP ...`) and its `ath`.
#[derive(Clone)]
struct DpopToken {
    authorization: HeaderValue,
    ath: Arc<str>,
}

struct Material {
    server: ServerMaterial,
    clients: Vec<ClientIdentity>,
    signer: TokenSigner,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key")
}

impl Material {
    fn new(clients: usize) -> Self {
        let ca_key = p256();
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn("certbound load CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = p256();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("localhost");
        params.subject_alt_names = vec![SanType::DnsName("localhost".try_into().expect("dns"))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");

        let clients = (0..clients)
            .map(|i| {
                let key = p256();
                let mut params = CertificateParams::default();
                params.distinguished_name = dn(&format!("load client {i}"));
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                let cert = params.signed_by(&key, &issuer).expect("client certificate");
                let cert = cert.der().clone();
                let x5t_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref()));
                ClientIdentity {
                    cert,
                    key_pkcs8: key.serialize_der(),
                    x5t_s256,
                    dpop: DpopSigner::new(i),
                }
            })
            .collect();

        let signing_key = p256();
        let point = signing_key.public_key_raw();
        assert_eq!((point.len(), point[0]), (65, 0x04), "uncompressed P-256");
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        Material {
            server: ServerMaterial {
                ca_der: ca_cert.der().to_vec(),
                cert_der: server_cert.der().to_vec(),
                key_pkcs8: server_key.serialize_der(),
                jwks: json!({ "keys": [jwk] }).to_string(),
                replay_max_entries: None,
                redis_url: None,
            },
            clients,
            signer: TokenSigner {
                key: EncodingKey::from_ec_der(&signing_key.serialize_der()),
                serial: AtomicU64::new(0),
            },
        }
    }
}

/// Mints ES256 access tokens (RFC 9068 shape) bound to a certificate thumbprint.
struct TokenSigner {
    key: EncodingKey,
    /// Makes every token's `jti`, hence every token, unique.
    serial: AtomicU64,
}

impl TokenSigner {
    fn mint(&self, x5t_s256: &str) -> HeaderValue {
        let token = self.mint_with_cnf(json!({ "x5t#S256": x5t_s256 }));
        let mut value = HeaderValue::try_from(format!("Bearer {token}")).expect("header value");
        value.set_sensitive(true);
        value
    }

    /// A token bound (`cnf.jkt`) to a client's DPoP key.
    fn mint_dpop(&self, jkt: &str) -> DpopToken {
        let token = self.mint_with_cnf(json!({ "jkt": jkt }));
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        let mut authorization =
            HeaderValue::try_from(format!("DPoP {token}")).expect("header value");
        authorization.set_sensitive(true);
        DpopToken {
            authorization,
            ath: ath.into(),
        }
    }

    fn mint_with_cnf(&self, cnf: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let claims = json!({
            "iss": ISS, "aud": AUD, "sub": "load-user", "client_id": "load-client",
            "scope": "read write", "iat": now, "nbf": now, "exp": now + 3600,
            "jti": format!("load-{}", self.serial.fetch_add(1, Ordering::Relaxed)),
            "cnf": cnf,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("token signs")
    }

    /// `count` distinct tokens bound to `x5t_s256`, minted on all cores.
    fn mint_many(&self, x5t_s256: &str, count: usize) -> Vec<HeaderValue> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_thread = count.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let n = per_thread.min(count.saturating_sub(t * per_thread));
                    s.spawn(move || (0..n).map(|_| self.mint(x5t_s256)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("minting thread"))
                .collect()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The server child
// ---------------------------------------------------------------------------------------------

type OkBody = Full<Bytes>;

/// `GET /` → `200 ok`; anything else `404`.
/// Requests that reached the handler (printed at exit under `LOAD_SERVER_WRAPPER`).
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs the server child under this command (e.g. `valgrind --tool=callgrind`), split at
/// whitespace; the child then prints how many requests it handled when it exits.
const WRAPPER_ENV: &str = "LOAD_SERVER_WRAPPER";

async fn hello(request: Request<Incoming>) -> Result<Response<OkBody>, Infallible> {
    SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    if request.method() != http::Method::GET || request.uri().path() != "/" {
        *response.status_mut() = StatusCode::NOT_FOUND;
        *response.body_mut() = Full::default();
    }
    Ok(response)
}

/// Runs one server until its stdin closes (the parent's signal; also when the parent dies).
fn server_main(kind: ServerKind, threads: usize) -> Result<(), BoxError> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let material = ServerMaterial::from_json_line(&line)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("load-server")
        .enable_all()
        .build()?;
    let addr = runtime.block_on(async move {
        let tls = ServerTls::new(
            vec![CertificateDer::from(material.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.key_pkcs8)),
        )
        .client_ca([CertificateDer::from(material.ca_der)])?
        .build()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handler = tower::service_fn(hello);
        match kind {
            ServerKind::Plain => {
                tokio::spawn(certbound::serve(listener, tls, handler).into_future());
            }
            ServerKind::Certbound => {
                let validator = JwtValidator::builder(ISS, AUD)
                    .jwks_json(material.jwks)
                    .build()?;
                let service = BoundTokenLayer::new(validator).layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Peer => {
                use tower_oauth2_resource_server::{
                    server::OAuth2ResourceServer, tenant::TenantConfiguration,
                    validation::ClaimsValidationSpec,
                };
                // The same checks as certbound's validator: iss, aud, exp, nbf (60 s leeway,
                // jsonwebtoken's default in both). Claims decoded into a full JSON map, as
                // certbound keeps every claim of a validated token.
                let tenant = TenantConfiguration::static_builder(material.jwks)
                    .claims_validation(ClaimsValidationSpec::recommended(
                        ISS,
                        &vec![AUD.to_owned()],
                    ))
                    .build()?;
                let peer = OAuth2ResourceServer::<serde_json::Map<String, Value>>::builder()
                    .add_tenant(tenant)
                    .build()
                    .await?;
                let service = peer.into_layer::<OkBody>().layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::CertboundDpop | ServerKind::CertboundDpopRedis => {
                let validator = JwtValidator::builder(ISS, AUD)
                    .jwks_json(material.jwks)
                    .build()?;
                let dpop = if kind == ServerKind::CertboundDpopRedis {
                    let url = material.redis_url.ok_or("dpop-redis: no redis URL")?;
                    Dpop::new().replay_store(RedisReplayStore::connect(&url).await?)
                } else {
                    let mut store = MemoryReplayStore::new();
                    if let Some(entries) = material.replay_max_entries {
                        store = store.max_entries(entries);
                    }
                    Dpop::new().replay_store(store)
                };
                let service = BoundTokenLayer::new(validator).dpop(dpop).layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Issuers1 | ServerKind::Issuers1000 => {
                // Routed by `iss`: the tokens' issuer, alone or among 999 others with the same
                // keys (only the map lookup grows with the set).
                let others = if kind == ServerKind::Issuers1000 { 999 } else { 0 };
                let mut issuers = certbound::Issuers::builder();
                for i in 0..others {
                    let other = JwtValidator::builder(format!("https://as-{i}.example"), AUD)
                        .jwks_json(material.jwks.clone())
                        .build()?;
                    issuers = issuers.jwt(other);
                }
                let validator = JwtValidator::builder(ISS, AUD)
                    .jwks_json(material.jwks)
                    .build()?;
                let issuers = issuers.jwt(validator).build()?;
                let service = BoundTokenLayer::new(issuers).layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Huskarl => {
                let validator = huskarl_peer::validator(&material.jwks, ISS, AUD).await?;
                let service = huskarl_peer::HuskarlAuth::new(validator, handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
        }
        Ok::<_, BoxError>(addr)
    })?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {addr}")?;
    stdout.flush()?;
    // Blocks (no CPU) until the parent closes our stdin.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    runtime.shutdown_timeout(Duration::from_millis(100));
    if std::env::var_os(WRAPPER_ENV).is_some() {
        eprintln!(
            "load server ({}): handled {} requests",
            kind.name(),
            SERVED.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    Ok(())
}

/// A server child process.
struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl ServerProcess {
    fn spawn(
        kind: ServerKind,
        threads: usize,
        material: &ServerMaterial,
    ) -> Result<Self, BoxError> {
        let wrapper = std::env::var(WRAPPER_ENV).unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(std::env::current_exe()?);
                command
            }
            None => Command::new(std::env::current_exe()?),
        };
        let mut child = command
            .args(["--server-only", kind.name(), "--server-threads"])
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("child stdin")?;
        stdin.write_all(material.to_json_line().as_bytes())?;
        stdin.flush()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("child stdout")?).read_line(&mut line)?;
        let addr = match line.trim().strip_prefix("listening ") {
            Some(addr) => addr.parse()?,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("server child did not start ({kind:?}): {line:?}").into());
            }
        };
        Ok(ServerProcess {
            child,
            stdin: Some(stdin),
            addr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) -> Result<(), BoxError> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("server child exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The redis-server of `dpop-redis`
// ---------------------------------------------------------------------------------------------

/// A redis-server of this tool's own on a free local port, without persistence (as the test
/// fixtures start it), pinned with the server child; stopped on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(args: &Args) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = if args.pin {
            // The store is server-side work: it shares the server's cores, never the client's.
            let mut command = Command::new("taskset");
            command.args(["-c", &args.server_cpus(), "redis-server"]);
            command
        } else {
            Command::new("redis-server")
        };
        let child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (Debian: apt-get install redis-server): {e}"))?;
        let server = RedisServer { child, port };
        for _ in 0..100 {
            if server.cli(&["PING"]).is_ok_and(|out| out.trim() == "PONG") {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("redis-server did not answer PING within 5 s".into())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, command: &[&str]) -> Result<String, BoxError> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(command)
            .output()?;
        if !out.status.success() {
            return Err(format!("redis-cli {command:?}: {}", out.status).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Zeroes `INFO commandstats`.
    fn reset_stats(&self) -> Result<(), BoxError> {
        self.cli(&["CONFIG", "RESETSTAT"]).map(drop)
    }

    /// Calls per command since the last reset (`cmdstat_set:calls=N,...`), this tool's own
    /// `CONFIG` and `INFO` left out.
    fn commandstats(&self) -> Result<BTreeMap<String, u64>, BoxError> {
        let info = self.cli(&["INFO", "commandstats"])?;
        Ok(info
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
                Some((name.to_owned(), calls))
            })
            .filter(|(name, _)| !name.starts_with("config") && name != "info")
            .collect())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------------

/// CPU time of every live thread of `pid`, in nanoseconds (`schedstat`'s first field), falling
/// back to the process's `utime + stime` (clock ticks, assumed 100 Hz) without schedstat.
fn process_cpu_ns(pid: u32) -> u64 {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let path = task.path().join("schedstat");
            if let Some(ns) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
                any = true;
            }
        }
    }
    if any && total > 0 {
        return total;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the `(comm)`, which may contain spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) * 10_000_000)
        })
        .unwrap_or(0)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 64 per power of two (< 1.6 % relative error)
// ---------------------------------------------------------------------------------------------

const SUB_BITS: u32 = 7;
const HALF: usize = 1 << (SUB_BITS - 1);

#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 2) * HALF],
            total: 0,
        }
    }

    fn index(ns: u64) -> usize {
        if ns < (1 << SUB_BITS) {
            return ns as usize;
        }
        let shift = 63 - ns.leading_zeros() - (SUB_BITS - 1);
        shift as usize * HALF + (ns >> shift) as usize
    }

    /// The middle of a bucket's range.
    fn value(index: usize) -> u64 {
        if index < (1 << SUB_BITS) {
            return index as u64;
        }
        let shift = index / HALF - 1;
        let mantissa = (index - shift * HALF) as u64;
        (mantissa << shift) + (1u64 << shift) / 2
    }

    fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The latency at quantile `q` (0..=1); zero when empty.
    fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(Self::value(i));
            }
        }
        Duration::MAX
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------------

/// How a connection obtains the `Authorization` (and `DPoP`) headers of each request.
#[derive(Clone)]
enum Tokens {
    None,
    Same(HeaderValue),
    /// Pre-minted, each used once; past the end, reused (counted and reported).
    Pool(Arc<Vec<HeaderValue>>),
    /// Minted on the fly on the client (memory mode, where client time does not matter).
    Mint(Arc<Material>, usize),
    /// One DPoP-bound token and pre-signed proofs, each used once; past the end, reused
    /// (counted and reported: the server refuses a replayed proof).
    Dpop(DpopToken, Arc<Vec<HeaderValue>>),
    /// One DPoP-bound token, proofs signed on the fly by client `.1` (memory mode).
    DpopMint(DpopToken, Arc<Material>, usize),
}

struct TokenCursor {
    tokens: Tokens,
    next: usize,
}

/// The credentials of one request: `Authorization` and `DPoP`.
type Credentials = (Option<HeaderValue>, Option<HeaderValue>);

impl TokenCursor {
    fn next(&mut self, stats: &mut ConnStats) -> Credentials {
        let TokenCursor { tokens, next } = self;
        let mut take = |pool: &[HeaderValue]| {
            if *next >= pool.len() {
                stats.reused_tokens += 1;
            }
            let value = pool[*next % pool.len()].clone();
            *next += 1;
            value
        };
        match tokens {
            Tokens::None => (None, None),
            Tokens::Same(value) => (Some(value.clone()), None),
            Tokens::Pool(pool) => (Some(take(pool)), None),
            Tokens::Mint(material, client) => (
                Some(material.signer.mint(&material.clients[*client].x5t_s256)),
                None,
            ),
            Tokens::Dpop(token, proofs) => (Some(token.authorization.clone()), Some(take(proofs))),
            Tokens::DpopMint(token, material, client) => (
                Some(token.authorization.clone()),
                Some(material.clients[*client].dpop.proof(&token.ath)),
            ),
        }
    }
}

#[derive(Clone)]
struct Connector {
    addr: SocketAddr,
    tls: TlsConnector,
    protocol: Protocol,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Connector {
    fn new(addr: SocketAddr, client: &ClientIdentity, ca: &[u8], protocol: Protocol) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.to_vec()))
            .expect("CA as trust anchor");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![client.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_pkcs8.clone())),
        )
        .expect("client certificate");
        config.alpn_protocols = vec![protocol.alpn().to_vec()];
        Connector {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            protocol,
        }
    }

    async fn connect(&self) -> Result<Sender, BoxError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        if tls.get_ref().1.alpn_protocol() != Some(self.protocol.alpn()) {
            return Err(format!("ALPN did not negotiate {}", self.protocol.name()).into());
        }
        let io = TokioIo::new(tls);
        Ok(match self.protocol {
            Protocol::H1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                Sender::H1(sender)
            }
            Protocol::H2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(conn);
                Sender::H2(sender)
            }
        })
    }
}

impl Sender {
    /// One request, response body read to the end; the status.
    async fn send(&mut self, request: Request<Empty<Bytes>>) -> Result<StatusCode, BoxError> {
        let response = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

#[derive(Clone, Copy)]
enum Stop {
    /// Keep sending until then.
    At(Instant),
    /// Send this many requests.
    After(u64),
}

struct ConnStats {
    histogram: Histogram,
    /// 200 responses completed inside the measured window.
    measured: u64,
    /// Every 200 response (warm-up included).
    ok_total: u64,
    /// Non-200 responses, by status (whole run).
    bad_status: BTreeMap<u16, u64>,
    /// Transport errors (whole run).
    transport_errors: u64,
    reused_tokens: u64,
    /// Requests sent with a DPoP proof (each one reaches the replay store unless refused
    /// before).
    proofs_sent: u64,
    /// Connections that failed and could not be re-established.
    lost: u64,
}

impl ConnStats {
    fn new() -> Self {
        ConnStats {
            histogram: Histogram::new(),
            measured: 0,
            ok_total: 0,
            bad_status: BTreeMap::new(),
            transport_errors: 0,
            reused_tokens: 0,
            proofs_sent: 0,
            lost: 0,
        }
    }

    fn merge(&mut self, other: &ConnStats) {
        self.histogram.merge(&other.histogram);
        self.measured += other.measured;
        self.ok_total += other.ok_total;
        for (status, n) in &other.bad_status {
            *self.bad_status.entry(*status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.reused_tokens += other.reused_tokens;
        self.proofs_sent += other.proofs_sent;
        self.lost += other.lost;
    }

    fn errors(&self) -> u64 {
        self.bad_status.values().sum::<u64>() + self.transport_errors + self.lost
    }
}

/// One connection's request loop.
async fn drive(
    connector: Connector,
    mut sender: Sender,
    mut tokens: TokenCursor,
    measure_from: Instant,
    stop: Stop,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let uri: Uri = match connector.protocol {
        Protocol::H1 => Uri::from_static("/"),
        Protocol::H2 => Uri::from_static("https://localhost/"),
    };
    let mut sent = 0u64;
    loop {
        match stop {
            Stop::At(end) if Instant::now() >= end => break,
            Stop::After(n) if sent >= n => break,
            _ => {}
        }
        let mut request = Request::get(uri.clone());
        if connector.protocol == Protocol::H1 {
            request = request.header(header::HOST, "localhost");
        }
        let (authorization, proof) = tokens.next(&mut stats);
        if let Some(token) = authorization {
            request = request.header(header::AUTHORIZATION, token);
        }
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
            stats.proofs_sent += 1;
        }
        let request = request.body(Empty::new()).expect("request");
        sent += 1;
        let started = Instant::now();
        let outcome = sender.send(request).await;
        let done = Instant::now();
        match outcome {
            Ok(StatusCode::OK) => {
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
            Ok(status) => *stats.bad_status.entry(status.as_u16()).or_default() += 1,
            Err(_) => {
                stats.transport_errors += 1;
                match connector.connect().await {
                    Ok(fresh) => sender = fresh,
                    Err(_) => {
                        stats.lost += 1;
                        break;
                    }
                }
            }
        }
    }
    stats
}

struct RunResult {
    stats: ConnStats,
    elapsed: Duration,
    server_cpu_ns: u64,
    client_cpu_ns: u64,
    /// `dpop-redis`: the redis-server's commands during the run, by command.
    store_commands: Option<BTreeMap<String, u64>>,
}

impl RunResult {
    fn rps(&self) -> f64 {
        self.stats.measured as f64 / self.elapsed.as_secs_f64()
    }

    fn server_cpu_us_per_request(&self) -> f64 {
        if self.stats.measured == 0 {
            return f64::NAN;
        }
        self.server_cpu_ns as f64 / 1000.0 / self.stats.measured as f64
    }
}

/// Before any measurement: the server under test really authenticates. Without a token it must
/// answer 401 (auth variants) or 200 (baseline); servers that bind tokens to certificates must
/// refuse a valid token bound to another certificate (the peer, which does not bind, accepts
/// it); DPoP servers must accept a fresh proof and refuse it replayed. Returns the number of
/// proofs sent.
async fn preflight(
    sender: &mut Sender,
    protocol: Protocol,
    variant: Variant,
    material: &Material,
) -> Result<u64, BoxError> {
    let kind = variant.server();
    let request = |authorization: Option<HeaderValue>, proof: Option<HeaderValue>| {
        let mut request = Request::get(match protocol {
            Protocol::H1 => "/",
            Protocol::H2 => "https://localhost/",
        });
        if protocol == Protocol::H1 {
            request = request.header(header::HOST, "localhost");
        }
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.body(Empty::new()).expect("request")
    };
    let expect = |what: &str, got: StatusCode, want: StatusCode| {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "preflight ({}, {what}): {got}, expected {want}",
                variant.name()
            ))
        }
    };
    let no_token = sender.send(request(None, None)).await?;
    if kind == ServerKind::Plain {
        expect("no token", no_token, StatusCode::OK)?;
        return Ok(0);
    }
    expect("no token", no_token, StatusCode::UNAUTHORIZED)?;
    if variant.workload() == Workload::Dpop {
        let signer = &material.clients[0].dpop;
        let token = material.signer.mint_dpop(&signer.jkt);
        let proof = signer.proof(&token.ath);
        let status = sender
            .send(request(Some(token.authorization.clone()), Some(proof.clone())))
            .await?;
        expect("fresh proof", status, StatusCode::OK)?;
        let status = sender
            .send(request(Some(token.authorization), Some(proof)))
            .await?;
        expect("replayed proof", status, StatusCode::UNAUTHORIZED)?;
        return Ok(2);
    }
    let elsewhere = material.signer.mint(&URL_SAFE_NO_PAD.encode([0u8; 32]));
    let status = sender.send(request(Some(elsewhere), None)).await?;
    let want = if kind.binds_certificates() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    expect("token bound to another certificate", status, want)?;
    Ok(0)
}

/// Connects `tokens.len()` clients to `server`, checks it (see [`preflight`]), then drives them.
async fn run_load(
    server: &ServerProcess,
    material: &Material,
    variant: Variant,
    protocol: Protocol,
    tokens: Vec<Tokens>,
    warmup: Duration,
    stop: StopSpec,
) -> Result<RunResult, BoxError> {
    let mut connections = Vec::with_capacity(tokens.len());
    let mut preflight_proofs = 0;
    for (i, tokens) in tokens.into_iter().enumerate() {
        let connector = Connector::new(
            server.addr,
            &material.clients[i],
            &material.server.ca_der,
            protocol,
        );
        let mut sender = connector.connect().await?;
        if i == 0 {
            preflight_proofs = preflight(&mut sender, protocol, variant, material).await?;
        }
        connections.push((connector, sender, tokens));
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop = match stop {
        StopSpec::Duration(d) => Stop::At(measure_from + d),
        StopSpec::Requests(n) => Stop::After(n),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (connector, sender, tokens) in connections {
        let cursor = TokenCursor { tokens, next: 0 };
        tasks.spawn(drive(connector, sender, cursor, measure_from, stop));
    }
    let pid = server.pid();
    let self_pid = std::process::id();
    tokio::time::sleep_until(measure_from.into()).await;
    let (server_cpu0, client_cpu0, t0) = (
        process_cpu_ns(pid),
        process_cpu_ns(self_pid),
        Instant::now(),
    );
    let mut stats = ConnStats::new();
    let (server_cpu1, client_cpu1, t1) = match stop {
        Stop::At(end) => {
            tokio::time::sleep_until(end.into()).await;
            let sample = (
                process_cpu_ns(pid),
                process_cpu_ns(self_pid),
                Instant::now(),
            );
            while let Some(done) = tasks.join_next().await {
                stats.merge(&done?);
            }
            sample
        }
        Stop::After(_) => {
            while let Some(done) = tasks.join_next().await {
                stats.merge(&done?);
            }
            (
                process_cpu_ns(pid),
                process_cpu_ns(self_pid),
                Instant::now(),
            )
        }
    };
    let elapsed = match stop {
        Stop::At(end) => end - measure_from,
        Stop::After(_) => t1 - t0,
    };
    stats.proofs_sent += preflight_proofs;
    Ok(RunResult {
        stats,
        elapsed,
        server_cpu_ns: server_cpu1.saturating_sub(server_cpu0),
        client_cpu_ns: client_cpu1.saturating_sub(client_cpu0),
        store_commands: None,
    })
}

#[derive(Clone, Copy)]
enum StopSpec {
    Duration(Duration),
    Requests(u64),
}

// ---------------------------------------------------------------------------------------------
// Throughput mode
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    protocol: Protocol,
    connections: usize,
    variant: Variant,
}

struct Measured {
    round: usize,
    key: Key,
    result: RunResult,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Distinct-token pools, one per client identity, sized so that no connection runs out at
/// `rate` requests/s over warm-up plus duration.
fn token_pools(args: &Args, material: &Material) -> Vec<Arc<Vec<HeaderValue>>> {
    if !args
        .variants
        .iter()
        .any(|v| v.workload() == Workload::Distinct)
    {
        return Vec::new();
    }
    let window = (args.warmup + args.duration).as_secs_f64();
    let rate = (args.pool_rate * args.server_threads as u64) as f64;
    let max_conns = args.connections.iter().copied().max().unwrap_or(1);
    let started = Instant::now();
    let pools: Vec<_> = (0..max_conns)
        .map(|i| {
            // The largest share identity `i` gets among the connection counts it takes part in.
            let need = args
                .connections
                .iter()
                .filter(|&&c| i < c)
                .map(|&c| (rate * window / c as f64 * 1.1).ceil() as usize + 16)
                .max()
                .unwrap_or(0);
            Arc::new(
                material
                    .signer
                    .mint_many(&material.clients[i].x5t_s256, need),
            )
        })
        .collect();
    let total: usize = pools.iter().map(|p| p.len()).sum();
    eprintln!(
        "load: minted {total} distinct tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    pools
}

/// Per connection, its DPoP token and fresh proofs for one run: enough that no connection runs
/// out at `--pool-rate` requests/s over warm-up plus duration. Signed just before each run,
/// because a proof is accepted for about a minute after its `iat`.
fn proof_pools(
    args: &Args,
    material: &Material,
    tokens: &[DpopToken],
    connections: usize,
) -> Vec<Tokens> {
    let window = (args.warmup + args.duration).as_secs_f64();
    let rate = (args.pool_rate * args.server_threads as u64) as f64;
    let need = (rate * window / connections as f64 * 1.1).ceil() as usize + 16;
    let started = Instant::now();
    let pools: Vec<Tokens> = (0..connections)
        .map(|i| {
            let proofs = material.clients[i].dpop.proofs(&tokens[i].ath, need);
            Tokens::Dpop(tokens[i].clone(), Arc::new(proofs))
        })
        .collect();
    eprintln!(
        "load: signed {} DPoP proofs in {:.1} s",
        need * connections,
        started.elapsed().as_secs_f64()
    );
    pools
}

fn throughput(
    args: &Args,
    material: &Arc<Material>,
    runtime: &tokio::runtime::Runtime,
    redis: Option<&RedisServer>,
) -> Result<Vec<Measured>, BoxError> {
    let pools = token_pools(args, material);
    let mut repeated: Vec<HeaderValue> = Vec::new();
    let max_conns = args.connections.iter().copied().max().unwrap_or(1);
    if args
        .variants
        .iter()
        .any(|v| v.workload() == Workload::Repeated)
    {
        repeated = (0..max_conns)
            .map(|i| material.signer.mint(&material.clients[i].x5t_s256))
            .collect();
    }
    let dpop_tokens: Vec<DpopToken> = if args.variants.iter().any(|v| v.workload() == Workload::Dpop)
    {
        (0..max_conns)
            .map(|i| material.signer.mint_dpop(&material.clients[i].dpop.jkt))
            .collect()
    } else {
        Vec::new()
    };
    let mut measured = Vec::new();
    println!(
        "| round | protocol | conns | variant | req/s | p50 µs | p99 µs | errors | server CPU µs/req | server CPU % | client CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=args.rounds {
        for &protocol in &args.protocols {
            for &connections in &args.connections {
                for &variant in &args.variants {
                    let tokens = match variant.workload() {
                        Workload::Repeated => (0..connections)
                            .map(|i| Tokens::Same(repeated[i].clone()))
                            .collect(),
                        Workload::Distinct => (0..connections)
                            .map(|i| Tokens::Pool(Arc::clone(&pools[i])))
                            .collect(),
                        Workload::Dpop => proof_pools(args, material, &dpop_tokens, connections),
                    };
                    let server = ServerProcess::spawn(
                        variant.server(),
                        args.server_threads,
                        &material.server,
                    )?;
                    args.pin_server(&server)?;
                    if variant == Variant::DpopRedis {
                        redis.as_ref().ok_or("no redis-server")?.reset_stats()?;
                    }
                    let result = runtime.block_on(run_load(
                        &server,
                        material,
                        variant,
                        protocol,
                        tokens,
                        args.warmup,
                        StopSpec::Duration(args.duration),
                    ));
                    server.stop()?;
                    let mut result = result?;
                    if variant == Variant::DpopRedis {
                        let stats = redis.as_ref().ok_or("no redis-server")?.commandstats()?;
                        eprintln!(
                            "load: redis-server: {} for {} requests with a proof",
                            stats
                                .iter()
                                .map(|(command, calls)| format!("{calls} {command}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            result.stats.proofs_sent
                        );
                        result.store_commands = Some(stats);
                    }
                    let secs = result.elapsed.as_secs_f64();
                    println!(
                        "| {round} | {} | {connections} | {} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.0} | {:.0} |",
                        protocol.name(),
                        variant.name(),
                        result.rps(),
                        micros(result.stats.histogram.quantile(0.50)),
                        micros(result.stats.histogram.quantile(0.99)),
                        describe_errors(&result.stats),
                        result.server_cpu_us_per_request(),
                        result.server_cpu_ns as f64 / 1e7 / secs,
                        result.client_cpu_ns as f64 / 1e7 / secs,
                    );
                    if result.stats.reused_tokens > 0 {
                        eprintln!(
                            "load: WARNING {} requests reused a token (pool too small: raise --pool-rate); \
                             this distinct run is not all cache misses",
                            result.stats.reused_tokens
                        );
                    }
                    measured.push(Measured {
                        round,
                        key: Key {
                            protocol,
                            connections,
                            variant,
                        },
                        result,
                    });
                }
            }
        }
    }
    Ok(measured)
}

fn describe_errors(stats: &ConnStats) -> String {
    if stats.errors() == 0 {
        return "0".to_owned();
    }
    let mut s = stats.errors().to_string();
    s.push_str(" (");
    let mut parts = Vec::new();
    for (status, n) in &stats.bad_status {
        parts.push(format!("{n}×{status}"));
    }
    if stats.transport_errors > 0 {
        parts.push(format!("{} transport", stats.transport_errors));
    }
    if stats.lost > 0 {
        parts.push(format!("{} lost connections", stats.lost));
    }
    s.push_str(&parts.join(", "));
    s.push(')');
    s
}

/// "median [min–max]" of per-round ratios: the median, because a round disturbed by the
/// machine (a virtual machine's neighbours) should not move the figure.
fn ratio_summary(ratios: &[f64]) -> String {
    let mut sorted: Vec<f64> = ratios.iter().copied().filter(|r| r.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => "–".to_owned(),
        1 => format!("{:.3}", sorted[0]),
        _ => {
            let median = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            format!("{median:.3} [{:.3}–{:.3}]", sorted[0], sorted[n - 1])
        }
    }
}

/// Per round, `numerator`'s rate divided by `denominator`'s, for one protocol and connection
/// count.
fn paired_ratios(
    measured: &[Measured],
    protocol: Protocol,
    connections: usize,
    numerator: Variant,
    denominator: Variant,
) -> Vec<f64> {
    let rate = |round: usize, variant: Variant| {
        measured
            .iter()
            .find(|m| {
                m.round == round
                    && m.key
                        == Key {
                            protocol,
                            connections,
                            variant,
                        }
            })
            .map(|m| m.result.rps())
    };
    let rounds = measured.iter().map(|m| m.round).max().unwrap_or(0);
    (1..=rounds)
        .filter_map(|round| Some(rate(round, numerator)? / rate(round, denominator)?))
        .collect()
}

fn summary(measured: &[Measured]) -> String {
    let mut keys: Vec<Key> = measured.iter().map(|m| m.key).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| protocol | conns | variant | req/s (mean) | median ratio to baseline, pair by pair [min–max] | p50 µs | p99 µs | server CPU µs/req | errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for key in &keys {
        let runs: Vec<&Measured> = measured.iter().filter(|m| m.key == *key).collect();
        let mut stats = ConnStats::new();
        let mut cpu = 0u64;
        for m in &runs {
            stats.merge(&m.result.stats);
            cpu += m.result.server_cpu_ns;
        }
        let mean_rps = runs.iter().map(|m| m.result.rps()).sum::<f64>() / runs.len() as f64;
        let ratio = if key.variant == Variant::Baseline {
            "1".to_owned()
        } else {
            ratio_summary(&paired_ratios(
                measured,
                key.protocol,
                key.connections,
                key.variant,
                Variant::Baseline,
            ))
        };
        let cpu_per_request = if stats.measured == 0 {
            f64::NAN
        } else {
            cpu as f64 / 1000.0 / stats.measured as f64
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.1} | {} |",
            key.protocol.name(),
            key.connections,
            key.variant.name(),
            mean_rps,
            ratio,
            micros(stats.histogram.quantile(0.50)),
            micros(stats.histogram.quantile(0.99)),
            cpu_per_request,
            describe_errors(&stats),
        );
    }

    let mut pairs: Vec<(Protocol, usize)> =
        keys.iter().map(|k| (k.protocol, k.connections)).collect();
    pairs.dedup();
    let present = |v: Variant| keys.iter().any(|k| k.variant == v);
    // certbound over each peer on the workloads they share.
    let comparisons: Vec<(&str, Variant, Variant)> = [
        ("repeated / peer-repeated", Variant::Repeated, Variant::PeerRepeated),
        ("distinct / peer-distinct", Variant::Distinct, Variant::PeerDistinct),
        ("repeated / huskarl-repeated", Variant::Repeated, Variant::HuskarlRepeated),
        ("distinct / huskarl-distinct", Variant::Distinct, Variant::HuskarlDistinct),
        ("dpop / huskarl-dpop", Variant::Dpop, Variant::HuskarlDpop),
        ("dpop-redis / huskarl-dpop", Variant::DpopRedis, Variant::HuskarlDpop),
        ("dpop-redis / dpop", Variant::DpopRedis, Variant::Dpop),
    ]
    .into_iter()
    .filter(|(_, a, b)| present(*a) && present(*b))
    .collect();
    if !comparisons.is_empty() {
        let _ = writeln!(out);
        let _ = write!(out, "| protocol | conns |");
        for (name, _, _) in &comparisons {
            let _ = write!(out, " {name} |");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|---|---|{}", "---|".repeat(comparisons.len()));
        for &(protocol, connections) in &pairs {
            let _ = write!(out, "| {} | {} |", protocol.name(), connections);
            for (_, numerator, denominator) in &comparisons {
                let _ = write!(
                    out,
                    " {} |",
                    ratio_summary(&paired_ratios(
                        measured,
                        protocol,
                        connections,
                        *numerator,
                        *denominator
                    ))
                );
            }
            let _ = writeln!(out);
        }
    }
    // What Redis adds: its commands per proof, and the latency difference to the in-memory store.
    if present(Variant::DpopRedis) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| protocol | conns | redis commands (all runs) | requests with a proof | commands per proof | p50 dpop-redis − dpop µs | p99 dpop-redis − dpop µs |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for &(protocol, connections) in &pairs {
            let runs = |variant: Variant| {
                measured.iter().filter(move |m| {
                    m.key
                        == Key {
                            protocol,
                            connections,
                            variant,
                        }
                })
            };
            let mut commands: BTreeMap<String, u64> = BTreeMap::new();
            let mut proofs = 0;
            let mut redis_histogram = Histogram::new();
            for m in runs(Variant::DpopRedis) {
                for (command, calls) in m.result.store_commands.iter().flatten() {
                    *commands.entry(command.clone()).or_default() += calls;
                }
                proofs += m.result.stats.proofs_sent;
                redis_histogram.merge(&m.result.stats.histogram);
            }
            let mut memory_histogram = Histogram::new();
            for m in runs(Variant::Dpop) {
                memory_histogram.merge(&m.result.stats.histogram);
            }
            let total: u64 = commands.values().sum();
            let difference = |q: f64| {
                if memory_histogram.total == 0 {
                    return "–".to_owned();
                }
                format!(
                    "{:+.0}",
                    micros(redis_histogram.quantile(q)) - micros(memory_histogram.quantile(q))
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {proofs} | {:.4} | {} | {} |",
                protocol.name(),
                connections,
                commands
                    .iter()
                    .map(|(command, calls)| format!("{calls} {command}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                total as f64 / proofs.max(1) as f64,
                difference(0.50),
                difference(0.99),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Memory mode
// ---------------------------------------------------------------------------------------------

fn memory(
    args: &Args,
    material: &Arc<Material>,
    runtime: &tokio::runtime::Runtime,
) -> Result<u64, BoxError> {
    // Workloads whose every request brings the server something new to keep (a token, a proof).
    let variants: Vec<Variant> = args
        .variants
        .iter()
        .copied()
        .filter(|v| {
            v.workload() != Workload::Repeated || *v == Variant::Baseline
        })
        .filter(|v| *v != Variant::DpopRedis)
        .collect();
    let conns = args.memory_connections;
    let per_conn = args.memory_tokens.div_ceil(conns as u64);
    println!(
        "Peak RSS of the server process after {} requests over {conns} connections (HTTP/1.1), \
         each with a distinct token, or the same DPoP token with a distinct proof, signed on the fly \
         (none for the baseline); in-memory replay store bound: {}:\n",
        per_conn * conns as u64,
        args.replay_max_entries
            .map_or("none".to_owned(), |n| format!("{n} entries")),
    );
    println!(
        "| server | RSS at start | peak RSS (VmHWM) | RSS at end | peak − start | req/s | 200 | 503 (store full) | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut errors = 0;
    let mib = |b: Option<u64>| {
        b.map_or("?".to_owned(), |b| {
            format!("{:.1} MiB", b as f64 / 1048576.0)
        })
    };
    for variant in variants {
        let server = ServerProcess::spawn(variant.server(), args.server_threads, &material.server)?;
        args.pin_server(&server)?;
        let start_rss = status_kb(server.pid(), "VmRSS");
        let tokens = (0..conns)
            .map(|i| match variant.workload() {
                _ if variant == Variant::Baseline => Tokens::None,
                Workload::Dpop => Tokens::DpopMint(
                    material.signer.mint_dpop(&material.clients[i].dpop.jkt),
                    Arc::clone(material),
                    i,
                ),
                _ => Tokens::Mint(Arc::clone(material), i),
            })
            .collect();
        let result = runtime.block_on(run_load(
            &server,
            material,
            variant,
            Protocol::H1,
            tokens,
            Duration::ZERO,
            StopSpec::Requests(per_conn),
        ));
        let (hwm, end_rss) = (
            status_kb(server.pid(), "VmHWM"),
            status_kb(server.pid(), "VmRSS"),
        );
        server.stop()?;
        let mut result = result?;
        // A bounded replay store that is full refuses with 503 (fail closed): expected here.
        let full = if variant == Variant::Dpop && args.replay_max_entries.is_some() {
            result.stats.bad_status.remove(&503).unwrap_or(0)
        } else {
            0
        };
        errors += result.stats.errors();
        let name = match variant {
            Variant::Baseline => "baseline (no auth)",
            Variant::Distinct => "certbound (distinct tokens)",
            Variant::PeerDistinct => "peer (distinct tokens)",
            Variant::HuskarlDistinct => "huskarl (distinct tokens)",
            Variant::Dpop => "certbound, DPoP (distinct proofs, in-memory replay store)",
            Variant::HuskarlDpop => "huskarl, DPoP (distinct proofs, the glue's jti set)",
            _ => variant.name(),
        };
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} | {} | {full} | {} |",
            mib(start_rss),
            mib(hwm),
            mib(end_rss),
            mib(hwm.zip(start_rss).map(|(h, s)| h.saturating_sub(s))),
            result.rps(),
            result.stats.ok_total,
            describe_errors(&result.stats),
        );
    }
    Ok(errors)
}

// ---------------------------------------------------------------------------------------------

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("load: {message}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Some(kind) = args.server_only {
        if let Err(e) = server_main(kind, args.server_threads) {
            eprintln!("load server: {e}");
            std::process::exit(1);
        }
        return;
    }
    // Signing happens in this process; the server child's validators install their own.
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let clients = if args.memory {
        args.memory_connections
    } else {
        args.connections.iter().copied().max().unwrap_or(1)
    };
    let mut material = Material::new(clients);
    material.server.replay_max_entries = args.replay_max_entries;
    let redis = if !args.memory && args.variants.contains(&Variant::DpopRedis) {
        match RedisServer::start(&args) {
            Ok(redis) => {
                material.server.redis_url = Some(redis.url());
                Some(redis)
            }
            Err(e) => {
                eprintln!("load: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let material = Arc::new(material);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("load-client")
        .enable_all()
        .build()
        .expect("client runtime");
    if args.pin {
        if let Err(e) = pin(std::process::id(), &args.client_cpus()) {
            eprintln!("load: {e}");
            std::process::exit(1);
        }
    }
    println!(
        "certbound load benchmark: {} cores ({}), server threads {}, client threads {}{}{}",
        args.cores,
        cpu_model(),
        args.server_threads,
        args.client_threads,
        if args.pin {
            format!(
                ", client pinned to cores {}, server to {}",
                args.client_cpus(),
                args.server_cpus()
            )
        } else {
            String::new()
        },
        if args.quick { ", quick" } else { "" },
    );
    let outcome = if args.memory {
        memory(&args, &material, &runtime)
    } else {
        println!(
            "warm-up {:.1} s, measured {:.1} s per run, {} round(s)\n",
            args.warmup.as_secs_f64(),
            args.duration.as_secs_f64(),
            args.rounds
        );
        throughput(&args, &material, &runtime, redis.as_ref()).map(|measured| {
            println!(
                "\nSummary (ratios: each round's rate over the same round's baseline, or peer):\n"
            );
            print!("{}", summary(&measured));
            measured.iter().map(|m| m.result.stats.errors()).sum()
        })
    };
    // Before any exit: process::exit runs no destructor.
    drop(redis);
    match outcome {
        Ok(0) => {}
        Ok(errors) => {
            eprintln!("load: {errors} requests failed");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(1);
        }
    }
}
