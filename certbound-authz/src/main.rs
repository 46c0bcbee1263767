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

use clap::{Parser, Subcommand};

mod config;
mod engine;
mod forward_auth;

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
async fn build(file: &Path) -> Result<Built, config::ConfigError> {
    let config = config::load(file)?;
    let issuers = engine::issuers(&config)?;
    let dpop = engine::dpop(&config).await?;
    let engine = engine::Engine::new(&config, issuers.clone(), dpop)?;
    Ok(Built {
        config,
        engine,
        issuers,
    })
}

async fn check(file: &Path) -> ExitCode {
    match build(file).await {
        Ok(_) => {
            println!("{}: valid", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, format!("{}: {e}", file.display())),
    }
}

async fn run(file: &Path) -> ExitCode {
    let Built {
        config,
        engine,
        issuers,
    } = match build(file).await {
        Ok(built) => built,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    // Warm each issuer's keys; one that is down now only gets a warning (its tokens are
    // refused with 503 until its keys can be fetched; the others' keep flowing).
    for issuer in &config.issuers {
        if let Some(validator) = issuers.get(&issuer.issuer) {
            if let Err(e) = validator.prefetch().await {
                eprintln!(
                    "{PROGRAM}: warning: no keys for {} yet ({e}); will retry on demand",
                    issuer.issuer
                );
            }
        }
    }
    let Some(addr) = config.listen_http else {
        // `config::load` requires listen.http while listen.grpc is not implemented.
        return fail(2, format!("{}: listen.http: not set", file.display()));
    };
    let service = match forward_auth::service(&config, engine) {
        Ok(service) => service,
        Err(e) => return fail(2, format!("{}: {e}", file.display())),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, format!("listen.http: cannot listen on {addr}: {e}")),
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => return fail(1, format!("listen.http: {e}")),
    };
    println!("listening on http://{local}");
    let served = certbound::serve_plain(listener, service)
        .with_graceful_shutdown(shutdown())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, format!("serving: {e}")),
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

/// One line on stderr and the exit code.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{PROGRAM}: {message}");
    ExitCode::from(code)
}
