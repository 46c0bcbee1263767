//! SHA-256 on the hot paths: by aws-lc-rs when it is the backend, else by the `sha2` crate.
//!
//! Why not `sha2` everywhere: its portable code takes about twice the instructions of
//! aws-lc-rs's assembly (callgrind, issue 26: ~28 000 against ~15 000 for a 640-byte token;
//! with SHA extensions in the CPU both use them). Every request hashes something: a new
//! token's SHA-256 key, a DPoP proof's key thumbprint and its replay identity.

/// SHA-256 of the concatenation of `parts`.
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn sha256_of(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// SHA-256 of the concatenation of `parts`.
#[cfg(not(feature = "aws-lc-rs"))]
pub(crate) fn sha256_of(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha256_of(&[bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_whichever_backend_computes_it() {
        use sha2::{Digest as _, Sha256};
        for input in [&b""[..], b"abc", &[0x5a; 1000]] {
            let expected: [u8; 32] = Sha256::digest(input).into();
            assert_eq!(sha256(input), expected);
            let (a, b) = input.split_at(input.len() / 2);
            assert_eq!(sha256_of(&[a, b]), expected, "in two parts");
        }
    }
}
