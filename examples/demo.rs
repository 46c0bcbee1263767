//! Sender-constrained access tokens, certificate-bound (RFC 8705) and DPoP-bound (RFC 9449),
//! end to end, in one process.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! No configuration and no files: at start the demo creates a CA, three client certificates
//! (A, B and D) issued by it, a self-signed client certificate (C), a server certificate, and
//! D's DPoP key. It then
//!
//! 1. starts an authorization server on `127.0.0.1` (the routes of
//!    `examples/authorization_server.rs`): clients A, B and D are registered for
//!    `tls_client_auth` by their subject DN, C for `self_signed_tls_client_auth` with its
//!    certificate in a JWKS. TLS accepts any client certificate; the token endpoint decides;
//! 2. starts a protected axum service on `127.0.0.1` with [`certbound::serve`] and
//!    [`BoundTokenLayer`] with DPoP on, which finds the authorization server's keys through its
//!    RFC 8414 metadata;
//! 3. makes real HTTPS requests with real client certificates and checks each outcome: A and C
//!    authenticate with their certificates and get tokens bound to them (`cnf.x5t#S256`); B
//!    cannot get a token as A; A's token works for A only, not for B (a stolen token) and not
//!    without a certificate. D authenticates with its certificate and sends a DPoP proof, so
//!    its token is bound to its DPoP key (`cnf.jkt`, `token_type: DPoP`): it works without any
//!    client certificate with a fresh proof by that key, but not with an attacker's key and
//!    proof, not with a replayed proof, and not as a bearer token. The clients use certbound's
//!    client side (`client::TokenSource` for their tokens, `client::ReqwestClient` and
//!    `client::TokenLayer` for their calls); the attackers build their requests by hand.
//!
//! It prints a table and a verdict, shuts both servers down gracefully, and exits non-zero if
//! any outcome differs from the expected one.

#[path = "support/oauth_server.rs"]
mod oauth_server;

use std::error::Error;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::{routing::get, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use certbound::authorization_server::{ClientAuthenticator, StaticClients};
use certbound::client::{
    ClientIdentity, ReqwestClient, Token, TokenErrorKind, TokenLayer, TokenScheme, TokenSource,
};
use certbound::dpop::Dpop;
use certbound::tls::ServerTls;
use certbound::{AccessToken, Algorithm, BoundTokenLayer, DpopKey, JwtValidator};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::{Layer as _, ServiceExt as _};

type BoxError = Box<dyn Error + Send + Sync>;

/// The audience the resource server expects in every token.
const AUD: &str = "https://api.demo.example";

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

    /// The identity as certbound's client side takes it.
    fn client_identity(&self) -> Result<ClientIdentity, BoxError> {
        Ok(ClientIdentity::new(
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )?)
    }
}

/// Everything the demo generates at start.
struct Demo {
    ca: CertificateDer<'static>,
    server: Identity,
    client_a: Identity,
    client_b: Identity,
    /// Self-signed: no CA vouches for it, its registration does.
    client_c: Identity,
    /// Authenticates with its certificate, asks for DPoP-bound tokens.
    client_d: Identity,
    /// D's DPoP key: the token is bound to it, not to the certificate.
    dpop_d: DpopKey,
}

impl Demo {
    fn generate() -> Result<Self, BoxError> {
        // The CA that issues the server's and clients A and B's certificates.
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "certbound demo CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);

        let client_params = |cn: &str| {
            let mut params = CertificateParams::default();
            // Certificate (ASN.1) order O, CN: the RFC 4514 string is "CN=...,O=...".
            // (rcgen's default DN holds a CN already, which would come first.)
            params.distinguished_name = DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::OrganizationName, "certbound demo");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params
        };
        let identity = |cert: rcgen::Certificate, key: KeyPair| Identity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        };
        let issue_client = |cn: &str| -> Result<Identity, BoxError> {
            let key = KeyPair::generate()?;
            let cert = client_params(cn).signed_by(&key, &issuer)?;
            Ok(identity(cert, key))
        };

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::default();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(Ipv4Addr::LOCALHOST.into()),
        ];
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = identity(server_params.signed_by(&server_key, &issuer)?, server_key);

        let c_key = KeyPair::generate()?;
        let client_c = identity(client_params("client C").self_signed(&c_key)?, c_key);

        Ok(Demo {
            server,
            client_a: issue_client("client A")?,
            client_b: issue_client("client B")?,
            client_c,
            client_d: issue_client("client D")?,
            dpop_d: DpopKey::generate(Algorithm::ES256)?,
            ca,
        })
    }

    /// The clients the authorization server knows, as RFC 7591 / RFC 8705 metadata.
    fn registrations(&self) -> Value {
        json!([
            {"client_id": "client-a", "token_endpoint_auth_method": "tls_client_auth",
             "tls_client_auth_subject_dn": "CN=client A,O=certbound demo", "scope": "read write"},
            {"client_id": "client-b", "token_endpoint_auth_method": "tls_client_auth",
             "tls_client_auth_subject_dn": "CN=client B,O=certbound demo", "scope": "read"},
            {"client_id": "client-c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": {"keys": [{"kty": "EC", "x5c": [STANDARD.encode(self.client_c.cert.as_ref())]}]},
             "scope": "read"},
            // Not registered for certificate-bound tokens: with a DPoP proof, its tokens are
            // bound to the proof's key only, and work without the certificate.
            {"client_id": "client-d", "token_endpoint_auth_method": "tls_client_auth",
             "tls_client_auth_subject_dn": "CN=client D,O=certbound demo", "scope": "read"},
        ])
    }

    /// The server's TLS configuration: any client certificate (the handshake proves key
    /// possession), optional so that requests without one get an answer from the layers.
    fn server_tls(&self) -> Result<Arc<rustls::ServerConfig>, BoxError> {
        Ok(ServerTls::new(
            vec![self.server.cert.clone()],
            PrivateKeyDer::Pkcs8(self.server.key.clone_key()),
        )
        .any_client_certificate()
        .client_certificate_optional()
        .build()?)
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
        "scope": token.scopes(),
        "x5t#S256": token.thumbprint().map(ToString::to_string),
        "jkt": token.dpop_thumbprint().map(ToString::to_string),
    }))
}

/// A server running `app` with `certbound::serve` until `stop` fires.
fn spawn_server(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        certbound::serve(listener, tls, app)
            .with_graceful_shutdown(stop)
            .await
    })
}

async fn run() -> Result<bool, BoxError> {
    let started = Instant::now();
    let demo = Demo::generate()?;
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));

    // --- The authorization server ----------------------------------------------------------
    let as_listener = TcpListener::bind(localhost).await?;
    let issuer = format!("https://{}", as_listener.local_addr()?);
    let clients = StaticClients::from_json(&demo.registrations().to_string())?;
    // tls_client_auth chains must verify to the demo CA; self-signed clients need no CA.
    let authenticator = ClientAuthenticator::builder()
        .client_ca([demo.ca.clone()])?
        .build()?;
    let tokens = oauth_server::TokenIssuer::generate(&issuer, AUD).map_err(|e| e.to_string())?;
    let as_app = oauth_server::router(tokens, clients, authenticator)?;
    let (as_stop, as_stopped) = oneshot::channel::<()>();
    let as_server = spawn_server(as_listener, demo.server_tls()?, as_app, async {
        let _ = as_stopped.await;
    });

    // --- The resource server ---------------------------------------------------------------
    // Keys by RFC 8414 discovery from the issuer, over https trusting the demo CA only.
    let validator = JwtValidator::builder(&issuer, AUD)
        .discover()
        .trust_root(demo.ca.clone())
        .only_trust_roots()
        .require_at_jwt()
        .build()?;
    // DPoP-bound tokens too (RFC 9449): with DPoP on, a request without a client certificate
    // reaches the layer, which then needs a DPoP token and a proof.
    let rs_app = Router::new()
        .route("/whoami", get(whoami))
        .layer(BoundTokenLayer::new(validator).dpop(Dpop::new()));
    let rs_listener = TcpListener::bind(localhost).await?;
    let whoami_url = format!("https://{}/whoami", rs_listener.local_addr()?);
    let (rs_stop, rs_stopped) = oneshot::channel::<()>();
    let rs_server = spawn_server(rs_listener, demo.server_tls()?, rs_app, async {
        let _ = rs_stopped.await;
    });

    let token_url = format!("{issuer}/token");
    println!("authorization server: POST {token_url}");
    println!("resource server:      GET  {whoami_url}\n");

    let (failures, total) = check_cases(&demo, &issuer, &token_url, &whoami_url).await?;

    // Graceful shutdown. The clients (and their pooled connections) are gone with
    // `check_cases`, so the servers have no open connection to wait for.
    let _ = rs_stop.send(());
    let _ = as_stop.send(());
    rs_server.await??;
    as_server.await??;

    let elapsed = started.elapsed().as_millis();
    if failures == 0 {
        println!(
            "\nverdict: PASS, all {total} cases as expected; clients got tokens with their certificates, only the holder of A's key can use A's token, and only the holder of D's DPoP key can use D's ({elapsed} ms)"
        );
        Ok(true)
    } else {
        println!("\nverdict: FAIL, {failures} of {total} cases not as expected ({elapsed} ms)");
        Ok(false)
    }
}

/// What one request gave back.
struct Outcome {
    status: u16,
    /// The OAuth `error`: from the JSON body (token endpoint) or from `WWW-Authenticate`.
    error: Option<String>,
    /// The resource server's `WWW-Authenticate` challenges, if any.
    challenge: Option<String>,
    body: String,
}

/// The first `error="..."` attribute of `WWW-Authenticate` challenges (`Bearer` or `DPoP`).
fn error_code(challenge: &str) -> Option<String> {
    let start = challenge.find("error=\"")? + "error=\"".len();
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}

/// A token from `source`, as a row of the table: 200, or the authorization server's status
/// and RFC 6749 error.
async fn get_token(source: &TokenSource) -> (Option<Token>, Outcome) {
    match source.token().await {
        Ok(token) => {
            let outcome = Outcome {
                status: 200,
                error: None,
                challenge: None,
                body: String::new(),
            };
            (Some(token), outcome)
        }
        Err(e) => {
            let (status, error) = match e.kind() {
                TokenErrorKind::Refused { status, error, .. } => (*status, error.clone()),
                _ => (0, e.to_string()),
            };
            let outcome = Outcome {
                status,
                error: Some(error),
                challenge: None,
                body: String::new(),
            };
            (None, outcome)
        }
    }
}

/// An attacker's token request: `client_id` without any certificate.
async fn request_token(
    client: &reqwest::Client,
    url: &str,
    client_id: &str,
) -> Result<Outcome, BoxError> {
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={client_id}"
        ))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    let json: Value = serde_json::from_str(&body).unwrap_or_default();
    let error = json["error"].as_str().map(str::to_owned);
    Ok(Outcome {
        status,
        error,
        challenge: None,
        body,
    })
}

/// An attacker's request to the resource server, with the `Authorization` (and `DPoP`)
/// values given.
async fn forge(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
    dpop: Option<&str>,
) -> Result<Outcome, BoxError> {
    let mut request = client.get(url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(proof) = dpop {
        request = request.header("dpop", proof);
    }
    outcome(request.send().await?).await
}

/// Status, challenge and body of a resource server's answer.
async fn outcome(response: reqwest::Response) -> Result<Outcome, BoxError> {
    let status = response.status().as_u16();
    // One challenge per scheme (Bearer, DPoP), each its own header: shown as one list.
    let challenges: Vec<&str> = response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let challenge = (!challenges.is_empty()).then(|| challenges.join(", "));
    Ok(Outcome {
        status,
        error: challenge.as_deref().and_then(error_code),
        challenge,
        body: response.text().await?,
    })
}

/// `GET url` through `client` (certbound's `ReqwestClient`: the token, and a proof for DPoP).
async fn call_api(client: &ReqwestClient, url: &str) -> Result<Outcome, BoxError> {
    let request = client.http().get(url).build()?;
    outcome(client.execute(request).await?).await
}

/// Prints one row of the table, and under it the resource server's challenge if there is one;
/// returns whether the outcome was the expected one.
fn row(name: &str, cert: &str, outcome: &Outcome, status: u16, error: Option<&str>) -> bool {
    let ok = outcome.status == status && outcome.error.as_deref() == error;
    let expected = match error {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    };
    println!(
        "{:<40} {:<5} {:<23} {:<4} {:<19} {}",
        name,
        cert,
        expected,
        outcome.status,
        outcome.error.as_deref().unwrap_or("-"),
        if ok { "OK" } else { "FAIL" },
    );
    if let Some(challenge) = &outcome.challenge {
        println!("    WWW-Authenticate: {challenge}");
    }
    ok
}

/// Whether a token is a DPoP token bound to `key` only: `token_type: DPoP`, and the JWT's
/// `cnf` is `{"jkt": <the key's RFC 7638 thumbprint>}`.
fn bound_to_dpop_key(token: &Token, key: &DpopKey) -> bool {
    let claims = token
        .secret()
        .split('.')
        .nth(1)
        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
        .and_then(|claims| serde_json::from_slice::<Value>(&claims).ok())
        .unwrap_or_default();
    token.scheme() == TokenScheme::Dpop
        && claims["cnf"] == json!({"jkt": key.thumbprint().to_string()})
}

/// Makes the requests, prints the table. Returns the number of unexpected outcomes and the
/// number of cases.
///
/// The clients A, B, C and D use certbound's client side: a [`TokenSource`] gets their tokens
/// with their certificates, and a [`ReqwestClient`] (A, C) or a [`TokenLayer`] (D) puts the
/// token, and for D a fresh DPoP proof, on their requests. The attackers build their requests
/// by hand.
async fn check_cases(
    demo: &Demo,
    issuer: &str,
    token_url: &str,
    whoami_url: &str,
) -> Result<(usize, usize), BoxError> {
    // HTTPS clients with real certificates (and one without).
    let with_a = demo.client(Some(&demo.client_a))?;
    let with_b = demo.client(Some(&demo.client_b))?;
    let with_c = demo.client(Some(&demo.client_c))?;
    let without_cert = demo.client(None)?;
    let tokens = |client_id: &str, identity: &Identity| -> Result<TokenSource, BoxError> {
        Ok(TokenSource::builder(client_id, identity.client_identity()?)
            .issuer(issuer)
            .trust_root(demo.ca.clone())
            .only_trust_roots()
            .build()?)
    };
    let tokens_a = tokens("client-a", &demo.client_a)?;
    let tokens_c = tokens("client-c", &demo.client_c)?;
    let b_as_a = tokens("client-a", &demo.client_b)?;
    // RFC 9449 §5: D's token requests carry a proof by its DPoP key, which the token is then
    // bound to.
    let tokens_d = TokenSource::builder("client-d", demo.client_d.client_identity()?)
        .issuer(issuer)
        .trust_root(demo.ca.clone())
        .only_trust_roots()
        .dpop(demo.dpop_d.clone())
        .build()?;

    println!(
        "{:<40} {:<5} {:<23} {:<4} {:<19} result",
        "case", "cert", "expected", "got", "error"
    );
    println!("{}", "-".repeat(101));
    let mut results = Vec::new();
    let invalid_client = Some("invalid_client");
    let invalid_token = Some("invalid_token");

    // The token endpoint: clients authenticate with their certificates (RFC 8705 §2).
    let (token_a, a_gets) = get_token(&tokens_a).await;
    results.push(row(
        "AS: A gets a token (tls_client_auth)",
        "A",
        &a_gets,
        200,
        None,
    ));
    let (token_c, c_gets) = get_token(&tokens_c).await;
    results.push(row(
        "AS: C gets a token (self-signed)",
        "C",
        &c_gets,
        200,
        None,
    ));
    let (_, b_as_a) = get_token(&b_as_a).await;
    results.push(row(
        "AS: B asks as client-a",
        "B",
        &b_as_a,
        401,
        invalid_client,
    ));
    let nobody = request_token(&without_cert, token_url, "client-a").await?;
    results.push(row(
        "AS: client-a without a certificate",
        "none",
        &nobody,
        401,
        invalid_client,
    ));
    let (token_d, mut d_gets) = get_token(&tokens_d).await;
    // The token itself, checked against D's key.
    let d_bound = token_d
        .as_ref()
        .is_some_and(|token| bound_to_dpop_key(token, &demo.dpop_d));
    if d_gets.status == 200 && !d_bound {
        d_gets.error = Some("not bound to D's key".to_owned());
    }
    results.push(row(
        "AS: D gets a DPoP token (with a proof)",
        "D",
        &d_gets,
        200,
        None,
    ));

    // The resource server: the tokens are bound to the certificates (RFC 8705 §3).
    let bearer = |token: &Option<Token>| {
        token
            .as_ref()
            .map(|t| format!("Bearer {}", t.secret()))
            .unwrap_or_default()
    };
    let a_with_a = call_api(&ReqwestClient::new(with_a.clone(), tokens_a), whoami_url).await?;
    results.push(row(
        "RS: A's token, A's certificate",
        "A",
        &a_with_a,
        200,
        None,
    ));
    let a_with_b = forge(&with_b, whoami_url, Some(&bearer(&token_a)), None).await?;
    results.push(row(
        "RS: A's token stolen, used with B",
        "B",
        &a_with_b,
        401,
        invalid_token,
    ));
    let a_without = forge(&without_cert, whoami_url, Some(&bearer(&token_a)), None).await?;
    results.push(row(
        "RS: A's token, no certificate",
        "none",
        &a_without,
        401,
        invalid_token,
    ));
    let c_with_a = forge(&with_a, whoami_url, Some(&bearer(&token_c)), None).await?;
    results.push(row(
        "RS: C's token stolen, used with A",
        "A",
        &c_with_a,
        401,
        invalid_token,
    ));
    let c_with_c = call_api(&ReqwestClient::new(with_c, tokens_c), whoami_url).await?;
    results.push(row(
        "RS: C's token, C's certificate",
        "C",
        &c_with_c,
        200,
        None,
    ));
    let no_token = forge(&with_a, whoami_url, None, None).await?;
    results.push(row("RS: no token", "A", &no_token, 401, None));

    // The resource server: D's token is bound to D's DPoP key (RFC 9449 §7), not to a
    // certificate. D calls without a certificate, through the outgoing layer, which signs a
    // fresh proof for each request (method, URL, token hash). An eavesdropper records what D
    // sent.
    let recorded = Arc::new(Mutex::new(reqwest::header::HeaderMap::new()));
    let d_client = TokenLayer::new(tokens_d).layer(recording(without_cert.clone(), &recorded));
    let request = http::Request::get(whoami_url).body(reqwest::Body::from(Vec::new()))?;
    let d_with_proof = outcome(d_client.oneshot(request).await?.into()).await?;
    results.push(row(
        "RS: D's token and proof, no certificate",
        "none",
        &d_with_proof,
        200,
        None,
    ));
    let seen = recorded.lock().map(|h| h.clone()).unwrap_or_default();
    let header = |name: &str| {
        seen.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (authorization, proof) = (header("authorization"), header("dpop"));
    let replayed = forge(
        &without_cert,
        whoami_url,
        authorization.as_deref(),
        proof.as_deref(),
    )
    .await?;
    results.push(row(
        "RS: D's proof replayed",
        "none",
        &replayed,
        401,
        Some("invalid_dpop_proof"),
    ));
    let token = token_d.as_ref().map(Token::secret).unwrap_or_default();
    let attacker = DpopKey::generate(Algorithm::ES256)?;
    let attacker_proof = attacker
        .proof("GET", whoami_url)
        .access_token(token)
        .sign()?;
    let stolen = forge(
        &without_cert,
        whoami_url,
        authorization.as_deref(),
        Some(&attacker_proof),
    )
    .await?;
    results.push(row(
        "RS: D's token stolen, attacker's proof",
        "none",
        &stolen,
        401,
        invalid_token,
    ));
    let as_bearer = forge(&without_cert, whoami_url, Some(&bearer(&token_d)), None).await?;
    results.push(row(
        "RS: D's token as a bearer token",
        "none",
        &as_bearer,
        401,
        invalid_token,
    ));

    if a_with_a.status == 200 {
        println!("\n/whoami answered A: {}", a_with_a.body);
        println!("A's certificate x5t#S256: {}", demo.client_a.x5t_s256());
    }
    if d_with_proof.status == 200 {
        println!("/whoami answered D: {}", d_with_proof.body);
    }
    if d_bound {
        println!(
            "D's DPoP key jkt: {} (the token's only cnf member; token_type DPoP)",
            demo.dpop_d.thumbprint()
        );
    }
    let failures = results.iter().filter(|ok| !**ok).count();
    Ok((failures, results.len()))
}

/// reqwest as a tower service (any HTTP client will do under [`TokenLayer`]), keeping the
/// headers of the last request in `recorded`: what an eavesdropper on D's traffic would see.
fn recording(
    http: reqwest::Client,
    recorded: &Arc<Mutex<reqwest::header::HeaderMap>>,
) -> impl tower::Service<
    http::Request<reqwest::Body>,
    Response = http::Response<reqwest::Body>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone {
    let recorded = Arc::clone(recorded);
    tower::service_fn(move |request: http::Request<reqwest::Body>| {
        if let Ok(mut seen) = recorded.lock() {
            seen.clone_from(request.headers());
        }
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            Ok(http::Response::from(http.execute(request).await?))
        }
    })
}
