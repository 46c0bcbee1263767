//! Per-request cost of `BoundTokenLayer` against a raw `jsonwebtoken::decode` of the same token.
//!
//! Target (the binding and bookkeeping must be nearly free): `layer_full_request` within 1.15x
//! of `raw_jsonwebtoken_decode`.
//!
//! The layer's futures are ready at once on the fast path (static keys), so they are polled with
//! a no-op waker instead of a tokio runtime: nothing of an executor is measured.
//!
//! The `introspection` group measures the cache-hit path of `IntrospectionValidator`: a token
//! introspected once (at a plain-HTTP endpoint in this process), then served from the cache.
//!
//! Run: `cargo bench --bench layer -- --warm-up-time 1 --measurement-time 3`

// The raw baselines are jsonwebtoken's own functions, with its process-wide provider installed
// by `support::install_jose_default` (certbound itself passes its provider explicitly).
#![allow(clippy::disallowed_methods)]

#[path = "support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::token::{PresentedToken, TokenKey};
use certbound::{
    AccessToken, AuthError, BoundTokenLayer, CertThumbprint, ClientCertificate, ConnectionInfo,
    JwtValidator, ValidateToken,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{header::AUTHORIZATION, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};
use support::block_on_ready;
use tower::{Layer as _, ServiceExt as _};

const ISS: &str = "https://as.example";
const AUD: &str = "https://api.example";
const KID: &str = "bench-key";

type Claims = Map<String, Value>;

/// A validator that hands out a token validated beforehand: the layer without any JWT work,
/// i.e. only the binding and the bookkeeping.
struct Prevalidated(AccessToken);

impl ValidateToken for Prevalidated {
    type Future = std::future::Ready<Result<AccessToken, AuthError>>;

    fn validate(&self, _token: &str) -> Self::Future {
        std::future::ready(Ok(self.0.clone()))
    }
}

/// Everything the benchmarks of one algorithm share.
struct Fixture {
    token: String,
    jwks: String,
    decoding_key: DecodingKey,
    validation: Validation,
}

/// The client certificate and its thumbprint, as the token binds it.
struct Client {
    der: Vec<u8>,
    certificate: ClientCertificate,
    /// The connection the certificate came on, as `certbound::serve` records it.
    connection: ConnectionInfo,
    thumbprint: String,
}

fn client() -> Client {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("client key");
    let cert = rcgen::CertificateParams::new(vec!["client.example".to_owned()])
        .expect("client params")
        .self_signed(&key)
        .expect("client certificate");
    let der = cert.der().to_vec();
    let certificate = ClientCertificate::from_der(der.clone());
    let thumbprint = certificate.thumbprint().to_string();
    let connection = ConnectionInfo::new(([127, 0, 0, 1], 40000).into(), Some(certificate.clone()));
    Client {
        der,
        certificate,
        connection,
        thumbprint,
    }
}

/// The same checks the layer's validator makes (see `JwtValidatorBuilder::build`).
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v.leeway = 60;
    v
}

/// Unix time in seconds.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn sign(alg: Algorithm, key: &EncodingKey, thumbprint: &str) -> String {
    let now = now();
    let claims = json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "client_id": "bench-client",
        "scope": "read write",
        "iat": now,
        "exp": now + 3600,
        "cnf": { "x5t#S256": thumbprint },
    });
    let mut header = Header::new(alg);
    header.kid = Some(KID.to_owned());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, &claims, key).expect("token signs")
}

fn es256(thumbprint: &str) -> Fixture {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ES256 key");
    let encoding_key = EncodingKey::from_ec_der(&key.serialize_der());
    let point = key.public_key_raw();
    assert_eq!(
        (point.len(), point[0]),
        (65, 0x04),
        "uncompressed P-256 point"
    );
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..]),
    );
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "x": x, "y": y});
    fixture(Algorithm::ES256, &encoding_key, jwk, thumbprint)
}

/// `None` when RSA keys cannot be generated with this rcgen backend.
fn rs256(thumbprint: &str) -> Option<Fixture> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).ok()?;
    let encoding_key = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).ok()?;
    let (n, e) = rsa_public_components(key.public_key_raw())?;
    let jwk = json!({
        "kty": "RSA", "kid": KID, "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
    });
    Some(fixture(Algorithm::RS256, &encoding_key, jwk, thumbprint))
}

fn fixture(alg: Algorithm, encoding_key: &EncodingKey, jwk: Value, thumbprint: &str) -> Fixture {
    let token = sign(alg, encoding_key, thumbprint);
    // The raw decode uses the key exactly as the validator builds it from the JWKS.
    let decoding_key = DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).expect("JWK"))
        .expect("decoding key");
    Fixture {
        token,
        jwks: json!({ "keys": [jwk] }).to_string(),
        decoding_key,
        validation: validation(alg),
    }
}

/// `(n, e)` of a PKCS#1 `RSAPublicKey` (DER `SEQUENCE { INTEGER n, INTEGER e }`), leading
/// zero bytes stripped.
fn rsa_public_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    fn unsigned(int: &[u8]) -> &[u8] {
        let zeros = int.iter().take_while(|&&b| b == 0).count();
        &int[zeros.min(int.len().saturating_sub(1))..]
    }
    let (seq, _) = tlv(der, 0x30)?;
    let (n, rest) = tlv(seq, 0x02)?;
    let (e, _) = tlv(rest, 0x02)?;
    Some((unsigned(n), unsigned(e)))
}

fn request(token: &str, connection: &ConnectionInfo) -> Request<String> {
    let mut request = Request::new(String::new());
    request.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).expect("header value"),
    );
    request.extensions_mut().insert(connection.clone());
    request
}

/// The raw decode and the whole layer for one algorithm.
/// Once, outside the timed loops: `service` lets the fixture's request through.
fn assert_accepts<S>(service: &S, fixture: &Fixture, client: &Client)
where
    S: tower::Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
{
    let response = block_on_ready(
        service
            .clone()
            .oneshot(request(&fixture.token, &client.connection)),
    )
    .unwrap_or_else(|never| match never {});
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the layer accepts the request"
    );
}

fn decode_vs_layer(c: &mut Criterion, group: &str, fixture: &Fixture, client: &Client) {
    let claims =
        jsonwebtoken::decode::<Claims>(&fixture.token, &fixture.decoding_key, &fixture.validation)
            .expect("raw decode accepts the token");
    assert_eq!(claims.claims["cnf"]["x5t#S256"], client.thumbprint);

    // Full validation on every request: the validated-token cache is off here (its hits are
    // measured below, in `layer_cache_hit`).
    let validator = JwtValidator::builder(ISS, AUD)
        .jwks_json(fixture.jwks.clone())
        .no_cache()
        .build()
        .expect("validator builds");
    let service = BoundTokenLayer::new(validator.clone()).layer(tower::service_fn(
        |_request: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ));

    // Once, outside the timed loops: the benchmarks must measure acceptance, not a rejection.
    let token = block_on_ready(validator.validate(&fixture.token)).expect("validator accepts");
    assert_eq!(
        token.thumbprint(),
        Some(client.certificate.thumbprint()),
        "token bound to the client certificate"
    );
    assert_accepts(&service, fixture, client);

    let mut g = c.benchmark_group(group);
    g.bench_function("raw_jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Claims>(
                black_box(&fixture.token),
                &fixture.decoding_key,
                &fixture.validation,
            )
            .expect("valid token")
        });
    });
    g.bench_function("layer_full_request", |b| {
        // The request (header map, extensions) is built outside the timed section, like the
        // HTTP server would before the layer sees it.
        b.iter_batched(
            || request(&fixture.token, &client.connection),
            |request| {
                let response = block_on_ready(service.clone().oneshot(request))
                    .unwrap_or_else(|never| match never {});
                debug_assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("validator_only", |b| {
        b.iter(|| block_on_ready(validator.validate(black_box(&fixture.token))).expect("valid"));
    });

    // Where the difference between the layer and the raw decode goes (no signature checks).
    let bookkeeping = BoundTokenLayer::new(Prevalidated(token)).layer(tower::service_fn(
        |_request: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ));
    assert_accepts(&bookkeeping, fixture, client);
    g.bench_function("layer_bookkeeping_only", |b| {
        b.iter_batched(
            || request(&fixture.token, &client.connection),
            |request| {
                block_on_ready(bookkeeping.clone().oneshot(request))
                    .unwrap_or_else(|never| match never {})
            },
            BatchSize::SmallInput,
        );
    });
    // The common case: the same token again (keep-alive): a cache hit, then the binding check.
    let cached = JwtValidator::builder(ISS, AUD)
        .jwks_json(fixture.jwks.clone())
        .build()
        .expect("validator builds");
    let cached_service = BoundTokenLayer::new(cached.clone()).layer(tower::service_fn(
        |_request: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ));
    assert_accepts(&cached_service, fixture, client);
    // The same request through the same handler without the layer: what `layer_cache_hit`
    // costs beyond it is the layer's cost on a hit.
    let bare = tower::service_fn(|_request: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    g.bench_function("no_layer", |b| {
        b.iter_batched(
            || request(&fixture.token, &client.connection),
            |request| block_on_ready(bare.oneshot(request)).unwrap_or_else(|never| match never {}),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("layer_cache_hit", |b| {
        b.iter_batched(
            || request(&fixture.token, &client.connection),
            |request| {
                block_on_ready(cached_service.clone().oneshot(request))
                    .unwrap_or_else(|never| match never {})
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("validator_cache_hit", |b| {
        b.iter(|| block_on_ready(cached.validate(black_box(&fixture.token))).expect("cached"));
    });
    // The same, as the layer asks on a connection whose memo holds the token's key (no
    // SHA-256).
    let key = TokenKey::of(&fixture.token);
    g.bench_function("validator_cache_hit_same_connection", |b| {
        b.iter(|| {
            block_on_ready(
                cached.validate_presented(
                    PresentedToken::new(black_box(&fixture.token), Some(&client.certificate))
                        .with_key(key),
                ),
            )
            .expect("cached")
        });
    });
    g.bench_function("access_token_from_claims", |b| {
        b.iter_batched(
            || claims.claims.clone(),
            |claims| AccessToken::from_claims(claims).expect("claims"),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    support::install_jose_default();
    let client = client();
    let es256 = es256(&client.thumbprint);
    decode_vs_layer(c, "es256", &es256, &client);

    // The binding itself, in the same group as the ES256 figures.
    let bound = CertThumbprint::parse(&client.thumbprint).expect("canonical thumbprint");
    let presented = *client.certificate.thumbprint();
    let mut g = c.benchmark_group("es256");
    g.bench_function("thumbprint_compare", |b| {
        b.iter(|| black_box(&bound) == black_box(&presented));
    });
    g.bench_function("thumbprint_parse", |b| {
        b.iter(|| CertThumbprint::parse(black_box(&client.thumbprint)).expect("canonical"));
    });
    g.bench_function("thumbprint_from_der", |b| {
        b.iter(|| CertThumbprint::from_der(black_box(&client.der)));
    });
    g.finish();

    match rs256(&client.thumbprint) {
        Some(rs256) => decode_vs_layer(c, "rs256", &rs256, &client),
        None => eprintln!("rs256: RSA key generation unavailable, skipped"),
    }
}

/// The cache-hit path of opaque-token introspection: the validator alone and the whole layer.
#[cfg(feature = "introspection")]
fn introspection(c: &mut Criterion, client: &Client) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::routing::post;
    use certbound::IntrospectionValidator;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let calls = Arc::new(AtomicUsize::new(0));
    let answer = json!({
        "active": true, "sub": "bench", "client_id": "bench-client", "scope": "read write",
        "token_type": "Bearer", "exp": now() + 3600, "cnf": {"x5t#S256": client.thumbprint},
    })
    .to_string();
    let counter = Arc::clone(&calls);
    // Plain HTTP on loopback: the endpoint is asked once, before any measurement.
    let addr = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route(
            "/introspect",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                async move { ([(http::header::CONTENT_TYPE, "application/json")], answer) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let validator = IntrospectionValidator::endpoint(format!("http://{addr}/introspect"))
        .client_secret_basic("bench-rs", "bench-secret")
        .insecure_allow_http()
        .cache_ttl(Duration::from_secs(3600))
        .build()
        .expect("validator");
    // A typical opaque token: 32 random bytes, base64url.
    let token = "Z3JlYXQtb3BhcXVlLXRva2VuLWZvci1iZW5jaGluZzE";
    let first = runtime
        .block_on(validator.validate(token))
        .expect("introspection accepts the token");
    assert_eq!(first.thumbprint(), Some(client.certificate.thumbprint()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let service = BoundTokenLayer::new(validator.clone()).layer(tower::service_fn(
        |_request: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ));
    let response = block_on_ready(service.clone().oneshot(request(token, &client.connection)))
        .unwrap_or_else(|never| match never {});
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the layer accepts the request"
    );

    let mut g = c.benchmark_group("introspection");
    g.bench_function("validator_cache_hit", |b| {
        b.iter(|| block_on_ready(validator.validate(black_box(token))).expect("cached"));
    });
    g.bench_function("layer_full_request_cache_hit", |b| {
        b.iter_batched(
            || request(token, &client.connection),
            |request| {
                block_on_ready(service.clone().oneshot(request))
                    .unwrap_or_else(|never| match never {})
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "every measured request was a cache hit"
    );
}

/// Per-request cost of taking the client certificate from a trusted proxy's header (nginx's
/// URL-encoded PEM; HAProxy's base64 DER): decode, X.509 well-formedness, SHA-256.
fn forwarded(c: &mut Criterion) {
    use base64::engine::general_purpose::STANDARD;
    use certbound::{ConnectionInfo, ForwardedCertFormat, ForwardedCertLayer};

    let client = client();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(&client.der)
    );
    let escaped: String = pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let proxy: std::net::SocketAddr = "10.0.0.5:40000".parse().expect("addr");
    let mut g = c.benchmark_group("forwarded");
    for (name, format, value) in [
        ("nginx_escaped_pem", ForwardedCertFormat::Nginx, escaped),
        (
            "haproxy_base64_der",
            ForwardedCertFormat::Haproxy,
            STANDARD.encode(&client.der),
        ),
    ] {
        let service = ForwardedCertLayer::new(format)
            .trust_proxy("10.0.0.0/8".parse().expect("range"))
            .layer(tower::service_fn(|request: Request<String>| async move {
                let forwarded = request
                    .extensions()
                    .get::<certbound::forwarded::ForwardedClientCertificate>()
                    .and_then(|f| f.client_certificate().map(|c| *c.thumbprint()));
                Ok::<_, Infallible>(forwarded)
            }));
        let make = || {
            let mut request = Request::new(String::new());
            request.headers_mut().insert(
                "x-ssl-client-cert",
                HeaderValue::try_from(value.as_str()).expect("header value"),
            );
            request
                .extensions_mut()
                .insert(ConnectionInfo::new(proxy, None));
            request
        };
        let found =
            block_on_ready(service.clone().oneshot(make())).unwrap_or_else(|never| match never {});
        assert_eq!(found.as_ref(), Some(client.certificate.thumbprint()));
        g.bench_function(name, |b| {
            b.iter_batched(
                make,
                |request| {
                    block_on_ready(service.clone().oneshot(request))
                        .unwrap_or_else(|never| match never {})
                },
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

#[cfg(feature = "introspection")]
fn introspection_benches(c: &mut Criterion) {
    introspection(c, &client());
}

#[cfg(feature = "introspection")]
criterion_group!(layer, benches, forwarded, introspection_benches);
#[cfg(not(feature = "introspection"))]
criterion_group!(layer, benches, forwarded);
criterion_main!(layer);
