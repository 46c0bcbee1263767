//! A configurable RFC 8705 resource server: `GET /whoami` accepts only access tokens bound to
//! the client certificate of the TLS connection they arrive on: JWTs (checked locally against
//! the authorization server's keys) or opaque tokens (RFC 7662 introspection). With `--dpop` it
//! also accepts tokens bound to a DPoP key (RFC 9449), from clients with or without a
//! certificate.
//!
//! ```text
//! cargo run --release --example resource_server -- \
//!     --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem \
//!     --issuer https://as.example --audience https://api.example \
//!     --jwks-url https://as.example/jwks
//!
//! cargo run --release --example resource_server -- \
//!     --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem \
//!     --introspection-url https://as.example/introspect \
//!     --introspection-client-id rs --introspection-client-secret "$RS_SECRET"
//!
//! # behind nginx (TLS ends there), plain HTTP from the proxy at 10.0.0.5 only:
//! cargo run --release --example resource_server -- --listen 127.0.0.1:8080 \
//!     --trust-forwarded-cert nginx --trusted-proxy 10.0.0.5/32 \
//!     --issuer https://as.example --audience https://api.example \
//!     --jwks-url https://as.example/jwks
//!
//! # DPoP too, two instances behind a load balancer: shared nonce secret and replay state
//! head -c 32 /dev/urandom > nonce.key
//! cargo run --release --features redis --example resource_server -- \
//!     --tls-cert server.pem --tls-key server.key \
//!     --issuer https://as.example --audience https://api.example \
//!     --jwks-url https://as.example/jwks \
//!     --dpop --dpop-nonce --dpop-nonce-key-file nonce.key \
//!     --dpop-replay-redis redis://127.0.0.1:6379 --public-url https://api.example
//! ```
//!
//! Flags (`--flag value` or `--flag=value`; `--help` prints them):
//!
//! ```text
//!   --listen ADDR                  (default 127.0.0.1:8443)
//!   --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
//!   --client-ca PATH               optional, repeatable: client chains must verify to one of these
//!                                  CAs. Without it, any client certificate (self-signed too) is
//!                                  accepted at the TLS layer; key possession is still proven.
//!   --issuer URL --audience STR    expected iss and aud (required for JWTs; checked in the
//!                                  introspection answer when given)
//!   --jwks-url URL | --jwks-file PATH    JWT mode
//!   --introspection-url URL --introspection-client-id ID --introspection-client-secret SECRET
//!                                  opaque-token mode (RFC 7662, client_secret_basic), instead
//!                                  of --jwks-url / --jwks-file
//!   --introspection-cache-ttl SECONDS    how long an active answer is reused (default 3; a
//!                                  token revoked at the AS works here that long; 0: ask on
//!                                  every request)
//!   --upstream-ca PATH             optional, repeatable: extra CA to trust for https to the
//!                                  JWKS or introspection endpoint
//!   --allow-unbound                accept tokens with no cnf (default: reject them)
//!   --trust-forwarded-cert FORMAT  behind a TLS-terminating proxy: take the client certificate
//!                                  from its header, FORMAT one of rfc9440, xfcc (Envoy), nginx
//!                                  (URL-encoded PEM), haproxy (base64 DER). Without --tls-cert
//!                                  and --tls-key the server speaks plain HTTP.
//!   --forwarded-cert-header NAME   the header (defaults: client-cert, x-forwarded-client-cert,
//!                                  x-ssl-client-cert, x-ssl-client-cert)
//!   --trusted-proxy CIDR           repeatable: peers allowed to forward certificates. Without
//!                                  it no peer is trusted and the headers are ignored.
//!   --dpop                         also accept DPoP-bound tokens (Authorization: DPoP + DPoP
//!                                  proof, RFC 9449). A client certificate stays optional at the
//!                                  TLS layer (one that is presented must verify to --client-ca
//!                                  when given); certificate-bound tokens work as before.
//!   --dpop-nonce                   require a server-issued nonce in every proof
//!   --dpop-nonce-key-file PATH     secret for stateless nonces (32+ bytes), shared by instances
//!                                  (default: random per process)
//!   --dpop-replay-redis URL        e.g. redis://127.0.0.1:6379: proof (jti) replay state shared
//!                                  by instances (default: in memory; needs --features redis)
//!   --public-url URL               origin (and optional path prefix) clients use: a proof's htu
//!                                  must be it plus the request path (default: https:// + the
//!                                  request's Host; http:// when serving plain HTTP)
//! ```
//!
//! Routes:
//! - `GET /healthz`: unprotected, `200 ok` (a client certificate is optional at the TLS layer
//!   so that probes need none);
//! - `GET /whoami`: behind [`BoundTokenLayer`]; `200` with the token's `sub`, `client_id`,
//!   `scope`, `x5t#S256` (its certificate binding) and `jkt` (its DPoP key binding) as JSON;
//! - any other path or method: behind the layer too, so `404` / `405` only once the token was
//!   accepted (the API's shape is not shown to callers without one).
//!
//! With `--dpop`, a DPoP proof's `htu` must be the URL the client used: by default `https://`
//! (`http://` in plain-HTTP mode) and the request's `Host` plus its path; with `--public-url`,
//! that URL plus the path (required behind a proxy that terminates TLS, changes the host or adds
//! a path prefix). Proof identifiers are kept in memory (one instance) or in Redis
//! (`--dpop-replay-redis`, a fleet); nonces (`--dpop-nonce`) are stateless, so a fleet shares
//! only `--dpop-nonce-key-file`.
//!
//! A secret given on the command line is visible to other local users (`ps`); on a shared host
//! pass it from a file the service manager reads, e.g.
//! `--introspection-client-secret "$(cat /run/secrets/rs)"`.
//!
//! Forwarded certificate headers are removed from every request; they are read only from
//! `--trusted-proxy` peers, and the proxy must overwrite them on every request (see the README's
//! "Behind a proxy").
//!
//! On start the server prints `listening on https://ADDR` (`http://` without TLS) (in `--jwks-url` mode after a first
//! attempt to fetch the keys, which only warns if it fails). Ctrl-C or SIGTERM stops it
//! gracefully. Bad flags or unreadable files: one line on stderr and exit code 2.

use std::ffi::OsString;
use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::{routing::get, Json, Router};
use certbound::dpop::Dpop;
use certbound::forwarded::IpRange;
use certbound::tls::{load_certs, ServerTls};
use certbound::{
    AccessToken, BoundTokenLayer, ForwardedCertFormat, ForwardedCertLayer, IntrospectionValidator,
    JwtValidator, ValidateToken,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const USAGE: &str = "\
Usage: resource_server [FLAGS]

  --listen ADDR                  (default 127.0.0.1:8443)
  --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
  --client-ca PATH               optional, repeatable: client chains must verify to one of these
                                 CAs. Without it, any client certificate (self-signed too) is
                                 accepted at the TLS layer; key possession is still proven.
  --issuer URL --audience STR    expected iss and aud (required for JWTs; checked in the
                                 introspection answer when given)
  --jwks-url URL | --jwks-file PATH    JWT mode
  --introspection-url URL --introspection-client-id ID --introspection-client-secret SECRET
                                 opaque-token mode (RFC 7662, client_secret_basic), instead
                                 of --jwks-url / --jwks-file
  --introspection-cache-ttl SECONDS    how long an active answer is reused (default 3; a
                                 token revoked at the AS works here that long; 0: ask on
                                 every request)
  --upstream-ca PATH             optional, repeatable: extra CA to trust for https to the
                                 JWKS or introspection endpoint
  --allow-unbound                accept tokens with no cnf (default: reject them)
  --trust-forwarded-cert FORMAT  behind a TLS-terminating proxy: take the client certificate
                                 from its header, FORMAT one of rfc9440, xfcc (Envoy), nginx
                                 (URL-encoded PEM), haproxy (base64 DER). Without --tls-cert
                                 and --tls-key the server speaks plain HTTP.
  --forwarded-cert-header NAME   the header (defaults: client-cert, x-forwarded-client-cert,
                                 x-ssl-client-cert, x-ssl-client-cert)
  --trusted-proxy CIDR           repeatable: peers allowed to forward certificates. Without
                                 it no peer is trusted and the headers are ignored.
  --dpop                         also accept DPoP-bound tokens (Authorization: DPoP + DPoP
                                 proof, RFC 9449). A client certificate stays optional at the
                                 TLS layer (one that is presented must verify to --client-ca
                                 when given); certificate-bound tokens work as before.
  --dpop-nonce                   require a server-issued nonce in every proof
  --dpop-nonce-key-file PATH     secret for stateless nonces (32+ bytes), shared by instances
                                 (default: random per process)
  --dpop-replay-redis URL        e.g. redis://127.0.0.1:6379: proof (jti) replay state shared
                                 by instances (default: in memory; needs --features redis)
  --public-url URL               origin (and optional path prefix) clients use: a proof's htu
                                 must be it plus the request path (default: https:// + the
                                 request's Host; http:// when serving plain HTTP)
  --help                         this text

Flags take their value as `--flag value` or `--flag=value`.
Routes: GET /healthz (unprotected, 200 \"ok\"), GET /whoami (certificate-bound token required;
with --dpop, a DPoP-bound token is accepted too).
";

#[path = "support/cli.rs"]
mod cli;
#[path = "support/dpop.rs"]
mod dpop;

/// How access tokens are validated.
#[derive(Debug)]
enum Keys {
    /// JWTs, keys from a JWKS URL.
    Url(String),
    /// JWTs, keys from a JWKS file.
    File(PathBuf),
    /// Opaque tokens, by introspection.
    Introspection(IntrospectionFlags),
}

#[derive(Debug)]
struct IntrospectionFlags {
    url: String,
    client_id: String,
    client_secret: String,
    cache_ttl: Option<Duration>,
}

#[derive(Debug)]
struct Config {
    /// `--listen` as given, and what it resolved to.
    listen_arg: String,
    listen: Vec<SocketAddr>,
    /// Certificate chain and key; `None`: plain HTTP behind a proxy.
    tls: Option<(PathBuf, PathBuf)>,
    client_cas: Vec<PathBuf>,
    forwarded: Option<ForwardedCertLayer>,
    /// Required in JWT modes.
    issuer: Option<String>,
    audience: Option<String>,
    keys: Keys,
    upstream_cas: Vec<PathBuf>,
    allow_unbound: bool,
    /// `Some` with `--dpop`.
    dpop: Option<dpop::DpopFlags>,
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
        "introspection-url",
        "introspection-client-id",
        "introspection-client-secret",
        "introspection-cache-ttl",
        "trust-forwarded-cert",
        "forwarded-cert-header",
        "trusted-proxy",
        "upstream-ca",
    ];
    let value_flags = [&value_flags[..], &dpop::VALUE_FLAGS].concat();
    let switches = [&["allow-unbound"][..], &dpop::SWITCHES].concat();
    let Some(flags) = cli::parse(args, &value_flags, &switches)? else {
        return Ok(None);
    };
    let (listen_arg, listen) = flags.listen("127.0.0.1:8443")?;
    let tls_cert = flags.once("tls-cert")?;
    let tls_key = flags.once("tls-key")?;
    let client_cas: Vec<PathBuf> = flags
        .all("client-ca")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let forwarded_format = flags.once("trust-forwarded-cert")?;
    let forwarded_header = flags.once("forwarded-cert-header")?;
    let trusted_proxies = flags.all("trusted-proxy");
    let issuer = flags.once("issuer")?;
    let audience = flags.once("audience")?;
    let jwks_url = flags.once("jwks-url")?;
    let jwks_file = flags.once("jwks-file")?;
    let introspection_url = flags.once("introspection-url")?;
    let mut introspection_client_id = flags.once("introspection-client-id")?;
    let mut introspection_client_secret = flags.once("introspection-client-secret")?;
    let mut introspection_cache_ttl = flags.once("introspection-cache-ttl")?;
    let upstream_cas: Vec<PathBuf> = flags
        .all("upstream-ca")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let allow_unbound = flags.switch("allow-unbound");
    let dpop = dpop::DpopFlags::from_flags(&flags)?;
    let required = |slot: Option<String>, name: &str| {
        slot.ok_or_else(|| format!("missing --{name} (see --help)"))
    };

    let forwarded = match forwarded_format {
        None if forwarded_header.is_some() || !trusted_proxies.is_empty() => return Err(
            "--forwarded-cert-header and --trusted-proxy only apply with --trust-forwarded-cert"
                .into(),
        ),
        None => None,
        Some(format) => {
            let format = match format.as_str() {
                "rfc9440" => ForwardedCertFormat::Rfc9440,
                "xfcc" => ForwardedCertFormat::Xfcc,
                "nginx" => ForwardedCertFormat::Nginx,
                "haproxy" => ForwardedCertFormat::Haproxy,
                _ => {
                    return Err(format!(
                        "--trust-forwarded-cert {format:?}: one of rfc9440, xfcc, nginx, haproxy"
                    ))
                }
            };
            let mut layer = ForwardedCertLayer::new(format);
            if let Some(name) = &forwarded_header {
                layer = layer
                    .header(name)
                    .map_err(|e| format!("--forwarded-cert-header: {e}"))?;
            }
            for cidr in &trusted_proxies {
                let range: IpRange = cidr.parse().map_err(|e| format!("--trusted-proxy: {e}"))?;
                layer = layer.trust_proxy(range);
            }
            Some(layer)
        }
    };
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) if forwarded.is_some() => None,
        (None, None) => {
            return Err(
                "missing --tls-cert and --tls-key (or --trust-forwarded-cert to serve plain HTTP behind a proxy)"
                    .into(),
            )
        }
        (None, Some(_)) => return Err("missing --tls-cert (see --help)".into()),
        (Some(_), None) => return Err("missing --tls-key (see --help)".into()),
    };
    if tls.is_none() && !client_cas.is_empty() {
        return Err("--client-ca needs --tls-cert and --tls-key".into());
    }
    let keys = match (jwks_url, jwks_file, introspection_url) {
        (Some(url), None, None) => Keys::Url(url),
        (None, Some(path), None) => Keys::File(path.into()),
        (None, None, Some(url)) => Keys::Introspection(IntrospectionFlags {
            url,
            client_id: required(introspection_client_id.take(), "introspection-client-id")?,
            client_secret: required(
                introspection_client_secret.take(),
                "introspection-client-secret",
            )?,
            cache_ttl: introspection_cache_ttl
                .take()
                .map(|s| {
                    s.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                        format!("--introspection-cache-ttl {s:?}: not a whole number of seconds")
                    })
                })
                .transpose()?,
        }),
        (None, None, None) => {
            return Err(
                "missing --jwks-url, --jwks-file or --introspection-url (see --help)".into(),
            )
        }
        _ => {
            return Err(
                "give one of --jwks-url, --jwks-file and --introspection-url, not several".into(),
            )
        }
    };
    if introspection_client_id.is_some()
        || introspection_client_secret.is_some()
        || introspection_cache_ttl.is_some()
    {
        return Err("--introspection-* flags only apply with --introspection-url".into());
    }
    let jwt_mode = !matches!(keys, Keys::Introspection(_));
    let (issuer, audience) = if jwt_mode {
        (
            Some(required(issuer, "issuer")?),
            Some(required(audience, "audience")?),
        )
    } else {
        (issuer, audience)
    };
    if !upstream_cas.is_empty() && matches!(keys, Keys::File(_)) {
        return Err("--upstream-ca only applies with --jwks-url or --introspection-url".into());
    }
    Ok(Some(Config {
        listen_arg,
        listen,
        tls,
        client_cas,
        forwarded,
        issuer,
        audience,
        keys,
        upstream_cas,
        allow_unbound,
        dpop,
    }))
}

/// The server's rustls configuration from the flags.
fn server_tls(config: &Config) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
    let Some((cert, key)) = &config.tls else {
        return Ok(None);
    };
    let mut tls = ServerTls::from_pem_files(cert, key)
        .map_err(|e| e.to_string())?
        .any_client_certificate();
    for ca in &config.client_cas {
        tls = tls
            .client_ca_pem_file(ca)
            .map_err(|e| format!("--client-ca: {e}"))?;
    }
    // Optional at the TLS layer (but requested, and verified when presented), so that /healthz
    // and DPoP clients need none; BoundTokenLayer rejects certificate-bound tokens without one.
    tls.client_certificate_optional()
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Extra trust anchors for https to the authorization server (`--upstream-ca`).
fn upstream_roots(
    config: &Config,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let mut roots = Vec::new();
    for path in &config.upstream_cas {
        roots.extend(load_certs(path).map_err(|e| format!("--upstream-ca: {e}"))?);
    }
    Ok(roots)
}

/// The JWT validator from the flags.
fn jwt_validator(config: &Config, issuer: &str, audience: &str) -> Result<JwtValidator, String> {
    let builder = JwtValidator::builder(issuer, audience);
    match &config.keys {
        Keys::File(path) => builder
            .jwks_file(path)
            .build()
            .map_err(|e| format!("--jwks-file: {e}")),
        Keys::Url(url) => {
            let mut builder = builder.jwks_url(url);
            for ca in upstream_roots(config)? {
                builder = builder.trust_root(ca);
            }
            builder.build().map_err(|e| format!("--jwks-url: {e}"))
        }
        Keys::Introspection(_) => Err("not a JWT mode".into()),
    }
}

/// The introspection validator from the flags.
fn introspection_validator(
    config: &Config,
    flags: &IntrospectionFlags,
) -> Result<IntrospectionValidator, String> {
    let mut builder = IntrospectionValidator::endpoint(&flags.url)
        .client_secret_basic(&flags.client_id, &flags.client_secret);
    if let Some(issuer) = &config.issuer {
        builder = builder.issuer(issuer);
    }
    if let Some(audience) = &config.audience {
        builder = builder.audience(audience);
    }
    if let Some(ttl) = flags.cache_ttl {
        builder = builder.cache_ttl(ttl);
    }
    for ca in upstream_roots(config)? {
        builder = builder.trust_root(ca);
    }
    builder
        .build()
        .map_err(|e| format!("--introspection-url: {e}"))
}

/// The routes: `/whoami` and every unknown path or method behind the layer, `/healthz` public;
/// behind a proxy, the forwarded certificate layer in front of everything (it removes the
/// headers from every request).
fn app<V: ValidateToken>(validator: V, config: &Config, dpop: Option<Dpop>) -> Router {
    let mut layer = BoundTokenLayer::new(validator);
    if config.allow_unbound {
        layer = layer.allow_unbound();
    }
    if let Some(dpop) = dpop {
        layer = layer.dpop(dpop);
    }
    // `layer` (not `route_layer`) also wraps the fallbacks: a caller without a valid token gets
    // 401 for any path and method, and learns nothing about which routes exist. Routes added
    // after the call are outside it.
    let router = Router::new()
        .route("/whoami", get(whoami))
        .layer(layer)
        .route("/healthz", get(|| async { "ok" }));
    match &config.forwarded {
        Some(forwarded) => router.layer(forwarded.clone()),
        None => router,
    }
}

/// The validator chosen by the flags.
enum Validation {
    Jwt(JwtValidator),
    Introspection(IntrospectionValidator),
}

/// `GET /whoami`: who the validated, sender-constrained token says the caller is.
async fn whoami(token: AccessToken) -> Json<Value> {
    Json(json!({
        "sub": token.subject(),
        "client_id": token.client_id(),
        "scope": token.scopes(),
        // The token's bindings, which the layer checked: against the presented certificate,
        // and against the key that signed the request's DPoP proof. Null when the token has no
        // such binding (both null only for unbound tokens under --allow-unbound).
        "x5t#S256": token.thumbprint().map(ToString::to_string),
        "jkt": token.dpop_thumbprint().map(ToString::to_string),
    }))
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    cli::fail("resource_server", code, message)
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
    // Everything from the flags is checked before the port is taken.
    let validation = match (&config.keys, &config.issuer, &config.audience) {
        (Keys::Introspection(flags), _, _) => {
            introspection_validator(&config, flags).map(Validation::Introspection)
        }
        (_, Some(issuer), Some(audience)) => {
            jwt_validator(&config, issuer, audience).map(Validation::Jwt)
        }
        _ => Err("missing --issuer or --audience".to_owned()),
    };
    let validation = match validation {
        Ok(validation) => validation,
        Err(message) => return fail(2, message),
    };
    let dpop = match &config.dpop {
        Some(flags) => match flags.dpop().await {
            Ok(dpop) => Some(dpop),
            Err(message) => return fail(2, message),
        },
        None => None,
    };

    let listener = match tokio::net::TcpListener::bind(&config.listen[..]).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, format!("cannot listen on {}: {e}", config.listen_arg)),
    };
    let app = match validation {
        Validation::Jwt(validator) => {
            if let Keys::Url(url) = &config.keys {
                // Warm the key cache; if the endpoint is down now, the first request retries.
                if let Err(e) = validator.prefetch().await {
                    eprintln!(
                        "resource_server: warning: no keys from {url} yet ({e}); will retry on demand"
                    );
                }
            }
            app(validator, &config, dpop)
        }
        Validation::Introspection(validator) => app(validator, &config, dpop),
    };

    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(1, format!("cannot read the listening address: {e}")),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");

    let (stop, stopped) = oneshot::channel::<()>();
    let serve = match tls {
        Some(tls) => certbound::serve(listener, tls, app),
        None => certbound::serve_plain(listener, app),
    };
    let server = serve.with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    cli::run_until_signal("resource_server", server.into_future(), stop).await
}
