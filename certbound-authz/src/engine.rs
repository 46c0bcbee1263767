//! The decision: the facts a proxy sends become an `http::Request` (method, the URL the client
//! used, its headers, the client certificate as a request extension), driven through the
//! library's own stack: [`BoundTokenLayer`] over [`Issuers`] (with introspection when
//! configured) and [`Dpop`], then the first matching route's [`RequireScopeLayer`] and
//! [`RequireStepUpLayer`], then an inner service that allows with the identity headers. No
//! second implementation of any check.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use certbound::dpop::{Dpop, DpopNonces, MemoryReplayStore};
use certbound::forwarded::IpRange;
use certbound::token::Binding;
use certbound::{
    AccessToken, BoundTokenLayer, ClientCertificate, ConnectionInfo, IntrospectionValidator,
    Issuers, JwtValidator, Readiness, RequireScopeLayer, RequireStepUpLayer,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _};

use crate::config::{Config, ConfigError, IdentityHeaders};

/// The answer of the decision: `200` with the identity headers (and `DPoP-Nonce` when due) to
/// allow; the layer's refusal (status, `WWW-Authenticate`, `DPoP-Nonce`, body) to deny.
pub(crate) type Answer = Response<Full<Bytes>>;

type Decide = BoxCloneSyncService<Request<()>, Answer, Infallible>;

/// What a proxy says about one request.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) method: Method,
    /// `http` or `https`.
    pub(crate) scheme: String,
    /// `host` or `host:port`.
    pub(crate) authority: String,
    /// The path, with the query already removed.
    pub(crate) path: String,
    /// The client's headers (duplicates kept: two `DPoP` headers are refused).
    pub(crate) headers: HeaderMap,
    /// The client certificate (its thumbprint computed once, where it was read); `None` when
    /// the client presented none.
    pub(crate) certificate: Option<ClientCertificate>,
    /// The proxy's address (the TCP peer of the authz listener).
    pub(crate) peer: SocketAddr,
}

impl Facts {
    /// `METHOD host/path` as the proxy described the request: what a refusal's log line says.
    pub(crate) fn request_line(&self) -> String {
        format!("{} {}{}", self.method, self.authority, self.path)
    }
}

/// Whether `peer` is one of the `proxy.trusted` ranges: the only callers whose facts are
/// believed, on either listener.
pub(crate) fn trusts(trusted: &[IpRange], peer: SocketAddr) -> bool {
    trusted.iter().any(|range| range.contains(peer.ip()))
}

/// The routes with their services, in order, and the service of requests no route covers.
#[derive(Clone)]
pub(crate) struct Engine {
    routes: Vec<(crate::config::Route, Option<Decide>)>,
    fallback: Decide,
    /// The token layer, kept for [`Engine::ready`] (a clone shares its validator and store).
    layer: BoundTokenLayer<Issuers>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

/// One [`JwtValidator`] per `[[issuers]]` (keys from `jwks_url`, or discovery), and the
/// introspection fallback, as an [`Issuers`] set.
pub(crate) fn issuers(config: &Config) -> Result<Issuers, ConfigError> {
    let mut set = Issuers::builder();
    for (i, issuer) in config.issuers.iter().enumerate() {
        let mut audiences = issuer.audiences.iter();
        let first = audiences.next().map(String::as_str).unwrap_or_default();
        let mut builder = JwtValidator::builder(&issuer.issuer, first);
        for audience in audiences {
            builder = builder.audience(audience);
        }
        builder = match &issuer.jwks_url {
            Some(url) => builder.jwks_url(url),
            None => builder.discover(),
        };
        for root in &issuer.roots {
            builder = builder.trust_root(root.clone());
        }
        let validator = builder
            .build()
            .map_err(|e| ConfigError::new(format!("issuers[{i}]"), e))?;
        set = set.jwt(validator);
    }
    if let Some(introspection) = &config.introspection {
        let mut builder = IntrospectionValidator::endpoint(&introspection.url)
            .client_secret_basic(&introspection.client_id, &introspection.client_secret);
        // The answer's `aud` must name this API (one of the issuers' audiences); with one
        // issuer its `iss` must be it too (with several, an answer may come from any of them).
        if let [issuer] = config.issuers.as_slice() {
            builder = builder.issuer(&issuer.issuer);
        }
        let mut audiences: Vec<&String> = Vec::new();
        for audience in config.issuers.iter().flat_map(|i| &i.audiences) {
            if !audiences.contains(&audience) {
                audiences.push(audience);
                builder = builder.audience(audience);
            }
        }
        for root in &introspection.roots {
            builder = builder.trust_root(root.clone());
        }
        let validator = builder
            .build()
            .map_err(|e| ConfigError::new("introspection", e))?;
        set = set.introspection(validator);
    }
    set.build().map_err(|e| ConfigError::new("issuers", e))
}

/// The DPoP settings of `[tokens]`; `None` with `dpop = false`.
/// `memory` is the replay store without `replay_redis`: the process keeps one for its lifetime,
/// so that a reload forgets no proof (a forgotten proof could be replayed).
pub(crate) async fn dpop(
    config: &Config,
    memory: &Arc<MemoryReplayStore>,
) -> Result<Option<Dpop>, ConfigError> {
    let tokens = &config.tokens;
    if !tokens.dpop {
        return Ok(None);
    }
    let mut dpop = Dpop::new();
    if let Some(url) = &tokens.public_url {
        dpop = dpop
            .public_url(url)
            .map_err(|e| ConfigError::new("tokens.public_url", e))?;
    }
    if let Some(file) = &tokens.dpop_nonce_key_file {
        let nonces = DpopNonces::from_file(file)
            .map_err(|e| ConfigError::new("tokens.dpop_nonce_key_file", e))?;
        dpop = dpop.require_nonce(nonces);
    }
    if let Some(keys) = tokens.dpop_max_cached_proof_keys {
        dpop = dpop.max_cached_proof_keys(keys);
    }
    match &tokens.replay_redis {
        Some(url) => {
            // Connects lazily: a Redis that is down now refuses proofs (503), not the start.
            let store = certbound::dpop::RedisReplayStore::connect(url)
                .await
                .map_err(|e| ConfigError::new("tokens.replay_redis", e))?;
            dpop = dpop.replay_store(store);
        }
        None => dpop = dpop.replay_store(Arc::clone(memory)),
    }
    Ok(Some(dpop))
}

impl Engine {
    /// The engine of `config`, with `validator` for the tokens (see [`issuers`]).
    pub(crate) fn new(
        config: &Config,
        validator: Issuers,
        dpop: Option<Dpop>,
    ) -> Result<Self, ConfigError> {
        let mut layer = BoundTokenLayer::new(validator);
        if config.tokens.allow_unbound {
            layer = layer.allow_unbound();
        }
        if let Some(dpop) = dpop {
            layer = layer.dpop(dpop);
        }
        let allow = Allow {
            identity: config.identity_headers.clone(),
        };
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            let service = if route.open {
                None
            } else {
                // Innermost first: the step-up, then the scopes, then the token.
                let mut inner = Decide::new(allow.clone());
                if let Some(step_up) = step_up(i, route)? {
                    inner = Decide::new(step_up.layer(inner));
                }
                if !route.scopes.is_empty() {
                    let scopes = RequireScopeLayer::new(route.scopes.iter().cloned())
                        .map_err(|e| ConfigError::new(format!("routes[{i}].scopes"), e))?;
                    inner = Decide::new(scopes.layer(inner));
                }
                Some(Decide::new(layer.layer(inner)))
            };
            routes.push((route.clone(), service));
        }
        Ok(Self {
            routes,
            fallback: Decide::new(layer.layer(allow)),
            layer,
        })
    }

    /// Whether checks can be decided now rather than answered `503`: every issuer's keys
    /// loaded (or fetched by this call), the introspection endpoint answering, the DPoP replay
    /// store answering ([`BoundTokenLayer::ready`]).
    pub(crate) async fn ready(&self) -> Readiness {
        self.layer.ready().await
    }

    /// The decision for `facts`.
    pub(crate) async fn decide(&self, facts: Facts) -> Answer {
        // A route is chosen by its path: one that the proxy or the upstream could read as
        // another path could open what is closed, or skip a route's scopes.
        let Some(route_path) = route_path(&facts.path) else {
            return plain(StatusCode::BAD_REQUEST);
        };
        let service = self
            .routes
            .iter()
            .find(|(route, _)| route.covers(&facts.method, &route_path))
            .map_or(Some(&self.fallback), |(_, service)| service.as_ref());
        let Some(service) = service else {
            // An open route: no token needed, no identity sent.
            return plain(StatusCode::OK);
        };
        let Some(request) = request(facts) else {
            return plain(StatusCode::BAD_REQUEST);
        };
        match service.clone().oneshot(request).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        }
    }
}

/// The step-up layer of route `i` (RFC 9470): `acr_values` and/or `max_age`; `None` when it
/// has neither.
fn step_up(
    i: usize,
    route: &crate::config::Route,
) -> Result<Option<RequireStepUpLayer>, ConfigError> {
    let layer = match (&route.acr_values, route.max_age) {
        (None, None) => return Ok(None),
        (None, Some(max_age)) => RequireStepUpLayer::authenticated_within(max_age),
        (Some(values), max_age) => {
            let layer = RequireStepUpLayer::acr_values(values.iter().cloned())
                .map_err(|e| ConfigError::new(format!("routes[{i}].acr_values"), e))?;
            match max_age {
                Some(max_age) => layer.max_age(max_age),
                None => layer,
            }
        }
    };
    Ok(Some(layer))
}

/// The request the layer sees: the URL the client used, its headers, and the certificate where
/// the layer looks for it. With `https` the facts are those of a TLS connection (the `htu`
/// scheme of DPoP proofs); with `http`, a plain one with the certificate (if any) inserted.
fn request(facts: Facts) -> Option<Request<()>> {
    let scheme = match facts.scheme.to_ascii_lowercase().as_str() {
        "https" => "https",
        "http" => "http",
        _ => return None,
    };
    // Exactly an authority (`host[:port]`): no userinfo, nothing that would move the path.
    let authority: http::uri::Authority = facts.authority.parse().ok()?;
    if authority.as_str().contains('@') || authority.as_str() != facts.authority {
        return None;
    }
    let uri: http::Uri = format!("{scheme}://{authority}{}", facts.path)
        .parse()
        .ok()?;
    let mut request = Request::builder()
        .method(facts.method)
        .uri(uri)
        .body(())
        .ok()?;
    *request.headers_mut() = facts.headers;
    let certificate = facts.certificate;
    if scheme == "https" {
        request
            .extensions_mut()
            .insert(ConnectionInfo::new(facts.peer, certificate));
    } else {
        request
            .extensions_mut()
            .insert(ConnectionInfo::plain(facts.peer));
        if let Some(certificate) = certificate {
            request.extensions_mut().insert(certificate);
        }
    }
    Some(request)
}

/// The path routes are matched against: percent-decoded (`/%61dmin` is `/admin` to the
/// upstream, so it must be to the routes too). `None`, refused, for a path an upstream could
/// read as another: not starting with `/`, an encoded `/` or `\`, a `\`, an empty segment
/// (`//`), a dot segment (`.` or `..`, encoded or not, also with `;` parameters as servlet
/// containers read them), or not UTF-8 once decoded.
fn route_path(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?
        .into_owned();
    let dot_or_empty = decoded.split('/').skip(1).any(|segment| {
        let base = segment.split(';').next().unwrap_or_default();
        base.is_empty() && segment.len() != base.len() || base == "." || base == ".."
    });
    if dot_or_empty || decoded.contains("//") {
        return None;
    }
    Some(decoded)
}

/// An answer with `status` alone.
pub(crate) fn plain(status: StatusCode) -> Answer {
    let mut answer = Response::new(Full::default());
    *answer.status_mut() = status;
    answer
}

/// The innermost service: the token passed every check, so allow, with the identity headers.
#[derive(Debug, Clone)]
struct Allow {
    identity: IdentityHeaders,
}

impl tower::Service<Request<()>> for Allow {
    type Response = Answer;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Answer, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let Some(token) = request.extensions().get::<AccessToken>() else {
            // The layer always inserts it: without it, refuse.
            return std::future::ready(Ok(plain(StatusCode::INTERNAL_SERVER_ERROR)));
        };
        let mut answer = plain(StatusCode::OK);
        let headers = answer.headers_mut();
        let scope = token.scopes().join(" ");
        let binding = match token.binding() {
            Binding::Certificate => "certificate",
            Binding::Dpop => "dpop",
            Binding::CertificateAndDpop => "certificate+dpop",
            Binding::Unbound => "none",
            _ => "unknown",
        };
        let facts = [
            (&self.identity.subject, token.subject()),
            (&self.identity.client_id, token.client_id()),
            (&self.identity.scope, Some(scope.as_str())),
            (&self.identity.issuer, token.issuer()),
            (&self.identity.binding, Some(binding)),
        ];
        for (name, value) in facts {
            if let (Some(name), Some(value)) = (name, value) {
                headers.insert(name.clone(), header_value(value));
            }
        }
        std::future::ready(Ok(answer))
    }
}

/// Bytes outside visible ASCII, and `%` itself, percent-encoded (UTF-8): a claim can hold any
/// string, a header value cannot.
const NOT_VISIBLE: &AsciiSet = &CONTROLS.add(b'%');

fn header_value(value: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(value, NOT_VISIBLE).to_string();
    // Only visible ASCII and spaces remain.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
