//! The rejection table: one pure mapping from [`AuthErrorKind`] to HTTP status, RFC 6750 error
//! code and gRPC status code, and the two renderers built on it (HTTP `WWW-Authenticate`, and
//! gRPC trailers-only responses).
//!
//! | condition | HTTP | `WWW-Authenticate` | gRPC |
//! |---|---|---|---|
//! | no token in the request | 401 | `Bearer`, and `DPoP algs="…"` when DPoP is on (`realm` if configured; no error) | 16 UNAUTHENTICATED |
//! | malformed `Authorization` | 400 | `… error="invalid_request"` | 3 INVALID_ARGUMENT |
//! | bad signature / alg / iss / aud / exp / nbf / inactive / unknown kid | 401 | `… error="invalid_token"` | 16 |
//! | no client certificate, thumbprint mismatch, unbound token, proof by another key than `cnf.jkt` | 401 | `… error="invalid_token"` | 16 |
//! | DPoP-bound token presented as `Bearer` | 401 | `Bearer error="invalid_token"` and `DPoP algs="…"` | 16 |
//! | bad DPoP proof (any RFC 9449 §4.3 check, a replayed `jti`) | 401 | `DPoP error="invalid_dpop_proof", algs="…"` | 16 |
//! | DPoP nonce required, stale or forged | 401 | `DPoP error="use_dpop_nonce", algs="…"` and a `DPoP-Nonce` header | 16 |
//! | required scope missing | 403 | `… error="insufficient_scope", scope="..."` | 7 PERMISSION_DENIED |
//! | step-up required: `acr` or `auth_time` missing, `acr` not accepted, authentication older than `max_age` | 401 | `… error="insufficient_user_authentication", acr_values="...", max_age=N` | 16 |
//! | keys / introspection / DPoP replay store unreachable and nothing cached | 503 | — | 14 UNAVAILABLE |
//! | no certificate source configured (server misconfigured) | 500 | — | 13 INTERNAL |
//!
//! `…` is the scheme the client used (`Bearer`, or `DPoP` with its `algs`). `error_description`
//! is fixed text per kind; it never echoes the token or the proof. When the layer has a
//! protected resource metadata URL (`resource_metadata`, see
//! [`ResourceMetadata`](crate::ResourceMetadata)), every challenge of the table, with or
//! without an error code and on every scheme, ends with `resource_metadata="<url>"`
//! (RFC 9728 §5.1); gRPC rejections carry the same `www-authenticate` value.
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

pub(crate) mod gate;
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
    /// Whether a `WWW-Authenticate` challenge is sent at all (not for 500 / 503).
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
            K::InsufficientUserAuthentication => {
                row(UNAUTH, Some("insufficient_user_authentication"), 16)
            }
            K::KeysUnavailable => row(StatusCode::SERVICE_UNAVAILABLE, None, 14),
            K::IntrospectionUnavailable => row(StatusCode::SERVICE_UNAVAILABLE, None, 14),
            K::Misconfigured => row(StatusCode::INTERNAL_SERVER_ERROR, None, 13),
            K::InvalidDpopProof => row(UNAUTH, Some("invalid_dpop_proof"), 16),
            K::UseDpopNonce => row(UNAUTH, Some("use_dpop_nonce"), 16),
            K::DpopKeyMismatch => row(UNAUTH, INVALID_TOKEN, 16),
            K::DpopTokenAsBearer => row(UNAUTH, INVALID_TOKEN, 16),
            K::ReplayStoreUnavailable => row(StatusCode::SERVICE_UNAVAILABLE, None, 14),
        }
    }
}

/// The authentication scheme of the request's `Authorization` header, as far as it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// No credentials, or not read yet.
    #[default]
    Unknown,
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// What a rendered challenge may add to the row: the realm, the scope a route requires, the
/// step-up a route requires (RFC 9470 §3: `acr_values`, `max_age`), the scheme the client
/// used, DPoP's `algs` when the layer accepts DPoP, and where the resource's metadata is
/// (RFC 9728 §5.1).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChallengeParams<'a> {
    pub(crate) realm: Option<&'a str>,
    pub(crate) scope: Option<&'a str>,
    /// The acceptable `acr` values, space-separated (sent with `insufficient_user_authentication`).
    pub(crate) acr_values: Option<&'a str>,
    /// The greatest acceptable age of the authentication in seconds (sent with
    /// `insufficient_user_authentication`, as a token).
    pub(crate) max_age: Option<u64>,
    pub(crate) scheme: Scheme,
    /// `Some` (the space-separated algorithms) when DPoP is accepted.
    pub(crate) dpop_algs: Option<&'a str>,
    /// The URL of the protected resource metadata (RFC 9728 §5.1), sent on every challenge,
    /// with or without an error code.
    pub(crate) resource_metadata: Option<&'a str>,
}

/// Renders the `WWW-Authenticate` values for `kind`: none where the table has no challenge,
/// else one or two (a `Bearer` and a `DPoP` challenge).
///
/// `realm`, `scope`, `acr_values` and `resource_metadata` were validated as quoted-string safe
/// when they were configured; `algs` are algorithm names.
pub(crate) fn www_authenticate(
    kind: AuthErrorKind,
    params: ChallengeParams<'_>,
) -> [Option<HeaderValue>; 2] {
    use AuthErrorKind as K;
    let row = Challenge::of(kind);
    if !row.challenge {
        return [None, None];
    }
    let dpop = params.dpop_algs.is_some();
    let (bearer, dpop_error, bare_dpop) = match kind {
        // RFC 9449 §7.1: a server that accepts both offers both; the missing one gets no error.
        K::MissingToken => (true, false, dpop),
        K::InvalidDpopProof | K::UseDpopNonce => (false, true, false),
        K::DpopTokenAsBearer => (true, false, dpop),
        _ if params.scheme == Scheme::Dpop => (false, true, false),
        _ => (true, false, false),
    };
    let with_error = kind != K::MissingToken;
    let bearer = bearer.then(|| render("Bearer", row, kind, params, with_error, None));
    let dpop = if dpop_error {
        Some(render("DPoP", row, kind, params, true, params.dpop_algs))
    } else if bare_dpop {
        Some(render("DPoP", row, kind, params, false, params.dpop_algs))
    } else {
        None
    };
    match bearer {
        Some(bearer) => [bearer, dpop.flatten()],
        None => [dpop.flatten(), None],
    }
}

fn render(
    scheme: &str,
    row: Challenge,
    kind: AuthErrorKind,
    params: ChallengeParams<'_>,
    with_error: bool,
    algs: Option<&str>,
) -> Option<HeaderValue> {
    let mut value = String::from(scheme);
    let mut sep = " ";
    // `quoted`: a quoted-string (RFC 9110 §5.6.4); else a token (a number here).
    let mut attr = |name: &str, val: &str, quoted: bool| {
        value.push_str(sep);
        value.push_str(name);
        value.push('=');
        if quoted {
            value.push('"');
        }
        value.push_str(val);
        if quoted {
            value.push('"');
        }
        sep = ", ";
    };
    if let Some(realm) = params.realm {
        attr("realm", realm, true);
    }
    if let (true, Some(error)) = (with_error, row.error) {
        attr("error", error, true);
        attr("error_description", row.description, true);
        match kind {
            AuthErrorKind::InsufficientScope => {
                if let Some(scope) = params.scope {
                    attr("scope", scope, true);
                }
            }
            AuthErrorKind::InsufficientUserAuthentication => {
                if let Some(acr_values) = params.acr_values {
                    attr("acr_values", acr_values, true);
                }
                if let Some(max_age) = params.max_age {
                    attr("max_age", &max_age.to_string(), false);
                }
            }
            _ => {}
        }
    }
    if let Some(algs) = algs {
        attr("algs", algs, true);
    }
    // RFC 9728 §5.1: on every challenge, so that a client without a token (or with the wrong
    // one) can find the authorization servers and what they must issue.
    if let Some(url) = params.resource_metadata {
        attr("resource_metadata", url, true);
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
    space_separated(
        scopes,
        "scope",
        "is not a valid scope token (RFC 6749 §3.3)",
    )
}

/// Checks the `acr` values given to a builder (at least one; each printable, without spaces,
/// quotes or backslashes) and joins them for the challenge (RFC 9470 §3: space-separated).
pub(crate) fn acr_values_challenge(values: &[String]) -> Result<String, ConfigError> {
    if values.is_empty() {
        return Err(ConfigError::invalid(
            "acr_values",
            "at least one acceptable acr value is needed",
        ));
    }
    space_separated(
        values,
        "acr_values",
        "cannot be sent in acr_values (RFC 9470 §3)",
    )
}

/// `values` joined for a space-separated quoted-string parameter: each must be quotable
/// without escaping and hold no space (`option` and `why` name the refused one).
fn space_separated(
    values: &[String],
    option: &'static str,
    why: &str,
) -> Result<String, ConfigError> {
    if let Some(bad) = values
        .iter()
        .find(|value| !is_quotable(value) || value.contains(' '))
    {
        return Err(ConfigError::invalid(option, format!("{bad:?} {why}")));
    }
    Ok(values.join(" "))
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

/// Checks a protected resource metadata URL for the challenges' `resource_metadata`
/// (RFC 9728 §5.1): an absolute `https` URL (RFC 9728 §3) without fragment, that can be sent
/// as a quoted-string without escaping.
pub(crate) fn checked_resource_metadata_url(url: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::Url {
        option: "resource_metadata",
        url: url.to_owned(),
        reason,
    };
    let host = match (url.get(..8), url.get(8..)) {
        (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("https://") => rest,
        _ => return Err(bad("the metadata URL must be an https URL (RFC 9728 §3)")),
    };
    if host.is_empty() || host.starts_with('/') {
        return Err(bad("the metadata URL has no host"));
    }
    if url.contains('#') {
        return Err(bad("the metadata URL has no fragment"));
    }
    if !is_quotable(url) || url.contains(' ') {
        return Err(bad(
            "the metadata URL holds characters a challenge cannot carry",
        ));
    }
    Ok(url.to_owned())
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
            (
                K::InsufficientUserAuthentication,
                401,
                Some("insufficient_user_authentication"),
                16,
            ),
            (K::KeysUnavailable, 503, None, 14),
            (K::IntrospectionUnavailable, 503, None, 14),
            (K::Misconfigured, 500, None, 13),
            (K::InvalidDpopProof, 401, Some("invalid_dpop_proof"), 16),
            (K::UseDpopNonce, 401, Some("use_dpop_nonce"), 16),
            (K::DpopKeyMismatch, 401, Some("invalid_token"), 16),
            (K::DpopTokenAsBearer, 401, Some("invalid_token"), 16),
            (K::ReplayStoreUnavailable, 503, None, 14),
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
        let [v, none] = www_authenticate(K::MissingToken, ChallengeParams::default());
        assert_eq!(v.unwrap(), "Bearer");
        assert!(none.is_none());
        let [v, _] = www_authenticate(
            K::MissingToken,
            ChallengeParams {
                realm: Some("api"),
                ..ChallengeParams::default()
            },
        );
        assert_eq!(v.unwrap(), "Bearer realm=\"api\"");
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let [v, _] = www_authenticate(
            K::InsufficientScope,
            ChallengeParams {
                scope: Some("read write"),
                ..ChallengeParams::default()
            },
        );
        assert_eq!(
            v.unwrap(),
            "Bearer error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"read write\""
        );
    }

    #[test]
    fn insufficient_user_authentication_names_the_acr_values_and_max_age() {
        let params = |scheme, acr_values, max_age| ChallengeParams {
            realm: Some("api"),
            scope: Some("admin"),
            acr_values,
            max_age,
            scheme,
            ..ChallengeParams::default()
        };
        let [v, none] = www_authenticate(
            K::InsufficientUserAuthentication,
            params(Scheme::Bearer, Some("urn:a urn:b"), Some(300)),
        );
        assert_eq!(
            v.unwrap(),
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", acr_values=\"urn:a urn:b\", max_age=300"
        );
        assert!(none.is_none());
        let [v, none] = www_authenticate(
            K::InsufficientUserAuthentication,
            params(Scheme::Dpop, None, Some(0)),
        );
        assert_eq!(
            v.unwrap(),
            "DPoP realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"insufficient user authentication\", max_age=0"
        );
        assert!(none.is_none());
        // The step-up parameters belong to this error only.
        let [v, _] = www_authenticate(
            K::InsufficientScope,
            params(Scheme::Bearer, Some("urn:a"), Some(5)),
        );
        assert_eq!(
            v.unwrap(),
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\""
        );
    }

    #[test]
    fn server_side_failures_carry_no_challenge() {
        for kind in [
            K::KeysUnavailable,
            K::IntrospectionUnavailable,
            K::ReplayStoreUnavailable,
            K::Misconfigured,
        ] {
            let dpop = ChallengeParams {
                dpop_algs: Some("ES256"),
                scheme: Scheme::Dpop,
                ..ChallengeParams::default()
            };
            assert_eq!(www_authenticate(kind, dpop), [None, None], "{kind:?}");
        }
    }

    #[test]
    fn dpop_challenges_follow_the_scheme_the_client_used() {
        let algs = Some("ES256 EdDSA");
        let params = |scheme| ChallengeParams {
            realm: Some("api"),
            scheme,
            dpop_algs: algs,
            ..ChallengeParams::default()
        };
        let show = |values: [Option<HeaderValue>; 2]| {
            values
                .into_iter()
                .flatten()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            show(www_authenticate(K::MissingToken, params(Scheme::Unknown))),
            [
                "Bearer realm=\"api\"",
                "DPoP realm=\"api\", algs=\"ES256 EdDSA\""
            ]
        );
        assert_eq!(
            show(www_authenticate(K::InvalidDpopProof, params(Scheme::Dpop))),
            ["DPoP realm=\"api\", error=\"invalid_dpop_proof\", error_description=\"invalid DPoP proof\", algs=\"ES256 EdDSA\""]
        );
        assert_eq!(
            show(www_authenticate(K::DpopKeyMismatch, params(Scheme::Dpop))),
            ["DPoP realm=\"api\", error=\"invalid_token\", error_description=\"access token bound to another DPoP key\", algs=\"ES256 EdDSA\""]
        );
        assert_eq!(
            show(www_authenticate(K::DpopTokenAsBearer, params(Scheme::Bearer))),
            [
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"DPoP-bound access token presented as a bearer token\"",
                "DPoP realm=\"api\", algs=\"ES256 EdDSA\""
            ]
        );
        assert_eq!(
            show(www_authenticate(K::InvalidToken, params(Scheme::Bearer))),
            ["Bearer realm=\"api\", error=\"invalid_token\", error_description=\"invalid access token\""]
        );
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
    fn every_challenge_points_at_the_resource_metadata() {
        const URL: &str = "https://api.example/.well-known/oauth-protected-resource/v1";
        let params = |scheme, dpop_algs| ChallengeParams {
            realm: Some("api"),
            scope: Some("admin"),
            scheme,
            dpop_algs,
            resource_metadata: Some(URL),
            ..ChallengeParams::default()
        };
        let show = |values: [Option<HeaderValue>; 2]| {
            values
                .into_iter()
                .flatten()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let param = format!("resource_metadata=\"{URL}\"");
        assert_eq!(
            show(www_authenticate(
                K::MissingToken,
                params(Scheme::Unknown, None)
            )),
            [format!("Bearer realm=\"api\", {param}")]
        );
        assert_eq!(
            show(www_authenticate(
                K::MissingToken,
                params(Scheme::Unknown, Some("ES256"))
            )),
            [
                format!("Bearer realm=\"api\", {param}"),
                format!("DPoP realm=\"api\", algs=\"ES256\", {param}")
            ]
        );
        assert_eq!(
            show(www_authenticate(
                K::InsufficientScope,
                params(Scheme::Bearer, None)
            )),
            [format!("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\", {param}")]
        );
        // Every row with a challenge carries it, on every scheme it is rendered for.
        let kinds = [
            K::MissingToken,
            K::InvalidRequest,
            K::InvalidToken,
            K::TokenExpired,
            K::TokenNotYetValid,
            K::TokenInactive,
            K::UnknownKey,
            K::MissingCertificate,
            K::CertificateMismatch,
            K::UnboundToken,
            K::InsufficientScope,
            K::InsufficientUserAuthentication,
            K::InvalidDpopProof,
            K::UseDpopNonce,
            K::DpopKeyMismatch,
            K::DpopTokenAsBearer,
        ];
        for kind in kinds {
            for scheme in [Scheme::Unknown, Scheme::Bearer, Scheme::Dpop] {
                let values = show(www_authenticate(kind, params(scheme, Some("ES256"))));
                assert!(!values.is_empty(), "{kind:?}");
                for value in values {
                    assert!(value.ends_with(&param), "{kind:?} {scheme:?}: {value}");
                }
            }
        }
        let none = ChallengeParams {
            resource_metadata: Some(URL),
            ..ChallengeParams::default()
        };
        assert_eq!(www_authenticate(K::KeysUnavailable, none), [None, None]);
    }

    #[test]
    fn a_resource_metadata_url_must_be_https_and_quotable() {
        assert!(checked_resource_metadata_url(
            "https://api.example/.well-known/oauth-protected-resource"
        )
        .is_ok());
        for bad in [
            "http://api.example/.well-known/oauth-protected-resource",
            "https://",
            "https:///path",
            "/.well-known/oauth-protected-resource",
            "https://api.example/x#frag",
            "https://api.example/a b",
            "https://api.example/\"",
            "https://api.example/\\",
            "",
        ] {
            assert!(checked_resource_metadata_url(bad).is_err(), "{bad:?}");
        }
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
