//! [`ReloadableClientIdentity`]: the client's identity, renewed while the client runs, and the
//! per-identity cache of what is built from it (the HTTP clients that present it).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::identity::ClientIdentity;
use crate::error::ConfigError;
use crate::reload::{Reload, Watcher};
use crate::thumbprint::CertThumbprint;

/// A client's TLS identity that can be renewed while the client runs: the certificate (and
/// key) that short-lived-certificate setups (cert-manager, SPIFFE/SPIRE, a device's
/// enrolment) replace before it expires.
///
/// Give it to [`TokenSource::builder`](super::TokenSource::builder) (a plain
/// [`ClientIdentity`] converts into a fixed one) and call the resource server through
/// [`ReqwestClient::per_identity`](super::ReqwestClient::per_identity). After a renewal:
///
/// - the [`TokenSource`](super::TokenSource) no longer hands out the tokens it got with the old
///   certificate: the next call asks the authorization server for a new one, over a new
///   connection that presents the new certificate, so a certificate-bound token names the new
///   certificate (`cnf.x5t#S256`);
/// - every [`Token`](super::Token) remembers the identity it was obtained with, and
///   `ReqwestClient::per_identity` sends it only over connections of an HTTP client built for
///   that identity. A token bound to one certificate is never sent on a connection that
///   presented another: a call that got its token just before the renewal finishes with the
///   old pair; the next one uses the new pair.
///
/// Why new HTTP clients rather than a TLS configuration that resolves the current certificate
/// at each handshake: a connection pool keeps connections made before the renewal, and a token
/// bound to the new certificate would then travel on a connection that presented the old one
/// (which the resource server refuses: RFC 8705 §3). Pairing each token with a client made for
/// its identity rules that out by construction; the old client and its connections go once no
/// call uses them.
///
/// A renewal is a new leaf certificate (its thumbprint): a reload of the same certificate
/// changes nothing. Cheap to clone: clones share the identity in use.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::time::Duration;
/// use certbound::client::{ReloadableClientIdentity, ReqwestClient, TokenSource};
///
/// let identity = ReloadableClientIdentity::from_pem_files("client.pem", "client.key")?;
/// // Re-read the files every 5 s; keep the watcher as long as the client runs.
/// let watcher = identity.watch(Duration::from_secs(5));
/// let tokens = TokenSource::builder("my-client", identity.clone())
///     .issuer("https://as.example")
///     .build()?;
/// let api = ReqwestClient::per_identity(tokens, |identity| {
///     Ok(identity.reqwest_builder(&[], true)?.build()?)
/// })?;
/// let response = api
///     .execute(api.http().get("https://api.example/accounts").build()?)
///     .await?;
/// # drop(watcher);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReloadableClientIdentity {
    shared: Arc<Shared>,
}

struct Shared {
    current: ArcSwap<ClientIdentity>,
    /// The certificate chain's and the key's files, when read from files.
    files: Option<(PathBuf, PathBuf)>,
}

impl ReloadableClientIdentity {
    /// `identity`, renewed only by [`replace`](Self::replace).
    pub fn new(identity: ClientIdentity) -> Self {
        Self::of(identity, None)
    }

    fn of(identity: ClientIdentity, files: Option<(PathBuf, PathBuf)>) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(identity),
                files,
            }),
        }
    }

    /// The identity in two PEM files, as [`ClientIdentity::from_pem_files`] reads them; the
    /// files are remembered for [`reload`](Self::reload) and [`watch`](Self::watch).
    ///
    /// # Errors
    /// As [`ClientIdentity::from_pem_files`].
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let identity = ClientIdentity::from_pem_files(cert, key)?;
        Ok(Self::of(identity, Some((cert.to_owned(), key.to_owned()))))
    }

    /// The identity in use.
    pub fn current(&self) -> ClientIdentity {
        ClientIdentity::clone(&self.shared.current.load())
    }

    /// Puts `identity` in use: the tokens and connections of the old one are not used for new
    /// calls (see the [type's documentation](Self)). A [`ClientIdentity`] has been checked when
    /// it was made (its key is its certificate's), so this cannot fail.
    pub fn replace(&self, identity: ClientIdentity) {
        self.shared.replace(identity);
    }

    /// Reads the files given to [`from_pem_files`](Self::from_pem_files) again and puts the
    /// identity they hold in use.
    ///
    /// # Errors
    /// An identity not read from files, a file that cannot be read or parsed, or a key that is
    /// not the certificate's (as [`ClientIdentity::from_pem_files`]: a certificate renewed
    /// before its key, caught between two renames, is one): the identity in use stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.shared.reload_files()
    }

    /// Watches the files given to [`from_pem_files`](Self::from_pem_files): every `interval`
    /// their contents are compared with the last read, and a change is
    /// [`reload`](Self::reload)ed (an atomic rename and a Kubernetes `..data` symlink swap
    /// count). A refused renewal keeps the identity in use, is reported on
    /// [`Watcher::events`] (and a `tracing` warning), and is tried again once the files
    /// change. `interval` zero: only on [`Watcher::reload_now`] (wire it to `SIGHUP`). See
    /// [`reload`](crate::reload).
    ///
    /// The watcher stops when dropped, or once no clone of this identity (nor a
    /// [`TokenSource`](super::TokenSource) holding one) is left. For an identity not read from
    /// files, every reload is refused. Must be called within a tokio runtime.
    pub fn watch(&self, interval: Duration) -> Watcher {
        crate::reload::spawn(&self.shared, interval)
    }

    /// Whether the identity in use has this leaf certificate (one atomic load).
    pub(crate) fn is_current(&self, thumbprint: &CertThumbprint) -> bool {
        self.shared.current.load().thumbprint() == thumbprint
    }
}

impl From<ClientIdentity> for ReloadableClientIdentity {
    fn from(identity: ClientIdentity) -> Self {
        Self::new(identity)
    }
}

impl fmt::Debug for ReloadableClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableClientIdentity")
            .field("current", &**self.shared.current.load())
            .field("files", &self.shared.files)
            .finish()
    }
}

impl Shared {
    fn replace(&self, identity: ClientIdentity) {
        self.current.rcu(|current| {
            if current.thumbprint() == identity.thumbprint() {
                Arc::clone(current)
            } else {
                Arc::new(identity.clone())
            }
        });
    }

    fn reload_files(&self) -> Result<(), ConfigError> {
        let Some((cert, key)) = &self.files else {
            return Err(ConfigError::invalid(
                "client identity",
                "not read from files (made by ReloadableClientIdentity::from_pem_files), so \
                 nothing to reload",
            ));
        };
        self.replace(ClientIdentity::from_pem_files(cert, key)?);
        Ok(())
    }
}

impl Reload for Shared {
    fn paths(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .flat_map(|(cert, key)| [cert.clone(), key.clone()])
            .collect()
    }

    fn reload(&self) -> Result<(), ConfigError> {
        self.reload_files()
    }

    fn what(&self) -> &'static str {
        "client identity"
    }
}

/// What was built for one identity (an HTTP client that presents it), rebuilt when another
/// identity asks: one generation kept, since calls move to the new identity at once.
pub(crate) struct PerIdentity<T> {
    slot: Mutex<Option<(CertThumbprint, T)>>,
}

impl<T: Clone> PerIdentity<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }

    /// What was built for `identity`, or `build(identity)`, kept for the next caller.
    pub(crate) fn get<E>(
        &self,
        identity: &ClientIdentity,
        build: impl FnOnce(&ClientIdentity) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((thumbprint, built)) = &*slot {
            if thumbprint == identity.thumbprint() {
                return Ok(built.clone());
            }
        }
        let built = build(identity)?;
        *slot = Some((*identity.thumbprint(), built.clone()));
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn identity() -> ClientIdentity {
        let (cert, key) = pem_pair();
        ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
    }

    #[test]
    fn a_replaced_identity_is_current_for_every_clone_and_built_things_follow_it() {
        let first = identity();
        let reloadable = ReloadableClientIdentity::from(first.clone());
        let clone = reloadable.clone();
        let cache = PerIdentity::<u32>::new();
        let mut builds = 0;
        let mut build = |_: &ClientIdentity| {
            builds += 1;
            Ok::<_, ()>(builds)
        };
        assert_eq!(cache.get(&clone.current(), &mut build), Ok(1));
        assert_eq!(cache.get(&clone.current(), &mut build), Ok(1));
        let second = identity();
        reloadable.replace(second.clone());
        assert!(clone.is_current(second.thumbprint()));
        assert!(!clone.is_current(first.thumbprint()));
        assert_eq!(cache.get(&clone.current(), &mut build), Ok(2));
        let err = reloadable.reload().unwrap_err();
        assert!(err.to_string().contains("not read from files"), "{err}");
        assert!(clone.is_current(second.thumbprint()));
        assert!(!format!("{reloadable:?}").contains("PRIVATE"));
    }
}
