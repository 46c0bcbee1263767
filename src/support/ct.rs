//! Constant-time equality of byte strings (thumbprints, registered certificates, tokens,
//! nonce MACs).
//!
//! Why not `subtle`, which is in the graph in every configuration (through `digest`): its slice
//! comparison passes every byte through its own optimisation barrier, so the loop cannot be
//! vectorised. Measured, it is over an order of magnitude slower than the fold below, and for
//! the per-connection token memo (`support/token_key.rs`) comparing a long token that way costs
//! about what hashing it does, the work the memo is there to save (BENCHMARKS.md has the
//! figures). The fold has no data-dependent branch either; only its result goes through a
//! barrier.

/// Whether `a == b`, in a time that depends only on the lengths (which are public: a
/// thumbprint is always 32 bytes, and a token's length is on the wire anyway). Inputs of
/// different lengths are unequal.
///
/// Every byte pair is XORed and the results ORed together, with no branch on the data; the
/// result goes through `black_box`, so the optimizer cannot turn the reduction into a comparison
/// that stops at the first difference.
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_only_when_every_byte_is() {
        assert!(eq(b"", b""));
        assert!(eq(&[7; 32], &[7; 32]));
        assert!(!eq(b"a", b""));
        assert!(!eq(b"", b"a"));
        assert!(!eq(b"abc", b"abd"));
        // A prefix is not equal: the lengths count.
        assert!(!eq(&[7; 32], &[7; 31]));
        // Differences that would cancel out if they were combined with XOR instead of OR.
        assert!(!eq(&[1, 1], &[0, 0]));
        assert!(!eq(&[0x0f, 0xf0, 0xff], &[0, 0, 0]));
        for i in 0..32 {
            let mut other = [7u8; 32];
            other[i] ^= 0x80;
            assert!(!eq(&[7; 32], &other), "byte {i}");
        }
    }
}
