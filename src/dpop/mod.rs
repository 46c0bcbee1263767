//! DPoP (RFC 9449): tokens bound to a key the client proves it holds on every request.
//!
//! (Module docs are completed with the layer integration.)

mod jwk;
mod key;
mod memory;
mod nonce;
#[cfg(feature = "redis")]
mod redis;
mod replay;

#[cfg(feature = "redis")]
pub use self::redis::RedisReplayStore;
pub use key::{DpopKey, ProofBuilder};
pub use memory::MemoryReplayStore;
pub use nonce::DpopNonces;
pub use replay::{Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError};
