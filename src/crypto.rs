//! The crypto backend, chosen once from the crate features for rustls and jsonwebtoken together.
//!
//! `aws-lc-rs` (the default) wins when both features are enabled, so a feature unified in from
//! elsewhere in a dependency graph never leaves the process without a provider (jsonwebtoken's
//! own default panics at run time when it sees both or neither).

use std::sync::Arc;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "certbound needs a crypto backend: enable the feature `aws-lc-rs` (the default) or `rust-crypto`"
);

/// The rustls provider for every TLS configuration certbound builds.
pub(crate) fn rustls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        Arc::new(rustls::crypto::ring::default_provider())
    }
}

/// Makes sure jsonwebtoken has a process-wide provider before certbound verifies anything.
///
/// If the application installed one already, that one stays (its choice is respected).
pub(crate) fn ensure_jwt_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "aws-lc-rs")]
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        let _ = provider.install_default();
    });
}
