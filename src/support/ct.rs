//! Constant-time equality of byte strings (thumbprints, registered certificates, tokens).

/// Whether `a == b`, in a time that depends only on the lengths (which are public: a
/// thumbprint is always 32 bytes, and a token's length is on the wire anyway).
///
/// Every byte pair is XORed and the results ORed together, with no branch on the data; the
/// result goes through `black_box`, so the optimizer cannot turn the reduction into a comparison
/// that stops at the first difference. For 32 bytes this is a few vector instructions.
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
        assert!(!eq(b"abc", b"abd"));
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
