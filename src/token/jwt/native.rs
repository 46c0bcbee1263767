//! Signature verification by aws-lc-rs itself, against public keys parsed once, when the key
//! set is loaded (with the `aws-lc-rs` feature, and certbound's own provider: not an
//! application's [`crypto_provider`](super::JwtValidatorBuilder::crypto_provider)).
//!
//! Why the hot path leaves jsonwebtoken here (issue 26, BENCHMARKS.md): jsonwebtoken's verifier
//! for a `DecodingKey` clones the key and boxes a verifier on every call, and hands aws-lc-rs
//! the key's bytes, which aws-lc-rs parses again on every call (for P-256: decoding the point
//! and checking it lies on the curve, ~14 000 instructions of the ~22 000 that surrounded an
//! ES256 verification of ~750 000). An `aws_lc_rs::signature::ParsedPublicKey` is that parse,
//! done once per key. The algorithms are jsonwebtoken's own for each `alg` (the `_FIXED`
//! ECDSA forms: a JWS signature is `r || s`, RFC 7518 §3.4), so both paths accept exactly the
//! same signatures; jsonwebtoken still parses the keys (JWK, PEM) and stays the path for the
//! other backends and providers, and for a key aws-lc-rs cannot parse (which then verifies
//! nothing either way).

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

/// A key's parsed forms, one per algorithm it may verify (an RSA key without `alg` serves six).
#[derive(Default)]
pub(crate) struct NativeKeys(Vec<(Algorithm, ParsedPublicKey)>);

impl NativeKeys {
    /// `key` parsed for each of `algorithms` of its own family; an algorithm the key does not
    /// parse for (or HMAC: never with aws-lc-rs here) has no entry.
    pub(crate) fn parse(key: &DecodingKey, algorithms: &[Algorithm]) -> Self {
        let parsed = algorithms
            .iter()
            .filter(|alg| alg.family() == key.family())
            .filter_map(|&alg| Some((alg, parse(key, alg)?)))
            .collect();
        Self(parsed)
    }

    /// The key parsed for `alg`, if it parsed.
    pub(crate) fn get(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.0.iter().find(|(a, _)| *a == alg).map(|(_, key)| key)
    }
}

/// Whether `signature` (raw bytes) is `key`'s signature of `message` under the algorithm the
/// key was parsed for.
///
/// (Until issue 26's second round, ES256, RS256 and PS256 verified the SHA-256 of `message`
/// made with the token's cache key, in one pass over the token; the JWT caches' key is no
/// longer a SHA-256, see `TokenKey::of_jwt`, and the message is hashed here, as a raw
/// verification does.)
pub(crate) fn verify(key: &ParsedPublicKey, message: &[u8], signature: &[u8]) -> bool {
    key.verify_sig(message, signature).is_ok()
}

/// `key` parsed by aws-lc-rs for `alg` (of the key's family), as jsonwebtoken's verifier for
/// `alg` would parse it on each call; `None` when it does not parse.
pub(crate) fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    match (key.kind(), alg.family()) {
        (DecodingKeyKind::RsaModulusExponent { n, e }, AlgorithmFamily::Rsa) => {
            let components = RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            };
            components.to_parsed_public_key(rsa(alg)?).ok()
        }
        (DecodingKeyKind::SecretOrDer(bytes), AlgorithmFamily::Rsa) => {
            ParsedPublicKey::new(rsa(alg)?, bytes).ok()
        }
        (DecodingKeyKind::SecretOrDer(bytes), AlgorithmFamily::Ec | AlgorithmFamily::Ed) => {
            ParsedPublicKey::new(ec_or_ed(alg)?, bytes).ok()
        }
        _ => None,
    }
}

/// jsonwebtoken's ECDSA and EdDSA verification algorithms for `alg` (the `_FIXED` ECDSA forms:
/// a JWS signature is `r || s`); the key is an uncompressed point `0x04 || x || y`, or Ed25519's
/// 32 bytes.
pub(crate) fn ec_or_ed(alg: Algorithm) -> Option<&'static dyn signature::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        _ => return None,
    })
}

/// jsonwebtoken's RSA verification parameters for `alg` (keys of 2048 to 8192 bits).
fn rsa(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}
