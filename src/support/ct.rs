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
/// that stops at the first difference. From 64 bytes on (tokens), the bytes are folded 64 at a
/// time into 64 lanes (four SSE2 registers), and the remainder as the last 64 bytes again
/// (overlapping, so every byte is compared at least once and the loop has no byte-wise tail):
/// ~190 instructions for the load test's ~600-byte token where the plain fold, unrolled 32
/// bytes at a time with a 4-byte and a 1-byte tail, took ~230 (callgrind, in the memo's
/// comparison; BENCHMARKS.md, issue 26). Inlined, so that a
/// fixed length (a 32-byte thumbprint) folds in a few SSE2 instructions with no call.
#[inline]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = if a.len() < WIDE {
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))
    } else {
        wide(a, b)
    };
    std::hint::black_box(diff) == 0
}

/// The fold of [`eq`] for equal lengths of at least [`WIDE`] bytes. Out of line: inlined into
/// its caller, the lanes went through the stack (~110 more instructions for a 600-byte token).
#[inline(never)]
fn wide(a: &[u8], b: &[u8]) -> u8 {
    let mut lanes = [0u8; WIDE];
    let mut fold = |x: &[u8; WIDE], y: &[u8; WIDE]| {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane |= x ^ y;
        }
    };
    for (x, y) in a.as_chunks::<WIDE>().0.iter().zip(b.as_chunks::<WIDE>().0) {
        fold(x, y);
    }
    // The length (public) decides this branch, never the data.
    if !a.len().is_multiple_of(WIDE) {
        if let (Some(x), Some(y)) = (a.last_chunk::<WIDE>(), b.last_chunk::<WIDE>()) {
            fold(x, y);
        }
    }
    lanes.iter().fold(0, |acc, lane| acc | lane)
}

/// How many bytes [`eq`] folds at a time from that length on.
const WIDE: usize = 64;

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

    #[test]
    fn long_inputs_differing_in_any_one_byte_are_unequal_whatever_the_length() {
        // Below, at and above the 64-byte fold, with and without a remainder.
        for len in [1, 63, 64, 65, 100, 127, 128, 129, 600, 641] {
            let a: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            assert!(eq(&a, &a.clone()), "{len}");
            for i in 0..len {
                for bit in [0x01, 0x80] {
                    let mut b = a.clone();
                    b[i] ^= bit;
                    assert!(!eq(&a, &b), "length {len}, byte {i}");
                }
            }
            assert!(!eq(&a, &a[..len - 1]), "{len}: a prefix");
        }
    }
}
