//! [`ProofKeyMemo`]: a connection's memory of the key its last DPoP proof was signed with.

use std::sync::Arc;

use jsonwebtoken::Algorithm;

use super::proof_key::{Members, ProofKey};
use crate::support::crypto::JoseProvider;
use crate::support::slot::Slot;
use crate::thumbprint::JwkThumbprint;

/// The key of the last DPoP proof that verified on a connection, and what was derived from it:
/// the key parsed for verification and its RFC 7638 thumbprint. A client signs all its proofs
/// with one key (that is DPoP's point), so its next proof on the connection neither parses the
/// key nor hashes its thumbprint again (issue 26: ~27 000 instructions of an ES256 proof).
///
/// It is a memo of a pure function of public data: the proof's `jwk` members (`kty`, `crv`,
/// `x`, `y`, `n`, `e`, exactly as the header decoded them) and its `alg` give the parsed key
/// and the thumbprint, and nothing else does. A hit needs byte-identical members, the same
/// `alg` and the same verifying backend, so it gives exactly what recomputing would; the
/// proof's signature is still verified with that key, on every proof. Only a key whose proof
/// passed every check is remembered, never one of a proof that failed.
///
/// A client's proofs usually carry the very same header, byte for byte (`typ`, `alg`, `jwk`):
/// the header's base64url text is remembered too, and a proof whose header is that text is not
/// decoded at all ([`recall_header`]). Everything the header's checks decide (`typ`, no
/// `crit`, the `alg`, the `jwk`'s members and that none is private) is a function of that text;
/// what depends on the layer's rules is checked again on every hit (the `alg` in the rules'
/// allow-list, the verifying backend), so a connection served by two layers with other rules
/// gets each layer's answer.
///
/// HTTP/2 multiplexes a connection's requests: no lock is held across a verification (a hit
/// clones the [`Arc`]), and a request that finds the memo busy, or loses a race to replace it,
/// recomputes and remembers nothing.
///
/// The connection holds it as a [`Slot`] (the connection's module does not name this one), which
/// holds a [`Remembered`].
pub(crate) type ProofKeyMemo = Slot;

/// A proof key and what was derived from it.
pub(crate) struct Remembered {
    /// The proof's header, base64url, as the proof carried it (shared with the process's
    /// [`ProofKeyCache`](super::key_cache::ProofKeyCache), whose key it is).
    header: Arc<str>,
    algorithm: Algorithm,
    /// The members' text, one after another; `lens` says where each ends (`None`: absent).
    text: String,
    lens: [Option<usize>; 6],
    key: ProofKey,
    jkt: JwkThumbprint,
}

impl Remembered {
    /// `key` and `jkt`, derived from `members` for `algorithm`; `header` is the base64url text
    /// of the header they were read from, which passed every check.
    pub(crate) fn new(
        header: &str,
        members: &Members<'_>,
        algorithm: Algorithm,
        key: ProofKey,
        jkt: JwkThumbprint,
    ) -> Self {
        let all = members.all();
        let mut text = String::with_capacity(all.iter().flatten().map(|m| m.len()).sum());
        let lens = all.map(|member| {
            member.map(|m| {
                text.push_str(m);
                m.len()
            })
        });
        Self {
            header: header.into(),
            algorithm,
            text,
            lens,
            key,
            jkt,
        }
    }

    /// Whether this was derived from exactly `members` and `algorithm`, in the form `provider`
    /// verifies with.
    fn is_of(
        &self,
        members: &Members<'_>,
        algorithm: Algorithm,
        provider: Option<JoseProvider>,
    ) -> bool {
        if self.algorithm != algorithm || !self.key.fits(provider) {
            return false;
        }
        let mut rest = self.text.as_str();
        for (member, len) in members.all().into_iter().zip(self.lens) {
            match (member, len) {
                (None, None) => {}
                (Some(member), Some(len)) => {
                    // `len` is a member's length as pushed, so both are there; `get` all the
                    // same, never a panic.
                    let (Some(held), Some(after)) = (rest.get(..len), rest.get(len..)) else {
                        return false;
                    };
                    if held != member {
                        return false;
                    }
                    rest = after;
                }
                _ => return false,
            }
        }
        true
    }

    /// Whether this was derived from the header whose base64url text is `header`, and its
    /// `alg` is still one of `algorithms` and its key the form `provider` verifies with. The
    /// header's other checks passed when it was remembered, and they depend on nothing but its
    /// text.
    pub(crate) fn answers(
        &self,
        header: &str,
        algorithms: &[Algorithm],
        provider: Option<JoseProvider>,
    ) -> bool {
        *self.header == *header && algorithms.contains(&self.algorithm) && self.key.fits(provider)
    }

    /// The header's base64url text.
    pub(crate) fn header(&self) -> &Arc<str> {
        &self.header
    }

    /// Bytes of the members' text held.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The algorithm the key was derived for (the remembered header's `alg`).
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The parsed key.
    pub(crate) fn key(&self) -> &ProofKey {
        &self.key
    }

    /// The key's RFC 7638 thumbprint.
    pub(crate) fn jkt(&self) -> JwkThumbprint {
        self.jkt
    }
}

/// What was derived from `members` for `algorithm`, if they are the key `memo` remembers.
pub(crate) fn recall(
    memo: &ProofKeyMemo,
    members: &Members<'_>,
    algorithm: Algorithm,
    provider: Option<JoseProvider>,
) -> Option<Arc<Remembered>> {
    memo.recall(|held: &Remembered| held.is_of(members, algorithm, provider))
}

/// What was derived from the header whose base64url text is `header`, if it is the header of
/// the proof `memo` remembers, and its `alg` is still one of `algorithms` and its key the form
/// `provider` verifies with. The header's other checks passed when it was remembered, and
/// they depend on nothing but its text ([`Remembered::answers`]).
pub(crate) fn recall_header(
    memo: &ProofKeyMemo,
    header: &str,
    algorithms: &[Algorithm],
    provider: Option<JoseProvider>,
) -> Option<Arc<Remembered>> {
    memo.recall(|held: &Remembered| held.answers(header, algorithms, provider))
}
