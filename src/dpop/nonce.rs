//! PLACEHOLDER (being written): stateless server nonces.
#![allow(missing_docs, dead_code, unused_variables)]
use std::path::Path;
use std::time::Duration;

use crate::error::ConfigError;

#[derive(Clone)]
pub struct DpopNonces(());

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopNonces")
    }
}

/// What a nonce presented in a proof is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Issued in the current time step.
    Current,
    /// Issued in the previous step: accepted, and the response carries a fresh nonce.
    Previous,
    /// Forged, malformed, or older than the previous step.
    Invalid,
}

impl DpopNonces {
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn random() -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn also_accept(self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn step(self, step: Duration) -> Self {
        todo!()
    }
    pub(crate) fn issue(&self, now_unix: u64) -> String {
        todo!()
    }
    pub(crate) fn check(&self, nonce: &str, now_unix: u64) -> NonceCheck {
        todo!()
    }
}
