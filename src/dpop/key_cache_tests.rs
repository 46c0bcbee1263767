//! Tests of the process's proof-key memo (`key_cache`): proofs by a key seen on another
//! connection (or none), the rules checked again on every hit, and the bound.

use super::*;
use crate::dpop::key_cache::{Memos, ProofKeyCache};
use crate::dpop::key_memo::{self, ProofKeyMemo};
use crate::dpop::Dpop;
use std::sync::Arc;

/// `proof` checked for `GET` [`HTU`] with [`TOKEN`] at [`NOW`] under `rules`, with the
/// connection's memo `connection` (if any) and the process's `shared`.
fn check_on(
    proof: &str,
    rules: &ProofRules,
    connection: Option<&ProofKeyMemo>,
    shared: &ProofKeyCache,
) -> Result<VerifiedProof, AuthErrorKind> {
    let hash = token_hash();
    let memos = Memos {
        connection,
        shared: Some(shared),
    };
    verify(proof, &expected_get(&hash), rules, memos).map_err(|e| e.kind())
}

fn header_of(proof: &str) -> &str {
    proof.split('.').next().unwrap()
}

fn with_jti(jti: &str) -> Value {
    with(claims(), "jti", Some(json!(jti)))
}

const ES256: &[Algorithm] = &[Algorithm::ES256];

#[test]
fn a_second_proof_by_the_same_key_on_another_connection_hits_the_shared_memo_and_verifies() {
    let rules = ProofRules::default();
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let signer = Signer::new(alg);
        let shared = ProofKeyCache::new(16);
        let first_connection = ProofKeyMemo::default();
        let first = signer.sign_parts(&signer.header(), &claims());
        check_on(&first, &rules, Some(&first_connection), &shared).unwrap();
        assert_eq!(shared.len(), 1, "{alg:?}");
        let held = shared.recall(header_of(&first), &[alg], None).unwrap();
        // Another connection: a hit in the process's memo, which the connection now holds too.
        let other_connection = ProofKeyMemo::default();
        let second = signer.sign_parts(&signer.header(), &with_jti("second"));
        let verified = check_on(&second, &rules, Some(&other_connection), &shared).unwrap();
        assert!(verified.jkt() == &signer.jkt() && verified.jti() == "second");
        let on_connection =
            key_memo::recall_header(&other_connection, header_of(&second), &[alg], None).unwrap();
        assert!(Arc::ptr_eq(&held, &on_connection), "{alg:?}");
        // No connection at all (a token endpoint): a hit too; still the one entry.
        let third = signer.sign_parts(&signer.header(), &with_jti("third"));
        assert!(check_on(&third, &rules, None, &shared).unwrap().jkt() == &signer.jkt());
        let after = shared.recall(header_of(&first), &[alg], None).unwrap();
        assert!(Arc::ptr_eq(&held, &after) && shared.len() == 1, "{alg:?}");
    }
}

#[test]
fn a_shared_hit_checks_the_alg_allow_list_and_the_verifying_backend_again() {
    let signer = Signer::new(Algorithm::ES256);
    let shared = ProofKeyCache::new(16);
    let first = signer.sign_parts(&signer.header(), &claims());
    check_on(&first, &ProofRules::default(), None, &shared).unwrap();
    // Rules allowing only EdDSA: no hit, and the proof is refused on a new connection.
    assert!(shared
        .recall(header_of(&first), &[Algorithm::EdDSA], None)
        .is_none());
    let eddsa_only = ProofRules {
        algorithms: vec![Algorithm::EdDSA],
        ..ProofRules::default()
    };
    let second = signer.sign_parts(&signer.header(), &with_jti("second"));
    let connection = ProofKeyMemo::default();
    assert_eq!(
        check_on(&second, &eddsa_only, Some(&connection), &shared).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
    assert!(!connection.holds());
    // Another verifying backend (an application's provider): a hit only when both backends take
    // the same form of key; the proof verifies either way, with its own form.
    let provider = crate::support::crypto::jose_provider().unwrap();
    let by_provider = shared.recall(header_of(&first), ES256, Some(provider));
    assert_eq!(by_provider.is_some(), !proof_key::native(None));
    let provider_rules = ProofRules {
        provider: Some(provider),
        ..ProofRules::default()
    };
    let third = signer.sign_parts(&signer.header(), &with_jti("third"));
    let verified = check_on(&third, &provider_rules, None, &shared).unwrap();
    assert!(verified.jkt() == &signer.jkt());
}

#[test]
fn a_forged_signature_under_a_cached_header_is_refused() {
    let signer = Signer::new(Algorithm::ES256);
    let other = Signer::new(Algorithm::ES256);
    let shared = ProofKeyCache::new(16);
    let first = signer.sign_parts(&signer.header(), &claims());
    check_on(&first, &ProofRules::default(), None, &shared).unwrap();
    let held = shared.recall(header_of(&first), ES256, None).unwrap();
    // The cached header's text, signed by another key: the header is not read again, the
    // signature is, and refuses it; the connection remembers nothing, the entry is unchanged.
    let forged = other.sign_parts(&signer.header(), &with_jti("forged"));
    assert_eq!(header_of(&forged), header_of(&first));
    let connection = ProofKeyMemo::default();
    assert_eq!(
        check_on(&forged, &ProofRules::default(), Some(&connection), &shared).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
    assert!(!connection.holds());
    let after = shared.recall(header_of(&first), ES256, None).unwrap();
    assert!(Arc::ptr_eq(&held, &after) && shared.len() == 1);
}

#[test]
fn a_proof_that_fails_leaves_nothing_in_the_shared_memo() {
    let signer = Signer::new(Algorithm::ES256);
    let other = Signer::new(Algorithm::ES256);
    let shared = ProofKeyCache::new(16);
    let rules = ProofRules::default();
    // A bad signature; a good one on a claim that fails (htm); one too old.
    let forged = other.sign_parts(&signer.header(), &claims());
    let wrong_method = signer.sign_parts(
        &signer.header(),
        &with(claims(), "htm", Some(json!("POST"))),
    );
    let too_old = signer.sign_parts(
        &signer.header(),
        &with(claims(), "iat", Some(json!(NOW - 3600))),
    );
    for proof in [forged, wrong_method, too_old] {
        let connection = ProofKeyMemo::default();
        assert!(check_on(&proof, &rules, Some(&connection), &shared).is_err());
        assert!(shared.len() == 0 && !connection.holds());
        assert!(shared.recall(header_of(&proof), ES256, None).is_none());
    }
    check_on(
        &signer.sign_parts(&signer.header(), &claims()),
        &rules,
        None,
        &shared,
    )
    .unwrap();
    assert_eq!(shared.len(), 1);
}

#[test]
fn the_bound_holds_and_evicted_keys_are_derived_again() {
    let shared = ProofKeyCache::new(8);
    let rules = ProofRules::default();
    let signers: Vec<Signer> = (0..40).map(|_| Signer::new(Algorithm::ES256)).collect();
    for (i, signer) in signers.iter().enumerate() {
        let proof = signer.sign_parts(&signer.header(), &claims());
        assert!(check_on(&proof, &rules, None, &shared).unwrap().jkt() == &signer.jkt());
        assert!(shared.len() <= 8, "{} keys after {i}", shared.len());
    }
    // Every key again, each on a connection of its own: the right thumbprint, from the memo or
    // derived again after its eviction.
    for signer in &signers {
        let proof = signer.sign_parts(&signer.header(), &with_jti("again"));
        let connection = ProofKeyMemo::default();
        let verified = check_on(&proof, &rules, Some(&connection), &shared).unwrap();
        assert!(verified.jkt() == &signer.jkt());
        assert!(shared.len() <= 8, "{} keys", shared.len());
    }
}

/// A proof for `GET` [`HTU`] with [`TOKEN`], dated now, as `Dpop::check` takes it.
fn headers_now(signer: &Signer, jti: &str) -> http::HeaderMap {
    let now = crate::support::time::unix_now();
    let claims = with(with_jti(jti), "iat", Some(json!(now)));
    let mut headers = http::HeaderMap::new();
    let proof = signer.sign_parts(&signer.header(), &claims);
    headers.insert(&DPOP, http::HeaderValue::from_str(&proof).unwrap());
    headers
}

#[test]
fn clones_of_a_dpop_share_its_memo_and_zero_turns_it_off() {
    let signer = Signer::new(Algorithm::ES256);
    let hash = token_hash();
    let dpop = Dpop::new();
    let clone = dpop.clone();
    let (one, two) = (ProofKeyMemo::default(), ProofKeyMemo::default());
    dpop.check(
        &headers_now(&signer, "one"),
        "GET",
        request_htu(),
        Some(&hash),
        Some(&one),
    )
    .unwrap();
    let shared = dpop.proof_keys().unwrap();
    assert_eq!(shared.len(), 1);
    // The clone, on another connection: the same memory, which it hits.
    let (verified, _) = clone
        .check(
            &headers_now(&signer, "two"),
            "GET",
            request_htu(),
            Some(&hash),
            Some(&two),
        )
        .unwrap();
    assert!(verified.jkt() == &signer.jkt());
    assert!(std::ptr::eq(shared, clone.proof_keys().unwrap()) && shared.len() == 1);
    assert!(two.holds());
    // Turned off: proofs verify, nothing is remembered but by the connection.
    let off = Dpop::new().max_cached_proof_keys(0);
    assert!(off.proof_keys().is_none());
    let three = ProofKeyMemo::default();
    let (verified, _) = off
        .check(
            &headers_now(&signer, "three"),
            "GET",
            request_htu(),
            Some(&hash),
            Some(&three),
        )
        .unwrap();
    assert!(verified.jkt() == &signer.jkt() && three.holds());
    assert!(Dpop::new().max_cached_proof_keys(1).proof_keys().is_some());
}
