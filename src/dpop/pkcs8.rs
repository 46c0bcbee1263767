//! Just enough DER to read what a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5, RFC 5958 §2) holds.

use jsonwebtoken::Algorithm;

use crate::error::ConfigError;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const NULL: u8 = 0x05;

/// 1.2.840.10045.2.1, id-ecPublicKey (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// 1.2.840.10045.3.1.7, secp256r1.
const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// 1.3.132.0.34, secp384r1.
const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// 1.3.101.112, id-Ed25519 (RFC 8410 §3).
const ED25519: &[u8] = &[0x2B, 0x65, 0x70];
/// 1.2.840.113549.1.1.1, rsaEncryption (RFC 8017 Appendix C).
const RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// The PKCS#8 v1 form of an Ed25519 key, up to its 32-byte seed (RFC 8410 §7).
const ED25519_V1_PREFIX: [u8; 16] = [
    0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

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

/// One element: its tag, its contents and what follows it. Definite lengths only, up to
/// four length bytes.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7F => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7F);
            if rest.len() < n {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(n);
            let len = len_bytes.iter().try_fold(0usize, |len, &b| {
                len.checked_mul(256)?.checked_add(b.into())
            })?;
            (len, rest)
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// An element that must have tag `tag`.
fn expect(tag: u8, input: &[u8]) -> Result<(&[u8], &[u8]), ConfigError> {
    match element(input) {
        Some((t, contents, rest)) if t == tag => Ok((contents, rest)),
        _ => Err(malformed()),
    }
}

/// Reads the key type, curve and private key of a PKCS#8 document.
pub(super) fn parse(der: &[u8]) -> Result<Key<'_>, ConfigError> {
    let (info, trailing) = expect(SEQUENCE, der)?;
    if !trailing.is_empty() {
        return Err(malformed());
    }
    // version: 0 (RFC 5208) or 1 (RFC 5958, with the public key appended).
    let (version, info) = expect(INTEGER, info)?;
    if version != [0] && version != [1] {
        return Err(malformed());
    }
    let (algorithm, info) = expect(SEQUENCE, info)?;
    // Attributes and the public key may follow; the private key is all that is needed.
    let (private_key, _) = expect(OCTET_STRING, info)?;
    let (oid, parameters) = expect(OID, algorithm)?;
    match oid {
        EC_PUBLIC_KEY => {
            let (curve, rest) = expect(OID, parameters)?;
            if !rest.is_empty() {
                return Err(malformed());
            }
            match curve {
                P256 => Ok(Key::Ec(Algorithm::ES256)),
                P384 => Ok(Key::Ec(Algorithm::ES384)),
                _ => Err(unsupported("an EC key on an unsupported curve")),
            }
        }
        ED25519 => {
            // RFC 8410 §3: the parameters are absent; the key is a CurvePrivateKey, itself
            // an OCTET STRING.
            if !parameters.is_empty() {
                return Err(malformed());
            }
            match expect(OCTET_STRING, private_key)? {
                (seed, []) => seed.try_into().map(Key::Ed25519).map_err(|_| malformed()),
                _ => Err(malformed()),
            }
        }
        RSA => {
            if !parameters.is_empty() && parameters != [NULL, 0] {
                return Err(malformed());
            }
            Ok(Key::Rsa(private_key))
        }
        _ => Err(unsupported("an unsupported key type")),
    }
}

/// The PKCS#8 v1 document of the Ed25519 key with this seed.
pub(super) fn ed25519_v1(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = Vec::with_capacity(48);
    der.extend_from_slice(&ED25519_V1_PREFIX);
    der.extend_from_slice(seed);
    der
}

/// The PKCS#8 v1 document of the RSA key `pkcs1` (an `RSAPrivateKey`).
pub(super) fn wrap_rsa(pkcs1: &[u8]) -> Vec<u8> {
    let mut algorithm = vec![OID, RSA.len() as u8];
    algorithm.extend_from_slice(RSA);
    algorithm.extend_from_slice(&[NULL, 0]);
    let mut info = vec![INTEGER, 1, 0];
    push_element(&mut info, SEQUENCE, &algorithm);
    push_element(&mut info, OCTET_STRING, pkcs1);
    let mut der = Vec::with_capacity(info.len() + 6);
    push_element(&mut der, SEQUENCE, &info);
    der
}

fn push_element(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_overlong_elements_are_refused_without_panicking() {
        assert_eq!(element(&[]), None);
        assert_eq!(element(&[0x30]), None);
        assert_eq!(element(&[0x30, 0x02, 0x01]), None);
        assert_eq!(element(&[0x30, 0x80]), None);
        assert_eq!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(element(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(element(&[0x30, 0x82, 0x00]), None);
        assert_eq!(
            element(&[0x04, 0x01, 0xAA, 0xBB]),
            Some((0x04, &[0xAA][..], &[0xBB][..]))
        );
        for der in [
            &[][..],
            &[0x30, 0x00],
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            &[0xFF; 64],
        ] {
            assert!(parse(der).is_err(), "{der:?}");
        }
    }

    #[test]
    fn long_lengths_are_written_in_the_fewest_bytes() {
        let mut out = Vec::new();
        push_element(&mut out, OCTET_STRING, &[7; 300]);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(
            element(&out),
            Some((OCTET_STRING, &[7u8; 300][..], &[][..]))
        );
    }
}
