//! Proof replay protection (RFC 9449 §11.1): the [`ReplayStore`] extension point, what it is
//! given ([`ReplayKey`]) and answers ([`Replay`], [`StoreError`]), and its future
//! ([`ReplayFuture`]).
//!
//! The layer asks the store only after every other check of the request passed, so a proof that
//! fails for another reason never burns its `jti`, and a request that is refused anyway never
//! waits on the store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::metrics;
use crate::readiness::ReadyFuture;
use crate::thumbprint::JwkThumbprint;

/// Records proof identifiers and tells whether one was seen before.
///
/// `record` must be atomic: of any number of concurrent calls with one key, across every
/// instance that shares the store, exactly one may answer [`Replay::Fresh`]. A key must be kept
/// for at least `ttl`; forgetting one early would let its proof be replayed. When the store
/// cannot answer (unreachable, timed out, full), it returns a [`StoreError`]: the layer then
/// answers `503` (fail closed), never lets the request through and never blames the client.
///
/// certbound has two: [`MemoryReplayStore`](super::MemoryReplayStore) (one process) and, with
/// the `redis` feature, `RedisReplayStore` (a fleet).
pub trait ReplayStore: Send + Sync + fmt::Debug + 'static {
    /// Records `key` for `ttl` unless it is recorded already.
    fn record(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture;

    /// Whether the store answers now (see [`Readiness`](crate::Readiness)), within a short
    /// bound of its own: what [`BoundTokenLayer::ready`](crate::BoundTokenLayer::ready) asks.
    /// The default is ready, for a store in the process; a store across the network should
    /// ask it something cheap (`RedisReplayStore` sends a `PING`).
    fn ready(&self) -> ReadyFuture<'_> {
        crate::readiness::ready_now()
    }
}

impl<T: ReplayStore + ?Sized> ReplayStore for std::sync::Arc<T> {
    fn record(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        (**self).record(key, ttl)
    }

    fn ready(&self) -> ReadyFuture<'_> {
        (**self).ready()
    }
}

/// The `result` label of a store's answer.
pub(crate) fn replay_label(answer: &Result<Replay, StoreError>) -> metrics::Replay {
    match answer {
        Ok(Replay::Fresh) => metrics::Replay::Fresh,
        Ok(Replay::Replayed) => metrics::Replay::Replayed,
        Err(_) => metrics::Replay::Error,
    }
}

/// What a [`ReplayStore`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The key was not recorded; it is now.
    Fresh,
    /// The key was recorded already: the proof is a replay.
    Replayed,
}

/// The identity of one proof: SHA-256 over the key's thumbprint and the proof's `jti`, so that
/// two clients choosing the same `jti` never collide, and a store holds a fixed 32 bytes per
/// proof whatever the `jti`'s length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key of the proof with identifier `jti`, signed by the key with thumbprint `jkt`.
    pub fn new(jkt: &JwkThumbprint, jti: &str) -> Self {
        Self(crate::support::sha256::sha256_of(&[
            jkt.as_bytes(),
            jti.as_bytes(),
        ]))
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lowercase hex digits (for stores keyed by strings).
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        crate::support::encoding::push_hex(&mut hex, &self.0, false);
        hex
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash of public values (the jti travels in the clear); still, keep logs short.
        write!(f, "ReplayKey({}…)", &self.to_hex()[..12])
    }
}

/// Why a [`ReplayStore`] could not answer. The request is refused with `503`.
#[derive(Debug)]
pub struct StoreError {
    reason: &'static str,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A store failure described by `reason` (fixed text; it reaches logs).
    pub fn new(reason: &'static str) -> Self {
        Self {
            reason,
            source: None,
        }
    }

    /// A store failure caused by `source` (a connection error, say).
    pub fn with_source(
        reason: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            reason,
            source: Some(source.into()),
        }
    }

    /// The fixed description.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DPoP replay store unavailable: {}", self.reason)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

type Answer = Result<Replay, StoreError>;

/// The future a [`ReplayStore`] returns: an answer known at once (no allocation), or a boxed
/// future (a network round trip).
#[must_use = "futures do nothing unless polled"]
pub struct ReplayFuture(Inner);

enum Inner {
    Ready(Option<Answer>),
    Waiting(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl ReplayFuture {
    /// An answer known at once.
    pub fn ready(answer: Result<Replay, StoreError>) -> Self {
        Self(Inner::Ready(Some(answer)))
    }

    /// An answer that needs waiting for.
    pub fn new(future: impl Future<Output = Result<Replay, StoreError>> + Send + 'static) -> Self {
        Self(Inner::Waiting(Box::pin(future)))
    }
}

impl ReplayFuture {
    /// The answer, when it was known at once ([`ReplayFuture::ready`]): the layer then settles
    /// the request without parking it. `None` for an answer that needs waiting for.
    pub(crate) fn take_ready(&mut self) -> Option<Result<Replay, StoreError>> {
        match &mut self.0 {
            Inner::Ready(answer) => answer.take(),
            Inner::Waiting(_) => None,
        }
    }
}

impl fmt::Debug for ReplayFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            Inner::Ready(Some(_)) => "ready",
            Inner::Ready(None) => "done",
            Inner::Waiting(_) => "waiting",
        };
        f.debug_tuple("ReplayFuture").field(&state).finish()
    }
}

impl Future for ReplayFuture {
    type Output = Result<Replay, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both variants are Unpin (the boxed future is pinned on the heap).
        match &mut self.get_mut().0 {
            Inner::Ready(answer) => Poll::Ready(answer.take().unwrap_or(Err(StoreError::new(
                "replay future polled after completion",
            )))),
            Inner::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}
