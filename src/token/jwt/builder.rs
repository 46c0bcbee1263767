//! [`JwtValidatorBuilder`]: the options of a [`JwtValidator`], checked by
//! [`build`](JwtValidatorBuilder::build).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::claims::ClaimRules;
use super::keys::{
    fingerprint, KeyLocation, KeySet, RemoteKeys, RemoteSettings, VerificationKey, RSA_ALGS,
};
use super::{Inner, JwtValidator, Keys};
use crate::error::ConfigError;
use crate::support::cache::ResultCache;
use crate::support::crypto::JoseProvider;
use crate::upstream::{upstream_setters, UpstreamOptions};

/// Where validator ids come from (see `Inner::id`): never two validators with one id.
static IDS: AtomicU64 = AtomicU64::new(0);

const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl JwtValidator {
    /// Starts a validator for tokens issued by `issuer` (exact `iss`) for `audience` (one of
    /// the `aud` values).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> JwtValidatorBuilder {
        JwtValidatorBuilder {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            algorithms: None,
            require_at_jwt: false,
            jwks_json: Vec::new(),
            jwks_files: Vec::new(),
            pem_keys: Vec::new(),
            hmac: None,
            remote: None,
            upstream: UpstreamOptions::new(256 * 1024),
            min_refresh_interval: Duration::from_secs(10),
            max_key_age: Duration::from_secs(300),
            cache: true,
            cache_ttl: Duration::from_secs(300),
            provider: None,
        }
    }
}

/// Builder of a [`JwtValidator`]. Options are checked by [`build`](Self::build).
#[must_use]
pub struct JwtValidatorBuilder {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    require_at_jwt: bool,
    jwks_json: Vec<String>,
    jwks_files: Vec<PathBuf>,
    pem_keys: Vec<(Algorithm, Vec<u8>)>,
    hmac: Option<Vec<u8>>,
    remote: Option<KeyLocation>,
    upstream: UpstreamOptions,
    min_refresh_interval: Duration,
    max_key_age: Duration,
    cache: bool,
    cache_ttl: Duration,
    provider: Option<JoseProvider>,
}

impl fmt::Debug for JwtValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HMAC secret stays out of Debug output.
        f.debug_struct("JwtValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("remote", &self.remote)
            .field("hmac_secret", &self.hmac.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl JwtValidatorBuilder {
    upstream_setters! {
        field: upstream,
        fetched: "the JWKS and the discovery metadata",
        max_response: "JWKS or metadata document accepted (default 256 KiB)",
        on_timeout: "When it passes the fetch fails: cached keys stay in use, and a request \
            that needs keys while none are cached is refused with 503.",
        http_risk: "an attacker on the path can substitute keys and forge any token.",
        cached: "validated tokens",
    }

    /// Accepts one more audience.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The allowed signature algorithms (default: every asymmetric one). `HS*` requires
    /// [`hmac_secret`](Self::hmac_secret).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Requires the JOSE header `typ` to be `at+jwt` (RFC 9068 §2.1).
    pub fn require_at_jwt(mut self) -> Self {
        self.require_at_jwt = true;
        self
    }

    /// Adds the keys of a JWKS document.
    pub fn jwks_json(mut self, jwks: impl Into<String>) -> Self {
        self.jwks_json.push(jwks.into());
        self
    }

    /// Adds the keys of a JWKS file (read by [`build`](Self::build), at start-up).
    pub fn jwks_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwks_files.push(path.into());
        self
    }

    /// Adds a PEM public key (SPKI, or PKCS#1 for RSA) for `algorithm`. PEM keys have no `kid`:
    /// they are tried for tokens whose `kid` matches no JWK.
    pub fn public_key_pem(mut self, algorithm: Algorithm, pem: impl Into<Vec<u8>>) -> Self {
        self.pem_keys.push((algorithm, pem.into()));
        self
    }

    /// Accepts `HS256`/`HS384`/`HS512` tokens signed with `secret` (at least 32 bytes). Add the
    /// HMAC algorithms to [`algorithms`](Self::algorithms) as well; by default HMAC is off.
    pub fn hmac_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.hmac = Some(secret.into());
        self
    }

    /// Fetches keys from this JWKS URL (https).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.remote = Some(KeyLocation::Jwks(url.into()));
        self
    }

    /// Finds the JWKS URL through the issuer's metadata: RFC 8414
    /// `/.well-known/oauth-authorization-server`, then `/.well-known/openid-configuration`. The
    /// metadata's `issuer` must equal the configured issuer.
    pub fn discover(mut self) -> Self {
        self.remote = Some(KeyLocation::Discover(self.issuer.clone()));
        self
    }

    /// The shortest time between two fetches of the remote keys (default 10 s). An unknown
    /// `kid` triggers a fetch, at most this often.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// Age after which cached remote keys are refreshed in the background (default 5 min).
    pub fn max_key_age(mut self, age: Duration) -> Self {
        self.max_key_age = age;
        self
    }

    // Not among the shared setters: what is cached, and so the default, differ from
    // introspection's `cache_ttl`.
    /// Longest time a validated token is reused without verifying its signature again
    /// (default 5 min; never beyond the token's `exp`).
    ///
    /// The cache makes the common case, the same token on a keep-alive connection, nearly
    /// free: a hit costs a comparison with the connection's last token (or a keyed hash of
    /// the token when it changed) and a lookup instead of a signature check. What
    /// a hit skips is only the signature and claims check of a token already verified: the
    /// binding to the client certificate is still checked on every request, entries end at
    /// `exp`, and an entry is dropped as soon as a refreshed key set no longer holds the key
    /// that verified it. Entries are keyed by a keyed hash of the whole token (BLAKE3, its
    /// key random per process), never the token itself.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Verifies signatures with `provider` instead of the crypto backend the crate features
    /// select: a FIPS-validated or hardware-backed implementation, or one that counts
    /// verifications. certbound never uses jsonwebtoken's process-wide provider otherwise (see
    /// the crate's feature docs): without a backend feature, it is the provider the
    /// application installed there.
    pub fn crypto_provider(
        mut self,
        provider: &'static jsonwebtoken::crypto::CryptoProvider,
    ) -> Self {
        self.provider = Some(JoseProvider::Explicit(provider));
        self
    }

    /// Turns the validated-token cache off: every request verifies the signature.
    pub fn no_cache(mut self) -> Self {
        self.cache = false;
        self
    }

    /// Checks the configuration and builds the validator. Reads key files synchronously; no
    /// network access (remote keys are fetched on first use or by
    /// [`JwtValidator::prefetch`]).
    ///
    /// # Errors
    /// No key source, unusable keys, HMAC algorithms without a secret (or a secret shorter than
    /// 32 bytes), a non-https URL, or an invalid issuer / audience.
    pub fn build(self) -> Result<JwtValidator, ConfigError> {
        let provider = match self.provider {
            Some(provider) => provider,
            None => crate::support::crypto::jose_provider()?,
        };
        if self.issuer.is_empty() {
            return Err(ConfigError::invalid("issuer", "must not be empty"));
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::invalid("audience", "must not be empty"));
        }
        let algorithms = self.algorithms.clone().unwrap_or_else(|| {
            let mut algs = ASYMMETRIC.to_vec();
            if self.hmac.is_some() {
                algs.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
            }
            algs
        });
        if algorithms.is_empty() {
            return Err(ConfigError::invalid("algorithms", "no algorithm allowed"));
        }
        let wants_hmac = algorithms
            .iter()
            .any(|a| a.family() == AlgorithmFamily::Hmac);
        match &self.hmac {
            None if wants_hmac => {
                return Err(ConfigError::invalid(
                    "algorithms",
                    "HS* algorithms need an hmac_secret",
                ));
            }
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::key("HMAC secret shorter than 32 bytes", None));
            }
            _ => {}
        }

        let mut keys = KeySet::default();
        for json in &self.jwks_json {
            keys.extend(
                KeySet::from_jwks_json(json.as_bytes()).map_err(|e| e.into_config_error(None))?,
            );
        }
        for path in &self.jwks_files {
            let json = std::fs::read(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            keys.extend(
                KeySet::from_jwks_json(&json).map_err(|e| e.into_config_error(Some(path)))?,
            );
        }
        for (alg, pem) in &self.pem_keys {
            let key = match alg.family() {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
                AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
                _ => {
                    return Err(ConfigError::key(
                        "PEM keys are for asymmetric algorithms",
                        None,
                    ))
                }
            }
            .map_err(|e| ConfigError::key("unusable PEM public key", Some(e.into())))?;
            let algs = match alg.family() {
                AlgorithmFamily::Rsa => RSA_ALGS.to_vec(),
                _ => vec![*alg],
            };
            keys.push(VerificationKey::new(None, algs, key, fingerprint(pem)));
        }
        if let (true, Some(secret)) = (wants_hmac, &self.hmac) {
            keys.push(VerificationKey::new(
                None,
                vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
                DecodingKey::from_secret(secret),
                fingerprint(secret),
            ));
        }

        let keys = match self.remote {
            Some(location) => {
                if keys.len() > 0 {
                    return Err(ConfigError::invalid(
                        "key source",
                        "choose either remote keys (jwks_url / discover) or static keys",
                    ));
                }
                let (option, url) = match &location {
                    KeyLocation::Jwks(url) => ("jwks_url", url),
                    KeyLocation::Discover(url) => ("issuer", url),
                };
                self.upstream.check_url(option, url)?;
                let client = self.upstream.client(None)?;
                let settings = RemoteSettings {
                    min_refresh_interval: self.min_refresh_interval,
                    max_age: self.max_key_age,
                    fetch_timeout: self.upstream.fetch_timeout,
                    max_response_bytes: self.upstream.max_response_bytes,
                    allow_http: self.upstream.allow_http,
                };
                Keys::Remote(Arc::new(RemoteKeys::new(location, client, settings)))
            }
            None if keys.len() == 0 => {
                return Err(ConfigError::invalid(
                    "key source",
                    "no verification keys: use jwks_json, jwks_file, public_key_pem, jwks_url \
                     or discover",
                ));
            }
            None => Keys::Static(Arc::new(keys)),
        };

        Ok(JwtValidator(Arc::new(Inner {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            keys,
            algorithms,
            claims: ClaimRules {
                issuer: self.issuer,
                audiences: self.audiences,
                leeway: self.upstream.leeway.as_secs(),
            },
            provider,
            // certbound's own aws-lc-rs provider, not one the application gave.
            native: cfg!(feature = "aws-lc-rs") && self.provider.is_none(),
            require_at_jwt: self.require_at_jwt,
            cache: self.cache.then(|| {
                Arc::new(ResultCache::new(
                    self.upstream.max_cache_entries,
                    self.upstream.max_cache_bytes,
                ))
            }),
            cache_ttl: self.cache_ttl,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_needs_an_explicit_long_secret() {
        let b = || JwtValidator::builder("https://as.test", "https://api.test");
        assert!(b()
            .algorithms([Algorithm::HS256])
            .jwks_json(r#"{"keys":[]}"#)
            .build()
            .is_err());
        assert!(b().hmac_secret(&b"short"[..]).build().is_err());
        assert!(b().build().is_err(), "no key source");
        assert!(
            b().jwks_url("http://as.test/jwks").build().is_err(),
            "plain http"
        );
        assert!(b()
            .jwks_url("http://as.test/jwks")
            .insecure_allow_http()
            .build()
            .is_ok());
    }
}
