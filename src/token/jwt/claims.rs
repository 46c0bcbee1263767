//! What a JWT access token must look like: the JOSE header fields read before choosing the key,
//! the `typ` rule of RFC 9068, the claims checks handed to jsonwebtoken, and how jsonwebtoken's
//! verdicts map to [`AuthError`]s.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use crate::error::{AuthError, AuthErrorKind};
use crate::support::encoding::json_object_text;

/// Room for a decoded JOSE header on the stack (longer headers are decoded on the heap).
pub(super) const HEADER_BUF: usize = 1024;

/// The JOSE header fields certbound acts on, read before choosing the key. jsonwebtoken's own
/// `decode` reads the header again and checks the algorithm against the one chosen here, so a
/// disagreement between the two parsers can only reject.
#[derive(serde::Deserialize)]
pub(super) struct JoseHeader<'a> {
    #[serde(borrow)]
    pub(super) alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) typ: Option<Cow<'a, str>>,
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

/// jsonwebtoken's checks for tokens of `alg`: `iss` exactly `issuer`, `aud` one of `audiences`,
/// `exp` required, `exp` and `nbf` with `leeway` seconds of tolerance.
pub(super) fn validation(
    alg: Algorithm,
    issuer: &str,
    audiences: &[String],
    leeway: u64,
) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.set_audience(audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v.leeway = leeway;
    v
}

/// jsonwebtoken's verdict as an [`AuthError`], with jsonwebtoken's error as its source unless
/// that error's text may quote the token (base64, JSON and UTF-8 errors echo input).
pub(super) fn map_jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    use AuthErrorKind as K;
    let kind = error.kind();
    let refusal = match kind {
        JwtErrorKind::ExpiredSignature => AuthError::with_detail(K::TokenExpired, "token expired"),
        JwtErrorKind::ImmatureSignature => {
            AuthError::with_detail(K::TokenNotYetValid, "token not yet valid (nbf)")
        }
        JwtErrorKind::InvalidSignature => invalid("bad signature"),
        JwtErrorKind::InvalidIssuer => invalid("wrong issuer"),
        JwtErrorKind::InvalidAudience => invalid("wrong audience"),
        JwtErrorKind::MissingRequiredClaim(_) => invalid("a required claim is missing"),
        JwtErrorKind::InvalidAlgorithm => invalid("algorithm does not fit the key"),
        _ => invalid("malformed JWT"),
    };
    if matches!(
        kind,
        JwtErrorKind::Base64(_) | JwtErrorKind::Json(_) | JwtErrorKind::Utf8(_)
    ) {
        refusal
    } else {
        refusal.with_source(error)
    }
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
