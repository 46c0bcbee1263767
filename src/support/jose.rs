//! JOSE algorithm names: those of RFC 7518 that jsonwebtoken's [`Algorithm`] knows, and the
//! fully-specified `Ed25519` of RFC 9864.
//!
//! RFC 9864 deprecates the polymorphic `EdDSA` for JOSE in favour of `Ed25519` and `Ed448`, and
//! clients have started to sign with the new name (panva's `openid-client`, for one). jsonwebtoken's
//! `EdDSA` is Ed25519 only (no backend here has Ed448), so `Ed25519` is read as `EdDSA`, and
//! everywhere `EdDSA` is accepted, `Ed25519` is too. The key must still be an Ed25519 `OKP` key:
//! that is checked where the key meets the algorithm, as for `EdDSA`. `Ed448` is never accepted:
//! neither aws-lc-rs nor the RustCrypto backend of jsonwebtoken verifies it.

use std::str::FromStr as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;

/// Room for a decoded JWS signature on the stack: RSA-8192's 1 024 bytes, the largest any
/// allowed algorithm makes, with base64's estimate rounding up to a whole group of 3.
pub(crate) const SIGNATURE_BUF: usize = 1026;

/// The longest base64url signature that fits [`SIGNATURE_BUF`].
const SIGNATURE_B64_MAX: usize = SIGNATURE_BUF / 3 * 4;

/// A JWS signature's base64url text (a JWT's or a DPoP proof's third part) decoded into `buf`:
/// `Ok(None)` when it is longer than any allowed algorithm's signature (it verifies nothing,
/// as a wrong one of the right length), `Err` when it is not base64url.
pub(crate) fn decode_signature<'b>(
    text: &str,
    buf: &'b mut [u8; SIGNATURE_BUF],
) -> Result<Option<&'b [u8]>, base64::DecodeSliceError> {
    if text.len() > SIGNATURE_B64_MAX {
        return Ok(None);
    }
    let n = URL_SAFE_NO_PAD.decode_slice(text, buf)?;
    Ok(Some(&buf[..n]))
}

/// The fully-specified name of EdDSA with Ed25519 (RFC 9864).
pub(crate) const ED25519: &str = "Ed25519";

/// The algorithm a JOSE header's `alg` names; `None` for `none` and for names jsonwebtoken does
/// not implement (`Ed448`, `ES512`, ...).
pub(crate) fn algorithm(name: &str) -> Option<Algorithm> {
    if name == ED25519 {
        return Some(Algorithm::EdDSA);
    }
    Algorithm::from_str(name).ok()
}

/// The JWA name of `algorithm` (its polymorphic name for `EdDSA`).
pub(crate) fn name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // jsonwebtoken's enum is non-exhaustive: a variant added later has no name certbound
        // accepts yet, and this name matches no `alg` a client sends.
        _ => "unsupported",
    }
}

/// Every name an allow-list accepts in `alg`, in its order: `EdDSA` is followed by `Ed25519`.
/// What servers advertise (`dpop_signing_alg_values_supported`, the `algs` challenge
/// parameter).
pub(crate) fn accepted_names(algorithms: &[Algorithm]) -> Vec<&'static str> {
    let mut names = Vec::with_capacity(algorithms.len() + 1);
    for &algorithm in algorithms {
        names.push(name(algorithm));
        if algorithm == Algorithm::EdDSA {
            names.push(ED25519);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_is_read_as_eddsa_and_ed448_and_none_are_not_read() {
        assert_eq!(algorithm("Ed25519"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm("EdDSA"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm("ES256"), Some(Algorithm::ES256));
        for unknown in ["Ed448", "none", "ed25519", "ES512", ""] {
            assert_eq!(algorithm(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn every_name_reads_back_as_its_algorithm() {
        for a in [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::EdDSA,
        ] {
            assert_eq!(algorithm(name(a)), Some(a));
        }
    }

    #[test]
    fn an_allow_list_with_eddsa_advertises_both_names() {
        assert_eq!(
            accepted_names(&[Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256]),
            ["ES256", "EdDSA", "Ed25519", "PS256"]
        );
        assert_eq!(accepted_names(&[Algorithm::ES256]), ["ES256"]);
    }
}
