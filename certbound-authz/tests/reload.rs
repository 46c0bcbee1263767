//! SIGHUP reloads the configuration file; a file that fails any check keeps the previous one;
//! spent DPoP proofs stay spent.

mod binary;
mod support;

use binary::{Authz, JwksServer};
use support::*;

#[tokio::test]
async fn sighup_reloads_the_configuration_a_bad_file_keeps_the_previous_one_and_spent_proofs_stay_spent(
) {
    let dir = TempDir::new();
    let jwks = JwksServer::start(&dir).await;
    let base = binary::config("traefik", "127.0.0.1/32", &jwks.url, "");
    let admin_only =
        format!("{base}\n[[routes]]\npath_prefix = \"/orders\"\nscopes = [\"admin\"]\n");
    let file = dir.write("authz.toml", &admin_only);
    let mut authz = Authz::start(&file).await;

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::new();
    let (der, _) = client_certificate("client-a");
    let token = jwks.issuer.token("read", cnf_certificate(&der));
    let url = authz.url("/");
    let status = || async {
        use base64::Engine as _;
        client
            .get(&url)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .header("x-forwarded-uri", "/orders")
            .header(
                "x-forwarded-tls-client-cert",
                base64::engine::general_purpose::STANDARD.encode(&der),
            )
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status().await, reqwest::StatusCode::FORBIDDEN);
    // A DPoP proof, good once: it stays spent across reloads.
    let key = dpop_key();
    let dpop_token = jwks.issuer.token("read", cnf_dpop(&key));
    let proof = proof(
        &key,
        "GET",
        "https://api.example.com/other",
        &dpop_token,
        None,
    );
    let spend = || async {
        client
            .get(&url)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .header("x-forwarded-uri", "/other")
            .header("authorization", format!("DPoP {dpop_token}"))
            .header("dpop", &proof)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(spend().await, reqwest::StatusCode::OK);

    // A bad file: refused, the previous configuration stays.
    dir.write("authz.toml", admin_only.replace("[proxy]", "[proxi]"));
    authz.hang_up();
    let line = authz.stderr_line_with("reload").await;
    assert!(
        line.contains("failed, keeping the previous one") && line.contains("proxi"),
        "{line}"
    );
    assert_eq!(status().await, reqwest::StatusCode::FORBIDDEN);

    // The route removed: a read token is enough.
    dir.write("authz.toml", &base);
    authz.hang_up();
    let line = authz.stderr_line_with("reload").await;
    assert!(line.contains("reloaded"), "{line}");
    assert_eq!(status().await, reqwest::StatusCode::OK);
    assert_eq!(spend().await, reqwest::StatusCode::UNAUTHORIZED);
}
