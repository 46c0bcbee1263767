//! Credentials extraction: `Authorization: Bearer` (RFC 6750 §2.1) and `Authorization: DPoP`
//! (RFC 9449 §7.1).

use http::header::AUTHORIZATION;
use http::{HeaderMap, Uri};

use crate::challenge::Scheme;
use crate::error::{AuthError, AuthErrorKind};
use crate::support::encoding::is_b64token;

/// Returns the scheme and token of the request's single `Authorization` header, before the
/// token's characters are checked ([`b64token`] does that). `DPoP` is a scheme only when
/// `dpop` is on; otherwise it is "another scheme". On failure, the scheme as far as it was
/// read comes with the error (the challenge answers in that scheme).
///
/// - no `Authorization` header, another scheme, or an `access_token` query parameter alone
///   (RFC 6750 §2.3 is not supported, since tokens in URLs end up in logs, so such a request
///   carries no credentials this server accepts; RFC 6750 §3.1): [`AuthErrorKind::MissingToken`];
/// - two headers, an empty token, or an `access_token` query parameter beside an
///   `Authorization` header (two methods): [`AuthErrorKind::InvalidRequest`];
/// - a token longer than `max_len`: [`AuthErrorKind::InvalidToken`].
pub(crate) fn credentials<'a>(
    headers: &'a HeaderMap,
    uri: &Uri,
    max_len: usize,
    dpop: bool,
) -> Result<(Scheme, &'a [u8]), (Scheme, AuthError)> {
    use AuthErrorKind as K;
    let refuse = |scheme, kind, detail| Err((scheme, AuthError::with_detail(kind, detail)));
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if has_query_token(uri) {
        // RFC 6750 §3.1: a token in the query string alone is an authentication method this
        // server does not support, so the request lacks authentication (401, no error code);
        // with an Authorization header as well, the client used two methods (400).
        return match first {
            None => refuse(
                Scheme::Unknown,
                K::MissingToken,
                "access token in the query string is not accepted",
            ),
            Some(_) => refuse(
                Scheme::Unknown,
                K::InvalidRequest,
                "access token in both the query string and the Authorization header",
            ),
        };
    }
    let Some(value) = first else {
        return refuse(Scheme::Unknown, K::MissingToken, "no Authorization header");
    };
    if values.next().is_some() {
        return refuse(
            Scheme::Unknown,
            K::InvalidRequest,
            "more than one Authorization header",
        );
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = if is_bearer(bytes) {
        // The common case in a few instructions (issue 26): the same answer as below.
        (Scheme::Bearer, &bytes[BEARER.len()..])
    } else {
        let (name, rest) = match bytes.iter().position(|&b| b == b' ') {
            Some(i) => (&bytes[..i], &bytes[i..]),
            None => (bytes, &b""[..]),
        };
        // Scheme names are case-insensitive (RFC 9110 §11.1).
        let scheme = if name.eq_ignore_ascii_case(b"bearer") {
            Scheme::Bearer
        } else if dpop && name.eq_ignore_ascii_case(b"dpop") {
            Scheme::Dpop
        } else {
            return refuse(
                Scheme::Unknown,
                K::MissingToken,
                "Authorization scheme is not one accepted",
            );
        };
        (scheme, rest)
    };
    // "Bearer" / "DPoP" 1*SP b64token
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() {
        return refuse(scheme, K::InvalidRequest, "empty access token");
    }
    if token.len() > max_len {
        return refuse(scheme, K::InvalidToken, "access token too long");
    }
    Ok((scheme, token))
}

/// `token` as a string if it is a b64token, else [`AuthErrorKind::InvalidRequest`]. The layer
/// skips this for the token the connection presented last (checked then).
pub(crate) fn b64token(token: &[u8]) -> Result<&str, AuthError> {
    let malformed = || {
        AuthError::with_detail(
            AuthErrorKind::InvalidRequest,
            "access token is not a b64token",
        )
    };
    if !is_b64token(token) {
        return Err(malformed());
    }
    // b64token characters are ASCII, so this cannot fail; no panic either way.
    std::str::from_utf8(token).map_err(|_| malformed())
}

/// `Bearer ` with its space, in any case.
const BEARER: &[u8; 7] = b"bearer ";

/// Whether `value` starts with `Bearer ` in any case: its first seven bytes, the six letters
/// ORed with `0x20` (which maps exactly `B` and `b` to `b`, and so on for each letter), compared
/// at once.
fn is_bearer(value: &[u8]) -> bool {
    let Some(head) = value.first_chunk::<7>() else {
        return false;
    };
    let mut folded = *head;
    for byte in &mut folded[..6] {
        *byte |= 0x20;
    }
    folded == *BEARER
}

fn has_query_token(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|name| name == "access_token")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn extract(values: &[&[u8]], uri: &str) -> Result<String, AuthErrorKind> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        credentials(&headers, &uri.parse().unwrap(), 64, false)
            .map_err(|(_, e)| e)
            .and_then(|(_, token)| b64token(token))
            .map(str::to_owned)
            .map_err(|e| e.kind())
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(extract(&[b"bearer abc.def"], "/").unwrap(), "abc.def");
        assert_eq!(extract(&[b"BEARER abc"], "/").unwrap(), "abc");
        assert_eq!(extract(&[b"Bearer   abc=="], "/").unwrap(), "abc==");
    }

    #[test]
    fn the_quick_bearer_check_agrees_with_the_general_reading_of_the_scheme() {
        // Every value of the form "<6 bytes><1 byte>x" whose 6 bytes are a case variant of
        // "bearer" or differ from one in a bit, and whose seventh byte is a space or not.
        let mut heads: Vec<[u8; 7]> = Vec::new();
        for case in 0u8..64 {
            let mut head = *b"bearer ";
            for (i, byte) in head[..6].iter_mut().enumerate() {
                if case & (1 << i) != 0 {
                    byte.make_ascii_uppercase();
                }
            }
            heads.push(head);
            for flip in [0x01, 0x40, 0x80] {
                let mut other = head;
                other[(case % 6) as usize] ^= flip;
                heads.push(other);
            }
            for last in [b'\t', b'x', 0x00] {
                let mut other = head;
                other[6] = last;
                heads.push(other);
            }
        }
        for head in heads {
            let general = head[..6].eq_ignore_ascii_case(b"bearer") && head[6] == b' ';
            assert_eq!(is_bearer(&head), general, "{head:?}");
            assert!(!is_bearer(&head[..6]), "{head:?}: too short");
        }
    }

    #[test]
    fn missing_or_other_scheme_is_missing_token() {
        assert_eq!(extract(&[], "/"), Err(AuthErrorKind::MissingToken));
        assert_eq!(
            extract(&[b"Basic dXNlcjpwYXNz"], "/"),
            Err(AuthErrorKind::MissingToken)
        );
        assert_eq!(
            extract(&[b"Bearerx abc"], "/"),
            Err(AuthErrorKind::MissingToken)
        );
    }

    #[test]
    fn malformed_headers_are_invalid_requests() {
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a=b",
            b"Bearer ====",
            b"Bearer a\tb",
            b"Bearer \xff",
        ] {
            assert_eq!(
                extract(&[bad], "/"),
                Err(AuthErrorKind::InvalidRequest),
                "{bad:?}"
            );
        }
        assert_eq!(
            extract(&[b"Bearer a", b"Bearer a"], "/"),
            Err(AuthErrorKind::InvalidRequest)
        );
    }

    #[test]
    fn a_token_of_exactly_the_maximum_length_is_taken() {
        let token = "t".repeat(64);
        assert_eq!(
            extract(&[format!("Bearer {token}").as_bytes()], "/").unwrap(),
            token
        );
        let longer = format!("Bearer {token}t");
        assert_eq!(
            extract(&[longer.as_bytes()], "/"),
            Err(AuthErrorKind::InvalidToken)
        );
    }

    #[test]
    fn query_string_tokens_are_refused() {
        assert_eq!(
            extract(&[], "/x?access_token=abc"),
            Err(AuthErrorKind::MissingToken)
        );
        assert_eq!(
            extract(&[b"Bearer abc"], "/x?a=1&access_token=abc"),
            Err(AuthErrorKind::InvalidRequest)
        );
        assert_eq!(
            extract(&[b"Bearer abc"], "/x?my_access_token=1").unwrap(),
            "abc"
        );
    }

    #[test]
    fn the_dpop_scheme_is_read_only_when_dpop_is_on() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("dPoP abc.def"));
        let uri: Uri = "/".parse().unwrap();
        let (scheme, token) = credentials(&headers, &uri, 64, true).unwrap();
        assert_eq!((scheme, token), (Scheme::Dpop, &b"abc.def"[..]));
        let (scheme, error) = credentials(&headers, &uri, 64, false).unwrap_err();
        assert_eq!(
            (scheme, error.kind()),
            (Scheme::Unknown, AuthErrorKind::MissingToken)
        );
        headers.insert(AUTHORIZATION, HeaderValue::from_static("DPoP "));
        let (scheme, error) = credentials(&headers, &uri, 64, true).unwrap_err();
        assert_eq!(
            (scheme, error.kind()),
            (Scheme::Dpop, AuthErrorKind::InvalidRequest)
        );
    }

    #[test]
    fn overlong_tokens_are_invalid_tokens() {
        let long = format!("Bearer {}", "a".repeat(65));
        assert_eq!(
            extract(&[long.as_bytes()], "/"),
            Err(AuthErrorKind::InvalidToken)
        );
    }
}
