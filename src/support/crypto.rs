//! The crypto backend, chosen once from the crate features for rustls and jsonwebtoken together.
//!
//! - `aws-lc-rs` (the default) wins when both features are enabled, so a feature unified in from
//!   elsewhere in a dependency graph never leaves the process without a provider (jsonwebtoken's
//!   own default panics at run time when it sees both or neither).
//! - With neither feature, certbound uses the process-wide defaults the application installed
//!   (`rustls::crypto::CryptoProvider::install_default` and
//!   `jsonwebtoken::crypto::CryptoProvider::install_default`). When one is missing, the builders
//!   that need it return a [`ConfigError`]: never a panic, neither at start-up nor later on a
//!   request.
//! - jsonwebtoken's provider is always passed explicitly ([`jose_provider`], [`sign`],
//!   [`verify`]): no code path of certbound reaches jsonwebtoken's own provider selection, which
//!   panics when it sees both backends or neither. `clippy.toml` forbids the jsonwebtoken
//!   functions that would (`encode`, `decode`, `crypto::sign`, ...).

use std::sync::Arc;

use crate::error::ConfigError;

/// The rustls provider for every TLS configuration certbound builds.
///
/// # Errors
/// Without a backend feature, when the application installed no process-wide rustls provider.
pub(crate) fn rustls_provider() -> Result<Arc<rustls::crypto::CryptoProvider>, ConfigError> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        Ok(Arc::new(rustls::crypto::ring::default_provider()))
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .ok_or(ConfigError::NoCryptoProvider { library: "rustls" })
    }
}

/// The jsonwebtoken provider certbound signs and verifies JOSE objects with, passed explicitly
/// to every signature and verification ([`sign`], [`verify`]).
///
/// certbound never goes through jsonwebtoken's automatic provider selection: when nothing
/// installed a process-wide provider, jsonwebtoken picks one from its own crate features on
/// first use, and with both backends compiled in (as Cargo's feature unification does whenever
/// another dependency enables the other one) that pick is a provider that panics on every call.
/// With a backend feature the provider is that backend's, like the rustls provider above; the
/// process-wide default is neither read nor set.
///
/// # Errors
/// Without a backend feature, when the application installed no jsonwebtoken provider.
pub(crate) fn jose_provider() -> Result<JoseProvider, ConfigError> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Ok(JoseProvider::Explicit(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        ))
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        Ok(JoseProvider::Explicit(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        ))
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        no_backend::installed_jwt_provider()
    }
}

/// A jsonwebtoken crypto provider chosen by [`jose_provider`] (or given by the application).
#[derive(Debug, Clone, Copy)]
pub(crate) enum JoseProvider {
    /// Called directly.
    Explicit(&'static jsonwebtoken::crypto::CryptoProvider),
    /// Without a backend feature: the provider the application installed as jsonwebtoken's
    /// process-wide default, found to be there. jsonwebtoken lends no reference to it, so it is
    /// reached through jsonwebtoken's own functions, which use it.
    #[cfg_attr(any(feature = "aws-lc-rs", feature = "rust-crypto"), allow(dead_code))]
    Installed,
}

/// Whether `signature` (raw bytes) is `key`'s signature of `message` under `algorithm`. A key
/// the provider cannot use for `algorithm` verifies nothing.
pub(crate) fn verify(
    provider: JoseProvider,
    algorithm: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::DecodingKey,
    message: &[u8],
    signature: impl Into<Vec<u8>>,
) -> bool {
    // jsonwebtoken's verifiers take a `Vec`: a caller that has one passes it, unchanged.
    let signature = signature.into();
    match provider {
        JoseProvider::Explicit(provider) => match (provider.verifier_factory)(&algorithm, key) {
            Ok(verifier) => verifier.verify(message, &signature).is_ok(),
            Err(_) => false,
        },
        JoseProvider::Installed => {
            // Found installed by the application: this cannot reach the automatic selection.
            #[allow(clippy::disallowed_methods)]
            let verified = jsonwebtoken::crypto::verify(&b64(&signature), message, key, algorithm);
            verified.unwrap_or(false)
        }
    }
}

/// `key`'s signature of `message` under `algorithm`, base64url without padding (the third part
/// of a compact JWS).
///
/// # Errors
/// When the key does not fit the algorithm or the backend fails to sign.
pub(crate) fn sign(
    provider: JoseProvider,
    algorithm: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
    message: &[u8],
) -> Result<String, jsonwebtoken::errors::Error> {
    use jsonwebtoken::errors::ErrorKind;
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    match provider {
        JoseProvider::Explicit(provider) => {
            let signer = (provider.signer_factory)(&algorithm, key)?;
            if signer.algorithm() != algorithm {
                return Err(ErrorKind::InvalidAlgorithm.into());
            }
            Ok(b64(&signer.try_sign(message)?))
        }
        // Found installed by the application: this cannot reach the automatic selection.
        #[allow(clippy::disallowed_methods)]
        JoseProvider::Installed => jsonwebtoken::crypto::sign(message, key, algorithm),
    }
}

/// The public JWK of a private `key` for `algorithm`: the key type's members and `alg`.
///
/// # Errors
/// When the provider cannot read the key.
pub(crate) fn public_jwk(
    provider: JoseProvider,
    algorithm: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
) -> Result<jsonwebtoken::jwk::Jwk, jsonwebtoken::errors::Error> {
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::jwk::EllipticCurve;
    use jsonwebtoken::AlgorithmFamily;
    let utils = match provider {
        JoseProvider::Explicit(provider) => &provider.key_utils,
        // Found installed by the application: this cannot reach the automatic selection.
        #[allow(clippy::disallowed_methods)]
        JoseProvider::Installed => {
            return jsonwebtoken::jwk::Jwk::from_encoding_key(key, algorithm)
        }
    };
    let der = key.as_bytes();
    let jwk = match algorithm.family() {
        AlgorithmFamily::Ec => {
            let (curve, x, y) = (utils.ec_pub_components_from_private_key)(der, algorithm)?;
            serde_json::json!({"kty": "EC", "crv": curve, "x": b64(&x), "y": b64(&y)})
        }
        // jsonwebtoken's EdDSA keys are Ed25519 keys (in the PKCS#8 v1 form).
        AlgorithmFamily::Ed => {
            let x = (utils.ed_pub_components_from_private_key)(der, &EllipticCurve::Ed25519)?;
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)})
        }
        AlgorithmFamily::Rsa => {
            let (n, e) = (utils.rsa_pub_components_from_private_key)(der)?;
            serde_json::json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)})
        }
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let mut jwk = jwk;
    jwk["alg"] = serde_json::Value::from(super::jose::name(algorithm));
    serde_json::from_value(jwk).map_err(|e| ErrorKind::Json(e.into()).into())
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Without a backend feature: finding out whether the application installed a jsonwebtoken
/// provider.
#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod no_backend {
    use std::sync::atomic::{AtomicBool, Ordering};

    use jsonwebtoken::crypto::{CryptoProvider, KeyUtils};
    use jsonwebtoken::errors::{Error, ErrorKind};

    use crate::error::ConfigError;

    const MISSING: &str = "no jsonwebtoken crypto provider installed";

    fn missing() -> Error {
        ErrorKind::Provider(MISSING.into()).into()
    }

    /// A provider that fails every operation with an error (jsonwebtoken's stand-in panics).
    static FAIL_CLOSED: CryptoProvider = CryptoProvider {
        signer_factory: |_, _| Err(missing()),
        verifier_factory: |_, _| Err(missing()),
        key_utils: KeyUtils {
            rsa_pub_components_from_private_key: |_| Err(missing()),
            rsa_pub_components_from_public_key: |_| Err(missing()),
            ec_pub_components_from_private_key: |_, _| Err(missing()),
            ed_pub_components_from_private_key: |_, _| Err(missing()),
            compute_digest: |_, _| Err(missing()),
        },
    };

    /// Set once the probe below installed [`FAIL_CLOSED`]: nothing else was installed.
    static PROBE_INSTALLED: AtomicBool = AtomicBool::new(false);

    /// jsonwebtoken can only be asked whether a provider is installed by trying to install one
    /// (and its refusal gives back the provider offered, not the one installed). The probe is
    /// [`FAIL_CLOSED`]: if nothing was installed, it stays in place, so that no later
    /// verification anywhere in the process can panic, and construction fails with a
    /// [`ConfigError`] that says what to do.
    pub(super) fn installed_jwt_provider() -> Result<super::JoseProvider, ConfigError> {
        let missing = ConfigError::NoCryptoProvider {
            library: "jsonwebtoken",
        };
        match FAIL_CLOSED.install_default() {
            Ok(()) => {
                PROBE_INSTALLED.store(true, Ordering::SeqCst);
                Err(missing)
            }
            Err(_) if PROBE_INSTALLED.load(Ordering::SeqCst) => Err(missing),
            // Another probe's install may not have set the flag yet: then verification goes to
            // FAIL_CLOSED and fails, never passes.
            Err(_) => Ok(super::JoseProvider::Installed),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        // One test: both checks touch process-wide state and must run in this order.
        #[test]
        fn without_installed_providers_builders_fail_without_panicking() {
            // rustls: nothing installed yet in this process.
            assert!(rustls::crypto::CryptoProvider::get_default().is_none());
            let err = super::super::rustls_provider().unwrap_err();
            assert!(err.to_string().contains("install_default"), "{err}");

            // jsonwebtoken: the first check leaves the fail-closed provider in place, and the
            // second recognises it.
            assert!(installed_jwt_provider().is_err());
            assert!(installed_jwt_provider().is_err());
            let err = crate::JwtValidator::builder("https://as.test", "https://api.test")
                .hmac_secret(b"0123456789abcdef0123456789abcdef")
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("jsonwebtoken"), "{err}");
            // Whoever verifies anyway gets an error, not a panic.
            let key = jsonwebtoken::DecodingKey::from_secret(b"k");
            let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            let token = "eyJhbGciOiJIUzI1NiJ9.e30.c2ln";
            let result = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation);
            assert!(result.is_err());

            let err = crate::tls::ServerTls::new(Vec::new(), test_key())
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("rustls"), "{err}");
        }

        fn test_key() -> rustls_pki_types::PrivateKeyDer<'static> {
            rustls_pki_types::PrivateKeyDer::Pkcs8(Vec::new().into())
        }
    }
}
