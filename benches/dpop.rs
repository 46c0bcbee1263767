//! DPoP through the layer against the raw cost of its one signature.
//!
//! Per algorithm (ES256, EdDSA), with a fresh proof per request (signed in the untimed setup)
//! and the access token already in the validated-token cache:
//! - `raw_jsonwebtoken_decode`: what any verifier of the proof alone must do with
//!   jsonwebtoken: read the header, build the key from its `jwk`, decode and verify;
//! - `raw_verify_prebuilt_key`: jsonwebtoken's decode with the key built beforehand (a lower
//!   bound no real verifier reaches: the key comes with each proof);
//! - `layer_full_request`: the whole request through `BoundTokenLayer` with DPoP, from the
//!   header map to the inner service, replay record in memory included.
//!
//! The `replay` group measures one `MemoryReplayStore::record` of a new key.
//!
//!   cargo bench --bench dpop

// The raw baselines are jsonwebtoken's own functions, with its process-wide provider installed
// by `support::install_jose_default` (certbound itself passes its provider explicitly).
#![allow(clippy::disallowed_methods)]

#[path = "support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certbound::dpop::{Dpop, DpopKey, MemoryReplayStore, ReplayKey, ReplayStore};
use certbound::{BoundTokenLayer, ConnectionInfo, JwtValidator};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{header::AUTHORIZATION, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};
use support::block_on_ready;
use tower::{Layer as _, ServiceExt as _};

const ISS: &str = "https://as.example";
const AUD: &str = "https://api.example";
const URL: &str = "https://api.example/whoami";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The authorization server's key and JWKS, and a token bound to `client`.
fn token_for(client: &DpopKey) -> (String, String) {
    let issuer = DpopKey::generate(Algorithm::ES256).expect("issuer key");
    let signing = EncodingKey::from_ec_pem(issuer.to_pkcs8_pem().as_bytes()).expect("PEM");
    let now = now();
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "bench-client",
        "iat": now, "exp": now + 3600,
        "cnf": { "jkt": client.thumbprint().to_string() },
    });
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &signing).expect("token");
    let jwks = json!({ "keys": [issuer.public_jwk()] }).to_string();
    (token, jwks)
}

fn request(token: &str, proof: &str, connection: &ConnectionInfo) -> Request<String> {
    let mut request = Request::get(URL).body(String::new()).expect("request");
    request.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::try_from(format!("DPoP {token}")).expect("header value"),
    );
    request
        .headers_mut()
        .insert("dpop", HeaderValue::try_from(proof).expect("header value"));
    request.extensions_mut().insert(connection.clone());
    request
}

/// What a verifier of the proof alone does with jsonwebtoken.
fn raw_decode(proof: &str, validation: &Validation) -> Map<String, Value> {
    let header = jsonwebtoken::decode_header(proof).expect("header");
    let key = DecodingKey::from_jwk(header.jwk.as_ref().expect("jwk")).expect("key");
    jsonwebtoken::decode::<Map<String, Value>>(proof, &key, validation)
        .expect("valid proof")
        .claims
}

fn dpop(c: &mut Criterion, alg: Algorithm, group: &str) {
    support::install_jose_default();
    let client = DpopKey::generate(alg).expect("client key");
    let (token, jwks) = token_for(&client);
    let validator = JwtValidator::builder(ISS, AUD)
        .jwks_json(jwks)
        .build()
        .expect("validator");
    let layer = BoundTokenLayer::new(validator).dpop(
        Dpop::new()
            .replay_store(MemoryReplayStore::new().max_entries(4_000_000))
            .iat_window(Duration::from_secs(3600), Duration::from_secs(60)),
    );
    let service = layer.layer(tower::service_fn(|_request: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let connection = ConnectionInfo::new(([127, 0, 0, 1], 40000).into(), None);
    let fresh = || {
        client
            .proof("GET", URL)
            .access_token(&token)
            .sign()
            .expect("proof")
    };
    // Once, outside the timed loops: the request is accepted (this also caches the token).
    let response = block_on_ready(
        service
            .clone()
            .oneshot(request(&token, &fresh(), &connection)),
    )
    .unwrap_or_else(|never| match never {});
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the layer accepts the request"
    );

    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let sample = fresh();
    let claims = raw_decode(&sample, &validation);
    assert_eq!(claims["htu"], URL);
    let header = jsonwebtoken::decode_header(&sample).expect("header");
    let prebuilt = DecodingKey::from_jwk(header.jwk.as_ref().expect("jwk")).expect("key");

    let mut g = c.benchmark_group(group);
    g.bench_function("raw_jsonwebtoken_decode", |b| {
        b.iter_batched(
            fresh,
            |proof| raw_decode(black_box(&proof), &validation),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("raw_verify_prebuilt_key", |b| {
        b.iter_batched(
            fresh,
            |proof| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&proof),
                    &prebuilt,
                    &validation,
                )
                .expect("valid proof")
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("layer_full_request", |b| {
        b.iter_batched(
            || request(&token, &fresh(), &connection),
            |request| {
                let response = block_on_ready(service.clone().oneshot(request))
                    .unwrap_or_else(|never| match never {});
                debug_assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn replay(c: &mut Criterion) {
    // A short ttl keeps the store at a steady size however many iterations criterion runs.
    let store = MemoryReplayStore::new().max_entries(16_000_000);
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    let jkt = key.thumbprint();
    let mut counter = 0u64;
    let mut g = c.benchmark_group("replay");
    g.bench_function("memory_record_new_key", |b| {
        b.iter_batched(
            || {
                counter += 1;
                ReplayKey::new(&jkt, &counter.to_string())
            },
            |key| block_on_ready(store.record(&key, Duration::from_secs(1))),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    dpop(c, Algorithm::ES256, "dpop_es256");
    dpop(c, Algorithm::EdDSA, "dpop_eddsa");
    replay(c);
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
