//! Lock contention (issue 26, "Scale"): 1, 2, 4 and 8 threads hitting one shared structure at
//! once, started together on a `Barrier`. Criterion's "time" is the wall time of the slowest
//! thread divided by the operations each thread made: the per-operation cost *per thread*. With
//! no contention and a core per thread it stays flat as threads grow; a shared lock or cache
//! line makes it grow. On a machine with fewer cores than threads it grows anyway
//! (oversubscription: 4 threads on 2 cores take twice the wall time), so read the figures
//! against the number of cores (BENCHMARKS.md, "Scale (issue 26)").
//!
//! - `token_cache_hit/{shared,own}/N`: `JwtValidator::validate` of tokens validated before
//!   (static keys): every thread the same token, or each its own.
//! - `token_cache_miss/{hs256,es256}/N`: the same with the cache off: key look-up (not
//!   reachable alone through the public API) plus the signature, which dominates.
//! - `replay_insert/N`: `MemoryReplayStore::record` of new keys, each thread its own.
//!
//! Run: `cargo bench --bench contention -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::disallowed_methods)] // jsonwebtoken::encode signs the fixtures.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::dpop::{DpopKey, MemoryReplayStore, ReplayKey, ReplayStore};
use certbound::{JwtValidator, ValidateToken};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::block_on_ready;

const ISS: &str = "https://as.example";
const AUD: &str = "https://api.example";
const SECRET: &[u8] = b"a bench secret of at least thirty-two bytes";
const THREADS: [usize; 4] = [1, 2, 4, 8];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn sign(alg: Algorithm, key: &EncodingKey, sub: &str) -> String {
    let now = now();
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": "bench-client",
        "scope": "read write", "iat": now, "exp": now + 3600,
    });
    let mut header = Header::new(alg);
    header.kid = Some("bench-key".to_owned());
    jsonwebtoken::encode(&header, &claims, key).expect("token signs")
}

fn hs256(cache: bool) -> (JwtValidator, EncodingKey) {
    let builder = JwtValidator::builder(ISS, AUD)
        .algorithms([Algorithm::HS256])
        .hmac_secret(SECRET);
    let builder = if cache { builder } else { builder.no_cache() };
    (
        builder.build().expect("validator"),
        EncodingKey::from_secret(SECRET),
    )
}

fn es256_uncached() -> (JwtValidator, EncodingKey) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ES256 key");
    let point = key.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "bench-key", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    let validator = JwtValidator::builder(ISS, AUD)
        .algorithms([Algorithm::ES256])
        .jwks_json(json!({ "keys": [jwk] }).to_string())
        .no_cache()
        .build()
        .expect("validator");
    (validator, EncodingKey::from_ec_der(&key.serialize_der()))
}

/// Runs `op(thread, i)` for `i in 0..iters` on `threads` threads released together; returns
/// the wall time of the slowest.
fn concurrently(threads: usize, iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, op) = (&start, &op);
                s.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    for i in 0..iters {
                        op(t, i);
                    }
                    began.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn validate(validator: &JwtValidator, token: &str) {
    let token = block_on_ready(validator.validate(black_box(token))).expect("valid token");
    black_box(token);
}

fn token_cache_hit(c: &mut Criterion) {
    support::install_jose_default();
    let (validator, key) = hs256(true);
    let tokens: Vec<String> = (0..8)
        .map(|t| sign(Algorithm::HS256, &key, &format!("user-{t}")))
        .collect();
    for token in &tokens {
        validate(&validator, token); // Now cached.
    }
    let mut g = c.benchmark_group("token_cache_hit");
    for threads in THREADS {
        g.bench_with_input(BenchmarkId::new("shared", threads), &threads, |b, &n| {
            b.iter_custom(|iters| concurrently(n, iters, |_, _| validate(&validator, &tokens[0])));
        });
        g.bench_with_input(BenchmarkId::new("own", threads), &threads, |b, &n| {
            b.iter_custom(|iters| concurrently(n, iters, |t, _| validate(&validator, &tokens[t])));
        });
    }
    g.finish();
}

fn token_cache_miss(c: &mut Criterion) {
    support::install_jose_default();
    let mut g = c.benchmark_group("token_cache_miss");
    let fixtures = [
        ("hs256", hs256(false), Algorithm::HS256),
        ("es256", es256_uncached(), Algorithm::ES256),
    ];
    for (name, (validator, key), alg) in &fixtures {
        let tokens: Vec<String> = (0..8)
            .map(|t| sign(*alg, key, &format!("user-{t}")))
            .collect();
        for threads in THREADS {
            g.bench_with_input(BenchmarkId::new(*name, threads), &threads, |b, &n| {
                b.iter_custom(|iters| {
                    concurrently(n, iters, |t, _| validate(validator, &tokens[t]))
                });
            });
        }
    }
    g.finish();
}

fn replay_insert(c: &mut Criterion) {
    // Short-lived entries (expired ones are purged as new ones come), a bound never reached.
    let store = MemoryReplayStore::new()
        .max_entries(64_000_000)
        .max_bytes(usize::MAX);
    let jkt = DpopKey::generate(Algorithm::ES256)
        .expect("key")
        .thumbprint();
    let ttl = Duration::from_secs(1);
    let mut g = c.benchmark_group("replay_insert");
    let mut round = 0u64;
    for threads in THREADS {
        g.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, &n| {
            b.iter_custom(|iters| {
                round += 1;
                let round = round;
                // Keys made before the clock starts: only the insert is measured.
                let keys: Vec<Vec<ReplayKey>> = (0..n)
                    .map(|t| {
                        (0..iters)
                            .map(|i| ReplayKey::new(&jkt, &format!("{round}-{t}-{i}")))
                            .collect()
                    })
                    .collect();
                concurrently(n, iters, |t, i| {
                    let answer = block_on_ready(store.record(&keys[t][i as usize], ttl));
                    black_box(answer.expect("room in the store"));
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, token_cache_hit, token_cache_miss, replay_insert);
criterion_main!(benches);
