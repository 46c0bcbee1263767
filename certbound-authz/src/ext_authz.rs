//! Envoy's external authorization v3 over gRPC (`envoy.service.auth.v3.Authorization/Check`):
//! plain HTTP/2 through tonic. The facts come from the `CheckRequest` as Envoy fills it, the
//! decision from the same [`Engine::decide`] as the HTTP listener, and the answer becomes a
//! `CheckResponse`:
//! - allow: status `OK` and an `ok_response` that sets the identity headers upstream (replacing
//!   any client-sent copy), removes the configured identity headers it does not set (so a
//!   client-sent copy never reaches the upstream), and returns `DPoP-Nonce` to the client
//!   through `response_headers_to_add` when the layer sent one;
//! - deny: a non-`OK` status (`UNAUTHENTICATED` for 401, `UNAVAILABLE` for 5xx,
//!   `PERMISSION_DENIED` otherwise) and a `denied_response` with the layer's status,
//!   `WWW-Authenticate`, `DPoP-Nonce` and body. A decision that could not be made (a store or an
//!   issuer that cannot answer) is a denial with `503`, whatever Envoy's `failure_mode_allow`.
//!
//! Facts are taken only from the `proxy.trusted` peers (the TCP peer of this listener): any
//! other peer gets a denial with `403`, whatever its request says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use certbound::forwarded::{ForwardedClientCertificate, IpRange};
use certbound::{ClientCertificate, ConnectionInfo, ForwardedCertFormat, ForwardedCertLayer};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction,
    HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt as _, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tower::{Layer as _, ServiceExt as _};

use crate::config::{Config, GrpcClientCert};
use crate::engine::{self, plain, Answer, Engine, Facts};
use crate::observe;

const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// One configuration's handling of checks: a reload stores a new one.
#[derive(Debug)]
pub(crate) struct Frontend {
    engine: Engine,
    trusted: Vec<IpRange>,
    certificate: CertificateSource,
    /// Every configured identity header name.
    identity: Vec<HeaderName>,
}

/// Where the client certificate is read.
#[derive(Debug)]
enum CertificateSource {
    /// `attributes.source.certificate`.
    Source,
    /// `x-forwarded-client-cert`, read by the library's layer (its parser), which trusts the
    /// `proxy.trusted` ranges.
    Xfcc(ForwardedCertLayer),
}

impl Frontend {
    pub(crate) fn new(config: &Config, engine: Engine) -> Self {
        let certificate = match config.proxy.grpc_client_cert {
            GrpcClientCert::Source => CertificateSource::Source,
            GrpcClientCert::Xfcc => {
                let mut layer = ForwardedCertLayer::new(ForwardedCertFormat::Xfcc);
                for range in &config.proxy.trusted {
                    layer = layer.trust_proxy(*range);
                }
                CertificateSource::Xfcc(layer)
            }
        };
        let names = &config.identity_headers;
        let identity = [
            &names.subject,
            &names.client_id,
            &names.scope,
            &names.issuer,
            &names.binding,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Self {
            engine,
            trusted: config.proxy.trusted.clone(),
            certificate,
            identity,
        }
    }

    /// The answer to one check, recorded (a decision sample, a line per refusal).
    pub(crate) async fn check(
        &self,
        peer: Option<SocketAddr>,
        check: CheckRequest,
    ) -> CheckResponse {
        let started = Instant::now();
        let (answer, request_line, error) = self.decide(peer, check).await;
        let status = answer.status();
        let frontend = observe::Frontend::Grpc;
        observe::record(
            frontend,
            peer,
            started,
            status,
            request_line.as_deref(),
            error,
        );
        response(&self.identity, answer).await
    }

    /// The answer, the request line as Envoy described it (when its facts were usable), and
    /// the error code to log when the answer is a refusal.
    async fn decide(
        &self,
        peer: Option<SocketAddr>,
        check: CheckRequest,
    ) -> (Answer, Option<String>, Option<&'static str>) {
        let Some(peer) = peer.filter(|peer| engine::trusts(&self.trusted, *peer)) else {
            observe::untrusted(observe::Frontend::Grpc);
            return (plain(StatusCode::FORBIDDEN), None, Some("untrusted_peer"));
        };
        let Ok(described) = described(&check) else {
            return (
                plain(StatusCode::BAD_REQUEST),
                None,
                Some("malformed_proxy_facts"),
            );
        };
        let Described {
            method,
            scheme,
            authority,
            path,
            mut headers,
        } = described;
        let certificate = match &self.certificate {
            CertificateSource::Source => {
                source_certificate(&check).and_then(ClientCertificate::from_chain)
            }
            CertificateSource::Xfcc(layer) => xfcc_certificate(layer, peer, &mut headers).await,
        };
        let facts = Facts {
            method,
            scheme,
            authority,
            path,
            headers,
            certificate,
            peer,
        };
        let request_line = facts.request_line();
        let answer = self.engine.decide(facts).await;
        let error = observe::refusal(&answer);
        (answer, Some(request_line), error)
    }
}

/// The tonic service: each check goes to the [`Frontend`] current when it arrives.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    current: Arc<ArcSwap<Frontend>>,
}

/// The `Authorization` server over `current`.
pub(crate) fn server(current: Arc<ArcSwap<Frontend>>) -> AuthorizationServer<Service> {
    AuthorizationServer::new(Service { current })
}

#[tonic::async_trait]
impl Authorization for Service {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        // The TCP peer: Envoy (tonic's `TcpConnectInfo`).
        let peer = request.remote_addr();
        let frontend = self.current.load_full();
        Ok(tonic::Response::new(
            frontend.check(peer, request.into_inner()).await,
        ))
    }
}

/// What Envoy says about the request, the certificate aside.
#[derive(Debug)]
struct Described {
    method: Method,
    scheme: String,
    authority: String,
    /// Without the query (and fragment).
    path: String,
    headers: HeaderMap,
}

/// The facts of `attributes.request.http`: method, scheme, host and path (which carries the
/// query: removed, `htu` has none), and the headers from `header_map` when Envoy sends it (every
/// line kept, so that two `DPoP` headers are refused by the layer), else from `headers` (where
/// Envoy has joined repeated headers with commas: two proofs joined are no proof). Pseudo-headers
/// (`:path`...) are left out. An error when a fact is missing or a header is not one.
fn described(check: &CheckRequest) -> Result<Described, &'static str> {
    let http = check
        .attributes
        .as_ref()
        .and_then(|attributes| attributes.request.as_ref())
        .and_then(|request| request.http.as_ref())
        .ok_or("no attributes.request.http")?;
    let method = Method::from_bytes(http.method.as_bytes()).map_err(|_| "not a method")?;
    let path = http
        .path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &[u8]| -> Result<(), &'static str> {
        if name.starts_with(':') {
            return Ok(());
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "not a header name")?;
        let value = HeaderValue::from_bytes(value).map_err(|_| "not a header value")?;
        headers.append(name, value);
        Ok(())
    };
    match &http.header_map {
        Some(map) if !map.headers.is_empty() => {
            for header in &map.headers {
                // `raw_value` with Envoy's `encode_raw_headers: true`, `value` otherwise.
                let value = if header.raw_value.is_empty() {
                    header.value.as_bytes()
                } else {
                    &header.raw_value
                };
                add(&header.key, value)?;
            }
        }
        _ => {
            for (name, value) in &http.headers {
                add(name, value.as_bytes())?;
            }
        }
    }
    Ok(Described {
        method,
        scheme: http.scheme.clone(),
        authority: http.host.clone(),
        path,
        headers,
    })
}

/// `attributes.source.certificate`: the URL-encoded PEM Envoy sends with
/// `include_peer_certificate: true`, leaf first. `None` when empty or unreadable (no
/// certificate: a certificate-bound token is refused).
fn source_certificate(check: &CheckRequest) -> Option<Vec<CertificateDer<'static>>> {
    let encoded = &check.attributes.as_ref()?.source.as_ref()?.certificate;
    pem_chain(encoded)
}

fn pem_chain(encoded: &str) -> Option<Vec<CertificateDer<'static>>> {
    if encoded.trim().is_empty() {
        return None;
    }
    // `+` stays `+` (a base64 character here).
    let pem: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!chain.is_empty()).then_some(chain)
}

/// The certificate of `x-forwarded-client-cert`, read by the library's layer (which also
/// removes every forwarded-certificate header from `headers`). The peer is a trusted one.
/// A `Hash=` without `Cert=` gives no chain, so no certificate.
async fn xfcc_certificate(
    layer: &ForwardedCertLayer,
    peer: SocketAddr,
    headers: &mut HeaderMap,
) -> Option<ClientCertificate> {
    let mut request = Request::new(());
    *request.headers_mut() = std::mem::take(headers);
    request.extensions_mut().insert(ConnectionInfo::plain(peer));
    let read = layer.layer(tower::service_fn(|request: Request<()>| async move {
        Ok::<_, std::convert::Infallible>(request)
    }));
    let request = match read.oneshot(request).await {
        Ok(request) => request,
        Err(never) => match never {},
    };
    let (parts, ()) = request.into_parts();
    *headers = parts.headers;
    parts
        .extensions
        .get::<ForwardedClientCertificate>()
        .and_then(ForwardedClientCertificate::client_certificate)
        .filter(|certificate| !certificate.chain().is_empty())
        .cloned()
}

/// The `CheckResponse` of `answer`.
async fn response(identity: &[HeaderName], answer: Answer) -> CheckResponse {
    let (parts, body) = answer.into_parts();
    let status = parts.status;
    let headers = parts.headers;
    if status.is_success() {
        let mut ok = OkHttpResponseBuilder::new();
        for name in identity {
            match headers.get(name).map(HeaderValue::as_bytes) {
                Some(value) if !value.is_empty() => {
                    // Replaces a client-sent copy.
                    ok.add_header(
                        name.as_str(),
                        String::from_utf8_lossy(value),
                        Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                        false,
                    );
                }
                // Not set (no such fact, or an empty one): a client-sent copy is removed.
                // Only then: Envoy removes after it sets, so a name both set and removed
                // would reach the upstream with neither.
                _ => {
                    ok.remove_header(name.as_str());
                }
            }
        }
        for value in headers.get_all(&DPOP_NONCE) {
            ok.add_response_header(
                DPOP_NONCE.as_str(),
                String::from_utf8_lossy(value.as_bytes()),
                Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                false,
            );
        }
        let mut response = CheckResponse::with_status(tonic::Status::ok(""));
        response.set_http_response(ok);
        return response;
    }
    // Fail closed: whatever failed is `503` to the client, never an allow.
    let (code, http_status) = if status.is_server_error() {
        (tonic::Code::Unavailable, HttpStatusCode::ServiceUnavailable)
    } else {
        let code = if status == StatusCode::UNAUTHORIZED {
            tonic::Code::Unauthenticated
        } else {
            tonic::Code::PermissionDenied
        };
        let http_status = HttpStatusCode::try_from(i32::from(status.as_u16()))
            .unwrap_or(HttpStatusCode::Forbidden);
        (code, http_status)
    };
    let mut denied = DeniedHttpResponseBuilder::new();
    denied.set_http_status(http_status);
    for (name, value) in &headers {
        if [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION].contains(name) {
            continue;
        }
        // Envoy removes the name from its local reply, then adds each value: two challenges
        // stay two.
        denied.add_header(
            name.as_str(),
            String::from_utf8_lossy(value.as_bytes()),
            Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
            false,
        );
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    denied.set_body(String::from_utf8_lossy(&body));
    let mut response = CheckResponse::with_status(tonic::Status::new(code, ""));
    response.set_http_response(denied);
    response
}

#[cfg(test)]
#[path = "ext_authz_tests.rs"]
mod tests;
