//! Constant-time equality of byte strings (thumbprints, registered certificates, tokens,
//! nonce MACs), by `subtle`: the crate RustCrypto's `hmac` (in the graph in every feature
//! configuration, through `digest`) already compares MACs with, so certbound keeps no
//! hand-written constant-time code of its own.

use subtle::ConstantTimeEq as _;

/// Whether `a == b`, in a time that depends only on the lengths (which are public: a
/// thumbprint is always 32 bytes, and a token's length is on the wire anyway). Inputs of
/// different lengths are unequal.
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
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
