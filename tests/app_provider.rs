//! certbound built without a crypto backend feature, in an application that installed its own
//! providers (jsonwebtoken's and rustls' process-wide defaults) before building anything: every
//! constructor that signs or verifies works with them, and those that need a backend of
//! certbound's own (key generation) say so with a `ConfigError`.
//!
//! A test binary of its own: the providers are process-wide, and this test must install them
//! before anything else in the process. CI runs it without backend features:
//!
//!   cargo test --no-default-features --features axum --test app_provider
//!
//! With a backend feature it compiles to nothing (the other tests cover that case).
#![cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
// The application signs its tokens with jsonwebtoken's own functions, after installing the
// process-wide provider (certbound passes the provider explicitly; see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use certbound::authorization_server::TokenEndpointDpop;
use certbound::dpop::{Dpop, DpopKey};
use certbound::token::PresentedToken;
use certbound::{
    AccessToken, Algorithm, BoundTokenLayer, ConfigError, ConnectionInfo, JwtValidator,
    ValidateToken,
};
use http::{Request, Response, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tower::{Layer as _, ServiceExt as _};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request<String> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(String::new()).expect("request");
    request
        .extensions_mut()
        .insert(ConnectionInfo::new(([127, 0, 0, 1], 40000).into(), None));
    request
}

#[tokio::test]
async fn an_application_that_installs_its_providers_gets_every_constructor_working() {
    // What the application does first thing in `main`.
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .expect("the first jsonwebtoken provider of this process");
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("the first rustls provider of this process");

    // JwtValidator: a token the application's authorization server signed.
    let issuer_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let validator = JwtValidator::builder("https://as.test", "https://api.test")
        .public_key_pem(Algorithm::ES256, issuer_key.public_key_pem())
        .build()
        .expect("a validator with the application's provider");
    let claims = json!({"iss": "https://as.test", "aud": "https://api.test", "sub": "alice",
                        "exp": now() + 60});
    let signing = EncodingKey::from_ec_der(&issuer_key.serialize_der());
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &signing).unwrap();
    let access = validator.validate(&token).await.expect("a valid token");
    assert_eq!(access.subject(), Some("alice"));

    // DpopKey: loaded (its random `jti`s from the application's rustls provider); generating
    // one needs a backend of certbound's own, and says so.
    let client_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let client = DpopKey::from_pkcs8_pem(client_key.serialize_pem().as_bytes())
        .expect("a loaded key")
        .fully_specified_alg(true);
    assert!(matches!(
        DpopKey::generate(Algorithm::ES256),
        Err(ConfigError::Invalid { .. })
    ));

    // Dpop at a resource server, with the application's own validator.
    let jkt = client.thumbprint().to_string();
    let validate = move |_: PresentedToken<'_>| {
        let claims = json!({"sub": "alice", "cnf": {"jkt": jkt}});
        async move {
            match claims {
                Value::Object(claims) => AccessToken::from_claims(claims),
                _ => unreachable!("an object"),
            }
        }
    };
    let service = BoundTokenLayer::new(validate)
        .dpop(Dpop::new())
        .layer(tower::service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let url = "https://api.test/r";
    let proof = client
        .proof("GET", url)
        .access_token("opaque")
        .sign()
        .unwrap();
    let headers = [("authorization", "DPoP opaque"), ("dpop", proof.as_str())];
    let response = service
        .oneshot(request("GET", url, &headers))
        .await
        .unwrap_or_else(|never| match never {});
    assert_eq!(response.status(), StatusCode::OK);

    // Dpop at a token endpoint.
    let endpoint = TokenEndpointDpop::new(Dpop::new(), "https://as.test/token").expect("endpoint");
    let proof = client
        .proof("POST", "https://as.test/token")
        .sign()
        .unwrap();
    let checked = endpoint
        .check(&request(
            "POST",
            "https://as.test/token",
            &[("dpop", &proof)],
        ))
        .await
        .expect("a valid proof")
        .expect("a proof");
    assert_eq!(checked.jkt(), &client.thumbprint());

    // TLS: the server's configuration with the application's rustls provider.
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["api.test".to_owned()])
        .unwrap()
        .self_signed(&server_key)
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    certbound::tls::ServerTls::new(vec![server_cert.der().clone()], key)
        .any_client_certificate()
        .build()
        .expect("a server TLS configuration");
}
