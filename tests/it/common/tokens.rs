//! Claim sets and unsigned / forged tokens.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{b64url, init, now};

/// The `iss` of every test token.
pub const ISSUER: &str = "https://issuer.test";
/// The `aud` of every test token.
pub const AUDIENCE: &str = "https://api.test";

/// Valid claims bound to the certificate thumbprint `x5t` (`cnf.x5t#S256`).
pub fn claims_bound_to(x5t: &str) -> Value {
    let mut claims = claims_unbound();
    claims["cnf"] = json!({ "x5t#S256": x5t });
    claims
}

/// Valid claims without any `cnf`.
pub fn claims_unbound() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "client-a",
        "scope": "read write",
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 300,
    })
}

fn json_b64(value: &Value) -> String {
    b64url(serde_json::to_vec(value).expect("serialize JSON"))
}

/// `{"alg":"none","typ":"JWT"}` header, the claims, and an empty signature: `h.p.`
pub fn alg_none_token(claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT" });
    format!("{}.{}.", json_b64(&header), json_b64(claims))
}

/// An HS256 token (header `typ: "at+jwt"`, optional `kid`) MACed with `secret`, e.g. an RSA
/// public key for the algorithm-confusion attack.
pub fn hs256_token(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    init();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("HS256 token")
}

/// Replaces the payload segment of `token` with `new_claims`, keeping header and signature.
pub fn tamper_payload(token: &str, new_claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS");
    format!("{}.{}.{}", parts[0], json_b64(new_claims), parts[2])
}
