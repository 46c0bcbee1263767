//! An operator's client: gets a sender-constrained access token with the client's certificate
//! (RFC 8705 §2 `tls_client_auth` / `self_signed_tls_client_auth`, optionally DPoP-bound, RFC
//! 9449) and calls a protected resource with it, through certbound's `client` module.
//!
//! ```text
//! cargo run --example client -- [--issuer URL | --token-endpoint URL] --client-id ID
//!     --cert PATH --key PATH [--ca PATH] [--scope S] [--resource URI]... [--dpop [--dpop-key PATH]]
//!     --url URL [--method M] [--count N] [--interval SECONDS] [--reload-interval SECONDS]
//! ```
//!
//! Flags (`--flag value` or `--flag=value`; `--help` prints them):
//!
//! ```text
//!   --issuer URL | --token-endpoint URL   where to get tokens (RFC 8414 discovery from --issuer,
//!                                         preferring mtls_endpoint_aliases.token_endpoint). With
//!                                         neither, from --url's RFC 9728 metadata: its first
//!                                         authorization server, when the document's resource is
//!                                         --url (without query), or else, when --url's own
//!                                         document does not exist, its origin's
//!                                         (https://host[:port]). Tokens are then asked for with
//!                                         resource= the metadata's resource, unless --resource
//!                                         names others
//!   --client-id ID --cert PATH --key PATH  the client's identity (PEM chain, leaf first; PEM key)
//!   --ca PATH                              trust for the AS and the resource server (default:
//!                                          the Mozilla roots of webpki-roots)
//!   --scope S                              the scope to ask for
//!   --resource URI                         an RFC 8707 resource to ask for (repeatable)
//!   --dpop                                 DPoP-bound tokens (RFC 9449)
//!   --dpop-key PATH                        the DPoP key (PKCS#8 PEM; generated when not given)
//!   --url URL                              the resource to call
//!   --method M                             the HTTP method (default GET)
//!   --count N                              calls, on one connection (default 1)
//!   --interval SECONDS                     pause between calls (default 0; lets a token expire
//!                                          mid-run)
//!   --reload-interval SECONDS              check --cert and --key for changes this often and
//!                                          reload them (default 5; 0 = only on SIGHUP); SIGHUP
//!                                          reloads at once. A renewed certificate gets a new
//!                                          token, bound to it, used over new connections that
//!                                          present it; a renewal that does not load (a key not
//!                                          the certificate's, a half-written file) is refused
//!                                          with one line on stderr and the identity in use kept
//! ```
//!
//! Prints one line per call: `N STATUS BODY` (the body on one line, at most 1000 characters)
//! or `N error: WHY`. Never prints a token or a proof. On stderr, one line per reload of
//! `--cert`/`--key`: `client: reloaded --cert/--key` or `client: reloading --cert/--key failed,
//! keeping the previous one: WHY`. Exit codes: 0 when every call answered
//! 2xx; 1 when a call did not, or no token could be obtained (one line, `no token: WHY`: the
//! authorization server's RFC 6749 error, or why the resource's metadata is missing or not
//! usable, in which case nothing was sent to an authorization server nor with a token); 2 for
//! bad flags or unreadable files (one line on stderr). The
//! authorization server and the resource server each get 10 s to connect and 30 s per
//! exchange.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/reload.rs"]
mod reload;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use certbound::client::{ReloadableClientIdentity, ReqwestClient, TokenSource};
use certbound::dpop::DpopKey;
use jsonwebtoken::Algorithm;
use rustls_pki_types::CertificateDer;

const USAGE: &str = "\
Usage: client [--issuer URL | --token-endpoint URL] --client-id ID --cert PATH --key PATH
              [--ca PATH] [--scope S] [--resource URI]... [--dpop [--dpop-key PATH]]
              --url URL [--method M] [--count N] [--interval SECONDS]
              [--reload-interval SECONDS]

  --issuer URL | --token-endpoint URL   where to get tokens (discovery from --issuer; with
                                         neither, from --url's RFC 9728 metadata)
  --client-id ID --cert PATH --key PATH  the client's identity (PEM)
  --ca PATH                              trust for the AS and the resource server
                                         (default: webpki roots)
  --scope S  --resource URI              what to ask for (--resource is repeatable)
  --dpop [--dpop-key PATH]               DPoP-bound tokens (key generated when not given)
  --url URL [--method M] [--count N]     call the resource N times (default 1) on one connection
  --interval SECONDS                     pause between calls (default 0)
  --reload-interval SECONDS              check --cert/--key for changes this often and reload
                                         them (default 5; 0 = only on SIGHUP; SIGHUP reloads
                                         at once)
  --help                                 this text

Exit codes: 0 every call answered 2xx; 1 a call did not, or no token; 2 bad flags or files.
";

/// Connecting to either server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One exchange with either server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most body characters printed per call.
const MAX_BODY_CHARS: usize = 1000;

/// What the flags say, files read.
struct Run {
    tokens: TokenSource,
    /// Sends each call with a reqwest client made for its token's identity.
    client: ReqwestClient,
    identity: ReloadableClientIdentity,
    reload_interval: Duration,
    method: reqwest::Method,
    url: reqwest::Url,
    count: u64,
    interval: Duration,
}

fn main() -> ExitCode {
    let run = match configure(std::env::args_os().skip(1)) {
        Ok(Some(run)) => run,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("client: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("client: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if runtime.block_on(call(run)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reads the flags and the files; `None` for `--help`.
fn configure(args: impl IntoIterator<Item = OsString>) -> Result<Option<Run>, String> {
    let Some(flags) = cli::parse(
        args,
        &[
            "issuer",
            "token-endpoint",
            "client-id",
            "cert",
            "key",
            "ca",
            "scope",
            "resource",
            "dpop-key",
            "url",
            "method",
            "count",
            "interval",
            "reload-interval",
        ],
        &["dpop"],
    )?
    else {
        return Ok(None);
    };
    let issuer = flags.once("issuer")?;
    let token_endpoint = flags.once("token-endpoint")?;
    let client_id = flags.required("client-id")?;
    let cert = flags.required("cert")?;
    let key = flags.required("key")?;
    let url = flags.required("url")?;
    let url = reqwest::Url::parse(&url).map_err(|e| format!("--url {url:?}: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("--url {url}: not an https or http URL"));
    }
    // The resource identifier: the URL without query and fragment (RFC 9728 §1.2).
    let mut resource_url = url.clone();
    resource_url.set_query(None);
    resource_url.set_fragment(None);
    let method = flags.once("method")?.unwrap_or_else(|| "GET".to_owned());
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("--method {method:?}: not an HTTP method"))?;
    let count = match flags.once("count")? {
        None => 1,
        Some(n) => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("--count {n:?}: not a whole number of at least 1"))?,
    };
    let interval = match flags.once("interval")? {
        None => Duration::ZERO,
        Some(s) => s
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("--interval {s:?}: not a number of seconds"))?,
    };
    let reload_interval = match flags.once("reload-interval")? {
        None => Duration::from_secs(5),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("--reload-interval {s:?}: not a number of seconds"))?,
    };
    let dpop = flags.switch("dpop");
    let dpop_key = flags.once("dpop-key")?;
    if dpop_key.is_some() && !dpop {
        return Err("--dpop-key needs --dpop".to_owned());
    }

    let identity = ReloadableClientIdentity::from_pem_files(&cert, &key)
        .map_err(|e| format!("--cert/--key: {e}"))?;
    let roots: Vec<CertificateDer<'static>> = match flags.once("ca")? {
        Some(path) => certbound::tls::load_certs(&path).map_err(|e| format!("--ca: {e}"))?,
        None => Vec::new(),
    };
    let mut tokens = TokenSource::builder(client_id, identity.clone()).timeout(REQUEST_TIMEOUT);
    tokens = match (issuer, token_endpoint) {
        (Some(issuer), None) => tokens.issuer(issuer),
        (None, Some(endpoint)) => tokens.token_endpoint(endpoint),
        (None, None) => tokens.resource_url(resource_url.as_str()),
        (Some(_), Some(_)) => {
            return Err("give at most one of --issuer and --token-endpoint".to_owned())
        }
    };
    for root in &roots {
        tokens = tokens.trust_root(root.clone());
    }
    if !roots.is_empty() {
        tokens = tokens.only_trust_roots();
    }
    if let Some(scope) = flags.once("scope")? {
        tokens = tokens.scope(scope);
    }
    for resource in flags.all("resource") {
        tokens = tokens.resource(resource);
    }
    if dpop {
        let key = match dpop_key {
            Some(path) => {
                let pem = std::fs::read(&path).map_err(|e| format!("--dpop-key {path}: {e}"))?;
                DpopKey::from_pkcs8_pem(&pem).map_err(|e| format!("--dpop-key {path}: {e}"))?
            }
            None => DpopKey::generate(Algorithm::ES256).map_err(|e| format!("DPoP key: {e}"))?,
        };
        tokens = tokens.dpop(key);
    }
    let tokens = tokens.build().map_err(|e| e.to_string())?;
    // A client per identity: after a renewal, the new token goes over new connections that
    // present the new certificate.
    let client = ReqwestClient::per_identity(tokens.clone(), move |identity| {
        Ok(identity
            .reqwest_builder(&roots, roots.is_empty())?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // One connection, kept between calls.
            .pool_max_idle_per_host(1)
            .build()?)
    })
    .map_err(|e| format!("HTTP client: {e}"))?;
    Ok(Some(Run {
        tokens,
        client,
        identity,
        reload_interval,
        method,
        url,
        count,
        interval,
    }))
}

/// Makes the calls; `true` when every one answered 2xx.
async fn call(run: Run) -> bool {
    if let Err(e) = run.tokens.token().await {
        println!("no token: {e}");
        return false;
    }
    // Every reload one line on stderr; SIGHUP reloads at once.
    reload::supervise(
        "client",
        vec![("--cert/--key", run.identity.watch(run.reload_interval))],
    );
    let client = &run.client;
    let mut all_ok = true;
    for n in 1..=run.count {
        if n > 1 && !run.interval.is_zero() {
            tokio::time::sleep(run.interval).await;
        }
        let request = match client
            .http()
            .request(run.method.clone(), run.url.clone())
            .build()
        {
            Ok(request) => request,
            Err(e) => {
                println!("{n} error: {}", chain(&e));
                all_ok = false;
                continue;
            }
        };
        match client.execute(request).await {
            Ok(response) => {
                let status = response.status();
                all_ok &= status.is_success();
                let body = match response.text().await {
                    Ok(body) => one_line(&body),
                    Err(e) => format!("(body unreadable: {})", chain(&e)),
                };
                println!("{n} {} {body}", status.as_u16());
            }
            Err(e) => {
                all_ok = false;
                println!("{n} error: {}", chain(e.as_ref()));
            }
        }
    }
    all_ok
}

/// An error and its sources, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// `body` on one line (control characters as spaces), cut to [`MAX_BODY_CHARS`].
fn one_line(body: &str) -> String {
    let mut line: String = body
        .trim()
        .chars()
        .take(MAX_BODY_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.trim().chars().count() > MAX_BODY_CHARS {
        line.push('…');
    }
    line
}
