//! [`ResultCache`]: validation results keyed by the SHA-256 of the token, with a lifetime per
//! entry, a bound on entries and on memory, and single-flight computation of missing entries.
//!
//! - The raw token is never stored: the key is its SHA-256 ([`TokenKey`]).
//! - Lifetimes are checked on every hit against tokio's clock (so that tests can move time);
//!   moka evicts expired entries and enforces the bounds.
//! - Both bounds come from one moka capacity: every entry weighs at least
//!   `max_bytes / max_entries`, so there are never more than `max_entries` entries and never
//!   more than about `max_bytes` bytes.
//! - A missing entry is computed once however many requests wait for it. The computation runs
//!   in its own task (spawned on the first poll of the request that starts it), so a cancelled
//!   request does not cancel it for the others, and its result is cached (when it says so)
//!   before the waiters are woken.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

/// The cache key of a token: SHA-256 of the token string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey([u8; 32]);

impl TokenKey {
    pub(crate) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

/// The memory an entry holding claims parsed from `claims_json_len` bytes of JSON takes, all
/// told: the parsed map (keys, values, tree nodes), the `AccessToken`'s own copies, moka's
/// per-entry bookkeeping and allocator overhead. Calibrated against the peak RSS of
/// `loadtest --memory` (200 000 distinct tokens), so that the byte bound holds for real.
pub(crate) const fn entry_bytes(claims_json_len: usize) -> usize {
    claims_json_len.saturating_mul(4).saturating_add(2048)
}

/// How a freshly computed value is to be cached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    /// How long the entry may be used; zero means "do not cache".
    pub(crate) ttl: Duration,
    /// Approximate size of the entry in bytes.
    pub(crate) bytes: usize,
}

#[derive(Clone)]
struct Entry<T> {
    value: T,
    until: Instant,
    /// The same lifetime for moka, which uses its own clock.
    ttl: Duration,
    weight: u32,
}

struct PerEntryTtl;

impl<T> moka::Expiry<TokenKey, Entry<T>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &TokenKey,
        entry: &Entry<T>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

type InFlight<T> = watch::Receiver<Option<T>>;

/// Cached validation results (see the module docs).
pub(crate) struct ResultCache<T> {
    entries: moka::sync::Cache<TokenKey, Entry<T>>,
    min_weight: u32,
    in_flight: Mutex<HashMap<TokenKey, InFlight<T>>>,
}

impl<T: Clone + Send + Sync + 'static> ResultCache<T> {
    /// A cache of at most `max_entries` entries and about `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let min_weight = u32::try_from(max_bytes.div_ceil(max_entries).max(1)).unwrap_or(u32::MAX);
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &TokenKey, entry: &Entry<T>| entry.weight)
            .expire_after(PerEntryTtl)
            .build();
        Self {
            entries,
            min_weight,
            in_flight: Mutex::default(),
        }
    }

    /// The cached value for `key`, if it is still alive.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<T> {
        let entry = self.entries.get(key)?;
        (Instant::now() < entry.until).then_some(entry.value)
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &TokenKey) {
        self.entries.invalidate(key);
    }

    fn insert(&self, key: TokenKey, value: T, keep: Keep) {
        if keep.ttl.is_zero() {
            return;
        }
        let weight = u32::try_from(keep.bytes)
            .unwrap_or(u32::MAX)
            .max(self.min_weight);
        self.entries.insert(
            key,
            Entry {
                value,
                until: Instant::now() + keep.ttl,
                ttl: keep.ttl,
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
                match tokio::runtime::Handle::try_current() {
                    Ok(handle) => drop(handle.spawn(task)),
                    Err(_) => task.await,
                }
            }
            wait.wait().await
        }
    }

    /// Joins the computation in flight for `key`, or makes the caller its leader: the caller
    /// computes the value itself (for example synchronously) and hands it to
    /// [`Leader::finish`]; everyone who asks meanwhile waits for it.
    pub(crate) fn begin(self: &Arc<Self>, key: TokenKey) -> Begin<T> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = in_flight.get(&key) {
            return Begin::Wait(Waiter(rx.clone()));
        }
        // A computation may have finished between the caller's miss and this lock.
        if let Some(value) = self.get(&key) {
            return Begin::Wait(Waiter(watch::channel(Some(value)).1));
        }
        let (tx, rx) = watch::channel(None);
        in_flight.insert(key, rx);
        drop(in_flight);
        Begin::Lead(Leader {
            cache: Arc::clone(self),
            key,
            tx,
        })
    }

    /// Number of live and not yet evicted entries (approximate; for tests and metrics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// What [`ResultCache::begin`] says: wait for the computation in flight, or lead a new one.
pub(crate) enum Begin<T: Clone + Send + Sync + 'static> {
    Wait(Waiter<T>),
    Lead(Leader<T>),
}

/// Waits for the value of a computation in flight.
pub(crate) struct Waiter<T>(InFlight<T>);

impl<T: Clone> Waiter<T> {
    /// The value, or `None` if the computation ended without one.
    pub(crate) async fn wait(mut self) -> Option<T> {
        let value = self.0.wait_for(Option::is_some).await.ok()?.clone();
        value
    }
}

/// The one computation of a missing entry. Dropping it without [`finish`](Leader::finish)
/// (a panic, an abandoned request) removes the in-flight entry and wakes the waiters with
/// `None`, so the next request starts afresh instead of waiting forever.
pub(crate) struct Leader<T: Clone + Send + Sync + 'static> {
    cache: Arc<ResultCache<T>>,
    key: TokenKey,
    tx: watch::Sender<Option<T>>,
}

impl<T: Clone + Send + Sync + 'static> Leader<T> {
    /// A waiter for this computation's value.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))] // Used by introspection.
    pub(crate) fn waiter(&self) -> Waiter<T> {
        Waiter(self.tx.subscribe())
    }

    /// Caches `value` as `keep` says (before anyone is woken), and hands it to the waiters.
    pub(crate) fn finish(self, value: T, keep: Keep) {
        self.cache.insert(self.key, value.clone(), keep);
        let tx = self.tx.clone();
        // Dropping the leader removes the in-flight entry; then the waiters get the value.
        drop(self);
        let _ = tx.send(Some(value));
    }
}

impl<T: Clone + Send + Sync + 'static> Drop for Leader<T> {
    fn drop(&mut self) {
        self.cache
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            key.0[..4],
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
