//! Certificate-bound access tokens (RFC 8705), end to end, in one process.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! No configuration and no files: at start the demo creates a CA, two client certificates
//! (A and B) issued by it, a server certificate and an ES256 signing key. It then
//!
//! 1. starts a protected axum service on `127.0.0.1` (ephemeral port) with
//!    [`certbound::serve`] and [`ServerTls`]: client certificates must chain to the demo CA, but
//!    are optional at the TLS layer, so a request without one reaches [`CertBoundLayer`] (which
//!    rejects it);
//! 2. mints a JWT access token bound to certificate A (`cnf.x5t#S256` is
//!    base64url(SHA-256(DER of A)), as an authorization server would put it there);
//! 3. makes real HTTPS requests with real client certificates and checks each outcome: only the
//!    holder of A's private key can use A's token.
//!
//! It prints a table and a verdict, shuts the server down gracefully, and exits non-zero if any
//! outcome differs from the expected one.

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::{routing::get, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::tls::ServerTls;
use certbound::{AccessToken, CertBoundLayer, JwtValidator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

type BoxError = Box<dyn Error + Send + Sync>;

/// Issuer and audience the resource server expects in every token.
const ISS: &str = "https://as.demo.example";
const AUD: &str = "https://api.demo.example";
const KID: &str = "demo-es256";

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}

/// A certificate (DER) and its private key.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// RFC 8705 §3.1: base64url (no padding) of SHA-256 over the certificate's DER.
    fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.cert.as_ref()))
    }
}

/// Everything the demo generates at start.
struct Demo {
    ca: CertificateDer<'static>,
    server: Identity,
    client_a: Identity,
    client_b: Identity,
    signing_key: EncodingKey,
    jwks: Value,
}

impl Demo {
    fn generate() -> Result<Self, BoxError> {
        // The CA that issues both the server's and the clients' certificates.
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "certbound demo CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);

        let issue = |cn: &str, server: bool| -> Result<Identity, BoxError> {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            if server {
                params.subject_alt_names = vec![
                    SanType::DnsName("localhost".try_into()?),
                    SanType::IpAddress(Ipv4Addr::LOCALHOST.into()),
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            } else {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            let cert = params.signed_by(&key, &issuer)?;
            Ok(Identity {
                cert: cert.der().clone(),
                key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            })
        };

        // The authorization server's ES256 token-signing key, published as a one-key JWKS.
        let token_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let point = token_key.public_key_raw(); // 0x04 || x (32 bytes) || y (32 bytes)
        let jwks = json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});

        Ok(Demo {
            server: issue("localhost", true)?,
            client_a: issue("client A", false)?,
            client_b: issue("client B", false)?,
            signing_key: EncodingKey::from_ec_der(&token_key.serialize_der()),
            jwks,
            ca,
        })
    }

    /// Signs `claims` as the authorization server would.
    fn mint(&self, claims: &Value) -> Result<String, BoxError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.signing_key)?)
    }

    /// An HTTPS client that trusts the demo CA and presents `identity`, if any.
    fn client(&self, identity: Option<&Identity>) -> Result<reqwest::Client, BoxError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        let mut config = match identity {
            Some(id) => builder.with_client_auth_cert(
                vec![id.cert.clone()],
                PrivateKeyDer::Pkcs8(id.key.clone_key()),
            )?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .no_proxy()
            .build()?)
    }
}

/// The protected handler: the layer has validated the token and its binding already.
async fn whoami(token: AccessToken) -> Json<Value> {
    Json(json!({
        "sub": token.subject(),
        "client_id": token.client_id(),
        "x5t#S256": token.thumbprint().map(ToString::to_string),
    }))
}

/// Unix time in seconds.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Access-token claims; `cnf` binds the token to a certificate thumbprint.
fn claims(bound_to: Option<&str>, issued_at: u64, lifetime: u64) -> Value {
    let mut claims = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "client-a", "scope": "read",
        "iat": issued_at, "exp": issued_at + lifetime,
    });
    if let Some(x5t) = bound_to {
        claims["cnf"] = json!({ "x5t#S256": x5t });
    }
    claims
}

/// One request of the demo and the outcome it must have.
struct Case<'a> {
    name: &'static str,
    cert: &'static str,
    client: &'a reqwest::Client,
    token: Option<&'a str>,
    status: u16,
    /// The RFC 6750 `error` attribute of `WWW-Authenticate`, if any.
    error: Option<&'static str>,
}

/// The `error="..."` attribute of a `WWW-Authenticate: Bearer ...` challenge.
fn error_code(challenge: &str) -> Option<String> {
    let start = challenge.find("error=\"")? + "error=\"".len();
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}

async fn run() -> Result<bool, BoxError> {
    let started = Instant::now();
    // jsonwebtoken needs a process-wide crypto provider to sign the demo tokens.
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let demo = Demo::generate()?;

    // --- The resource server ---------------------------------------------------------------
    let validator = JwtValidator::builder(ISS, AUD)
        .jwks_json(demo.jwks.to_string())
        .build()?;
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(CertBoundLayer::new(validator));
    let tls = ServerTls::new(
        vec![demo.server.cert.clone()],
        PrivateKeyDer::Pkcs8(demo.server.key.clone_key()),
    )
    .client_ca([demo.ca.clone()])?
    .client_certificate_optional()
    .build()?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let url = format!("https://{}/whoami", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        certbound::serve(listener, tls, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("protected service: GET {url}\n");

    let (failures, total) = check_cases(&demo, &url).await?;

    // Graceful shutdown. The clients (and their pooled connections) are gone with
    // `check_cases`, so the server has no open connection to wait for.
    let _ = stop.send(());
    server.await??;

    let elapsed = started.elapsed().as_millis();
    if failures == 0 {
        println!(
            "\nverdict: PASS, all {total} cases as expected; only the holder of A's key can use A's token ({elapsed} ms)"
        );
        Ok(true)
    } else {
        println!("\nverdict: FAIL, {failures} of {total} cases not as expected ({elapsed} ms)");
        Ok(false)
    }
}

/// Mints the tokens, makes one real HTTPS request per case, prints the table. Returns the
/// number of unexpected outcomes and the number of cases.
async fn check_cases(demo: &Demo, url: &str) -> Result<(usize, usize), BoxError> {
    // Tokens, as the authorization server would issue them.
    let now = now();
    let a_x5t = demo.client_a.x5t_s256();
    let bound_to_a = demo.mint(&claims(Some(&a_x5t), now, 300))?;
    let unbound = demo.mint(&claims(None, now, 300))?;
    // Expired ten minutes ago: beyond the validator's default clock-skew leeway of 60 s.
    let expired = demo.mint(&claims(Some(&a_x5t), now - 3600, 3000))?;

    // Clients with real certificates (and one without).
    let with_a = demo.client(Some(&demo.client_a))?;
    let with_b = demo.client(Some(&demo.client_b))?;
    let without_cert = demo.client(None)?;

    let invalid = Some("invalid_token");
    #[rustfmt::skip]
    let cases = [
        Case { name: "A's token, A's certificate", cert: "A", client: &with_a, token: Some(&bound_to_a), status: 200, error: None },
        Case { name: "A's token stolen, used with B", cert: "B", client: &with_b, token: Some(&bound_to_a), status: 401, error: invalid },
        Case { name: "A's token, no certificate", cert: "none", client: &without_cert, token: Some(&bound_to_a), status: 401, error: invalid },
        Case { name: "no token", cert: "A", client: &with_a, token: None, status: 401, error: None },
        Case { name: "unbound token (no cnf)", cert: "A", client: &with_a, token: Some(&unbound), status: 401, error: invalid },
        Case { name: "expired token bound to A", cert: "A", client: &with_a, token: Some(&expired), status: 401, error: invalid },
    ];

    println!(
        "{:<30} {:<5} {:<18} {:<4} {:<14} result",
        "case", "cert", "expected", "got", "error"
    );
    println!("{}", "-".repeat(80));
    let mut failures = 0;
    let mut whoami_body = None;
    for case in &cases {
        let mut request = case.client.get(url);
        if let Some(token) = case.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let error = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(error_code);
        if status == 200 {
            whoami_body = Some(response.text().await?);
        }
        let ok = status == case.status && error.as_deref() == case.error;
        failures += usize::from(!ok);
        let expected = match case.error {
            Some(code) => format!("{} {code}", case.status),
            None => case.status.to_string(),
        };
        println!(
            "{:<30} {:<5} {:<18} {:<4} {:<14} {}",
            case.name,
            case.cert,
            expected,
            status,
            error.as_deref().unwrap_or("-"),
            if ok { "OK" } else { "FAIL" },
        );
    }
    if let Some(body) = whoami_body {
        println!("\n/whoami answered A: {body}");
        println!("A's certificate x5t#S256: {a_x5t}");
    }
    Ok((failures, cases.len()))
}
