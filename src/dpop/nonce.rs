//! Server-provided DPoP nonces (RFC 9449 §8, §9) that need no shared state: each nonce names a
//! time step and carries a MAC of it, so any instance holding the secret can check any nonce.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ConfigError;

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
/// [accepted](Self::also_accept) until their nonces are older than two steps.
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
    /// The first key issues; all of them are accepted.
    keys: Arc<Vec<HmacSha256>>,
    /// Seconds, at least 1.
    step: u64,
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
        Ok(Self {
            keys: Arc::new(vec![keyed(secret.as_ref())?]),
            step: DEFAULT_STEP,
        })
    }

    /// Nonces keyed with the contents of the file at `path`. One trailing line break (`\n` or
    /// `\r\n`) is not part of the secret, so `openssl rand -hex 32 > secret` works as it is;
    /// everything else is, byte for byte.
    ///
    /// This reads the file synchronously: call it at start-up, not in async request handling.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read; otherwise as [`new`](Self::new).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::new(read_secret(path.as_ref())?)
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
    /// a rotation. Once every instance issues with the new secret, an old one can go after two
    /// steps.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when `secret` is shorter than 32 bytes.
    pub fn also_accept(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = keyed(secret.as_ref())?;
        Arc::make_mut(&mut self.keys).push(key);
        Ok(self)
    }

    /// The length of a time step (default: 60 seconds): a nonce is valid for one to two steps.
    /// Whole seconds count; anything under one second is taken as one second.
    #[must_use]
    pub fn step(mut self, step: Duration) -> Self {
        self.step = step.as_secs().max(1);
        self
    }

    /// The number of the time step `now_unix` (seconds since the Unix epoch) falls in.
    pub(crate) fn current_step(&self, now_unix: u64) -> u64 {
        now_unix / self.step
    }

    /// A nonce for the current step, made with the issuing key.
    pub(crate) fn issue(&self, now_unix: u64) -> String {
        crate::metrics::dpop_nonce_issued();
        let step = self.current_step(now_unix);
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&step.to_be_bytes());
        // `keys` is never empty: `new` puts the issuing key first and nothing removes it.
        if let Some(key) = self.keys.first() {
            raw[8..].copy_from_slice(&mac(key, step)[..MAC_LEN]);
        }
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
        let current = self.current_step(now_unix);
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
        let genuine = self
            .keys
            .iter()
            .any(|key| crate::support::ct::eq(&mac(key, step)[..MAC_LEN], presented));
        if genuine {
            verdict
        } else {
            NonceCheck::Invalid
        }
    }
}

impl fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopNonces")
            .field("keys", &self.keys.len())
            .field("step", &Duration::from_secs(self.step))
            .finish()
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
mod tests {
    use super::*;

    const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
    const NOW: u64 = 1_700_000_000;

    fn nonces() -> DpopNonces {
        DpopNonces::new(SECRET).unwrap()
    }

    /// A file under the temporary directory that no other test (or test run) uses; removed on
    /// drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(contents: &[u8]) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "certbound-nonce-{}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn an_issued_nonce_checks_as_current() {
        let nonces = nonces();
        let nonce = nonces.issue(NOW);
        assert_eq!(nonce.len(), ENCODED_LEN);
        assert_eq!(nonces.check(&nonce, NOW), NonceCheck::Current);
        // Anywhere in the same step.
        let step_start = NOW / 60 * 60;
        assert_eq!(nonces.check(&nonce, step_start), NonceCheck::Current);
        assert_eq!(nonces.check(&nonce, step_start + 59), NonceCheck::Current);
        // Another instance with the same secret agrees.
        assert_eq!(DpopNonces::new(SECRET).unwrap().issue(NOW), nonce);
    }

    #[test]
    fn a_nonce_of_the_previous_step_is_accepted_and_one_of_two_steps_back_is_not() {
        let nonces = nonces();
        let nonce = nonces.issue(NOW);
        let next_step = (NOW / 60 + 1) * 60;
        assert_eq!(nonces.check(&nonce, next_step), NonceCheck::Previous);
        assert_eq!(nonces.check(&nonce, next_step + 59), NonceCheck::Previous);
        assert_eq!(nonces.check(&nonce, next_step + 60), NonceCheck::Invalid);
        // A nonce from the future is no good either.
        assert_eq!(nonces.check(&nonce, NOW - 60), NonceCheck::Invalid);
    }

    #[test]
    fn the_step_sets_how_long_a_nonce_lives_and_is_at_least_a_second() {
        let nonces = nonces().step(Duration::from_secs(10));
        let nonce = nonces.issue(100);
        assert_eq!(nonces.check(&nonce, 109), NonceCheck::Current);
        assert_eq!(nonces.check(&nonce, 119), NonceCheck::Previous);
        assert_eq!(nonces.check(&nonce, 120), NonceCheck::Invalid);

        let fast = nonces.step(Duration::from_millis(1));
        assert_eq!(fast.current_step(NOW), NOW);
        let nonce = fast.issue(NOW);
        assert_eq!(fast.check(&nonce, NOW + 1), NonceCheck::Previous);
        assert_eq!(
            format!("{fast:?}"),
            "DpopNonces { keys: 1, step: 1s }".to_owned()
        );
    }

    #[test]
    fn a_nonce_made_with_another_secret_is_refused() {
        let theirs = DpopNonces::new(OTHER).unwrap().issue(NOW);
        assert_eq!(nonces().check(&theirs, NOW), NonceCheck::Invalid);
    }

    #[test]
    fn a_tampered_nonce_is_refused() {
        let nonces = nonces();
        let mut raw = decode(&nonces.issue(NOW)).unwrap();
        // Moving it to the next step without its MAC.
        let mut moved = raw;
        moved[..8].copy_from_slice(&(NOW / 60 + 1).to_be_bytes());
        let moved = URL_SAFE_NO_PAD.encode(moved);
        assert_eq!(nonces.check(&moved, NOW + 60), NonceCheck::Invalid);
        // One bit of the MAC.
        raw[RAW_LEN - 1] ^= 1;
        assert_eq!(
            nonces.check(&URL_SAFE_NO_PAD.encode(raw), NOW),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn rotation_accepts_the_old_secret_and_issues_with_the_new() {
        let old = nonces();
        let old_nonce = old.issue(NOW);
        let rotated = DpopNonces::new(OTHER).unwrap().also_accept(SECRET).unwrap();
        assert_eq!(rotated.check(&old_nonce, NOW), NonceCheck::Current);
        assert_eq!(rotated.check(&old_nonce, NOW + 60), NonceCheck::Previous);
        let new_nonce = rotated.issue(NOW);
        assert_eq!(new_nonce, DpopNonces::new(OTHER).unwrap().issue(NOW));
        assert_eq!(rotated.check(&new_nonce, NOW), NonceCheck::Current);
        // The instances not yet rotated refuse the new nonces.
        assert_eq!(old.check(&new_nonce, NOW), NonceCheck::Invalid);
        assert_eq!(format!("{rotated:?}"), "DpopNonces { keys: 2, step: 60s }");
    }

    #[test]
    fn clones_share_their_keys_and_also_accept_does_not_change_the_original() {
        let a = nonces();
        let b = a.clone().also_accept(OTHER).unwrap();
        let theirs = DpopNonces::new(OTHER).unwrap().issue(NOW);
        assert_eq!(a.check(&theirs, NOW), NonceCheck::Invalid);
        assert_eq!(b.check(&theirs, NOW), NonceCheck::Current);
    }

    #[test]
    fn secrets_shorter_than_32_bytes_are_refused_without_being_echoed() {
        let short = b"short-secret-that-must-not-leak";
        assert_eq!(short.len(), 31);
        let err = DpopNonces::new(short).unwrap_err();
        assert!(matches!(err, ConfigError::Key { .. }), "{err}");
        assert!(!err.to_string().contains("must-not-leak"), "{err}");
        assert!(!format!("{err:?}").contains("must-not-leak"), "{err:?}");
        assert!(DpopNonces::new(b"").is_err());
        assert!(nonces().also_accept(short).is_err());
        assert!(DpopNonces::new([7u8; 32]).is_ok());
    }

    #[test]
    fn a_secret_file_loses_one_trailing_line_break_only() {
        let expected = DpopNonces::new(SECRET).unwrap().issue(NOW);
        for contents in [
            &SECRET[..],
            b"0123456789abcdef0123456789abcdef\n",
            b"0123456789abcdef0123456789abcdef\r\n",
        ] {
            let file = TempFile::new(contents);
            let nonces = DpopNonces::from_file(&file.0).unwrap();
            assert_eq!(nonces.issue(NOW), expected, "{contents:?}");
        }
        // A second line break is part of the secret.
        let file = TempFile::new(b"0123456789abcdef0123456789abcdef\n\n");
        assert_ne!(DpopNonces::from_file(&file.0).unwrap().issue(NOW), expected);
        // 31 bytes and a line break are too short.
        let file = TempFile::new(b"0123456789abcdef0123456789abcde\n");
        assert!(matches!(
            DpopNonces::from_file(&file.0),
            Err(ConfigError::Key { .. })
        ));
    }

    #[test]
    fn an_unreadable_secret_file_is_an_io_error() {
        let missing = std::env::temp_dir().join("certbound-no-such-nonce-secret-file");
        let err = DpopNonces::from_file(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err}");
    }

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    #[test]
    fn random_secrets_differ() {
        let a = DpopNonces::random().unwrap();
        let b = DpopNonces::random().unwrap();
        assert_eq!(a.check(&a.issue(NOW), NOW), NonceCheck::Current);
        assert_eq!(b.check(&a.issue(NOW), NOW), NonceCheck::Invalid);
    }

    #[test]
    fn garbage_is_invalid_without_panicking() {
        let nonces = nonces();
        let valid = nonces.issue(NOW);
        let huge = "A".repeat(1 << 20);
        let garbage = [
            "",
            "a",
            "not base64 at all, not at all!!",
            "********************************",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "ééééééééééééééé\u{80}",
            &valid[..ENCODED_LEN - 1],
            &huge,
        ];
        for nonce in garbage {
            assert_eq!(nonces.check(nonce, NOW), NonceCheck::Invalid, "{nonce:.40}");
            assert_eq!(nonces.check(nonce, 0), NonceCheck::Invalid, "{nonce:.40}");
            assert_eq!(
                nonces.check(nonce, u64::MAX),
                NonceCheck::Invalid,
                "{nonce:.40}"
            );
        }
        // The standard alphabet is not base64url.
        let standard = valid.replace('-', "+").replace('_', "/");
        if standard != valid {
            assert_eq!(nonces.check(&standard, NOW), NonceCheck::Invalid);
        }
        // Extreme times neither panic nor accept.
        assert_eq!(nonces.check(&valid, 0), NonceCheck::Invalid);
        assert_eq!(nonces.check(&valid, u64::MAX), NonceCheck::Invalid);
        let at_zero = nonces.issue(0);
        assert_eq!(nonces.check(&at_zero, 0), NonceCheck::Current);
        let at_max = nonces.issue(u64::MAX);
        assert_eq!(nonces.check(&at_max, u64::MAX), NonceCheck::Current);
    }
}
