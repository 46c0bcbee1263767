//! What the fuzz targets share: the fixed settings the seeds are made for (`examples/seeds.rs`)
//! and independent oracles (signature checks with aws-lc-rs directly, RFC 7638 thumbprints
//! with serde_json, X.509 parsing with x509-parser), so that a target checks certbound's
//! verdict against a second implementation rather than against itself.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The issuer and audience of the JWT and introspection targets.
pub const ISSUER: &str = "https://as.example";
pub const AUDIENCE: &str = "https://api.example";

/// The ES256 public key the `jose_header` validator trusts. Its private key is only in the
/// seed generator: the fuzzer cannot sign with it, so no token it makes up may validate.
pub const JWT_KEY_X: &str = "CoywwYPaAepisK2gU1PyQjFgvtL8uL5RaYZAr3P0ZaE";
pub const JWT_KEY_Y: &str = "ojUnaaOH1QtqGvGxyJgiF4lXEGXGwlY5KP463scsNmc";
pub const JWT_KEY_ID: &str = "fuzz-es256";

/// The request every `dpop_proof` input is checked against, at a fixed clock.
pub const DPOP_METHOD: &str = "POST";
pub const DPOP_HTU: &str = "https://server.example/token";
pub const DPOP_NOW: i64 = 1_700_000_000;

/// The static JWKS of the `jose_header` validator.
pub fn jwks_json() -> String {
    serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": JWT_KEY_ID, "use": "sig",
        "x": JWT_KEY_X, "y": JWT_KEY_Y,
    }]})
    .to_string()
}

/// `data` split at its first `\n`: the part before, and the rest (`None` without one).
pub fn split_line(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

/// Base64url without padding, strictly (canonical trailing bits).
pub fn b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Polls a future that must be ready at once (static keys: nothing to fetch).
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a validator with static keys returned a pending future"),
    }
}

/// Whether `signature_b64` is a signature of `message` by the public key `jwk` with `alg`,
/// checked with aws-lc-rs directly (not through jsonwebtoken).
pub fn signature_verifies(alg: &str, jwk: &Value, message: &[u8], signature_b64: &str) -> bool {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).and_then(b64url);
    let Some(sig) = b64url(signature_b64) else {
        return false;
    };
    let ec = |algorithm: &'static signature::EcdsaVerificationAlgorithm| {
        let (Some(x), Some(y)) = (member("x"), member("y")) else {
            return false;
        };
        let point = [&[4u8][..], &x, &y].concat();
        UnparsedPublicKey::new(algorithm, point)
            .verify(message, &sig)
            .is_ok()
    };
    let rsa = |algorithm: &'static signature::RsaParameters| {
        let (Some(n), Some(e)) = (member("n"), member("e")) else {
            return false;
        };
        RsaPublicKeyComponents { n, e }
            .verify(algorithm, message, &sig)
            .is_ok()
    };
    match alg {
        "ES256" => ec(&signature::ECDSA_P256_SHA256_FIXED),
        "ES384" => ec(&signature::ECDSA_P384_SHA384_FIXED),
        "EdDSA" => member("x").is_some_and(|x| {
            UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, &sig)
                .is_ok()
        }),
        "PS256" => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => rsa(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => rsa(&signature::RSA_PSS_2048_8192_SHA512),
        _ => false,
    }
}

/// The RFC 7638 thumbprint of a public JWK, computed with serde_json: the required members of
/// its `kty`, sorted, no whitespace.
pub fn rfc7638(jwk: &Value) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut canonical = serde_json::Map::new();
    for name in members {
        canonical.insert(
            (*name).to_owned(),
            Value::String(jwk.get(*name)?.as_str()?.into()),
        );
    }
    // serde_json's Map is sorted (no `preserve_order`), so this is the canonical form.
    let json = Value::Object(canonical).to_string();
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

/// Asserts that `der` is exactly one X.509 certificate: one DER `SEQUENCE` of the three parts
/// (TBSCertificate, signatureAlgorithm, signatureValue), nothing after it, and a certificate
/// x509-parser reads too, except where x509-parser looks deeper into contents certbound (and
/// webpki, until it verifies a chain) treats as opaque bytes under the thumbprint: the key,
/// the names, the extensions.
pub fn assert_one_certificate(der: &[u8]) {
    use x509_parser::asn1_rs::{Any, FromDer as _, Tag};
    use x509_parser::error::X509Error as E;
    let (rest, certificate) = Any::from_der(der).expect("one DER item");
    assert!(rest.is_empty(), "bytes after the certificate");
    assert_eq!(certificate.tag(), Tag::Sequence);
    let mut parts = Vec::new();
    let mut inner = certificate.data;
    while !inner.is_empty() {
        let (rest, part) = Any::from_der(inner).expect("DER parts");
        parts.push(part.tag());
        inner = rest;
    }
    assert_eq!(parts, [Tag::Sequence, Tag::Sequence, Tag::BitString]);
    match x509_parser::parse_x509_certificate(der) {
        Ok((rest, _)) => assert!(rest.is_empty(), "bytes after the certificate"),
        Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => assert!(
            !matches!(
                e,
                E::InvalidDate | E::InvalidVersion | E::InvalidSerial | E::InvalidCertificate
            ),
            "accepted a certificate x509-parser refuses: {e}"
        ),
        Err(_) => {}
    }
}

/// The forwarded-certificate targets: `data` is the header value in `format` (RFC 9440: the
/// `Client-Cert` value, then on the next line the `Client-Cert-Chain` value if any).
///
/// An accepted certificate is exactly one X.509 certificate per x509-parser, its thumbprint
/// is the SHA-256 of its DER, and the value the proxy would write for it reads back the same.
#[cfg(fuzzing)]
pub fn check_forwarded(format: certbound::ForwardedCertFormat, data: &[u8]) {
    use base64::engine::general_purpose::STANDARD;
    use certbound::ForwardedCertFormat as F;
    let (value, chain) = match format {
        F::Rfc9440 => split_line(data),
        _ => (data, None),
    };
    let Ok(Some(cert)) = certbound::fuzzing::forwarded_certificate(format, value, chain) else {
        return;
    };
    for der in cert.chain() {
        assert_one_certificate(der);
    }
    let Some(leaf) = cert.leaf() else {
        // XFCC `Hash=` alone: a thumbprint and no certificate.
        assert_eq!(format, F::Xfcc, "only XFCC forwards a bare thumbprint");
        let hex = cert.thumbprint().to_hex();
        // Unquoting drops backslashes; hex digits are never escaped into anything else.
        let lower = String::from_utf8_lossy(data)
            .to_ascii_lowercase()
            .replace('\\', "");
        assert!(lower.contains(&hex), "a Hash= that is not in the header");
        return;
    };
    assert_eq!(cert.chain()[0].as_ref(), leaf.as_ref());
    assert_eq!(cert.thumbprint().as_bytes()[..], Sha256::digest(leaf)[..]);
    let b64 = STANDARD.encode(leaf);
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    let escaped: String = pem
        .bytes()
        .map(|b| match b {
            b'\n' => "%0A".to_owned(),
            b'+' => "%2B".to_owned(),
            b'/' => "%2F".to_owned(),
            b'=' => "%3D".to_owned(),
            b' ' => "%20".to_owned(),
            other => char::from(other).to_string(),
        })
        .collect();
    let written = match format {
        F::Rfc9440 => format!(":{b64}:"),
        F::Xfcc => format!("Hash={};Cert=\"{escaped}\"", cert.thumbprint().to_hex()),
        F::Nginx => escaped,
        F::Haproxy => b64,
        F::Apache => pem.replace('\n', " "),
        _ => return,
    };
    let again = certbound::fuzzing::forwarded_certificate(format, written.as_bytes(), None)
        .expect("what the proxy writes reads back")
        .expect("a certificate");
    assert_eq!(again.leaf().map(AsRef::as_ref), Some(leaf.as_ref()));
}
