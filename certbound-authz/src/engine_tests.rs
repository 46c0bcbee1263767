//! The decisions, with real tokens, certificates and DPoP proofs made at test time, through
//! the library's layers.

use std::path::Path;

use certbound::dpop::{Dpop, DpopNonces, MemoryReplayStore};
use certbound::{Issuers, JwtValidator};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::Value;

use super::*;
use crate::config;
use rustls_pki_types::CertificateDer;

#[path = "../tests/support/mod.rs"]
mod support;

use support::*;

const CONFIG: &str = r#"
[listen]
http = "127.0.0.1:0"

[[issuers]]
issuer = "https://as.example.com"
audiences = ["https://api.example.com"]
jwks_url = "https://as.example.com/jwks"

[proxy]
profile = "nginx"
trusted = ["127.0.0.1/32"]

[[routes]]
path_prefix = "/admin"
methods = ["POST"]
scopes = ["admin"]

[[routes]]
path_prefix = "/public"
open = true

[identity_headers]
subject = "x-auth-subject"
client_id = "x-auth-client-id"
scope = "x-auth-scope"
issuer = "x-auth-issuer"
binding = "x-auth-binding"
"#;

struct Setup {
    issuer: Issuer,
    engine: Engine,
}

fn setup_with(dpop: Option<Dpop>) -> Setup {
    let issuer = Issuer::new();
    let config = config::parse(CONFIG, Path::new(".")).expect("valid configuration");
    let validator = JwtValidator::builder(ISSUER, AUDIENCE)
        .public_key_pem(jsonwebtoken::Algorithm::ES256, issuer.public_pem())
        .build()
        .expect("validator");
    let issuers = Issuers::builder().jwt(validator).build().expect("issuers");
    let engine = Engine::new(&config, issuers, dpop).expect("engine");
    Setup { issuer, engine }
}

fn setup() -> Setup {
    setup_with(Some(Dpop::new()))
}

fn facts(method: Method, path: &str, certificate: Option<&[u8]>) -> Facts {
    Facts {
        method,
        scheme: "https".into(),
        authority: "api.example.com".into(),
        path: path.into(),
        headers: HeaderMap::new(),
        certificate: certificate.and_then(|der| {
            ClientCertificate::from_chain(vec![CertificateDer::from(der.to_vec())])
        }),
        peer: "127.0.0.1:40000".parse().unwrap(),
    }
}

fn with_header(mut facts: Facts, name: &'static str, value: &str) -> Facts {
    facts
        .headers
        .append(name, HeaderValue::from_str(value).unwrap());
    facts
}

fn bearer(facts: Facts, token: &str) -> Facts {
    with_header(facts, AUTHORIZATION.as_str(), &format!("Bearer {token}"))
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_certificate_bound_token_with_its_certificate_is_allowed_with_the_identity_headers() {
    let s = setup();
    let (der, _) = client_certificate("client-a");
    let token = s.issuer.token("read write", cnf_certificate(&der));
    let answer = s
        .engine
        .decide(bearer(facts(Method::GET, "/orders", Some(&der)), &token))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "x-auth-subject"), Some("alice"));
    assert_eq!(header(&answer, "x-auth-client-id"), Some("client-a"));
    assert_eq!(header(&answer, "x-auth-scope"), Some("read write"));
    assert_eq!(header(&answer, "x-auth-issuer"), Some(ISSUER));
    assert_eq!(header(&answer, "x-auth-binding"), Some("certificate"));
}

#[tokio::test]
async fn a_certificate_bound_token_stolen_to_another_certificate_or_none_is_refused() {
    let s = setup();
    let (der, _) = client_certificate("client-a");
    let (other, _) = client_certificate("thief");
    let token = s.issuer.token("read", cnf_certificate(&der));
    for certificate in [Some(other.as_slice()), None] {
        let answer = s
            .engine
            .decide(bearer(facts(Method::GET, "/orders", certificate), &token))
            .await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert!(header(&answer, WWW_AUTHENTICATE.as_str()).is_some());
        assert!(header(&answer, "x-auth-subject").is_none());
    }
}

#[tokio::test]
async fn no_token_gets_a_challenge_and_an_unbound_token_is_refused() {
    let s = setup();
    let answer = s.engine.decide(facts(Method::GET, "/orders", None)).await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&answer, WWW_AUTHENTICATE.as_str()).is_some());
    let token = s.issuer.token("read", Value::Null);
    let answer = s
        .engine
        .decide(bearer(facts(Method::GET, "/orders", None), &token))
        .await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_first_matching_route_decides_its_scopes_and_open_routes_need_no_token() {
    let s = setup();
    let (der, _) = client_certificate("client-a");
    let read = s.issuer.token("read", cnf_certificate(&der));
    let admin = s.issuer.token("admin", cnf_certificate(&der));
    let post = |token: &str| bearer(facts(Method::POST, "/admin/users", Some(&der)), token);
    let answer = s.engine.decide(post(&read)).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let challenge = header(&answer, WWW_AUTHENTICATE.as_str()).unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(s.engine.decide(post(&admin)).await.status(), StatusCode::OK);
    // Another method on the same prefix: no route, any valid bound token.
    let get = bearer(facts(Method::GET, "/admin/users", Some(&der)), &read);
    assert_eq!(s.engine.decide(get).await.status(), StatusCode::OK);
    // Open: no token, no identity.
    let answer = s
        .engine
        .decide(facts(Method::GET, "/public/doc", None))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(header(&answer, "x-auth-subject").is_none());
}

#[tokio::test]
async fn a_path_that_could_be_read_as_another_is_refused() {
    let s = setup();
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/..;/admin",
        "/public/./x",
        "/public%2Fadmin",
        "/public%5cadmin",
        "/public\\admin",
        "//public/x",
        "/public//x",
        "/public/%ff",
        "x",
    ] {
        let answer = s.engine.decide(facts(Method::POST, path, None)).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn a_dpop_bound_token_with_a_good_proof_is_allowed_once() {
    let s = setup();
    let key = dpop_key();
    let token = s.issuer.token("read", cnf_dpop(&key));
    let proof = proof(&key, "GET", "https://api.example.com/orders", &token, None);
    let request = || {
        let f = facts(Method::GET, "/orders", None);
        let f = with_header(f, "authorization", &format!("DPoP {token}"));
        with_header(f, "dpop", &proof)
    };
    let answer = s.engine.decide(request()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "x-auth-binding"), Some("dpop"));
    // The same proof again: a replay.
    assert_eq!(
        s.engine.decide(request()).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_proof_for_another_url_or_two_proofs_are_refused() {
    let s = setup();
    let key = dpop_key();
    let token = s.issuer.token("read", cnf_dpop(&key));
    let elsewhere = proof(
        &key,
        "GET",
        "https://other.example.com/orders",
        &token,
        None,
    );
    let f = with_header(
        facts(Method::GET, "/orders", None),
        "authorization",
        &format!("DPoP {token}"),
    );
    let answer = s
        .engine
        .decide(with_header(f.clone(), "dpop", &elsewhere))
        .await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let good = proof(&key, "GET", "https://api.example.com/orders", &token, None);
    let twice = with_header(with_header(f, "dpop", &good), "dpop", &good);
    assert_ne!(s.engine.decide(twice).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_nonce_is_demanded_then_accepted() {
    let nonces = DpopNonces::new([7u8; 32]).expect("nonces");
    let s = setup_with(Some(Dpop::new().require_nonce(nonces)));
    let key = dpop_key();
    let token = s.issuer.token("read", cnf_dpop(&key));
    let url = "https://api.example.com/orders";
    let request = |proof: String| {
        let f = facts(Method::GET, "/orders", None);
        let f = with_header(f, "authorization", &format!("DPoP {token}"));
        with_header(f, "dpop", &proof)
    };
    let answer = s
        .engine
        .decide(request(proof(&key, "GET", url, &token, None)))
        .await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&answer, WWW_AUTHENTICATE.as_str()).unwrap();
    assert!(challenge.contains("use_dpop_nonce"), "{challenge}");
    let nonce = header(&answer, "dpop-nonce").expect("a nonce").to_owned();
    let answer = s
        .engine
        .decide(request(proof(&key, "GET", url, &token, Some(&nonce))))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_plain_http_origin_is_the_htu_of_a_proof() {
    let s = setup();
    let key = dpop_key();
    let token = s.issuer.token("read", cnf_dpop(&key));
    let proof = proof(&key, "GET", "http://api.example.com/orders", &token, None);
    let mut f = facts(Method::GET, "/orders", None);
    f.scheme = "http".into();
    let f = with_header(f, "authorization", &format!("DPoP {token}"));
    let answer = s.engine.decide(with_header(f, "dpop", &proof)).await;
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_authority_that_is_not_exactly_host_and_port_is_refused() {
    let s = setup();
    for authority in [
        "user@api.example.com",
        "api.example.com/x",
        "",
        "api example",
    ] {
        let mut f = facts(Method::GET, "/orders", None);
        f.authority = authority.into();
        let answer = s.engine.decide(f).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{authority}");
    }
}

#[tokio::test]
async fn routes_are_matched_on_the_decoded_path() {
    let s = setup();
    let (der, _) = client_certificate("client-a");
    let read = s.issuer.token("read", cnf_certificate(&der));
    // `/%61dmin` is `/admin` to the upstream: the admin route's scope applies.
    let answer = s
        .engine
        .decide(bearer(
            facts(Method::POST, "/%61dmin/users", Some(&der)),
            &read,
        ))
        .await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    // A trailing slash is no empty segment.
    let answer = s.engine.decide(facts(Method::GET, "/public/", None)).await;
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_public_url_is_the_origin_of_every_proof() {
    let config = config::parse(
        &CONFIG.replace(
            "[proxy]",
            "[tokens]\npublic_url = \"https://public.example.com\"\n\n[proxy]",
        ),
        Path::new("."),
    )
    .expect("valid configuration");
    let issuer = Issuer::new();
    let validator = JwtValidator::builder(ISSUER, AUDIENCE)
        .public_key_pem(jsonwebtoken::Algorithm::ES256, issuer.public_pem())
        .build()
        .expect("validator");
    let issuers = Issuers::builder().jwt(validator).build().expect("issuers");
    let memory = Arc::new(MemoryReplayStore::new());
    let dpop = super::dpop(&config, &memory).await.expect("dpop");
    let engine = Engine::new(&config, issuers, dpop).expect("engine");
    let key = dpop_key();
    let token = issuer.token("read", cnf_dpop(&key));
    let send = |url: &str| {
        let f = facts(Method::GET, "/orders", None);
        let f = with_header(f, "authorization", &format!("DPoP {token}"));
        with_header(f, "dpop", &proof(&key, "GET", url, &token, None))
    };
    // The facts say api.example.com; the configured public URL wins.
    let answer = engine.decide(send("https://api.example.com/orders")).await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let answer = engine
        .decide(send("https://public.example.com/orders"))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
}

#[test]
fn identity_values_outside_visible_ascii_are_percent_encoded() {
    assert_eq!(header_value("alice").to_str().unwrap(), "alice");
    assert_eq!(header_value("é\n%").to_str().unwrap(), "%C3%A9%0A%25");
}
