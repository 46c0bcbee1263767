//! JWT signing keys and their public JWKs.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    KeyPair, RsaKeySize, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_ED25519, PKCS_RSA_SHA256,
};
use serde_json::{json, Value};

use super::{b64url, init};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ec { crv: &'static str, coord_len: usize },
    Rsa,
    Ed25519,
}

/// A private signing key for test access tokens.
pub struct TestKey {
    kid: Option<String>,
    alg: Algorithm,
    kind: Kind,
    encoding: EncodingKey,
    /// Raw public key: EC uncompressed point, RSA PKCS#1 `RSAPublicKey` DER, Ed25519 32 bytes.
    public_raw: Vec<u8>,
    public_pem: String,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    fn build(kid: Option<&str>, alg: Algorithm, kind: Kind, key: KeyPair) -> TestKey {
        init();
        let pkcs8 = key.serialize_der();
        let encoding = match kind {
            Kind::Ec { .. } => EncodingKey::from_ec_der(&pkcs8),
            // jsonwebtoken's RSA signer wants PKCS#1; its PEM reader unwraps PKCS#8 for us.
            Kind::Rsa => {
                EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).expect("RSA PKCS#8 PEM")
            }
            Kind::Ed25519 => EncodingKey::from_ed_der(&pkcs8),
        };
        TestKey {
            kid: kid.map(str::to_owned),
            alg,
            kind,
            encoding,
            public_raw: key.public_key_raw().to_vec(),
            public_pem: key.public_key_pem(),
        }
    }

    fn generate(alg: &'static SignatureAlgorithm) -> KeyPair {
        KeyPair::generate_for(alg).expect("generate key")
    }

    /// ECDSA P-256 / ES256.
    pub fn es256(kid: &str) -> TestKey {
        Self::es256_inner(Some(kid))
    }

    /// ES256 key whose JWK and token headers carry no `kid`.
    pub fn es256_without_kid() -> TestKey {
        Self::es256_inner(None)
    }

    fn es256_inner(kid: Option<&str>) -> TestKey {
        let kind = Kind::Ec {
            crv: "P-256",
            coord_len: 32,
        };
        let key = Self::generate(&PKCS_ECDSA_P256_SHA256);
        Self::build(kid, Algorithm::ES256, kind, key)
    }

    /// ECDSA P-384 / ES384.
    pub fn es384(kid: &str) -> TestKey {
        let kind = Kind::Ec {
            crv: "P-384",
            coord_len: 48,
        };
        let key = Self::generate(&PKCS_ECDSA_P384_SHA384);
        Self::build(Some(kid), Algorithm::ES384, kind, key)
    }

    /// RSA 2048 / RS256.
    pub fn rs256(kid: &str) -> TestKey {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .expect("generate RSA key");
        Self::build(Some(kid), Algorithm::RS256, Kind::Rsa, key)
    }

    /// Ed25519 / EdDSA.
    pub fn eddsa(kid: &str) -> TestKey {
        let key = Self::generate(&PKCS_ED25519);
        Self::build(Some(kid), Algorithm::EdDSA, Kind::Ed25519, key)
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The JWS algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
            other => unreachable!("TestKey never uses {other:?}"),
        }
    }

    /// The public JWK: `kty`, key parameters, `kid` (if any), `use: "sig"`, `alg`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match self.kind {
            Kind::Ec { crv, coord_len } => {
                let point = &self.public_raw;
                assert_eq!(point.len(), 1 + 2 * coord_len, "uncompressed EC point");
                assert_eq!(point[0], 0x04, "uncompressed EC point");
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64url(&point[1..1 + coord_len]),
                    "y": b64url(&point[1 + coord_len..]),
                })
            }
            Kind::Rsa => {
                let (n, e) = parse_pkcs1_public(&self.public_raw);
                json!({ "kty": "RSA", "n": b64url(n), "e": b64url(e) })
            }
            Kind::Ed25519 => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64url(&self.public_raw) })
            }
        };
        let obj = jwk.as_object_mut().expect("object");
        if let Some(kid) = &self.kid {
            obj.insert("kid".into(), kid.clone().into());
        }
        obj.insert("use".into(), "sig".into());
        obj.insert("alg".into(), self.alg_name().into());
        jwk
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> String {
        self.public_pem.clone()
    }

    /// For the HS256-with-the-RSA-public-key confusion attack: the PKCS#1 `RSAPublicKey` DER
    /// bytes (what a naive verifier holding an RSA `DecodingKey` might feed to HMAC).
    /// Panics for non-RSA keys.
    pub fn rsa_public_key_der_bytes(&self) -> Vec<u8> {
        assert_eq!(self.kind, Kind::Rsa, "not an RSA key");
        self.public_raw.clone()
    }

    /// For the same attack: the bytes of the SPKI PEM text (the classic variant, where the
    /// verifier's configured PEM file is used as the HMAC secret). Panics for non-RSA keys.
    pub fn rsa_public_pem_bytes(&self) -> Vec<u8> {
        assert_eq!(self.kind, Kind::Rsa, "not an RSA key");
        self.public_pem.clone().into_bytes()
    }

    /// The header [`TestKey::sign`] uses: this key's `alg`, its `kid`, `typ: "at+jwt"`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        header.typ = Some("at+jwt".to_owned());
        header
    }

    /// Signs `claims` with [`TestKey::header`].
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(self.header(), claims)
    }

    /// Signs `claims` with an arbitrary header (its `alg` must suit this key).
    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        init();
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign JWT")
    }

    /// Signs arbitrary header and payload bytes (not necessarily JSON) with this key's algorithm:
    /// validly signed garbage, for robustness tests.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        init();
        let message = format!("{}.{}", super::b64url(header), super::b64url(payload));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).expect("sign");
        format!("{message}.{signature}")
    }
}

/// `{"keys": [public_jwk, ...]}`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

/// Splits a DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` into
/// unsigned big-endian (n, e) without leading zero bytes.
fn parse_pkcs1_public(der: &[u8]) -> (&[u8], &[u8]) {
    fn tlv(input: &[u8], tag: u8) -> (&[u8], &[u8]) {
        assert_eq!(input[0], tag, "unexpected DER tag");
        let (len, header) = match input[1] {
            l if l < 0x80 => (l as usize, 2),
            l => {
                let n = (l & 0x7f) as usize;
                let len = input[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | *b as usize);
                (len, 2 + n)
            }
        };
        (&input[header..header + len], &input[header + len..])
    }
    fn strip(int: &[u8]) -> &[u8] {
        let zeros = int.iter().take_while(|b| **b == 0).count();
        &int[zeros.min(int.len() - 1)..]
    }
    let (seq, rest) = tlv(der, 0x30);
    assert!(rest.is_empty(), "trailing data after RSAPublicKey");
    let (n, rest) = tlv(seq, 0x02);
    let (e, rest) = tlv(rest, 0x02);
    assert!(rest.is_empty(), "trailing data in RSAPublicKey");
    (strip(n), strip(e))
}
