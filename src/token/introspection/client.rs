//! The HTTP exchange with the introspection endpoint (RFC 7662 §2.1): the request, the
//! client's authentication to the authorization server, and finding the endpoint by discovery.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use crate::metrics::Upstream;
use crate::readiness::Readiness;
use crate::upstream::{self as fetch, check_url, FetchError, HttpStatus, Observed};

/// Where the introspection endpoint is, and how to authenticate to it.
pub(super) struct Exchange {
    pub(super) endpoint: Endpoint,
    pub(super) http: reqwest::Client,
    pub(super) auth: ClientAuth,
    pub(super) fetch_timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) allow_http: bool,
    /// Bounds the calls in flight (`max_concurrent_calls`).
    pub(super) calls: Semaphore,
    /// When the last exchange failed for want of an answer; cleared by an answer.
    pub(super) last_failure: Mutex<Option<Instant>>,
}

/// How long a failed exchange (no answer, a timeout, an error status) makes the validator not
/// ready, unless an answer comes meanwhile. Not longer: a server taken out of rotation gets no
/// requests, so it would never find out that the endpoint is back.
pub(crate) const FAILURE_MEMORY: Duration = Duration::from_secs(10);

pub(super) enum Endpoint {
    Fixed(String),
    Discover {
        issuer: String,
        resolved: OnceCell<String>,
    },
}

/// How the resource server authenticates to the introspection endpoint.
pub(super) enum ClientAuth {
    /// RFC 6749 §2.3.1: the prepared `Authorization: Basic` value (marked sensitive).
    Basic(HeaderValue),
    /// RFC 6749 §2.3.1: credentials in the form body.
    Post { client_id: String, secret: String },
    /// RFC 8705 §2: the TLS client certificate authenticates; `client_id` in the form body.
    Mtls { client_id: String },
}

impl ClientAuth {
    pub(super) fn method(&self) -> &'static str {
        match self {
            Self::Basic(_) => "client_secret_basic",
            Self::Post { .. } => "client_secret_post",
            Self::Mtls { .. } => "tls_client_auth",
        }
    }
}

/// What the endpoint said, when it said something about the token.
#[derive(Debug)]
pub(super) enum Answer {
    /// The body of a `200` answer (RFC 7662 §2.2), to interpret.
    Introspected(Vec<u8>),
    /// A `400` whose RFC 6749 §5.2 `error` is about the token (`unsupported_token_type`,
    /// `invalid_request`, `invalid_token`): the server will never introspect it, so it is
    /// refused like an inactive token instead of being called an outage.
    TokenRefused,
}

/// The `error` codes of a `400` answer that are about the token, not about us.
const ABOUT_THE_TOKEN: [&str; 3] = ["unsupported_token_type", "invalid_request", "invalid_token"];

/// The largest error body read to find its `error` code.
const MAX_ERROR_BODY: usize = 16 * 1024;

impl Exchange {
    /// Posts `token` to the endpoint (discovering it first if need be), within the fetch
    /// timeout, and returns what it said about the token.
    pub(super) async fn ask(&self, token: &str) -> Result<Answer, FetchError> {
        // Beyond the bound, 503 at once: queueing would let a flood hold every request.
        let Ok(_permit) = self.calls.try_acquire() else {
            fetch::shed(Upstream::Introspection);
            return Err(FetchError::unavailable(
                "too many introspection calls in flight (max_concurrent_calls)",
            ));
        };
        let answer = tokio::time::timeout(self.fetch_timeout, self.call(token))
            .await
            .unwrap_or_else(|elapsed| {
                Err(FetchError::unavailable("introspection timed out").because(elapsed))
            });
        let failed = answer.as_ref().is_err_and(FetchError::is_unavailable);
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failed.then(Instant::now);
        answer
    }

    /// Ready when the endpoint is known (discovered now if need be, within the fetch timeout)
    /// and no exchange failed for want of an answer within [`FAILURE_MEMORY`] without one
    /// answered since.
    pub(super) async fn ready(&self) -> Readiness {
        let known = tokio::time::timeout(self.fetch_timeout, self.endpoint_url()).await;
        if let Err(why) = known.unwrap_or_else(|elapsed| {
            Err(FetchError::unavailable("discovery timed out").because(elapsed))
        }) {
            return Readiness::not_ready(format!("introspection: {}", why.message()));
        }
        let failed = *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match failed {
            Some(at) if at.elapsed() < FAILURE_MEMORY => {
                Readiness::not_ready("introspection: the endpoint did not answer the last call")
            }
            _ => Readiness::ready(),
        }
    }

    async fn call(&self, token: &str) -> Result<Answer, FetchError> {
        let url = self.endpoint_url().await?;
        let mut request = self
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let ClientAuth::Basic(value) = &self.auth {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let observed = Observed::start(Upstream::Introspection);
        let answer = self.post(request, url, token).await;
        observed.finish_fetch(&answer);
        answer
    }

    /// Sends the request to the endpoint at `url`, and reads its answer.
    async fn post(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        token: &str,
    ) -> Result<Answer, FetchError> {
        let response = request
            .body(self.form(token))
            .send()
            .await
            .map_err(|e| FetchError::unavailable(url).because(e))?;
        let status = response.status();
        if status == http::StatusCode::OK {
            // An answer too large or never ending is a broken endpoint, not a verdict on the
            // token: 503, as for the key fetches.
            return fetch::read_limited(response, url, self.max_response_bytes)
                .await
                .map(Answer::Introspected)
                .map_err(FetchError::into_unavailable);
        }
        let refused = || FetchError::unavailable(url).because(HttpStatus(status));
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            // Our own credentials were refused: a configuration problem the client cannot
            // fix, so 503 as for 5xx, and loud enough for an operator to see.
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "certbound",
                endpoint = %url,
                status = status.as_u16(),
                client_auth = self.auth.method(),
                "the introspection endpoint refused the resource server's credentials; check the configuration"
            );
            return Err(refused());
        }
        if status == http::StatusCode::BAD_REQUEST {
            // The body is only looked at for its error code; an unreadable one is an outage.
            let body = fetch::read_limited(response, url, MAX_ERROR_BODY).await;
            if body.is_ok_and(|body| is_about_the_token(&body)) {
                return Ok(Answer::TokenRefused);
            }
        }
        Err(refused())
    }

    /// The request body (RFC 7662 §2.1), with the client's credentials where they go there.
    pub(super) fn form(&self, token: &str) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", "access_token");
        match &self.auth {
            ClientAuth::Basic(_) => {}
            ClientAuth::Post { client_id, secret } => {
                form.append_pair("client_id", client_id)
                    .append_pair("client_secret", secret);
            }
            // RFC 8705 §2: client_id is required with mutual-TLS client authentication.
            ClientAuth::Mtls { client_id } => {
                form.append_pair("client_id", client_id);
            }
        }
        form.finish()
    }

    pub(super) async fn endpoint_url(&self) -> Result<&str, FetchError> {
        match &self.endpoint {
            Endpoint::Fixed(url) => Ok(url),
            Endpoint::Discover { issuer, resolved } => resolved
                .get_or_try_init(|| self.discover(issuer))
                .await
                .map(String::as_str)
                // Whatever went wrong, the endpoint cannot be asked: 503.
                .map_err(FetchError::into_unavailable),
        }
    }

    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let doc = fetch::observe(
            Upstream::Discovery,
            fetch::discover(&self.http, issuer, self.max_response_bytes),
        )
        .await?;
        let alias = match self.auth {
            ClientAuth::Mtls { .. } => doc
                .get("mtls_endpoint_aliases")
                .and_then(|aliases| aliases.get("introspection_endpoint"))
                .and_then(Value::as_str),
            _ => None,
        };
        let url = alias
            .or_else(|| doc.get("introspection_endpoint").and_then(Value::as_str))
            .ok_or_else(|| {
                FetchError::malformed(format!("metadata of {issuer}: no introspection_endpoint"))
            })?;
        check_url(url, self.allow_http)
            .map_err(|reason| FetchError::malformed(format!("{url:?}: {reason}")))?;
        Ok(url.to_owned())
    }
}

/// Whether an error answer's RFC 6749 §5.2 `error` is one about the presented token.
fn is_about_the_token(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorBody<'a> {
        #[serde(borrow)]
        error: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<ErrorBody<'_>>(body)
        .is_ok_and(|answer| ABOUT_THE_TOKEN.contains(&answer.error.as_ref()))
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;
    use crate::token::introspection::IntrospectionValidator;

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let v = IntrospectionValidator::endpoint("https://as.test/i")
            .client_secret_basic("my client", "p:ss&é")
            .build()
            .unwrap();
        let ClientAuth::Basic(value) = &v.0.exchange.auth else {
            panic!("basic expected")
        };
        assert!(value.is_sensitive());
        let encoded = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "my+client:p%3Ass%26%C3%A9");
        assert_eq!(
            v.0.exchange.form("a b+c"),
            "token=a+b%2Bc&token_type_hint=access_token"
        );
    }

    #[test]
    fn only_error_codes_about_the_token_make_a_refusal() {
        for code in ABOUT_THE_TOKEN {
            let body = format!(r#"{{"error":"{code}","error_description":"x"}}"#);
            assert!(is_about_the_token(body.as_bytes()), "{code}");
        }
        for body in [
            &br#"{"error":"invalid_client"}"#[..],
            br#"{"error":"unauthorized_client"}"#,
            br#"{"error":"server_error"}"#,
            br#"{"error":["invalid_token"]}"#,
            br#"{"error_description":"invalid_token"}"#,
            b"invalid_token",
            b"",
        ] {
            assert!(
                !is_about_the_token(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn post_and_mtls_put_the_client_id_in_the_form() {
        let v = IntrospectionValidator::endpoint("https://as.test/i")
            .client_secret_post("rs", "s&1")
            .build()
            .unwrap();
        assert_eq!(
            v.0.exchange.form("t"),
            "token=t&token_type_hint=access_token&client_id=rs&client_secret=s%261"
        );
    }
}
