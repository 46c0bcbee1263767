//! A small RFC 8705 authorization server: clients authenticate at the token endpoint with their
//! TLS certificate (`tls_client_auth` or `self_signed_tls_client_auth`) and get ES256 JWT access
//! tokens (RFC 9068) bound to that certificate.
//!
//! ```text
//! cargo run --release --example authorization_server -- --listen ADDR --tls-cert PATH --tls-key PATH
//!     [--client-ca PATH]...  --issuer URL --audience STR --clients PATH
//! ```
//!
//! Flags (`--flag value` or `--flag=value`; `--help` prints them):
//!
//! ```text
//!   --listen ADDR                  address to listen on, e.g. 127.0.0.1:8443
//!   --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
//!   --client-ca PATH               optional, repeatable: CAs of tls_client_auth clients. Without
//!                                  it only self-signed clients can authenticate.
//!   --issuer URL                   https URL: iss of the tokens, base of the metadata
//!   --audience STR                 aud of the tokens
//!   --clients PATH                 JSON array of client registrations (RFC 7591 / RFC 8705
//!                                  metadata: client_id, token_endpoint_auth_method,
//!                                  tls_client_auth_subject_dn | _san_dns | _san_uri | _san_ip |
//!                                  _san_email, or jwks | jwks_uri; optional scope)
//! ```
//!
//! Routes:
//! - `POST /token`: `grant_type=client_credentials`, `client_id` (form, or HTTP Basic with an
//!   empty password), optional `scope`. The client authenticates with its certificate
//!   (RFC 8705 §2); failures are RFC 6749 §5.2 JSON errors (`401 invalid_client`, ...). Success:
//!   `{"access_token", "token_type": "Bearer", "expires_in", "scope"}`, the token carrying
//!   `cnf.x5t#S256` of the client's certificate;
//! - `GET /jwks`: the token-signing key (generated at start);
//! - `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata with
//!   `tls_client_certificate_bound_access_tokens: true` and `mtls_endpoint_aliases`.
//!
//! One listener serves both kinds of client (RFC 8705 §6.1): TLS accepts any client
//! certificate (the handshake proves key possession; a certificate is optional so that the
//! metadata and keys can be read without one). A `tls_client_auth` client's chain is then
//! verified against the `--client-ca` roots (full RFC 5280 path validation, dates included)
//! before its subject is matched, so an untrusted or expired certificate is a `401
//! invalid_client`, never a TLS alert.
//!
//! On start the server prints `listening on https://ADDR`. Ctrl-C or SIGTERM stops it
//! gracefully. Bad flags or unreadable files: one line on stderr and exit code 2.

#[path = "support/oauth_server.rs"]
mod oauth_server;

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use certbound::authz::{ClientAuthenticator, StaticClients};
use certbound::tls::ServerTls;
use tokio::sync::oneshot;

use oauth_server::{router, TokenIssuer};

const USAGE: &str = "\
Usage: authorization_server --listen ADDR --tls-cert PATH --tls-key PATH
           [--client-ca PATH]...  --issuer URL --audience STR --clients PATH

  --listen ADDR                  address to listen on, e.g. 127.0.0.1:8443
  --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
  --client-ca PATH               optional, repeatable: CAs of tls_client_auth clients. Without
                                 it only self-signed clients can authenticate.
  --issuer URL                   https URL: iss of the tokens, base of the metadata
  --audience STR                 aud of the tokens
  --clients PATH                 JSON array of client registrations (RFC 7591 / RFC 8705
                                 metadata: client_id, token_endpoint_auth_method,
                                 tls_client_auth_subject_dn | _san_dns | _san_uri | _san_ip |
                                 _san_email, or jwks | jwks_uri; optional scope)
  --help                         this text

Flags take their value as `--flag value` or `--flag=value`.
Routes: POST /token (grant_type=client_credentials, client_id, optional scope),
        GET /jwks, GET /.well-known/oauth-authorization-server.
";

/// How long open connections get to finish after Ctrl-C / SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
}

/// Parses the flags (without the program name): `None` for `--help`, `Err` with a one-line
/// message for stderr.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Config>, String> {
    let args = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("argument {a:?} is not valid UTF-8"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(None);
    }

    let mut listen = None;
    let mut tls_cert = None;
    let mut tls_key = None;
    let mut client_cas = Vec::new();
    let mut issuer = None;
    let mut audience = None;
    let mut clients = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?} (see --help)"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        if !matches!(
            name,
            "listen" | "tls-cert" | "tls-key" | "client-ca" | "issuer" | "audience" | "clients"
        ) {
            return Err(format!("unknown flag --{name} (see --help)"));
        }
        let value = match inline {
            Some(value) => value,
            // `--issuer --audience x` is a missing value, not an issuer named "--audience".
            None => args
                .next()
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| format!("--{name} needs a value"))?,
        };
        if value.is_empty() {
            return Err(format!("--{name} needs a non-empty value"));
        }
        let once = |slot: &mut Option<String>| match slot.replace(value.clone()) {
            None => Ok(()),
            Some(_) => Err(format!("--{name} given more than once")),
        };
        match name {
            "listen" => once(&mut listen)?,
            "tls-cert" => once(&mut tls_cert)?,
            "tls-key" => once(&mut tls_key)?,
            "issuer" => once(&mut issuer)?,
            "audience" => once(&mut audience)?,
            "clients" => once(&mut clients)?,
            _ => client_cas.push(PathBuf::from(value)),
        }
    }

    let required = |slot: Option<String>, name: &str| {
        slot.ok_or_else(|| format!("missing --{name} (see --help)"))
    };
    let listen_arg = required(listen, "listen")?;
    let tls_cert = required(tls_cert, "tls-cert")?;
    let tls_key = required(tls_key, "tls-key")?;
    let issuer = required(issuer, "issuer")?;
    let audience = required(audience, "audience")?;
    let clients = required(clients, "clients")?;
    let listen = listen_arg
        .to_socket_addrs()
        .map_err(|e| format!("--listen {listen_arg}: {e}"))?
        .collect();
    Ok(Some(Config {
        listen_arg,
        listen,
        tls_cert: tls_cert.into(),
        tls_key: tls_key.into(),
        client_cas,
        issuer,
        audience,
        clients: clients.into(),
    }))
}

/// TLS accepts any client certificate (key possession is proven by the handshake); which
/// certificate authenticates which client is decided per client at the token endpoint.
fn server_tls(config: &Config) -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
    ServerTls::from_pem_files(&config.tls_cert, &config.tls_key)
        .map_err(|e| e.to_string())?
        .any_client_certificate()
        // The metadata and the keys are public: no certificate needed for them.
        .client_certificate_optional()
        .build()
        .map_err(|e| e.to_string())
}

/// The chain verifier for `tls_client_auth` clients, from `--client-ca`.
fn authenticator(config: &Config) -> Result<ClientAuthenticator, String> {
    let mut builder = ClientAuthenticator::builder();
    for ca in &config.client_cas {
        builder = builder
            .client_ca_pem_file(ca)
            .map_err(|e| format!("--client-ca: {e}"))?;
    }
    builder.build().map_err(|e| e.to_string())
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("authorization_server: {message}");
    ExitCode::from(code)
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
    let clients = match StaticClients::from_json_file(&config.clients) {
        Ok(clients) => clients,
        Err(e) => return fail(2, format!("--clients: {e}")),
    };
    let tokens = match TokenIssuer::generate(&config.issuer, &config.audience) {
        Ok(tokens) => tokens,
        Err(e) => return fail(1, format!("cannot generate the signing key: {e}")),
    };
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
    let mut server = tokio::spawn(async move {
        certbound::serve(listener, tls, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tokio::select! {
        ended = &mut server => {
            // The server only ends by itself on an error.
            return match ended {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => fail(1, format!("server error: {e}")),
                Err(e) => fail(1, format!("server task failed: {e}")),
            };
        }
        () = shutdown_signal() => {}
    }
    eprintln!("authorization_server: shutting down");
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) => fail(1, format!("server error: {e}")),
        Ok(Err(e)) => fail(1, format!("server task failed: {e}")),
        Err(_) => fail(
            1,
            format!("connections still open after {SHUTDOWN_GRACE:?}; exiting"),
        ),
    }
}
