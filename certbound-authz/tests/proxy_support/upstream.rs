//! The API behind the proxy: plain HTTP, answering every request with what it received (method,
//! path and query, headers), so that a test sees what reached it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::json;

/// A running echo server, stopped on drop.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let service = tower::service_fn(|request: http::Request<hyper::body::Incoming>| {
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in request.headers() {
                headers
                    .entry(name.as_str().to_owned())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            let body = json!({
                "upstream": true,
                "method": request.method().as_str(),
                "target": request.uri().path_and_query().map(|p| p.as_str()),
                "headers": headers,
            });
            async move {
                let mut response = http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from(body.to_string()),
                ));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let task = tokio::spawn(async move {
            let _ = certbound::serve_plain(listener, service).await;
        });
        Self { addr, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
