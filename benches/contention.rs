//! Lock contention (issue 26, "Scale"): 1, 2, 4 and 8 threads hitting one shared structure at
//! once, started together on a `Barrier`. Criterion's "time" is the wall time of the slowest
//! thread divided by the operations each thread made: the per-operation cost *per thread*. With
//! no contention and a core per thread it stays flat as threads grow; a shared lock or cache
//! line makes it grow. On a machine with fewer cores than threads it grows anyway
//! (oversubscription: 4 threads on 2 cores take twice the wall time), so read the figures
//! against the number of cores (BENCHMARKS.md, "Scale (issue 26)").
//!
//! Groups `threads_N`, each with:
//! - `independent_sha256`: the control, work that shares nothing (see `contention`).
//! - `token_cache_hit_{shared,own}`: `JwtValidator::validate` of tokens validated before
//!   (static keys): every thread the same token, or each its own.
//! - `uncached_{hs256,es256}`: the same with the cache off: the key look-up (not reachable
//!   alone through the public API; with static keys it takes no lock) plus the signature,
//!   which dominates.
//! - `replay_insert`: `MemoryReplayStore::record` of new keys, each thread its own.
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
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest as _, Sha256};
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

/// One group per thread count, every case in each (interleaved: the machine's other load
/// drifts over a run, and the cases of one thread count are compared with each other).
fn contention(c: &mut Criterion) {
    support::install_jose_default();
    let (cached, hs_key) = hs256(true);
    let hs_tokens: Vec<String> = (0..8)
        .map(|t| sign(Algorithm::HS256, &hs_key, &format!("user-{t}")))
        .collect();
    for token in &hs_tokens {
        validate(&cached, token); // Now cached.
    }
    let (hs_uncached, _) = hs256(false);
    let (es_uncached, es_key) = es256_uncached();
    let es_tokens: Vec<String> = (0..8)
        .map(|t| sign(Algorithm::ES256, &es_key, &format!("user-{t}")))
        .collect();
    // Short-lived entries (expired ones are purged as new ones come), a bound never reached.
    let store = MemoryReplayStore::new()
        .max_entries(64_000_000)
        .max_bytes(usize::MAX);
    let jkt = DpopKey::generate(Algorithm::ES256)
        .expect("key")
        .thumbprint();
    let ttl = Duration::from_secs(1);
    let mut round = 0u64;
    for threads in THREADS {
        let mut g = c.benchmark_group(format!("threads_{threads}"));
        // The control: work of about a hit's size that shares nothing (a SHA-256 of the
        // thread's own token). How it grows with threads is the machine (cores, other load);
        // a case growing faster than it is contention.
        g.bench_function("independent_sha256", |b| {
            b.iter_custom(|iters| {
                concurrently(threads, iters, |t, _| {
                    black_box(Sha256::digest(black_box(hs_tokens[t].as_bytes())));
                })
            });
        });
        g.bench_function("token_cache_hit_shared", |b| {
            b.iter_custom(|iters| {
                concurrently(threads, iters, |_, _| validate(&cached, &hs_tokens[0]))
            });
        });
        g.bench_function("token_cache_hit_own", |b| {
            b.iter_custom(|iters| {
                concurrently(threads, iters, |t, _| validate(&cached, &hs_tokens[t]))
            });
        });
        g.bench_function("uncached_hs256", |b| {
            b.iter_custom(|iters| {
                concurrently(threads, iters, |t, _| validate(&hs_uncached, &hs_tokens[t]))
            });
        });
        g.bench_function("uncached_es256", |b| {
            b.iter_custom(|iters| {
                concurrently(threads, iters, |t, _| validate(&es_uncached, &es_tokens[t]))
            });
        });
        g.bench_function("replay_insert", |b| {
            b.iter_custom(|iters| {
                round += 1;
                let round = round;
                // Keys made before the clock starts: only the insert is measured.
                let keys: Vec<Vec<ReplayKey>> = (0..threads)
                    .map(|t| {
                        (0..iters)
                            .map(|i| ReplayKey::new(&jkt, &format!("{round}-{t}-{i}")))
                            .collect()
                    })
                    .collect();
                concurrently(threads, iters, |t, i| {
                    let answer = block_on_ready(store.record(&keys[t][i as usize], ttl));
                    black_box(answer.expect("room in the store"));
                })
            });
        });
        g.finish();
    }
}

criterion_group!(benches, contention);
criterion_main!(benches);
