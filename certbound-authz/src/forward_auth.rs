//! The HTTP forward-auth listener (nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth`, Envoy's HTTP ext_authz): plain HTTP/1.1 through [`certbound::serve_plain`].
//! A profile says where each fact comes from and how a refusal is shaped for its proxy. Facts
//! are taken only from the `proxy.trusted` peers: any other peer gets `403`, whatever its
//! headers say. The certificate header is read by the library's [`ForwardedCertLayer`] (its
//! parsers and trust model) for nginx, Caddy and Envoy; Traefik's comma-separated chain of
//! base64 DER, which the library has no format for, is read here.

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use certbound::forwarded::{ForwardedClientCertificate, IpRange};
use certbound::{ClientCertificate, ConnectionInfo, ForwardedCertFormat, ForwardedCertLayer};
use http::header::{HeaderName, HOST};
use http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Incoming;
use rustls_pki_types::CertificateDer;
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _};

use crate::config::{Config, ConfigError, Profile};
use crate::engine::{self, plain, Answer, Engine, Facts};
use crate::observe;

/// What the listener needs besides the engine.
#[derive(Debug)]
pub(crate) struct Frontend {
    engine: Engine,
    profile: Profile,
    trusted: Vec<IpRange>,
    cert_header: HeaderName,
}

/// One configuration's request handling: the library's forwarded-certificate layer (for the
/// profiles whose header format it knows) in front of [`answer`].
pub(crate) type Stack = BoxCloneSyncService<Request<Incoming>, Answer, Infallible>;

/// The service `serve_plain` runs: each request goes to the [`Stack`] current when it arrives
/// (a reload stores a new one; requests in flight finish with theirs).
pub(crate) fn service(
    current: Arc<ArcSwap<Stack>>,
) -> impl tower::Service<Request<Incoming>, Response = Answer, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    tower::service_fn(move |request: Request<Incoming>| {
        let stack = Stack::clone(&current.load());
        stack.oneshot(request)
    })
}

/// The [`Stack`] of `config` and `engine`.
pub(crate) fn stack(config: &Config, engine: Engine) -> Result<Stack, ConfigError> {
    let frontend = Arc::new(Frontend {
        engine,
        profile: config.proxy.profile,
        trusted: config.proxy.trusted.clone(),
        cert_header: config.proxy.client_cert_header.clone(),
    });
    let format = match config.proxy.profile {
        Profile::Nginx => Some(ForwardedCertFormat::Nginx),
        Profile::Caddy => Some(ForwardedCertFormat::Haproxy),
        Profile::EnvoyHttp => Some(ForwardedCertFormat::Xfcc),
        Profile::Traefik => None,
    };
    // For Traefik, a layer that trusts no one still removes the headers of the formats it
    // knows; the Traefik header is read (from trusted peers only) in `facts`.
    let mut layer = ForwardedCertLayer::new(format.unwrap_or(ForwardedCertFormat::Rfc9440));
    if format.is_some() {
        layer = layer
            .header(config.proxy.client_cert_header.as_str())
            .map_err(|e| ConfigError::new("proxy.client_cert_header", e))?;
        for range in &config.proxy.trusted {
            layer = layer.trust_proxy(*range);
        }
    }
    let inner = tower::service_fn(move |request: Request<Incoming>| {
        let frontend = Arc::clone(&frontend);
        async move { Ok::<_, Infallible>(answer(&frontend, request.map(|_| ())).await) }
    });
    Ok(Stack::new(layer.layer(inner)))
}

/// The answer to one check request, recorded (a decision sample, a line per refusal).
pub(crate) async fn answer(frontend: &Frontend, request: Request<()>) -> Answer {
    let started = std::time::Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectionInfo>()
        .map(ConnectionInfo::remote_addr);
    let (answer, request_line, error) = decide(frontend, peer, request).await;
    let status = answer.status();
    let http = observe::Frontend::Http;
    observe::record(http, peer, started, status, request_line.as_deref(), error);
    shape(frontend.profile, answer)
}

/// The answer, the request line as the proxy described it (when its facts were usable), and
/// the error code to log when the answer is a refusal.
async fn decide(
    frontend: &Frontend,
    peer: Option<std::net::SocketAddr>,
    request: Request<()>,
) -> (Answer, Option<String>, Option<&'static str>) {
    if !peer.is_some_and(|peer| engine::trusts(&frontend.trusted, peer)) {
        observe::untrusted(observe::Frontend::Http);
        return (plain(StatusCode::FORBIDDEN), None, Some("untrusted_peer"));
    }
    let Some(facts) = facts(frontend, request) else {
        return (
            plain(StatusCode::BAD_REQUEST),
            None,
            Some("malformed_proxy_facts"),
        );
    };
    let request_line = facts.request_line();
    let answer = frontend.engine.decide(facts).await;
    let error = observe::refusal(&answer);
    (answer, Some(request_line), error)
}

/// The facts of `request` as its profile reads them; `None` when one is missing or malformed.
fn facts(frontend: &Frontend, request: Request<()>) -> Option<Facts> {
    let (parts, ()) = request.into_parts();
    let peer = parts.extensions.get::<ConnectionInfo>()?.remote_addr();
    let mut headers = parts.headers;
    let one = |headers: &HeaderMap, name: &str| -> Option<String> {
        let mut values = headers.get_all(name).iter();
        let value = values.next()?.to_str().ok()?.to_owned();
        // A fact given twice is no fact.
        values.next().is_none().then_some(value)
    };
    let (method, scheme, authority, target) = match frontend.profile {
        Profile::Nginx => {
            let url: http::Uri = one(&headers, "x-original-url")?.parse().ok()?;
            (
                one(&headers, "x-original-method")?,
                url.scheme_str()?.to_owned(),
                url.authority()?.as_str().to_owned(),
                url.path().to_owned(),
            )
        }
        Profile::Traefik | Profile::Caddy => (
            one(&headers, "x-forwarded-method")?,
            one(&headers, "x-forwarded-proto")?,
            one(&headers, "x-forwarded-host")?,
            one(&headers, "x-forwarded-uri")?,
        ),
        Profile::EnvoyHttp => (
            parts.method.as_str().to_owned(),
            one(&headers, "x-forwarded-proto").unwrap_or_else(|| "https".to_owned()),
            one(&headers, HOST.as_str())
                .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))?,
            parts.uri.path().to_owned(),
        ),
    };
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let certificate = match frontend.profile {
        Profile::Traefik => {
            let values: Vec<_> = headers
                .get_all(&frontend.cert_header)
                .iter()
                .cloned()
                .collect();
            headers.remove(&frontend.cert_header);
            match values.as_slice() {
                [] => None,
                [value] => traefik_chain(value.as_bytes()).and_then(ClientCertificate::from_chain),
                // Given twice: unusable, so none (a certificate-bound token is refused).
                _ => None,
            }
        }
        _ => parts
            .extensions
            .get::<ForwardedClientCertificate>()
            .and_then(ForwardedClientCertificate::client_certificate)
            .cloned(),
    };
    for name in [
        "x-original-url",
        "x-original-method",
        "x-forwarded-method",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-uri",
    ] {
        headers.remove(name);
    }
    Some(Facts {
        method: Method::from_bytes(method.as_bytes()).ok()?,
        scheme,
        authority,
        path,
        headers,
        certificate,
        peer,
    })
}

/// Traefik's `X-Forwarded-Tls-Client-Cert` (`PassTLSClientCert` with `pem: true`): the chain,
/// leaf first, as URL-escaped standard base64 of each DER certificate, comma-separated. `None`
/// when empty or malformed (no certificate, so a certificate-bound token is refused).
fn traefik_chain(value: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let decoded = percent_encoding::percent_decode(value).collect::<Vec<u8>>();
    let text = std::str::from_utf8(&decoded).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    text.split(',')
        .map(|one| {
            base64::engine::general_purpose::STANDARD
                .decode(one.trim())
                .ok()
                .filter(|der| !der.is_empty())
                .map(CertificateDer::from)
        })
        .collect()
}

/// The answer as the profile's proxy needs it: nginx's `auth_request` turns any status but
/// 2xx, 401 and 403 into 500, so a `400` goes back as `401` with the same challenge.
fn shape(profile: Profile, mut answer: Answer) -> Answer {
    if profile == Profile::Nginx && answer.status() == StatusCode::BAD_REQUEST {
        *answer.status_mut() = StatusCode::UNAUTHORIZED;
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traefik_chain_is_read_leaf_first() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let value = format!("{}%2C{}", b64.encode(b"leaf"), b64.encode(b"ca"));
        let chain = traefik_chain(value.as_bytes()).expect("a chain");
        assert_eq!(chain[0].as_ref(), b"leaf");
        assert_eq!(chain[1].as_ref(), b"ca");
    }

    #[test]
    fn an_empty_or_malformed_traefik_header_is_no_certificate() {
        assert!(traefik_chain(b"").is_none());
        assert!(traefik_chain(b"not base64!").is_none());
        assert!(traefik_chain(b"QUJD,").is_none());
    }

    #[test]
    fn nginx_gets_401_for_a_400_and_other_profiles_get_it_as_is() {
        let bad = || plain(StatusCode::BAD_REQUEST);
        assert_eq!(
            shape(Profile::Nginx, bad()).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            shape(Profile::Traefik, bad()).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
