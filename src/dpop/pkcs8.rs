//! What a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5, RFC 5958 §2) holds, read and written by
//! RustCrypto's `pkcs8` crate (with its `der` and `spki`).
//!
//! Why the crate and not a DER reader of our own: `der` reads strict DER (minimal lengths, no
//! trailing bytes) and `pkcs8` checks what a hand-written reader skipped (RFC 5958's version
//! against the presence of the public key), and the crate is already in the graph wherever the
//! `rust-crypto` backend is: jsonwebtoken's RustCrypto signers load their keys with it. With
//! `default-features = false` it brings only `pkcs8`, `spki`, `der` and `const-oid`, small
//! `no_std` crates without build scripts, to the other configurations. No allocating feature is
//! needed: the two documents certbound writes go into buffers of the length the crate computes.

use jsonwebtoken::Algorithm;
use pkcs8::der::asn1::{AnyRef, OctetStringRef};
use pkcs8::der::{Decode as _, Encode as _};
use pkcs8::{AlgorithmIdentifierRef, ObjectIdentifier, PrivateKeyInfo};

use crate::error::ConfigError;

/// id-ecPublicKey (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 (RFC 5480 §2.1.1.1).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (RFC 5480 §2.1.1.1).
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// id-Ed25519 (RFC 8410 §3).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// rsaEncryption (RFC 8017 Appendix C).
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// What a PKCS#8 document holds.
#[derive(Debug)]
pub(super) enum Key<'a> {
    /// An EC key on the curve of this algorithm.
    Ec(Algorithm),
    /// The 32-byte seed of an Ed25519 key.
    Ed25519(&'a [u8; 32]),
    /// The PKCS#1 `RSAPrivateKey` of an RSA key.
    Rsa(&'a [u8]),
}

fn malformed() -> ConfigError {
    ConfigError::key("not a PKCS#8 private key", None)
}

fn unsupported(what: &str) -> ConfigError {
    ConfigError::key(
        format!("{what}: DPoP keys are EC P-256 or P-384, Ed25519 or RSA"),
        None,
    )
}

/// Reads the key type, curve and private key of a PKCS#8 document (v1 or v2; attributes and
/// the public key, when present, are not needed).
pub(super) fn parse(der: &[u8]) -> Result<Key<'_>, ConfigError> {
    // The crate's errors name a DER position and tag, never key bytes, but "not PKCS#8" is all
    // a caller can act on.
    let info = PrivateKeyInfo::from_der(der).map_err(|_| malformed())?;
    let algorithm = info.algorithm;
    match algorithm.oid {
        EC_PUBLIC_KEY => match algorithm.parameters_oid().map_err(|_| malformed())? {
            P256 => Ok(Key::Ec(Algorithm::ES256)),
            P384 => Ok(Key::Ec(Algorithm::ES384)),
            _ => Err(unsupported("an EC key on an unsupported curve")),
        },
        ED25519 => {
            // RFC 8410 §3: the parameters are absent; the key is a CurvePrivateKey, itself
            // an OCTET STRING.
            if algorithm.parameters.is_some() {
                return Err(malformed());
            }
            let seed = OctetStringRef::from_der(info.private_key).map_err(|_| malformed())?;
            seed.as_bytes()
                .try_into()
                .map(Key::Ed25519)
                .map_err(|_| malformed())
        }
        RSA => {
            // RFC 8017 Appendix C: NULL parameters; absent ones are accepted as well.
            if !algorithm.parameters.is_none_or(AnyRef::is_null) {
                return Err(malformed());
            }
            Ok(Key::Rsa(info.private_key))
        }
        _ => Err(unsupported("an unsupported key type")),
    }
}

/// The DER encoding of `info`. The encoding fails only for a document beyond what DER
/// lengths here can express, which no key the backends accept comes near.
fn encode(info: &PrivateKeyInfo<'_>) -> Result<Vec<u8>, ConfigError> {
    let too_long = |_| ConfigError::key("the key is too long for a PKCS#8 document", None);
    let len = info.encoded_len().map_err(too_long)?;
    let mut der = vec![0; usize::try_from(len).map_err(too_long)?];
    info.encode_to_slice(&mut der).map_err(too_long)?;
    Ok(der)
}

/// The PKCS#8 v1 document of the Ed25519 key with this seed (RFC 8410 §7).
pub(super) fn ed25519_v1(seed: &[u8; 32]) -> Result<Vec<u8>, ConfigError> {
    // The CurvePrivateKey: the seed as an OCTET STRING (tag, length, 32 bytes).
    let mut curve_private_key = [0u8; 34];
    let curve_private_key = OctetStringRef::new(seed)
        .and_then(|seed| seed.encode_to_slice(&mut curve_private_key))
        .map_err(|_| malformed())?;
    encode(&PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: ED25519,
            parameters: None,
        },
        curve_private_key,
    ))
}

/// The PKCS#8 v1 document of the RSA key `pkcs1` (an `RSAPrivateKey`).
pub(super) fn wrap_rsa(pkcs1: &[u8]) -> Result<Vec<u8>, ConfigError> {
    encode(&PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: RSA,
            parameters: Some(AnyRef::NULL),
        },
        pkcs1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::DpopKey;

    /// RFC 8037 Appendix A.1's Ed25519 seed.
    const SEED: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];

    /// Its public key (`x`).
    const PUBLIC: [u8; 32] = [
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ];

    /// The PKCS#8 v1 form of an Ed25519 key up to its seed, as RFC 8410 §7 and `openssl
    /// genpkey` write it.
    const ED25519_V1_PREFIX: [u8; 16] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];

    fn rcgen_key(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        rcgen::KeyPair::generate_for(alg).unwrap().serialize_der()
    }

    /// The v2 form of the same Ed25519 key: version 1, and the public key as `[1]`.
    fn ed25519_v2() -> Vec<u8> {
        let mut der = vec![0x30, 0x51, 0x02, 0x01, 0x01];
        der.extend_from_slice(&ED25519_V1_PREFIX[5..]);
        der.extend_from_slice(&SEED);
        der.extend_from_slice(&[0x81, 0x21, 0x00]);
        der.extend_from_slice(&PUBLIC);
        der
    }

    #[test]
    fn ec_ed25519_and_rsa_documents_are_told_apart() {
        assert!(matches!(
            parse(&rcgen_key(&rcgen::PKCS_ECDSA_P256_SHA256)),
            Ok(Key::Ec(Algorithm::ES256))
        ));
        assert!(matches!(
            parse(&rcgen_key(&rcgen::PKCS_ECDSA_P384_SHA384)),
            Ok(Key::Ec(Algorithm::ES384))
        ));
        let v1 = ed25519_v1(&SEED).unwrap();
        assert!(matches!(parse(&v1), Ok(Key::Ed25519(seed)) if *seed == SEED));
        assert!(matches!(parse(&ed25519_v2()), Ok(Key::Ed25519(seed)) if *seed == SEED));
        // The backends' own v2 documents.
        let generated = rcgen_key(&rcgen::PKCS_ED25519);
        assert!(matches!(parse(&generated), Ok(Key::Ed25519(_))));
        // Parsing does not look into the RSAPrivateKey; the backend does.
        let pkcs1 = [0x30, 0x03, 0x02, 0x01, 0x00];
        assert!(matches!(parse(&wrap_rsa(&pkcs1).unwrap()), Ok(Key::Rsa(k)) if k == pkcs1));
    }

    #[test]
    fn the_documents_written_are_the_rfc_forms_byte_for_byte() {
        let v1 = ed25519_v1(&SEED).unwrap();
        assert_eq!(v1[..16], ED25519_V1_PREFIX);
        assert_eq!(v1[16..], SEED);
        // rsaEncryption with NULL parameters, and a length past 255 in the fewest bytes.
        let pkcs1 = [7u8; 300];
        let rsa = wrap_rsa(&pkcs1).unwrap();
        let mut expected = vec![0x30, 0x82, 0x01, 0x42, 0x02, 0x01, 0x00];
        expected.extend_from_slice(&[0x30, 0x0D, 0x06, 0x09]);
        expected.extend_from_slice(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]);
        expected.extend_from_slice(&[0x05, 0x00, 0x04, 0x82, 0x01, 0x2C]);
        expected.extend_from_slice(&pkcs1);
        assert_eq!(rsa, expected);
    }

    #[test]
    fn attributes_are_skipped_and_rsa_parameters_may_be_absent() {
        // A v1 Ed25519 document with an empty attribute set, [0], after the private key.
        let mut with_attributes = ed25519_v1(&SEED).unwrap();
        with_attributes[1] += 2;
        with_attributes.extend_from_slice(&[0xA0, 0x00]);
        assert!(matches!(parse(&with_attributes), Ok(Key::Ed25519(_))));
        // rsaEncryption without its NULL.
        let pkcs1 = [0x30, 0x03, 0x02, 0x01, 0x00];
        let absent = [
            &[0x30, 0x17, 0x02, 0x01, 0x00, 0x30, 0x0B, 0x06, 0x09][..],
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01],
            &[0x04, 0x05],
            &pkcs1,
        ]
        .concat();
        assert!(matches!(parse(&absent), Ok(Key::Rsa(k)) if k == pkcs1));
    }

    #[test]
    fn documents_that_are_not_strict_pkcs8_are_refused() {
        let v1 = ed25519_v1(&SEED).unwrap();
        let refused = |der: &[u8]| matches!(parse(der), Err(ConfigError::Key { .. }));
        // A length in more bytes than it needs.
        let long_form = [&[0x30, 0x81][..], &v1[1..]].concat();
        assert!(refused(&long_form));
        // Trailing bytes after the document.
        assert!(refused(&[&v1[..], &[0x00]].concat()));
        // Version 2 (RFC 5958 `v2`) without the public key it announces, and version 3.
        for version in [1, 2] {
            let mut bad = v1.clone();
            bad[4] = version;
            assert!(refused(&bad), "version {version}");
        }
        // Ed25519 with parameters, or with a seed that is not 32 bytes.
        let mut with_parameters = [&[0x30, 0x30], &v1[2..5], &[0x30, 0x07]].concat();
        with_parameters.extend_from_slice(&[0x06, 0x03, 0x2B, 0x65, 0x70, 0x05, 0x00]);
        with_parameters.extend_from_slice(&v1[12..]);
        assert!(refused(&with_parameters));
        let short_seed = [&[0x30, 0x2D], &v1[2..13], &[0x21, 0x04, 0x1F], &SEED[1..]].concat();
        assert!(refused(&short_seed));
        // An EC key without a curve, and an RSA key whose parameters are not NULL.
        let no_curve = [
            &[0x30, 0x10, 0x02, 0x01, 0x00, 0x30, 0x09, 0x06, 0x07][..],
            &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x04, 0x00],
        ]
        .concat();
        assert!(refused(&no_curve));
        let mut rsa = wrap_rsa(&[0x30, 0x00]).unwrap();
        rsa[20] = 0x01; // NULL (05 00) becomes BOOLEAN with no contents
        assert!(refused(&rsa));
        // The key types and curves DPoP signing here does not support say so.
        let p521 = parse(&rcgen_key(&rcgen::PKCS_ECDSA_P521_SHA512)).unwrap_err();
        assert!(p521.to_string().contains("curve"), "{p521}");
        let mut x25519 = v1.clone();
        x25519[11] = 0x6E; // 1.3.101.110, id-X25519
        let err = parse(&x25519).unwrap_err();
        assert!(err.to_string().contains("unsupported key type"), "{err}");
    }

    #[test]
    fn truncated_mutated_and_random_documents_are_errors_never_panics() {
        let valid = [
            rcgen_key(&rcgen::PKCS_ECDSA_P256_SHA256),
            rcgen_key(&rcgen::PKCS_ECDSA_P384_SHA384),
            ed25519_v1(&SEED).unwrap(),
            ed25519_v2(),
            wrap_rsa(&[0x30, 0x03, 0x02, 0x01, 0x00]).unwrap(),
        ];
        // Every strict prefix is an error, from the reader and from the public entry point.
        for der in &valid {
            for end in 0..der.len() {
                assert!(parse(&der[..end]).is_err(), "{:02x?}", &der[..end]);
                assert!(
                    DpopKey::from_pkcs8_der(&der[..end]).is_err(),
                    "prefix {end}"
                );
            }
        }
        // Seeded mutations (some stay valid: a changed seed byte is another key): no panic.
        let borrowed: Vec<&[u8]> = valid.iter().map(Vec::as_slice).collect();
        let inserts = [
            0x00, 0x01, 0x04, 0x05, 0x06, 0x30, 0x80, 0x81, 0x84, 0xA0, 0xA1, 0xFF,
        ];
        for der in crate::test_helpers::mutations(0x5eed_9cc5, &borrowed, &inserts, 3000) {
            let _ = parse(&der);
            let _ = DpopKey::from_pkcs8_der(&der);
        }
        // Random bytes (xorshift64, seeded), with and without a SEQUENCE header in front.
        let mut state = 0x0123_4567_89ab_cdef_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let len = (next() % 200) as usize;
            let mut der: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                der.splice(0..0, [0x30, len as u8]);
            }
            assert!(parse(&der).is_err(), "{der:02x?}");
            assert!(DpopKey::from_pkcs8_der(&der).is_err(), "{der:02x?}");
        }
    }
}
