//! Key generation and random bytes from the crypto backend the crate features select, with the
//! same precedence as `support::crypto` (aws-lc-rs when both are enabled).

use crate::error::ConfigError;

/// Fills `buf` from the crypto backend's secure random generator; without a backend feature,
/// from the application's process-wide rustls provider.
///
/// # Errors
/// [`ConfigError::NoCryptoProvider`] without a backend feature when the application installed
/// no rustls provider; [`ConfigError::Invalid`] when the generator fails.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), ConfigError> {
    imp::fill_random(buf).map_err(|e| match e {
        Some(e) => e,
        None => ConfigError::invalid("random", "the secure random generator failed"),
    })
}

/// The backend's generator and key generation.
#[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
mod imp {
    #[cfg(feature = "aws-lc-rs")]
    use aws_lc_rs as lib;
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    use ring as lib;

    use jsonwebtoken::Algorithm;
    use lib::rand::{SecureRandom as _, SystemRandom};
    use lib::signature::{
        EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };

    use crate::error::ConfigError;

    /// A new PKCS#8 private key for `alg` (one of the three the caller checked).
    pub(super) fn generate_pkcs8(alg: Algorithm) -> Result<Vec<u8>, ConfigError> {
        let rng = SystemRandom::new();
        let document = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            Algorithm::ES384 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            }
            _ => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| ConfigError::key("the crypto backend failed to generate a key", None))?;
        Ok(document.as_ref().to_vec())
    }

    /// `Err(None)`: the generator failed.
    pub(super) fn fill_random(buf: &mut [u8]) -> Result<(), Option<ConfigError>> {
        SystemRandom::new().fill(buf).map_err(|_| None)
    }
}

/// Without a backend feature: no key generation; random bytes from the application's rustls
/// provider.
#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod imp {
    use jsonwebtoken::Algorithm;

    use crate::error::ConfigError;

    pub(super) fn generate_pkcs8(alg: Algorithm) -> Result<Vec<u8>, ConfigError> {
        Err(ConfigError::invalid(
            "algorithm",
            format!(
                "generating a {alg:?} key needs certbound's `aws-lc-rs` or `rust-crypto` \
                 feature; load an existing key with DpopKey::from_pkcs8_pem instead"
            ),
        ))
    }

    pub(super) fn fill_random(buf: &mut [u8]) -> Result<(), Option<ConfigError>> {
        let provider = crate::support::crypto::rustls_provider().map_err(Some)?;
        provider.secure_random.fill(buf).map_err(|_| None)
    }
}

/// A new PKCS#8 private key for `alg` (ES256, ES384 or EdDSA, checked by the caller).
pub(super) fn generate_pkcs8(alg: jsonwebtoken::Algorithm) -> Result<Vec<u8>, ConfigError> {
    imp::generate_pkcs8(alg)
}
