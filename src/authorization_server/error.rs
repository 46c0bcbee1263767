//! Token-endpoint rejections: [`ClientAuthError`] and its one rendering as an RFC 6749 §5.2
//! JSON error response.

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

/// What kind of failure rejected a token-endpoint request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuthErrorKind {
    /// Malformed request (`400 invalid_request`): not a form, a parameter given twice
    /// (RFC 6749 §3.2), `client_id` in the body and in HTTP Basic disagreeing, more than one
    /// authentication method (RFC 6749 §2.3), malformed encoding.
    InvalidRequest,
    /// Body larger than the limit (`413`, body `invalid_request`).
    PayloadTooLarge,
    /// Not a `POST` (`405`, body `invalid_request`).
    MethodNotAllowed,
    /// Client authentication failed (`401 invalid_client`): no `client_id`, unknown client,
    /// client registered for another method, no certificate, or a certificate that does not
    /// authenticate the client.
    InvalidClient,
    /// The client registry failed (`503 temporarily_unavailable`).
    RegistryUnavailable,
    /// A `self_signed_tls_client_auth` client's `jwks_uri` could not be fetched and no keys
    /// of it are cached (`503 temporarily_unavailable`): nothing is known about the
    /// certificate yet, so the client may try again.
    JwksUriUnavailable,
    /// No certificate source is configured, or the token endpoint's DPoP settings cannot
    /// check a proof: the server is misconfigured (`500 server_error`).
    Misconfigured,
    /// The request's DPoP proof fails a check of RFC 9449 §4.3 (`400 invalid_dpop_proof`,
    /// RFC 9449 §5): two `DPoP` headers, malformed, a bad signature, `htm` or `htu` not those
    /// of the token request, an `ath` (a token request presents no access token), too old, or
    /// replayed.
    InvalidDpopProof,
    /// Nonces are required and the proof has none, or a stale or forged one (`400
    /// use_dpop_nonce`, RFC 9449 §8); the response carries a fresh `DPoP-Nonce`.
    UseDpopNonce,
    /// The DPoP replay store could not answer (`503 temporarily_unavailable`): nothing is
    /// known about the proof's freshness, so no token is issued.
    ReplayStoreUnavailable,
}

impl ClientAuthErrorKind {
    /// HTTP status and RFC 6749 `error` code: the one table.
    pub const fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
            Self::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            Self::RegistryUnavailable | Self::JwksUriUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            Self::Misconfigured => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            Self::InvalidDpopProof => (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            Self::UseDpopNonce => (StatusCode::BAD_REQUEST, "use_dpop_nonce"),
            Self::ReplayStoreUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
        }
    }

    /// The fixed `error_description` sent to the client. For `invalid_client` it is the same
    /// whatever the cause, so that it tells an attacker nothing.
    const fn description(self) -> &'static str {
        match self {
            Self::InvalidRequest => "malformed token request",
            Self::PayloadTooLarge => "request body too large",
            Self::MethodNotAllowed => "use POST",
            Self::InvalidClient => "client authentication failed",
            Self::RegistryUnavailable | Self::JwksUriUnavailable => "try again later",
            Self::Misconfigured => "server misconfigured",
            Self::InvalidDpopProof => "invalid DPoP proof",
            Self::UseDpopNonce => "a DPoP nonce from the server is required",
            Self::ReplayStoreUnavailable => "try again later",
        }
    }
}

/// A rejected token-endpoint request: an opaque error with a [`kind`](Self::kind).
///
/// Attached to the rejection response's extensions. Its [`detail`](Self::detail) says precisely
/// why (for logs); the response itself only carries the kind's fixed text.
#[derive(Clone)]
pub struct ClientAuthError {
    kind: ClientAuthErrorKind,
    detail: &'static str,
}

impl ClientAuthError {
    pub(crate) const fn new(kind: ClientAuthErrorKind, detail: &'static str) -> Self {
        Self { kind, detail }
    }

    /// The kind of failure.
    pub const fn kind(&self) -> ClientAuthErrorKind {
        self.kind
    }

    /// The precise fixed reason (for logs, never sent).
    pub const fn detail(&self) -> &'static str {
        self.detail
    }
}

impl fmt::Debug for ClientAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish()
    }
}

impl fmt::Display for ClientAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail)
    }
}

impl std::error::Error for ClientAuthError {}

/// The RFC 6749 §5.2 response for `error`: JSON body, `Cache-Control: no-store`. When the
/// client used HTTP Basic and fails to authenticate, the `401` carries a `Basic` challenge
/// (RFC 6749 §5.2).
pub(crate) fn error_response<B: From<Bytes>>(error: ClientAuthError, basic: bool) -> Response<B> {
    let (status, code) = error.kind.status_and_code();
    // Fixed ASCII strings without quotes or backslashes: no JSON escaping needed.
    let body = format!(
        "{{\"error\":\"{code}\",\"error_description\":\"{}\"}}",
        error.kind.description()
    );
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    match error.kind {
        ClientAuthErrorKind::InvalidClient if basic => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"token endpoint\""),
            );
        }
        ClientAuthErrorKind::MethodNotAllowed => {
            headers.insert(ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
    response.extensions_mut().insert(error);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientAuthErrorKind as K;

    #[test]
    fn table_matches_rfc6749_section_5_2_and_rfc9449_section_5() {
        let rows = [
            (K::InvalidRequest, 400, "invalid_request"),
            (K::PayloadTooLarge, 413, "invalid_request"),
            (K::MethodNotAllowed, 405, "invalid_request"),
            (K::InvalidClient, 401, "invalid_client"),
            (K::RegistryUnavailable, 503, "temporarily_unavailable"),
            (K::JwksUriUnavailable, 503, "temporarily_unavailable"),
            (K::Misconfigured, 500, "server_error"),
            (K::InvalidDpopProof, 400, "invalid_dpop_proof"),
            (K::UseDpopNonce, 400, "use_dpop_nonce"),
            (K::ReplayStoreUnavailable, 503, "temporarily_unavailable"),
        ];
        for (kind, status, code) in rows {
            let response: Response<Bytes> =
                error_response(ClientAuthError::new(kind, "detail"), false);
            assert_eq!(response.status().as_u16(), status, "{kind:?}");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error"], code, "{kind:?}");
            assert!(!body.to_string().contains("detail"), "{kind:?}");
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(
                response
                    .extensions()
                    .get::<ClientAuthError>()
                    .unwrap()
                    .kind(),
                kind
            );
        }
    }

    #[test]
    fn basic_clients_get_a_basic_challenge() {
        let error = ClientAuthError::new(K::InvalidClient, "x");
        let response: Response<Bytes> = error_response(error.clone(), true);
        assert!(response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let response: Response<Bytes> = error_response(error, false);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
