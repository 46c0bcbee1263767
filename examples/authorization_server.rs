//! A small RFC 8705 authorization server: clients authenticate at the token endpoint with their
//! TLS certificate (`tls_client_auth` or `self_signed_tls_client_auth`) and get ES256 JWT access
//! tokens (RFC 9068) bound to that certificate, or, when the token request carries a DPoP proof
//! (RFC 9449), to the proof's key.
//!
//! ```text
//! cargo run --release --example authorization_server -- --listen ADDR --tls-cert PATH --tls-key PATH
//!     [--client-ca PATH]... [--crl PATH]... --issuer URL --audience STR --clients PATH
//!     [--reload-interval SECONDS]
//! ```
//!
//! Flags (`--flag value` or `--flag=value`; `--help` prints them):
//!
//! ```text
//!   --listen ADDR                  address to listen on, e.g. 127.0.0.1:8443
//!   --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
//!   --client-ca PATH               optional, repeatable: CAs of tls_client_auth clients. Without
//!                                  it only self-signed clients can authenticate.
//!   --crl PATH                     optional, repeatable (needs --client-ca): tls_client_auth
//!                                  certificates revoked by these CRLs (PEM or DER) are refused
//!                                  (401 invalid_client). The whole chain is checked; a
//!                                  certificate whose issuer has no CRL, or whose CRL is past
//!                                  its nextUpdate, is refused too.
//!   --issuer URL                   https URL: iss of the tokens, base of the metadata
//!   --audience STR                 aud of the tokens
//!   --clients PATH                 JSON array of client registrations (RFC 7591 / RFC 8705
//!                                  metadata: client_id, token_endpoint_auth_method,
//!                                  tls_client_auth_subject_dn | _san_dns | _san_uri | _san_ip |
//!                                  _san_email, or jwks | jwks_uri; optional scope and
//!                                  tls_client_certificate_bound_access_tokens)
//!   --reload-interval SECONDS      check --tls-cert, --tls-key, --client-ca, --crl and
//!                                  --clients for changes this often and reload what changed
//!                                  (default 5; 0 = only on SIGHUP); SIGHUP reloads at once
//! ```
//!
//! Routes:
//! - `POST /token`: `grant_type=client_credentials`, `client_id` (form, or HTTP Basic with an
//!   empty password), optional `scope`. The client authenticates with its certificate
//!   (RFC 8705 §2); failures are RFC 6749 §5.2 JSON errors (`401 invalid_client`, ...). Success:
//!   `{"access_token", "token_type": "Bearer", "expires_in", "scope"}`, the token carrying
//!   `cnf.x5t#S256` of the client's certificate. With a `DPoP` header (a proof for `POST` and
//!   this endpoint's URL, RFC 9449 §5): `"token_type": "DPoP"` and `cnf.jkt` of the proof's
//!   key, plus `cnf.x5t#S256` for a client registered with
//!   `"tls_client_certificate_bound_access_tokens": true` (the resource server then needs
//!   both); a bad or replayed proof is `400 invalid_dpop_proof`. Proofs are checked with
//!   certbound's defaults (algorithms ES256, ES384, PS256, PS384, PS512, EdDSA; `iat` within
//!   60 s; replay state in memory, so one process; no nonces);
//! - `GET /jwks`: the token-signing key (generated at start);
//! - `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata with
//!   `tls_client_certificate_bound_access_tokens: true`, `mtls_endpoint_aliases` and
//!   `dpop_signing_alg_values_supported`.
//!
//! One listener serves both kinds of client (RFC 8705 §6.1): TLS accepts any client
//! certificate (the handshake proves key possession; a certificate is optional so that the
//! metadata and keys can be read without one). A `tls_client_auth` client's chain is then
//! verified against the `--client-ca` roots (full RFC 5280 path validation, dates included)
//! before its subject is matched, so an untrusted or expired certificate is a `401
//! invalid_client`, never a TLS alert.
//!
//! Reloading: a changed `--clients` file (an edit, an atomic rename, a Kubernetes `..data`
//! symlink swap) replaces the registrations; changed `--client-ca` or `--crl` files replace the
//! trust anchors and CRLs of `tls_client_auth` clients; changed `--tls-cert` / `--tls-key`
//! files the server's own certificate (new connections get it, open ones keep theirs). Each
//! reload writes one line to stderr (`authorization_server: reloaded --clients`); a file that
//! cannot be used (not JSON, an invalid registration, no
//! certificate, an unparsable CRL: half-written files among them) is refused in one line and
//! the server keeps serving with what it had.
//!
//! On start the server prints `listening on https://ADDR`. Ctrl-C or SIGTERM stops it
//! gracefully. Bad flags or unreadable files at start: one line on stderr and exit code 2.

#[path = "support/oauth_server.rs"]
mod oauth_server;

use std::ffi::OsString;
use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use certbound::authorization_server::{ClientAuthenticator, ReloadableClients};
use certbound::tls::{ReloadableServerTls, ServerTls};
use tokio::sync::oneshot;

use oauth_server::{router, TokenIssuer};

const USAGE: &str = "\
Usage: authorization_server --listen ADDR --tls-cert PATH --tls-key PATH
           [--client-ca PATH]... [--crl PATH]... --issuer URL --audience STR --clients PATH
           [--reload-interval SECONDS]

  --listen ADDR                  address to listen on, e.g. 127.0.0.1:8443
  --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
  --client-ca PATH               optional, repeatable: CAs of tls_client_auth clients. Without
                                 it only self-signed clients can authenticate.
  --crl PATH                     optional, repeatable (needs --client-ca): tls_client_auth
                                 certificates revoked by these CRLs (PEM or DER) are refused.
                                 Whole chain; no CRL for an issuer or a CRL past nextUpdate:
                                 refused too.
  --issuer URL                   https URL: iss of the tokens, base of the metadata
  --audience STR                 aud of the tokens
  --clients PATH                 JSON array of client registrations (RFC 7591 / RFC 8705
                                 metadata: client_id, token_endpoint_auth_method,
                                 tls_client_auth_subject_dn | _san_dns | _san_uri | _san_ip |
                                 _san_email, or jwks | jwks_uri; optional scope and
                                 tls_client_certificate_bound_access_tokens)
  --reload-interval SECONDS      check --tls-cert, --tls-key, --client-ca, --crl and --clients
                                 for changes this often and reload what changed (default 5;
                                 0 = only on SIGHUP); SIGHUP reloads at once
  --help                         this text

Flags take their value as `--flag value` or `--flag=value`.
Routes: POST /token (grant_type=client_credentials, client_id, optional scope; a DPoP
        proof header binds the token to the proof's key), GET /jwks,
        GET /.well-known/oauth-authorization-server.
";

#[path = "support/cli.rs"]
mod cli;
#[path = "support/reload.rs"]
mod reload;

#[derive(Debug)]
struct Config {
    /// `--listen` as given, and what it resolved to.
    listen_arg: String,
    listen: Vec<SocketAddr>,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    client_cas: Vec<PathBuf>,
    issuer: String,
    audience: String,
    clients: PathBuf,
    /// `--reload-interval`, `--crl` (the CRLs of `tls_client_auth` chains).
    reload: reload::ReloadFlags,
}

/// Parses the flags (without the program name): `None` for `--help`, `Err` with a one-line
/// message for stderr.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Config>, String> {
    let Some(flags) = cli::parse(
        args,
        &[
            "listen",
            "tls-cert",
            "tls-key",
            "client-ca",
            "crl",
            "issuer",
            "audience",
            "clients",
            "reload-interval",
        ],
        &[],
    )?
    else {
        return Ok(None);
    };
    // Every flag but --client-ca, --crl and --reload-interval is required, --listen included.
    let listen_arg = flags.required("listen")?;
    let (listen_arg, listen) = flags.listen(&listen_arg)?;
    let tls_cert = flags.required("tls-cert")?;
    let tls_key = flags.required("tls-key")?;
    let client_cas: Vec<PathBuf> = flags
        .all("client-ca")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let reload = reload::ReloadFlags::from_flags(&flags, !client_cas.is_empty())?;
    let issuer = flags.required("issuer")?;
    let audience = flags.required("audience")?;
    let clients = flags.required("clients")?;
    Ok(Some(Config {
        listen_arg,
        listen,
        tls_cert: tls_cert.into(),
        tls_key: tls_key.into(),
        client_cas,
        issuer,
        audience,
        clients: clients.into(),
        reload,
    }))
}

/// TLS accepts any client certificate (key possession is proven by the handshake); which
/// certificate authenticates which client is decided per client at the token endpoint.
fn server_tls(config: &Config) -> Result<ReloadableServerTls, String> {
    let tls = ServerTls::from_pem_files(&config.tls_cert, &config.tls_key)
        .map_err(|e| e.to_string())?
        .any_client_certificate()
        // The metadata and the keys are public: no certificate needed for them.
        .client_certificate_optional();
    ReloadableServerTls::new(tls).map_err(|e| e.to_string())
}

/// The chain verifier for `tls_client_auth` clients, from `--client-ca` and `--crl`, with
/// certbound's strict revocation defaults.
fn authenticator(config: &Config) -> Result<ClientAuthenticator, String> {
    let mut builder = ClientAuthenticator::builder();
    for ca in &config.client_cas {
        builder = builder
            .client_ca_pem_file(ca)
            .map_err(|e| format!("--client-ca: {e}"))?;
    }
    for crl in &config.reload.crls {
        builder = builder.crl_file(crl).map_err(|e| format!("--crl: {e}"))?;
    }
    builder
        .build()
        .map_err(|e| format!("--client-ca/--crl: {e}"))
}

/// The watchers of the files given, each named by its flags for the stderr lines.
fn watchers(
    config: &Config,
    tls: &ReloadableServerTls,
    authenticator: &ClientAuthenticator,
    clients: &ReloadableClients,
) -> Vec<(&'static str, certbound::reload::Watcher)> {
    let interval = config.reload.interval;
    let mut watchers = vec![
        ("--tls-cert/--tls-key", tls.watch(interval)),
        ("--clients", clients.watch(interval)),
    ];
    if !config.client_cas.is_empty() {
        watchers.push(("--client-ca/--crl", authenticator.watch(interval)));
    }
    watchers
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    cli::fail("authorization_server", code, message)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args_os().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return fail(2, message),
    };
    let tls = match server_tls(&config) {
        Ok(tls) => tls,
        Err(message) => return fail(2, message),
    };
    let authenticator = match authenticator(&config) {
        Ok(authenticator) => authenticator,
        Err(message) => return fail(2, message),
    };
    let clients = match ReloadableClients::from_json_file(&config.clients) {
        Ok(clients) => clients,
        Err(e) => return fail(2, format!("--clients: {e}")),
    };
    let tokens = match TokenIssuer::generate(&config.issuer, &config.audience) {
        Ok(tokens) => tokens,
        Err(e) => return fail(1, format!("cannot generate the signing key: {e}")),
    };
    reload::supervise(
        "authorization_server",
        watchers(&config, &tls, &authenticator, &clients),
    );
    let app = match router(tokens, clients, authenticator) {
        Ok(app) => app,
        Err(message) => return fail(2, message),
    };

    let listener = match tokio::net::TcpListener::bind(&config.listen[..]).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, format!("cannot listen on {}: {e}", config.listen_arg)),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(1, format!("cannot read the listening address: {e}")),
    };
    println!("listening on https://{addr}");

    let (stop, stopped) = oneshot::channel::<()>();
    let server = certbound::serve(listener, tls, app).with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    cli::run_until_signal("authorization_server", server.into_future(), stop).await
}
