//! [`ResultCache`]: validation results keyed by a [`TokenKey`] of the token, with a lifetime per
//! entry, a bound on entries and on memory, and single-flight computation of missing entries.
//! The storage is [`quick_cache`]'s sharded CLOCK-Pro cache; the single flight is the crate's
//! one ([`super::single_flight`]).
//!
//! - The raw token is never a key: the key is its SHA-256, or for the JWT caches a keyed 128-bit
//!   hash of it ([`TokenKey`]).
//! - Every entry carries its deadline, checked on every hit against tokio's clock (so that tests
//!   can move time): an expired entry is a miss, and is removed then. quick_cache has no notion
//!   of lifetime; an expired entry nobody asks for again is never referenced again, so eviction
//!   finds it as it finds any unused entry.
//! - quick_cache splits the table into shards, each behind its own lock: a hit takes a read lock
//!   and one probe. The tables hash with a keyed hash of the key (std's `SipHash` of a SHA-256 key,
//!   or 64 bits of a JWT key's keyed BLAKE3 itself; keyed at random once per process either way,
//!   so crafted tokens cannot pile up in one bucket), computed with the key and remembered by the
//!   connection's memo along with it, handed over by a pass-through hasher.
//! - One weight budget holds both bounds (`max_entries`, `max_bytes`): an entry weighs its
//!   [`Keep::bytes`] (an estimate of its real size: [`jwt_entry_bytes`], [`entry_bytes`]), at
//!   least `max_bytes / max_entries`, and each shard's budget is its share of `max_bytes` and no
//!   more than its share of `max_entries` entries of that least weight.
//! - Eviction is CLOCK-Pro (hot and cold entries, ghosts of recently evicted keys): a token in
//!   use survives a flood of one-off tokens.
//! - A missing entry is computed once however many requests wait for it. The computation runs
//!   in its own task (spawned on the first poll of the request that starts it), so a cancelled
//!   request does not cancel it for the others, and its result is cached (when it says so)
//!   before the waiters are woken.
//!
//! History: moka, which DESIGN.md names, was replaced by a hand-written sharded CLOCK cache
//! (moka's hit and its inserts cost several µs per request under load); quick_cache then
//! replaced the hand-written cache, measured as fast side by side (server instructions per
//! request, load-test rates, peak memory), so the crate keeps no cache of its own to maintain.
//! See `BENCHMARKS.md`, "quick_cache against the own cache".

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, Weighter};
use tokio::time::Instant;

pub(crate) use super::single_flight::Waiter;
use super::single_flight::{self, detach, SingleFlight};
pub(crate) use super::token_key::TokenKey;

/// The memory an entry holding claims parsed from `claims_json_len` bytes of JSON into a map
/// takes, all told: the parsed map (keys, values, tree nodes), the `AccessToken`'s own copies,
/// the cache's per-entry bookkeeping and allocator overhead. What the introspection cache
/// charges; calibrated when the JWT cache held maps too, on the peak RSS of `loadtest
/// --memory` (200 000 distinct tokens), and not measured since for introspection answers (a
/// safe over-estimate: the bound holds).
#[cfg(any(feature = "introspection", test))]
pub(crate) const fn entry_bytes(claims_json_len: usize) -> usize {
    claims_json_len.saturating_mul(4).saturating_add(2048)
}

/// The memory a validated JWT's entry takes, all told, for a token of `token_len` characters:
/// its `AccessToken` (the claims' JSON text, about 3/4 of the token's length, and the claims
/// read from it), the entry and its slot in the table, its share of the ghosts (keys of evicted
/// entries) the table keeps, and the allocator's holes once entries are evicted and replaced.
///
/// Measured (issue 26, BENCHMARKS.md; `cargo bench --bench scale`, RSS of the cache, HS256
/// tokens): with nothing evicted (`tokens:100000`), 942 bytes an entry for tokens of 285
/// characters and 1 343 for 831 (733 + 0.73 per character); full and evicting under a flood of
/// 100 000 new tokens with the default bounds (`default:100000`), 1 041 bytes a kept entry for
/// 285 characters and 1 465 for 771 (792 + 0.87 per character). The charge covers the latter.
/// The charge before (`entry_bytes`, 2 048 + 4 per character, from when claims were kept as a
/// map) was 3 times the real size: the default 64 MiB then held ~21 000 tokens of 285
/// characters, in ~21 MiB.
pub(crate) const fn jwt_entry_bytes(token_len: usize) -> usize {
    token_len.saturating_mul(7) / 8 + 800
}

/// How a freshly computed value is to be cached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    /// How long the entry may be used; zero means "do not cache".
    pub(crate) ttl: Duration,
    /// Approximate size of the entry in bytes.
    pub(crate) bytes: usize,
}

/// Hands a [`TokenKey`]'s precomputed hash to the tables.
#[derive(Default, Clone, Copy)]
struct PassThrough;

struct PassThroughHasher(u64);

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called; mix anything else in rather than drop it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A cached value with its deadline.
#[derive(Clone)]
struct Entry<T> {
    value: T,
    until: Instant,
    weight: u64,
}

/// Weighs an entry by the weight it carries.
#[derive(Clone, Copy)]
struct ByWeight;

impl<T> Weighter<TokenKey, Entry<T>> for ByWeight {
    fn weight(&self, _key: &TokenKey, entry: &Entry<T>) -> u64 {
        entry.weight
    }
}

type Table<T> =
    Cache<TokenKey, Entry<T>, ByWeight, PassThrough, DefaultLifecycle<TokenKey, Entry<T>>>;

/// Cached validation results (see the module docs).
pub(crate) struct ResultCache<T> {
    table: Table<T>,
    /// The least weight of an entry: `max_entries` of them fill the byte budget.
    min_weight: u64,
    /// The largest weight a shard can hold.
    shard_weight: u64,
    flights: Arc<SingleFlight<TokenKey, T, PassThrough>>,
}

/// Shards of a large cache: enough that requests on many cores rarely meet on one lock.
const MAX_SHARDS: u64 = 64;

impl<T: Clone + Send + Sync + 'static> ResultCache<T> {
    /// A cache of at most `max_entries` entries and about `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let max_bytes = max_bytes.max(1);
        // Each shard holds its share of both bounds; shards stay large enough (256 entries,
        // 1 MiB) that their shares add up to the bounds without waste. Small caches are one
        // shard, with exact bounds.
        let mut shards = MAX_SHARDS;
        while shards > 1 && (max_entries / shards < 256 || max_bytes / shards < 1 << 20) {
            shards /= 2;
        }
        // Rounded down, so that `max_entries` entries of the least weight fit in `max_bytes`.
        let min_weight = (max_bytes / max_entries).max(1);
        let shard_weight = min_weight
            .saturating_mul(max_entries / shards)
            .min(max_bytes / shards)
            .max(1);
        // quick_cache keeps the keys of recently evicted entries (ghosts), half as many as the
        // entries it expects, each in a slot the size of an entry: expect as many as the byte
        // bound holds of a typical entry (a 512-character JWT's), not `max_entries`, or the
        // ghosts alone would take a large share of the default byte bound again.
        let typical = jwt_entry_bytes(512) as u64;
        let expected = max_entries.min(max_bytes / typical).max(1);
        let options = OptionsBuilder::new()
            .shards(usize::try_from(shards).unwrap_or(1))
            .weight_capacity(shard_weight.saturating_mul(shards))
            .estimated_items_capacity(usize::try_from(expected).unwrap_or(usize::MAX))
            .build();
        let table = match options {
            Ok(options) => {
                Cache::with_options(options, ByWeight, PassThrough, DefaultLifecycle::default())
            }
            // Unreachable: shards, weight and items are all set above. Never panic on
            // configuration: a plain cache with the same weight bound does.
            Err(_) => Cache::with(
                usize::try_from(expected).unwrap_or(usize::MAX),
                shard_weight.saturating_mul(shards),
                ByWeight,
                PassThrough,
                DefaultLifecycle::default(),
            ),
        };
        Self {
            table,
            min_weight,
            shard_weight,
            flights: Arc::default(),
        }
    }

    /// The cached value for `key`, if it is still alive.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<T> {
        self.get_until(key).map(|(value, _)| value)
    }

    /// The cached value for `key`, if it is still alive, with the deadline of its entry.
    pub(crate) fn get_until(&self, key: &TokenKey) -> Option<(T, Instant)> {
        let entry = self.table.get(key)?;
        if Instant::now() < entry.until {
            return Some((entry.value, entry.until));
        }
        self.forget_expired(key);
        None
    }

    /// Removes the entry for `key` if it has expired (and was not replaced meanwhile).
    #[cold]
    #[inline(never)]
    fn forget_expired(&self, key: &TokenKey) {
        let now = Instant::now();
        drop(self.table.remove_if(key, |entry| entry.until <= now));
    }

    /// Forgets `key`. Rare (a cached result no longer trusted), so kept out of callers.
    #[inline(never)]
    pub(crate) fn remove(&self, key: &TokenKey) {
        drop(self.table.remove(key));
    }

    fn insert(&self, key: TokenKey, value: T, keep: Keep) {
        let weight = u64::try_from(keep.bytes)
            .unwrap_or(u64::MAX)
            .max(self.min_weight);
        if keep.ttl.is_zero() || weight > self.shard_weight {
            return;
        }
        let until = Instant::now() + keep.ttl;
        self.table.insert(
            key,
            Entry {
                value,
                until,
                weight,
            },
        );
    }

    /// The value for `key`: from the cache, from the computation already in flight for it, or
    /// from a new computation `compute()` (which also says how to cache its result). Resolves
    /// to `None` only if the computation died without an answer (it panicked, or the future
    /// that was to start it was dropped before its first poll).
    ///
    /// A new computation is spawned on the first poll (so the returned future may be created
    /// outside a runtime); with no tokio runtime at that point it runs inside this future.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))] // Used by introspection.
    pub(crate) fn get_or_compute<F>(
        self: &Arc<Self>,
        key: TokenKey,
        compute: impl FnOnce() -> F,
    ) -> impl Future<Output = Option<T>> + Send + 'static
    where
        F: Future<Output = (T, Keep)> + Send + 'static,
    {
        let (wait, task) = match self.begin(key) {
            Begin::Wait(wait) => (wait, None),
            Begin::Lead(leader) => {
                let wait = leader.waiter();
                let future = compute();
                let task = async move {
                    let (value, keep) = future.await;
                    leader.finish(value, keep);
                };
                (wait, Some(task))
            }
        };
        async move {
            if let Some(task) = task {
                detach(task).await;
            }
            wait.wait().await
        }
    }

    /// Joins the computation in flight for `key`, or makes the caller its leader: the caller
    /// computes the value itself (for example synchronously) and hands it to
    /// [`Leader::finish`]; everyone who asks meanwhile waits for it.
    pub(crate) fn begin(self: &Arc<Self>, key: TokenKey) -> Begin<T> {
        // A computation may have finished between the caller's miss and now.
        match self.flights.begin(key, || self.get(&key)) {
            single_flight::Begin::Wait(waiter) => Begin::Wait(waiter),
            single_flight::Begin::Lead(flight) => Begin::Lead(Leader {
                cache: Arc::clone(self),
                flight,
            }),
        }
    }

    /// Number of entries held (expired ones included until they are evicted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes held, by the entries' weights.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        usize::try_from(self.table.weight()).unwrap_or(usize::MAX)
    }
}

/// What [`ResultCache::begin`] says: wait for the computation in flight, or lead a new one.
pub(crate) enum Begin<T: Clone + Send + Sync + 'static> {
    Wait(Waiter<T>),
    Lead(Leader<T>),
}

/// The one computation of a missing entry. Dropping it without [`finish`](Leader::finish)
/// (a panic, an abandoned request) wakes the waiters with `None`, so that the next request
/// starts afresh instead of waiting forever.
pub(crate) struct Leader<T: Clone + Send + Sync + 'static> {
    cache: Arc<ResultCache<T>>,
    flight: single_flight::Leader<TokenKey, T, PassThrough>,
}

impl<T: Clone + Send + Sync + 'static> Leader<T> {
    /// A waiter for this computation's value.
    pub(crate) fn waiter(&self) -> Waiter<T> {
        self.flight.waiter()
    }

    /// Caches `value` as `keep` says (before anyone is woken), and hands it to the waiters.
    pub(crate) fn finish(self, value: T, keep: Keep) {
        self.cache.insert(*self.flight.key(), value.clone(), keep);
        self.flight.finish(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::watch;

    fn keep(secs: u64) -> Keep {
        Keep {
            ttl: Duration::from_secs(secs),
            bytes: 100,
        }
    }

    #[test]
    fn keys_are_the_sha256_of_the_token() {
        let key = TokenKey::of("abc");
        assert_eq!(
            key.as_sha256()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts with ba7816bf"
        );
        assert!(TokenKey::of("abc") == TokenKey::of("abc"));
        assert!(TokenKey::of("abc") != TokenKey::of("abd"));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_live_exactly_their_ttl() {
        let cache = Arc::new(ResultCache::<u32>::new(100, 1 << 20));
        let key = TokenKey::of("t");
        let v = cache.get_or_compute(key, || async { (7, keep(3)) }).await;
        assert_eq!(v, Some(7));
        assert_eq!(cache.get(&key), Some(7));
        tokio::time::advance(Duration::from_millis(2999)).await;
        assert_eq!(cache.get(&key), Some(7));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key), None);
    }

    #[tokio::test]
    async fn zero_ttl_results_are_not_cached() {
        let cache = Arc::new(ResultCache::<u32>::new(100, 1 << 20));
        let key = TokenKey::of("t");
        let v = cache.get_or_compute(key, || async { (1, keep(0)) }).await;
        assert_eq!(v, Some(1));
        assert_eq!(cache.get(&key), None);
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let cache = Arc::new(ResultCache::<u32>::new(100, 1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let key = TokenKey::of("t");
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let calls = Arc::clone(&calls);
                let mut released = released.clone();
                tokio::spawn(cache.get_or_compute(key, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|r| *r).await;
                    (9, keep(0))
                }))
            })
            .collect();
        release.send(true).unwrap();
        for w in waiters {
            assert_eq!(w.await.unwrap(), Some(9));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Finished and not cached: the next miss computes again.
        let again = cache.get_or_compute(key, || async { (10, keep(0)) }).await;
        assert_eq!(again, Some(10));
    }

    #[tokio::test]
    async fn a_cancelled_first_caller_does_not_cancel_the_computation() {
        let cache = Arc::new(ResultCache::<u32>::new(100, 1 << 20));
        let (release, mut released) = watch::channel(false);
        let key = TokenKey::of("t");
        let first = cache.get_or_compute(key, move || async move {
            let _ = released.wait_for(|r| *r).await;
            (5, keep(60))
        });
        // Polled once (which starts the computation), then abandoned.
        assert!(tokio::time::timeout(Duration::ZERO, first).await.is_err());
        let second = tokio::spawn(cache.get_or_compute(key, || async { unreachable!() }));
        release.send(true).unwrap();
        assert_eq!(second.await.unwrap(), Some(5));
        assert_eq!(cache.get(&key), Some(5));
    }

    #[test]
    fn futures_made_outside_a_runtime_work_inside_one() {
        let cache = Arc::new(ResultCache::<u32>::new(100, 1 << 20));
        let key = TokenKey::of("t");
        let pending = cache.get_or_compute(key, || async { (4, keep(60)) });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(pending), Some(4));
        assert_eq!(cache.get(&key), Some(4));
    }

    #[tokio::test]
    async fn a_panicking_computation_yields_none_and_is_retried() {
        let cache = Arc::new(ResultCache::<u32>::new(100, 1 << 20));
        let key = TokenKey::of("t");
        let v = cache
            .get_or_compute(key, || async {
                let fail = true;
                if fail {
                    panic!("computation failed");
                }
                (0, keep(1))
            })
            .await;
        assert_eq!(v, None);
        let v = cache.get_or_compute(key, || async { (3, keep(1)) }).await;
        assert_eq!(v, Some(3));
    }

    #[tokio::test]
    async fn the_entry_bound_holds() {
        let cache = Arc::new(ResultCache::<u32>::new(50, 1 << 30));
        for i in 0..500u32 {
            let key = TokenKey::of(&i.to_string());
            cache
                .get_or_compute(key, move || async move { (i, keep(60)) })
                .await;
        }
        assert!(cache.len() <= 50, "{} entries", cache.len());
    }

    #[test]
    fn large_caches_are_sharded_and_small_ones_exact() {
        let large = ResultCache::<u32>::new(100_000, 64 << 20);
        let small = ResultCache::<u32>::new(50, 1 << 30);
        assert_eq!(large.table.num_shards() as u64, MAX_SHARDS);
        assert_eq!(small.table.num_shards(), 1);
        assert_eq!(small.shard_weight / small.min_weight, 50);
    }

    #[test]
    fn the_default_bounds_hold_64_mib_of_typical_jwts_about_64_000_of_285_characters() {
        // The defaults of both validator builders and of Issuers: 100 000 entries, 64 MiB.
        let (max_entries, max_bytes) = (100_000, 64 << 20);
        let cache = ResultCache::<u32>::new(max_entries, max_bytes);
        // A typical small access token (the scale bench's: HS256, 7 claims, 285 characters),
        // charged at least what its entry measured in RSS (1 041 bytes a kept entry, evicting).
        let charge = jwt_entry_bytes(285);
        assert!((1_041..=1_100).contains(&charge), "{charge}");
        for i in 0..max_entries as u32 {
            let keep = Keep {
                ttl: Duration::from_secs(60),
                bytes: charge,
            };
            cache.insert(TokenKey::of_jwt(&i.to_string()), i, keep);
        }
        // The byte bound binds first: 64 MiB / 1 049 bytes = 63 974 entries (shares of the 64
        // shards rounded down), where the old charge (3 188 bytes) kept 21 050.
        let held = cache.len();
        assert!((62_000..=63_974).contains(&held), "{held} entries");
        assert!(cache.bytes() <= max_bytes as usize);
        // Larger tokens are charged more, as measured (771 characters: 1 465 bytes).
        assert!(jwt_entry_bytes(771) >= 1_465);
        assert!(
            entry_bytes(285) > 3 * charge,
            "the old charge, for the record"
        );
    }

    #[tokio::test]
    async fn the_bounds_hold_across_shards() {
        let cache = Arc::new(ResultCache::<u32>::new(20_000, 64 << 20));
        assert!(cache.table.num_shards() > 1);
        for i in 0..60_000u32 {
            cache.insert(TokenKey::of(&i.to_string()), i, keep(60));
        }
        assert!(cache.len() <= 20_000, "{} entries", cache.len());
        assert!(
            cache.len() >= 19_000,
            "shares add up: {} entries",
            cache.len()
        );
        assert!(cache.bytes() <= 64 << 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_in_use_survives_a_flood_of_one_off_tokens() {
        let cache = ResultCache::<u32>::new(100, 1 << 30);
        let hot = TokenKey::of("hot");
        cache.insert(hot, 1, keep(600));
        for i in 0..10_000u32 {
            cache.insert(TokenKey::of(&format!("one-off {i}")), i, keep(600));
            if i % 50 == 0 {
                assert_eq!(cache.get(&hot), Some(1), "after {i} one-off tokens");
            }
        }
        assert_eq!(cache.get(&hot), Some(1));
        assert!(cache.len() <= 100);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_go_first() {
        let cache = ResultCache::<u32>::new(3, 1 << 30);
        let (a, b, c, d) = (
            TokenKey::of("a"),
            TokenKey::of("b"),
            TokenKey::of("c"),
            TokenKey::of("d"),
        );
        cache.insert(a, 1, keep(100));
        cache.insert(b, 2, keep(1));
        cache.insert(c, 3, keep(100));
        // a and c are in use, b has expired: b makes room for d.
        assert_eq!(cache.get(&a), Some(1));
        assert_eq!(cache.get(&c), Some(3));
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.insert(d, 4, keep(100));
        assert_eq!(
            (cache.get(&a), cache.get(&b), cache.get(&c), cache.get(&d)),
            (Some(1), None, Some(3), Some(4))
        );
    }

    /// Random operations against a model of what may be answered: a hit is always the last value
    /// put for the key and never after its lifetime; the bounds hold after every step; the
    /// table and the circle agree.
    #[tokio::test(start_paused = true)]
    async fn random_operations_never_answer_wrong() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let cache = ResultCache::<u64>::new(40, 40 * 500);
        let mut model: HashMap<u64, (u64, Instant)> = HashMap::new();
        for step in 0..20_000u64 {
            let id = next(80);
            let key = TokenKey::of(&id.to_string());
            match next(10) {
                0..=3 => {
                    let ttl = Duration::from_secs(next(20));
                    let bytes = usize::try_from(next(1500)).unwrap_or(0);
                    cache.insert(key, step, Keep { ttl, bytes });
                    if ttl.is_zero() || bytes > 40 * 500 {
                        // Not cached; an older entry may remain and is still the old answer.
                        if let Some(old) = model.get(&id) {
                            assert!(cache.get(&key).is_none_or(|v| v == old.0));
                        }
                    } else {
                        model.insert(id, (step, Instant::now() + ttl));
                    }
                }
                4 => {
                    cache.remove(&key);
                    model.remove(&id);
                }
                5 => tokio::time::advance(Duration::from_millis(next(3000))).await,
                _ => {
                    if let Some(value) = cache.get(&key) {
                        let (expected, until) = model.get(&id).copied().expect("only what was put");
                        assert_eq!(value, expected, "step {step}");
                        assert!(
                            Instant::now() < until,
                            "step {step}: expired entry answered"
                        );
                    }
                }
            }
            assert!(cache.len() <= 40 && cache.bytes() <= 40 * 500);
        }
    }

    #[tokio::test]
    async fn the_memory_bound_holds() {
        let cache = Arc::new(ResultCache::<u32>::new(1_000_000, 100_000));
        for i in 0..500u32 {
            let key = TokenKey::of(&i.to_string());
            let big = Keep {
                ttl: Duration::from_secs(60),
                bytes: 10_000,
            };
            cache
                .get_or_compute(key, move || async move { (i, big) })
                .await;
        }
        assert!(cache.len() <= 10, "{} entries", cache.len());
    }
}
