//! The rejection response: its body is swappable, its meaning is not.
//!
//! The layers build every rejection in two steps. First a [`RejectionResponse`] makes the
//! response, usually just its body; then the layer sets what makes it a rejection, whatever
//! the first step returned: the status from the [table](super), the `WWW-Authenticate`
//! challenge, for gRPC requests the trailers-only `grpc-status` / `grpc-message` headers, and
//! the typed [`AuthError`] in the response's extensions. A custom body can therefore never turn
//! a rejection into a success.

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use super::{grpc_percent_encode, www_authenticate, Challenge, ChallengeParams};
use crate::error::{AuthError, AuthErrorKind};

/// What a rejection is about, handed to a [`RejectionResponse`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Rejection<'a> {
    error: &'a AuthError,
    grpc: bool,
}

impl<'a> Rejection<'a> {
    /// The typed error (also attached to the response's extensions).
    pub fn error(&self) -> &'a AuthError {
        self.error
    }

    /// The kind of failure.
    pub fn kind(&self) -> AuthErrorKind {
        self.error.kind()
    }

    /// The HTTP status the layer gives the response (`200` for gRPC requests, which carry a
    /// `grpc-status` instead).
    pub fn status(&self) -> StatusCode {
        if self.grpc {
            StatusCode::OK
        } else {
            Challenge::of(self.error.kind()).status
        }
    }

    /// Whether the request was a gRPC call (`content-type: application/grpc*`). A gRPC
    /// rejection is trailers-only: its body should stay empty.
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }
}

/// Makes the response of a rejection before the layer marks it as one (see the
/// [module docs](crate::challenge)). Set on a layer with `with_rejection_response`, for example
/// [`BoundTokenLayer::with_rejection_response`](crate::BoundTokenLayer::with_rejection_response).
///
/// Implemented by [`DefaultRejection`] (an empty body) and by every
/// `Fn(&Rejection<'_>) -> Response<B>`.
///
/// # Example: RFC 9457 problem details
/// ```
/// use certbound::challenge::Rejection;
/// use certbound::{BoundTokenLayer, ClientCertificate, JwtValidator};
/// use http::{header, Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// fn problem(rejection: &Rejection<'_>) -> Response<String> {
///     if rejection.is_grpc() {
///         return Response::new(String::new());
///     }
///     let body = serde_json::json!({
///         "type": "about:blank",
///         "title": rejection.kind().description(),
///         "status": rejection.status().as_u16(),
///     });
///     Response::builder()
///         .header(header::CONTENT_TYPE, "application/problem+json")
///         .body(body.to_string())
///         .unwrap_or_default()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
/// let validator = JwtValidator::builder("https://as.example", "https://api.example")
///     .jwks_json(jwks)
///     .build()?;
/// let service = ServiceBuilder::new()
///     .layer(BoundTokenLayer::new(validator).with_rejection_response(problem))
///     .service_fn(|_req: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new("secret".to_owned()))
///     });
///
/// let mut request = Request::new(String::new());
/// request.extensions_mut().insert(ClientCertificate::from_der(b"client certificate".to_vec()));
/// let response = service.oneshot(request).await?;
///
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(response.headers()["www-authenticate"], "Bearer");
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// let body: serde_json::Value = serde_json::from_str(response.body())?;
/// assert_eq!(body["status"], 401);
/// assert_eq!(body["title"], "no access token");
/// # Ok(()) }
/// ```
pub trait RejectionResponse<B> {
    /// The response for `rejection`; its status, challenge and gRPC headers are overwritten by
    /// the layer.
    fn make_response(&self, rejection: &Rejection<'_>) -> Response<B>;
}

/// The default rejection response: an empty body.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: Default> RejectionResponse<B> for DefaultRejection {
    fn make_response(&self, _rejection: &Rejection<'_>) -> Response<B> {
        Response::new(B::default())
    }
}

impl<B, F> RejectionResponse<B> for F
where
    F: Fn(&Rejection<'_>) -> Response<B>,
{
    fn make_response(&self, rejection: &Rejection<'_>) -> Response<B> {
        self(rejection)
    }
}

/// Builds the rejection response for `error`: `responder`'s response, then an HTTP status with
/// `WWW-Authenticate`, or for gRPC a trailers-only `200` with `grpc-status`, and the typed
/// [`AuthError`] in the response's extensions.
pub(crate) fn reject<B, R>(
    error: AuthError,
    params: ChallengeParams<'_>,
    grpc: bool,
    responder: &R,
) -> Response<B>
where
    R: RejectionResponse<B> + ?Sized,
{
    trace_rejection(&error);
    let row = Challenge::of(error.kind());
    let mut res = responder.make_response(&Rejection {
        error: &error,
        grpc,
    });
    let headers = res.headers_mut();
    headers.remove(WWW_AUTHENTICATE);
    for value in www_authenticate(error.kind(), params).into_iter().flatten() {
        headers.append(WWW_AUTHENTICATE, value);
    }
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(u16::from(row.grpc_status)));
        match HeaderValue::from_str(&grpc_percent_encode(row.description)) {
            Ok(message) => headers.insert("grpc-message", message),
            Err(_) => headers.remove("grpc-message"),
        };
        *res.status_mut() = StatusCode::OK;
    } else {
        *res.status_mut() = row.status;
    }
    res.extensions_mut().insert(error);
    res
}

/// Debug-level trace of a rejection, without token material.
fn trace_rejection(_error: &AuthError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "certbound", kind = ?_error.kind(), detail = _error.detail(), "request rejected");
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthErrorKind as K;

    #[test]
    fn grpc_rejections_are_trailers_only_with_status() {
        let res: Response<()> = reject(
            AuthError::new(K::CertificateMismatch),
            ChallengeParams::default(),
            true,
            &DefaultRejection,
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
            K::InsufficientUserAuthentication,
            K::KeysUnavailable,
            K::Misconfigured,
        ];
        for kind in kinds {
            let row = Challenge::of(kind);
            let res: Response<()> = reject(
                AuthError::new(kind),
                ChallengeParams::default(),
                true,
                &DefaultRejection,
            );
            assert_eq!(res.status(), 200, "{kind:?}");
            assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc", "{kind:?}");
            assert_eq!(
                res.headers()["grpc-status"],
                row.grpc_status.to_string().as_str()
            );
            assert_eq!(res.headers()["grpc-message"], row.description, "{kind:?}");
            assert_eq!(
                res.headers().get(WWW_AUTHENTICATE),
                www_authenticate(kind, ChallengeParams::default())[0].as_ref(),
                "{kind:?}"
            );
            assert_eq!(
                res.extensions().get::<AuthError>().map(AuthError::kind),
                Some(kind)
            );
        }
    }

    #[test]
    fn a_custom_response_cannot_make_a_rejection_succeed() {
        let liar = |_: &Rejection<'_>| {
            Response::builder()
                .status(StatusCode::OK)
                .header(WWW_AUTHENTICATE, "Basic")
                .header("grpc-status", "0")
                .body("welcome".to_owned())
                .unwrap()
        };
        let res = reject(
            AuthError::new(K::CertificateMismatch),
            ChallengeParams::default(),
            false,
            &liar,
        );
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\""));
        assert_eq!(res.body(), "welcome");
        let res = reject(
            AuthError::new(K::KeysUnavailable),
            ChallengeParams::default(),
            true,
            &liar,
        );
        assert_eq!(res.headers()["grpc-status"], "14");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(K::KeysUnavailable)
        );
    }
}
