//! Cost as work grows (issue 26, "Scale"): a cache hit with 10, 10 000 and 1 000 000 live
//! tokens in a `JwtValidator`'s cache, and a `MemoryReplayStore` insert with 10, 10 000 and
//! 1 000 000 live entries: time per operation (one thread) and memory (RSS, from
//! `/proc/self/status`). Not a criterion bench: filling a million entries once per size is the
//! point, and each size runs in a process of its own (this binary runs itself), so that RSS
//! is that size's alone.
//!
//! - `hit same`: the same token again and again (the `repeated` case), the cache holding N.
//! - `hit random`: a token drawn at random among the N cached (a working set of N).
//! - `insert`: `MemoryReplayStore::record` of new keys into a store holding N.
//!
//! Timings are the median of 5 rounds (min–max beside). Tokens are HS256 (cheap to sign and
//! fill; the hit path does not depend on the algorithm).
//!
//! `default:N`: N tokens into a validator with the default cache bounds (how many it keeps).
//! `SCALE_PAD=N`: a claim of N more characters in every token (the tokens are 285 characters
//! without it; the cache's per-entry charge was measured at 285 and 771, issue 26).
//!
//! Run: `cargo bench --bench scale` (one case: `SCALE_CASE=tokens:1000000 cargo bench --bench scale`)

#![allow(clippy::disallowed_methods)] // jsonwebtoken::encode signs the fixtures.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certbound::dpop::{DpopKey, MemoryReplayStore, ReplayKey, ReplayStore};
use certbound::{JwtValidator, ValidateToken};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::block_on_ready;

const ISS: &str = "https://as.example";
const AUD: &str = "https://api.example";
const SECRET: &[u8] = b"a bench secret of at least thirty-two bytes";
const ROUNDS: usize = 5;

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// A cheap deterministic sequence of indices (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Median, min and max of `ROUNDS` runs of `ops` operations, in ns per operation.
fn time_per_op(ops: usize, mut round: impl FnMut()) -> (f64, f64, f64) {
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let began = Instant::now();
            round();
            began.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    (per_op[ROUNDS / 2], per_op[0], per_op[ROUNDS - 1])
}

fn show(case: &str, what: &str, (median, min, max): (f64, f64, f64)) {
    println!("{case:<16} {what:<12} {median:>9.1} ns/op  ({min:.1}–{max:.1})");
}

fn validate(validator: &JwtValidator, token: &str) {
    let token = block_on_ready(validator.validate(black_box(token))).expect("valid token");
    black_box(token);
}

/// `default_bounds`: the validator's default cache bounds (100 000 entries, 64 MiB) instead of
/// room for all `n`: the random draws' hit rate is then the share of the tokens it kept.
fn tokens(n: usize, default_bounds: bool) {
    let case = format!("{}:{n}", if default_bounds { "default" } else { "tokens" });
    let rss_start = rss_mib();
    let key = EncodingKey::from_secret(SECRET);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header = Header::new(Algorithm::HS256);
    let pad: usize = std::env::var("SCALE_PAD")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let mut claims = json!({
                "iss": ISS, "aud": AUD, "sub": format!("user-{i}"), "client_id": "bench-client",
                "scope": "read write", "iat": now, "exp": now + 3600,
            });
            if pad > 0 {
                claims["pad"] = json!("x".repeat(pad));
            }
            jsonwebtoken::encode(&header, &claims, &key).expect("token signs")
        })
        .collect();
    let rss_tokens = rss_mib();
    println!("{case:<16} token length {}", tokens[0].len());
    // Room for all of them (the default bound is 100 000 entries and 64 MiB).
    let builder = JwtValidator::builder(ISS, AUD)
        .algorithms([Algorithm::HS256])
        .hmac_secret(SECRET);
    let builder = if default_bounds {
        builder
    } else {
        builder
            .max_cache_entries(n as u64 * 2)
            .max_cache_bytes((n as u64 * 2).saturating_mul(16 << 10))
    };
    let validator = builder.build().expect("validator");
    let fill = Instant::now();
    for token in &tokens {
        validate(&validator, token);
    }
    let fill = fill.elapsed();
    let rss_full = rss_mib();
    let ops = 1_000_000;
    let same = &tokens[n / 2];
    let hit_same = time_per_op(ops, || {
        for _ in 0..ops {
            validate(&validator, same);
        }
    });
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let hit_random = time_per_op(ops, || {
        for _ in 0..ops {
            validate(&validator, &tokens[rng.below(n)]);
        }
    });
    // A token never seen: a miss (HMAC verification and claims), for scale.
    let fresh_claims = json!({"iss": ISS, "aud": AUD, "sub": "x", "exp": now + 3600});
    let misses: Vec<String> = (0..10_000)
        .map(|i| {
            let mut c = fresh_claims.clone();
            c["jti"] = json!(i);
            jsonwebtoken::encode(&header, &c, &key).expect("token signs")
        })
        .collect();
    let miss = Instant::now();
    for token in &misses {
        validate(&validator, token);
    }
    let miss = miss.elapsed().as_nanos() as f64 / misses.len() as f64;
    let (hits, misses_seen) = hit_rate(&validator, &tokens, &mut rng);
    show(&case, "hit same", hit_same);
    show(&case, "hit random", hit_random);
    println!(
        "{case:<16} {:<12} {miss:>9.1} ns/op  (one pass)",
        "miss hs256"
    );
    println!("{case:<16} random draws afterwards: {hits} hits, {misses_seen} misses");
    println!(
        "{case:<16} rss: start {rss_start:.1} MiB, +tokens {:.1} MiB, +cache {:.1} MiB \
         ({:.0} B/entry), fill {:.2} s",
        rss_tokens - rss_start,
        rss_full - rss_tokens,
        (rss_full - rss_tokens) * 1048576.0 / n as f64,
        fill.as_secs_f64(),
    );
}

/// Hits and misses of 100 000 random draws, counted by the crate's own metrics (a recorder of
/// this thread's, installed only here: the timings above ran without one).
fn hit_rate(validator: &JwtValidator, tokens: &[String], rng: &mut Rng) -> (u64, u64) {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(recorder, || {
        for _ in 0..100_000 {
            validate(validator, &tokens[rng.below(tokens.len())]);
        }
    });
    let (mut hits, mut misses) = (0, 0);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "certbound_token_cache_total" {
            continue;
        }
        let DebugValue::Counter(n) = value else {
            continue;
        };
        if key.key().labels().any(|l| l.value() == "hit") {
            hits += n;
        } else {
            misses += n;
        }
    }
    (hits, misses)
}

fn replay(n: usize) {
    let case = format!("replay:{n}");
    let jkt = DpopKey::generate(Algorithm::ES256)
        .expect("key")
        .thumbprint();
    let store = MemoryReplayStore::new()
        .max_entries(usize::MAX)
        .max_bytes(usize::MAX);
    let ttl = Duration::from_secs(3600);
    let rss_start = rss_mib();
    for i in 0..n {
        let key = ReplayKey::new(&jkt, &format!("fill-{i}"));
        black_box(block_on_ready(store.record(&key, ttl)).expect("room"));
    }
    let rss_full = rss_mib();
    // 10 000 new keys a round, made beforehand: only the insert is timed. The store grows by
    // 50 000 over the rounds (negligible at 1 000 000, the whole story at 10).
    let ops = 10_000;
    let mut round = 0;
    let keys: Vec<Vec<ReplayKey>> = (0..ROUNDS)
        .map(|r| {
            (0..ops)
                .map(|i| ReplayKey::new(&jkt, &format!("new-{r}-{i}")))
                .collect()
        })
        .collect();
    let insert = time_per_op(ops, || {
        for key in &keys[round] {
            black_box(block_on_ready(store.record(key, ttl)).expect("room"));
        }
        round += 1;
    });
    show(&case, "insert", insert);
    println!(
        "{case:<16} rss: +store {:.1} MiB ({:.0} B/entry)",
        rss_full - rss_start,
        (rss_full - rss_start) * 1048576.0 / n.max(1) as f64,
    );
}

fn main() {
    support::install_jose_default();
    match std::env::var("SCALE_CASE") {
        Ok(case) => match case.split_once(':') {
            Some(("tokens", n)) => tokens(n.parse().expect("a number of tokens"), false),
            Some(("default", n)) => tokens(n.parse().expect("a number of tokens"), true),
            Some(("replay", n)) => replay(n.parse().expect("a number of entries")),
            _ => panic!("SCALE_CASE is tokens:N, default:N or replay:N"),
        },
        Err(_) => {
            let me = std::env::current_exe().expect("this binary");
            for case in [
                "tokens:10",
                "tokens:10000",
                "tokens:1000000",
                "default:100000",
                "replay:10",
                "replay:10000",
                "replay:1000000",
            ] {
                let status = std::process::Command::new(&me)
                    .env("SCALE_CASE", case)
                    .status()
                    .expect("run a case");
                assert!(status.success(), "{case} failed");
            }
        }
    }
}
