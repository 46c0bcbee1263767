//! Proof validation, RFC 9449 §4.3: every check but the nonce (checked by the caller, who knows
//! whether nonces are required) and replay (recorded only after everything else passed).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::HeaderName;
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};

use super::htu::ExpectedHtu;
use super::jwk::{is_private_member, thumbprint_of, PublicKey};
use super::key_cache::Memos;
use super::key_memo::{self, ProofKeyMemo, Remembered};
use super::proof_key::{self, Members, ProofKey};
use crate::error::{AuthError, AuthErrorKind};
use crate::support::crypto::JoseProvider;
use crate::support::encoding::json_object_text;
use crate::thumbprint::JwkThumbprint;

/// The `DPoP` request header.
pub(crate) static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The algorithms accepted by default: asymmetric, and each widely implemented (RFC 9449 §4.3
/// names none; FAPI 2.0 allows PS256, ES256 and EdDSA).
pub(crate) const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// What a proof is checked against, besides the request.
#[derive(Debug, Clone)]
pub(crate) struct ProofRules {
    pub(crate) algorithms: Vec<Algorithm>,
    /// How far in the past `iat` may be, in seconds.
    pub(crate) max_age: i64,
    /// How far in the future `iat` may be, in seconds (clock skew).
    pub(crate) max_ahead: i64,
    /// Longest `DPoP` header accepted.
    pub(crate) max_len: usize,
    /// Verifies signatures instead of the crate features' backend.
    pub(crate) provider: Option<JoseProvider>,
}

impl Default for ProofRules {
    fn default() -> Self {
        Self {
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            max_age: 60,
            max_ahead: 15,
            max_len: 8 * 1024,
            provider: None,
        }
    }
}

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) method: &'a str,
    /// The request's URL ([`ExpectedHtu::matches`] normalises both).
    pub(crate) htu: &'a ExpectedHtu<'a>,
    /// SHA-256 of the access token, when the request carries one. `None` (a token request)
    /// means the proof must have no `ath` at all.
    pub(crate) ath: Option<&'a [u8; 32]>,
    /// Unix time, seconds.
    pub(crate) now: i64,
}

/// A proof that passed every check of RFC 9449 §4.3 but the nonce and replay checks.
#[derive(Clone)]
pub struct VerifiedProof {
    jkt: JwkThumbprint,
    jti: Box<str>,
    iat: i64,
    nonce: Option<Box<str>>,
}

impl VerifiedProof {
    /// The RFC 7638 thumbprint of the key that signed the proof.
    pub fn jkt(&self) -> &JwkThumbprint {
        &self.jkt
    }

    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat` (Unix time, seconds).
    pub fn issued_at(&self) -> i64 {
        self.iat
    }

    /// The proof's `nonce`, if it has one.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

#[cfg(test)]
impl VerifiedProof {
    /// A proof signed by the key `jkt`, for tests of what comes after the proof check.
    pub(crate) fn by_key(jkt: JwkThumbprint) -> Self {
        Self {
            jkt,
            jti: "test".into(),
            iat: 0,
            nonce: None,
        }
    }
}

impl fmt::Debug for VerifiedProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The jti and nonce are one-time values of the client's; not for logs.
        f.debug_struct("VerifiedProof")
            .field("jkt", &self.jkt)
            .field("iat", &self.iat)
            .finish_non_exhaustive()
    }
}

fn invalid(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::InvalidDpopProof, detail)
}

/// The single `DPoP` header of `headers` (check 1: exactly one).
pub(crate) fn single_proof(headers: &HeaderMap, max_len: usize) -> Result<&str, AuthError> {
    let mut values = headers.get_all(&DPOP).iter();
    let value = values.next().ok_or_else(|| invalid("no DPoP proof"))?;
    if values.next().is_some() {
        return Err(invalid("more than one DPoP header"));
    }
    if value.len() > max_len {
        return Err(invalid("DPoP proof too long"));
    }
    value
        .to_str()
        .map_err(|_| invalid("DPoP proof is not ASCII"))
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    jwk: Option<ProofJwk<'a>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// The `jwk` header: the public members DPoP keys have, and whether any private member is there.
#[derive(Deserialize)]
struct ProofJwk<'a> {
    #[serde(borrow, default)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    y: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    e: Option<Cow<'a, str>>,
    #[serde(flatten, default)]
    others: Others,
}

/// The other members of a `jwk`: only whether one of them is private is kept.
#[derive(Default)]
struct Others {
    private: bool,
}

impl<'de> Deserialize<'de> for Others {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Others;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JWK members")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Others, A::Error> {
                let mut private = false;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    private |= is_private_member(&key);
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(Others { private })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `true` when the member is present, whatever its value (even `null`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    htm: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    htu: Option<Cow<'a, str>>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    // Present even when null: `Option`'s own deserializer would read null as absent.
    #[serde(borrow, default, deserialize_with = "present_member")]
    ath: Option<Member<'a>>,
    #[serde(borrow, default)]
    nonce: Option<Cow<'a, str>>,
}

/// A claim that is present, as a string when it is one (`null` and other types are present
/// too, and never a valid value).
enum Member<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Member<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Member<'a>, E> {
                Ok(Member::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Member<'a>, E> {
                Ok(Member::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Member<'a>, E> {
                Ok(Member::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Member<'a>, E> {
                Ok(Member::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Member<'a>, E> {
                Ok(Member::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Member<'a>, E> {
                Ok(Member::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Member<'a>, E> {
                Ok(Member::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Member<'a>, A::Error> {
                serde::de::IgnoredAny.visit_seq(seq).map(|_| Member::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Member<'a>, A::Error> {
                serde::de::IgnoredAny.visit_map(map).map(|_| Member::Other)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// `Some` for any value, `null` included.
fn present_member<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Member<'a>>, D::Error> {
    Member::deserialize(deserializer).map(Some)
}

/// The longest `jti` accepted (RFC 9449 leaves it open; 256 characters is ample for the 96+
/// random bits it asks for).
const MAX_JTI: usize = 256;

/// Checks `proof` (the `DPoP` header's value) against `expected` and `rules`. `memos`, the
/// connection's memory of its last proof key (when the caller has a connection) and the
/// process's of recent ones (see `ProofKeyCache`), save parsing the key and hashing its
/// thumbprint when the proof is by a key they hold; a proof that passes every check leaves its
/// key in both.
pub(crate) fn verify(
    proof: &str,
    expected: &Expected<'_>,
    rules: &ProofRules,
    memos: Memos<'_>,
) -> Result<VerifiedProof, AuthError> {
    // Check 2: a well-formed JWS in compact serialisation.
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("DPoP proof is not a compact JWS"));
    };
    // The connection's last proof, or else one the process remembers, when this proof's header
    // is its header, byte for byte: the header's checks passed then and depend only on its text
    // (see `ProofKeyMemo`); the rules' part (the alg allowed, the verifying backend) is checked
    // in `recall_header`.
    let by_header = memos.recall_header(header_b64, &rules.algorithms, rules.provider);
    let header_json;
    let header: Header<'_>;
    let (algorithm, source) = match by_header {
        Some((held, false)) => (held.algorithm(), KeySource::Recalled(held)),
        Some((held, true)) => (held.algorithm(), KeySource::Shared(held)),
        None => {
            header_json = URL_SAFE_NO_PAD
                .decode(header_b64)
                .map_err(|_| invalid("DPoP proof header is not base64url"))?;
            header = json_object_text(&header_json)
                .and_then(|text| serde_json::from_str(text).ok())
                .ok_or_else(|| invalid("DPoP proof header is not a JOSE header"))?;
            checked_header_key(&header, rules, memos.connection)?
        }
    };
    let key = match &source {
        KeySource::Recalled(held) | KeySource::Shared(held) => held.key(),
        KeySource::Derived(_, key, _) => key,
    };
    // Check 6: the signature, with that key.
    let message_len = header_b64.len() + 1 + claims_b64.len();
    let message = &proof.as_bytes()[..message_len];
    if !key.verify(algorithm, rules.provider, message, signature_b64)? {
        return Err(invalid("DPoP proof signature does not verify"));
    }
    // Check 3: the claims.
    let claims_json = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .map_err(|_| invalid("DPoP proof claims are not base64url"))?;
    let claims: Claims<'_> = json_object_text(&claims_json)
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| invalid("DPoP proof claims are not a JSON object of the right types"))?;
    let jti = claims.jti.ok_or_else(|| invalid("DPoP proof has no jti"))?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI {
        return Err(invalid("DPoP proof jti is empty or too long"));
    }
    // Check 8: htm.
    if claims.htm.as_deref() != Some(expected.method) {
        return Err(invalid("DPoP proof htm is not the request method"));
    }
    // Check 9: htu.
    let htu = claims
        .htu
        .as_deref()
        .ok_or_else(|| invalid("DPoP proof has no htu"))?;
    if !expected.htu.matches(htu) {
        return Err(invalid("DPoP proof htu is not the request URI"));
    }
    // Check 11: iat within the window.
    let iat = claims
        .iat
        .as_ref()
        .and_then(numeric_date)
        .ok_or_else(|| invalid("DPoP proof has no numeric iat"))?;
    if iat < expected.now.saturating_sub(rules.max_age) {
        return Err(invalid("DPoP proof is too old"));
    }
    if iat > expected.now.saturating_add(rules.max_ahead) {
        return Err(invalid("DPoP proof iat is in the future"));
    }
    // Check 12: ath, when the request carries an access token; none at all when it does not
    // (a token request: such a proof was made for another request).
    if let Some(hash) = expected.ath {
        let ath = match &claims.ath {
            Some(Member::Str(ath)) => ath,
            _ => return Err(invalid("DPoP proof has no ath string")),
        };
        // ath is the base64url SHA-256 of the token: parsed as strictly as a thumbprint, and
        // compared in constant time.
        let matches =
            JwkThumbprint::parse(ath).is_ok_and(|ath| ath == JwkThumbprint::from_digest(*hash));
        if !matches {
            return Err(invalid("DPoP proof ath is not the access token's hash"));
        }
    } else if claims.ath.is_some() {
        return Err(invalid("DPoP proof without an access token has ath"));
    }
    let jkt = match source {
        KeySource::Recalled(held) => held.jkt(),
        KeySource::Shared(held) => {
            // Every check passed: the connection's next proof with this header looks no further.
            let jkt = held.jkt();
            memos.remember(held, true);
            jkt
        }
        KeySource::Derived(public, key, members) => {
            let jkt =
                thumbprint_of(public).ok_or_else(|| invalid("DPoP proof jwk has no thumbprint"))?;
            // Every check here passed (header, signature and claims): the connection's next
            // proof by this key derives nothing, and one with this header (on any connection)
            // decodes nothing.
            if memos.any() {
                let held = Remembered::new(header_b64, &members, algorithm, key, jkt);
                memos.remember(Arc::new(held), false);
            }
            jkt
        }
    };
    Ok(VerifiedProof {
        jkt,
        jti: jti.into(),
        iat,
        nonce: claims.nonce.map(Into::into),
    })
}

/// Where a proof's key comes from. It lives on the stack for one proof's check: boxing the
/// large variant would cost an allocation per new key to save a copy of ~200 bytes.
#[allow(clippy::large_enum_variant)]
enum KeySource<'a> {
    /// The connection's memo: the same header, or the same members and `alg`, as its last
    /// verified proof.
    Recalled(Arc<Remembered>),
    /// The process's memo: the same header as a recent verified proof's, on any connection.
    Shared(Arc<Remembered>),
    /// Derived from the `jwk` now, with its thumbprint members and all its members.
    Derived(PublicKey<'a>, ProofKey, Members<'a>),
}

/// Checks 4, 5 and 7 of a decoded header (`typ`, no `crit`, the `alg` allowed, a public `jwk`
/// of the algorithm's type), and its key: from the connection's `memo` when it is the key of
/// its last proof (the same members and `alg`), else derived now.
fn checked_header_key<'h>(
    header: &'h Header<'_>,
    rules: &ProofRules,
    memo: Option<&ProofKeyMemo>,
) -> Result<(Algorithm, KeySource<'h>), AuthError> {
    // Check 4: typ.
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(invalid("DPoP proof typ is not dpop+jwt"));
    }
    if header.crit {
        return Err(invalid("DPoP proof header has crit"));
    }
    // Check 5: an asymmetric algorithm from the allow-list (the list never holds none or HS*);
    // `Ed25519` (RFC 9864) wherever `EdDSA` is allowed, the key checked below either way.
    let algorithm = crate::support::jose::algorithm(&header.alg)
        .filter(|a| rules.algorithms.contains(a))
        .ok_or_else(|| invalid("DPoP proof alg is not allowed"))?;
    // Check 7: a public key, of the algorithm's type.
    let jwk = header
        .jwk
        .as_ref()
        .ok_or_else(|| invalid("DPoP proof has no jwk header"))?;
    if jwk.others.private {
        return Err(invalid("DPoP proof jwk has a private member"));
    }
    let members = Members {
        kty: jwk.kty.as_deref(),
        crv: jwk.crv.as_deref(),
        x: jwk.x.as_deref(),
        y: jwk.y.as_deref(),
        n: jwk.n.as_deref(),
        e: jwk.e.as_deref(),
    };
    // The connection's last proof key, when these are its members (see `ProofKeyMemo`); else
    // the key derived now, and its thumbprint members.
    let recalled =
        memo.and_then(|memo| key_memo::recall(memo, &members, algorithm, rules.provider));
    let source = match recalled {
        Some(held) => KeySource::Recalled(held),
        None => {
            let (public, key) = proof_key::derive(&members, algorithm, rules.provider)?;
            KeySource::Derived(public, key, members)
        }
    };
    Ok((algorithm, source))
}

/// A NumericDate (RFC 7519 §2) as whole seconds; fractions are cut, not rounded up.
fn numeric_date(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
