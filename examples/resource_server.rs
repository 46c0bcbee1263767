//! A configurable RFC 8705 resource server: `GET /whoami` accepts only access tokens bound to
//! the client certificate of the TLS connection they arrive on: JWTs of one or several trusted
//! issuers (checked locally against each issuer's keys) or opaque tokens (RFC 7662
//! introspection), or both. With `--dpop` it also accepts tokens bound to a DPoP key
//! (RFC 9449), from clients with or without a certificate. It publishes its RFC 9728 metadata,
//! and `GET /step-up` asks for a strong or recent enough login (RFC 9470).
//!
//! ```text
//! # two trusted issuers, keys by discovery; /step-up requires MFA within the last 5 minutes
//! cargo run --release --example resource_server -- \
//!     --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem \
//!     --issuer https://as-a.example --issuer https://as-b.example \
//!     --audience https://api.example --public-url https://api.example \
//!     --step-up-acr urn:example:mfa --step-up-max-age 300
//!
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
//!                                  issuer. A token from any other issuer is refused (401) without
//!                                  any network call (or introspected, with --introspection-url).
//!   --audience STR                 expected aud (required with --issuer; checked in the
//!                                  introspection answer when given)
//!   --jwks-url URL | --jwks-file PATH    the keys instead of discovery: only with exactly one
//!                                  --issuer (exit 2 otherwise)
//!   --introspection-url URL --introspection-client-id ID --introspection-client-secret SECRET
//!                                  opaque tokens (RFC 7662, client_secret_basic). Alone: every
//!                                  token is introspected. Together with --issuer: tokens whose
//!                                  iss is one of the --issuer values are verified locally; every
//!                                  other token is introspected (with exactly one --issuer, the
//!                                  answer's iss must be it)
//!   --introspection-cache-ttl SECONDS    how long an active answer is reused (default 3; a
//!                                  token revoked at the AS works here that long; 0: ask on
//!                                  every request)
//!   --upstream-ca PATH             optional, repeatable: extra CA to trust for https to the
//!                                  issuers (discovery, JWKS) or the introspection endpoint
//!   --step-up-acr VALUE            repeatable: GET /step-up requires the token's acr to be one
//!                                  of these (RFC 9470)
//!   --step-up-max-age SECONDS      GET /step-up requires the token's auth_time to be no older
//!                                  than this
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
//!   --public-url URL               origin (and optional path prefix) clients use (https): the
//!                                  resource identifier of the RFC 9728 metadata, and with --dpop
//!                                  a proof's htu must be it plus the request path (default:
//!                                  https:// + the request's Host; for htu, http:// when serving
//!                                  plain HTTP)
//! ```
//!
//! Routes:
//! - `GET /healthz`: unprotected, `200 ok` (a client certificate is optional at the TLS layer
//!   so that probes need none);
//! - `GET /readyz`: unprotected, `200` when the server can validate (the keys of every issuer
//!   loaded, the introspection endpoint answering, Redis answering with
//!   `--dpop-replay-redis`), else `503`;
//! - `GET /whoami`: behind [`BoundTokenLayer`]; `200` with the token's `iss`, `sub`,
//!   `client_id`, `scope`, `x5t#S256` (its certificate binding) and `jkt` (its DPoP key
//!   binding) as JSON;
//! - `GET /step-up`: like `/whoami`, plus [`RequireStepUpLayer`]: the token's `acr` one of the
//!   `--step-up-acr` values, its `auth_time` no older than `--step-up-max-age` (otherwise `401
//!   error="insufficient_user_authentication"` with `acr_values` / `max_age`); without either
//!   flag, the same as `/whoami`;
//! - `GET /.well-known/oauth-protected-resource[PATH]`: unprotected (no token; no client
//!   certificate beyond the TLS handshake), the RFC 9728 document: `resource` is `--public-url`
//!   (`PATH` is its path, if any), else `https://` + the request's `Host` (`PATH` empty);
//!   `authorization_servers` the `--issuer` values in the order given;
//!   `bearer_methods_supported: ["header"]`; `tls_client_certificate_bound_access_tokens: true`;
//!   with `--dpop` also `dpop_signing_alg_values_supported` and
//!   `dpop_bound_access_tokens_required: false`;
//! - any other path or method: behind the layer too, so `404` / `405` only once the token was
//!   accepted (the API's shape is not shown to callers without one).
//!
//! Every `WWW-Authenticate` challenge carries `resource_metadata="<the document's URL>"`
//! (RFC 9728 §5.1). With `--public-url` that URL is fixed; without it, it is built from each
//! request's `Host` like the document, so a client is sent to the document of the name it used
//! (the routes are built per `Host` name, and kept for the first 16 names; a request without a
//! usable `Host` gets `400`).
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
//! On start the server prints `listening on https://ADDR` (`http://` without TLS) (when keys
//! are fetched, by discovery or `--jwks-url`, after a first attempt to fetch each issuer's
//! keys, which only warns if it fails). Ctrl-C or SIGTERM stops it
//! gracefully. Bad flags or unreadable files: one line on stderr and exit code 2.

use std::ffi::OsString;
use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use certbound::dpop::Dpop;
use certbound::forwarded::IpRange;
use certbound::tls::{load_certs, ReloadableServerTls, ServerTls};
use certbound::{
    BoundTokenLayer, ForwardedCertFormat, ForwardedCertLayer, IntrospectionValidator, Issuers,
    RequireStepUpLayer, ResourceMetadata, ValidateToken,
};
use rustls_pki_types::CertificateDer;
use tokio::sync::oneshot;

const USAGE: &str = "\
Usage: resource_server [FLAGS]

  --listen ADDR                  (default 127.0.0.1:8443)
  --tls-cert PATH --tls-key PATH server certificate chain and key (PEM)
  --client-ca PATH               optional, repeatable: client chains must verify to one of these
                                 CAs. Without it, any client certificate (self-signed too) is
                                 accepted at the TLS layer; key possession is still proven.
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
                                 issuer. A token from any other issuer is refused (401) without
                                 any network call (or introspected, with --introspection-url).
  --audience STR                 expected aud (required with --issuer; checked in the
                                 introspection answer when given)
  --jwks-url URL | --jwks-file PATH    the keys instead of discovery: only with exactly one
                                 --issuer (exit 2 otherwise)
  --introspection-url URL --introspection-client-id ID --introspection-client-secret SECRET
                                 opaque tokens (RFC 7662, client_secret_basic). Alone: every
                                 token is introspected. Together with --issuer: tokens whose
                                 iss is one of the --issuer values are verified locally; every
                                 other token is introspected (with exactly one --issuer, the
                                 answer's iss must be it)
  --introspection-cache-ttl SECONDS    how long an active answer is reused (default 3; a
                                 token revoked at the AS works here that long; 0: ask on
                                 every request)
  --upstream-ca PATH             optional, repeatable: extra CA to trust for https to the
                                 issuers (discovery, JWKS) or the introspection endpoint
  --step-up-acr VALUE            repeatable: GET /step-up requires the token's acr to be one
                                 of these (RFC 9470)
  --step-up-max-age SECONDS      GET /step-up requires the token's auth_time to be no older
                                 than this
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
  --public-url URL               origin (and optional path prefix) clients use (https): the
                                 resource identifier of the RFC 9728 metadata, and with --dpop
                                 a proof's htu must be it plus the request path (default:
                                 https:// + the request's Host; for htu, http:// when serving
                                 plain HTTP)
  --metrics-listen ADDR          Prometheus text format at http://ADDR/metrics (plain HTTP, its
                                 own listener, no token); GET /healthz and /readyz there too
  --help                         this text

Flags take their value as `--flag value` or `--flag=value`.
Routes: GET /healthz (unprotected, 200 \"ok\"), GET /readyz (unprotected: 200 when the keys
of every issuer are loaded, the introspection endpoint answers and, with --dpop-replay-redis,
Redis answers; else 503), GET /whoami (certificate-bound token required;
with --dpop, a DPoP-bound token is accepted too), GET /step-up (as /whoami, plus the
--step-up-* requirements), GET /.well-known/oauth-protected-resource[PATH] (unprotected: the
RFC 9728 metadata; PATH is --public-url's path). Every challenge carries resource_metadata.
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
#[path = "support/routes.rs"]
mod routes;

#[derive(Debug)]
struct IntrospectionFlags {
    url: String,
    client_id: String,
    client_secret: String,
    cache_ttl: Option<Duration>,
}

/// `--step-up-acr` and `--step-up-max-age`.
#[derive(Debug)]
struct StepUpFlags {
    acr_values: Vec<String>,
    max_age: Option<Duration>,
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
    /// The trusted issuers (`Some` with `--issuer`).
    jwt: Option<issuers::JwtFlags>,
    /// `--audience`, also checked in introspection answers.
    audience: Option<String>,
    /// `Some` with `--introspection-url`.
    introspection: Option<IntrospectionFlags>,
    upstream_cas: Vec<PathBuf>,
    allow_unbound: bool,
    /// `Some` with `--step-up-acr` or `--step-up-max-age`.
    step_up: Option<StepUpFlags>,
    /// `--public-url`: the resource identifier (checked as one).
    public_url: Option<String>,
    /// `Some` with `--dpop`.
    dpop: Option<dpop::DpopFlags>,
    /// `--reload-interval`, `--crl`.
    reload: reload::ReloadFlags,
    metrics: Option<ops::MetricsListen>,
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("--{flag} {value:?}: not a whole number of seconds"))
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
        "step-up-acr",
        "step-up-max-age",
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
    let audience = flags.once("audience")?;
    let jwt = issuers::JwtFlags::new(
        flags.all("issuer"),
        audience.clone(),
        flags.once("jwks-url")?,
        flags.once("jwks-file")?,
    )?;
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
    let step_up_acr = flags.all("step-up-acr");
    let step_up_max_age = flags
        .once("step-up-max-age")?
        .map(|s| seconds("step-up-max-age", &s))
        .transpose()?;
    let public_url = flags.once("public-url")?;
    let dpop = dpop::DpopFlags::from_flags(&flags, true)?;
    let reload = reload::ReloadFlags::from_flags(&flags, !client_cas.is_empty())?;
    let metrics = ops::MetricsListen::from_flags(&flags)?;
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
    let introspection = match introspection_url {
        None => None,
        Some(url) => Some(IntrospectionFlags {
            url,
            client_id: required(introspection_client_id.take(), "introspection-client-id")?,
            client_secret: required(
                introspection_client_secret.take(),
                "introspection-client-secret",
            )?,
            cache_ttl: introspection_cache_ttl
                .take()
                .map(|s| seconds("introspection-cache-ttl", &s))
                .transpose()?,
        }),
    };
    if introspection_client_id.is_some()
        || introspection_client_secret.is_some()
        || introspection_cache_ttl.is_some()
    {
        return Err("--introspection-* flags only apply with --introspection-url".into());
    }
    if jwt.is_none() && introspection.is_none() {
        return Err("missing --issuer or --introspection-url (see --help)".into());
    }
    let fetches_keys = jwt.as_ref().is_some_and(issuers::JwtFlags::remote);
    if !upstream_cas.is_empty() && !fetches_keys && introspection.is_none() {
        return Err(
            "--upstream-ca only applies when keys are fetched (not with --jwks-file) or with --introspection-url"
                .into(),
        );
    }
    if !step_up_acr.is_empty() {
        let _ = RequireStepUpLayer::acr_values(step_up_acr.iter().cloned())
            .map_err(|e| format!("--step-up-acr: {e}"))?;
    }
    if let Some(url) = &public_url {
        let _ = ResourceMetadata::new(url).map_err(|e| format!("--public-url: {e}"))?;
    }
    let step_up = (!step_up_acr.is_empty() || step_up_max_age.is_some()).then_some(StepUpFlags {
        acr_values: step_up_acr,
        max_age: step_up_max_age,
    });
    Ok(Some(Config {
        listen_arg,
        listen,
        tls,
        client_cas,
        forwarded,
        jwt,
        audience,
        introspection,
        upstream_cas,
        allow_unbound,
        step_up,
        public_url,
        dpop,
        reload,
        metrics,
    }))
}

/// The server's rustls configuration from the flags, reloadable.
fn server_tls(config: &Config) -> Result<Option<ReloadableServerTls>, String> {
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
    let tls = config
        .reload
        .reloadable(tls.client_certificate_optional())?;
    Ok(Some(tls))
}

/// Extra trust anchors for https to the authorization server (`--upstream-ca`).
fn upstream_roots(config: &Config) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut roots = Vec::new();
    for path in &config.upstream_cas {
        roots.extend(load_certs(path).map_err(|e| format!("--upstream-ca: {e}"))?);
    }
    Ok(roots)
}

/// The introspection validator from the flags.
fn introspection_validator(
    config: &Config,
    flags: &IntrospectionFlags,
    roots: &[CertificateDer<'static>],
) -> Result<IntrospectionValidator, String> {
    let mut builder = IntrospectionValidator::endpoint(&flags.url)
        .client_secret_basic(&flags.client_id, &flags.client_secret);
    // With several issuers, an answer may come from any of them: its iss is not checked.
    if let Some([issuer]) = config.jwt.as_ref().map(|jwt| &jwt.issuers[..]) {
        builder = builder.issuer(issuer);
    }
    if let Some(audience) = &config.audience {
        builder = builder.audience(audience);
    }
    if let Some(ttl) = flags.cache_ttl {
        builder = builder.cache_ttl(ttl);
    }
    for ca in roots {
        builder = builder.trust_root(ca.clone());
    }
    builder
        .build()
        .map_err(|e| format!("--introspection-url: {e}"))
}

/// The step-up requirement of `GET /step-up`, if any.
fn step_up_layer(config: &Config) -> Result<Option<RequireStepUpLayer>, String> {
    let Some(flags) = &config.step_up else {
        return Ok(None);
    };
    let layer = if flags.acr_values.is_empty() {
        None
    } else {
        Some(
            RequireStepUpLayer::acr_values(flags.acr_values.iter().cloned())
                .map_err(|e| format!("--step-up-acr: {e}"))?,
        )
    };
    Ok(match (layer, flags.max_age) {
        (Some(layer), Some(max_age)) => Some(layer.max_age(max_age)),
        (Some(layer), None) => Some(layer),
        (None, Some(max_age)) => Some(RequireStepUpLayer::authenticated_within(max_age)),
        (None, None) => None,
    })
}

/// The application for `validator`: the routes (see `support/routes.rs`) and, behind a proxy,
/// the forwarded certificate layer in front of everything (it removes the headers from every
/// request).
fn app<V: ValidateToken>(
    validator: V,
    config: &Config,
    dpop: Option<Dpop>,
    step_up: Option<RequireStepUpLayer>,
) -> Result<(Router, ops::Check), String> {
    let mut layer = BoundTokenLayer::new(validator);
    if config.allow_unbound {
        layer = layer.allow_unbound();
    }
    if let Some(dpop) = dpop {
        layer = layer.dpop(dpop);
    }
    let check = ops::check(&layer);
    let routes = routes::Routes {
        layer,
        step_up,
        authorization_servers: config
            .jwt
            .as_ref()
            .map(|jwt| jwt.issuers.clone())
            .unwrap_or_default(),
    };
    let router = routes.app(config.public_url.as_deref())?;
    let router = match &config.forwarded {
        Some(forwarded) => router.layer(forwarded.clone()),
        None => router,
    };
    Ok((
        router.route("/readyz", ops::readyz(check.clone(), false)),
        check,
    ))
}

/// The validator chosen by the flags, and the issuers' validators to warm.
enum Validation {
    Issuers(Issuers, Vec<certbound::JwtValidator>),
    Introspection(IntrospectionValidator),
}

/// The validator from the flags: the trusted issuers (with introspection for every other
/// token when both are given), or introspection alone.
fn validation(config: &Config) -> Result<Validation, String> {
    let roots = upstream_roots(config)?;
    let introspection = match &config.introspection {
        Some(flags) => Some(introspection_validator(config, flags, &roots)?),
        None => None,
    };
    let Some(jwt) = &config.jwt else {
        return introspection
            .map(Validation::Introspection)
            .ok_or_else(|| "missing --issuer or --introspection-url".to_owned());
    };
    let validators = jwt.validators(&roots)?;
    let mut set = Issuers::builder();
    for validator in &validators {
        set = set.jwt(validator.clone());
    }
    if let Some(introspection) = introspection {
        set = set.introspection(introspection);
    }
    let set = set.build().map_err(|e| format!("--issuer: {e}"))?;
    let warm = if jwt.remote() { validators } else { Vec::new() };
    Ok(Validation::Issuers(set, warm))
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
    // Everything from the flags is checked before the port is taken.
    let validation = match validation(&config) {
        Ok(validation) => validation,
        Err(message) => return fail(2, message),
    };
    let step_up = match step_up_layer(&config) {
        Ok(step_up) => step_up,
        Err(message) => return fail(2, message),
    };
    let (dpop, nonce_key_file) = match &config.dpop {
        Some(flags) => match flags.dpop().await {
            Ok((dpop, nonces)) => (Some(dpop), nonces),
            Err(message) => return fail(2, message),
        },
        None => (None, None),
    };

    let listener = match tokio::net::TcpListener::bind(&config.listen[..]).await {
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
    let app = match validation {
        Validation::Issuers(set, warm) => {
            // Warm the key caches; an issuer that is down now is retried on demand.
            issuers::prefetch("resource_server", &warm).await;
            app(set, &config, dpop, step_up)
        }
        Validation::Introspection(validator) => app(validator, &config, dpop, step_up),
    };
    let (app, check) = match app {
        Ok(app) => app,
        Err(message) => return fail(2, message),
    };

    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(1, format!("cannot read the listening address: {e}")),
    };
    reload::supervise(
        "resource_server",
        reload::watchers(
            config.reload.interval,
            tls.as_ref(),
            nonce_key_file.as_ref(),
        ),
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    if let Some((handle, listener)) = metrics {
        ops::serve(listener, handle, check);
    }

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
