//! The key a DPoP proof carries in its `jwk` header, made usable for the proof's `alg`: checked
//! to be of the algorithm's type and curve, and parsed for verification.
//!
//! With the `aws-lc-rs` feature and certbound's own provider (no
//! [`crypto_provider`](super::Dpop::crypto_provider) given), the key is parsed by aws-lc-rs
//! itself into a `ParsedPublicKey` and the proof verified against it, as JWT access tokens are
//! (`token::jwt::native`, same algorithm table). Why the hot path leaves jsonwebtoken here
//! (issue 26, BENCHMARKS.md): jsonwebtoken's verifier for a `DecodingKey` clones the key, boxes
//! a verifier and hands aws-lc-rs the key's bytes, which it parses again on every call (for a
//! P-256 key: the point decoded and checked to lie on the curve, 14 046 instructions of a proof;
//! building the `DecodingKey` from the components another 2 119). A parsed key is what the
//! connection's [`ProofKeyMemo`](super::key_memo::ProofKeyMemo) keeps, so a client's next proof
//! by the same key parses nothing. Both paths accept exactly the same keys and signatures: the
//! same base64url decoding (jsonwebtoken's, no padding), the same aws-lc-rs algorithms
//! (`_FIXED` ECDSA, `RSA_PKCS1_2048_8192_*`, `RSA_PSS_2048_8192_*`, whose key-size bounds are
//! checked at verification either way), and the coordinate lengths checked here for both (RFC
//! 7518 §6.2.1.2: each coordinate is the full size of the curve's field). The other backends
//! (`rust-crypto` alone, an application's provider) keep jsonwebtoken's path.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::jwk::PublicKey;
use crate::error::{AuthError, AuthErrorKind};
use crate::support::crypto::JoseProvider;
#[cfg(feature = "aws-lc-rs")]
use crate::support::jose::{decode_signature, SIGNATURE_BUF};

/// The public members of a proof's `jwk`, as the header decoded them (JSON escapes undone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Members<'a> {
    pub(crate) kty: Option<&'a str>,
    pub(crate) crv: Option<&'a str>,
    pub(crate) x: Option<&'a str>,
    pub(crate) y: Option<&'a str>,
    pub(crate) n: Option<&'a str>,
    pub(crate) e: Option<&'a str>,
}

impl<'a> Members<'a> {
    /// The members in a fixed order: `kty`, `crv`, `x`, `y`, `n`, `e`.
    pub(crate) fn all(&self) -> [Option<&'a str>; 6] {
        [self.kty, self.crv, self.x, self.y, self.n, self.e]
    }
}

/// A proof's key, parsed for one algorithm.
pub(crate) enum ProofKey {
    /// Parsed by aws-lc-rs, verified against directly.
    #[cfg(feature = "aws-lc-rs")]
    Native(aws_lc_rs::signature::ParsedPublicKey),
    /// jsonwebtoken's form, verified by the provider (parsed again on each verification).
    Jose(DecodingKey),
}

impl ProofKey {
    /// Whether this is the form that `provider` (the rules' own, `None` for the crate's
    /// backend) verifies with: see [`native`].
    pub(crate) fn fits(&self, provider: Option<JoseProvider>) -> bool {
        match self {
            #[cfg(feature = "aws-lc-rs")]
            Self::Native(_) => native(provider),
            Self::Jose(_) => !native(provider),
        }
    }

    /// Whether `signature` (base64url, the proof's third part) is this key's signature of
    /// `message` under `algorithm` (the one the key was derived for).
    pub(crate) fn verify(
        &self,
        algorithm: Algorithm,
        provider: Option<JoseProvider>,
        message: &[u8],
        signature_b64: &str,
    ) -> Result<bool, AuthError> {
        match self {
            #[cfg(feature = "aws-lc-rs")]
            Self::Native(key) => {
                // On the stack, as a JWT's; one longer than any allowed algorithm's verifies
                // nothing.
                let mut buf = [0u8; SIGNATURE_BUF];
                match decode_signature(signature_b64, &mut buf) {
                    Ok(Some(signature)) => {
                        Ok(crate::token::jwt::native::verify(key, message, signature))
                    }
                    Ok(None) => Ok(false),
                    Err(_) => Err(not_base64()),
                }
            }
            Self::Jose(key) => {
                let signature = URL_SAFE_NO_PAD
                    .decode(signature_b64)
                    .map_err(|_| not_base64())?;
                let provider = match provider {
                    Some(provider) => provider,
                    // Only without a backend feature can this fail: the application installed
                    // no provider.
                    None => crate::support::crypto::jose_provider().map_err(|_| {
                        AuthError::with_detail(
                            AuthErrorKind::Misconfigured,
                            "no jsonwebtoken crypto provider to verify DPoP proofs with",
                        )
                    })?,
                };
                Ok(crate::support::crypto::verify(
                    provider, algorithm, key, message, signature,
                ))
            }
        }
    }
}

fn not_base64() -> AuthError {
    invalid("DPoP proof signature is not base64url")
}

fn invalid(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::InvalidDpopProof, detail)
}

/// Whether proofs are verified by aws-lc-rs directly: with the `aws-lc-rs` feature and the
/// crate's own provider (`provider` is the one the application gave, if any).
pub(crate) fn native(provider: Option<JoseProvider>) -> bool {
    cfg!(feature = "aws-lc-rs") && provider.is_none()
}

/// The key of `members` for `algorithm` in the form `provider` verifies with, and its
/// thumbprint members; the key type and curve must be the algorithm's.
pub(crate) fn derive<'a>(
    members: &Members<'a>,
    algorithm: Algorithm,
    provider: Option<JoseProvider>,
) -> Result<(PublicKey<'a>, ProofKey), AuthError> {
    use Algorithm as A;
    let mismatch = || invalid("DPoP proof jwk does not fit its alg");
    let unusable = || invalid("DPoP proof jwk is not a usable public key");
    let native = native(provider);
    let kty = members.kty.ok_or_else(mismatch)?;
    let curve = members.crv;
    match (algorithm, kty, curve) {
        (A::ES256, "EC", Some("P-256")) | (A::ES384, "EC", Some("P-384")) => {
            let (Some(crv), Some(x), Some(y)) = (curve, members.x, members.y) else {
                return Err(mismatch());
            };
            let size = if algorithm == A::ES256 { 32 } else { 48 };
            // 0x04 || x || y, and room for base64's estimate past y.
            let mut point = [0u8; 1 + 2 * 48 + 3];
            point[0] = 0x04;
            let len = decode_exact(x, &mut point[1..], size)
                .and_then(|_| decode_exact(y, &mut point[1 + size..], size))
                .map(|_| 1 + 2 * size)
                .ok_or_else(unusable)?;
            let key = backend_key(algorithm, native, &point[..len], DecodingKey::from_ec_der)
                .ok_or_else(unusable)?;
            Ok((PublicKey::Ec(crv, x, y), key))
        }
        (A::EdDSA, "OKP", Some("Ed25519")) => {
            let (Some(crv), Some(x)) = (curve, members.x) else {
                return Err(mismatch());
            };
            let mut raw = [0u8; 32 + 3];
            decode_exact(x, &mut raw, 32).ok_or_else(unusable)?;
            let key = backend_key(algorithm, native, &raw[..32], DecodingKey::from_ed_der)
                .ok_or_else(unusable)?;
            Ok((PublicKey::Okp(crv, x), key))
        }
        (A::PS256 | A::PS384 | A::PS512 | A::RS256 | A::RS384 | A::RS512, "RSA", _) => {
            let (Some(n), Some(e)) = (members.n, members.e) else {
                return Err(mismatch());
            };
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| unusable())?;
            #[cfg(feature = "aws-lc-rs")]
            if native {
                let parsed = crate::token::jwt::native::parse(&key, algorithm);
                return Ok((
                    PublicKey::Rsa(n, e),
                    ProofKey::Native(parsed.ok_or_else(unusable)?),
                ));
            }
            Ok((PublicKey::Rsa(n, e), ProofKey::Jose(key)))
        }
        _ => Err(mismatch()),
    }
}

/// Decodes base64url `text` into the start of `out`; `Some` only when it is exactly `size`
/// bytes (`out` has room for base64's estimate of `size` bytes).
fn decode_exact(text: &str, out: &mut [u8], size: usize) -> Option<()> {
    let n = URL_SAFE_NO_PAD.decode_slice(text, out).ok()?;
    (n == size).then_some(())
}

/// `bytes` (an EC point or an Ed25519 key) as the key `native` says: parsed by aws-lc-rs for
/// `algorithm`, or jsonwebtoken's `DecodingKey` (`jose`, which holds the same bytes as
/// `from_ec_components` / `from_ed_components` would).
fn backend_key(
    algorithm: Algorithm,
    native: bool,
    bytes: &[u8],
    jose: fn(&[u8]) -> DecodingKey,
) -> Option<ProofKey> {
    #[cfg(feature = "aws-lc-rs")]
    if native {
        let verification = crate::token::jwt::native::ec_or_ed(algorithm)?;
        let parsed = aws_lc_rs::signature::ParsedPublicKey::new(verification, bytes).ok()?;
        return Some(ProofKey::Native(parsed));
    }
    let _ = (algorithm, native);
    Some(ProofKey::Jose(jose(bytes)))
}
