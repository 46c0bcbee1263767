//! [`ReqwestClient`]: the outgoing layer's behaviour for reqwest users.

use std::sync::Arc;

use http::Uri;

use super::attach::{challenge_of, Attacher, CallError, Retries};
use super::identity::ClientIdentity;
use super::reloadable::PerIdentity;
use super::token::Token;
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
/// With a [`ReloadableClientIdentity`](super::ReloadableClientIdentity), use
/// [`per_identity`](Self::per_identity): a client given to [`new`](Self::new) presents one
/// certificate for its whole life, so once the identity is renewed its calls fail with
/// [`CallError::IdentityRenewed`] (nothing sent) rather than carry a token bound to the new
/// certificate over a connection that presented the old one.
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
    /// With [`per_identity`](Self::per_identity): the clients that send, one per identity.
    clients: Option<Arc<Clients>>,
    attacher: Arc<Attacher>,
}

/// Makes the reqwest client for an identity.
type MakeClient = dyn Fn(&ClientIdentity) -> Result<reqwest::Client, BoxError> + Send + Sync;

struct Clients {
    make: Box<MakeClient>,
    made: PerIdentity<reqwest::Client>,
}

impl ReqwestClient {
    /// `http` with tokens from `source`. `http` presents the certificate of `source`'s
    /// identity as it is now (see above for a renewable identity).
    pub fn new(http: reqwest::Client, source: TokenSource) -> Self {
        Self {
            http,
            clients: None,
            attacher: Arc::new(Attacher::new(source, None)),
        }
    }

    /// Tokens from `source`, each sent by a reqwest client that `make` built for the identity
    /// the token was obtained with (typically from
    /// [`ClientIdentity::reqwest_builder`](super::ClientIdentity::reqwest_builder), with the
    /// application's timeouts). When `source`'s
    /// [`ReloadableClientIdentity`](super::ReloadableClientIdentity) is renewed, the next
    /// token is obtained with the new certificate and sent by a new client, whose new
    /// connections present it; a token is never sent over a connection that presented another
    /// certificate. One client is kept (the latest identity's); the one before is dropped with
    /// its idle connections once no call uses it.
    ///
    /// ```no_run
    /// # fn run(tokens: certbound::client::TokenSource) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use std::time::Duration;
    /// use certbound::client::ReqwestClient;
    ///
    /// let api = ReqwestClient::per_identity(tokens, |identity| {
    ///     Ok(identity
    ///         .reqwest_builder(&[], true)?
    ///         .timeout(Duration::from_secs(30))
    ///         .build()?)
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `make`'s error for the identity in use now. (Later, a failure of `make` for a renewed
    /// identity is the error of the call that needed it.)
    pub fn per_identity<F>(source: TokenSource, make: F) -> Result<Self, BoxError>
    where
        F: Fn(&ClientIdentity) -> Result<reqwest::Client, BoxError> + Send + Sync + 'static,
    {
        let made = PerIdentity::new();
        let http = made.get(&source.identity(), &make)?;
        Ok(Self {
            http,
            clients: Some(Arc::new(Clients {
                make: Box::new(make),
                made,
            })),
            attacher: Arc::new(Attacher::per_identity(source)),
        })
    }

    /// The reqwest client, to build requests with. (With
    /// [`per_identity`](Self::per_identity), the first identity's; requests are sent by the
    /// client of their token's identity.)
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The client that sends a request carrying `token`.
    fn sender(&self, token: &Token) -> Result<reqwest::Client, BoxError> {
        match &self.clients {
            None => Ok(self.http.clone()),
            Some(clients) => clients.made.get(token.identity(), &*clients.make),
        }
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
        let mut response = self.sender(&token)?.execute(request).await?;
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
            response = self.sender(&token)?.execute(again).await?;
        }
    }
}

impl std::fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestClient")
            .field("source", &self.attacher.source)
            .field("per_identity", &self.clients.is_some())
            .finish_non_exhaustive()
    }
}
