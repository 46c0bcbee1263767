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
//!   others, on the `distinct` and `repeated` workloads;
//! - `nginx`, `nginx-authz-repeated`, `nginx-authz-distinct`, `nginx-authz-dpop` (issue 25,
//!   only when named): nginx terminating mTLS in front of a trivial upstream, without and with
//!   `auth_request` to certbound-authz (see `proxied.rs`);
//! - `grpc-check-repeated` (only when named): Envoy-shaped ext_authz `Check` requests to
//!   certbound-authz's gRPC listener (see `grpc_check.rs`);
//! - issue 26 (only when named, see `algorithms.rs`): `distinct-rs256`, `distinct-eddsa` and
//!   the peers' `peer-distinct-…`, `huskarl-distinct-…` (RS256 and EdDSA tokens);
//!   `raw-verify-es256`, `raw-verify-rs256`, `raw-verify-eddsa` (the baseline plus one raw
//!   aws-lc-rs verification of each token's signature: the limit of `distinct-…`);
//!   `dpop-distinct` (a new DPoP-bound token and a new proof on every request);
//!   `distinct-nocache`, `distinct-smallcache` (`distinct` with the validated-token cache off,
//!   and with a cache of 1 000 entries and 1 MiB: what caching every new token costs natively;
//!   `profile.sh` profiles them).
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
//! cargo run --release --manifest-path loadtest/Cargo.toml -- --soak            # 30 min of mixed traffic, RSS and fds each minute
//! cargo run --release --manifest-path loadtest/Cargo.toml -- --help
//! ```
//! The process exits with status 1 when any request failed.
//!
//! `--soak` (issue 26, see `soak.rs`) runs one server (the `soak` kind: certificate-bound and
//! DPoP-bound tokens, a scoped route, client certificates optional) under a fixed, moderate rate
//! of mixed traffic (repeated, distinct, DPoP, every kind of rejection, idle and churning
//! connections) for `--soak-minutes`, samples the server's RSS and open file descriptors every
//! `--sample-seconds`, prints the samples, the requests per kind and a verdict (flat after
//! warm-up, no unexpected outcome), writes the samples as CSV (`--soak-csv`), and exits with
//! status 1 when the verdict fails. Short run: `--soak --soak-minutes 2 --sample-seconds 10`.

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
use certbound::dpop::{Dpop, MemoryReplayStore, RedisReplayStore};
use certbound::tls::ServerTls;
use certbound::{BoundTokenLayer, JwtValidator, RequireScopeLayer};
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
use tower::{Layer as _, ServiceExt as _};

mod algorithms;
mod args;
mod client;
mod grpc_check;
mod huskarl_peer;
mod material;
mod memory;
mod proxied;
mod server;
mod soak;
mod soak_kinds;
mod throughput;
mod variants;

use algorithms::*;
use args::*;
use client::*;
use material::*;
use memory::*;
use proxied::*;
use server::*;
use throughput::*;
use variants::*;

pub(crate) const ISS: &str = "https://as.load.test";
pub(crate) const AUD: &str = "https://api.load.test";
pub(crate) const KID: &str = "load-key";

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    let clients = if let Some(soak) = &args.soak {
        soak_kinds::CLIENTS + soak.idle
    } else if args.memory {
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
    if let Some(soak) = &args.soak {
        drop(redis);
        match soak::soak(&args, soak, material, &runtime) {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("load: {e}");
                std::process::exit(1);
            }
        }
    }
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
