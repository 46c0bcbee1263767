//! DPoP proofs made in the test, independently of certbound's own signer: any header and any
//! claims, signed by a [`TestKey`], so that every malformed variation can be sent.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{b64url, claims_unbound, now, TestKey};

/// A client's DPoP key.
pub struct ProofKey {
    key: TestKey,
}

impl ProofKey {
    /// A fresh P-256 key (ES256).
    pub fn es256() -> ProofKey {
        ProofKey {
            key: TestKey::es256_without_kid(),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn eddsa() -> ProofKey {
        ProofKey {
            key: TestKey::eddsa("dpop"),
        }
    }

    /// The public JWK with only the members RFC 7638 uses.
    pub fn jwk(&self) -> Value {
        let mut jwk = self.key.public_jwk();
        let obj = jwk.as_object_mut().expect("object");
        obj.retain(|k, _| ["kty", "crv", "x", "y", "n", "e"].contains(&k.as_str()));
        jwk
    }

    /// The RFC 7638 thumbprint, computed here as the independent oracle: the required members
    /// in a `BTreeMap` (sorted keys), serialised without whitespace.
    pub fn jkt(&self) -> String {
        let members: std::collections::BTreeMap<String, Value> = self
            .jwk()
            .as_object()
            .expect("object")
            .clone()
            .into_iter()
            .collect();
        b64url(Sha256::digest(serde_json::to_vec(&members).expect("JSON")))
    }

    /// `{"typ": "dpop+jwt", "alg": ..., "jwk": ...}`.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": format!("{:?}", self.key.alg()), "jwk": self.jwk()})
    }

    /// Signs any header and claims.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.key.sign_raw(
            &serde_json::to_vec(header).expect("JSON"),
            &serde_json::to_vec(claims).expect("JSON"),
        )
    }

    /// A good proof for `method` `url` with `token`.
    pub fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&self.header(), &proof_claims(method, url, Some(token)))
    }
}

/// Fresh proof claims: a random `jti`, `iat` now, and `ath` when there is a token.
pub fn proof_claims(method: &str, url: &str, token: Option<&str>) -> Value {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let jti = format!("jti-{}-{}", now(), SEQ.fetch_add(1, Ordering::Relaxed));
    let mut claims = json!({"jti": jti, "htm": method, "htu": url, "iat": now()});
    if let Some(token) = token {
        claims["ath"] = json!(ath(token));
    }
    claims
}

/// base64url(SHA-256(token)).
pub fn ath(token: &str) -> String {
    b64url(Sha256::digest(token.as_bytes()))
}

/// Valid access-token claims bound to the DPoP key `jkt`.
pub fn claims_dpop_bound(jkt: &str) -> Value {
    let mut claims = claims_unbound();
    claims["cnf"] = json!({ "jkt": jkt });
    claims
}

/// `Authorization: DPoP <token>` and `DPoP: <proof>`.
pub fn dpop_headers(token: &str, proof: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("DPoP {token}")).expect("header value"),
    );
    headers.insert("dpop", HeaderValue::from_str(proof).expect("header value"));
    headers
}
