//! Tests of [`DpopNonces`]: issuing, checking, steps, secrets and their rotation.

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

const THIRD: &[u8; 32] = b"a third secret, thirty-two bytes";

#[test]
fn after_a_rotation_the_old_keys_nonces_are_accepted_and_new_ones_are_signed_by_the_new_key() {
    let nonces = nonces();
    // The server's Dpop configuration holds a clone: it sees the rotation.
    let serving = nonces.clone();
    let old_nonce = nonces.issue(NOW);
    nonces.shared.replace(OTHER, NOW).unwrap();
    assert_eq!(serving.check(&old_nonce, NOW), NonceCheck::Current);
    assert_eq!(serving.check(&old_nonce, NOW + 60), NonceCheck::Previous);
    assert_eq!(serving.check(&old_nonce, NOW + 120), NonceCheck::Invalid);
    let new_nonce = serving.issue(NOW);
    assert_ne!(new_nonce, old_nonce);
    assert_eq!(new_nonce, DpopNonces::new(OTHER).unwrap().issue(NOW));
    assert_eq!(serving.check(&new_nonce, NOW), NonceCheck::Current);
    assert_eq!(format!("{serving:?}"), "DpopNonces { keys: 2, step: 60s }");
}

#[test]
fn a_replaced_key_vouches_only_for_the_steps_it_issued_in() {
    let nonces = nonces();
    nonces.shared.replace(OTHER, NOW).unwrap();
    // A nonce the old key never issued: the step after the rotation, made with the old key
    // (by someone who kept it).
    let forged = DpopNonces::new(SECRET).unwrap().issue(NOW + 60);
    assert_eq!(nonces.check(&forged, NOW + 60), NonceCheck::Invalid);
    let genuine = nonces.issue(NOW + 60);
    assert_eq!(nonces.check(&genuine, NOW + 60), NonceCheck::Current);
}

#[test]
fn after_a_second_rotation_the_first_keys_nonces_are_refused() {
    let nonces = nonces();
    let first = nonces.issue(NOW);
    nonces.shared.replace(OTHER, NOW).unwrap();
    let second = nonces.issue(NOW);
    nonces.shared.replace(THIRD, NOW).unwrap();
    assert_eq!(nonces.check(&first, NOW), NonceCheck::Invalid);
    assert_eq!(nonces.check(&second, NOW), NonceCheck::Current);
    assert_eq!(
        nonces.issue(NOW),
        DpopNonces::new(THIRD).unwrap().issue(NOW)
    );
    assert_eq!(format!("{nonces:?}"), "DpopNonces { keys: 2, step: 60s }");
}

#[test]
fn replacing_a_key_with_itself_or_a_short_one_changes_nothing() {
    let nonces = nonces().also_accept(THIRD).unwrap();
    let before = nonces.issue(NOW);
    nonces.shared.replace(SECRET, NOW).unwrap();
    assert_eq!(format!("{nonces:?}"), "DpopNonces { keys: 2, step: 60s }");
    let err = nonces.replace(&SECRET[..31]).unwrap_err();
    assert!(matches!(err, ConfigError::Key { .. }), "{err}");
    assert_eq!(nonces.issue(NOW), before);
    // Keys accepted by configuration stay through a rotation.
    nonces.shared.replace(OTHER, NOW).unwrap();
    let third = DpopNonces::new(THIRD).unwrap().issue(NOW + 600);
    assert_eq!(nonces.check(&third, NOW + 600), NonceCheck::Current);
}

#[test]
fn nonces_not_read_from_a_file_have_nothing_to_reload() {
    let err = nonces().reload().unwrap_err();
    assert!(err.to_string().contains("not read from a file"), "{err}");
}

async fn next(
    events: &mut tokio::sync::watch::Receiver<crate::reload::ReloadEvent>,
) -> crate::reload::ReloadEvent {
    events.changed().await.unwrap();
    events.borrow_and_update().clone()
}

/// Writes `contents` beside `path` and renames it into place, as a deployment tool does.
fn rename_into(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_watched_key_file_rotates_and_a_short_or_missing_one_is_refused_keeping_the_key() {
    let file = TempFile::new(SECRET);
    let nonces = DpopNonces::from_file(&file.0).unwrap();
    let watcher = nonces.watch(Duration::from_secs(5));
    let mut events = watcher.events();
    let at_start = nonces.issue(unix_now());

    rename_into(&file.0, b"too short\n");
    let event = next(&mut events).await;
    assert!(
        matches!(
            event.outcome.as_ref().map_err(|e| &**e),
            Err(ConfigError::Key { .. })
        ),
        "{event:?}"
    );
    assert!(!format!("{event:?}").contains("too short"));
    assert_eq!(
        nonces.issue(unix_now()),
        DpopNonces::new(SECRET).unwrap().issue(unix_now())
    );

    std::fs::remove_file(&file.0).unwrap();
    let event = next(&mut events).await;
    assert!(
        matches!(
            event.outcome.as_ref().map_err(|e| &**e),
            Err(ConfigError::Io { .. })
        ),
        "{event:?}"
    );

    rename_into(&file.0, b"fedcba9876543210fedcba9876543210\n");
    let event = next(&mut events).await;
    assert!(event.outcome.is_ok(), "{event:?}");
    let now = unix_now();
    assert_eq!(
        nonces.issue(now),
        DpopNonces::new(OTHER).unwrap().issue(now)
    );
    // The nonce issued before, under the old key, is still good (its step, or the next).
    assert_ne!(nonces.check(&at_start, now), NonceCheck::Invalid);
}
