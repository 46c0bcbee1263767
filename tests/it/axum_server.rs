//! The client certificate read from axum-server's `TlsInfo` (feature `axum-server`).

use std::net::SocketAddr;

use crate::common::{claims_bound_to, https_client, jwks, Pki, TestKey, AUDIENCE, ISSUER};
use axum::{routing::get, Router};
use certbound::tls::ServerTls;
use certbound::{AccessToken, BoundTokenLayer, JwtValidator};

#[tokio::test]
async fn bound_tokens_work_when_axum_server_does_the_tls() {
    let pki = Pki::new("axum-server test CA");
    let key = TestKey::es256("k1");
    let (chain, server_key) = pki.server_identity();
    let tls = ServerTls::new(chain, server_key)
        .client_ca([pki.ca_der()])
        .unwrap()
        .client_certificate_optional()
        .build()
        .unwrap();
    let validator = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_json(jwks(&[&key]).to_string())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/whoami",
            get(|t: AccessToken| async move {
                t.thumbprint().map(ToString::to_string).unwrap_or_default()
            }),
        )
        .layer(BoundTokenLayer::new(validator));

    let handle = axum_server::Handle::<SocketAddr>::new();
    let server = axum_server::bind_rustls(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .handle(handle.clone());
    let serving = tokio::spawn(server.serve(app.into_make_service()));
    let addr = handle.listening().await.expect("axum-server listens");
    let url = format!("https://localhost:{}/whoami", addr.port());

    let alice = pki.client_identity("alice");
    let mallory = pki.client_identity("mallory");
    let token = key.sign(&claims_bound_to(&alice.x5t_s256()));

    let res = https_client(&pki.ca_der(), Some(&alice))
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), alice.x5t_s256());

    let res = https_client(&pki.ca_der(), Some(&mallory))
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));

    let res = https_client(&pki.ca_der(), None)
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "no client certificate");

    handle.shutdown();
    serving.await.unwrap().unwrap();
}
