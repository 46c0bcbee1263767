//! The server TLS configuration that can be replaced while serving.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;

use super::ServerTls;
use crate::error::ConfigError;
use crate::metrics;
use crate::reload::{self, Reload, Watcher};

/// A server TLS configuration that can be replaced without a restart: new handshakes use the
/// latest one, connections already open keep the one they started with and are not dropped.
///
/// Cloning is cheap (one `Arc`); every clone is the same handle. Give it to
/// [`serve`](crate::serve) (by value or as a clone) and keep one to
/// [`replace`](Self::replace) the material, or let a [`watch`](Self::watch)er re-read the files
/// it came from.
///
/// A replacement is built first and put in use only if it builds: a refused one (a key that is
/// not the certificate's, an unparsable file, no client CA, an unparsable CRL: see
/// [`ServerTls::build`]) leaves the material in use as it was. So the server never goes without
/// TLS or without its client CAs because of a bad file.
///
/// With the `metrics` feature every replacement counts in
/// `certbound_tls_reloads_total{result="ok"|"failed"}`, and
/// `certbound_tls_certificate_expiry_timestamp_seconds` follows the served certificate.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use certbound::tls::{ReloadableServerTls, ServerTls};
///
/// # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ReloadableServerTls::new(
///     ServerTls::from_pem_files("/etc/tls/tls.crt", "/etc/tls/tls.key")?
///         .client_ca_pem_file("/etc/tls/clients-ca.pem")?
///         .crl_file("/etc/tls/clients.crl")?,
/// )?;
/// // Re-reads the four files when they change (checked every 5 s).
/// let watcher = tls.watch(Duration::from_secs(5));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
/// certbound::serve(listener, tls, app).await?;
/// # drop(watcher); Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReloadableServerTls {
    shared: Arc<Shared>,
}

struct Shared {
    current: ArcSwap<ServerConfig>,
    /// What `current` was built from: what a reload reads again. Held while a replacement is
    /// built, so that replacements happen one at a time.
    source: Mutex<ServerTls>,
}

impl fmt::Debug for ReloadableServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = self
            .shared
            .source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ReloadableServerTls")
            .field("source", &*source)
            .finish_non_exhaustive()
    }
}

impl ReloadableServerTls {
    /// Builds `tls` and puts it in use.
    ///
    /// # Errors
    /// As [`ServerTls::build`].
    pub fn new(tls: ServerTls) -> Result<Self, ConfigError> {
        let config = tls.duplicate().build()?;
        Ok(Self {
            shared: Arc::new(Shared {
                current: ArcSwap::new(config),
                source: Mutex::new(tls),
            }),
        })
    }

    /// Builds `tls` and, if it builds, puts it in use for new handshakes (and as what
    /// [`reload`](Self::reload) and the [`watch`](Self::watch)er read again from now on).
    ///
    /// # Errors
    /// As [`ServerTls::build`]; the material in use is then kept.
    pub fn replace(&self, tls: ServerTls) -> Result<(), ConfigError> {
        let mut source = self.shared.lock();
        let result = tls.duplicate().build();
        metrics::tls_reload(result.is_ok());
        self.shared.current.store(result?);
        *source = tls;
        Ok(())
    }

    /// Reads again the files the configuration in use was read from (certificate chain and key,
    /// client CAs, CRLs; material given in memory stays) and puts the result in use, as a
    /// [`watch`](Self::watch)er does when they change. For `SIGHUP` without a watcher.
    ///
    /// # Errors
    /// A file cannot be read or parsed, or the result does not build (see
    /// [`ServerTls::build`]); the material in use is then kept.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.shared.reload_files()
    }

    /// The configuration new handshakes use now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.shared.current.load_full()
    }

    /// Starts a [`Watcher`] that reads the files every `interval` and [`reload`](Self::reload)s
    /// when their contents changed (an atomic rename and a Kubernetes `..data` symlink swap
    /// included); `Duration::ZERO` checks only on [`Watcher::reload_now`]. Outcomes arrive on
    /// [`Watcher::events`]; a refused reload is also logged (feature `tracing`) and counted
    /// (feature `metrics`), and the same contents are not tried again until they change.
    ///
    /// The watcher stops when dropped, or once the server has stopped and every clone of this
    /// handle is dropped. Must be called within a tokio runtime.
    pub fn watch(&self, interval: Duration) -> Watcher {
        reload::spawn(&self.shared, interval)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ServerTls> {
        // A panic while building leaves the source as it was: nothing to repair.
        self.source.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reload_files(&self) -> Result<(), ConfigError> {
        let mut source = self.lock();
        let result = source
            .reread()
            .and_then(|fresh| Ok((fresh.duplicate().build()?, fresh)));
        metrics::tls_reload(result.is_ok());
        let (config, fresh) = result?;
        self.current.store(config);
        *source = fresh;
        Ok(())
    }
}

impl Reload for Shared {
    fn paths(&self) -> Vec<PathBuf> {
        self.lock().paths()
    }

    fn reload(&self) -> Result<(), ConfigError> {
        self.reload_files()
    }

    fn what(&self) -> &'static str {
        "server TLS"
    }
}

/// The TLS configuration [`serve`](crate::serve) takes: a fixed `Arc<ServerConfig>` or a
/// [`ReloadableServerTls`] (by value or by reference), converted with `From`. Each new
/// connection takes the configuration current at its accept (one atomic load).
#[derive(Clone)]
pub struct TlsSource(Source);

#[derive(Clone)]
enum Source {
    Fixed(Arc<ServerConfig>),
    Reloadable(ReloadableServerTls),
}

impl TlsSource {
    /// The configuration a handshake starting now uses.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        match &self.0 {
            Source::Fixed(config) => Arc::clone(config),
            Source::Reloadable(tls) => tls.current(),
        }
    }
}

impl fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Fixed(_) => f.write_str("TlsSource::Fixed"),
            Source::Reloadable(_) => f.write_str("TlsSource::Reloadable"),
        }
    }
}

impl From<Arc<ServerConfig>> for TlsSource {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self(Source::Fixed(config))
    }
}

impl From<ReloadableServerTls> for TlsSource {
    fn from(tls: ReloadableServerTls) -> Self {
        Self(Source::Reloadable(tls))
    }
}

impl From<&ReloadableServerTls> for TlsSource {
    fn from(tls: &ReloadableServerTls) -> Self {
        Self(Source::Reloadable(tls.clone()))
    }
}
