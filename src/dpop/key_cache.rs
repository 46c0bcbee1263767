//! [`ProofKeyCache`]: the process's memory of recent DPoP proof keys, shared by the
//! connections one [`Dpop`](super::Dpop) serves, and [`Memos`], the two memories a proof's
//! check consults.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, Weighter};

use super::key_memo::{ProofKeyMemo, Remembered};
use crate::support::crypto::JoseProvider;

/// Default bound of [`ProofKeyCache`]: 4 096 keys, about 6 MiB (see [`MIN_WEIGHT`]).
pub(crate) const DEFAULT_MAX_KEYS: usize = 4096;

/// What an entry is charged at least, in bytes: an ES256 or EdDSA key's entry fits in it, so the
/// cache holds its bound of such keys. Measured (issue 26, BENCHMARKS.md; RSS of 20 000 keys
/// remembered, release build, aws-lc-rs): 1 189 bytes an ES256 entry (its header's text, 220
/// characters; the members' text; the `Remembered`, 240 bytes; the point as aws-lc-rs holds it;
/// the table's slot and its ghosts) and 829 an EdDSA entry (158 characters). An RSA key's entry
/// is charged more ([`entry_bytes`]), so fewer of them fit: the byte bound,
/// `max_keys × MIN_WEIGHT`, holds whatever the keys.
pub(crate) const MIN_WEIGHT: u64 = 1536;

/// Bytes an entry is charged: a fixed part (the `Remembered`, an EC or Ed25519 key as aws-lc-rs
/// or jsonwebtoken holds it, the table's slot) and the texts it holds; for an RSA key, three
/// times its members' text more (the modulus as the backend holds it, with its Montgomery
/// constants: an estimate, not measured).
fn entry_bytes(held: &Remembered) -> u64 {
    use Algorithm as A;
    let rsa = matches!(
        held.algorithm(),
        A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
    );
    let key = if rsa {
        held.text_len().saturating_mul(3)
    } else {
        0
    };
    let texts = held
        .header()
        .len()
        .saturating_add(held.text_len())
        .saturating_add(key);
    u64::try_from(texts)
        .unwrap_or(u64::MAX)
        .saturating_add(1024)
        .max(MIN_WEIGHT)
}

#[derive(Clone, Copy)]
struct ByBytes;

impl Weighter<Arc<str>, Arc<Remembered>> for ByBytes {
    fn weight(&self, _key: &Arc<str>, held: &Arc<Remembered>) -> u64 {
        entry_bytes(held)
    }
}

type Table = Cache<Arc<str>, Arc<Remembered>, ByBytes, RandomState>;

/// Recent proof keys by their proof's header text, for proofs that arrive on connections other
/// than the one that carried the key's last proof: many clients' proofs over few connections
/// behind a reverse proxy (certbound-authz behind nginx) or a service mesh's sidecar, where the
/// connection's [`ProofKeyMemo`] misses on almost every proof (issue 26).
///
/// Like the connection's memo, it is a memo of a pure function of public data: a header's
/// base64url text gives the header's checks' outcome (`typ`, no `crit`, the `alg`, a public
/// `jwk` of the algorithm's type), the parsed key and its RFC 7638 thumbprint, and nothing else
/// does. A hit needs the header's text equal byte for byte, and the rules' part is checked
/// again on every hit: the remembered `alg` still allowed, the key in the form the rules'
/// verifying backend takes. A hit never skips the signature: every proof's signature is
/// verified with the key, and every claim checked. Only the key of a proof that passed every
/// check is remembered, never one of a proof that failed.
///
/// Bounded by entries and bytes ([`max_cached_proof_keys`](super::Dpop::max_cached_proof_keys)):
/// a client minting a new key per proof only churns it (evicts others' keys, which are then
/// derived again), never grows it. The table hashes with std's `RandomState` (SipHash, keyed at
/// random per process), so crafted headers cannot pile up in one bucket. quick_cache's CLOCK-Pro
/// eviction keeps keys in use over one-off keys.
pub(crate) struct ProofKeyCache {
    table: Table,
}

impl fmt::Debug for ProofKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofKeyCache")
            .field("keys", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl ProofKeyCache {
    /// A cache of at most `max_keys` keys (at least one), of at most `max_keys × MIN_WEIGHT`
    /// bytes by their charges.
    pub(crate) fn new(max_keys: usize) -> Self {
        let max_keys = u64::try_from(max_keys.max(1)).unwrap_or(u64::MAX);
        // Shards of at least 256 keys each, at most 16: requests on many cores rarely meet on
        // one lock, and each shard's share of the bound holds any key's entry.
        let mut shards = 16u64;
        while shards > 1 && max_keys / shards < 256 {
            shards /= 2;
        }
        let per_shard = MIN_WEIGHT.saturating_mul(max_keys / shards);
        let weight = per_shard.saturating_mul(shards);
        let items = usize::try_from(max_keys).unwrap_or(usize::MAX);
        let options = OptionsBuilder::new()
            .shards(usize::try_from(shards).unwrap_or(1))
            .weight_capacity(weight)
            .estimated_items_capacity(items)
            .build();
        let table = match options {
            Ok(options) => Cache::with_options(
                options,
                ByBytes,
                RandomState::new(),
                DefaultLifecycle::default(),
            ),
            // Unreachable: shards, weight and items are all set above. Never panic on
            // configuration: a plain cache with the same bounds does.
            Err(_) => Cache::with(
                items,
                weight,
                ByBytes,
                RandomState::new(),
                DefaultLifecycle::default(),
            ),
        };
        Self { table }
    }

    /// What was derived from the header whose base64url text is `header`, if it is held and
    /// its `alg` is still one of `algorithms` and its key the form `provider` verifies with
    /// (the conditions of [`recall_header`](super::key_memo::recall_header)).
    pub(crate) fn recall(
        &self,
        header: &str,
        algorithms: &[Algorithm],
        provider: Option<JoseProvider>,
    ) -> Option<Arc<Remembered>> {
        self.table
            .get(header)
            .filter(|held| held.answers(header, algorithms, provider))
    }

    /// Remembers `held`, the key of a proof that passed every check, by its header's text.
    pub(crate) fn remember(&self, held: Arc<Remembered>) {
        self.table.insert(Arc::clone(held.header()), held);
    }

    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// The memories of proof keys a proof's check consults: the connection's (first: a hit costs no
/// hashing) and the process's, each when there is one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memos<'a> {
    pub(crate) connection: Option<&'a ProofKeyMemo>,
    pub(crate) shared: Option<&'a ProofKeyCache>,
}

impl<'a> Memos<'a> {
    /// The connection's memo alone.
    #[cfg(test)]
    pub(crate) fn connection(memo: &'a ProofKeyMemo) -> Self {
        Self {
            connection: Some(memo),
            shared: None,
        }
    }

    /// What was derived from the header whose text is `header`, if the connection's memo or
    /// else the process's holds it for these rules; `true` when it came from the process's.
    pub(crate) fn recall_header(
        &self,
        header: &str,
        algorithms: &[Algorithm],
        provider: Option<JoseProvider>,
    ) -> Option<(Arc<Remembered>, bool)> {
        if let Some(memo) = self.connection {
            let held = super::key_memo::recall_header(memo, header, algorithms, provider);
            if let Some(held) = held {
                return Some((held, false));
            }
        }
        let held = self.shared?.recall(header, algorithms, provider)?;
        Some((held, true))
    }

    /// Remembers `held`, the key of a proof that passed every check: in the connection's memo,
    /// and in the process's unless it came from there (`shared`).
    pub(crate) fn remember(&self, held: Arc<Remembered>, shared: bool) {
        if let Some(memo) = self.connection {
            memo.remember(Arc::clone(&held));
        }
        if !shared {
            if let Some(cache) = self.shared {
                cache.remember(held);
            }
        }
    }

    /// Whether either memory is there.
    pub(crate) fn any(&self) -> bool {
        self.connection.is_some() || self.shared.is_some()
    }
}
