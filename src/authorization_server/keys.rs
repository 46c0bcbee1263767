//! `self_signed_tls_client_auth` (RFC 8705 §2.2): the client's registered JWKS, reduced to
//! what the presented certificate is compared with.
//!
//! - A JWK with `x5c`: the presented leaf must be exactly `x5c[0]` (the whole DER, decoded from
//!   standard base64, RFC 7517 §4.7), never just the same subject.
//! - A JWK without `x5c`: the leaf's public key must be the JWK's key (EC P-256/384/521, RSA,
//!   Ed25519/Ed448).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;
use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;

/// The certificates and keys of one client's JWKS.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct SelfSignedKeys {
    certificates: Vec<Vec<u8>>,
    keys: Vec<KeyMaterial>,
}

#[derive(Clone, PartialEq)]
enum KeyMaterial {
    /// Named curve (OID arcs) and the uncompressed point `04 || x || y`.
    Ec {
        curve: &'static [u64],
        point: Vec<u8>,
    },
    /// Modulus and exponent without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Algorithm OID arcs and the raw public key.
    Okp {
        algorithm: &'static [u64],
        x: Vec<u8>,
    },
}

const P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const P384: &[u64] = &[1, 3, 132, 0, 34];
const P521: &[u64] = &[1, 3, 132, 0, 35];
const ED25519: &[u64] = &[1, 3, 101, 112];
const ED448: &[u64] = &[1, 3, 101, 113];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];

impl std::fmt::Debug for SelfSignedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSignedKeys")
            .field("certificates", &self.certificates.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl SelfSignedKeys {
    /// Reads a JWKS document. JWKs certbound cannot use (unknown key types, malformed members,
    /// private keys) are skipped; a document left with nothing usable is an error.
    pub(crate) fn from_jwks(jwks: &Value) -> Result<Self, String> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "JWKS has no \"keys\" array".to_owned())?;
        let mut set = Self::default();
        for jwk in keys {
            let Some(jwk) = jwk.as_object() else { continue };
            // Private key material has no place in a registration; skip rather than use it.
            if jwk.contains_key("d") || jwk.contains_key("k") {
                continue;
            }
            if let Some(x5c) = jwk.get("x5c") {
                // With a certificate, only the certificate counts (RFC 8705 §2.2).
                let first = x5c
                    .as_array()
                    .and_then(|chain| chain.first())
                    .and_then(Value::as_str)
                    .and_then(|b64| STANDARD.decode(b64).ok());
                if let Some(der) = first {
                    set.certificates.push(der);
                }
                continue;
            }
            if let Some(key) = key_material(jwk) {
                set.keys.push(key);
            }
        }
        if set.certificates.is_empty() && set.keys.is_empty() {
            return Err("JWKS holds no usable certificate (x5c) or public key".to_owned());
        }
        Ok(set)
    }

    /// Whether the presented leaf (`der`, parsed as `cert`) is one of the registered
    /// certificates or carries one of the registered keys.
    pub(crate) fn matches(&self, der: &[u8], cert: &X509Certificate<'_>) -> bool {
        // Certificates are public, but a constant-time comparison costs nothing here.
        if self
            .certificates
            .iter()
            .any(|registered| crate::support::ct::eq(registered, der))
        {
            return true;
        }
        if self.keys.is_empty() {
            return false;
        }
        let Some(presented) = presented_key(cert) else {
            return false;
        };
        self.keys.contains(&presented)
    }
}

fn b64url_member(jwk: &serde_json::Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok()
}

fn key_material(jwk: &serde_json::Map<String, Value>) -> Option<KeyMaterial> {
    match jwk.get("kty")?.as_str()? {
        "EC" => {
            let (curve, len) = match jwk.get("crv")?.as_str()? {
                "P-256" => (P256, 32),
                "P-384" => (P384, 48),
                "P-521" => (P521, 66),
                _ => return None,
            };
            let x = b64url_member(jwk, "x")?;
            let y = b64url_member(jwk, "y")?;
            // RFC 7518 §6.2.1.2: coordinates are full length.
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend(x);
            point.extend(y);
            Some(KeyMaterial::Ec { curve, point })
        }
        "RSA" => Some(KeyMaterial::Rsa {
            n: strip_zeros(&b64url_member(jwk, "n")?),
            e: strip_zeros(&b64url_member(jwk, "e")?),
        }),
        "OKP" => {
            let algorithm = match jwk.get("crv")?.as_str()? {
                "Ed25519" => ED25519,
                "Ed448" => ED448,
                _ => return None,
            };
            Some(KeyMaterial::Okp {
                algorithm,
                x: b64url_member(jwk, "x")?,
            })
        }
        _ => None,
    }
}

fn strip_zeros(int: &[u8]) -> Vec<u8> {
    let zeros = int.iter().take_while(|b| **b == 0).count();
    int[zeros..].to_vec()
}

fn arcs_eq(oid: &x509_parser::asn1_rs::Oid<'_>, arcs: &[u64]) -> bool {
    oid.iter().is_some_and(|it| it.eq(arcs.iter().copied()))
}

/// The leaf's public key in the form of [`KeyMaterial`].
fn presented_key(cert: &X509Certificate<'_>) -> Option<KeyMaterial> {
    let spki = cert.public_key();
    let algorithm = &spki.algorithm.algorithm;
    for okp in [ED25519, ED448] {
        if arcs_eq(algorithm, okp) {
            return Some(KeyMaterial::Okp {
                algorithm: okp,
                x: spki.subject_public_key.data.to_vec(),
            });
        }
    }
    match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => Some(KeyMaterial::Rsa {
            n: strip_zeros(rsa.modulus),
            e: strip_zeros(rsa.exponent),
        }),
        PublicKey::EC(point) if arcs_eq(algorithm, EC_PUBLIC_KEY) => {
            let curve_oid = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
            let curve = [P256, P384, P521]
                .into_iter()
                .find(|c| arcs_eq(&curve_oid, c))?;
            Some(KeyMaterial::Ec {
                curve,
                point: point.data().to_vec(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn x5c_is_standard_base64_and_only_the_first_entry_counts() {
        let jwks = json!({"keys": [{"kty": "EC", "x5c": ["AQID+/8=", "BAUG"]}]});
        let keys = SelfSignedKeys::from_jwks(&jwks).unwrap();
        assert_eq!(keys.certificates, vec![vec![1, 2, 3, 0xfb, 0xff]]);
        assert!(
            keys.keys.is_empty(),
            "a JWK with x5c is matched by certificate only"
        );
        // base64url is not what RFC 7517 §4.7 says: such an entry is unusable.
        let url_safe = json!({"keys": [{"kty": "EC", "x5c": ["AQID-_8"]}]});
        assert!(SelfSignedKeys::from_jwks(&url_safe).is_err());
    }

    #[test]
    fn unusable_documents_are_errors() {
        assert!(SelfSignedKeys::from_jwks(&json!({})).is_err());
        assert!(SelfSignedKeys::from_jwks(&json!({"keys": []})).is_err());
        assert!(
            SelfSignedKeys::from_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err()
        );
        // Short EC coordinates.
        assert!(SelfSignedKeys::from_jwks(
            &json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}]})
        )
        .is_err());
        // A private key is skipped even if its public part would do.
        assert!(SelfSignedKeys::from_jwks(&json!({"keys": [{"kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}))
        .is_err());
    }

    #[test]
    fn rsa_members_ignore_leading_zeros() {
        let a = json!({"keys": [{"kty": "RSA", "n": "AAEC", "e": "AQAB"}]});
        let b = json!({"keys": [{"kty": "RSA", "n": "AQI", "e": "AQAB"}]});
        assert_eq!(
            SelfSignedKeys::from_jwks(&a).unwrap(),
            SelfSignedKeys::from_jwks(&b).unwrap()
        );
    }
}
