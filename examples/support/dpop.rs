//! The DPoP flags the example resource servers share (`--dpop`, `--dpop-nonce`,
//! `--dpop-nonce-key-file`, `--dpop-replay-redis`, `--public-url`): checked for consistency with
//! the other flags, then turned into [`Dpop`] settings before the server takes its port.
//!
//! Included by `resource_server.rs` and `tonic_server.rs` next to `cli.rs` (as `mod cli`).

use std::path::PathBuf;

use certbound::dpop::{Dpop, DpopNonces};

use crate::cli::Flags;

/// The DPoP flags that take a value, for [`cli::parse`](crate::cli::parse).
pub(crate) const VALUE_FLAGS: [&str; 3] =
    ["dpop-nonce-key-file", "dpop-replay-redis", "public-url"];
/// The DPoP switches, for [`cli::parse`](crate::cli::parse).
pub(crate) const SWITCHES: [&str; 2] = ["dpop", "dpop-nonce"];

/// Where the nonce secret comes from.
#[derive(Debug)]
enum NonceSecret {
    /// Random, per process: nonces from one instance are refused by another.
    Random,
    /// A file every instance reads.
    File(PathBuf),
}

/// The DPoP flags, consistent with each other.
#[derive(Debug)]
pub(crate) struct DpopFlags {
    /// `Some` with `--dpop-nonce`.
    nonce: Option<NonceSecret>,
    /// `--dpop-replay-redis`.
    #[cfg(feature = "redis")]
    replay_redis: Option<String>,
    /// `--public-url`.
    public_url: Option<String>,
}

impl DpopFlags {
    /// The DPoP flags among `flags`: `None` without `--dpop`. `Err` (a one-line message) for a
    /// flag that only applies with another one that is missing, and for `--dpop-replay-redis` in
    /// a build without the `redis` feature. `public_url_alone`: `--public-url` has a meaning
    /// without `--dpop` too (the resource server's RFC 9728 resource identifier).
    pub(crate) fn from_flags(
        flags: &Flags,
        public_url_alone: bool,
    ) -> Result<Option<DpopFlags>, String> {
        let dpop = flags.switch("dpop");
        let nonce = flags.switch("dpop-nonce");
        let nonce_key_file = flags.once("dpop-nonce-key-file")?;
        let replay_redis = flags.once("dpop-replay-redis")?;
        let public_url = flags.once("public-url")?;
        if !dpop {
            for (given, name) in [
                (nonce, "--dpop-nonce"),
                (replay_redis.is_some(), "--dpop-replay-redis"),
                (public_url.is_some() && !public_url_alone, "--public-url"),
            ] {
                if given {
                    return Err(format!("{name} only applies with --dpop"));
                }
            }
        }
        if nonce_key_file.is_some() && !nonce {
            return Err("--dpop-nonce-key-file only applies with --dpop-nonce".into());
        }
        #[cfg(not(feature = "redis"))]
        if replay_redis.is_some() {
            return Err(
                "--dpop-replay-redis: this build has no Redis support; build the example with `--features redis`"
                    .into(),
            );
        }
        if !dpop {
            return Ok(None);
        }
        let nonce = nonce.then(|| match nonce_key_file {
            Some(path) => NonceSecret::File(path.into()),
            None => NonceSecret::Random,
        });
        Ok(Some(DpopFlags {
            nonce,
            #[cfg(feature = "redis")]
            replay_redis,
            public_url,
        }))
    }

    /// The settings: the public URL parsed, the nonce secret read (a file shorter than 32 bytes
    /// is refused), the Redis store set up (it connects on the first proof, so a Redis that is
    /// down now is no start-up error). With `--dpop-nonce-key-file`, also the nonces whose file
    /// is to be watched (`--reload-interval`).
    pub(crate) async fn dpop(&self) -> Result<(Dpop, Option<DpopNonces>), String> {
        let mut key_file = None;
        let mut dpop = Dpop::new();
        if let Some(url) = &self.public_url {
            dpop = dpop
                .public_url(url)
                .map_err(|e| format!("--public-url: {e}"))?;
        }
        match &self.nonce {
            None => {}
            Some(NonceSecret::Random) => {
                let nonces = DpopNonces::random().map_err(|e| format!("--dpop-nonce: {e}"))?;
                dpop = dpop.require_nonce(nonces);
            }
            Some(NonceSecret::File(path)) => {
                let nonces = DpopNonces::from_file(path)
                    .map_err(|e| format!("--dpop-nonce-key-file: {e}"))?;
                // Clones share the keys: a reload through this one rotates the layer's.
                key_file = Some(nonces.clone());
                dpop = dpop.require_nonce(nonces);
            }
        }
        #[cfg(feature = "redis")]
        if let Some(url) = &self.replay_redis {
            let store = certbound::dpop::RedisReplayStore::connect(url)
                .await
                .map_err(|e| format!("--dpop-replay-redis: {e}"))?;
            dpop = dpop.replay_store(store);
        }
        Ok((dpop, key_file))
    }
}
