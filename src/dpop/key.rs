//! The client side of DPoP: a signing key ([`DpopKey`]) and the proofs it signs
//! ([`ProofBuilder`], RFC 9449 §4).

use std::fmt;
use std::path::PathBuf;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{CommonParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::support::crypto::{self, jose_provider, JoseProvider};
use crate::support::jose;
use crate::support::time::unix_now_i64;
use crate::thumbprint::JwkThumbprint;

/// A client's DPoP signing key: it signs the proofs ([`proof`](Self::proof)) and its public
/// [JWK](Self::public_jwk), whose [thumbprint](Self::thumbprint) the authorization server binds
/// tokens to (`cnf.jkt`, RFC 9449 §6).
///
/// Supported: ECDSA P-256 (`ES256`), P-384 (`ES384`) and Ed25519 (`EdDSA`), generated or loaded
/// from PKCS#8, and RSA keys loaded from PKCS#8 (signing with `PS256`).
///
/// The private key never appears in `Debug` output or in errors; `Debug` shows the algorithm
/// and the thumbprint. It is held in jsonwebtoken's `EncodingKey`, which zeroes it on drop.
///
/// # Example
/// ```
/// use certbound::{Algorithm, DpopKey};
///
/// let key = DpopKey::generate(Algorithm::ES256).unwrap();
/// let proof = key
///     .proof("GET", "https://api.example/resource?page=2")
///     .access_token("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
///     .sign()
///     .unwrap();
/// // A compact JWS: send it in the `DPoP` request header.
/// assert_eq!(proof.split('.').count(), 3);
///
/// // Save the key to use it again (the token is bound to it).
/// let pem = key.to_pkcs8_pem();
/// let again = DpopKey::from_pkcs8_pem(pem.as_bytes()).unwrap();
/// assert_eq!(again.thumbprint(), key.thumbprint());
/// ```
#[derive(Clone)]
pub struct DpopKey {
    alg: Algorithm,
    /// The `alg` header's value: the algorithm's JWA name, or `Ed25519` (RFC 9864) for an
    /// Ed25519 key told to use it.
    alg_name: &'static str,
    provider: JoseProvider,
    /// What jsonwebtoken signs with: the PKCS#8 document for EC keys, the PKCS#8 v1 document
    /// for Ed25519 keys, the PKCS#1 `RSAPrivateKey` for RSA keys (each backend's format).
    signing: EncodingKey,
    jwk: Jwk,
    thumbprint: JwkThumbprint,
}

impl DpopKey {
    /// Generates a new key for `alg`: `ES256`, `ES384` or `EdDSA` (Ed25519), with the crypto
    /// backend the crate features select (`aws-lc-rs` when both are enabled).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for any other algorithm, and when neither the `aws-lc-rs` nor
    /// the `rust-crypto` feature is enabled (load a key with [`from_pkcs8_pem`](Self::from_pkcs8_pem)
    /// instead); [`ConfigError::NoCryptoProvider`] when jsonwebtoken has no provider.
    pub fn generate(alg: Algorithm) -> Result<Self, ConfigError> {
        if !matches!(alg, Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA) {
            return Err(ConfigError::invalid(
                "algorithm",
                format!("DPoP keys can be generated for ES256, ES384 and EdDSA, not {alg:?}"),
            ));
        }
        let pkcs8 = super::backend::generate_pkcs8(alg)?;
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Loads a PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`): EC P-256 or P-384, Ed25519,
    /// or RSA. The algorithm follows from the key: `ES256`, `ES384`, `EdDSA` or `PS256`.
    ///
    /// A SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) file converts with
    /// `openssl pkcs8 -topk8 -nocrypt -in key.pem -out pkcs8.pem`.
    ///
    /// # Errors
    /// [`ConfigError::Pem`] when `pem` holds no `PRIVATE KEY` block; otherwise as
    /// [`from_pkcs8_der`](Self::from_pkcs8_der).
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| ConfigError::Pem {
            path: PathBuf::new(),
            reason: "no PKCS#8 private key (\"PRIVATE KEY\" block)",
        })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// Loads a DER-encoded PKCS#8 private key (see [`from_pkcs8_pem`](Self::from_pkcs8_pem)).
    ///
    /// # Errors
    /// [`ConfigError::Key`] when the document is not PKCS#8, holds a key type or curve DPoP
    /// signing here does not support (P-521, RSA-PSS-only keys), or a key the crypto backend
    /// refuses; [`ConfigError::NoCryptoProvider`] when jsonwebtoken (or, without a backend
    /// feature, rustls, for random `jti`s) has no provider.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ConfigError> {
        let provider = jose_provider()?;
        // Fails now, not on the first proof, when there is no random source for `jti`s.
        super::backend::fill_random(&mut [0u8; 1])?;
        let (alg, signing) = match super::pkcs8::parse(der)? {
            super::pkcs8::Key::Ec(alg) => (alg, EncodingKey::from_ec_der(der)),
            // jsonwebtoken reads Ed25519 keys in the 48-byte v1 form only (RFC 8410 §7); the
            // backends generate v2, with the public key appended.
            super::pkcs8::Key::Ed25519(seed) => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_der(&super::pkcs8::ed25519_v1(seed)?),
            ),
            // Both jsonwebtoken backends sign with the PKCS#1 key inside the PKCS#8 wrapper.
            // Wrapped once here so that `to_pkcs8_pem`, which wraps it again, cannot fail.
            super::pkcs8::Key::Rsa(pkcs1) => {
                super::pkcs8::wrap_rsa(pkcs1)?;
                (Algorithm::PS256, EncodingKey::from_rsa_der(pkcs1))
            }
        };
        let mut jwk = crypto::public_jwk(provider, alg, &signing)
            .map_err(|e| ConfigError::key("the crypto backend refused the key", Some(e.into())))?;
        // Only the key itself: a DPoP `jwk` header needs no `alg`, `kid` or `use` (RFC 9449
        // §4.2 shows none).
        jwk.common = CommonParameters::default();
        let thumbprint = super::jwk::thumbprint(&jwk)
            .ok_or_else(|| ConfigError::key("the key has no RFC 7638 thumbprint", None))?;
        // One signature now, so that a key the backend cannot sign with (an RSA key below its
        // minimum size, say) fails here rather than on every request.
        crypto::sign(provider, alg, &signing, b"certbound DPoP key check")
            .map_err(|e| ConfigError::key("the key cannot sign", Some(e.into())))?;
        Ok(Self {
            alg,
            alg_name: jose::name(alg),
            provider,
            signing,
            jwk,
            thumbprint,
        })
    }

    /// Names the algorithm of an Ed25519 key `Ed25519`, its fully-specified name (RFC 9864),
    /// instead of `EdDSA` in the proofs' `alg` header; `false` goes back to `EdDSA`. No effect
    /// on other keys.
    ///
    /// `EdDSA` is the default: every DPoP server knows it, while `Ed25519` is new (RFC 9864
    /// deprecates `EdDSA` for JOSE). A [`TokenSource`](crate::client::TokenSource) chooses for
    /// itself from the authorization server's `dpop_signing_alg_values_supported` when it
    /// discovers it: `Ed25519` when the server lists only that name.
    #[must_use]
    pub fn fully_specified_alg(mut self, fully_specified: bool) -> Self {
        self.alg_name = alg_name(self.alg, fully_specified);
        self
    }

    /// The proofs' `alg` header value: the [`algorithm`](Self::algorithm)'s JWA name, or
    /// `Ed25519` (see [`fully_specified_alg`](Self::fully_specified_alg)).
    pub fn alg_name(&self) -> &'static str {
        self.alg_name
    }

    /// The key as a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`), to save a generated
    /// key. Ed25519 keys are written in the PKCS#8 v1 form (as `openssl genpkey` writes them).
    ///
    /// The result is the private key: store it as a secret.
    pub fn to_pkcs8_pem(&self) -> String {
        let rewrapped;
        let der = match self.alg {
            Algorithm::PS256 => {
                // The same bytes `from_pkcs8_der` wrapped without error, so this does not fail
                // (and an empty document, were it to, is refused by every reader).
                rewrapped = super::pkcs8::wrap_rsa(self.signing.as_bytes()).unwrap_or_default();
                &rewrapped[..]
            }
            _ => self.signing.as_bytes(),
        };
        let body = STANDARD.encode(der);
        let mut pem = String::with_capacity(body.len() + body.len() / 64 + 64);
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            // Base64 output is ASCII, so every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The algorithm the proofs are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key, as the proofs' `jwk` header carries it: the key type's public members
    /// only (`kty`, `crv`, `x`, `y`; `kty`, `n`, `e`), no `alg`, `kid` or `use`.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key: the `jkt` that binds tokens to this
    /// key (RFC 9449 §6.1), and the `dpop_jkt` of an authorization request (§10).
    pub fn thumbprint(&self) -> JwkThumbprint {
        self.thumbprint
    }

    /// Starts a proof for a request with HTTP method `method` (as sent, e.g. `"GET"`) to `url`.
    /// The proof's `htu` is `url` without its query and fragment (RFC 9449 §4.2).
    pub fn proof<'a>(&'a self, method: &str, url: &str) -> ProofBuilder<'a> {
        ProofBuilder {
            key: self,
            htm: method.to_owned(),
            htu: htu(url).to_owned(),
            ath: None,
            nonce: None,
            iat: None,
            jti: None,
            alg_name: None,
            extra: Map::new(),
        }
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public facts only, never the key.
        f.debug_struct("DpopKey")
            .field("algorithm", &format_args!("{}", self.alg_name))
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// The `alg` header value for a key of `alg`: `Ed25519` (RFC 9864) for an Ed25519 key when
/// `fully_specified`, else the JWA name.
fn alg_name(alg: Algorithm, fully_specified: bool) -> &'static str {
    if fully_specified && alg == Algorithm::EdDSA {
        jose::ED25519
    } else {
        jose::name(alg)
    }
}

/// RFC 9449 §4.2: "The HTTP target URI ..., without query and fragment parts".
fn htu(url: &str) -> &str {
    url.find(['?', '#']).map_or(url, |end| &url[..end])
}

/// One DPoP proof being put together; made by [`DpopKey::proof`], finished by
/// [`sign`](Self::sign).
///
/// The proof carries `jti`, `htm`, `htu` and `iat` (RFC 9449 §4.2), and `ath` and `nonce`
/// when set.
pub struct ProofBuilder<'a> {
    key: &'a DpopKey,
    htm: String,
    htu: String,
    ath: Option<String>,
    nonce: Option<String>,
    iat: Option<i64>,
    jti: Option<String>,
    /// The `alg` header value, when not the key's own choice.
    alg_name: Option<&'static str>,
    extra: Map<String, Value>,
}

impl ProofBuilder<'_> {
    /// Names an Ed25519 key's algorithm `Ed25519` (or `EdDSA`) in this proof, whatever the
    /// key's own [`fully_specified_alg`](DpopKey::fully_specified_alg) says: for a client that
    /// learnt which name its server lists.
    #[cfg(feature = "client")]
    pub(crate) fn fully_specified_alg(mut self, fully_specified: bool) -> Self {
        self.alg_name = Some(alg_name(self.key.alg, fully_specified));
        self
    }

    /// Binds the proof to the access token it is sent with: `ath` is the base64url SHA-256 of
    /// `token` (RFC 9449 §4.2). Required when the request carries a DPoP-bound token.
    #[must_use]
    pub fn access_token(mut self, token: &str) -> Self {
        self.ath = Some(URL_SAFE_NO_PAD.encode(crate::support::sha256::sha256(token.as_bytes())));
        self
    }

    /// [`access_token`](Self::access_token) with the hash computed already: `ath` is the
    /// base64url SHA-256 of the token (for example `client::Token::ath`, computed once per
    /// token rather than once per request).
    #[must_use]
    pub fn access_token_hash(mut self, ath: &str) -> Self {
        self.ath = Some(ath.to_owned());
        self
    }

    /// The server-provided nonce (the last `DPoP-Nonce` response header, RFC 9449 §8, §9).
    #[must_use]
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.to_owned());
        self
    }

    /// The proof's `iat`, in seconds since the Unix epoch. By default the current time, read
    /// when the proof is [signed](Self::sign).
    #[must_use]
    pub fn issued_at(mut self, unix_seconds: i64) -> Self {
        self.iat = Some(unix_seconds);
        self
    }

    /// The proof's `jti`. By default 16 random bytes from the crypto backend, base64url: every
    /// proof must have a fresh one (RFC 9449 §11.1), so set it only to test a server's replay
    /// check.
    #[must_use]
    pub fn jti(mut self, jti: &str) -> Self {
        self.jti = Some(jti.to_owned());
        self
    }

    /// An extra claim, for extensions and for testing a server. A claim with the name of one
    /// the builder sets (`htm`, `iat`...) replaces it.
    #[must_use]
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.to_owned(), value);
        self
    }

    /// Signs the proof: the compact JWS to send in the `DPoP` request header. Its header has
    /// `typ` `dpop+jwt`, the key's `alg` and its public `jwk` (RFC 9449 §4.2).
    ///
    /// # Errors
    /// When the crypto backend fails to sign or to produce a random `jti`.
    pub fn sign(self) -> Result<String, jsonwebtoken::errors::Error> {
        let jti = match self.jti {
            Some(jti) => jti,
            None => random_jti()?,
        };
        let iat = self.iat.unwrap_or_else(unix_now_i64);
        let mut claims = Map::new();
        claims.insert("jti".to_owned(), Value::String(jti));
        claims.insert("htm".to_owned(), Value::String(self.htm));
        claims.insert("htu".to_owned(), Value::String(self.htu));
        claims.insert("iat".to_owned(), Value::from(iat));
        if let Some(ath) = self.ath {
            claims.insert("ath".to_owned(), Value::String(ath));
        }
        if let Some(nonce) = self.nonce {
            claims.insert("nonce".to_owned(), Value::String(nonce));
        }
        claims.extend(self.extra);

        let alg_name = self.alg_name.unwrap_or(self.key.alg_name);
        let header = serde_json::json!({
            "typ": "dpop+jwt",
            "alg": alg_name,
            "jwk": self.key.jwk,
        });
        let json =
            |e: serde_json::Error| jsonwebtoken::errors::Error::from(ErrorKind::Json(e.into()));
        let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(json)?);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims).map_err(json)?, &mut jws);
        let signature = crypto::sign(
            self.key.provider,
            self.key.alg,
            &self.key.signing,
            jws.as_bytes(),
        )?;
        jws.push('.');
        jws.push_str(&signature);
        Ok(jws)
    }
}

impl fmt::Debug for ProofBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field ends up in the proof, which travels in the clear; `ath` is a hash, never
        // the token.
        f.debug_struct("ProofBuilder")
            .field("key", self.key)
            .field("htm", &self.htm)
            .field("htu", &self.htu)
            .field("ath", &self.ath)
            .field("nonce", &self.nonce)
            .field("iat", &self.iat)
            .field("jti", &self.jti)
            .field("extra", &self.extra)
            .finish()
    }
}

fn random_jti() -> Result<String, jsonwebtoken::errors::Error> {
    let mut bytes = [0u8; 16];
    super::backend::fill_random(&mut bytes).map_err(|e| {
        jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::Provider(e.to_string()))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
#[path = "key_tests.rs"]
mod tests;

#[cfg(all(test, not(any(feature = "aws-lc-rs", feature = "rust-crypto"))))]
mod no_backend_tests {
    use super::*;

    #[test]
    fn without_a_backend_keys_fail_with_config_errors_not_panics() {
        let err = DpopKey::generate(Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("rust-crypto"), "{err}");
        // RFC 8037 Appendix A.1's key: loading it needs an installed jsonwebtoken provider.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
                   -----END PRIVATE KEY-----\n";
        let err = DpopKey::from_pkcs8_pem(pem.as_bytes()).unwrap_err();
        assert!(matches!(err, ConfigError::NoCryptoProvider { .. }), "{err}");
    }
}
