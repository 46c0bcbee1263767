//! The rejection table: one pure mapping from [`AuthErrorKind`] to HTTP status, RFC 6750 error
//! code and gRPC status code, and the two renderers built on it (HTTP `WWW-Authenticate`, and
//! gRPC trailers-only responses).
//!
//! | condition | HTTP | `WWW-Authenticate` | gRPC |
//! |---|---|---|---|
//! | no token in the request | 401 | `Bearer` (`realm` if configured) | 16 UNAUTHENTICATED |
//! | malformed `Authorization` | 400 | `Bearer error="invalid_request"` | 3 INVALID_ARGUMENT |
//! | bad signature / alg / iss / aud / exp / nbf / inactive / unknown kid | 401 | `Bearer error="invalid_token"` | 16 |
//! | no client certificate, thumbprint mismatch, unbound token | 401 | `Bearer error="invalid_token"` | 16 |
//! | required scope missing | 403 | `Bearer error="insufficient_scope", scope="..."` | 7 PERMISSION_DENIED |
//! | keys / introspection unreachable and nothing cached | 503 | — | 14 UNAVAILABLE |
//! | no certificate source configured (server misconfigured) | 500 | — | 13 INTERNAL |
//!
//! `error_description` is fixed text per kind; it never echoes the token.
//!
//! The body of a rejection comes from a [`RejectionResponse`] (by default none); its status,
//! challenge, gRPC status and the typed [`AuthError`](crate::AuthError) in its extensions are
//! always the layer's.
//!
//! # Example
//! ```
//! use certbound::challenge::Challenge;
//! use certbound::AuthErrorKind;
//! use http::StatusCode;
//!
//! let row = Challenge::of(AuthErrorKind::CertificateMismatch);
//! assert_eq!(row.status, StatusCode::UNAUTHORIZED);
//! assert_eq!(row.error, Some("invalid_token"));
//! assert_eq!(row.grpc_status, 16); // UNAUTHENTICATED
//! assert_eq!(row.description, "access token bound to another certificate");
//!
//! // Server-side failures carry no challenge: the client is not to blame.
//! let row = Challenge::of(AuthErrorKind::KeysUnavailable);
//! assert_eq!((row.status, row.challenge, row.grpc_status), (StatusCode::SERVICE_UNAVAILABLE, false, 14));
//! ```

use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};

use crate::error::{AuthErrorKind, ConfigError};

mod response;
pub(crate) use response::reject;
pub use response::{DefaultRejection, Rejection, RejectionResponse};

/// One row of the rejection table. Fields may be added (it is `#[non_exhaustive]`); read them,
/// or take a row with [`Challenge::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Challenge {
    /// HTTP status of the rejection.
    pub status: StatusCode,
    /// RFC 6750 §3.1 `error` code, when the challenge carries one.
    pub error: Option<&'static str>,
    /// Whether a `WWW-Authenticate: Bearer` challenge is sent at all (not for 500 / 503).
    pub challenge: bool,
    /// gRPC status code (`grpc-status`) for gRPC requests.
    pub grpc_status: u8,
    /// Fixed `error_description` text ([`AuthErrorKind::description`]).
    pub description: &'static str,
}

impl Challenge {
    /// The row for `kind`.
    pub fn of(kind: AuthErrorKind) -> Self {
        use AuthErrorKind as K;
        let row = |status: StatusCode, error: Option<&'static str>, grpc_status: u8| {
            let challenge =
                status.as_u16() == 401 || status.as_u16() == 400 || status.as_u16() == 403;
            Challenge {
                status,
                error,
                challenge,
                grpc_status,
                description: kind.description(),
            }
        };
        const INVALID_TOKEN: Option<&str> = Some("invalid_token");
        const UNAUTH: StatusCode = StatusCode::UNAUTHORIZED;
        match kind {
            K::MissingToken => row(UNAUTH, None, 16),
            K::InvalidRequest => row(StatusCode::BAD_REQUEST, Some("invalid_request"), 3),
            K::InvalidToken => row(UNAUTH, INVALID_TOKEN, 16),
            K::TokenExpired => row(UNAUTH, INVALID_TOKEN, 16),
            K::TokenNotYetValid => row(UNAUTH, INVALID_TOKEN, 16),
            K::TokenInactive => row(UNAUTH, INVALID_TOKEN, 16),
            K::UnknownKey => row(UNAUTH, INVALID_TOKEN, 16),
            K::MissingCertificate => row(UNAUTH, INVALID_TOKEN, 16),
            K::CertificateMismatch => row(UNAUTH, INVALID_TOKEN, 16),
            K::UnboundToken => row(UNAUTH, INVALID_TOKEN, 16),
            K::InsufficientScope => row(StatusCode::FORBIDDEN, Some("insufficient_scope"), 7),
            K::KeysUnavailable => row(StatusCode::SERVICE_UNAVAILABLE, None, 14),
            K::IntrospectionUnavailable => row(StatusCode::SERVICE_UNAVAILABLE, None, 14),
            K::Misconfigured => row(StatusCode::INTERNAL_SERVER_ERROR, None, 13),
        }
    }
}

/// What a rendered challenge may add to the row: the realm and the scope a route requires.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChallengeParams<'a> {
    pub(crate) realm: Option<&'a str>,
    pub(crate) scope: Option<&'a str>,
}

/// Renders the `WWW-Authenticate` value for `kind`, or `None` where the table has none.
///
/// `realm` and `scope` were validated as quoted-string safe when they were configured.
pub(crate) fn www_authenticate(
    kind: AuthErrorKind,
    params: ChallengeParams<'_>,
) -> Option<HeaderValue> {
    let row = Challenge::of(kind);
    if !row.challenge {
        return None;
    }
    let mut value = String::from("Bearer");
    let mut sep = " ";
    let mut attr = |name: &str, val: &str| {
        value.push_str(sep);
        value.push_str(name);
        value.push_str("=\"");
        value.push_str(val);
        value.push('"');
        sep = ", ";
    };
    if let Some(realm) = params.realm {
        attr("realm", realm);
    }
    if let Some(error) = row.error {
        attr("error", error);
        attr("error_description", row.description);
        if kind == AuthErrorKind::InsufficientScope {
            if let Some(scope) = params.scope {
                attr("scope", scope);
            }
        }
    }
    HeaderValue::from_str(&value).ok()
}

/// Whether the request is a gRPC call (`content-type: application/grpc*`).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Percent-encodes `text` for the `grpc-message` header (gRPC over HTTP/2, "Responses"): UTF-8
/// bytes outside `%x20-%x24 / %x26-%x7E` become `%XX`, so the value is always visible ASCII.
pub(crate) fn grpc_percent_encode(text: &str) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| (0x20..=0x7E).contains(&b) && b != b'%';
    if text.bytes().all(plain) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for b in text.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            crate::support::encoding::push_hex(&mut out, &[b], true);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Checks scopes given to a builder and joins them for the challenge.
pub(crate) fn scope_challenge(scopes: &[String]) -> Result<String, ConfigError> {
    for scope in scopes {
        if !is_quotable(scope) || scope.contains(' ') {
            return Err(ConfigError::invalid(
                "scope",
                format!("{scope:?} is not a valid scope token (RFC 6749 §3.3)"),
            ));
        }
    }
    Ok(scopes.join(" "))
}

/// Checks that a realm can be sent as a quoted-string without escaping.
pub(crate) fn checked_realm(realm: String) -> Result<String, ConfigError> {
    if is_quotable(&realm) {
        Ok(realm)
    } else {
        Err(ConfigError::invalid(
            "realm",
            format!("{realm:?} needs escaping"),
        ))
    }
}

/// Whether `value` can be put inside a quoted-string without escaping: RFC 6749 §3.3
/// scope-token characters plus space.
pub(crate) fn is_quotable(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| {
            b == b' ' || b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthErrorKind as K;

    #[test]
    fn table_matches_the_design() {
        let rows = [
            (K::MissingToken, 401, None, 16),
            (K::InvalidRequest, 400, Some("invalid_request"), 3),
            (K::InvalidToken, 401, Some("invalid_token"), 16),
            (K::TokenExpired, 401, Some("invalid_token"), 16),
            (K::TokenNotYetValid, 401, Some("invalid_token"), 16),
            (K::TokenInactive, 401, Some("invalid_token"), 16),
            (K::UnknownKey, 401, Some("invalid_token"), 16),
            (K::MissingCertificate, 401, Some("invalid_token"), 16),
            (K::CertificateMismatch, 401, Some("invalid_token"), 16),
            (K::UnboundToken, 401, Some("invalid_token"), 16),
            (K::InsufficientScope, 403, Some("insufficient_scope"), 7),
            (K::KeysUnavailable, 503, None, 14),
            (K::IntrospectionUnavailable, 503, None, 14),
            (K::Misconfigured, 500, None, 13),
        ];
        for (kind, status, error, grpc) in rows {
            let row = Challenge::of(kind);
            assert_eq!(row.status.as_u16(), status, "{kind:?}");
            assert_eq!(row.error, error, "{kind:?}");
            assert_eq!(row.grpc_status, grpc, "{kind:?}");
            assert!(is_quotable(row.description), "{kind:?}");
        }
    }

    #[test]
    fn missing_token_challenge_has_no_error_attribute() {
        let v = www_authenticate(K::MissingToken, ChallengeParams::default()).unwrap();
        assert_eq!(v, "Bearer");
        let v = www_authenticate(
            K::MissingToken,
            ChallengeParams {
                realm: Some("api"),
                scope: None,
            },
        )
        .unwrap();
        assert_eq!(v, "Bearer realm=\"api\"");
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let v = www_authenticate(
            K::InsufficientScope,
            ChallengeParams {
                realm: None,
                scope: Some("read write"),
            },
        )
        .unwrap();
        assert_eq!(
            v,
            "Bearer error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"read write\""
        );
    }

    #[test]
    fn server_side_failures_carry_no_challenge() {
        assert!(www_authenticate(K::KeysUnavailable, ChallengeParams::default()).is_none());
        assert!(
            www_authenticate(K::IntrospectionUnavailable, ChallengeParams::default()).is_none()
        );
        assert!(www_authenticate(K::Misconfigured, ChallengeParams::default()).is_none());
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert!(matches!(
            grpc_percent_encode("invalid access token"),
            std::borrow::Cow::Borrowed("invalid access token")
        ));
        assert_eq!(grpc_percent_encode("50% off"), "50%25 off");
        assert_eq!(grpc_percent_encode("a\r\nb"), "a%0D%0Ab");
        assert_eq!(
            grpc_percent_encode("caf\u{e9} \u{1F512}"),
            "caf%C3%A9 %F0%9F%94%92"
        );
        assert_eq!(grpc_percent_encode("~ !$&"), "~ !$&");
    }

    #[test]
    fn quotable_rejects_quotes_and_backslashes() {
        assert!(is_quotable("read write:x"));
        assert!(!is_quotable("a\"b"));
        assert!(!is_quotable("a\\b"));
        assert!(!is_quotable("a\nb"));
        assert!(!is_quotable(""));
    }
}
