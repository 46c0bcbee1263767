//! A service that panics behind `certbound::serve`: the request is answered `500` with an empty
//! body, and the server (and, on HTTP/2, the connection) keeps serving.

use std::convert::Infallible;
use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;

use crate::common::*;
use certbound::ConnectionInfo;
use http::{Request, Response};
use reqwest::Version;

/// `/panic` panics in the response future, `/panic-in-call` in `call` itself; `/peer` answers
/// the client's address as the server saw it (one per connection).
fn panicking_app() -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<String>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|request: Request<hyper::body::Incoming>| {
        let path = request.uri().path().to_owned();
        assert_ne!(
            path, "/panic-in-call",
            "a defect in call with a token-secret"
        );
        async move {
            match path.as_str() {
                "/panic" => panic!("a defect quoting the request: token-secret"),
                _ => {
                    let peer = request
                        .extensions()
                        .get::<ConnectionInfo>()
                        .map(|info| info.remote_addr().to_string())
                        .unwrap_or_default();
                    Ok(Response::new(peer))
                }
            }
        }
    })
}

async fn start(pki: &Pki) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(certbound::serve(listener, ca_verified_tls(pki), panicking_app()).into_future());
    addr
}

async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> reqwest::Response {
    client
        .get(format!("https://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
}

#[tokio::test]
async fn a_panicking_request_over_http1_is_answered_500_and_the_next_connection_is_served() {
    let pki = Pki::new("panics-ca");
    let alice = pki.client_identity("alice");
    let addr = start(&pki).await;
    for path in ["/panic", "/panic-in-call"] {
        let client = https_client_http1(&pki.ca_der(), Some(&alice));
        let response = get(&client, addr, path).await;
        assert_eq!(response.version(), Version::HTTP_11);
        assert_eq!(response.status(), 500, "{path}");
        // The service's state is suspect: this connection ends after the answer.
        assert_eq!(
            response.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "{path}"
        );
        let body = response.bytes().await.expect("body");
        assert!(body.is_empty(), "{path}: the answer has a body: {body:?}");
        // The next connection is served.
        let next = https_client_http1(&pki.ca_der(), Some(&alice));
        assert_eq!(get(&next, addr, "/peer").await.status(), 200);
    }
}

#[tokio::test]
async fn a_panicking_stream_over_http2_is_answered_500_and_the_connection_goes_on() {
    let pki = Pki::new("panics-ca");
    let alice = pki.client_identity("alice");
    let addr = start(&pki).await;
    let client = https_client(&pki.ca_der(), Some(&alice));
    let first = get(&client, addr, "/peer").await;
    assert_eq!(first.version(), Version::HTTP_2);
    let peer = first.text().await.expect("peer");
    for path in ["/panic", "/panic-in-call"] {
        let response = get(&client, addr, path).await;
        assert_eq!(response.version(), Version::HTTP_2);
        assert_eq!(response.status(), 500, "{path}");
        let body = response.bytes().await.expect("body");
        assert!(body.is_empty(), "{path}: the answer has a body: {body:?}");
    }
    // The same connection (the same client port) still serves.
    let after = get(&client, addr, "/peer").await;
    assert_eq!(after.status(), 200);
    assert_eq!(after.text().await.expect("peer"), peer);
}
