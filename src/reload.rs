//! Reloading long-lived material from files without a restart: the [`Watcher`] that the
//! reloadable handles return ([`ReloadableServerTls::watch`](crate::tls::ReloadableServerTls::watch)
//! and the others).
//!
//! A watcher reads its files every `interval` and compares their contents with what it read the
//! last time; when they differ it tries the reload. Contents, not modification times: an atomic
//! rename, a Kubernetes `..data` symlink swap (cert-manager, projected secrets), a file rewritten
//! within the same second with the same size, and a file that disappears all count as changes,
//! with nothing platform-specific.
//!
//! Why polling rather than file notifications (inotify and its crates): notifications do not
//! follow a symlink swap of a parent directory (the Kubernetes case), miss edits on network and
//! overlay file systems, and need re-arming after every rename; reading a few kilobytes of PEM
//! every few seconds costs nothing that shows, and works the same everywhere. So this is a few
//! lines of tokio instead of a dependency.
//!
//! A reload that fails (an unparsable file, a key that does not match its certificate, an empty
//! CA set: half-written files among them) keeps the material in use and is reported through
//! [`Watcher::events`], a `tracing` warning and the `certbound_tls_reloads_total{result="failed"}`
//! metric for TLS; the next change of the files is tried again. [`Watcher::reload_now`] reloads at
//! once, changed or not (wire it to `SIGHUP`).
//!
//! A watcher stops when it is dropped (or [`stop`](Watcher::stop)ped), and by itself when the
//! material it reloads is no longer used by anyone (the server that held it has stopped and the
//! application dropped its handle).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::error::ConfigError;

/// The outcome of one reload attempt.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    /// How many reloads this watcher has attempted, this one included (`0` before the first).
    pub attempt: u64,
    /// `Ok` when the new material is in use; the reason otherwise (the old material stays).
    pub outcome: Result<(), Arc<ConfigError>>,
}

/// A task that reloads material when its files change; see the [module docs](self). Dropping it
/// stops the task.
#[must_use = "the watcher stops when dropped"]
pub struct Watcher {
    trigger: Arc<Notify>,
    events: watch::Receiver<ReloadEvent>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("last", &*self.events.borrow())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Reloads at once, whether the files changed or not (for `SIGHUP`). The outcome arrives on
    /// [`events`](Self::events).
    pub fn reload_now(&self) {
        self.trigger.notify_one();
    }

    /// The outcomes of the reloads: the latest one, and a way to wait for the next
    /// ([`watch::Receiver::changed`]).
    pub fn events(&self) -> watch::Receiver<ReloadEvent> {
        self.events.clone()
    }

    /// Stops the task (as dropping the watcher does).
    pub fn stop(self) {}
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a watcher reloads: the files it reads and how to take them.
pub(crate) trait Reload: Send + Sync + 'static {
    /// The files whose contents decide whether anything changed.
    fn paths(&self) -> Vec<PathBuf>;
    /// Reads the files and puts the new material in use, or leaves the old one and says why.
    fn reload(&self) -> Result<(), ConfigError>;
    /// What to name in log lines ("server TLS", "DPoP nonce key").
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // Only logs name it.
    fn what(&self) -> &'static str;
}

/// Starts a watcher of `target`, which it holds weakly: the task ends once nobody else holds it.
/// `interval` zero: only on [`Watcher::reload_now`]. Must be called within a tokio runtime.
pub(crate) fn spawn<R: Reload>(target: &Arc<R>, interval: Duration) -> Watcher {
    let trigger = Arc::new(Notify::new());
    let (send, events) = watch::channel(ReloadEvent {
        attempt: 0,
        outcome: Ok(()),
    });
    let weak = Arc::downgrade(target);
    let seen = fingerprint(&target.paths());
    let task = tokio::spawn(run(weak, interval, Arc::clone(&trigger), send, seen));
    Watcher {
        trigger,
        events,
        task,
    }
}

async fn run<R: Reload>(
    target: Weak<R>,
    interval: Duration,
    trigger: Arc<Notify>,
    events: watch::Sender<ReloadEvent>,
    mut seen: [u8; 32],
) {
    let mut attempt = 0;
    loop {
        let forced = tokio::select! {
            () = trigger.notified() => true,
            () = tick(interval) => false,
        };
        let Some(target) = target.upgrade() else {
            return;
        };
        let now = fingerprint(&target.paths());
        if !forced && now == seen {
            continue;
        }
        // Whatever the outcome, these contents were tried: a refused file is tried again only
        // once it changes (or on `reload_now`).
        seen = now;
        attempt += 1;
        let outcome = target.reload().map_err(Arc::new);
        match &outcome {
            Ok(()) => {
                #[cfg(feature = "tracing")]
                tracing::info!(target: "certbound", what = target.what(), "reloaded");
            }
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "certbound", what = target.what(), error = %_e, "reload refused; the material in use is kept");
            }
        }
        events.send_replace(ReloadEvent { attempt, outcome });
    }
}

async fn tick(interval: Duration) {
    if interval.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(interval).await;
}

/// A digest of the files' contents, in order (through symlinks; a file that cannot be read
/// counts by its error kind, so that its return is a change).
fn fingerprint(paths: &[PathBuf]) -> [u8; 32] {
    let mut digest = Sha256::new();
    for path in paths {
        match std::fs::read(path) {
            Ok(bytes) => {
                digest.update(b"ok");
                digest.update((bytes.len() as u64).to_be_bytes());
                digest.update(&bytes);
            }
            Err(e) => {
                digest.update(b"err");
                digest.update(format!("{:?}", e.kind()).as_bytes());
            }
        }
    }
    digest.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    struct Counted {
        path: PathBuf,
        taken: Mutex<Vec<String>>,
        tries: AtomicUsize,
    }

    impl Reload for Counted {
        fn paths(&self) -> Vec<PathBuf> {
            vec![self.path.clone()]
        }
        fn reload(&self) -> Result<(), ConfigError> {
            self.tries.fetch_add(1, Ordering::SeqCst);
            let text = std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Io {
                path: self.path.clone(),
                source,
            })?;
            if text.starts_with("bad") {
                return Err(ConfigError::invalid("test", "bad contents"));
            }
            self.taken.lock().unwrap().push(text);
            Ok(())
        }
        fn what(&self) -> &'static str {
            "test"
        }
    }

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("certbound-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    async fn next(events: &mut watch::Receiver<ReloadEvent>) -> ReloadEvent {
        events.changed().await.unwrap();
        events.borrow_and_update().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_file_is_reloaded_and_a_refused_one_is_not_tried_again_until_it_changes() {
        let dir = dir("changes");
        let path = dir.join("material");
        std::fs::write(&path, "one").unwrap();
        let target = Arc::new(Counted {
            path: path.clone(),
            taken: Mutex::default(),
            tries: AtomicUsize::new(0),
        });
        let watcher = spawn(&target, Duration::from_secs(5));
        let mut events = watcher.events();

        // Unchanged: nothing tried.
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(target.tries.load(Ordering::SeqCst), 0);

        std::fs::write(&path, "bad half-written").unwrap();
        let event = next(&mut events).await;
        assert!(event.outcome.is_err());
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(
            target.tries.load(Ordering::SeqCst),
            1,
            "same bad contents tried again"
        );

        // Renamed into place atomically.
        std::fs::write(dir.join("tmp"), "two").unwrap();
        std::fs::rename(dir.join("tmp"), &path).unwrap();
        let event = next(&mut events).await;
        assert!(event.outcome.is_ok());
        assert_eq!(event.attempt, 2);
        assert_eq!(*target.taken.lock().unwrap(), ["two"]);
    }

    #[tokio::test(start_paused = true)]
    async fn reload_now_reloads_unchanged_files_and_interval_zero_waits_for_it() {
        let dir = dir("now");
        let path = dir.join("material");
        std::fs::write(&path, "one").unwrap();
        let target = Arc::new(Counted {
            path,
            taken: Mutex::default(),
            tries: AtomicUsize::new(0),
        });
        let watcher = spawn(&target, Duration::ZERO);
        let mut events = watcher.events();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(target.tries.load(Ordering::SeqCst), 0);
        watcher.reload_now();
        assert!(next(&mut events).await.outcome.is_ok());
        assert_eq!(*target.taken.lock().unwrap(), ["one"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_ends_when_nobody_holds_the_material() {
        let dir = dir("ends");
        let path = dir.join("material");
        std::fs::write(&path, "one").unwrap();
        let target = Arc::new(Counted {
            path,
            taken: Mutex::default(),
            tries: AtomicUsize::new(0),
        });
        let watcher = spawn(&target, Duration::from_secs(1));
        let weak = Arc::downgrade(&target);
        drop(target);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(weak.upgrade().is_none());
        assert!(watcher.task.is_finished());
    }
}
