//! What the example servers share for material that changes while they run: the
//! `--reload-interval` and `--crl` flags, and a task that reloads on SIGHUP and reports each
//! failed reload as one line on stderr (the server keeps serving the previous material).

#![allow(dead_code)] // Each example uses a part.

use std::path::PathBuf;
use std::time::Duration;

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

/// Keeps `watchers` running for the life of the process: SIGHUP reloads every one at once, and
/// each failed reload writes one line on stderr, `PROGRAM: reloading WHAT failed, still serving
/// the previous one: REASON`. Call before printing the start line: SIGHUP is taken over from then
/// on (its default action would end the process).
pub(crate) fn supervise(program: &'static str, watchers: Vec<(&'static str, Watcher)>) {
    for (what, watcher) in &watchers {
        let what = *what;
        let mut events = watcher.events();
        tokio::spawn(async move {
            // Ends when the watcher does.
            while events.changed().await.is_ok() {
                let outcome = events.borrow_and_update().outcome.clone();
                if let Err(e) = outcome {
                    eprintln!(
                        "{program}: reloading {what} failed, still serving the previous one: {e}"
                    );
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
