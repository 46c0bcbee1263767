//! The HTTP exchange with the introspection endpoint (RFC 7662 §2.1): the request, the
//! client's authentication to the authorization server, and finding the endpoint by discovery.

use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::upstream::{self as fetch, check_url, FetchError, HttpStatus};

/// Where the introspection endpoint is, and how to authenticate to it.
pub(super) struct Exchange {
    pub(super) endpoint: Endpoint,
    pub(super) http: reqwest::Client,
    pub(super) auth: ClientAuth,
    pub(super) fetch_timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) allow_http: bool,
}

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

impl Exchange {
    /// Posts `token` to the endpoint (discovering it first if need be), within the fetch
    /// timeout, and returns the body of a `200` answer.
    pub(super) async fn ask(&self, token: &str) -> Result<Vec<u8>, FetchError> {
        tokio::time::timeout(self.fetch_timeout, self.call(token))
            .await
            .unwrap_or_else(|elapsed| {
                Err(FetchError::unavailable("introspection timed out").because(elapsed))
            })
    }

    async fn call(&self, token: &str) -> Result<Vec<u8>, FetchError> {
        let url = self.endpoint_url().await?;
        let mut request = self
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let ClientAuth::Basic(value) = &self.auth {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let response = request
            .body(self.form(token))
            .send()
            .await
            .map_err(|e| FetchError::unavailable(url).because(e))?;
        if response.status() != http::StatusCode::OK {
            // 401/403 here mean the resource server's own credentials were refused: a
            // configuration problem, not something the client can fix, so 503 as for 5xx.
            return Err(FetchError::unavailable(url).because(HttpStatus(response.status())));
        }
        fetch::read_limited(response, url, self.max_response_bytes).await
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
        let doc = fetch::discover(&self.http, issuer, self.max_response_bytes).await?;
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
