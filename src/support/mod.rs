//! Crate-private machinery shared by the feature modules, so that none of them imports another
//! to borrow a helper: constant-time comparison, encodings, SHA-256, the crypto backend and JOSE algorithm names, the bounded
//! result cache, the one single-flight and the clock.

pub(crate) mod cache;
pub(crate) mod crypto;
pub(crate) mod ct;
pub(crate) mod encoding;
pub(crate) mod jose;
pub(crate) mod sha256;
pub(crate) mod single_flight;
pub(crate) mod slot;
pub(crate) mod time;
pub(crate) mod token_key;
