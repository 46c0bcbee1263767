//! Reloading an example server's files while it serves: `--reload-interval SECONDS` (how often
//! the watchers read their files; 0 = only on SIGHUP), SIGHUP reloading everything at once, and
//! one stderr line per reload (`reloaded --clients`, or why it was refused and that the
//! material in use is kept). A refused reload never stops the server.

#![allow(dead_code)] // Each example uses a part.

use std::error::Error;
use std::time::Duration;

use certbound::reload::Watcher;

use crate::cli::Flags;

/// The default of `--reload-interval`, in seconds.
pub(crate) const DEFAULT_INTERVAL_SECS: u64 = 5;

/// `--reload-interval` (whole seconds, default [`DEFAULT_INTERVAL_SECS`]; 0 = only on SIGHUP).
pub(crate) fn interval(flags: &Flags) -> Result<Duration, String> {
    match flags.once("reload-interval")? {
        None => Ok(Duration::from_secs(DEFAULT_INTERVAL_SECS)),
        Some(value) => value
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("--reload-interval {value:?}: not a whole number of seconds")),
    }
}

/// An error and its sources on one line.
fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        line.push_str(": ");
        line.push_str(&e.to_string());
        source = e.source();
    }
    line.replace('\n', " ")
}

/// Reports the outcome of every reload of `watchers` (each named by its flags, as operators
/// know it: `"--clients"`) on stderr, and reloads them all at once on SIGHUP. The watchers live
/// as long as the tasks, that is until the process ends. Call within the tokio runtime.
pub(crate) fn supervise(program: &'static str, watchers: Vec<(&'static str, Watcher)>) {
    for (what, watcher) in &watchers {
        let what = *what;
        let mut events = watcher.events();
        tokio::spawn(async move {
            while events.changed().await.is_ok() {
                let event = events.borrow_and_update().clone();
                match event.outcome {
                    Ok(()) => eprintln!("{program}: reloaded {what}"),
                    Err(e) => eprintln!(
                        "{program}: reload of {what} refused, keeping what is in use: {}",
                        one_line(&*e)
                    ),
                }
            }
        });
    }
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut hangup) = signal(SignalKind::hangup()) {
                while hangup.recv().await.is_some() {
                    for (_, watcher) in &watchers {
                        watcher.reload_now();
                    }
                }
            }
        }
        // No SIGHUP here: keep the watchers until the process ends.
        std::future::pending::<()>().await;
        drop(watchers);
    });
}
