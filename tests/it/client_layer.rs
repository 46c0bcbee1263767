//! The outgoing side: `client::TokenLayer` around real HTTP clients (reqwest under
//! `tower::service_fn` over HTTP/1.1 and HTTP/2, tonic's `Channel`) and `client::ReqwestClient`,
//! against resource servers built from `BoundTokenLayer` over real mutual TLS, with tokens
//! from the example authorization server's routes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use certbound::client::{ClientIdentity as Identity, ReqwestClient, TokenLayer};
use certbound::dpop::{Dpop, DpopKey, DpopNonces};
use certbound::BoundTokenLayer;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tower::{Service as _, ServiceExt as _};
use tower_layer::Layer as _;

use crate::client_tokens::{self_signed, Authority};
use crate::common::*;

/// What the resource server saw: statuses answered, DPoP proofs received, and the tokens to
/// refuse once as `invalid_token` (as if revoked).
#[derive(Default)]
struct Seen {
    statuses: Mutex<Vec<u16>>,
    proofs: Mutex<Vec<String>>,
    refuse: Mutex<HashSet<String>>,
}

impl Seen {
    fn statuses(&self) -> Vec<u16> {
        self.statuses.lock().unwrap().clone()
    }
}

/// `POST /echo` (the body back) and `GET|POST /whoami` behind `layer`, wrapped in a recorder
/// that refuses the tokens in `seen.refuse` before the layer sees them.
async fn resource_server(
    authority: &Authority,
    layer: BoundTokenLayer<certbound::JwtValidator>,
    seen: Arc<Seen>,
) -> TestServer {
    let guarded = Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/whoami", axum::routing::get(whoami).post(whoami))
        .layer(layer);
    let recorder = Arc::clone(&seen);
    let app = guarded.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let seen = Arc::clone(&recorder);
            async move {
                if let Some(proof) = request.headers().get("dpop") {
                    seen.proofs
                        .lock()
                        .unwrap()
                        .push(proof.to_str().unwrap().to_owned());
                }
                let token = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split_once(' '))
                    .map(|(_, token)| token.to_owned())
                    .unwrap_or_default();
                let refused = seen.refuse.lock().unwrap().remove(&token);
                let response = if refused {
                    let mut response = StatusCode::UNAUTHORIZED.into_response();
                    response.headers_mut().insert(
                        "www-authenticate",
                        HeaderValue::from_static(
                            r#"Bearer error="invalid_token", error_description="revoked""#,
                        ),
                    );
                    response
                } else {
                    next.run(request).await
                };
                seen.statuses
                    .lock()
                    .unwrap()
                    .push(response.status().as_u16());
                response
            }
        },
    ));
    TestServer::start(any_certificate_tls(&authority.pki), app).await
}

/// reqwest behind `tower::service_fn`: any tower HTTP client will do for the layer.
fn reqwest_service(
    http: reqwest::Client,
) -> impl tower::Service<
    http::Request<reqwest::Body>,
    Response = http::Response<reqwest::Body>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |request: http::Request<reqwest::Body>| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            Ok(http::Response::from(http.execute(request).await?))
        }
    })
}

fn http_client(authority: &Authority, identity: &Identity, http1: bool) -> reqwest::Client {
    let mut tls = identity
        .tls_config(&[authority.pki.ca_der()], false)
        .expect("TLS config");
    let builder = if http1 {
        // The ALPN offer decides: a preconfigured TLS config is used as it is.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        reqwest::Client::builder().http1_only()
    } else {
        reqwest::Client::builder()
    };
    builder
        .tls_backend_preconfigured(tls)
        .build()
        .expect("client")
}

async fn body_json(response: http::Response<reqwest::Body>) -> Value {
    let bytes = reqwest::Response::from(response)
        .bytes()
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn certificate_bound_calls_through_the_layer_work_over_http1_and_http2_with_one_token() {
    let (test, identity, registration) = self_signed("layered");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let seen = Arc::new(Seen::default());
    let api = resource_server(
        &authority,
        BoundTokenLayer::new(authority.validator()),
        Arc::clone(&seen),
    )
    .await;
    let tokens = authority
        .source("layered", &identity)
        .build()
        .expect("source");
    for http1 in [true, false] {
        let client = TokenLayer::new(tokens.clone())
            .layer(reqwest_service(http_client(&authority, &identity, http1)));
        for _ in 0..3 {
            let request = http::Request::get(api.url("/whoami"))
                .body(reqwest::Body::from(""))
                .expect("request");
            let response = client.clone().oneshot(request).await.expect("call");
            let expected = if http1 {
                http::Version::HTTP_11
            } else {
                http::Version::HTTP_2
            };
            assert_eq!(response.version(), expected);
            assert_eq!(response.status(), 200);
            let body = body_json(response).await;
            assert_eq!(body["thumbprint"], test.x5t_s256());
        }
    }
    assert_eq!(authority.requests(), 1);
    assert_eq!(seen.statuses(), [200; 6]);
}

#[tokio::test]
async fn dpop_calls_get_a_fresh_proof_each_and_follow_the_servers_nonce_once() {
    let (_test, identity, registration) = self_signed("nonce-client");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let seen = Arc::new(Seen::default());
    let nonces = DpopNonces::new([9u8; 32]).expect("secret");
    let layer = BoundTokenLayer::new(authority.validator()).dpop(Dpop::new().require_nonce(nonces));
    let api = resource_server(&authority, layer, Arc::clone(&seen)).await;
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    let tokens = authority
        .source("nonce-client", &identity)
        .dpop(key.clone())
        .build()
        .expect("source");
    // A layer of its own per protocol: each learns the nonce from its first 401.
    for http1 in [false, true] {
        seen.statuses.lock().unwrap().clear();
        seen.proofs.lock().unwrap().clear();
        let mut client = TokenLayer::new(tokens.clone())
            .layer(reqwest_service(http_client(&authority, &identity, http1)));
        for round in 0..3 {
            let body = format!("round {round}");
            let request = http::Request::post(format!("{}?q={round}#frag", api.url("/echo")))
                .body(reqwest::Body::from(body.clone()))
                .expect("request");
            let response = client
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("call");
            assert_eq!(response.status(), 200);
            let expected = if http1 {
                http::Version::HTTP_11
            } else {
                http::Version::HTTP_2
            };
            assert_eq!(response.version(), expected);
            let echoed = reqwest::Response::from(response)
                .text()
                .await
                .expect("body");
            assert_eq!(echoed, body, "the body sent again is the body");
        }
        // The first call learnt the nonce from a 401 and was sent again; the others carried it.
        assert_eq!(seen.statuses(), [401, 200, 200, 200]);
        let proofs = seen.proofs.lock().unwrap().clone();
        assert_eq!(proofs.len(), 4);
        assert_eq!(
            proofs.iter().collect::<HashSet<_>>().len(),
            4,
            "a fresh proof each time"
        );
        let claims = |proof: &str| {
            let payload = proof.split('.').nth(1).unwrap();
            serde_json::from_slice::<Value>(&b64url_decode(payload)).unwrap()
        };
        let last = claims(&proofs[3]);
        assert_eq!(last["htm"], "POST");
        assert_eq!(last["htu"], api.url("/echo"), "no query, no fragment");
        assert!(last["nonce"].is_string());
        assert!(claims(&proofs[0]).get("nonce").is_none());
    }
    assert_eq!(authority.requests(), 1);
}

fn b64url_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

#[tokio::test]
async fn a_refused_token_is_replaced_and_a_replayable_request_sent_again() {
    let (_test, identity, registration) = self_signed("revoked");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let seen = Arc::new(Seen::default());
    let api = resource_server(
        &authority,
        BoundTokenLayer::new(authority.validator()),
        Arc::clone(&seen),
    )
    .await;
    let tokens = authority
        .source("revoked", &identity)
        .build()
        .expect("source");
    let first = tokens.token().await.expect("token");
    seen.refuse
        .lock()
        .unwrap()
        .insert(first.secret().to_owned());
    let client = TokenLayer::new(tokens.clone())
        .layer(reqwest_service(http_client(&authority, &identity, false)));
    let request = http::Request::post(api.url("/echo"))
        .body(reqwest::Body::from("payload"))
        .expect("request");
    let response = client.clone().oneshot(request).await.expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(
        reqwest::Response::from(response).text().await.unwrap(),
        "payload"
    );
    assert_eq!(seen.statuses(), [401, 200]);
    assert_eq!(authority.requests(), 2);
    assert_ne!(tokens.token().await.unwrap().secret(), first.secret());

    // A streamed body cannot be sent again: the caller gets the 401, once.
    let current = tokens.token().await.expect("token");
    seen.refuse
        .lock()
        .unwrap()
        .insert(current.secret().to_owned());
    let stream = http_body_util::StreamBody::new(futures_stream(["chunk one, ", "chunk two"]));
    let request = http::Request::post(api.url("/echo"))
        .body(reqwest::Body::wrap(stream))
        .expect("request");
    let response = client.clone().oneshot(request).await.expect("call");
    assert_eq!(response.status(), 401);
    assert_eq!(seen.statuses(), [401, 200, 401]);
    // The refused token is not handed out again: the next call gets another one.
    let request = http::Request::get(api.url("/whoami"))
        .body(reqwest::Body::from(""))
        .expect("request");
    let response = client.clone().oneshot(request).await.expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(authority.requests(), 3);
}

/// A body of unknown length.
fn futures_stream(
    chunks: [&'static str; 2],
) -> impl tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>>
       + Send
       + Sync
       + 'static {
    tokio_stream::iter(chunks.map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes())))))
}

#[tokio::test]
async fn the_reqwest_adapter_sends_the_token_and_proof_and_retries_like_the_layer() {
    let (_test, identity, registration) = self_signed("adapter");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let seen = Arc::new(Seen::default());
    let nonces = DpopNonces::new([3u8; 32]).expect("secret");
    let layer = BoundTokenLayer::new(authority.validator()).dpop(Dpop::new().require_nonce(nonces));
    let api = resource_server(&authority, layer, Arc::clone(&seen)).await;
    let tokens = authority
        .source("adapter", &identity)
        .dpop(DpopKey::generate(Algorithm::EdDSA).expect("key"))
        .build()
        .expect("source");
    let client = ReqwestClient::new(http_client(&authority, &identity, false), tokens.clone());
    let request = client
        .http()
        .post(api.url("/echo"))
        .body("hello")
        .build()
        .unwrap();
    let response = client.execute(request).await.expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello");
    assert_eq!(seen.statuses(), [401, 200]);
    // Revoked: replaced once, sent again with the new token and a proof with the nonce.
    let current = tokens.token().await.expect("token");
    seen.refuse
        .lock()
        .unwrap()
        .insert(current.secret().to_owned());
    let request = client.http().get(api.url("/whoami")).build().unwrap();
    let response = client.execute(request).await.expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(seen.statuses(), [401, 200, 401, 200]);
    assert_eq!(authority.requests(), 2);
}

#[tokio::test]
async fn a_tonic_channel_through_the_layer_calls_a_protected_grpc_service() {
    use crate::whoami::{WhoamiClient, WhoamiRequest, WhoamiServer};
    let (test, identity, registration) = self_signed("grpc-client");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let protected = BoundTokenLayer::new(authority.validator())
        .dpop(Dpop::new())
        .layer(WhoamiServer);
    let server = tokio::spawn(std::future::IntoFuture::into_future(certbound::serve(
        listener,
        any_certificate_tls(&authority.pki),
        protected,
    )));
    // tonic's own TLS, presenting the identity certbound's client side loaded.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            authority.pki.ca_pem(),
        ))
        .identity(identity.tonic_identity())
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("TLS config")
        .connect()
        .await
        .expect("connect");
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    for dpop in [false, true] {
        let mut builder = authority.source("grpc-client", &identity);
        if dpop {
            builder = builder.dpop(key.clone());
        }
        let tokens = builder.build().expect("source");
        let layer = TokenLayer::new(tokens)
            .origin(&format!("https://{addr}"))
            .expect("origin");
        let mut client = WhoamiClient::over(layer.layer(channel.clone()));
        for _ in 0..2 {
            let reply = client
                .whoami(tonic::Request::new(WhoamiRequest {}))
                .await
                .unwrap_or_else(|status| panic!("dpop {dpop}: {status:?}"))
                .into_inner();
            assert_eq!(reply.client_id, "grpc-client");
            if dpop {
                assert_eq!(reply.jkt, key.thumbprint().to_string());
            } else {
                assert_eq!(reply.x5t_s256, test.x5t_s256());
            }
        }
    }
    server.abort();
}

#[tokio::test]
async fn hyper_utils_client_through_the_layer_gets_a_dpop_protected_answer() {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let (_test, identity, registration) = self_signed("hyper-client");
    let authority = Authority::start(json!([registration]), 300, None).await;
    // DPoP needs no TLS to the resource server: plain HTTP keeps this test to hyper-util's
    // own connector.
    let nonces = DpopNonces::new([4u8; 32]).expect("secret");
    let layer = BoundTokenLayer::new(authority.validator()).dpop(Dpop::new().require_nonce(nonces));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(std::future::IntoFuture::into_future(
        certbound::serve_plain(listener, whoami_app(layer)),
    ));
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    let tokens = authority
        .source("hyper-client", &identity)
        .dpop(key.clone())
        .build()
        .expect("source");
    let hyper_client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = TokenLayer::new(tokens).layer(hyper_client);
    for _ in 0..2 {
        let request = http::Request::post(format!("http://{addr}/whoami"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let response = client.clone().oneshot(request).await.expect("call");
        assert_eq!(response.status(), 200);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["jkt"], key.thumbprint().to_string());
    }
    server.abort();
}
