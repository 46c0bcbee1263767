//! The second peer: `huskarl-resource-server`'s `Rfc9068Validator`, wired as its API expects.
//!
//! huskarl is framework-independent: its validator takes a request's headers, method, absolute
//! target URI (for the DPoP `htu` check) and the client certificate's DER (for the
//! `cnf.x5t#S256` check), and answers a `ValidationResult`. [`HuskarlAuth`] is the server glue
//! an application writes (huskarl-axum, its tower adapter, is unreleased): it reads the
//! certificate from the `ConnectionInfo` that `certbound::serve` attaches to every request, and
//! rebuilds the absolute URI from the scheme (TLS: `https`) and the `Host` or `:authority`.
//!
//! Crypto: huskarl verifies through a `JwsVerifierPlatform`; its default is
//! `huskarl-crypto-native` (RustCrypto's `p256`). It ships no aws-lc-rs platform, so
//! [`AwsLcPlatform`] below is one (ES256 over `aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED`,
//! the primitive jsonwebtoken's aws-lc-rs backend uses in certbound), and the validator uses
//! it both for access tokens and for DPoP proofs' embedded keys (`LOAD_HUSKARL_CRYPTO=native`
//! in the environment selects huskarl's default instead).
//!
//! Replay: huskarl checks a proof's `jti` through a `JtiUniquenessChecker` and ships no
//! implementation of it; [`SeenJtis`] is the per-process one given here (a mutex-guarded set,
//! never pruned: enough for a run of seconds, and the cheapest possible store).

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_lc_rs::signature::{
    ParsedPublicKey, RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use certbound::ConnectionInfo;
use http::{header, Request, Response, StatusCode, Uri};
use huskarl_resource_server::core::crypto::verifier::{
    CreateVerifierError, JwsVerifier, JwsVerifierFactory, JwsVerifierPlatform, KeyMatch,
    MultiKeyVerifier, VerifyError,
};
use huskarl_resource_server::core::crypto::KeyMatchStrength;
use huskarl_resource_server::core::jwk::{Jwks, PublicJwk, PublicJwks, PublicKey};
use huskarl_resource_server::core::jwt::JtiUniquenessChecker;
use huskarl_resource_server::core::platform::MaybeSendBoxFuture;
use huskarl_resource_server::core::{EndpointUrl, Error, RetryAdvice};
use huskarl_resource_server::validator::rfc9068::Rfc9068Validator;
use hyper::body::Incoming;
use tower::Service;

use crate::{BoxError, OkBody};

/// The validator: issuer, audience (RFC 9068 also requires `typ: at+jwt`, `sub`, `iat`,
/// `client_id`, which the load tokens carry), ES256 only, the static JWKS, 60 s clock leeway (as
/// certbound's jsonwebtoken default), and the in-process proof `jti` set. No extra claims are
/// decoded (`Claims = ()`, huskarl's default and its cheapest).
pub(crate) async fn validator(
    jwks: &str,
    issuer: &str,
    audience: &str,
) -> Result<Rfc9068Validator, BoxError> {
    // `LOAD_HUSKARL_CRYPTO=native`: huskarl's own default platform (RustCrypto), for comparison.
    let platform: Arc<dyn JwsVerifierPlatform> =
        if std::env::var_os("LOAD_HUSKARL_CRYPTO").is_some_and(|v| v == "native") {
            huskarl_resource_server::DefaultJwsVerifierPlatform::default().into()
        } else {
            Arc::new(AwsLcPlatform)
        };
    let jwks_text = jwks;
    let jwks: PublicJwks = serde_json::from_str::<Jwks>(jwks)?.into();
    let verifier: Arc<dyn JwsVerifier> =
        Arc::new(MultiKeyVerifier::from_jwks(&jwks, platform.as_ref()).await?);
    // The access tokens' algorithm: the JWKS's one key's (ES256, or issue 26's RS256, EdDSA).
    let alg = vec![crate::jwks_alg(jwks_text)?];
    let es256 = vec!["ES256".to_owned()];
    Ok(Rfc9068Validator::builder()
        .issuer(issuer)
        .audience(audience)
        .jws_verifier_factory(StaticJwks(verifier))
        .jws_verifier_platform(platform)
        .allowed_signing_algorithms(alg)
        .allowed_dpop_signing_algorithms(es256)
        .clock_leeway(Duration::from_secs(60))
        .dpop_jti_checker(SeenJtis::default())
        .build()
        .await?)
}

/// Validates every request with huskarl, then calls `inner`; `401` when validation fails or
/// there is no token.
#[derive(Clone)]
pub(crate) struct HuskarlAuth<S> {
    validator: Arc<Rfc9068Validator>,
    inner: S,
}

impl<S> HuskarlAuth<S> {
    pub(crate) fn new(validator: Rfc9068Validator, inner: S) -> Self {
        HuskarlAuth {
            validator: Arc::new(validator),
            inner,
        }
    }
}

impl<S> Service<Request<Incoming>> for HuskarlAuth<S>
where
    S: Service<Request<Incoming>, Response = Response<OkBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<OkBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<OkBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let validator = Arc::clone(&self.validator);
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let connection = request.extensions().get::<ConnectionInfo>().cloned();
            let certificate = connection
                .as_ref()
                .and_then(ConnectionInfo::client_certificate)
                .and_then(|c| c.leaf())
                .map(|der| der.as_ref());
            let Some(uri) = absolute_uri(&request) else {
                return Ok(status(StatusCode::BAD_REQUEST));
            };
            let result = validator
                .validate_request(request.headers(), request.method(), &uri, certificate)
                .await;
            match result.outcome {
                Ok(Some(_validated)) => inner.call(request).await,
                Ok(None) | Err(_) => Ok(status(StatusCode::UNAUTHORIZED)),
            }
        })
    }
}

/// The absolute URI the client addressed: HTTP/2 requests carry it (`:scheme`, `:authority`);
/// HTTP/1.1 ones give the path, and the host in `Host`. The connection is TLS: `https`.
fn absolute_uri<B>(request: &Request<B>) -> Option<Uri> {
    if request.uri().scheme().is_some() && request.uri().authority().is_some() {
        return Some(request.uri().clone());
    }
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme("https")
        .authority(host)
        .path_and_query(path)
        .build()
        .ok()
}

fn status(status: StatusCode) -> Response<OkBody> {
    let mut response = Response::new(OkBody::default());
    *response.status_mut() = status;
    response
}

/// The static JWKS, handed to the validator at build time (no network).
struct StaticJwks(Arc<dyn JwsVerifier>);

impl JwsVerifierFactory for StaticJwks {
    fn build(
        &self,
        _jwks_uri: Option<&EndpointUrl>,
        _platform: Arc<dyn JwsVerifierPlatform>,
    ) -> MaybeSendBoxFuture<'static, Result<Arc<dyn JwsVerifier>, Error>> {
        let verifier = Arc::clone(&self.0);
        Box::pin(async move { Ok(verifier) })
    }
}

/// ES256 verification with aws-lc-rs.
#[derive(Debug)]
struct AwsLcPlatform;

impl JwsVerifierPlatform for AwsLcPlatform {
    fn create_verifier_from_jwk(
        &self,
        jwk: PublicJwk,
    ) -> MaybeSendBoxFuture<'static, Result<Arc<dyn JwsVerifier>, CreateVerifierError>> {
        let verifier = match &jwk.key {
            PublicKey::Ec(ec) if ec.crv == "P-256" && ec.x.len() == 32 && ec.y.len() == 32 => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&ec.x);
                point.extend_from_slice(&ec.y);
                Ok(Arc::new(AwsLcEs256 {
                    key: UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point),
                    kid: jwk.kid.clone(),
                }) as Arc<dyn JwsVerifier>)
            }
            // Issue 26: RS256 and EdDSA, each key parsed once (`ParsedPublicKey`), the best an
            // application's glue can do with aws-lc-rs.
            PublicKey::Rsa(rsa) => RsaPublicKeyComponents {
                n: &rsa.n,
                e: &rsa.e,
            }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map(|key| {
                Arc::new(AwsLcParsed {
                    key,
                    alg: "RS256",
                    kid: jwk.kid.clone(),
                }) as Arc<dyn JwsVerifier>
            })
            .map_err(|_| unsupported("RSA key rejected")),
            PublicKey::Okp(okp) if okp.crv == "Ed25519" => ParsedPublicKey::new(&ED25519, &okp.x)
                .map(|key| {
                    Arc::new(AwsLcParsed {
                        key,
                        alg: "EdDSA",
                        kid: jwk.kid.clone(),
                    }) as Arc<dyn JwsVerifier>
                })
                .map_err(|_| unsupported("Ed25519 key rejected")),
            _ => Err(unsupported(
                "only P-256 (ES256), RSA (RS256) and Ed25519 (EdDSA) keys",
            )),
        };
        Box::pin(async move { verifier })
    }

    fn supported_signature_algorithms(&self) -> &[&str] {
        &["ES256", "RS256", "EdDSA"]
    }
}

fn unsupported(message: &'static str) -> CreateVerifierError {
    CreateVerifierError::UnsupportedKey {
        source: Error::new(RetryAdvice::No, message),
    }
}

/// RS256 or EdDSA verification with a key parsed once.
#[derive(Debug)]
struct AwsLcParsed {
    key: ParsedPublicKey,
    alg: &'static str,
    kid: Option<String>,
}

impl JwsVerifier for AwsLcParsed {
    fn key_match(&self, key_match: &KeyMatch<'_>) -> Option<KeyMatchStrength> {
        key_match.strength_for(&[self.alg], self.kid.as_deref())
    }

    fn verify<'a>(
        &'a self,
        input: &'a [u8],
        signature: &'a [u8],
        _key_match: &'a KeyMatch<'a>,
    ) -> MaybeSendBoxFuture<'a, Result<(), VerifyError>> {
        let outcome = self
            .key
            .verify_sig(input, signature)
            .map_err(|_| VerifyError::SignatureMismatch);
        Box::pin(async move { outcome })
    }
}

#[derive(Debug)]
struct AwsLcEs256 {
    key: UnparsedPublicKey<Vec<u8>>,
    kid: Option<String>,
}

impl JwsVerifier for AwsLcEs256 {
    fn key_match(&self, key_match: &KeyMatch<'_>) -> Option<KeyMatchStrength> {
        key_match.strength_for(&["ES256"], self.kid.as_deref())
    }

    fn verify<'a>(
        &'a self,
        input: &'a [u8],
        signature: &'a [u8],
        _key_match: &'a KeyMatch<'a>,
    ) -> MaybeSendBoxFuture<'a, Result<(), VerifyError>> {
        let outcome = self
            .key
            .verify(input, signature)
            .map_err(|_| VerifyError::SignatureMismatch);
        Box::pin(async move { outcome })
    }
}

/// Proof identifiers seen by this process.
#[derive(Debug, Default)]
struct SeenJtis(Mutex<HashSet<String>>);

impl JtiUniquenessChecker for SeenJtis {
    fn check_and_mark_seen(&self, jti: &str) -> MaybeSendBoxFuture<'_, Result<bool, Error>> {
        let fresh = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(jti.to_owned());
        Box::pin(async move { Ok(!fresh) })
    }
}
