//! What the example servers share: their flag syntax, their exit codes, and running a server
//! until Ctrl-C or SIGTERM with a bounded grace period.
//!
//! Flags are `--flag value` or `--flag=value`; `--help` / `-h` anywhere asks for the usage.
//! Exit codes: 0 after a clean shutdown, 2 for bad flags or unreadable files (one line on
//! stderr), 1 for anything that fails later.

#![allow(dead_code)] // Each example uses a part.

use std::ffi::OsString;
use std::fmt::Display;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::oneshot;

/// How long open connections get to finish after Ctrl-C / SIGTERM.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Parsed flags, checked against the names the program knows.
#[derive(Debug)]
pub(crate) struct Flags {
    values: Vec<(String, String)>,
    switches: Vec<String>,
}

/// Parses `args` (without the program name): `Ok(None)` for `--help`. Only `value_flags` (which
/// take a non-empty value) and `switches` (which take none) are accepted.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    value_flags: &[&str],
    switches: &[&str],
) -> Result<Option<Flags>, String> {
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
    let mut flags = Flags {
        values: Vec::new(),
        switches: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?} (see --help)"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        if switches.contains(&name) {
            if inline.is_some() {
                return Err(format!("--{name} takes no value"));
            }
            flags.switches.push(name.to_owned());
            continue;
        }
        if !value_flags.contains(&name) {
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
        flags.values.push((name.to_owned(), value));
    }
    Ok(Some(flags))
}

impl Flags {
    /// The value of a flag that may be given once.
    pub(crate) fn once(&self, name: &str) -> Result<Option<String>, String> {
        let mut values = self.all(name).into_iter();
        match (values.next(), values.next()) {
            (value, None) => Ok(value),
            (Some(_), Some(_)) => Err(format!("--{name} given more than once")),
            (None, Some(_)) => unreachable!("a second value without a first"),
        }
    }

    /// The value of a flag that must be given once.
    pub(crate) fn required(&self, name: &str) -> Result<String, String> {
        self.once(name)?
            .ok_or_else(|| format!("missing --{name} (see --help)"))
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether a switch was given.
    pub(crate) fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// `--listen` (or `default`) as given, and the addresses it resolves to.
    pub(crate) fn listen(&self, default: &str) -> Result<(String, Vec<SocketAddr>), String> {
        let arg = self.once("listen")?.unwrap_or_else(|| default.to_owned());
        let addrs = arg
            .to_socket_addrs()
            .map_err(|e| format!("--listen {arg}: {e}"))?
            .collect();
        Ok((arg, addrs))
    }
}

/// One line on stderr, prefixed with the program's name, and the exit code.
pub(crate) fn fail(program: &str, code: u8, message: impl Display) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::from(code)
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub(crate) async fn shutdown_signal() {
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

/// Runs `server` until it fails (exit 1) or Ctrl-C / SIGTERM arrives; then fires `stop` (the
/// server's graceful-shutdown signal) and waits at most [`SHUTDOWN_GRACE`] for it to finish.
pub(crate) async fn run_until_signal<F, E>(
    program: &str,
    server: F,
    stop: oneshot::Sender<()>,
) -> ExitCode
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let mut server = tokio::spawn(server);
    tokio::select! {
        ended = &mut server => {
            // The server only ends by itself on an error.
            return match ended {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => fail(program, 1, format!("server error: {e}")),
                Err(e) => fail(program, 1, format!("server task failed: {e}")),
            };
        }
        () = shutdown_signal() => {}
    }
    eprintln!("{program}: shutting down");
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) => fail(program, 1, format!("server error: {e}")),
        Ok(Err(e)) => fail(program, 1, format!("server task failed: {e}")),
        Err(_) => fail(
            program,
            1,
            format!("connections still open after {SHUTDOWN_GRACE:?}; exiting"),
        ),
    }
}
