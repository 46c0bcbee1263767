//! The in-process [`ReplayStore`]: [`MemoryReplayStore`].

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::replay::{replay_label, Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError};
use crate::metrics;

/// Independent locks, so that concurrent requests rarely wait on one another. A power of two.
const SHARDS: usize = 32;

const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// A bounded, in-process [`ReplayStore`]: the default, right for a single instance (a fleet
/// needs a shared store, so that a proof replayed to another instance is caught).
///
/// Each proof is kept for exactly the `ttl` it is recorded with, then forgotten. The store
/// never forgets one early, not even under memory pressure: when it holds as many unexpired
/// proofs as it may, it answers new ones with a [`StoreError`] (the layer's `503`) and keeps
/// answering [`Replay::Replayed`] for those it holds. Expired proofs are dropped as they come
/// due, and always before the store calls itself full.
///
/// Bounds: [`max_bytes`](Self::max_bytes) (default 64 MiB) and
/// [`max_entries`](Self::max_entries) (default: no bound of its own); the smaller one wins.
/// At [`BYTES_PER_ENTRY`](Self::BYTES_PER_ENTRY) bytes each, 64 MiB holds 322 638 proofs:
/// 1 000 new proofs a second kept for five minutes, with room to spare. Size it as the peak
/// rate of new proofs times the `ttl` the layer keeps them for.
///
/// # Example
/// ```
/// use certbound::dpop::MemoryReplayStore;
///
/// // At most 100 000 proofs, and at most 16 MiB.
/// let store = MemoryReplayStore::new().max_entries(100_000).max_bytes(16 << 20);
/// assert_eq!(store.len(), 0);
/// ```
// Deliberately not a cache (quick_cache, moka): a cache evicts entries when full, and every
// evicted entry is a proof that can be replayed. Here, full means refusing, never forgetting.
pub struct MemoryReplayStore {
    shards: Box<[Padded]>,
    /// Entries held, across all shards (expired ones included until they are purged).
    len: AtomicUsize,
    /// The effective bound: the smaller of `max_entries` and `max_bytes / BYTES_PER_ENTRY`.
    limit: usize,
    max_entries: usize,
    max_bytes: usize,
}

/// One shard on its own cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines),
/// so that two cores locking neighbouring shards do not contend for one line.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

type Key = [u8; 32];

#[derive(Default)]
struct Shard {
    /// Each recorded key and when it expires.
    expiries: HashMap<Key, Instant>,
    /// Keys in order of expiry, oldest first, for purging in O(1) per entry. With one `ttl`
    /// (the usual case) every new key expires last, so a queue is enough...
    queue: VecDeque<(Instant, Key)>,
    /// ... and the keys that expire before the last one queued (a shorter `ttl` than its
    /// predecessor's) wait here instead, in a min-heap.
    out_of_order: BinaryHeap<Reverse<(Instant, Key)>>,
}

impl MemoryReplayStore {
    /// What one recorded proof may cost, in bytes, used to turn [`max_bytes`](Self::max_bytes)
    /// into a number of entries. An entry is 48 bytes in the map (a 32-byte key and an
    /// `Instant`) plus a control byte, and 48 bytes in the expiry queue; just after the map and
    /// the queue have doubled their capacity, these take 112 and 96 bytes an entry. That worst
    /// case is the cost charged, so the bound holds whenever the store is full.
    pub const BYTES_PER_ENTRY: usize = 208;

    /// An empty store bounded to 64 MiB (see [`MemoryReplayStore`]).
    pub fn new() -> Self {
        let mut store = Self {
            shards: (0..SHARDS)
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            len: AtomicUsize::new(0),
            limit: 0,
            max_entries: usize::MAX,
            max_bytes: DEFAULT_MAX_BYTES,
        };
        store.update_limit();
        store
    }

    /// Holds at most `entries` unexpired proofs. `0` refuses every proof.
    #[must_use]
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self.update_limit();
        self
    }

    /// Holds at most as many unexpired proofs as fit in `bytes`, at
    /// [`BYTES_PER_ENTRY`](Self::BYTES_PER_ENTRY) bytes each (default: 64 MiB).
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self.update_limit();
        self
    }

    /// The number of proofs held. Expired proofs are purged first, so this counts the unexpired
    /// ones (it locks every shard in turn: for monitoring, not for every request).
    pub fn len(&self) -> usize {
        self.purge_all(Instant::now());
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no unexpired proof (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn update_limit(&mut self) {
        self.limit = self.max_entries.min(self.max_bytes / Self::BYTES_PER_ENTRY);
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, Shard> {
        // A key is a SHA-256 output: any byte of it spreads keys evenly.
        lock(&self.shards[usize::from(key[0]) % SHARDS].0)
    }

    fn record_key(&self, key: Key, ttl: Duration) -> Result<Replay, StoreError> {
        let now = Instant::now();
        let Some(expires) = now.checked_add(ttl) else {
            return Err(StoreError::new("replay ttl out of range"));
        };
        if let Some(answer) = self.try_record(key, now, expires) {
            return Ok(answer);
        }
        // Full, maybe of proofs that expired in shards no request has touched since: purge
        // them all, then try once more (the shard's lock is not held meanwhile, so the answer
        // may now be Replayed).
        self.purge_all(now);
        self.try_record(key, now, expires)
            .ok_or(StoreError::new("in-memory replay store is full"))
    }

    /// `None`: the key is new and the store is full.
    fn try_record(&self, key: Key, now: Instant, expires: Instant) -> Option<Replay> {
        let mut shard = self.shard(&key);
        let shard = &mut *shard;
        self.release(shard.purge(now));
        match shard.expiries.entry(key) {
            Entry::Occupied(recorded) if *recorded.get() > now => Some(Replay::Replayed),
            // Expired but still here (purging drops every expired key, so this is only
            // defensive): recorded afresh, in the slot it already counts for.
            Entry::Occupied(mut expired) => {
                expired.insert(expires);
                schedule(&mut shard.queue, &mut shard.out_of_order, key, expires);
                Some(Replay::Fresh)
            }
            Entry::Vacant(slot) => {
                if !self.reserve() {
                    return None;
                }
                slot.insert(expires);
                schedule(&mut shard.queue, &mut shard.out_of_order, key, expires);
                Some(Replay::Fresh)
            }
        }
    }

    /// Counts one more entry, unless that would pass the limit.
    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len < self.limit).then_some(len + 1)
            })
            .is_ok()
    }

    fn release(&self, purged: usize) {
        if purged > 0 {
            self.len.fetch_sub(purged, Ordering::Relaxed);
        }
    }

    /// Purges every shard, locking one at a time.
    fn purge_all(&self, now: Instant) {
        for shard in &*self.shards {
            let purged = lock(&shard.0).purge(now);
            self.release(purged);
        }
    }
}

impl Shard {
    /// Drops every key expired at `now`; returns how many.
    fn purge(&mut self, now: Instant) -> usize {
        let mut purged = 0;
        while let Some(&(expires, key)) = self.queue.front() {
            if expires > now {
                break;
            }
            self.queue.pop_front();
            purged += usize::from(remove_if_due(&mut self.expiries, &key, expires));
        }
        while let Some(&Reverse((expires, key))) = self.out_of_order.peek() {
            if expires > now {
                break;
            }
            self.out_of_order.pop();
            purged += usize::from(remove_if_due(&mut self.expiries, &key, expires));
        }
        purged
    }
}

/// Removes `key` if it still expires at `expires` (it was not recorded afresh since).
fn remove_if_due(expiries: &mut HashMap<Key, Instant>, key: &Key, expires: Instant) -> bool {
    match expiries.entry(*key) {
        Entry::Occupied(entry) if *entry.get() == expires => {
            entry.remove();
            true
        }
        _ => false,
    }
}

fn schedule(
    queue: &mut VecDeque<(Instant, Key)>,
    out_of_order: &mut BinaryHeap<Reverse<(Instant, Key)>>,
    key: Key,
    expires: Instant,
) {
    match queue.back() {
        Some(&(last, _)) if last > expires => out_of_order.push(Reverse((expires, key))),
        _ => queue.push_back((expires, key)),
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing in a critical section panics; were one to, the maps are still consistent
    // (an entry is inserted before it is queued), so the data stays usable.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("entries", &self.len.load(Ordering::Relaxed))
            .field("limit", &self.limit)
            .finish()
    }
}

impl ReplayStore for MemoryReplayStore {
    fn record(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        let start = metrics::start();
        let answer = self.record_key(*key.as_bytes(), ttl);
        metrics::dpop_replay(
            replay_label(&answer),
            metrics::ReplayStore::Memory,
            metrics::elapsed(start),
        );
        ReplayFuture::ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::{Arc, Barrier};
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::thumbprint::JwkThumbprint;

    const MINUTE: Duration = Duration::from_secs(60);

    fn key(jti: &str) -> ReplayKey {
        ReplayKey::new(&JwkThumbprint::from_digest([7; 32]), jti)
    }

    /// Records through the trait; the future must be ready at once.
    fn record(
        store: &MemoryReplayStore,
        key: &ReplayKey,
        ttl: Duration,
    ) -> Result<Replay, StoreError> {
        let mut future = store.record(key, ttl);
        match std::pin::Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => answer,
            Poll::Pending => panic!("the in-memory store answers at once"),
        }
    }

    /// Polls `f` until it returns `Some`, for at most five seconds.
    fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(value) = f() {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_key_is_fresh_once_then_replayed() {
        let store = MemoryReplayStore::new();
        assert!(store.is_empty());
        assert_eq!(record(&store, &key("a"), MINUTE).unwrap(), Replay::Fresh);
        assert_eq!(record(&store, &key("a"), MINUTE).unwrap(), Replay::Replayed);
        assert_eq!(record(&store, &key("a"), MINUTE).unwrap(), Replay::Replayed);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn different_keys_are_independent() {
        let store = MemoryReplayStore::new();
        for jti in ["a", "b", "c"] {
            assert_eq!(record(&store, &key(jti), MINUTE).unwrap(), Replay::Fresh);
        }
        let other_client = ReplayKey::new(&JwkThumbprint::from_digest([8; 32]), "a");
        assert_eq!(
            record(&store, &other_client, MINUTE).unwrap(),
            Replay::Fresh
        );
        assert_eq!(record(&store, &key("b"), MINUTE).unwrap(), Replay::Replayed);
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn a_key_is_forgotten_once_its_ttl_has_passed_and_not_before() {
        let store = MemoryReplayStore::new();
        let ttl = Duration::from_millis(50);
        let start = Instant::now();
        assert_eq!(record(&store, &key("a"), ttl).unwrap(), Replay::Fresh);
        let fresh_again_at = eventually(|| {
            let now = Instant::now();
            match record(&store, &key("a"), ttl).unwrap() {
                Replay::Fresh => Some(now),
                Replay::Replayed => None,
            }
        });
        assert!(fresh_again_at.duration_since(start) >= ttl);
        // Recorded afresh, with a new ttl.
        assert_eq!(record(&store, &key("a"), ttl).unwrap(), Replay::Replayed);
    }

    #[test]
    fn a_short_ttl_after_a_long_one_in_the_same_shard_still_expires_on_time() {
        let store = MemoryReplayStore::new();
        let long = [0u8; 32];
        let mut short = [1u8; 32];
        short[0] = long[0]; // the same shard
        assert_eq!(store.record_key(long, MINUTE).unwrap(), Replay::Fresh);
        assert_eq!(
            store.record_key(short, Duration::from_millis(20)).unwrap(),
            Replay::Fresh
        );
        eventually(|| (store.len() == 1).then_some(()));
        assert_eq!(store.record_key(long, MINUTE).unwrap(), Replay::Replayed);
        assert_eq!(store.record_key(short, MINUTE).unwrap(), Replay::Fresh);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let store = MemoryReplayStore::new();
        assert_eq!(
            record(&store, &key("a"), Duration::ZERO).unwrap(),
            Replay::Fresh
        );
        assert_eq!(
            record(&store, &key("a"), Duration::ZERO).unwrap(),
            Replay::Fresh
        );
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn an_unrepresentable_ttl_is_an_error_not_a_panic() {
        let store = MemoryReplayStore::new();
        let err = record(&store, &key("a"), Duration::MAX).unwrap_err();
        assert_eq!(err.reason(), "replay ttl out of range");
        assert!(store.is_empty());
    }

    #[test]
    fn a_full_store_refuses_new_keys_and_still_knows_the_recorded_ones() {
        let store = MemoryReplayStore::new().max_entries(4);
        for i in 0..4 {
            assert_eq!(
                record(&store, &key(&i.to_string()), MINUTE).unwrap(),
                Replay::Fresh
            );
        }
        for i in 4..20 {
            let err = record(&store, &key(&i.to_string()), MINUTE).unwrap_err();
            assert_eq!(err.reason(), "in-memory replay store is full");
        }
        for i in 0..4 {
            assert_eq!(
                record(&store, &key(&i.to_string()), MINUTE).unwrap(),
                Replay::Replayed
            );
        }
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn a_full_store_accepts_new_keys_once_old_ones_expire() {
        let store = MemoryReplayStore::new().max_entries(8);
        let ttl = Duration::from_millis(50);
        let start = Instant::now();
        for i in 0..8 {
            assert_eq!(
                record(&store, &key(&i.to_string()), ttl).unwrap(),
                Replay::Fresh
            );
        }
        // The new key lands in a shard none of the old ones may be in: purging must look at
        // every shard before calling the store full.
        let accepted_at = eventually(|| {
            let now = Instant::now();
            record(&store, &key("new"), MINUTE).ok().map(|answer| {
                assert_eq!(answer, Replay::Fresh);
                now
            })
        });
        assert!(accepted_at.duration_since(start) >= ttl);
        // The new key may have taken the room of the first old key to expire, before the
        // others did (they were recorded a little later): the bound held all along, and once
        // every old key has expired only the new one is left.
        assert!(store.len() <= 8);
        eventually(|| (store.len() == 1).then_some(()));
    }

    #[test]
    fn the_smaller_of_the_two_bounds_wins() {
        let per = MemoryReplayStore::BYTES_PER_ENTRY;
        assert_eq!(MemoryReplayStore::new().limit, 64 * 1024 * 1024 / per);
        assert_eq!(MemoryReplayStore::new().max_bytes(3 * per + 1).limit, 3);
        let store = MemoryReplayStore::new().max_entries(10).max_bytes(3 * per);
        assert_eq!(store.limit, 3);
        let store = MemoryReplayStore::new()
            .max_bytes(usize::MAX)
            .max_entries(2);
        assert_eq!(store.limit, 2);
        let store = MemoryReplayStore::new().max_entries(0);
        assert!(record(&store, &key("a"), MINUTE).is_err());
        assert_eq!(
            format!("{store:?}"),
            "MemoryReplayStore { entries: 0, limit: 0 }"
        );
    }

    #[test]
    fn of_threads_racing_on_one_key_exactly_one_sees_it_fresh() {
        let store = Arc::new(MemoryReplayStore::new());
        for round in 0..50 {
            let threads = 8;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        record(&store, &key(&format!("race-{round}")), MINUTE).unwrap()
                    })
                })
                .collect();
            let fresh = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|answer| *answer == Replay::Fresh)
                .count();
            assert_eq!(fresh, 1, "round {round}");
        }
    }

    /// Run with `cargo test --release --lib dpop::memory -- --ignored --nocapture`. Prints the
    /// best of five rounds: 200 000 new keys (map and queue growing, cache misses), the same
    /// keys again (replays), and 1 000 keys replayed over and over (cache-resident).
    #[test]
    #[ignore = "a timing measurement, not a check"]
    fn record_cost() {
        const N: usize = 200_000;
        const HOT: usize = 1_000;
        let per_call = |elapsed: Duration, calls: usize| elapsed.as_nanos() as f64 / calls as f64;
        let keys: Vec<ReplayKey> = (0..N).map(|i| key(&i.to_string())).collect();
        let (mut fresh, mut replayed, mut hot) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..5 {
            let store = MemoryReplayStore::new().max_bytes(usize::MAX);
            let start = Instant::now();
            for k in &keys {
                std::hint::black_box(record(&store, k, MINUTE).is_ok());
            }
            fresh = fresh.min(per_call(start.elapsed(), N));
            let start = Instant::now();
            for k in &keys {
                std::hint::black_box(record(&store, k, MINUTE).is_ok());
            }
            replayed = replayed.min(per_call(start.elapsed(), N));
            let start = Instant::now();
            for _ in 0..N / HOT {
                for k in &keys[..HOT] {
                    std::hint::black_box(record(&store, k, MINUTE).is_ok());
                }
            }
            hot = hot.min(per_call(start.elapsed(), N / HOT * HOT));
        }
        let start = Instant::now();
        for _ in 0..N {
            std::hint::black_box(Instant::now());
        }
        let clock = per_call(start.elapsed(), N);
        println!(
            "record: {fresh:.0} ns new ({N} keys), {replayed:.0} ns replayed, {hot:.0} ns \
             replayed ({HOT} hot keys); Instant::now() alone {clock:.0} ns"
        );
    }
}
