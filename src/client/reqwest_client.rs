//! [`ReqwestClient`]: the outgoing layer's behaviour for reqwest users.

use std::sync::Arc;

use http::Uri;

use super::attach::{challenge_of, Attacher, CallError, Retries};
use super::TokenSource;
use crate::error::BoxError;

/// A reqwest client that puts an access token from a [`TokenSource`] (and, for DPoP, a fresh
/// proof) on every request, with [`TokenLayer`](super::TokenLayer)'s retries: once with a
/// new nonce on `401 use_dpop_nonce`, once with another token on `401 invalid_token`. A
/// request is sent again only when reqwest can clone it (`Request::try_clone`: any body but a
/// stream). A step-up request becomes [`CallError::StepUp`], and other refusals carry a
/// [`ResourceChallenge`](super::ResourceChallenge) in their extensions, as with the layer.
///
/// The reqwest client must present the client's certificate for certificate-bound tokens:
/// build it from [`ClientIdentity::reqwest_builder`](super::ClientIdentity::reqwest_builder).
///
/// ```no_run
/// # async fn run(tokens: certbound::client::TokenSource) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use certbound::client::ReqwestClient;
///
/// let http = tokens.identity().reqwest_builder(&[], true)?.build()?;
/// let api = ReqwestClient::new(http, tokens);
/// let response = api.execute(api.http().get("https://api.example/accounts").build()?).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReqwestClient {
    http: reqwest::Client,
    attacher: Arc<Attacher>,
}

impl ReqwestClient {
    /// `http` with tokens from `source`.
    pub fn new(http: reqwest::Client, source: TokenSource) -> Self {
        Self {
            http,
            attacher: Arc::new(Attacher::new(source, None)),
        }
    }

    /// The reqwest client, to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` with the token (and proof) on it.
    ///
    /// # Errors
    /// reqwest's error, or a [`CallError`] when no token or proof could be made or the
    /// resource server asks for a step-up (downcast to tell them apart).
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, BoxError> {
        let replay = request.try_clone();
        let uri: Uri = request
            .url()
            .as_str()
            .parse()
            .map_err(|_| CallError::Proof("the request URL is not a URI"))?;
        let mut token = self
            .attacher
            .source
            .token()
            .await
            .map_err(CallError::from)?;
        let mut request = request;
        let method = request.method().clone();
        self.attacher
            .attach(&token, &method, &uri, request.headers_mut())?;
        let mut response = self.http.execute(request).await?;
        let mut retries = Retries::default();
        loop {
            let verdict =
                self.attacher
                    .verdict(&token, &uri, response.status(), response.headers());
            let next = retries
                .again(&self.attacher.source, &token, verdict, replay.is_some())
                .await?;
            // A clone of a cloneable request clones.
            let (Some(next), Some(mut again)) =
                (next, replay.as_ref().and_then(reqwest::Request::try_clone))
            else {
                if let Some(challenge) = challenge_of(response.headers()) {
                    response.extensions_mut().insert(challenge);
                }
                return Ok(response);
            };
            token = next;
            drop(response);
            self.attacher
                .attach(&token, &method, &uri, again.headers_mut())?;
            response = self.http.execute(again).await?;
        }
    }
}

impl std::fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestClient")
            .field("source", &self.attacher.source)
            .finish_non_exhaustive()
    }
}
