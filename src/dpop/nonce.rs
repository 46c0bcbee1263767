//! Server-provided DPoP nonces (RFC 9449 §8, §9) that need no shared state: each nonce names a
//! time step and carries a MAC of it, so any instance holding the secret can check any nonce.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ConfigError;
use crate::reload::{Reload, Watcher};
use crate::support::time::unix_now;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted: the output size of SHA-256 (RFC 2104 §3).
const MIN_SECRET_LEN: usize = 32;
/// Domain separation, so that the secret's MACs mean nothing anywhere else.
const LABEL: &[u8] = b"certbound dpop nonce v1";
/// The MAC is truncated to 128 bits: forging one means guessing it, on line.
const MAC_LEN: usize = 16;
/// 8 bytes of step and the MAC.
const RAW_LEN: usize = 8 + MAC_LEN;
/// `RAW_LEN` in base64url: 24 bytes is a whole number of groups, so no padding ever.
const ENCODED_LEN: usize = RAW_LEN / 3 * 4;
const DEFAULT_STEP: u64 = 60;

/// The nonces a resource server hands out in `DPoP-Nonce` and expects back in proofs
/// (RFC 9449 §9), without storing them.
///
/// A nonce is the number of the current time step (`now / step`) with an HMAC-SHA256 of it,
/// keyed with a server secret. One is valid in the step it was issued in and the next, so a
/// client that just received one always has between one and two steps to use it. Every
/// instance of a fleet sharing the secret issues and accepts the same nonces.
///
/// Secrets rotate without a flag day: the new secret issues, old ones are
/// [accepted](Self::also_accept) until their nonces are older than two steps. While serving,
/// [`replace`](Self::replace) rotates in place (the previous secret still accepted for the
/// nonces it issued), and [`watch`](Self::watch) does so when the secret's file changes. A
/// nonce check reads the keys with one atomic load (`arc-swap`), rotation or not.
///
/// Cloning is cheap (the keys are shared). `Debug` shows the number of keys and the step,
/// never a secret.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use certbound::dpop::DpopNonces;
///
/// let nonces = DpopNonces::new(b"a secret of at least thirty-two bytes, shared by the fleet")
///     .unwrap()
///     .step(Duration::from_secs(30));
/// # let _ = nonces;
/// ```
#[derive(Clone)]
pub struct DpopNonces {
    shared: Arc<Shared>,
}

/// What clones share: the keys in use (swapped whole by a rotation) and the file they came
/// from.
struct Shared {
    keys: ArcSwap<Keys>,
    file: Option<PathBuf>,
}

/// One generation of keys: read with one atomic load on every nonce check.
struct Keys {
    /// Issues, and is accepted.
    issuing: HmacSha256,
    /// The issuing key before the last [`replace`](DpopNonces::replace): accepted for nonces
    /// of steps up to the one it was replaced in, so only for nonces it really issued.
    previous: Option<(HmacSha256, u64)>,
    /// Keys given to [`also_accept`](DpopNonces::also_accept): accepted for any step.
    also: Vec<HmacSha256>,
    /// Seconds, at least 1.
    step: u64,
}

impl Keys {
    fn count(&self) -> usize {
        1 + usize::from(self.previous.is_some()) + self.also.len()
    }

    fn clone_keys(&self) -> Self {
        Self {
            issuing: self.issuing.clone(),
            previous: self.previous.clone(),
            also: self.also.clone(),
            step: self.step,
        }
    }
}

/// What a nonce presented in a proof is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Issued in the current time step.
    Current,
    /// Issued in the previous step: accepted, and the response carries a fresh nonce.
    Previous,
    /// Forged, malformed, or older than the previous step.
    Invalid,
}

impl DpopNonces {
    /// Nonces keyed with `secret`, which issues and checks them. Share it across a fleet (and
    /// keep it as secret as a signing key).
    ///
    /// # Errors
    /// [`ConfigError::Key`] when `secret` is shorter than 32 bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self::of(
            Keys {
                issuing: keyed(secret.as_ref())?,
                previous: None,
                also: Vec::new(),
                step: DEFAULT_STEP,
            },
            None,
        ))
    }

    fn of(keys: Keys, file: Option<PathBuf>) -> Self {
        Self {
            shared: Arc::new(Shared {
                keys: ArcSwap::from_pointee(keys),
                file,
            }),
        }
    }

    /// Nonces keyed with the contents of the file at `path`. One trailing line break (`\n` or
    /// `\r\n`) is not part of the secret, so `openssl rand -hex 32 > secret` works as it is;
    /// everything else is, byte for byte. The file is remembered for [`watch`](Self::watch)
    /// and [`reload`](Self::reload).
    ///
    /// This reads the file synchronously: call it at start-up, not in async request handling.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read; otherwise as [`new`](Self::new).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let mut secret = read_secret(path)?;
        let issuing = keyed(&secret);
        secret.fill(0);
        let keys = Keys {
            issuing: issuing?,
            previous: None,
            also: Vec::new(),
            step: DEFAULT_STEP,
        };
        Ok(Self::of(keys, Some(path.to_owned())))
    }

    /// Nonces keyed with 32 random bytes from the crypto backend: right for a single instance,
    /// whose nonces then die with it. A fleet needs a shared secret ([`new`](Self::new),
    /// [`from_file`](Self::from_file)).
    ///
    /// # Errors
    /// [`ConfigError::NoCryptoProvider`] without a backend feature when the application
    /// installed no rustls provider; [`ConfigError::Invalid`] when the random generator fails.
    pub fn random() -> Result<Self, ConfigError> {
        let mut secret = [0u8; MIN_SECRET_LEN];
        super::backend::fill_random(&mut secret)?;
        let nonces = Self::new(secret);
        secret.fill(0);
        nonces
    }

    /// Also accepts nonces made with `secret`, without issuing any: the previous secret during
    /// a rotation by configuration (for a rotation while serving, see
    /// [`replace`](Self::replace)). Once every instance issues with the new secret, an old one
    /// can go after two steps.
    ///
    /// A configuration step: the result no longer shares its keys with the clones made before
    /// (nor with their [`watch`](Self::watch)ers).
    ///
    /// # Errors
    /// [`ConfigError::Key`] when `secret` is shorter than 32 bytes.
    pub fn also_accept(self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = keyed(secret.as_ref())?;
        let mut keys = self.shared.keys.load().clone_keys();
        keys.also.push(key);
        Ok(Self::of(keys, self.shared.file.clone()))
    }

    /// The length of a time step (default: 60 seconds): a nonce is valid for one to two steps.
    /// Whole seconds count; anything under one second is taken as one second.
    ///
    /// A configuration step, as [`also_accept`](Self::also_accept) is.
    #[must_use]
    pub fn step(self, step: Duration) -> Self {
        let mut keys = self.shared.keys.load().clone_keys();
        keys.step = step.as_secs().max(1);
        Self::of(keys, self.shared.file.clone())
    }

    /// Rotates while serving: `secret` issues every nonce from now on, and the secret that
    /// issued until now is still accepted for the nonces it issued (those of the current step
    /// and before, which live until the end of the next step), so that clients holding one
    /// are not refused. The secret before that one is dropped. Keys given to
    /// [`also_accept`](Self::also_accept) stay. Every clone of these nonces (the
    /// [`Dpop`](super::Dpop) configuration that holds one among them) sees the change at
    /// once.
    ///
    /// Replacing a secret with itself changes nothing.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when `secret` is shorter than 32 bytes; the secret in use stays.
    pub fn replace(&self, secret: impl AsRef<[u8]>) -> Result<(), ConfigError> {
        self.shared.replace(secret.as_ref(), unix_now())
    }

    /// Reads the file given to [`from_file`](Self::from_file) again and
    /// [`replace`](Self::replace)s the secret with its contents.
    ///
    /// # Errors
    /// Nonces not made by `from_file`, a file that cannot be read, or a secret shorter than
    /// 32 bytes ([`ConfigError::Io`], [`ConfigError::Key`]); the secret in use stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.shared.reload_file()
    }

    /// Watches the file given to [`from_file`](Self::from_file): every `interval` its contents
    /// are compared with the last read, and a change is [`reload`](Self::reload)ed (an atomic
    /// rename and a Kubernetes `..data` symlink swap count). A refused file (unreadable, too
    /// short) keeps the secret in use, is reported on [`Watcher::events`] (and a `tracing`
    /// warning), and is tried again once it changes. `interval` zero: only on
    /// [`Watcher::reload_now`] (wire it to `SIGHUP`). See [`reload`](crate::reload).
    ///
    /// The watcher stops when dropped, or once no clone of these nonces is left. For nonces
    /// not made by `from_file`, every reload is refused. Must be called within a tokio
    /// runtime.
    pub fn watch(&self, interval: Duration) -> Watcher {
        crate::reload::spawn(&self.shared, interval)
    }

    /// The number of the time step `now_unix` (seconds since the Unix epoch) falls in.
    #[cfg(test)]
    pub(crate) fn current_step(&self, now_unix: u64) -> u64 {
        now_unix / self.shared.keys.load().step
    }

    /// A nonce for the current step, made with the issuing key.
    pub(crate) fn issue(&self, now_unix: u64) -> String {
        crate::metrics::dpop_nonce_issued();
        let keys = self.shared.keys.load();
        let step = now_unix / keys.step;
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&step.to_be_bytes());
        raw[8..].copy_from_slice(&mac(&keys.issuing, step)[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// What `nonce` is worth at `now_unix`.
    pub(crate) fn check(&self, nonce: &str, now_unix: u64) -> NonceCheck {
        let Some(raw) = decode(nonce) else {
            return NonceCheck::Invalid;
        };
        let mut step_bytes = [0u8; 8];
        step_bytes.copy_from_slice(&raw[..8]);
        let step = u64::from_be_bytes(step_bytes);
        // One atomic load: the keys of this check, whatever a rotation does meanwhile.
        let keys = self.shared.keys.load();
        let current = now_unix / keys.step;
        let verdict = if step == current {
            NonceCheck::Current
        } else if current.checked_sub(1) == Some(step) {
            NonceCheck::Previous
        } else {
            // Older, or from the future: not worth a MAC.
            return NonceCheck::Invalid;
        };
        let presented = &raw[8..];
        // Constant time per key: the comparison must not tell a forger how much of a MAC matched.
        let matches =
            |key: &HmacSha256| crate::support::ct::eq(&mac(key, step)[..MAC_LEN], presented);
        let previous = keys
            .previous
            .as_ref()
            .is_some_and(|(key, until)| step <= *until && matches(key));
        if matches(&keys.issuing) || previous || keys.also.iter().any(matches) {
            verdict
        } else {
            NonceCheck::Invalid
        }
    }
}

impl fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.shared.keys.load();
        f.debug_struct("DpopNonces")
            .field("keys", &keys.count())
            .field("step", &Duration::from_secs(keys.step))
            .finish()
    }
}

impl Shared {
    fn replace(&self, secret: &[u8], now_unix: u64) -> Result<(), ConfigError> {
        let issuing = keyed(secret)?;
        self.keys.rcu(|keys| {
            if mac(&keys.issuing, u64::MAX) == mac(&issuing, u64::MAX) {
                return Arc::clone(keys);
            }
            Arc::new(Keys {
                issuing: issuing.clone(),
                previous: Some((keys.issuing.clone(), now_unix / keys.step)),
                also: keys.also.clone(),
                step: keys.step,
            })
        });
        Ok(())
    }

    fn reload_file(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.file else {
            return Err(ConfigError::invalid(
                "DPoP nonce key",
                "not read from a file (made by DpopNonces::from_file), so nothing to reload",
            ));
        };
        let mut secret = read_secret(path)?;
        let replaced = self.replace(&secret, unix_now());
        secret.fill(0);
        replaced
    }
}

impl Reload for Shared {
    fn paths(&self) -> Vec<PathBuf> {
        self.file.iter().cloned().collect()
    }

    fn reload(&self) -> Result<(), ConfigError> {
        self.reload_file()
    }

    fn what(&self) -> &'static str {
        "DPoP nonce key"
    }
}

/// The HMAC state keyed with `secret`, cloned for each nonce (keying runs the hash twice).
fn keyed(secret: &[u8]) -> Result<HmacSha256, ConfigError> {
    if secret.len() < MIN_SECRET_LEN {
        // The length only: the secret itself never goes into an error.
        return Err(ConfigError::key(
            format!(
                "a DPoP nonce secret needs at least {MIN_SECRET_LEN} bytes, this one has {}",
                secret.len()
            ),
            None,
        ));
    }
    HmacSha256::new_from_slice(secret)
        .map_err(|_| ConfigError::key("unusable DPoP nonce secret", None))
}

fn mac(key: &HmacSha256, step: u64) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(LABEL);
    mac.update(&step.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// The 24 bytes of a well-formed nonce: exactly [`ENCODED_LEN`] base64url characters.
fn decode(nonce: &str) -> Option<[u8; RAW_LEN]> {
    if nonce.len() != ENCODED_LEN {
        return None;
    }
    // 32 symbols encode exactly 24 bytes, with no trailing bits, so this spelling is canonical.
    // The buffer is larger than 24 bytes because the engine's size estimate is conservative.
    let mut buf = [0u8; RAW_LEN + 3];
    match URL_SAFE_NO_PAD.decode_slice(nonce.as_bytes(), &mut buf) {
        Ok(RAW_LEN) => {
            let mut raw = [0u8; RAW_LEN];
            raw.copy_from_slice(&buf[..RAW_LEN]);
            Some(raw)
        }
        _ => None,
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let mut secret = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    if secret.ends_with(b"\r\n") {
        secret.truncate(secret.len() - 2);
    } else if secret.ends_with(b"\n") {
        secret.truncate(secret.len() - 1);
    }
    Ok(secret)
}

#[cfg(test)]
#[path = "nonce_tests.rs"]
mod tests;
