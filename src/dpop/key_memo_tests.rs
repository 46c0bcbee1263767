//! Tests of the connection's proof-key memo (`key_memo`) and of the two verifying paths
//! (`proof_key`): aws-lc-rs directly, and jsonwebtoken's provider.

use super::*;
use crate::dpop::key_cache::Memos;
use crate::dpop::key_memo::{self, ProofKeyMemo};
use crate::dpop::proof_key::Members;

/// `proof` checked as [`verify_default`] does, with the connection's `memo`.
fn check_with(proof: &str, memo: &ProofKeyMemo) -> Result<VerifiedProof, AuthErrorKind> {
    let hash = token_hash();
    verify(
        proof,
        &expected_get(&hash),
        &ProofRules::default(),
        Memos::connection(memo),
    )
    .map_err(|e| e.kind())
}

/// The `jwk` members of `signer`'s header, as `verify` reads them.
fn members(jwk: &Value) -> Members<'_> {
    Members {
        kty: jwk["kty"].as_str(),
        crv: jwk["crv"].as_str(),
        x: jwk["x"].as_str(),
        y: jwk["y"].as_str(),
        n: jwk["n"].as_str(),
        e: jwk["e"].as_str(),
    }
}

fn remembered(memo: &ProofKeyMemo, jwk: &Value, alg: Algorithm) -> bool {
    key_memo::recall(memo, &members(jwk), alg, None).is_some()
}

fn claims_with_jti(jti: &str) -> Value {
    with(claims(), "jti", Some(json!(jti)))
}

#[test]
fn a_second_proof_by_the_same_key_on_a_connection_hits_the_memo_and_verifies() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let signer = Signer::new(alg);
        let memo = ProofKeyMemo::default();
        assert!(!remembered(&memo, &signer.jwk, alg));
        let first = check_with(&signer.sign_parts(&signer.header(), &claims()), &memo).unwrap();
        assert!(remembered(&memo, &signer.jwk, alg), "{alg:?}");
        let held = key_memo::recall(&memo, &members(&signer.jwk), alg, None).unwrap();
        let second = signer.sign_parts(&signer.header(), &claims_with_jti("second"));
        let second = check_with(&second, &memo).unwrap();
        assert!(first.jkt() == &signer.jkt() && second.jkt() == &signer.jkt());
        assert_eq!(second.jti(), "second");
        // Still the same entry: the second proof derived nothing.
        let after = key_memo::recall(&memo, &members(&signer.jwk), alg, None).unwrap();
        assert!(std::sync::Arc::ptr_eq(&held, &after), "{alg:?}");
    }
}

#[test]
fn the_thumbprint_from_the_memo_equals_thumbprint_of() {
    let signer = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    check_with(&signer.sign_parts(&signer.header(), &claims()), &memo).unwrap();
    let held = key_memo::recall(&memo, &members(&signer.jwk), Algorithm::ES256, None).unwrap();
    let jwk = &signer.jwk;
    let public = crate::dpop::jwk::PublicKey::Ec(
        jwk["crv"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap(),
    );
    assert!(held.jkt() == thumbprint_of(public).unwrap());
}

#[test]
fn a_proof_by_another_key_after_a_remembered_one_is_verified_with_its_own_key() {
    let first = Signer::new(Algorithm::ES256);
    let other = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    check_with(&first.sign_parts(&first.header(), &claims()), &memo).unwrap();
    // The other key's header, signed by the remembered key: refused.
    let forged = first.sign_parts(&other.header(), &claims_with_jti("forged"));
    assert_eq!(
        check_with(&forged, &memo).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
    // Signed by the other key: verified, with the other key's thumbprint, which is remembered.
    let own = other.sign_parts(&other.header(), &claims_with_jti("own"));
    assert!(check_with(&own, &memo).unwrap().jkt() == &other.jkt());
    assert!(remembered(&memo, &other.jwk, Algorithm::ES256));
    assert!(!remembered(&memo, &first.jwk, Algorithm::ES256));
    // And the remembered key's header, signed by the other key: refused too.
    let forged = other.sign_parts(&first.header(), &claims_with_jti("forged-2"));
    assert_eq!(
        check_with(&forged, &memo).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
}

#[test]
fn members_that_differ_in_one_character_from_the_remembered_key_are_not_a_hit() {
    let signer = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    check_with(&signer.sign_parts(&signer.header(), &claims()), &memo).unwrap();
    for member in ["kty", "crv", "x", "y"] {
        let mut jwk = signer.jwk.clone();
        let mut text = jwk[member].as_str().unwrap().to_owned();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        jwk[member] = json!(text);
        assert!(!remembered(&memo, &jwk, Algorithm::ES256), "{member}");
        // A member more (n) or less is not a hit either.
        let mut extra = signer.jwk.clone();
        extra["n"] = json!("AQAB");
        assert!(!remembered(&memo, &extra, Algorithm::ES256));
    }
    // Nor another algorithm, nor the form another provider verifies with.
    assert!(!remembered(&memo, &signer.jwk, Algorithm::ES384));
    let provider = crate::support::crypto::jose_provider().unwrap();
    let other_backend = key_memo::recall(
        &memo,
        &members(&signer.jwk),
        Algorithm::ES256,
        Some(provider),
    );
    assert_eq!(other_backend.is_some(), !proof_key::native(None));
    // A proof whose x differs in one character verifies nothing with the remembered key.
    let mut header = signer.header();
    let x = header["jwk"]["x"].as_str().unwrap().to_owned();
    let x = format!("{}{}", &x[..10], if &x[10..11] == "A" { "B" } else { "A" }) + &x[11..];
    header["jwk"]["x"] = json!(x);
    let changed = signer.sign_parts(&header, &claims_with_jti("changed"));
    assert!(check_with(&changed, &memo).is_err());
}

#[test]
fn a_proof_that_fails_verification_leaves_nothing_remembered() {
    let signer = Signer::new(Algorithm::ES256);
    let other = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    // A bad signature; then a good signature on a claim that fails (htm).
    let forged = other.sign_parts(&signer.header(), &claims());
    assert!(check_with(&forged, &memo).is_err());
    assert!(!memo.holds());
    let wrong_method = signer.sign_parts(
        &signer.header(),
        &with(claims(), "htm", Some(json!("POST"))),
    );
    assert!(check_with(&wrong_method, &memo).is_err());
    assert!(!memo.holds());
    check_with(&signer.sign_parts(&signer.header(), &claims()), &memo).unwrap();
    assert!(memo.holds());
}

/// `proof` checked as [`check_with`] does, under `algorithms`.
fn check_allowing(
    proof: &str,
    memo: &ProofKeyMemo,
    algorithms: Vec<Algorithm>,
) -> Result<VerifiedProof, AuthErrorKind> {
    let hash = token_hash();
    let rules = ProofRules {
        algorithms,
        ..ProofRules::default()
    };
    verify(proof, &expected_get(&hash), &rules, Memos::connection(memo)).map_err(|e| e.kind())
}

fn header_of(proof: &str) -> &str {
    proof.split('.').next().unwrap()
}

#[test]
fn a_proof_with_the_remembered_header_is_not_decoded_again_but_its_signature_is_verified() {
    let signer = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    let first = signer.sign_parts(&signer.header(), &claims());
    check_with(&first, &memo).unwrap();
    let all = [Algorithm::ES256];
    let held = key_memo::recall_header(&memo, header_of(&first), &all, None).unwrap();
    // The same header text, another proof by the key: verified from the memo, nothing derived.
    let second = signer.sign_parts(&signer.header(), &claims_with_jti("second"));
    assert_eq!(header_of(&second), header_of(&first));
    assert!(check_with(&second, &memo).unwrap().jkt() == &signer.jkt());
    let after = key_memo::recall_header(&memo, header_of(&first), &all, None).unwrap();
    assert!(std::sync::Arc::ptr_eq(&held, &after));
    // The same header text signed by another key: the header is not read again, the signature
    // still is, and refuses it.
    let other = Signer::new(Algorithm::ES256);
    let forged = other.sign_parts(&signer.header(), &claims_with_jti("forged"));
    assert_eq!(header_of(&forged), header_of(&first));
    assert_eq!(
        check_with(&forged, &memo).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
    // One character more in the header's text is not a hit.
    let mut text = header_of(&first).to_owned();
    text.push('A');
    assert!(key_memo::recall_header(&memo, &text, &all, None).is_none());
    text.pop();
    text.pop();
    assert!(key_memo::recall_header(&memo, &text, &all, None).is_none());
}

#[test]
fn a_remembered_header_whose_alg_the_rules_do_not_allow_is_refused() {
    let signer = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    let first = signer.sign_parts(&signer.header(), &claims());
    check_with(&first, &memo).unwrap();
    // Another layer on the same connection, allowing only EdDSA.
    let eddsa_only = vec![Algorithm::EdDSA];
    assert!(key_memo::recall_header(&memo, header_of(&first), &eddsa_only, None).is_none());
    let second = signer.sign_parts(&signer.header(), &claims_with_jti("second"));
    assert_eq!(
        check_allowing(&second, &memo, eddsa_only).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
    // Nor is it a hit for the form another provider verifies with.
    let provider = crate::support::crypto::jose_provider().unwrap();
    let all = [Algorithm::ES256];
    let other_backend = key_memo::recall_header(&memo, header_of(&first), &all, Some(provider));
    assert_eq!(other_backend.is_some(), !proof_key::native(None));
    // The layer that allows it still hits.
    let third = signer.sign_parts(&signer.header(), &claims_with_jti("third"));
    assert!(check_allowing(&third, &memo, vec![Algorithm::ES256]).is_ok());
}

#[test]
fn a_header_of_other_text_with_the_remembered_key_is_a_hit_by_its_members() {
    let signer = Signer::new(Algorithm::ES256);
    let memo = ProofKeyMemo::default();
    let first = signer.sign_parts(&signer.header(), &claims());
    check_with(&first, &memo).unwrap();
    let held = key_memo::recall(&memo, &members(&signer.jwk), Algorithm::ES256, None).unwrap();
    // The same key, a header with a member more: decoded and checked, then its key recalled.
    let header = with(signer.header(), "kid", Some(json!("k1")));
    let second = signer.sign_parts(&header, &claims_with_jti("second"));
    assert_ne!(header_of(&second), header_of(&first));
    assert!(check_with(&second, &memo).unwrap().jkt() == &signer.jkt());
    let after = key_memo::recall(&memo, &members(&signer.jwk), Algorithm::ES256, None).unwrap();
    assert!(std::sync::Arc::ptr_eq(&held, &after));
    // A header of other text that fails its own checks is refused, whatever the memo holds.
    let header = with(signer.header(), "crit", Some(json!(["exp"])));
    let third = signer.sign_parts(&header, &claims_with_jti("third"));
    assert_eq!(
        check_with(&third, &memo).unwrap_err(),
        AuthErrorKind::InvalidDpopProof
    );
}

/// The two verifying paths: aws-lc-rs directly, and jsonwebtoken with the same backend.
#[cfg(feature = "aws-lc-rs")]
mod paths {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};

    /// Proofs (the claims of [`claims`]) by an RSA key of 1 024 bits, below the 2 048 every RSA
    /// algorithm requires, made with `openssl genpkey -algorithm RSA -pkeyopt
    /// rsa_keygen_bits:1024` and `openssl dgst -sha256 -sign` (aws-lc-rs signs with no such key).
    const RSA_1024_PS256: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IlBTMjU2IiwiandrIjp7Imt0eSI6IlJTQSIsIm4iOiJxNUlvRGtLd0RsT1BvMV9zazdDX3o4eWYzNUVoZlZ4ZjFPc29vSl9walQtU2ZzNEdGRGdNSUR6WGo1dkZaa0VxX21KV0F4TFJFTlg0YVJJYVdHRDVqWkFIZmhVd2pTbzNjd21Fc19UVy1xQkIzV3NEMFIxLUxVNTJ1VDVZbGJoeVhkcUd6MEx3MXhkbWQzSXpuSElhNll5VlhSWVBOdGZWS0ZvWDNHZGQ3eUUiLCJlIjoiQVFBQiJ9fQ.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS93aG9hbWkiLCJpYXQiOjE4MDAwMDAwMDAsImF0aCI6ImZVSHlPMnIyWjNEWjUzRXNOcldCYjB4V1hvYU55NTlJaUtDQXFrc21RRW8ifQ.qGsu_U-48zLTvI8PJMf3DOj72DQ2ZeeS-CUaNuWaEPchmhX_uPuNORKz5jf1_Sxb7r4HI2NIpkN-o_qMsxPEUv_fgLdWTrhudUN2XHpZuyDHM9YnmRg-sid2rw_923NnqS0t2RAmYGlNiymOTfwDsYolPlrqNTnH50X8KzAry0M";
    const RSA_1024_RS256: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IlJTMjU2IiwiandrIjp7Imt0eSI6IlJTQSIsIm4iOiJxNUlvRGtLd0RsT1BvMV9zazdDX3o4eWYzNUVoZlZ4ZjFPc29vSl9walQtU2ZzNEdGRGdNSUR6WGo1dkZaa0VxX21KV0F4TFJFTlg0YVJJYVdHRDVqWkFIZmhVd2pTbzNjd21Fc19UVy1xQkIzV3NEMFIxLUxVNTJ1VDVZbGJoeVhkcUd6MEx3MXhkbWQzSXpuSElhNll5VlhSWVBOdGZWS0ZvWDNHZGQ3eUUiLCJlIjoiQVFBQiJ9fQ.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS93aG9hbWkiLCJpYXQiOjE4MDAwMDAwMDAsImF0aCI6ImZVSHlPMnIyWjNEWjUzRXNOcldCYjB4V1hvYU55NTlJaUtDQXFrc21RRW8ifQ.Q_6olA_YgQzcodVnv-Lt4UiX2PEX_AnT43B42Dw9ka3Xo1GPiXqD_NKaUPvs01n9lkCmXDEG7d3OsUP4bLDiq1FDIMJ7lB5-9UsYFNldReX00p7iBAk64Hv3C3sLgXqYCx8K_aD9nRwv5k9d6JMBw-gaEO2f_OSRjwIxxKELK0E";

    enum Key {
        Ec(sig::EcdsaKeyPair),
        Ed(sig::Ed25519KeyPair),
        Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    }

    impl Key {
        fn sign(&self, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                Key::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
                Key::Ed(pair) => pair.sign(message).as_ref().to_vec(),
                Key::Rsa(pair, encoding) => {
                    let mut out = vec![0; pair.public_modulus_len()];
                    pair.sign(*encoding, &rng, message, &mut out).unwrap();
                    out
                }
            }
        }

        fn jwk(&self) -> Value {
            match self {
                Key::Ec(pair) => {
                    let point = pair.public_key().as_ref();
                    let size = (point.len() - 1) / 2;
                    let crv = if size == 32 { "P-256" } else { "P-384" };
                    json!({"kty": "EC", "crv": crv,
                        "x": B64.encode(&point[1..1 + size]), "y": B64.encode(&point[1 + size..])})
                }
                Key::Ed(pair) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())})
                }
                Key::Rsa(pair, _) => {
                    let public = pair.public_key();
                    let components: sig::RsaPublicKeyComponents<Vec<u8>> = public.into();
                    json!({"kty": "RSA", "n": B64.encode(&components.n), "e": B64.encode(&components.e)})
                }
            }
        }
    }

    fn ec(alg: &'static sig::EcdsaSigningAlgorithm) -> Key {
        let pair = sig::EcdsaKeyPair::generate(alg).unwrap();
        Key::Ec(pair)
    }

    fn rsa(der: &[u8], encoding: &'static dyn sig::RsaEncoding) -> Key {
        Key::Rsa(sig::RsaKeyPair::from_pkcs8(der).unwrap(), encoding)
    }

    fn rsa_2048() -> Vec<u8> {
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .unwrap()
            .serialize_der()
    }

    fn proof(key: &Key, alg: &str, jwk: &Value) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        let message = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims().to_string())
        );
        let signature = B64.encode(key.sign(message.as_bytes()));
        format!("{message}.{signature}")
    }

    /// Whether each path accepts `proof` (with every RSA algorithm allowed); the two must agree.
    fn accepted(proof: &str) -> bool {
        let hash = token_hash();
        let expected = expected_get(&hash);
        let mut rules = ProofRules::default();
        rules
            .algorithms
            .extend([Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]);
        let native = verify(proof, &expected, &rules, Memos::default());
        let memo = ProofKeyMemo::default();
        let native_memo = verify(proof, &expected, &rules, Memos::connection(&memo));
        rules.provider = Some(crate::support::crypto::jose_provider().unwrap());
        let jose = verify(proof, &expected, &rules, Memos::default());
        assert_eq!(
            native.is_ok(),
            jose.is_ok(),
            "{:?} / {:?}",
            native.err(),
            jose.err()
        );
        assert_eq!(native.is_ok(), native_memo.is_ok());
        if let (Ok(native), Ok(jose)) = (&native, &jose) {
            assert!(native.jkt() == jose.jkt());
        }
        native.is_ok()
    }

    #[test]
    fn the_native_and_jsonwebtoken_paths_agree_on_valid_proofs_of_every_algorithm() {
        let der = rsa_2048();
        for (key, alg) in [
            (ec(&sig::ECDSA_P256_SHA256_FIXED_SIGNING), "ES256"),
            (ec(&sig::ECDSA_P384_SHA384_FIXED_SIGNING), "ES384"),
            (Key::Ed(sig::Ed25519KeyPair::generate().unwrap()), "EdDSA"),
            (rsa(&der, &sig::RSA_PSS_SHA256), "PS256"),
            (rsa(&der, &sig::RSA_PKCS1_SHA256), "RS256"),
        ] {
            assert!(accepted(&proof(&key, alg, &key.jwk())), "{alg}");
            // The signature of another algorithm of the family, or a flipped bit: refused by both.
            let wrong = if alg.starts_with('R') {
                "PS256"
            } else if alg == "PS256" {
                "RS256"
            } else {
                alg
            };
            if wrong != alg {
                assert!(
                    !accepted(&proof(&key, wrong, &key.jwk())),
                    "{alg} as {wrong}"
                );
            }
            let mut bad = proof(&key, alg, &key.jwk());
            let i = bad.rfind('.').unwrap() + 3;
            let flipped = if &bad[i..=i] == "A" { "B" } else { "A" };
            bad.replace_range(i..=i, flipped);
            assert!(!accepted(&bad), "{alg} flipped");
        }
    }

    #[test]
    fn the_native_and_jsonwebtoken_paths_agree_on_an_ec_point_not_on_the_curve() {
        for curve in [
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        ] {
            let key = ec(curve);
            let alg = if std::ptr::eq(curve, &sig::ECDSA_P256_SHA256_FIXED_SIGNING) {
                "ES256"
            } else {
                "ES384"
            };
            let mut jwk = key.jwk();
            let mut y = B64.decode(jwk["y"].as_str().unwrap()).unwrap();
            *y.last_mut().unwrap() ^= 1;
            jwk["y"] = json!(B64.encode(&y));
            assert!(!accepted(&proof(&key, alg, &jwk)), "{alg}");
        }
    }

    #[test]
    fn the_native_and_jsonwebtoken_paths_refuse_coordinates_of_the_wrong_length() {
        let key = ec(&sig::ECDSA_P256_SHA256_FIXED_SIGNING);
        let jwk = key.jwk();
        let x = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = B64.decode(jwk["y"].as_str().unwrap()).unwrap();
        // x || y split elsewhere: the same 64 bytes, the same point once concatenated.
        let both = [x.as_slice(), y.as_slice()].concat();
        let split = |at: usize| {
            json!({"kty": "EC", "crv": "P-256",
            "x": B64.encode(&both[..at]), "y": B64.encode(&both[at..])})
        };
        assert!(accepted(&proof(&key, "ES256", &split(32))));
        for at in [31, 33, 0] {
            assert!(
                !accepted(&proof(&key, "ES256", &split(at))),
                "x of {at} bytes"
            );
        }
        // A leading zero byte more, or a P-384-sized coordinate on P-256.
        let padded = json!({"kty": "EC", "crv": "P-256",
            "x": B64.encode([&[0u8][..], &x].concat()), "y": B64.encode(&y)});
        assert!(!accepted(&proof(&key, "ES256", &padded)));
        // An Ed25519 key of 31 or 33 bytes.
        let ed = Key::Ed(sig::Ed25519KeyPair::generate().unwrap());
        let raw = B64.decode(ed.jwk()["x"].as_str().unwrap()).unwrap();
        for x in [&raw[..31], &[&raw[..], &[0]].concat()[..]] {
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(x)});
            assert!(!accepted(&proof(&ed, "EdDSA", &jwk)));
        }
    }

    #[test]
    fn the_native_and_jsonwebtoken_paths_refuse_an_rsa_key_below_2048_bits() {
        for (proof, legacy) in [
            (RSA_1024_PS256, None),
            (
                RSA_1024_RS256,
                Some(&sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY),
            ),
        ] {
            assert!(!accepted(proof));
            // The signature itself is good: it is the key's size that is refused.
            if let Some(legacy) = legacy {
                let (message, signature) = proof.rsplit_once('.').unwrap();
                let header: Value = serde_json::from_slice(
                    &B64.decode(message.split('.').next().unwrap()).unwrap(),
                )
                .unwrap();
                let n = B64.decode(header["jwk"]["n"].as_str().unwrap()).unwrap();
                let e = B64.decode(header["jwk"]["e"].as_str().unwrap()).unwrap();
                let components = sig::RsaPublicKeyComponents { n: &n, e: &e };
                let signature = B64.decode(signature).unwrap();
                assert!(components
                    .verify(legacy, message.as_bytes(), &signature)
                    .is_ok());
            }
        }
    }
}
