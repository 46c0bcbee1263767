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

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::error::{AuthError, AuthErrorKind};

/// One row of the rejection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// HTTP status of the rejection.
    pub status: StatusCode,
    /// RFC 6750 §3.1 `error` code, when the challenge carries one.
    pub error: Option<&'static str>,
    /// Whether a `WWW-Authenticate: Bearer` challenge is sent at all (not for 500 / 503).
    pub challenge: bool,
    /// gRPC status code (`grpc-status`) for gRPC requests.
    pub grpc_status: u8,
    /// Fixed `error_description` text.
    pub description: &'static str,
}

impl Challenge {
    /// The row for `kind`.
    pub const fn of(kind: AuthErrorKind) -> Self {
        use AuthErrorKind as K;
        const fn row(
            status: StatusCode,
            error: Option<&'static str>,
            grpc_status: u8,
            description: &'static str,
        ) -> Challenge {
            let challenge =
                status.as_u16() == 401 || status.as_u16() == 400 || status.as_u16() == 403;
            Challenge {
                status,
                error,
                challenge,
                grpc_status,
                description,
            }
        }
        const INVALID_TOKEN: Option<&str> = Some("invalid_token");
        const UNAUTH: StatusCode = StatusCode::UNAUTHORIZED;
        match kind {
            K::MissingToken => row(UNAUTH, None, 16, "no access token"),
            K::InvalidRequest => row(
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                3,
                "malformed authorization header",
            ),
            K::InvalidToken => row(UNAUTH, INVALID_TOKEN, 16, "invalid access token"),
            K::TokenExpired => row(UNAUTH, INVALID_TOKEN, 16, "access token expired"),
            K::TokenNotYetValid => row(UNAUTH, INVALID_TOKEN, 16, "access token not yet valid"),
            K::TokenInactive => row(UNAUTH, INVALID_TOKEN, 16, "access token not active"),
            K::UnknownKey => row(UNAUTH, INVALID_TOKEN, 16, "unknown signing key"),
            K::MissingCertificate => row(UNAUTH, INVALID_TOKEN, 16, "client certificate required"),
            K::CertificateMismatch => row(
                UNAUTH,
                INVALID_TOKEN,
                16,
                "access token bound to another certificate",
            ),
            K::UnboundToken => row(
                UNAUTH,
                INVALID_TOKEN,
                16,
                "access token not certificate-bound",
            ),
            K::InsufficientScope => row(
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
                7,
                "insufficient scope",
            ),
            K::KeysUnavailable => row(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                14,
                "token validation temporarily unavailable",
            ),
            K::IntrospectionUnavailable => row(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                14,
                "token introspection temporarily unavailable",
            ),
            K::Misconfigured => row(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                13,
                "server misconfigured",
            ),
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

/// Builds the rejection response for `error`: an HTTP status with `WWW-Authenticate`, or for
/// gRPC a trailers-only `200` with `grpc-status`. The typed [`AuthError`] is attached to the
/// response's extensions.
pub(crate) fn reject<B: Default>(
    error: AuthError,
    params: ChallengeParams<'_>,
    grpc: bool,
) -> Response<B> {
    let row = Challenge::of(error.kind());
    let mut res = Response::new(B::default());
    let headers = res.headers_mut();
    if let Some(v) = www_authenticate(error.kind(), params) {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(u16::from(row.grpc_status)));
        if let Ok(message) = HeaderValue::from_str(&grpc_percent_encode(row.description)) {
            headers.insert("grpc-message", message);
        }
    } else {
        *res.status_mut() = row.status;
    }
    res.extensions_mut().insert(error);
    res
}

/// Percent-encodes `text` for the `grpc-message` header (gRPC over HTTP/2, "Responses"): UTF-8
/// bytes outside `%x20-%x24 / %x26-%x7E` become `%XX`, so the value is always visible ASCII.
pub(crate) fn grpc_percent_encode(text: &str) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| (0x20..=0x7E).contains(&b) && b != b'%';
    if text.bytes().all(plain) {
        return std::borrow::Cow::Borrowed(text);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() + 16);
    for b in text.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    std::borrow::Cow::Owned(out)
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
    fn grpc_rejections_are_trailers_only_with_status() {
        let res: Response<()> = reject(
            AuthError::new(K::CertificateMismatch),
            ChallengeParams::default(),
            true,
        );
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert!(res.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
    }

    #[test]
    fn grpc_rejections_carry_the_row_in_every_grpc_header() {
        let kinds = [
            K::MissingToken,
            K::InvalidRequest,
            K::InvalidToken,
            K::CertificateMismatch,
            K::InsufficientScope,
            K::KeysUnavailable,
            K::Misconfigured,
        ];
        for kind in kinds {
            let row = Challenge::of(kind);
            let res: Response<()> = reject(AuthError::new(kind), ChallengeParams::default(), true);
            assert_eq!(res.status(), 200, "{kind:?}");
            assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc", "{kind:?}");
            assert_eq!(
                res.headers()["grpc-status"],
                row.grpc_status.to_string().as_str()
            );
            assert_eq!(res.headers()["grpc-message"], row.description, "{kind:?}");
            assert_eq!(
                res.headers().get(WWW_AUTHENTICATE),
                www_authenticate(kind, ChallengeParams::default()).as_ref(),
                "{kind:?}"
            );
            assert_eq!(
                res.extensions().get::<AuthError>().map(AuthError::kind),
                Some(kind)
            );
        }
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
