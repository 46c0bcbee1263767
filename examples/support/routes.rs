//! The resource server's routes, for one resource identifier: `/whoami` and `/step-up` behind
//! the token layer, `/healthz` and the RFC 9728 metadata document open; every challenge points
//! at that document (`resource_metadata`, RFC 9728 §5.1).
//!
//! With `--public-url` the resource is that URL, and the routes are built once. Without it the
//! resource is `https://` + the request's `Host`, so the routes (document and challenges) are
//! built per `Host`, on its first request, and kept for up to [`MAX_HOSTS`] names; requests
//! naming others get routes built for them alone.
//!
//! Included by `resource_server.rs` only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Request;
use axum::http::{header::HOST, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{routing::get, Json, Router};
use certbound::{
    AccessToken, BoundTokenLayer, RequireStepUpLayer, ResourceMetadata, ValidateToken,
};
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// How many `Host` names get their routes kept (without `--public-url`).
const MAX_HOSTS: usize = 16;

/// What the routes of every resource identifier are made of.
pub(crate) struct Routes<V> {
    /// The token layer, without `resource_metadata` (added per resource).
    pub(crate) layer: BoundTokenLayer<V>,
    /// `--step-up-acr` / `--step-up-max-age`, without `resource_metadata`.
    pub(crate) step_up: Option<RequireStepUpLayer>,
    /// The `--issuer` values, in order: the document's `authorization_servers`.
    pub(crate) authorization_servers: Vec<String>,
}

impl<V: ValidateToken> Routes<V> {
    /// The routes of the resource `resource` (an `https` URL without query or fragment).
    pub(crate) fn for_resource(&self, resource: &str) -> Result<Router, String> {
        let metadata = ResourceMetadata::new(resource).map_err(|e| e.to_string())?;
        let url = metadata.metadata_url().to_owned();
        let layer = self
            .layer
            .clone()
            .resource_metadata(&url)
            .map_err(|e| e.to_string())?;
        let document = self
            .authorization_servers
            .iter()
            .fold(metadata, |metadata, issuer| {
                metadata.authorization_server(issuer)
            })
            // DPoP algorithms and required scopes, as the layer enforces them.
            .bound_token_layer(&layer)
            .build()
            .map_err(|e| e.to_string())?;
        let path = document.path().to_owned();
        let step_up = match &self.step_up {
            Some(step_up) => {
                let step_up = step_up
                    .clone()
                    .resource_metadata(&url)
                    .map_err(|e| e.to_string())?;
                get(whoami).layer(step_up)
            }
            None => get(whoami),
        };
        // `layer` (not `route_layer`) also wraps the fallbacks: a caller without a valid token
        // gets 401 for any path and method, and learns nothing about which routes exist.
        // Routes added after the call are outside it.
        Ok(Router::new()
            .route("/whoami", get(whoami))
            .route("/step-up", step_up)
            .layer(layer)
            .route("/healthz", get(|| async { "ok" }))
            .route_service(&path, document))
    }

    /// The application: the routes of `public_url`, or (without it) of `https://` + each
    /// request's `Host`. `Err` when `public_url` cannot identify a resource.
    pub(crate) fn app(self, public_url: Option<&str>) -> Result<Router, String> {
        if let Some(url) = public_url {
            return self
                .for_resource(url)
                .map_err(|e| format!("--public-url: {e}"));
        }
        // What does not depend on the Host is checked now (an issuer that cannot be listed in
        // `authorization_servers`), not on every request.
        let _ = self.for_resource("https://localhost")?;
        let per_host = Arc::new(PerHost {
            routes: self,
            cache: Mutex::new(HashMap::new()),
        });
        Ok(Router::new().fallback(move |request: Request| {
            let per_host = Arc::clone(&per_host);
            async move { per_host.serve(request).await }
        }))
    }
}

/// The routes per `Host`.
struct PerHost<V> {
    routes: Routes<V>,
    cache: Mutex<HashMap<String, Router>>,
}

impl<V: ValidateToken> PerHost<V> {
    async fn serve(&self, request: Request) -> Response {
        let Some(host) = host(&request) else {
            return (StatusCode::BAD_REQUEST, "no usable Host\n").into_response();
        };
        let cached = self.lock().get(&host).cloned();
        let router = match cached {
            Some(router) => router,
            None => match self.routes.for_resource(&format!("https://{host}")) {
                Ok(router) => {
                    let mut cache = self.lock();
                    if cache.len() < MAX_HOSTS {
                        cache.insert(host, router.clone());
                    }
                    router
                }
                // A Host that cannot name a resource (user information, characters a
                // challenge cannot carry).
                Err(_) => return (StatusCode::BAD_REQUEST, "no usable Host\n").into_response(),
            },
        };
        let response: Result<Response, Infallible> = router.oneshot(request).await;
        match response {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Router>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The request's host and port: the URI's authority (HTTP/2, absolute form), else `Host`.
fn host(request: &Request) -> Option<String> {
    let host = match request.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => request.headers().get(HOST)?.to_str().ok()?.to_owned(),
    };
    let bad = |c: char| matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_ascii_whitespace();
    (!host.is_empty() && !host.contains(bad)).then_some(host)
}

/// `GET /whoami` (and `GET /step-up`): who the validated, sender-constrained token says the
/// caller is.
async fn whoami(token: AccessToken) -> Json<Value> {
    Json(json!({
        "iss": token.issuer(),
        "sub": token.subject(),
        "client_id": token.client_id(),
        "scope": token.scopes(),
        // The token's bindings, which the layer checked: against the presented certificate,
        // and against the key that signed the request's DPoP proof. Null when the token has no
        // such binding (both null only for unbound tokens under --allow-unbound).
        "x5t#S256": token.thumbprint().map(ToString::to_string),
        "jkt": token.dpop_thumbprint().map(ToString::to_string),
    }))
}
