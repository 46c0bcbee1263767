//! Bearer token extraction (RFC 6750 §2.1).

use http::header::AUTHORIZATION;
use http::{HeaderMap, Uri};

use crate::error::{AuthError, AuthErrorKind};
use crate::support::encoding::is_b64token;

/// Returns the token of the request's single `Authorization: Bearer` header, before its
/// characters are checked ([`b64token`] does that).
///
/// - no `Authorization` header, or another scheme: [`AuthErrorKind::MissingToken`];
/// - two headers, an empty token, or an `access_token` query parameter (RFC 6750 §2.3 is not
///   supported, and tokens in URLs end up in logs): [`AuthErrorKind::InvalidRequest`];
/// - a token longer than `max_len`: [`AuthErrorKind::InvalidToken`].
pub(crate) fn bearer_bytes<'a>(
    headers: &'a HeaderMap,
    uri: &Uri,
    max_len: usize,
) -> Result<&'a [u8], AuthError> {
    use AuthErrorKind as K;
    if has_query_token(uri) {
        return Err(AuthError::with_detail(
            K::InvalidRequest,
            "access token in the query string",
        ));
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::with_detail(
            K::MissingToken,
            "no Authorization header",
        ));
    };
    if values.next().is_some() {
        return Err(AuthError::with_detail(
            K::InvalidRequest,
            "more than one Authorization header",
        ));
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i..]),
        None => (bytes, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::with_detail(
            K::MissingToken,
            "Authorization scheme is not Bearer",
        ));
    }
    // RFC 6750 §2.1: "Bearer" 1*SP b64token
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() {
        return Err(AuthError::with_detail(
            K::InvalidRequest,
            "empty bearer token",
        ));
    }
    if token.len() > max_len {
        return Err(AuthError::with_detail(
            K::InvalidToken,
            "bearer token too long",
        ));
    }
    Ok(token)
}

/// `token` as a string if it is a b64token, else [`AuthErrorKind::InvalidRequest`]. The layer
/// skips this for the token the connection presented last (checked then).
pub(crate) fn b64token(token: &[u8]) -> Result<&str, AuthError> {
    let malformed = || {
        AuthError::with_detail(
            AuthErrorKind::InvalidRequest,
            "bearer token is not a b64token",
        )
    };
    if !is_b64token(token) {
        return Err(malformed());
    }
    // b64token characters are ASCII, so this cannot fail; no panic either way.
    std::str::from_utf8(token).map_err(|_| malformed())
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
        bearer_bytes(&headers, &uri.parse().unwrap(), 64)
            .and_then(b64token)
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
    fn query_string_tokens_are_refused() {
        assert_eq!(
            extract(&[], "/x?access_token=abc"),
            Err(AuthErrorKind::InvalidRequest)
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
    fn overlong_tokens_are_invalid_tokens() {
        let long = format!("Bearer {}", "a".repeat(65));
        assert_eq!(
            extract(&[long.as_bytes()], "/"),
            Err(AuthErrorKind::InvalidToken)
        );
    }
}
