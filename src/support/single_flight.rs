//! [`SingleFlight`]: at most one computation per key at a time; whoever asks meanwhile waits for
//! its outcome. The one implementation behind the validated-token cache, the JWKS refresh and
//! the authorization server's `jwks_uri` fetches.
//!
//! The policy, the same for every user:
//! - the leader's computation runs in its own tokio task ([`detach`]), so that a cancelled
//!   request does not cancel the computation others wait for; with no tokio runtime at the time
//!   it runs inside the caller's future instead;
//! - a leader dropped without [`finish`](Leader::finish) (a panic, an abandoned computation)
//!   ends the flight: its waiters get `None`, and the next caller starts afresh instead of
//!   waiting forever.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The computations in flight, by key.
pub(crate) struct SingleFlight<K, T, H = RandomState> {
    in_flight: Mutex<HashMap<K, watch::Receiver<Option<T>>, H>>,
}

/// What [`SingleFlight::begin`] says: wait for the computation in flight, or lead a new one.
pub(crate) enum Begin<K: Hash + Eq, T, H: BuildHasher> {
    Wait(Waiter<T>),
    Lead(Leader<K, T, H>),
}

impl<K, T, H: Default> Default for SingleFlight<K, T, H> {
    fn default() -> Self {
        Self {
            in_flight: Mutex::new(HashMap::with_hasher(H::default())),
        }
    }
}

impl<K: Hash + Eq + Clone, T: Clone, H: BuildHasher> SingleFlight<K, T, H> {
    /// Joins the computation in flight for `key`, or makes the caller its leader. `settled`
    /// is asked under the lock, before a new flight starts: a value that became available
    /// since the caller last looked (a computation that just finished) is handed out at once.
    pub(crate) fn begin(
        self: &Arc<Self>,
        key: K,
        settled: impl FnOnce() -> Option<T>,
    ) -> Begin<K, T, H> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = in_flight.get(&key) {
            return Begin::Wait(Waiter(rx.clone()));
        }
        if let Some(value) = settled() {
            return Begin::Wait(Waiter(watch::channel(Some(value)).1));
        }
        let (tx, rx) = watch::channel(None);
        in_flight.insert(key.clone(), rx);
        drop(in_flight);
        Begin::Lead(Leader {
            flights: Arc::clone(self),
            key,
            tx,
        })
    }

    /// Whether a computation for `key` is in flight.
    #[cfg(test)]
    pub(crate) fn is_in_flight(&self, key: &K) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }
}

/// Waits for the outcome of a computation in flight.
pub(crate) struct Waiter<T>(watch::Receiver<Option<T>>);

impl<T: Clone> Waiter<T> {
    /// The value, or `None` if the computation ended without one.
    pub(crate) async fn wait(mut self) -> Option<T> {
        let value = self.0.wait_for(Option::is_some).await.ok()?.clone();
        value
    }
}

/// The one computation in flight for a key.
pub(crate) struct Leader<K: Hash + Eq, T, H: BuildHasher> {
    flights: Arc<SingleFlight<K, T, H>>,
    key: K,
    tx: watch::Sender<Option<T>>,
}

impl<K: Hash + Eq, T, H: BuildHasher> Leader<K, T, H> {
    /// The key of this computation.
    pub(crate) fn key(&self) -> &K {
        &self.key
    }

    /// A waiter for this computation's value.
    pub(crate) fn waiter(&self) -> Waiter<T> {
        Waiter(self.tx.subscribe())
    }

    /// Ends the flight and hands `value` to the waiters. Anything the waiters must see (a cache
    /// entry, say) is to be stored before this.
    pub(crate) fn finish(self, value: T) {
        let tx = self.tx.clone();
        // Dropping the leader removes the in-flight entry; then the waiters get the value, so
        // that a caller woken by it who asks again starts no second flight for it.
        drop(self);
        let _ = tx.send(Some(value));
    }
}

impl<K: Hash + Eq, T, H: BuildHasher> Drop for Leader<K, T, H> {
    fn drop(&mut self) {
        self.flights
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Runs `task` in its own tokio task, or, with no tokio runtime when this future is polled,
/// inside it. Either way the caller waits for the outcome through a [`Waiter`].
pub(crate) async fn detach(task: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn(task)),
        Err(_) => task.await,
    }
}

/// Starts `task` in its own tokio task from synchronous code; `false` when there is no tokio
/// runtime to run it (nothing is started).
pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            drop(handle.spawn(task));
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_caller_joins_the_flight_in_progress() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let Begin::Lead(leader) = flights.begin("k", || None) else {
            panic!("the first caller leads");
        };
        let Begin::Wait(waiter) = flights.begin("k", || None) else {
            panic!("the second caller waits");
        };
        assert!(flights.is_in_flight(&"k"));
        leader.finish(7);
        assert!(!flights.is_in_flight(&"k"));
        assert_eq!(waiter.wait().await, Some(7));
    }

    #[tokio::test]
    async fn a_settled_value_starts_no_flight() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let Begin::Wait(waiter) = flights.begin("k", || Some(3)) else {
            panic!("a settled value is handed out");
        };
        assert!(!flights.is_in_flight(&"k"));
        assert_eq!(waiter.wait().await, Some(3));
    }

    #[tokio::test]
    async fn a_dropped_leader_wakes_its_waiters_with_nothing() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let Begin::Lead(leader) = flights.begin("k", || None) else {
            panic!("the first caller leads");
        };
        let waiter = leader.waiter();
        drop(leader);
        assert_eq!(waiter.wait().await, None);
        assert!(matches!(flights.begin("k", || None), Begin::Lead(_)));
    }

    #[test]
    fn detached_work_runs_inline_without_a_runtime() {
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let future = detach(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        poll_once(future);
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!spawn(async {}));
    }

    /// Polls a future that never waits (no runtime involved).
    fn poll_once<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => unreachable!("nothing here waits"),
        }
    }
}
