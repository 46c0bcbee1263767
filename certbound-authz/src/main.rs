//! `certbound-authz`: sender-constrained access tokens (RFC 8705 certificate-bound, RFC 9449
//! DPoP-bound) for APIs in any language, as the external authorization service of nginx
//! (`auth_request`), Traefik (`ForwardAuth`), Caddy (`forward_auth`) and Envoy / Istio (ext_authz
//! over gRPC or HTTP). Its decisions are certbound's own layers'.
//!
//! ```text
//! certbound-authz --config FILE        run; exit 2 with one line on stderr when the file is invalid
//! certbound-authz check-config FILE    exit 0 when valid, 2 with one line naming the bad key when not
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use certbound::dpop::MemoryReplayStore;

use clap::{Parser, Subcommand};

mod config;
mod engine;
mod ext_authz;
mod forward_auth;
mod observe;
mod ops;

const PROGRAM: &str = "certbound-authz";

#[derive(Debug, Parser)]
#[command(
    name = PROGRAM,
    version,
    about = "Enforces certificate-bound and DPoP-bound access tokens for nginx, Traefik, Caddy and Envoy",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE", required = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks FILE (every path it names is read too): exit 0 when valid, 2 when not.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    match (cli.command, cli.config) {
        (Some(Command::CheckConfig { file }), _) => runtime.block_on(check(&file)),
        (None, Some(file)) => runtime.block_on(run(&file)),
        // `required = true` unless a subcommand is given.
        (None, None) => fail(2, "give --config FILE or check-config FILE"),
    }
}

/// Everything `run` builds before it takes its port.
struct Built {
    config: config::Config,
    engine: engine::Engine,
    issuers: certbound::Issuers,
}

/// Loads `file` and builds the engine: every check `run` does before serving.
/// `memory`: the process's in-memory replay store (see [`engine::dpop`]).
async fn build(file: &Path, memory: &Arc<MemoryReplayStore>) -> Result<Built, config::ConfigError> {
    assemble(config::load(file)?, memory).await
}

/// Builds the engine of a loaded `config`.
async fn assemble(
    config: config::Config,
    memory: &Arc<MemoryReplayStore>,
) -> Result<Built, config::ConfigError> {
    let issuers = engine::issuers(&config)?;
    let dpop = engine::dpop(&config, memory).await?;
    let engine = engine::Engine::new(&config, issuers.clone(), dpop)?;
    Ok(Built {
        config,
        engine,
        issuers,
    })
}

async fn check(file: &Path) -> ExitCode {
    match build(file, &Arc::new(MemoryReplayStore::new())).await {
        Ok(_) => {
            println!("{}: valid", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, format!("{}: {e}", file.display())),
    }
}

async fn run(file: &Path) -> ExitCode {
    let memory = Arc::new(MemoryReplayStore::new());
    let config = match config::load(file) {
        Ok(config) => config,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    observe::set_json(config.log_format == config::LogFormat::Json);
    // The recorder before the engine: the library records from the first check on.
    let recorder = match config.listen_metrics {
        None => None,
        Some(addr) => match ops::install() {
            Ok(handle) => Some((addr, handle)),
            Err(e) => return fail(1, format!("listen.metrics: {e}")),
        },
    };
    observe::describe();
    let Built {
        config,
        engine,
        issuers,
    } = match assemble(config, &memory).await {
        Ok(built) => built,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    // Warm each issuer's keys; one that is down now only gets a warning (its tokens are
    // refused with 503 until its keys can be fetched; the others' keep flowing).
    for issuer in &config.issuers {
        if let Some(validator) = issuers.get(&issuer.issuer) {
            if let Err(e) = validator.prefetch().await {
                let error = e.to_string();
                observe::event(
                    "warning",
                    &format!(
                        "warning: no keys for {} yet ({error}); will retry on demand",
                        issuer.issuer
                    ),
                    &[
                        ("message", "no keys yet; will retry on demand"),
                        ("issuer", &issuer.issuer),
                        ("error", &error),
                    ],
                );
            }
        }
    }
    // The engine in use, for /readyz (a reload replaces it with the frontends).
    let engines = Arc::new(ArcSwap::from_pointee(engine.clone()));
    let frontends = match Frontends::new(&config, engine) {
        Ok(frontends) => frontends,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    let http = match bind("listen.http", config.listen_http).await {
        Ok(bound) => bound,
        Err(e) => return fail(1, e),
    };
    let grpc = match bind("listen.grpc", config.listen_grpc).await {
        Ok(bound) => bound,
        Err(e) => return fail(1, e),
    };
    let metrics = match recorder {
        None => None,
        Some((addr, handle)) => match bind("listen.metrics", Some(addr)).await {
            Ok(bound) => bound.map(|bound| (bound, handle)),
            Err(e) => return fail(1, e),
        },
    };
    let current = Current {
        http: frontends
            .http
            .map(|stack| Arc::new(ArcSwap::from_pointee(stack))),
        grpc: frontends
            .grpc
            .map(|grpc| Arc::new(ArcSwap::from_pointee(grpc))),
    };
    // SIGHUP is watched before the first line: from then on it reloads, never kills.
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => {
            tokio::spawn(reload_on_sighup(
                hangups,
                file.to_owned(),
                (
                    config.listen_http,
                    config.listen_grpc,
                    config.listen_metrics,
                ),
                current.clone(),
                Arc::clone(&engines),
                memory,
            ));
        }
        Err(e) => return fail(1, format!("cannot watch SIGHUP: {e}")),
    }
    // The metrics listener's line first: `listening on` lines are the last on stdout.
    if let Some(((_, local), _)) = &metrics {
        println!("metrics on http://{local}");
    }
    for (scheme, bound) in [("http", &http), ("grpc", &grpc)] {
        if let Some((_, local)) = bound {
            println!("listening on {scheme}://{local}");
        }
    }
    // Ctrl-C, SIGTERM, or a listener that fails: every listener stops taking connections and
    // finishes the checks in flight.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            shutdown().await;
            stop.send_replace(true);
        }
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let serve_http = async {
        let (Some((listener, _)), Some(current)) = (http, current.http) else {
            return Ok(());
        };
        let served = certbound::serve_plain(listener, forward_auth::service(current))
            .with_graceful_shutdown(until_stopped(stopped.clone()))
            .await
            .map_err(|e| format!("listen.http: {e}"));
        stop.send_replace(true);
        served
    };
    let serve_grpc = async {
        let (Some((listener, _)), Some(current)) = (grpc, current.grpc) else {
            return Ok(());
        };
        let served = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                ext_authz::server(current),
                tonic::transport::server::TcpIncoming::from(listener),
                until_stopped(stopped.clone()),
            )
            .await
            .map_err(|e| format!("listen.grpc: {e}"));
        stop.send_replace(true);
        served
    };
    let serve_metrics = async {
        let Some(((listener, _), handle)) = metrics else {
            return Ok(());
        };
        ops::upkeep(handle.clone());
        let served = certbound::serve_plain(listener, ops::service(handle, engines))
            .with_graceful_shutdown(until_stopped(stopped.clone()))
            .await
            .map_err(|e| format!("listen.metrics: {e}"));
        stop.send_replace(true);
        served
    };
    match tokio::join!(serve_http, serve_grpc, serve_metrics) {
        (Ok(()), Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => fail(1, format!("serving: {e}")),
    }
}

/// The listener of `key` at `addr` when set, with its local address.
async fn bind(
    key: &str,
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<(tokio::net::TcpListener, std::net::SocketAddr)>, String> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("{key}: {e}"))?;
    Ok(Some((listener, local)))
}

/// One configuration's frontends, for the listeners the process has.
struct Frontends {
    http: Option<forward_auth::Stack>,
    grpc: Option<ext_authz::Frontend>,
}

impl Frontends {
    fn new(config: &config::Config, engine: engine::Engine) -> Result<Self, config::ConfigError> {
        let http = match config.listen_http {
            Some(_) => Some(forward_auth::stack(config, engine.clone())?),
            None => None,
        };
        let grpc = config
            .listen_grpc
            .map(|_| ext_authz::Frontend::new(config, engine));
        Ok(Self { http, grpc })
    }
}

/// What each listener's next request is handled with.
#[derive(Clone)]
struct Current {
    http: Option<Arc<ArcSwap<forward_auth::Stack>>>,
    grpc: Option<Arc<ArcSwap<ext_authz::Frontend>>>,
}

/// Reloads the configuration file on each SIGHUP: a file that fails any check of `--config`
/// keeps the previous configuration. One line on stderr per reload, in the new file's
/// `[log] format`. `listen.*` is read at start only: `listening` holds the `listen.http`,
/// `listen.grpc` and `listen.metrics` of the start; a file that adds or removes a check
/// listener is refused.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    file: PathBuf,
    listening: Listening,
    current: Current,
    engines: Arc<ArcSwap<engine::Engine>>,
    memory: Arc<MemoryReplayStore>,
) {
    while hangups.recv().await.is_some() {
        let reloaded = match build(&file, &memory).await {
            Ok(built) => {
                let config = &built.config;
                let now = (
                    config.listen_http,
                    config.listen_grpc,
                    config.listen_metrics,
                );
                if now.0.is_some() != listening.0.is_some()
                    || now.1.is_some() != listening.1.is_some()
                {
                    Err(config::ConfigError::new(
                        "listen",
                        "a listener is added or removed only on restart",
                    ))
                } else {
                    Frontends::new(config, built.engine.clone())
                        .map(|frontends| (now, config.log_format, built.engine, frontends))
                }
            }
            Err(e) => Err(e),
        };
        let name = file.display().to_string();
        match reloaded {
            Ok((now, log_format, engine, frontends)) => {
                if let (Some(current), Some(stack)) = (&current.http, frontends.http) {
                    current.store(Arc::new(stack));
                }
                if let (Some(current), Some(grpc)) = (&current.grpc, frontends.grpc) {
                    current.store(Arc::new(grpc));
                }
                engines.store(Arc::new(engine));
                observe::set_json(log_format == config::LogFormat::Json);
                for (key, changed) in [
                    ("listen.http", now.0 != listening.0),
                    ("listen.grpc", now.1 != listening.1),
                    ("listen.metrics", now.2 != listening.2),
                ] {
                    if changed {
                        observe::event(
                            "warning",
                            &format!("warning: {key} changes only on restart"),
                            &[("message", "changes only on restart"), ("key", key)],
                        );
                    }
                }
                observe::event("reloaded", &format!("reloaded {name}"), &[("file", &name)]);
            }
            Err(e) => {
                let error = e.to_string();
                observe::event(
                    "reload_failed",
                    &format!("reloading {name} failed, keeping the previous one: {error}"),
                    &[("file", &name), ("error", &error)],
                );
            }
        }
    }
}

/// The `listen.http`, `listen.grpc` and `listen.metrics` addresses of the start.
type Listening = (
    Option<std::net::SocketAddr>,
    Option<std::net::SocketAddr>,
    Option<std::net::SocketAddr>,
);

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// One line on stderr (JSON once the configuration asked for it) and the exit code.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    let message = message.to_string();
    observe::event("failed", &message, &[("error", &message)]);
    ExitCode::from(code)
}
