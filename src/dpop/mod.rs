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
mod replay;

pub use config::Dpop;
pub(crate) use config::replay_outcome;
pub use key::{DpopKey, ProofBuilder};
pub use memory::MemoryReplayStore;
pub use nonce::DpopNonces;
pub use proof::VerifiedProof;
pub use replay::{Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError};
