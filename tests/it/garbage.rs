//! No panics on any input from the network: random and mutated `Authorization` headers, JOSE
//! headers and claims (validly signed, so they reach every parser) go through the whole layer.
//! A seeded generator keeps every run identical.

use std::convert::Infallible;

use crate::common::{claims_bound_to, static_validator, Pki, TestKey};
use certbound::{AuthError, BoundTokenLayer, ClientCertificate};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

/// xorshift64*: tiny, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~ ";

/// A JSON value of random shape, to stand in for a claim or header field.
fn random_json(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(rng.next() as f64 / 7.0),
        4 => json!(String::from_utf8_lossy(&rng.bytes(50, B64))),
        5 => json!("A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "x5t#S256", "alg", "kid", "typ", "scope", "scp", "cnf", "sub",
            ];
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                map.insert(
                    keys[rng.below(keys.len())].to_owned(),
                    random_json(rng, depth - 1),
                );
            }
            Value::Object(map)
        }
    }
}

async fn status_of(
    svc: &(impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible>
          + Clone),
    authorization: &[u8],
    cert: &ClientCertificate,
) -> Option<StatusCode> {
    let value = HeaderValue::from_bytes(authorization).ok()?;
    let mut request = Request::new(String::new());
    request.headers_mut().insert("authorization", value);
    request.extensions_mut().insert(cert.clone());
    let response = svc.clone().oneshot(request).await.unwrap();
    Some(checked_status(&response))
}

/// The status of `response`, after checking that a rejection carries its typed error and that
/// client input never got a 5xx.
fn checked_status(response: &Response<String>) -> StatusCode {
    if response.status() != StatusCode::OK {
        assert!(response.extensions().get::<AuthError>().is_some());
    }
    assert!(
        !response.status().is_server_error(),
        "client input gave {}",
        response.status()
    );
    response.status()
}

#[tokio::test]
async fn random_and_mutated_inputs_never_panic_and_forgeries_never_pass() {
    let key = TestKey::es256("k1");
    let alice = Pki::self_signed_client("alice");
    let cert = ClientCertificate::from_der(alice.leaf_der().to_vec());
    let svc = BoundTokenLayer::new(static_validator(&[&key])).layer(service_fn(
        |_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ));
    let good = key.sign(&claims_bound_to(&alice.x5t_s256()));
    assert_eq!(
        status_of(&svc, format!("Bearer {good}").as_bytes(), &cert).await,
        Some(StatusCode::OK)
    );

    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut accepted_signed_variants = 0;
    for round in 0..3000 {
        let authorization: Vec<u8> = match round % 5 {
            // Random header values of every shape.
            0 => {
                let mut v = rng.bytes(12, b"BearerbasicBEARER \t,=");
                v.extend(rng.bytes(80, B64));
                v
            }
            // The good token with bytes flipped, cut, duplicated or swapped segments.
            1 => {
                let mut t = good.clone().into_bytes();
                for _ in 0..=rng.below(3) {
                    match rng.below(3) {
                        0 if !t.is_empty() => {
                            let i = rng.below(t.len());
                            t[i] = B64[rng.below(B64.len())];
                        }
                        1 => t.truncate(rng.below(t.len() + 1)),
                        _ => {
                            let extra = rng.bytes(20, B64);
                            let at = rng.below(t.len() + 1);
                            t.splice(at..at, extra);
                        }
                    }
                }
                [b"Bearer ".as_slice(), &t].concat()
            }
            // Validly signed tokens whose JOSE header is random JSON.
            2 => {
                let mut header = random_json(&mut rng, 2);
                if let Value::Object(map) = &mut header {
                    map.entry("alg").or_insert(json!("ES256"));
                }
                let payload = claims_bound_to(&alice.x5t_s256()).to_string();
                format!(
                    "Bearer {}",
                    key.sign_raw(header.to_string().as_bytes(), payload.as_bytes())
                )
                .into_bytes()
            }
            // Validly signed tokens whose claims have random cnf / scope / sub values.
            3 => {
                let mut claims = claims_bound_to(&alice.x5t_s256());
                for name in ["cnf", "scope", "scp", "sub", "client_id"] {
                    if rng.below(2) == 0 {
                        claims[name] = random_json(&mut rng, 2);
                    }
                }
                format!("Bearer {}", key.sign(&claims)).into_bytes()
            }
            // Validly signed bytes that are not JSON at all.
            _ => {
                let header = if rng.below(2) == 0 {
                    br#"{"alg":"ES256","kid":"k1"}"#.to_vec()
                } else {
                    rng.bytes(40, B64)
                };
                let payload = rng.bytes(60, B64);
                format!("Bearer {}", key.sign_raw(&header, &payload)).into_bytes()
            }
        };
        let passed = status_of(&svc, &authorization, &cert).await == Some(StatusCode::OK);
        match round % 5 {
            // Properly signed by the AS, with a well-formed header and the binding intact: such
            // variants are genuine tokens and may pass.
            2 | 3 => accepted_signed_variants += usize::from(passed),
            // A mutation can happen to be a no-op (same byte, cut at the end): that is the
            // genuine token.
            1 if authorization == format!("Bearer {good}").as_bytes() => {}
            // Random bytes, damaged tokens and signed non-JSON are forgeries: never accepted.
            _ => assert!(
                !passed,
                "round {round}: {:?}",
                String::from_utf8_lossy(&authorization)
            ),
        }
    }
    // The generator does produce genuine tokens among the signed variants (so the rounds above
    // exercise the accepting path too), but not only those.
    assert!(
        (1..1200).contains(&accepted_signed_variants),
        "{accepted_signed_variants}"
    );
}

/// Sends `Authorization: DPoP <token>` with `proof` (when it is a header value at all).
async fn dpop_status_of(
    svc: &(impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible>
          + Clone),
    token: &str,
    proof: &[u8],
) -> Option<StatusCode> {
    let value = HeaderValue::from_bytes(proof).ok()?;
    let mut request = Request::get("https://api.test/whoami")
        .body(String::new())
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("DPoP {token}")).expect("header"),
    );
    request.headers_mut().insert("dpop", value);
    let response = svc.clone().oneshot(request).await.unwrap();
    Some(checked_status(&response))
}

/// Random and mutated proofs for `token` (bound to `client`) through `svc`: none may panic or
/// give a 5xx, only proofs signed by the client's key may pass. `alg` is the name the proofs'
/// headers give the client's algorithm.
async fn dpop_garbage(
    svc: &(impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible>
          + Clone),
    token: &str,
    client: &crate::common::ProofKey,
    alg: &str,
    seed: u64,
) {
    use crate::common::proof_claims;
    let url = "https://api.test/whoami";
    let mut good_header = client.header();
    good_header["alg"] = json!(alg);
    let fresh = || client.sign(&good_header, &proof_claims("GET", url, Some(token)));
    assert_eq!(
        dpop_status_of(svc, token, fresh().as_bytes()).await,
        Some(StatusCode::OK),
        "a good proof, alg {alg}"
    );
    let mut rng = Rng(seed);
    let mut accepted = 0;
    for round in 0..2000 {
        let proof: Vec<u8> = match round % 4 {
            // A fresh good proof with bytes flipped, cut or inserted.
            0 => {
                let mut p = fresh().into_bytes();
                let original = p.clone();
                for _ in 0..=rng.below(3) {
                    match rng.below(3) {
                        0 if !p.is_empty() => {
                            let i = rng.below(p.len());
                            p[i] = B64[rng.below(B64.len())];
                        }
                        1 => p.truncate(rng.below(p.len() + 1)),
                        _ => {
                            let extra = rng.bytes(20, B64);
                            let at = rng.below(p.len() + 1);
                            p.splice(at..at, extra);
                        }
                    }
                }
                if p == original {
                    continue;
                }
                p
            }
            // Validly signed by the client's key, with a random JOSE header around its jwk.
            1 => {
                let mut header = random_json(&mut rng, 2);
                if let Value::Object(map) = &mut header {
                    if rng.below(2) == 0 {
                        map.insert("jwk".into(), client.jwk());
                    }
                    map.entry("alg").or_insert(json!(alg));
                    if rng.below(2) == 0 {
                        map.insert("typ".into(), json!("dpop+jwt"));
                    }
                }
                client
                    .sign(&header, &proof_claims("GET", url, Some(token)))
                    .into_bytes()
            }
            // Validly signed, good header, random values for the claims.
            2 => {
                let mut claims = proof_claims("GET", url, Some(token));
                for name in ["jti", "htm", "htu", "iat", "ath", "nonce"] {
                    if rng.below(3) == 0 {
                        claims[name] = random_json(&mut rng, 2);
                    }
                }
                client.sign(&good_header, &claims).into_bytes()
            }
            // Random bytes.
            _ => rng.bytes(200, B64),
        };
        let passed = dpop_status_of(svc, token, &proof).await == Some(StatusCode::OK);
        match round % 4 {
            // Signed by the right key: passes only when the randomness left it genuine.
            1 | 2 => accepted += usize::from(passed),
            _ => assert!(
                !passed,
                "round {round}, alg {alg}: {:?}",
                String::from_utf8_lossy(&proof)
            ),
        }
    }
    assert!((1..1000).contains(&accepted), "alg {alg}: {accepted}");
}

/// The proof-verification path behind every kind of validator: certbound's `JwtValidator`, its
/// `IntrospectionValidator` (against a real introspection endpoint), and the application's own
/// `ValidateToken` (which builds nothing of jsonwebtoken's), each with ES256 proofs and Ed25519
/// proofs under both names.
#[tokio::test]
async fn random_and_mutated_dpop_proofs_never_panic_and_forgeries_never_pass() {
    use crate::common::{claims_dpop_bound, Introspection, IntrospectionServer, ProofKey};
    use certbound::dpop::Dpop;
    use certbound::token::PresentedToken;
    use certbound::{AccessToken, IntrospectionValidator};

    let ok = || {
        service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        })
    };
    let clients = [
        (ProofKey::es256(), "ES256"),
        (ProofKey::eddsa(), "EdDSA"),
        (ProofKey::eddsa(), "Ed25519"),
    ];
    let issuer = TestKey::es256("k1");
    let as_server = IntrospectionServer::start(Introspection::basic("rs", "rs-secret")).await;
    let introspection = IntrospectionValidator::endpoint(as_server.url())
        .client_secret_basic("rs", "rs-secret")
        .trust_root(as_server.ca_der())
        .build()
        .expect("validator");
    for (seed, (client, alg)) in (0xd0b0_5eed_1234_5678_u64..).zip(&clients) {
        // A JWT, verified locally.
        let svc = BoundTokenLayer::new(static_validator(&[&issuer]))
            .dpop(Dpop::new())
            .layer(ok());
        let token = issuer.sign(&claims_dpop_bound(&client.jkt()));
        dpop_garbage(&svc, &token, client, alg, seed).await;

        // An opaque token, introspected.
        let svc = BoundTokenLayer::new(introspection.clone())
            .dpop(Dpop::new())
            .layer(ok());
        let opaque = format!("opaque-{alg}");
        let mut answer = claims_dpop_bound(&client.jkt());
        answer["active"] = json!(true);
        as_server.set_answer(&opaque, answer);
        dpop_garbage(&svc, &opaque, client, alg, seed ^ 1).await;

        // The application's own validator.
        let jkt = client.jkt();
        let own = move |presented: PresentedToken<'_>| {
            let claims = (presented.token() == "own-token")
                .then(|| json!({"sub": "alice", "cnf": {"jkt": jkt}}));
            async move {
                match claims {
                    Some(Value::Object(claims)) => AccessToken::from_claims(claims),
                    _ => Err(certbound::AuthErrorKind::TokenInactive.into()),
                }
            }
        };
        let svc = BoundTokenLayer::new(own).dpop(Dpop::new()).layer(ok());
        dpop_garbage(&svc, "own-token", client, alg, seed ^ 2).await;
    }
}
