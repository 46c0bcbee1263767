//! What the example servers share for material that changes while they run: the
//! `--reload-interval` and `--crl` flags, and a task that reloads on SIGHUP and reports every
//! reload as one line on stderr: `PROGRAM: reloaded WHAT`, or `PROGRAM: reloading WHAT failed,
//! keeping the previous one: REASON` (the server keeps serving the previous material).

#![allow(dead_code)] // Each example uses a part.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use certbound::dpop::DpopNonces;
use certbound::reload::Watcher;
use certbound::tls::{ReloadableServerTls, ServerTls};

use super::cli;

/// The flags of this module, each taking a value.
pub(crate) const VALUE_FLAGS: [&str; 2] = ["reload-interval", "crl"];

/// How often the files are checked when `--reload-interval` is not given.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// `--reload-interval` and `--crl`.
#[derive(Debug)]
pub(crate) struct ReloadFlags {
    /// Zero: only on SIGHUP.
    pub(crate) interval: Duration,
    pub(crate) crls: Vec<PathBuf>,
}

impl ReloadFlags {
    /// Reads the flags. `client_ca`: whether `--client-ca` was given (CRLs need it).
    pub(crate) fn from_flags(flags: &cli::Flags, client_ca: bool) -> Result<Self, String> {
        let interval = match flags.once("reload-interval")? {
            None => DEFAULT_INTERVAL,
            Some(value) => value.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                format!("--reload-interval {value:?}: not a whole number of seconds")
            })?,
        };
        let crls: Vec<PathBuf> = flags.all("crl").into_iter().map(PathBuf::from).collect();
        if !crls.is_empty() && !client_ca {
            return Err(
                "--crl needs --client-ca (CRLs are checked along the verified chain)".into(),
            );
        }
        Ok(Self { interval, crls })
    }

    /// `tls` with the `--crl` files.
    pub(crate) fn with_crls(&self, mut tls: ServerTls) -> Result<ServerTls, String> {
        for path in &self.crls {
            tls = tls.crl_file(path).map_err(|e| format!("--crl: {e}"))?;
        }
        Ok(tls)
    }

    /// Builds `tls` into a handle whose files a watcher re-reads.
    pub(crate) fn reloadable(&self, tls: ServerTls) -> Result<ReloadableServerTls, String> {
        ReloadableServerTls::new(self.with_crls(tls)?).map_err(|e| e.to_string())
    }
}

/// The watchers of a resource server's reloadable material, each named for the stderr lines:
/// the server TLS (`--tls-cert`, `--tls-key`, `--client-ca`, `--crl`) and the DPoP nonce key
/// (`--dpop-nonce-key-file`).
pub(crate) fn watchers(
    interval: Duration,
    tls: Option<&ReloadableServerTls>,
    nonce_key_file: Option<&DpopNonces>,
) -> Vec<(&'static str, Watcher)> {
    let mut watchers = Vec::new();
    if let Some(tls) = tls {
        watchers.push(("server TLS", tls.watch(interval)));
    }
    if let Some(nonces) = nonce_key_file {
        watchers.push(("--dpop-nonce-key-file", nonces.watch(interval)));
    }
    watchers
}

/// An error and its sources on one line.
fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        // Display often quotes the source already.
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = e.source();
    }
    line.replace('\n', " ")
}

/// Keeps `watchers` running for the life of the process: SIGHUP reloads every one at once, and
/// each reload writes one line on stderr. Call before printing the start line: SIGHUP is taken
/// over from then on (its default action would end the process). Nothing to watch: SIGHUP keeps
/// its default action.
pub(crate) fn supervise(program: &'static str, watchers: Vec<(&'static str, Watcher)>) {
    if watchers.is_empty() {
        return;
    }
    for (what, watcher) in &watchers {
        let what = *what;
        let mut events = watcher.events();
        tokio::spawn(async move {
            // Ends when the watcher does.
            while events.changed().await.is_ok() {
                let outcome = events.borrow_and_update().outcome.clone();
                match outcome {
                    Ok(()) => eprintln!("{program}: reloaded {what}"),
                    Err(e) => eprintln!(
                        "{program}: reloading {what} failed, keeping the previous one: {}",
                        one_line(&*e)
                    ),
                }
            }
        });
    }
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        #[cfg(unix)]
        if let Ok(mut hangup) = hangup {
            while hangup.recv().await.is_some() {
                for (_, watcher) in &watchers {
                    watcher.reload_now();
                }
            }
        }
        // Without SIGHUP: the watchers still run on their interval.
        std::future::pending::<()>().await;
        drop(watchers);
    });
}
