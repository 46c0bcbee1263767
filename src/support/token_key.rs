//! [`TokenKey`], the key certbound's caches use for a token (never the token itself), and
//! [`KeyMemo`], a connection's memory of the last token it presented and its key.

use std::any::Any;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock, RwLock};

/// The cache key of a token: SHA-256 of the token string, with the `SipHash` of that digest
/// (keyed at random once per process) that the tables use, so that neither is computed twice.
///
/// `Debug` shows nothing of the digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenKey {
    digest: [u8; 32],
    hash: u64,
}

impl TokenKey {
    /// The key of `token`.
    pub fn of(token: &str) -> Self {
        Self::from_digest(sha256(token.as_bytes()))
    }

    fn from_digest(digest: [u8; 32]) -> Self {
        static TABLE_HASH: OnceLock<RandomState> = OnceLock::new();
        let hash = TABLE_HASH.get_or_init(RandomState::new).hash_one(digest);
        Self { digest, hash }
    }

    /// The key of `token` and, when it has a `.`, the SHA-256 of what precedes its last one (a
    /// compact JWS's signing input, which ES256, RS256 and PS256 sign), from one pass over the
    /// token: SHA-256 reads its input in order, so the token's digest continues from the
    /// signing input's. The key is [`TokenKey::of`] the token, exactly.
    ///
    /// On a request with a new token this saves the signature check its own pass over the
    /// token (~14 000 instructions for a 640-byte ES256 token, issue 26).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) fn of_jws(token: &str) -> (Self, Option<SigningDigest>) {
        use aws_lc_rs::digest::{Context, SHA256};
        let Some(dot) = token.rfind('.') else {
            return (Self::of(token), None);
        };
        let (signing_input, rest) = token.as_bytes().split_at(dot);
        let mut context = Context::new(&SHA256);
        context.update(signing_input);
        let signed = context.clone().finish();
        context.update(rest);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        (Self::from_digest(digest), Some(signed))
    }

    /// Without aws-lc-rs: [`TokenKey::of`] the token, and no digest.
    #[cfg(not(feature = "aws-lc-rs"))]
    pub(crate) fn of_jws(token: &str) -> (Self, Option<SigningDigest>) {
        (Self::of(token), None)
    }
}

/// SHA-256 of a compact JWS's signing input ([`TokenKey::of_jws`]).
#[cfg(feature = "aws-lc-rs")]
pub(crate) type SigningDigest = aws_lc_rs::digest::Digest;

/// Without aws-lc-rs, no signing digest is ever made.
#[cfg(not(feature = "aws-lc-rs"))]
pub(crate) type SigningDigest = std::convert::Infallible;

/// SHA-256 by aws-lc-rs when it is the backend: on a request with a new token this digest is
/// the largest cost after the signature verification, and aws-lc-rs's assembly takes ~15 000
/// instructions for a 640-byte token where the `sha2` crate's portable code takes ~28 000
/// (callgrind, issue 26; with SHA extensions in the CPU both use them).
#[cfg(feature = "aws-lc-rs")]
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(not(feature = "aws-lc-rs"))]
fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes).into()
}

impl TokenKey {
    /// The SHA-256 digest of the token.
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

/// The last token presented on one connection and its [`TokenKey`]: the common case, the same
/// token again and again on a keep-alive connection, then costs a comparison instead of a
/// SHA-256 (about 30 ns instead of 350 ns for a 450-byte JWT).
///
/// It holds one token (the one the connection's own client keeps presenting) for as long as the
/// connection lives, like the connection's buffers do while a request is read; it is never
/// shown (`Debug` prints nothing of it), and a token bound to a certificate is useless without
/// the certificate's private key. Under contention (HTTP/2 streams of one connection in
/// parallel) it is bypassed, never waited for.
#[derive(Default)]
pub(crate) struct KeyMemo(RwLock<Option<Arc<Held>>>);

/// The token a connection presented last, its key, and what a validator made of it.
pub(crate) struct Held {
    token: Box<str>,
    key: TokenKey,
    /// The validator's verdict on this very token, for the connection's next requests: set at
    /// most once (by the first validator that remembers something), read without a lock. Its
    /// validator checks on every use that it still holds (lifetime, keys); see
    /// [`PresentedToken::remembered`](crate::token::PresentedToken).
    verdict: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Held {
    /// The token (a well-formed b64token).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Its key.
    pub(crate) fn key(&self) -> TokenKey {
        self.key
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
    /// to be UTF-8, and its key is known).
    pub(crate) fn recall(&self, token: &[u8]) -> Option<Arc<Held>> {
        let last = self.0.try_read().ok()?;
        let held = last.as_ref()?;
        crate::support::ct::eq(held.token.as_bytes(), token).then(|| Arc::clone(held))
    }

    /// The key of `token`, from the memo when it is the last token seen, else hashed (and then
    /// remembered if it is a well-formed b64token: the layer skips the syntax check for the
    /// token held, whoever called this).
    pub(crate) fn key(&self, token: &str) -> TokenKey {
        self.key_and(token, |token| (TokenKey::of(token), ())).0
    }

    /// [`key`](Self::key), computed by `compute` (with something more, returned) when the memo
    /// does not hold `token`. `compute` must give [`TokenKey::of`] the token.
    pub(crate) fn key_and<T>(
        &self,
        token: &str,
        compute: impl FnOnce(&str) -> (TokenKey, T),
    ) -> (TokenKey, Option<T>) {
        if let Some(held) = self.recall(token.as_bytes()) {
            return (held.key, None);
        }
        let (key, more) = compute(token);
        if crate::support::encoding::is_b64token(token.as_bytes()) {
            if let Ok(mut last) = self.0.try_write() {
                *last = Some(Arc::new(Held {
                    token: Box::from(token),
                    key,
                    verdict: OnceLock::new(),
                }));
            }
        }
        (key, Some(more))
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
        assert!(memo.key("abc") == TokenKey::of("abc"));
        assert!(memo.key("abc") == TokenKey::of("abc"), "from the memo");
        assert!(memo.key("abd") == TokenKey::of("abd"), "another token");
        assert!(memo.key("ab") == TokenKey::of("ab"), "a prefix");
        assert!(memo.key("abc") == TokenKey::of("abc"), "back again");
        let held = memo.recall(b"abc").expect("held");
        assert!(held.token() == "abc" && held.key() == TokenKey::of("abc"));
        assert!(memo.recall(b"abd").is_none());
        // Only b64tokens are held: the layer skips the syntax check for the token held.
        assert!(memo.key("a,c") == TokenKey::of("a,c"));
        assert!(memo.recall(b"a,c").is_none() && memo.recall(b"abc").is_some());
    }

    #[test]
    fn one_pass_gives_the_key_and_the_signing_inputs_digest() {
        for token in ["a.b.c", "a.b.", ".", "abc", "", "h.p.s.t"] {
            let (key, signed) = TokenKey::of_jws(token);
            assert!(key == TokenKey::of(token), "{token:?}");
            #[cfg(feature = "aws-lc-rs")]
            {
                let prefix = token.rsplit_once('.').map(|(input, _)| input);
                let signed = signed.map(|d| d.as_ref().to_vec());
                let expected = prefix.map(|p| sha256(p.as_bytes()).to_vec());
                assert_eq!(signed, expected, "{token:?}");
            }
            #[cfg(not(feature = "aws-lc-rs"))]
            assert!(signed.is_none());
        }
        let memo = KeyMemo::default();
        let (key, signed) = memo.key_and("a.b.c", TokenKey::of_jws);
        assert!(key == TokenKey::of("a.b.c") && signed.is_some());
        // From the memo: nothing more computed.
        let (key, signed) = memo.key_and("a.b.c", TokenKey::of_jws);
        assert!(key == TokenKey::of("a.b.c") && signed.is_none());
    }

    #[test]
    fn a_verdict_is_remembered_once_per_token_and_forgotten_with_it() {
        let memo = KeyMemo::default();
        memo.key("abc");
        let held = memo.recall(b"abc").expect("held");
        assert!(held.verdict::<u32>().is_none());
        held.remember(|| 7u32);
        held.remember(|| 8u32);
        assert_eq!(held.verdict::<u32>(), Some(&7), "the first verdict stays");
        assert!(held.verdict::<u64>().is_none(), "another type is not it");
        let again = memo.recall(b"abc").expect("held");
        assert_eq!(again.verdict::<u32>(), Some(&7), "the next request sees it");
        memo.key("abd");
        let other = memo.recall(b"abd").expect("held");
        assert!(
            other.verdict::<u32>().is_none(),
            "a new token starts with none"
        );
        memo.key("abc");
        let back = memo.recall(b"abc").expect("held");
        assert!(
            back.verdict::<u32>().is_none(),
            "nor does a token seen before it"
        );
    }
}
