//! What the outgoing layer and the reqwest adapter share: the `Authorization` and `DPoP`
//! headers for a request, and what a resource server's `401` asks for.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use super::challenge::{parse, ResourceChallenge};
use super::token::{Token, TokenScheme};
use super::{TokenError, TokenSource};
use crate::thumbprint::CertThumbprint;

/// Why the client side could not send a request (besides the transport's own errors, which
/// are passed through).
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// No access token could be obtained (the [`TokenError`] is the
    /// [`source`](std::error::Error::source), not repeated in `Display`).
    Token(TokenError),
    /// The DPoP proof could not be made: no absolute URL for `htu` (a request in origin form,
    /// such as tonic's, needs [`TokenLayer::origin`](super::TokenLayer::origin)), or signing
    /// failed.
    Proof(&'static str),
    /// The client's identity was renewed, and the HTTP client under this
    /// [`TokenLayer`](super::TokenLayer) or [`ReqwestClient::new`](super::ReqwestClient::new)
    /// was made for the old one: its connections present the old certificate, which the token
    /// (obtained with the new one) is not bound to, so nothing was sent. Make a new client and
    /// layer with [`TokenSource::identity`](super::TokenSource::identity), or use
    /// [`ReqwestClient::per_identity`](super::ReqwestClient::per_identity), which does so
    /// itself.
    IdentityRenewed,
    /// The resource server asks for a stronger or more recent authentication of the user
    /// (`401` with `error="insufficient_user_authentication"`, RFC 9470 §3). The token is
    /// valid and kept; the request is not sent again, because a `client_credentials` client
    /// has no user to authenticate: only a client that signs a user in again (the
    /// authorization code grant, with these `acr_values` and `max_age`) can meet the request.
    #[non_exhaustive]
    StepUp {
        /// The acceptable authentication context classes, in the server's order (may be
        /// empty).
        acr_values: Vec<String>,
        /// The largest acceptable age of the user's authentication, in seconds.
        max_age: Option<u64>,
        /// The resource's metadata URL (RFC 9728 §5.1), when the challenge named one.
        resource_metadata: Option<String>,
    },
}

impl CallError {
    fn step_up(challenge: ResourceChallenge) -> Self {
        Self::StepUp {
            acr_values: challenge.acr_values().to_vec(),
            max_age: challenge.max_age(),
            resource_metadata: challenge.resource_metadata().map(str::to_owned),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("no access token"),
            Self::Proof(reason) => write!(f, "no DPoP proof: {reason}"),
            Self::IdentityRenewed => f.write_str(
                "the client's certificate was renewed but this HTTP client presents the old \
                 one: make a new client with the renewed identity",
            ),
            Self::StepUp {
                acr_values,
                max_age,
                ..
            } => {
                f.write_str(
                    "the resource server requires a stronger or more recent user authentication",
                )?;
                if !acr_values.is_empty() {
                    write!(f, " (acr_values \"{}\")", acr_values.join(" "))?;
                }
                if let Some(max_age) = max_age {
                    write!(f, " (max_age {max_age} s)")?;
                }
                f.write_str(
                    "; a client_credentials client has no user to authenticate again, so it cannot step up",
                )
            }
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Token(e) => Some(e),
            Self::Proof(_) | Self::IdentityRenewed | Self::StepUp { .. } => None,
        }
    }
}

impl From<TokenError> for CallError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

/// What a response asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing: pass the response on.
    Done,
    /// `401` `use_dpop_nonce` with a new `DPoP-Nonce`: the same token, a proof with the nonce.
    NewNonce,
    /// `401` `invalid_token`: another token.
    InvalidToken,
    /// `401` `insufficient_user_authentication`: not for this client to meet.
    StepUp(ResourceChallenge),
}

static DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The retries of one request: at most one for a new nonce and one with another token.
#[derive(Default)]
pub(crate) struct Retries {
    nonce: bool,
    token: bool,
}

impl Retries {
    /// After a response with `verdict` to a request made with `token`: the token to send the
    /// request again with, or `None` to hand the response to the caller. A request that
    /// cannot be sent again (`replayable` false) is not. A refused token that is not replaced
    /// here is dropped from the cache, so that the caller's next request gets another one.
    pub(crate) async fn again(
        &mut self,
        source: &TokenSource,
        token: &Token,
        verdict: Verdict,
        replayable: bool,
    ) -> Result<Option<Token>, CallError> {
        match verdict {
            Verdict::NewNonce if replayable && !self.nonce => {
                self.nonce = true;
                Ok(Some(token.clone()))
            }
            Verdict::InvalidToken if replayable && !self.token => {
                self.token = true;
                Ok(Some(source.replace(token).await?))
            }
            Verdict::InvalidToken => {
                source.forget(token);
                Ok(None)
            }
            Verdict::StepUp(challenge) => Err(CallError::step_up(challenge)),
            Verdict::NewNonce | Verdict::Done => Ok(None),
        }
    }
}

/// The most origins whose `DPoP-Nonce` is kept (a client usually calls a few).
const MAX_ORIGINS: usize = 64;

/// The token source, the configured origin for origin-form requests, the certificate the
/// HTTP client presents, and the resource servers' latest nonces.
pub(crate) struct Attacher {
    pub(crate) source: TokenSource,
    pub(crate) origin: Option<String>,
    /// The thumbprint of the certificate the wrapped HTTP client presents, when it is one
    /// client for the source's life: a token obtained with another is not sent. `None` when
    /// the HTTP client is chosen per token (made for the token's identity).
    presents: Option<CertThumbprint>,
    nonces: Mutex<HashMap<String, String>>,
}

impl Attacher {
    /// For an HTTP client made with `source`'s identity in use now.
    pub(crate) fn new(source: TokenSource, origin: Option<String>) -> Self {
        let presents = Some(*source.identity().thumbprint());
        Self {
            source,
            origin,
            presents,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// For HTTP clients made per token, for the identity it was obtained with.
    pub(crate) fn per_identity(source: TokenSource) -> Self {
        Self {
            presents: None,
            ..Self::new(source, None)
        }
    }

    /// Sets `Authorization` (and, for a DPoP token, a fresh `DPoP` proof) on `headers`.
    pub(crate) fn attach(
        &self,
        token: &Token,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
    ) -> Result<(), CallError> {
        if self
            .presents
            .is_some_and(|presents| presents != *token.client_thumbprint())
        {
            return Err(CallError::IdentityRenewed);
        }
        headers.insert(http::header::AUTHORIZATION, token.authorization().clone());
        if token.scheme() != TokenScheme::Dpop {
            headers.remove(&DPOP);
            return Ok(());
        }
        let (origin, path) = self.origin_and_path(uri)?;
        let htu = format!("{origin}{path}");
        let mut proof = self
            .source
            .proof(method.as_str(), &htu)
            .ok_or(CallError::Proof("a DPoP token without a DPoP key"))?
            .access_token_hash(token.ath().unwrap_or_default());
        let nonce = self
            .nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&origin)
            .cloned();
        if let Some(nonce) = &nonce {
            proof = proof.nonce(nonce);
        }
        let proof = proof
            .sign()
            .map_err(|_| CallError::Proof("signing failed"))?;
        let mut value = HeaderValue::try_from(proof)
            .map_err(|_| CallError::Proof("the proof is not a header value"))?;
        value.set_sensitive(true);
        headers.insert(&DPOP, value);
        Ok(())
    }

    /// `scheme://authority` and the path of `uri` (absolute, or origin form with the
    /// configured origin).
    fn origin_and_path(&self, uri: &Uri) -> Result<(String, String), CallError> {
        let path = uri.path().to_owned();
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => Ok((
                format!("{}://{}", scheme.to_ascii_lowercase(), authority.as_str()),
                path,
            )),
            _ => match &self.origin {
                Some(origin) => Ok((origin.clone(), path)),
                None => Err(CallError::Proof(
                    "the request URI is not absolute and no origin is configured",
                )),
            },
        }
    }

    /// Reads a response to a request made with `token`: keeps its `DPoP-Nonce`, and says
    /// whether a `401` asks for a nonce, another token, or a step-up. A gRPC rejection (HTTP
    /// `200`, `grpc-status` 16 in the headers of a trailers-only answer) is read for a step-up
    /// too; it is never retried.
    pub(crate) fn verdict(
        &self,
        token: &Token,
        uri: &Uri,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Verdict {
        let new_nonce = token.scheme() == TokenScheme::Dpop && self.keep_nonce(uri, headers);
        let grpc_unauthenticated = headers
            .get("grpc-status")
            .is_some_and(|s| s.as_bytes() == b"16");
        if status != StatusCode::UNAUTHORIZED && !grpc_unauthenticated {
            return Verdict::Done;
        }
        if let Some(challenge) = ResourceChallenge::from_headers(headers) {
            if challenge.is_step_up() {
                return Verdict::StepUp(challenge);
            }
        }
        if status != StatusCode::UNAUTHORIZED {
            return Verdict::Done;
        }
        let mut verdict = Verdict::Done;
        for error in error_codes(headers) {
            match error.as_str() {
                "use_dpop_nonce" if new_nonce => return Verdict::NewNonce,
                "invalid_token" => verdict = Verdict::InvalidToken,
                _ => {}
            }
        }
        verdict
    }

    /// Keeps the `DPoP-Nonce` of a response from `uri`'s origin; `true` when it is new.
    fn keep_nonce(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(&DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .filter(|n| super::exchange::is_nonce(n))
        else {
            return false;
        };
        let Ok((origin, _)) = self.origin_and_path(uri) else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        if nonces.get(&origin).is_some_and(|kept| kept == nonce) {
            return false;
        }
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
        true
    }
}

/// What a response's `Bearer` / `DPoP` challenges say, for the extensions of a refusal handed
/// to the caller.
pub(crate) fn challenge_of(headers: &HeaderMap) -> Option<ResourceChallenge> {
    if !headers.contains_key(WWW_AUTHENTICATE) {
        return None;
    }
    ResourceChallenge::from_headers(headers)
}

/// The `error` parameters of every challenge in the `WWW-Authenticate` headers (RFC 9110
/// §11.6.1), quoted or not.
fn error_codes(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse)
        .filter_map(|mut challenge| {
            let at = challenge.params.iter().position(|(n, _)| n == "error")?;
            Some(challenge.params.swap_remove(at).1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_every_challenge_quoted_or_not() {
        let codes = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(v));
            error_codes(&headers).collect::<Vec<_>>()
        };
        assert_eq!(
            codes(
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
            ),
            ["use_dpop_nonce"]
        );
        assert_eq!(
            codes(r#"Bearer realm="api", error=invalid_token, Basic"#),
            ["invalid_token"]
        );
        assert_eq!(codes(r#"Bearer my_error="x""#), Vec::<&str>::new());
        assert_eq!(
            codes(r#"Bearer error="invalid_token", DPoP algs="ES256", error="invalid_token""#),
            ["invalid_token", "invalid_token"]
        );
        assert_eq!(codes(r#"Bearer error=""#), Vec::<&str>::new());
        assert_eq!(codes("Bearer"), Vec::<&str>::new());
    }

    #[test]
    fn a_step_up_request_says_why_this_client_cannot_meet_it() {
        let error = CallError::StepUp {
            acr_values: vec!["urn:mfa".to_owned(), "phr".to_owned()],
            max_age: Some(300),
            resource_metadata: None,
        };
        assert_eq!(
            error.to_string(),
            "the resource server requires a stronger or more recent user authentication \
             (acr_values \"urn:mfa phr\") (max_age 300 s); a client_credentials client has no \
             user to authenticate again, so it cannot step up"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
