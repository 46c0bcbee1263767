//! PLACEHOLDER (being written): the in-memory replay store.
#![allow(missing_docs, dead_code, unused_variables)]
use std::time::Duration;

use super::replay::{ReplayFuture, ReplayKey, ReplayStore};

#[derive(Debug)]
pub struct MemoryReplayStore(());

impl MemoryReplayStore {
    pub fn new() -> Self {
        todo!()
    }
    pub fn max_entries(self, entries: usize) -> Self {
        todo!()
    }
    pub fn max_bytes(self, bytes: usize) -> Self {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayStore for MemoryReplayStore {
    fn record(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        todo!()
    }
}
