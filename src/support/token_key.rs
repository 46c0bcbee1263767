//! [`TokenKey`], the key certbound's caches use for a token (never the token itself), and
//! [`KeyMemo`], a connection's memory of the last token it presented and its keys.

use std::any::Any;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock, RwLock};

use super::sha256::sha256;

/// The cache key of a token, never the token itself. Two derivations, never equal to each
/// other (a key says which it is, and keys of different derivations differ):
///
/// - [`TokenKey::of`]: SHA-256 of the token string. What [`PresentedToken::key`] gives, what
///   the introspection cache uses, and what a DPoP proof's `ath` is compared with.
/// - the JWT caches' own (crate-internal): keyed BLAKE3 of the whole token string, under a key
///   secret to the process (see `TokenKey::of_jwt`).
///
/// Either comes with the hash the tables use (keyed at random once per process), so that
/// neither is computed twice. `Debug` shows nothing of the key.
///
/// [`PresentedToken::key`]: crate::token::PresentedToken::key
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenKey {
    /// SHA-256 of the token, or its keyed BLAKE3.
    digest: [u8; 32],
    hash: u64,
    derivation: Derivation,
}

/// How a [`TokenKey`] was derived from its token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Derivation {
    /// SHA-256 of the token ([`TokenKey::of`]).
    Sha256 = 0,
    /// BLAKE3 of the token keyed by the process's secret key ([`TokenKey::of_jwt`]).
    Jwt = 1,
}

impl TokenKey {
    /// The key of `token`: its SHA-256.
    pub fn of(token: &str) -> Self {
        let digest = sha256(token.as_bytes());
        static TABLE_HASH: OnceLock<RandomState> = OnceLock::new();
        let hash = TABLE_HASH.get_or_init(RandomState::new).hash_one(digest);
        Self {
            digest,
            hash,
            derivation: Derivation::Sha256,
        }
    }

    /// The key of `token` in the caches of validated JWTs (a validator's own, the one
    /// [`Issuers`](crate::Issuers) shares): BLAKE3 in its keyed mode (a MAC, and so a
    /// pseudo-random function of its key) over the whole token string, under a 256-bit key
    /// drawn once per process and never shown.
    ///
    /// Why not SHA-256, and why this is as good a key (issue 26): on a request with a new token
    /// the key is computed besides the signature verification, and SHA-256 of a 640-byte token
    /// is ~21 000 instructions where keyed BLAKE3 of it is ~5 000 (callgrind; BENCHMARKS.md).
    /// What a cache key must guarantee is that two different tokens never share an entry, also
    /// for an attacker who knows or alters any part of a valid token, its signature included.
    /// With the key secret and its outputs never leaving the process, a forged token shares a
    /// key with a given one only by finding a collision of a keyed cryptographic hash it cannot
    /// evaluate; no public collision resistance is needed, as it is for [`TokenKey::of`], whose
    /// SHA-256 the application and DPoP's `ath` see. The whole token is hashed, not only its
    /// signing input: a token with the same header and payload and another signature is
    /// another key, verified for itself. (SipHash-2-4 with its 128-bit output was ~2 000
    /// instructions cheaper still; that output mode has had far less analysis, and a security
    /// crate's cache key is no place to save it.)
    pub(crate) fn of_jwt(token: &str) -> Self {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(|| {
            // RandomState's keys come from the operating system's random source; four of its
            // outputs make the 256-bit key (at least 128 bits of it secret entropy).
            let seed = RandomState::new();
            let mut key = [0u8; 32];
            for (i, part) in key.chunks_exact_mut(8).enumerate() {
                part.copy_from_slice(&seed.hash_one(i).to_le_bytes());
            }
            key
        });
        let digest = *blake3::keyed_hash(key, token.as_bytes()).as_bytes();
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&digest[..8]);
        Self {
            digest,
            // Itself the output of a keyed PRF: a fine table hash as it is.
            hash: u64::from_le_bytes(hash),
            derivation: Derivation::Jwt,
        }
    }

    /// The key of `token` derived as `derivation` says.
    pub(crate) fn derive(derivation: Derivation, token: &str) -> Self {
        match derivation {
            Derivation::Sha256 => Self::of(token),
            Derivation::Jwt => Self::of_jwt(token),
        }
    }

    /// How this key was derived.
    pub(crate) const fn derivation(&self) -> Derivation {
        self.derivation
    }
}

impl TokenKey {
    /// The SHA-256 digest of the token (a key made by [`TokenKey::of`], as every key the crate
    /// hands out is).
    pub const fn as_sha256(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The last token presented on one connection and its [`TokenKey`]s: the common case, the same
/// token again and again on a keep-alive connection, then costs a comparison instead of a
/// hash.
///
/// It holds one token (the one the connection's own client keeps presenting) for as long as the
/// connection lives, like the connection's buffers do while a request is read; it is never
/// shown (`Debug` prints nothing of it), and a token bound to a certificate is useless without
/// the certificate's private key. Under contention (HTTP/2 streams of one connection in
/// parallel) it is bypassed, never waited for.
#[derive(Default)]
pub(crate) struct KeyMemo(RwLock<Option<Arc<Held>>>);

/// The token a connection presented last, its keys, and what a validator made of it.
pub(crate) struct Held {
    /// A `String`, so that the next token of the connection can take its place in the same
    /// allocation ([`KeyMemo::key`]).
    token: String,
    /// Its key of each [`Derivation`], made when first asked for.
    keys: [OnceLock<TokenKey>; 2],
    /// The validator's verdict on this very token, for the connection's next requests: set at
    /// most once (by the first validator that remembers something), read without a lock. Its
    /// validator checks on every use that it still holds (lifetime, keys); see
    /// [`PresentedToken::remembered`](crate::token::PresentedToken).
    verdict: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Held {
    fn new(token: &str, key: TokenKey) -> Self {
        let held = Self {
            token: String::from(token),
            keys: [OnceLock::new(), OnceLock::new()],
            verdict: OnceLock::new(),
        };
        let _ = held.keys[key.derivation as usize].set(key);
        held
    }

    /// Becomes what [`Held::new`] would make of `token`, in the allocations it has: its token's
    /// buffer is reused, its keys and verdict forgotten.
    fn reset(&mut self, token: &str, key: TokenKey) {
        self.token.clear();
        self.token.push_str(token);
        self.keys = [OnceLock::new(), OnceLock::new()];
        let _ = self.keys[key.derivation as usize].set(key);
        self.verdict = OnceLock::new();
    }

    /// The token (a well-formed b64token).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Its key as `derivation` says, made now if it is the first time it is asked for.
    pub(crate) fn key(&self, derivation: Derivation) -> TokenKey {
        *self.keys[derivation as usize].get_or_init(|| TokenKey::derive(derivation, &self.token))
    }

    /// What a validator remembered of the token, if it was a `T`.
    pub(crate) fn verdict<T: Any>(&self) -> Option<&T> {
        self.verdict.get()?.downcast_ref()
    }

    /// Remembers `make()` for the token, unless something is remembered already.
    pub(crate) fn remember<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) {
        if self.verdict.get().is_none() {
            // Another request of the connection may have been first: then its verdict stays.
            let _ = self.verdict.set(Box::new(make()));
        }
    }
}

impl KeyMemo {
    /// The token held, if `token` is that token (so it is a well-formed b64token, already known
    /// to be UTF-8, and its keys are known or made from it).
    pub(crate) fn recall(&self, token: &[u8]) -> Option<Arc<Held>> {
        let last = self.0.try_read().ok()?;
        let held = last.as_ref()?;
        crate::support::ct::eq(held.token.as_bytes(), token).then(|| Arc::clone(held))
    }

    /// The key of `token` as `derivation` says: from the memo when it is the last token seen,
    /// else made now and remembered with the token.
    ///
    /// `token` must be a well-formed b64token: the layer skips its syntax check for the token
    /// held. It is not checked again here (~1 200 instructions for a 600-byte token, issue
    /// 26): only the layer hands a connection's memo to a [`PresentedToken`]
    /// (`remembered_by`, which asserts it in debug builds), with a token it has just checked.
    ///
    /// [`PresentedToken`]: crate::token::PresentedToken
    pub(crate) fn key(&self, token: &str, derivation: Derivation) -> TokenKey {
        if let Some(held) = self.recall(token.as_bytes()) {
            return held.key(derivation);
        }
        let key = TokenKey::derive(derivation, token);
        if let Ok(mut last) = self.0.try_write() {
            // A connection that presents a new token on each request (a client that fetches one
            // per call, or a token-spraying attacker) reuses the entry it no longer shares with
            // any request: two allocations and two frees fewer per new token (issue 26).
            match last.as_mut().and_then(Arc::get_mut) {
                Some(held) => held.reset(token, key),
                None => *last = Some(Arc::new(Held::new(token, key))),
            }
        }
        key
    }
}

impl fmt::Debug for KeyMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMemo(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_gives_the_sha256_key_and_follows_the_token() {
        let memo = KeyMemo::default();
        let key = |token| memo.key(token, Derivation::Sha256);
        assert!(key("abc") == TokenKey::of("abc"));
        assert!(key("abc") == TokenKey::of("abc"), "from the memo");
        assert!(key("abd") == TokenKey::of("abd"), "another token");
        assert!(key("ab") == TokenKey::of("ab"), "a prefix");
        assert!(key("abc") == TokenKey::of("abc"), "back again");
        let held = memo.recall(b"abc").expect("held");
        assert!(held.token() == "abc" && held.key(Derivation::Sha256) == TokenKey::of("abc"));
        assert!(memo.recall(b"abd").is_none());
    }

    #[test]
    fn the_memo_keeps_each_derivation_apart_for_the_same_token() {
        let memo = KeyMemo::default();
        let jwt = memo.key("h.p.s", Derivation::Jwt);
        assert!(jwt == TokenKey::of_jwt("h.p.s"));
        // The token held, asked for the other derivation: that one, never the first.
        let sha = memo.key("h.p.s", Derivation::Sha256);
        assert!(sha == TokenKey::of("h.p.s") && sha != jwt);
        let held = memo.recall(b"h.p.s").expect("held");
        assert!(held.key(Derivation::Jwt) == jwt && held.key(Derivation::Sha256) == sha);
        assert_eq!(sha.derivation(), Derivation::Sha256);
        assert_eq!(jwt.derivation(), Derivation::Jwt);
    }

    #[test]
    fn the_jwt_key_covers_the_whole_token_and_never_equals_a_sha256_key() {
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        let key = TokenKey::of_jwt(token);
        assert!(key == TokenKey::of_jwt(token), "one key per process");
        let (input, _) = token.rsplit_once('.').expect("three segments");
        // Another signature, one character more or less, another header or payload: other keys.
        for other in [
            format!("{input}.c2lnbmF0dXJm"),
            format!("{input}.c2lnbmF0dXJ"),
            format!("{input}.c2lnbmF0dXJlA"),
            format!("{input}."),
            input.to_owned(),
            token.replacen("eyJzdWIiOiJhIn0", "eyJzdWIiOiJiIn0", 1),
            token.replacen('.', "", 1),
        ] {
            assert!(TokenKey::of_jwt(&other) != key, "{other}");
        }
        // The SHA-256 derivation of the same token (or of its signing input) is another key,
        // whatever the bytes: a key says how it was made.
        assert!(TokenKey::of(token) != key && TokenKey::of(input) != TokenKey::of_jwt(input));
        assert!(TokenKey::derive(Derivation::Jwt, token) == key);
        assert!(TokenKey::derive(Derivation::Sha256, token) == TokenKey::of(token));
    }

    #[test]
    fn the_jwt_key_is_keyed_blake3_of_the_whole_token() {
        // The reference test vectors' keyed_hash of the empty input under the key "whats the
        // Elvish word for friend", through the same crate and call as `of_jwt`, which keys it
        // at random instead.
        let key: &[u8; 32] = b"whats the Elvish word for friend";
        let out = blake3::keyed_hash(key, b"");
        assert_eq!(
            out.to_hex().as_str(),
            "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"
        );
    }

    #[test]
    fn a_verdict_is_remembered_once_per_token_and_forgotten_with_it() {
        let memo = KeyMemo::default();
        let key = |token| memo.key(token, Derivation::Sha256);
        key("abc");
        let held = memo.recall(b"abc").expect("held");
        assert!(held.verdict::<u32>().is_none());
        held.remember(|| 7u32);
        held.remember(|| 8u32);
        assert_eq!(held.verdict::<u32>(), Some(&7), "the first verdict stays");
        assert!(held.verdict::<u64>().is_none(), "another type is not it");
        let again = memo.recall(b"abc").expect("held");
        assert_eq!(again.verdict::<u32>(), Some(&7), "the next request sees it");
        key("abd");
        let other = memo.recall(b"abd").expect("held");
        assert!(
            other.verdict::<u32>().is_none(),
            "a new token starts with none"
        );
        key("abc");
        let back = memo.recall(b"abc").expect("held");
        assert!(
            back.verdict::<u32>().is_none(),
            "nor does a token seen before it"
        );
    }

    #[test]
    fn an_entry_no_request_shares_takes_the_next_token_and_forgets_the_last_ones_keys_and_verdict()
    {
        let memo = KeyMemo::default();
        memo.key("h.p.s", Derivation::Jwt);
        memo.key("h.p.s", Derivation::Sha256);
        memo.recall(b"h.p.s").expect("held").remember(|| 7u32);
        // No `Arc` of the entry is left: the next token reuses it.
        let jwt = memo.key("h.p.t", Derivation::Jwt);
        assert!(jwt == TokenKey::of_jwt("h.p.t"));
        assert!(memo.recall(b"h.p.s").is_none(), "the last token is gone");
        let held = memo.recall(b"h.p.t").expect("held");
        assert!(held.token() == "h.p.t");
        assert!(
            held.verdict::<u32>().is_none(),
            "its verdict is gone with it"
        );
        assert!(
            held.key(Derivation::Sha256) == TokenKey::of("h.p.t"),
            "a key made afresh"
        );
        assert!(held.key(Derivation::Jwt) == jwt);
        drop(held);
        // A shorter and a longer token in the same entry.
        for token in ["a", "a much longer token than the ones before.x.y"] {
            assert!(memo.key(token, Derivation::Sha256) == TokenKey::of(token));
            let held = memo.recall(token.as_bytes()).expect("held");
            assert!(held.token() == token && held.key(Derivation::Jwt) == TokenKey::of_jwt(token));
        }
    }
}
