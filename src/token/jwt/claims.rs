//! What a JWT access token must look like: the JOSE header fields read before choosing the key,
//! the `typ` rule of RFC 9068, and the claims checks.

use std::borrow::Cow;

use crate::error::{AuthError, AuthErrorKind};
use crate::support::encoding::json_object_text;
use crate::token::fields::{Fields, Loose};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Room for a decoded JOSE header on the stack (longer headers are decoded on the heap).
pub(super) const HEADER_BUF: usize = 1024;

/// The JOSE header fields certbound acts on, read before choosing the key (the only reading of
/// the header: the signature covers its bytes as sent).
#[derive(serde::Deserialize)]
pub(super) struct JoseHeader<'a> {
    #[serde(borrow)]
    pub(super) alg: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(super) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(super) typ: Option<Cow<'a, str>>,
    /// RFC 7515 §4.1.11: a `crit` header names extensions the recipient must understand, and
    /// certbound understands none, so its presence (whatever its value) refuses the token.
    #[serde(default, deserialize_with = "present")]
    pub(super) crit: bool,
}

/// An optional string, borrowed from the JSON text unless it has escapes. serde borrows a
/// `Cow<str>` field, but not one inside an `Option`: that would allocate `kid` and `typ` on
/// every token (two allocations, ~500 instructions per new token).
fn borrowed<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    use crate::token::fields::Loose;
    use serde::Deserialize as _;
    match Option::<Loose<'a>>::deserialize(deserializer)? {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s)),
        Some(_) => Err(serde::de::Error::custom("kid and typ are strings")),
    }
}

/// `true` when the member is present, whatever its value (even `null`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    use serde::Deserialize as _;
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

impl<'a> JoseHeader<'a> {
    pub(super) fn read(token: &str, buf: &'a mut [u8; HEADER_BUF]) -> Result<Self, AuthError> {
        let malformed = || invalid("malformed JWT or JOSE header");
        let segment = token.split('.').next().unwrap_or_default().as_bytes();
        if segment.len() > HEADER_BUF {
            // Oversized headers are rare and suspicious; only they are decoded on the heap.
            let decoded = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
            let text = json_object_text(&decoded).ok_or_else(malformed)?;
            return serde_json::from_str::<JoseHeader<'_>>(text)
                .map(JoseHeader::into_owned)
                .map_err(|_| malformed());
        }
        // base64 needs at most 3/4 of the encoded length, so this always fits in `buf`.
        let n = URL_SAFE_NO_PAD
            .decode_slice(segment, buf)
            .map_err(|_| malformed())?;
        let text = json_object_text(&buf[..n]).ok_or_else(malformed)?;
        serde_json::from_str(text).map_err(|_| malformed())
    }

    fn into_owned(self) -> JoseHeader<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        JoseHeader {
            alg: own(self.alg),
            kid: self.kid.map(own),
            typ: self.typ.map(own),
            crit: self.crit,
        }
    }
}

pub(super) fn invalid(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::InvalidToken, detail)
}

/// RFC 9068 §2.1 / RFC 8725 §3.11: `at+jwt`, optionally with the `application/` prefix.
pub(super) fn is_at_jwt(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// The claims every token must pass (RFC 9068 §4, RFC 7519 §4.1): `iss` exactly the issuer,
/// `aud` (a string or an array of strings) naming one of the audiences, `exp` required, `exp`
/// and `nbf` with `leeway` seconds of tolerance.
///
/// Checked here rather than by jsonwebtoken's `decode`, which would reach its process-wide
/// crypto provider (see `support::crypto`) and cannot read RFC 9864's `Ed25519` header; the
/// semantics are jsonwebtoken's: the same checks in the same order, NumericDates as
/// non-negative integers or finite non-negative numbers rounded to whole seconds.
#[derive(Debug, Clone)]
pub(super) struct ClaimRules {
    pub(super) issuer: String,
    pub(super) audiences: Vec<String>,
    pub(super) leeway: u64,
}

impl ClaimRules {
    /// Checks `claims` at `now` (Unix seconds).
    pub(super) fn check(&self, claims: &Fields<'_>, now: u64) -> Result<(), AuthError> {
        let exp = claims.exp.as_ref().map(numeric_date);
        let iss = claims.iss.as_ref().map(Loose::as_str);
        let aud = claims.aud.as_ref().map(audiences);
        // Required (a claim of the wrong type counts as missing, as with jsonwebtoken).
        if !matches!(exp, Some(Some(_)))
            || !matches!(iss, Some(Some(_)))
            || !matches!(aud, Some(Some(_)))
        {
            return Err(invalid("a required claim is missing"));
        }
        let nbf = match claims.nbf.as_ref().map(numeric_date) {
            None => None,
            Some(Some(nbf)) => Some(nbf),
            Some(None) => return Err(invalid("malformed nbf")),
        };
        if exp
            .flatten()
            .is_some_and(|exp| exp < now.saturating_sub(self.leeway))
        {
            return Err(AuthError::with_detail(
                AuthErrorKind::TokenExpired,
                "token expired",
            ));
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(AuthError::with_detail(
                AuthErrorKind::TokenNotYetValid,
                "token not yet valid (nbf)",
            ));
        }
        if iss.flatten() != Some(self.issuer.as_str()) {
            return Err(invalid("wrong issuer"));
        }
        let named = aud
            .flatten()
            .is_some_and(|mut named| named.any(|a| self.audiences.iter().any(|ours| ours == a)));
        if !named {
            return Err(invalid("wrong audience"));
        }
        Ok(())
    }
}

/// A NumericDate as whole seconds: a non-negative integer, or a finite non-negative number
/// rounded; `None` for anything else.
fn numeric_date(value: &Loose<'_>) -> Option<u64> {
    let number = value.as_number()?;
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

/// The audiences an `aud` claim names: a string, or an array of strings (`None` for anything
/// else, an array with a non-string member included).
fn audiences<'a>(aud: &'a Loose<'_>) -> Option<impl Iterator<Item = &'a str>> {
    let (single, many) = match aud {
        Loose::Str(one) => (Some(one.as_ref()), None),
        Loose::Strings(all) => (None, Some(all.iter().map(AsRef::as_ref))),
        _ => return None,
    };
    Some(single.into_iter().chain(many.into_iter().flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jose_headers_are_read_from_escaped_and_oversized_json() {
        let enc = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let mut buf = [0u8; HEADER_BUF];
        let h = JoseHeader::read(
            &format!("{}.x.y", enc(r#"{"alg":"ES256","kid":"a\u0062"}"#)),
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            (&*h.alg, h.kid.as_deref(), h.typ.as_deref()),
            ("ES256", Some("ab"), None)
        );
        let padding = "p".repeat(2 * HEADER_BUF);
        let big = format!(
            "{}.x.y",
            enc(&format!(
                r#"{{"alg":"RS256","typ":"at+jwt","x":"{padding}"}}"#
            ))
        );
        let mut buf = [0u8; HEADER_BUF];
        let h = JoseHeader::read(&big, &mut buf).unwrap();
        assert_eq!((&*h.alg, h.typ.as_deref()), ("RS256", Some("at+jwt")));
        for bad in [
            r#"{"alg":"ES256","alg":"HS256"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":5}"#,
            "[]",
        ] {
            let mut buf = [0u8; HEADER_BUF];
            assert!(
                JoseHeader::read(&format!("{}.x.y", enc(bad)), &mut buf).is_err(),
                "{bad}"
            );
        }
        let mut buf = [0u8; HEADER_BUF];
        assert!(JoseHeader::read("!!!.x.y", &mut buf).is_err());
    }

    #[test]
    fn jose_headers_that_are_arrays_or_not_utf8_are_refused() {
        // Found by the jose_header fuzz target (fuzz/regressions/jose_header): serde_json skips
        // the members no field names without checking their UTF-8, and serde reads a JSON
        // array into a struct.
        let padding = "p".repeat(HEADER_BUF);
        let oversized = format!("{{\"alg\":\"ES256\",\"x\":\"{padding}");
        for json in [
            br#"["ES256"]"#.to_vec(),
            b"{\"alg\":\"ES256\",\"x\":\"\xb0\"}".to_vec(),
            [oversized.as_bytes(), b"\xb0\"}"].concat(),
        ] {
            let token = format!("{}.x.y", URL_SAFE_NO_PAD.encode(&json));
            let mut buf = [0u8; HEADER_BUF];
            assert!(JoseHeader::read(&token, &mut buf).is_err(), "{json:?}");
        }
    }
}
