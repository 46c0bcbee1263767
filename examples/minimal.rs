//! The smallest useful certbound service: one route, protected by certificate-bound JWT access
//! tokens from an issuer found by discovery, served over mutual TLS.
//!
//! ```sh
//! cargo run --example minimal -- ISSUER AUDIENCE SERVER_CERT_PEM SERVER_KEY_PEM CLIENT_CA_PEM
//! ```
//! `GET https://127.0.0.1:8443/whoami` then answers only requests whose token's `cnf.x5t#S256`
//! names the client certificate of the connection. (`cargo run --example demo` shows it all
//! working with no files; `examples/resource_server.rs` is the operator-grade version.)

use axum::{routing::get, Router};
use certbound::{tls::ServerTls, AccessToken, BoundTokenLayer, JwtValidator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [issuer, audience, cert, key, client_ca] = args.as_slice() else {
        eprintln!("usage: minimal ISSUER AUDIENCE SERVER_CERT_PEM SERVER_KEY_PEM CLIENT_CA_PEM");
        std::process::exit(2);
    };

    // Keys from the issuer's RFC 8414 / OpenID metadata, cached and refreshed on rotation.
    let validator = JwtValidator::builder(issuer, audience).discover().build()?;

    let app = Router::new()
        .route(
            "/whoami",
            get(|token: AccessToken| async move {
                format!("hello {}\n", token.subject().unwrap_or("?"))
            }),
        )
        .layer(BoundTokenLayer::new(validator));

    // Client certificates must verify to CLIENT_CA_PEM (RFC 8705 §2.1).
    let tls = ServerTls::from_pem_files(cert, key)?
        .client_ca_pem_file(client_ca)?
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
    println!("listening on https://{}", listener.local_addr()?);
    certbound::serve(listener, tls, app).await?;
    Ok(())
}
