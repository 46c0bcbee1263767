//! [`Slot`]: a connection's memory of one value of a type another module owns, so that the
//! connection (`certificate`) need not name that module (the DPoP proof-key memo,
//! `dpop::key_memo`, whose module names the connection).

use std::any::Any;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The last value remembered, shared with the requests that use it.
///
/// HTTP/2 multiplexes a connection's requests: a look-up clones the [`Arc`] and holds no lock
/// past it, and a request that finds the slot busy recalls nothing and replaces nothing (it
/// recomputes; a lost race costs only that).
#[derive(Default)]
pub(crate) struct Slot(RwLock<Option<Arc<dyn Any + Send + Sync>>>);

impl Slot {
    /// The value held, if it is a `T` and `is` says it is the one wanted.
    pub(crate) fn recall<T: Any + Send + Sync>(
        &self,
        is: impl FnOnce(&T) -> bool,
    ) -> Option<Arc<T>> {
        let last = self.0.try_read().ok()?;
        let held = last.as_ref()?;
        if !is(held.downcast_ref::<T>()?) {
            return None;
        }
        Arc::clone(held).downcast::<T>().ok()
    }

    /// Holds `value` (shared with whoever else holds it) in place of the last one (unless the
    /// slot is busy).
    pub(crate) fn remember<T: Any + Send + Sync>(&self, value: Arc<T>) {
        if let Ok(mut last) = self.0.try_write() {
            *last = Some(value);
        }
    }

    /// Whether a value is held.
    #[cfg(test)]
    pub(crate) fn holds(&self) -> bool {
        self.0.read().is_ok_and(|last| last.is_some())
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}
