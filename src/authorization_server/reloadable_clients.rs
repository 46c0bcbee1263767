//! [`ReloadableClients`]: a [`StaticClients`] registry that can be replaced while serving,
//! read again from its JSON file when it changes.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::client::RegisteredClient;
use super::registry::{ClientRegistry, RegistryError, StaticClients};
use crate::error::ConfigError;
use crate::reload::{self, Reload, Watcher};

/// Client registrations that can change while serving: a [`StaticClients`] behind an atomic
/// swap. Each lookup sees one whole set of registrations, the old or the new, never a mix.
/// Cheap to clone; the clones share the registrations.
///
/// Read from a JSON file ([`from_json_file`](Self::from_json_file), the format of
/// [`StaticClients::from_json`]), it can [`reload`](Self::reload) the file, or
/// [`watch`](Self::watch) it and reload when it changes. A file that cannot be used (not
/// JSON, a registration that cannot work, a `client_id` given twice; a half-written file
/// among them) is refused and the registrations in use are kept. An empty array is a valid
/// file: no client can authenticate then.
///
/// ```no_run
/// # async fn run() -> Result<(), certbound::ConfigError> {
/// use std::time::Duration;
/// use certbound::authorization_server::{ClientAuthenticator, MtlsClientAuthLayer, ReloadableClients};
///
/// let clients = ReloadableClients::from_json_file("clients.json")?;
/// // Reads the file every 5 s and takes it when it changed; stops when dropped.
/// let watcher = clients.watch(Duration::from_secs(5));
/// let layer = MtlsClientAuthLayer::new(clients, ClientAuthenticator::builder().build()?);
/// # drop((watcher, layer)); Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReloadableClients(Arc<Shared>);

struct Shared {
    current: ArcSwap<StaticClients>,
    file: Option<PathBuf>,
}

impl ReloadableClients {
    /// Starts with `clients`, without a file: change them with [`replace`](Self::replace).
    pub fn new(clients: StaticClients) -> Self {
        Self(Arc::new(Shared {
            current: ArcSwap::from_pointee(clients),
            file: None,
        }))
    }

    /// Reads `path` (synchronously: call at start-up) as [`StaticClients::from_json_file`]
    /// does, and remembers it for [`reload`](Self::reload) and [`watch`](Self::watch).
    ///
    /// # Errors
    /// See [`StaticClients::from_json_file`].
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let clients = StaticClients::from_json_file(path)?;
        Ok(Self(Arc::new(Shared {
            current: ArcSwap::from_pointee(clients),
            file: Some(path.to_owned()),
        })))
    }

    /// The registrations in use (a snapshot: later replacements do not change it).
    pub fn current(&self) -> StaticClients {
        StaticClients::clone(&self.0.current.load())
    }

    /// Puts `clients` in use in place of the current registrations.
    pub fn replace(&self, clients: StaticClients) {
        self.0.current.store(Arc::new(clients));
    }

    /// Reads the file again and puts its registrations in use.
    ///
    /// # Errors
    /// Made with [`new`](Self::new) (no file), or see [`StaticClients::from_json_file`]; the
    /// registrations in use are kept.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.0.reload()
    }

    /// Watches the file: every `interval` it is read, and when it changed (an edit, an atomic
    /// rename, a Kubernetes `..data` symlink swap) [`reload`](Self::reload) runs. `interval`
    /// zero: only on [`Watcher::reload_now`] (wire it to `SIGHUP`). See [`crate::reload`] for
    /// the outcomes.
    ///
    /// The watcher stops when dropped, or once every clone of this registry is gone. Without
    /// a file it never sees a change. Must be called within a tokio runtime.
    pub fn watch(&self, interval: Duration) -> Watcher {
        reload::spawn(&self.0, interval)
    }

    /// The client registered as `client_id` in the registrations in use.
    pub fn get(&self, client_id: &str) -> Option<RegisteredClient> {
        self.0.current.load().get(client_id).cloned()
    }
}

impl Reload for Shared {
    fn paths(&self) -> Vec<PathBuf> {
        self.file.iter().cloned().collect()
    }

    fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.file else {
            return Err(ConfigError::invalid(
                "client registrations",
                "no file to reload (made from memory)",
            ));
        };
        let clients = StaticClients::from_json_file(path)?;
        self.current.store(Arc::new(clients));
        Ok(())
    }

    fn what(&self) -> &'static str {
        "client registrations"
    }
}

impl fmt::Debug for ReloadableClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableClients")
            .field("file", &self.0.file)
            .field("clients", &**self.0.current.load())
            .finish()
    }
}

impl ClientRegistry for ReloadableClients {
    fn find_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<RegisteredClient>, RegistryError>> + Send {
        std::future::ready(Ok(self.get(client_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("certbound-clients-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const ONE: &str = r#"[{"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
                          "tls_client_auth_san_dns": "a.example"}]"#;
    const TWO: &str = r#"[{"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
                          "tls_client_auth_san_dns": "a.example"},
                         {"client_id": "b", "token_endpoint_auth_method": "tls_client_auth",
                          "tls_client_auth_san_dns": "b.example"}]"#;

    #[tokio::test(start_paused = true)]
    async fn a_changed_file_is_taken_and_a_broken_one_keeps_the_registrations_in_use() {
        let dir = dir("watch");
        let path = dir.join("clients.json");
        std::fs::write(&path, ONE).unwrap();
        let clients = ReloadableClients::from_json_file(&path).unwrap();
        let watcher = clients.watch(Duration::from_secs(1));
        let mut events = watcher.events();
        let lookups = clients.clone();
        assert!(lookups.find_client("b").await.unwrap().is_none());

        std::fs::write(&path, TWO).unwrap();
        events.changed().await.unwrap();
        assert!(events.borrow_and_update().outcome.is_ok());
        assert!(lookups.find_client("b").await.unwrap().is_some());

        for broken in [
            &TWO[..TWO.len() / 2],
            r#"[{"client_id": "a", "token_endpoint_auth_method": "tls_client_auth"}]"#,
            r#"[{"client_id": "a", "token_endpoint_auth_method": "none"},
                {"client_id": "a", "token_endpoint_auth_method": "none"}]"#,
        ] {
            std::fs::write(&path, broken).unwrap();
            events.changed().await.unwrap();
            assert!(events.borrow_and_update().outcome.is_err(), "{broken}");
            assert_eq!(lookups.current().len(), 2, "{broken}");
        }
    }

    #[test]
    fn replace_changes_every_clone_and_a_registry_without_file_refuses_reload() {
        let clients = ReloadableClients::new(StaticClients::from_json(ONE).unwrap());
        let copy = clients.clone();
        let before = copy.current();
        clients.replace(StaticClients::from_json(TWO).unwrap());
        assert_eq!(copy.current().len(), 2);
        assert!(copy.get("b").is_some());
        assert_eq!(before.len(), 1, "a snapshot does not change");
        assert!(clients.reload().is_err());
        assert_eq!(copy.current().len(), 2);
    }
}
