//! The calling side: what a cached token and a DPoP proof cost the caller.
//!
//! A token endpoint runs on 127.0.0.1 (real TLS, the client authenticated by its certificate);
//! each `TokenSource` gets its token from it once, before the timed loops. Then:
//! - `cached/token_source_token`: `TokenSource::token` answering from its cache;
//! - `cached/inner_alone` and `cached/layer_bearer`: one request through a tower service that
//!   answers at once, without and with `TokenLayer` (a certificate-bound token: the
//!   `Authorization` header, no proof);
//! - `dpop_<alg>/raw_sign` and `dpop_<alg>/layer_request`: signing the proof the layer would
//!   make (same key, method, URL, `ath`), against a whole request through `TokenLayer` with a
//!   DPoP-bound token (the same signature, plus everything else the layer does).
//!
//! Before the criterion groups, the DPoP ratio is also measured interleaved (`interleaved ...`
//! lines): criterion measures one function after the other, and on a shared machine the drift
//! between them can exceed the difference measured.
//!
//!   cargo bench --bench client

#[path = "support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use certbound::client::{ClientIdentity, TokenLayer, TokenScheme, TokenSource};
use certbound::dpop::DpopKey;
use certbound::tls::ServerTls;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use support::block_on_ready;
use tower::{Layer as _, ServiceExt as _};

const URL: &str = "https://api.example/accounts";

/// A certificate and key made now, for the server and the client alike.
fn self_signed(name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A token endpoint answering every request with a token valid for an hour (`DPoP` when the
/// request carries a proof); its URL and CA.
async fn token_endpoint() -> (String, CertificateDer<'static>) {
    let (cert, key) = self_signed("localhost");
    let tls = ServerTls::new(vec![cert.clone()], key)
        .any_client_certificate()
        .build()
        .expect("TLS");
    let app = Router::new().route(
        "/token",
        post(|headers: HeaderMap| async move {
            let token_type = if headers.contains_key("dpop") { "DPoP" } else { "Bearer" };
            Json(json!({
                "access_token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJlLW9mLWEtYmVuY2gtdG9rZW4",
                "token_type": token_type,
                "expires_in": 3600,
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "https://localhost:{}/token",
        listener.local_addr().expect("addr").port()
    );
    tokio::spawn(std::future::IntoFuture::into_future(certbound::serve(
        listener, tls, app,
    )));
    (url, cert)
}

/// A source with its token fetched already.
fn source(runtime: &tokio::runtime::Runtime, dpop: Option<DpopKey>) -> TokenSource {
    runtime.block_on(async {
        let (url, ca) = token_endpoint().await;
        let (cert, key) = self_signed("client");
        let identity = ClientIdentity::new(vec![cert], key).expect("identity");
        let mut builder = TokenSource::builder("bench-client", identity)
            .token_endpoint(url)
            .trust_root(ca)
            .only_trust_roots();
        if let Some(key) = dpop {
            builder = builder.dpop(key);
        }
        let source = builder.build().expect("source");
        source.token().await.expect("first token");
        source
    })
}

/// The service behind the layer: answers at once.
fn inner() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    tower::service_fn(|_request: Request<Full<Bytes>>| std::future::ready(Ok(Response::new(()))))
}

fn request() -> Request<Full<Bytes>> {
    Request::get(URL)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

fn cached(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let tokens = source(runtime, None);
    let token = block_on_ready(tokens.token()).expect("cached");
    assert_eq!(token.scheme(), TokenScheme::Bearer);
    let layered = TokenLayer::new(tokens.clone()).layer(inner());
    let response = block_on_ready(layered.clone().oneshot(request())).expect("layer");
    assert_eq!(response.status(), 200);

    let mut g = c.benchmark_group("cached");
    g.bench_function("token_source_token", |b| {
        b.iter(|| block_on_ready(black_box(&tokens).token()).expect("cached"));
    });
    g.bench_function("inner_alone", |b| {
        let service = inner();
        b.iter(|| block_on_ready(service.clone().oneshot(black_box(request()))));
    });
    g.bench_function("layer_bearer", |b| {
        b.iter(|| block_on_ready(layered.clone().oneshot(black_box(request()))).expect("layer"));
    });
    g.finish();
}

fn dpop(c: &mut Criterion, runtime: &tokio::runtime::Runtime, alg: Algorithm, group: &str) {
    let key = DpopKey::generate(alg).expect("key");
    let tokens = source(runtime, Some(key.clone()));
    let token = block_on_ready(tokens.token()).expect("cached");
    assert_eq!(token.scheme(), TokenScheme::Dpop);
    let ath = token.ath().expect("ath").to_owned();
    let layered = TokenLayer::new(tokens).layer(inner());
    let response = block_on_ready(layered.clone().oneshot(request())).expect("layer");
    assert_eq!(response.status(), 200);
    let key = Arc::new(key);

    let mut g = c.benchmark_group(group);
    g.bench_function("raw_sign", |b| {
        b.iter(|| {
            key.proof("GET", black_box(URL))
                .access_token_hash(&ath)
                .sign()
                .expect("proof")
        });
    });
    g.bench_function("layer_request", |b| {
        b.iter(|| block_on_ready(layered.clone().oneshot(black_box(request()))).expect("layer"));
    });
    g.finish();
}

/// The DPoP ratio measured interleaved: 41 rounds, each timing 100 raw signatures and then
/// 100 layer requests, so that the machine's drift hits both alike. Prints the median ratio
/// and its spread (the middle 80 % of the rounds).
fn interleaved(runtime: &tokio::runtime::Runtime, alg: Algorithm) {
    let key = DpopKey::generate(alg).expect("key");
    let tokens = source(runtime, Some(key.clone()));
    let token = block_on_ready(tokens.token()).expect("cached");
    let ath = token.ath().expect("ath").to_owned();
    let layered = TokenLayer::new(tokens).layer(inner());
    let time = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..100 {
            f();
        }
        start.elapsed().as_secs_f64() / 100.0
    };
    let mut ratios = Vec::new();
    let (mut raw_total, mut layer_total) = (0.0, 0.0);
    for _ in 0..41 {
        let raw = time(&mut || {
            black_box(
                key.proof("GET", black_box(URL))
                    .access_token_hash(&ath)
                    .sign()
                    .expect("proof"),
            );
        });
        let layer = time(&mut || {
            black_box(block_on_ready(layered.clone().oneshot(request())).expect("layer"));
        });
        raw_total += raw;
        layer_total += layer;
        ratios.push(layer / raw);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "interleaved {alg:?}: raw {:.1} µs, layer {:.1} µs; layer/raw median {:.3} (10th-90th percentile {:.3}-{:.3})",
        raw_total / 41.0 * 1e6,
        layer_total / 41.0 * 1e6,
        ratios[20],
        ratios[4],
        ratios[36],
    );
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    interleaved(&runtime, Algorithm::ES256);
    interleaved(&runtime, Algorithm::EdDSA);
    cached(c, &runtime);
    dpop(c, &runtime, Algorithm::ES256, "dpop_es256");
    dpop(c, &runtime, Algorithm::EdDSA, "dpop_eddsa");
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
