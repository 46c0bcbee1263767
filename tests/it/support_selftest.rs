//! Checks that the shared test support in `common` works.

use crate::common::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn jwks_server_serves_over_https_and_counts_hits() {
    let key = TestKey::es256("k1");
    let server = JwksServer::start(jwks(&[&key])).await;

    for (client, version) in [
        (
            https_client(&server.ca_der(), None),
            reqwest::Version::HTTP_2,
        ),
        (
            https_client_http1(&server.ca_der(), None),
            reqwest::Version::HTTP_11,
        ),
    ] {
        let before = server.hits(JWKS_PATH);
        let resp = client.get(server.url(JWKS_PATH)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["keys"][0]["kid"], "k1");
        assert_eq!(server.hits(JWKS_PATH), before + 1);
    }

    // Both discovery documents default to the server's own issuer; each can be switched off.
    let client = server.client();
    for path in [AS_METADATA_PATH, OIDC_CONFIG_PATH] {
        let doc: Value = client
            .get(server.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], server.base_url());
        assert_eq!(doc["jwks_uri"], server.url(JWKS_PATH));
    }
    server.set_status(AS_METADATA_PATH, reqwest::StatusCode::NOT_FOUND);
    server.set_issuer(ISSUER.to_owned());
    let resp = client
        .get(server.url(AS_METADATA_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let doc: Value = client
        .get(server.url(OIDC_CONFIG_PATH))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(server.hits(AS_METADATA_PATH), 2);
    assert_eq!(server.hits(OIDC_CONFIG_PATH), 2);

    server.set_status(JWKS_PATH, reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    let resp = client.get(server.url(JWKS_PATH)).send().await.unwrap();
    assert_eq!(resp.status(), 500);

    // A client that does not trust the server's CA is refused.
    let other = Pki::new("other-ca");
    assert!(https_client(&other.ca_der(), None)
        .get(server.url(JWKS_PATH))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn stop_closes_listener_and_pooled_connections() {
    let server = JwksServer::start(json!({ "keys": [] })).await;
    let client = server.client();
    let url = server.url(JWKS_PATH);
    assert!(client.get(&url).send().await.unwrap().status().is_success());

    let addr = server.addr();
    server.stop().await;

    // The pooled keep-alive connection is gone as well as the listener.
    assert!(client.get(&url).send().await.is_err());
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn x5t_oracle_is_sha256_of_leaf() {
    let pki = Pki::new("selftest-ca");
    for id in [
        pki.client_identity("client-a"),
        Pki::self_signed_client("self-signed"),
    ] {
        let expected = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            Sha256::digest(id.chain[0].as_ref()),
        );
        assert_eq!(id.x5t_s256(), expected);
        assert_eq!(id.x5t_s256().len(), 43);
        assert!(id.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(id.key_pem.contains("BEGIN PRIVATE KEY"));
        let _ = id.key();
        assert_eq!(claims_bound_to(&id.x5t_s256())["cnf"]["x5t#S256"], expected);
    }
    let (chain, _key) = pki.server_identity();
    assert_eq!(chain.len(), 1);
    assert!(pki.ca_pem().contains("BEGIN CERTIFICATE"));
}

fn verify(key: &TestKey, token: &str) -> Value {
    let jwk: Jwk = serde_json::from_value(key.public_jwk()).unwrap();
    let mut validation = Validation::new(key.alg());
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    let data =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.kid.as_deref(), key.kid());
    data.claims
}

#[test]
fn signed_tokens_verify_against_public_jwk() {
    let x5t = Pki::self_signed_client("c").x5t_s256();
    for key in [
        TestKey::es256("es"),
        TestKey::es256_without_kid(),
        TestKey::es384("es384"),
        TestKey::rs256("rs"),
        TestKey::eddsa("ed"),
    ] {
        let claims = verify(&key, &key.sign(&claims_bound_to(&x5t)));
        assert_eq!(claims["cnf"]["x5t#S256"], x5t);
        assert_eq!(key.public_jwk()["use"], "sig");
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    // Forged tokens: structure only (the library tests check they are rejected).
    let rsa = TestKey::rs256("rs");
    let pkcs1 = rsa.rsa_public_key_der_bytes();
    assert_eq!(pkcs1[0], 0x30);
    let forged = hs256_token(&pkcs1, rsa.kid(), &claims_unbound());
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[AUDIENCE]);
    jsonwebtoken::decode::<Value>(&forged, &DecodingKey::from_secret(&pkcs1), &v).unwrap();
    let _ = hs256_token(&rsa.rsa_public_pem_bytes(), None, &claims_unbound());

    let none = alg_none_token(&claims_unbound());
    assert!(none.ends_with('.') && none.matches('.').count() == 2);

    let es = TestKey::es256("es");
    let token = es.sign(&claims_unbound());
    let mut changed = claims_unbound();
    changed["sub"] = json!("mallory");
    let tampered = tamper_payload(&token, &changed);
    assert_eq!(tampered.rsplit('.').next(), token.rsplit('.').next());
    assert_ne!(tampered, token);
}

#[test]
fn pem_files_are_written() {
    let dir = std::env::temp_dir().join(format!("certbound-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki::new("files-ca");
    let paths = pki.write_pem_files(&dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(&paths.ca_cert).unwrap(),
        pki.ca_pem()
    );
    assert!(std::fs::read_to_string(&paths.server_key)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert!(std::fs::read_to_string(&paths.server_cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    std::fs::remove_dir_all(&dir).unwrap();
}
