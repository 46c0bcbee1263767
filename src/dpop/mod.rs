//! DPoP (RFC 9449): tokens bound to a key the client proves it holds on every request.
//!
//! (Module docs are completed with the layer integration.)

mod config;
mod htu;
mod jwk;
mod key;
mod memory;
mod nonce;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;

pub use config::Dpop;
pub(crate) use config::replay_outcome;
#[cfg(feature = "redis")]
pub use self::redis::RedisReplayStore;
pub use key::{DpopKey, ProofBuilder};
pub use memory::MemoryReplayStore;
pub use nonce::DpopNonces;
pub use proof::VerifiedProof;
pub use replay::{Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError};
