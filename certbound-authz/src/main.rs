//! `certbound-authz`: sender-constrained access tokens (RFC 8705 certificate-bound, RFC 9449
//! DPoP-bound) for APIs in any language, as the external authorization service of nginx
//! (`auth_request`), Traefik (`ForwardAuth`), Caddy (`forward_auth`) and Envoy (HTTP
//! ext_authz). Its decisions are certbound's own layers'.
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
mod forward_auth;
// Parts are used by the gRPC frontend, which lands next.
#[allow(dead_code)]
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
    let Some(addr) = config.listen_http else {
        // `config::load` requires listen.http while listen.grpc is not implemented.
        return fail(2, format!("{}: listen.http: not set", file.display()));
    };
    // The engine in use, for /readyz (a reload replaces it with the stack).
    let engines = Arc::new(ArcSwap::from_pointee(engine.clone()));
    let stack = match forward_auth::stack(&config, engine) {
        Ok(stack) => stack,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    let current = Arc::new(ArcSwap::from_pointee(stack));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, format!("listen.http: cannot listen on {addr}: {e}")),
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => return fail(1, format!("listen.http: {e}")),
    };
    let metrics = match recorder {
        None => None,
        Some((addr, handle)) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some((listener, handle)),
            Err(e) => return fail(1, format!("listen.metrics: cannot listen on {addr}: {e}")),
        },
    };
    // SIGHUP is watched before the first line: from then on it reloads, never kills.
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => {
            tokio::spawn(reload_on_sighup(
                hangups,
                file.to_owned(),
                (addr, config.listen_metrics),
                Arc::clone(&current),
                Arc::clone(&engines),
                memory,
            ));
        }
        Err(e) => return fail(1, format!("cannot watch SIGHUP: {e}")),
    }
    // One signal ends both listeners: the check listener's shutdown tells the metrics one.
    let (stopping, stop) = tokio::sync::watch::channel(());
    // The metrics listener's line first: `listening on` is the last line on stdout.
    let metrics = match metrics {
        None => None,
        Some((listener, handle)) => {
            match listener.local_addr() {
                Ok(local) => println!("metrics on http://{local}"),
                Err(e) => return fail(1, format!("listen.metrics: {e}")),
            }
            ops::upkeep(handle.clone());
            let mut stop = stop;
            let served = certbound::serve_plain(listener, ops::service(handle, engines))
                .with_graceful_shutdown(async move {
                    // A change, or the sender dropped: the check listener stopped.
                    let _ = stop.changed().await;
                });
            Some(tokio::spawn(async move { served.await }))
        }
    };
    println!("listening on http://{local}");
    let served = certbound::serve_plain(listener, forward_auth::service(current))
        .with_graceful_shutdown(async move {
            shutdown().await;
            stopping.send_replace(());
        })
        .await;
    if let Err(e) = served {
        return fail(1, format!("serving: {e}"));
    }
    // Wait for the metrics listener's connections to finish too.
    if let Some(metrics) = metrics {
        match metrics.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return fail(1, format!("serving listen.metrics: {e}")),
            Err(e) => return fail(1, format!("serving listen.metrics: {e}")),
        }
    }
    ExitCode::SUCCESS
}

/// Reloads the configuration file on each SIGHUP: a file that fails any check of `--config`
/// keeps the previous configuration. One line on stderr per reload, in the new file's
/// `[log] format`. `listen.*` is read at start only.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    file: PathBuf,
    (addr, metrics): (std::net::SocketAddr, Option<std::net::SocketAddr>),
    current: Arc<ArcSwap<forward_auth::Stack>>,
    engines: Arc<ArcSwap<engine::Engine>>,
    memory: Arc<MemoryReplayStore>,
) {
    while hangups.recv().await.is_some() {
        let reloaded = match build(&file, &memory).await {
            Ok(built) => forward_auth::stack(&built.config, built.engine.clone())
                .map(|stack| (built.config, built.engine, stack)),
            Err(e) => Err(e),
        };
        let name = file.display().to_string();
        match reloaded {
            Ok((config, engine, stack)) => {
                current.store(Arc::new(stack));
                engines.store(Arc::new(engine));
                observe::set_json(config.log_format == config::LogFormat::Json);
                for (key, changed) in [
                    ("listen.http", config.listen_http != Some(addr)),
                    ("listen.metrics", config.listen_metrics != metrics),
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
