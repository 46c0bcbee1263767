//! A configurable RFC 8705 gRPC resource server: the `certbound.example.v1.Whoami` service
//! (`examples/grpc/whoami.proto`: a unary and a server-streaming method) accepts only JWT access
//! tokens, of one or several trusted issuers, bound to the client certificate of the TLS
//! connection they arrive on. With `--dpop` it
//! also accepts tokens bound to a DPoP key (RFC 9449), from clients with or without a
//! certificate.
//!
//! ```text
//! cargo run --release --features tonic --example tonic_server -- \
//!     --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem \
//!     --issuer https://as.example --audience https://api.example \
//!     --jwks-url https://as.example/jwks
//!
//! # two trusted issuers, keys by discovery:
//! cargo run --release --features tonic --example tonic_server -- \
//!     --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem \
//!     --issuer https://as-a.example --issuer https://as-b.example \
//!     --audience https://api.example
//!
//! # DPoP too, with server nonces:
//! cargo run --release --features tonic --example tonic_server -- \
//!     --tls-cert server.pem --tls-key server.key \
//!     --issuer https://as.example --audience https://api.example \
//!     --jwks-url https://as.example/jwks --dpop --dpop-nonce
//! ```
//!
//! Flags (`--flag value` or `--flag=value`; `--help` prints them), as for `resource_server`:
//!
//! ```text
//!   --listen ADDR                  (default 127.0.0.1:50051)
//!   --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
//!   --client-ca PATH               optional, repeatable: client chains must verify to one of these
//!                                  CAs. Without it, any client certificate (self-signed too,
//!                                  RFC 8705 §6.2) is accepted at the TLS layer; key possession is
//!                                  still proven.
//!   --crl PATH                     repeatable: client certificates revoked by these CRLs (PEM or
//!                                  DER) are refused during the TLS handshake (needs --client-ca;
//!                                  every CA of a client chain needs its CRL, and an expired CRL
//!                                  refuses the certificates it covers)
//!   --reload-interval SECONDS      check --tls-cert, --tls-key, --client-ca, --crl and
//!                                  --dpop-nonce-key-file for changes this often and reload what
//!                                  changed (default 5; 0 = only on SIGHUP); SIGHUP reloads at once.
//!                                  Each reload writes one line on stderr; a failed one keeps the
//!                                  previous material; connections already open keep theirs.
//!   --metrics-listen ADDR          Prometheus text format at http://ADDR/metrics (plain HTTP, its
//!                                  own listener, no token); GET /healthz and /readyz there too
//!   --issuer URL                   may be given several times: tokens from each issuer are
//!                                  accepted; keys come from RFC 8414 / OpenID discovery of each
//!                                  issuer. A token from any other issuer is refused
//!                                  (UNAUTHENTICATED) without any network call.
//!   --audience STR                 expected aud of JWT access tokens
//!   --jwks-url URL | --jwks-file PATH    the keys instead of discovery: only with exactly one
//!                                  --issuer (exit 2 otherwise)
//!   --upstream-ca PATH             optional, repeatable: extra CA to trust for https to the
//!                                  issuers (discovery, JWKS)
//!   --allow-unbound                accept tokens with no cnf (default: reject them)
//!   --dpop                         also accept DPoP-bound tokens (authorization: DPoP + dpop
//!                                  proof metadata, RFC 9449; htm POST). A client certificate
//!                                  becomes optional at the TLS layer (one that is presented must
//!                                  verify to --client-ca when given); certificate-bound tokens
//!                                  work as before.
//!   --dpop-nonce                   require a server-issued nonce in every proof
//!   --dpop-nonce-key-file PATH     secret for stateless nonces (32+ bytes), shared by instances
//!                                  (default: random per process)
//!   --dpop-replay-redis URL        e.g. redis://127.0.0.1:6379: proof (jti) replay state shared
//!                                  by instances (default: in memory; needs --features redis)
//!   --public-url URL               origin (and optional path prefix) clients use: a proof's htu
//!                                  must be it plus /package.Service/Method (default: https:// +
//!                                  the request's :authority)
//! ```
//!
//! Rejections are gRPC statuses: `UNAUTHENTICATED` (with a `www-authenticate` challenge in the
//! metadata) for a missing, invalid or wrongly bound token, a bad or replayed DPoP proof, and so
//! on (see `certbound::tonic`); with `--dpop-nonce`, the nonce to use comes in `dpop-nonce`
//! metadata. `Whoami` reports the token's `x5t_s256` and `jkt` bindings.
//!
//! On start the server prints `listening on https://ADDR` (when keys are fetched, by discovery
//! or `--jwks-url`, after a first attempt to fetch each issuer's keys, which only warns if it
//! fails). Ctrl-C or SIGTERM stops it
//! gracefully. Bad flags or unreadable files: one line on stderr and exit code 2.

#[path = "grpc/whoami.rs"]
mod whoami;

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;

use certbound::tls::{load_certs, ReloadableServerTls, ServerTls};
use certbound::{BoundTokenLayer, Issuers, JwtValidator};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_layer::Layer as _;
use whoami::WhoamiServer;

const USAGE: &str = "\
Usage: tonic_server [FLAGS]

  --listen ADDR                  (default 127.0.0.1:50051)
  --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
  --client-ca PATH               optional, repeatable: client chains must verify to one of these
                                 CAs. Without it, any client certificate (self-signed too,
                                 RFC 8705 §6.2) is accepted at the TLS layer; key possession is
                                 still proven.
  --crl PATH                     repeatable: client certificates revoked by these CRLs (PEM or
                                 DER) are refused during the TLS handshake (needs --client-ca;
                                 every CA of a client chain needs its CRL, and an expired CRL
                                 refuses the certificates it covers)
  --reload-interval SECONDS      check --tls-cert, --tls-key, --client-ca, --crl and
                                 --dpop-nonce-key-file for changes this often and reload what
                                 changed (default 5; 0 = only on SIGHUP); SIGHUP reloads at once.
                                 Each reload writes one line on stderr; a failed one keeps the
                                 previous material; connections already open keep theirs.
  --issuer URL                   may be given several times: tokens from each issuer are
                                 accepted; keys come from RFC 8414 / OpenID discovery of each
                                 issuer. A token from any other issuer is refused
                                 (UNAUTHENTICATED) without any network call.
  --audience STR                 expected aud of JWT access tokens
  --jwks-url URL | --jwks-file PATH    the keys instead of discovery: only with exactly one
                                 --issuer (exit 2 otherwise)
  --upstream-ca PATH             optional, repeatable: extra CA to trust for https to the
                                 issuers (discovery, JWKS)
  --allow-unbound                accept tokens with no cnf (default: reject them)
  --dpop                         also accept DPoP-bound tokens (authorization: DPoP + dpop
                                 proof metadata, RFC 9449; htm POST). A client certificate
                                 becomes optional at the TLS layer (one that is presented must
                                 verify to --client-ca when given); certificate-bound tokens
                                 work as before.
  --dpop-nonce                   require a server-issued nonce in every proof
  --dpop-nonce-key-file PATH     secret for stateless nonces (32+ bytes), shared by instances
                                 (default: random per process)
  --dpop-replay-redis URL        e.g. redis://127.0.0.1:6379: proof (jti) replay state shared
                                 by instances (default: in memory; needs --features redis)
  --public-url URL               origin (and optional path prefix) clients use: a proof's htu
                                 must be it plus /package.Service/Method (default: https:// +
                                 the request's :authority)
  --metrics-listen ADDR          Prometheus text format at http://ADDR/metrics (plain HTTP, its
                                 own listener, no token); GET /healthz and /readyz there too
  --help                         this text

Flags take their value as `--flag value` or `--flag=value`.
Service: certbound.example.v1.Whoami (Whoami, Count), certificate-bound token required (with
--dpop, a DPoP-bound token is accepted too) from one of the --issuer values. GET /readyz
(unprotected, plain HTTP over the same TLS): 200 when the keys of every issuer are loaded and,
with --dpop-replay-redis, Redis answers; else 503.
";

#[path = "support/cli.rs"]
mod cli;
#[path = "support/dpop.rs"]
mod dpop;
#[path = "support/issuers.rs"]
mod issuers;
#[path = "support/ops.rs"]
mod ops;
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
    /// The trusted issuers and how their keys are found.
    jwt: issuers::JwtFlags,
    upstream_cas: Vec<PathBuf>,
    allow_unbound: bool,
    /// `Some` with `--dpop`.
    dpop: Option<dpop::DpopFlags>,
    /// `--reload-interval`, `--crl`.
    reload: reload::ReloadFlags,
    metrics: Option<ops::MetricsListen>,
}

/// Parses the flags (without the program name): `None` for `--help`, `Err` with a one-line
/// message for stderr.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Option<Config>, String> {
    let value_flags = [
        "listen",
        "tls-cert",
        "tls-key",
        "client-ca",
        "issuer",
        "audience",
        "jwks-url",
        "jwks-file",
        "upstream-ca",
    ];
    let value_flags = [
        &value_flags[..],
        &dpop::VALUE_FLAGS,
        &reload::VALUE_FLAGS,
        &ops::VALUE_FLAGS,
    ]
    .concat();
    let switches = [&["allow-unbound"][..], &dpop::SWITCHES].concat();
    let Some(flags) = cli::parse(args, &value_flags, &switches)? else {
        return Ok(None);
    };
    let (listen_arg, listen) = flags.listen("127.0.0.1:50051")?;
    let tls_cert = flags.once("tls-cert")?;
    let tls_key = flags.once("tls-key")?;
    let client_cas: Vec<PathBuf> = flags
        .all("client-ca")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let jwt = issuers::JwtFlags::new(
        flags.all("issuer"),
        flags.once("audience")?,
        flags.once("jwks-url")?,
        flags.once("jwks-file")?,
    )?;
    let upstream_cas: Vec<PathBuf> = flags
        .all("upstream-ca")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let allow_unbound = flags.switch("allow-unbound");
    let dpop = dpop::DpopFlags::from_flags(&flags, false)?;
    let reload = reload::ReloadFlags::from_flags(&flags, !client_cas.is_empty())?;
    let metrics = ops::MetricsListen::from_flags(&flags)?;

    let required = |slot: Option<String>, name: &str| {
        slot.ok_or_else(|| format!("missing --{name} (see --help)"))
    };
    let tls_cert = required(tls_cert, "tls-cert")?;
    let tls_key = required(tls_key, "tls-key")?;
    let jwt = jwt.ok_or("missing --issuer (see --help)")?;
    if !upstream_cas.is_empty() && !jwt.remote() {
        return Err(
            "--upstream-ca only applies when keys are fetched (not with --jwks-file)".into(),
        );
    }
    Ok(Some(Config {
        listen_arg,
        listen,
        tls_cert: tls_cert.into(),
        tls_key: tls_key.into(),
        client_cas,
        jwt,
        upstream_cas,
        allow_unbound,
        dpop,
        reload,
        metrics,
    }))
}

/// The TLS setup from the flags: certbound's acceptor, reloadable. The PEM files are parsed
/// here, so that a bad file is reported at start-up with its path.
fn server_tls(config: &Config) -> Result<ReloadableServerTls, String> {
    let mut tls = ServerTls::from_pem_files(&config.tls_cert, &config.tls_key)
        .map_err(|e| e.to_string())?
        .any_client_certificate();
    for ca in &config.client_cas {
        tls = tls
            .client_ca_pem_file(ca)
            .map_err(|e| format!("--client-ca: {e}"))?;
    }
    // With DPoP, clients without a certificate are let in (it is still requested, and checked
    // when presented); the layer refuses certificate-bound tokens on their connections.
    if config.dpop.is_some() {
        tls = tls.client_certificate_optional();
    }
    config.reload.reloadable(tls)
}

/// One JWT validator per trusted issuer, from the flags.
fn jwt_validators(config: &Config) -> Result<Vec<JwtValidator>, String> {
    let mut roots = Vec::new();
    for path in &config.upstream_cas {
        roots.extend(load_certs(path).map_err(|e| format!("--upstream-ca: {e}"))?);
    }
    config.jwt.validators(&roots)
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    cli::fail("tonic_server", code, message)
}

type ServerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The server, serving until `stopped` completes.
fn server(
    tls: ReloadableServerTls,
    layer: BoundTokenLayer<Issuers>,
    readyz: ops::ReadyzLayer,
    listener: TcpListener,
    stopped: oneshot::Receiver<()>,
) -> ServerFuture {
    let stopped = async {
        let _ = stopped.await;
    };
    // certbound's acceptor puts the client certificate into every request.
    let service = readyz.layer(layer.layer(WhoamiServer));
    Box::pin(async move {
        certbound::serve(listener, tls, service)
            .with_graceful_shutdown(stopped)
            .await
            .map_err(|e| e.to_string())
    })
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
    // The recorder first: what is recorded while building (the certificate's expiry) counts.
    let recorder = match config.metrics.as_ref().map(ops::MetricsListen::install) {
        Some(Ok(handle)) => Some(handle),
        Some(Err(message)) => return fail(1, message),
        None => None,
    };
    let tls = match server_tls(&config) {
        Ok(tls) => tls,
        Err(message) => return fail(2, message),
    };
    let validators = match jwt_validators(&config) {
        Ok(validators) => validators,
        Err(message) => return fail(2, message),
    };
    let set = validators
        .iter()
        .fold(Issuers::builder(), |set, validator| {
            set.jwt(validator.clone())
        })
        .build();
    let set = match set {
        Ok(set) => set,
        Err(e) => return fail(2, format!("--issuer: {e}")),
    };
    let (dpop, nonce_key_file) = match &config.dpop {
        Some(flags) => match flags.dpop().await {
            Ok((dpop, nonces)) => (Some(dpop), nonces),
            Err(message) => return fail(2, message),
        },
        None => (None, None),
    };

    let listener = match TcpListener::bind(&config.listen[..]).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, format!("cannot listen on {}: {e}", config.listen_arg)),
    };
    let metrics = match (&config.metrics, recorder) {
        (Some(metrics), Some(handle)) => match metrics.bind().await {
            Ok(listener) => Some((handle, listener)),
            Err(message) => return fail(1, message),
        },
        _ => None,
    };
    if config.jwt.remote() {
        // Warm the key caches; an issuer that is down now is retried on demand.
        issuers::prefetch("tonic_server", &validators).await;
    }

    let mut layer = BoundTokenLayer::new(set);
    if config.allow_unbound {
        layer = layer.allow_unbound();
    }
    if let Some(dpop) = dpop {
        layer = layer.dpop(dpop);
    }
    let check = ops::check(&layer);
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(1, format!("cannot read the listening address: {e}")),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = server(
        tls.clone(),
        layer,
        ops::ReadyzLayer(check.clone()),
        listener,
        stopped,
    );
    reload::supervise(
        "tonic_server",
        reload::watchers(config.reload.interval, Some(&tls), nonce_key_file.as_ref()),
    );
    println!("listening on https://{addr}");
    if let Some((handle, listener)) = metrics {
        ops::serve(listener, handle, check);
    }

    cli::run_until_signal("tonic_server", server, stop).await
}
