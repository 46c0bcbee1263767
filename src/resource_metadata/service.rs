use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

/// What every response is made of, rendered once by
/// [`ResourceMetadata::build`](crate::ResourceMetadata::build).
pub(crate) struct Prebuilt {
    pub(crate) path: String,
    pub(crate) metadata_url: String,
    pub(crate) body: Bytes,
    pub(crate) cache_control: HeaderValue,
}

/// Serves a protected resource metadata document (RFC 9728 §3) to anyone: `GET` and `HEAD`
/// on its [`path`](Self::path) answer `200` with the prebuilt JSON, other methods there `405`,
/// other paths `404`. Built by [`ResourceMetadata::build`](crate::ResourceMetadata::build).
///
/// Mount it outside the [`BoundTokenLayer`](crate::BoundTokenLayer): a client reads the
/// document to learn how to get a token, so it cannot need one (with axum,
/// `Router::route_service(service.path(), service)` next to the protected routes, then the
/// layer on those routes only). Clones share the document.
#[derive(Clone)]
pub struct ResourceMetadataService {
    prebuilt: Arc<Prebuilt>,
}

impl ResourceMetadataService {
    pub(crate) fn new(prebuilt: Prebuilt) -> Self {
        Self {
            prebuilt: Arc::new(prebuilt),
        }
    }

    /// The path the document is served at (`/.well-known/oauth-protected-resource`, then the
    /// resource's path; RFC 9728 §3.1).
    pub fn path(&self) -> &str {
        &self.prebuilt.path
    }

    /// The absolute URL of the document, as the layers' challenges name it (RFC 9728 §5.1).
    pub fn metadata_url(&self) -> &str {
        &self.prebuilt.metadata_url
    }

    /// The document, as served.
    pub fn body(&self) -> Bytes {
        self.prebuilt.body.clone()
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::default());
        if path != self.prebuilt.path {
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        let headers = response.headers_mut();
        match *method {
            Method::GET | Method::HEAD => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(CACHE_CONTROL, self.prebuilt.cache_control.clone());
                if method == Method::HEAD {
                    // RFC 9110 §9.3.2: the headers a GET would have, without the content.
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(self.prebuilt.body.len()));
                } else {
                    *response.body_mut() = Full::new(self.prebuilt.body.clone());
                }
            }
            _ => {
                // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
                headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            }
        }
        response
    }
}

impl fmt::Debug for ResourceMetadataService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceMetadataService")
            .field("path", &self.prebuilt.path)
            .field("metadata_url", &self.prebuilt.metadata_url)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for ResourceMetadataService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(request.method(), request.uri().path())))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Waker;

    use http_body::Body as _;

    use super::*;
    use crate::ResourceMetadata;

    fn service() -> ResourceMetadataService {
        ResourceMetadata::new("https://api.example/v1")
            .unwrap()
            .authorization_server("https://as.example")
            .cache_max_age(std::time::Duration::from_secs(600))
            .build()
            .unwrap()
    }

    fn call(
        service: &mut ResourceMetadataService,
        method: Method,
        path: &str,
    ) -> Response<Full<Bytes>> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        let future = pin!(service.call(request));
        match future.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => unreachable!("the document is prebuilt"),
        }
    }

    fn body(response: Response<Full<Bytes>>) -> Bytes {
        let mut body = pin!(response.into_body());
        match body
            .as_mut()
            .poll_frame(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        }
    }

    const PATH: &str = "/.well-known/oauth-protected-resource/v1";

    #[test]
    fn get_answers_the_document_as_cacheable_json() {
        let mut service = service();
        let response = call(&mut service, Method::GET, PATH);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[CACHE_CONTROL], "public, max-age=600");
        let document: serde_json::Value = serde_json::from_slice(&body(response)).unwrap();
        assert_eq!(document["resource"], "https://api.example/v1");
        // A query string does not change what is served.
        let response = call(&mut service, Method::GET, &format!("{PATH}?x=1"));
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn head_answers_the_headers_of_get_without_the_document() {
        let mut service = service();
        let response = call(&mut service, Method::HEAD, PATH);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            service.body().len().to_string().as_str()
        );
        assert!(body(response).is_empty());
    }

    #[test]
    fn other_methods_are_not_allowed_and_other_paths_not_found() {
        let mut service = service();
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let response = call(&mut service, method.clone(), PATH);
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(response.headers()[ALLOW], "GET, HEAD");
            assert!(body(response).is_empty());
        }
        for path in [
            "/",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/v1/",
            "/.well-known/oauth-protected-resource/V1",
            "/v1/.well-known/oauth-protected-resource",
        ] {
            let response = call(&mut service, Method::GET, path);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(body(response).is_empty());
        }
    }

    #[test]
    fn every_clone_serves_the_same_prebuilt_bytes() {
        let mut service = service();
        let mut clone = service.clone();
        let first = body(call(&mut service, Method::GET, PATH));
        let second = body(call(&mut clone, Method::GET, PATH));
        assert_eq!(first, second);
        // Not a copy: the very bytes rendered at build.
        assert_eq!(first.as_ptr(), service.body().as_ptr());
        assert_eq!(second.as_ptr(), service.body().as_ptr());
    }
}
