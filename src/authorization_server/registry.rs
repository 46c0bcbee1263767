//! [`ClientRegistry`]: where the layer looks clients up, and [`StaticClients`], an in-memory
//! registry.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use super::client::RegisteredClient;
use super::metadata::ClientMetadata;
use crate::error::ConfigError;

/// Errors of a registry lookup (a database down, ...): the request gets `503`.
pub type RegistryError = Box<dyn std::error::Error + Send + Sync>;

/// Looks up client registrations by `client_id`.
///
/// Implement it over your registration store; closures `Fn(String) -> impl Future<...>` are
/// registries too, and so is [`StaticClients`].
///
/// ```
/// use certbound::authorization_server::{ClientMetadata, ClientRegistry, RegisteredClient, RegistryError};
///
/// struct Database;
///
/// impl ClientRegistry for Database {
///     async fn find_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, RegistryError> {
///         // SELECT metadata FROM clients WHERE client_id = $1 ...
///         let json = r#"{"token_endpoint_auth_method": "tls_client_auth",
///                        "tls_client_auth_san_dns": "payments.example"}"#;
///         let mut metadata: ClientMetadata = serde_json::from_str(json)?;
///         metadata.client_id = client_id.to_owned();
///         Ok(Some(RegisteredClient::from_metadata(metadata)?))
///     }
/// }
/// ```
pub trait ClientRegistry: Send + Sync + 'static {
    /// The client registered as `client_id`, `None` when there is none.
    fn find_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<RegisteredClient>, RegistryError>> + Send;
}

impl<F, Fut> ClientRegistry for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<RegisteredClient>, RegistryError>> + Send,
{
    fn find_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<RegisteredClient>, RegistryError>> + Send {
        self(client_id.to_owned())
    }
}

/// An in-memory registry, e.g. loaded from a JSON file at start-up. Cheap to clone. For
/// registrations that change while serving, see [`ReloadableClients`](super::ReloadableClients).
///
/// ```
/// use certbound::authorization_server::StaticClients;
///
/// let clients = StaticClients::from_json(r#"[
///   {"client_id": "a", "token_endpoint_auth_method": "tls_client_auth",
///    "tls_client_auth_subject_dn": "CN=a,O=Example"},
///   {"client_id": "b", "token_endpoint_auth_method": "self_signed_tls_client_auth",
///    "jwks_uri": "https://b.example/jwks"}
/// ]"#).unwrap();
/// assert_eq!(clients.len(), 2);
/// assert!(clients.get("a").is_some());
/// ```
#[derive(Clone, Default)]
pub struct StaticClients(pub(super) Arc<HashMap<String, RegisteredClient>>);

impl StaticClients {
    /// Registers `clients`.
    ///
    /// # Errors
    /// Two clients with one `client_id`.
    pub fn new(clients: impl IntoIterator<Item = RegisteredClient>) -> Result<Self, ConfigError> {
        let mut map = HashMap::new();
        for client in clients {
            let id = client.client_id().to_owned();
            if map.insert(id.clone(), client).is_some() {
                return Err(ConfigError::invalid(
                    "client_id",
                    format!("{id:?} registered twice"),
                ));
            }
        }
        Ok(Self(Arc::new(map)))
    }

    /// Reads a JSON array of client metadata (RFC 7591 / RFC 8705 names) and checks every
    /// registration.
    ///
    /// # Errors
    /// Not a JSON array of metadata objects, a registration that cannot work (see
    /// [`RegisteredClient::from_metadata`]), or a `client_id` given twice.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let list: Vec<ClientMetadata> = serde_json::from_str(json).map_err(|e| {
            ConfigError::invalid_because(
                "client registrations",
                "not a JSON array of client metadata",
                e,
            )
        })?;
        let clients = list
            .into_iter()
            .map(RegisteredClient::from_metadata)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(clients)
    }

    /// Like [`from_json`](Self::from_json), reading a file (synchronously: call at start-up).
    ///
    /// # Errors
    /// The file cannot be read, or see [`from_json`](Self::from_json).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&json).map_err(|e| {
            ConfigError::invalid_because(
                "client registrations",
                format!("file {}", path.display()),
                e,
            )
        })
    }

    /// The client registered as `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.0.get(client_id)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for StaticClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ClientRegistry for StaticClients {
    fn find_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<RegisteredClient>, RegistryError>> + Send {
        std::future::ready(Ok(self.get(client_id).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_client_ids_are_refused() {
        let err = StaticClients::from_json(
            r#"[{"client_id": "a", "token_endpoint_auth_method": "none"},
                {"client_id": "a", "token_endpoint_auth_method": "none"}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(StaticClients::from_json("{}").is_err());
    }
}
