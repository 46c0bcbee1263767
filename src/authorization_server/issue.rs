//! Binding issued tokens to the client's certificate (RFC 8705 §3.1, §3.2): the
//! `cnf: {"x5t#S256": ...}` claim in JWT access tokens and in introspection responses.

use serde_json::{Map, Value};

use crate::certificate::ClientCertificate;
use crate::thumbprint::CertThumbprint;

/// The `cnf` (confirmation) member that binds a token to a certificate.
///
/// At issuance, take it from the connection the client authenticated on
/// ([`of`](Self::of), or [`AuthenticatedClient::confirmation`](super::AuthenticatedClient::confirmation)).
/// At introspection (RFC 8705 §3.2), the connection is the *resource server's*: use the
/// thumbprint recorded when the token was issued ([`from_thumbprint`](Self::from_thumbprint)).
///
/// ```
/// use certbound::authorization_server::Confirmation;
/// use certbound::ClientCertificate;
/// use serde_json::{json, Map};
///
/// let cert = ClientCertificate::from_der(b"the client's certificate".to_vec());
/// let mut claims = Map::new();
/// claims.insert("sub".into(), json!("client-a"));
/// Confirmation::of(&cert).insert_into(&mut claims);
/// assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint().to_string());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation(CertThumbprint);

impl Confirmation {
    /// Binds to the certificate the client presented.
    pub fn of(certificate: &ClientCertificate) -> Self {
        Self(*certificate.thumbprint())
    }

    /// Binds to a recorded thumbprint.
    pub const fn from_thumbprint(thumbprint: CertThumbprint) -> Self {
        Self(thumbprint)
    }

    /// The thumbprint.
    pub const fn thumbprint(&self) -> &CertThumbprint {
        &self.0
    }

    /// The `cnf` value: `{"x5t#S256": "..."}`.
    pub fn to_json(&self) -> Value {
        let mut cnf = Map::new();
        cnf.insert("x5t#S256".to_owned(), Value::String(self.0.to_string()));
        Value::Object(cnf)
    }

    /// Sets `cnf.x5t#S256` in a claims set or an introspection response. Other confirmation
    /// members already in `cnf` are kept; a `cnf` that is not an object is replaced.
    pub fn insert_into(&self, claims: &mut Map<String, Value>) {
        match claims.get_mut("cnf") {
            Some(Value::Object(cnf)) => {
                cnf.insert("x5t#S256".to_owned(), Value::String(self.0.to_string()));
            }
            _ => {
                claims.insert("cnf".to_owned(), self.to_json());
            }
        }
    }
}

/// Binds `claims` (about to be signed) to the certificate the client presented:
/// `Confirmation::of(certificate).insert_into(claims)`.
pub fn bind_claims(claims: &mut Map<String, Value>, certificate: &ClientCertificate) {
    Confirmation::of(certificate).insert_into(claims);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn existing_confirmation_members_are_kept() {
        let cert = ClientCertificate::from_der(b"x".to_vec());
        let mut claims = json!({"cnf": {"jkt": "abc"}}).as_object().unwrap().clone();
        bind_claims(&mut claims, &cert);
        assert_eq!(claims["cnf"]["jkt"], "abc");
        assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint().to_string());
        let mut odd = json!({"cnf": "junk"}).as_object().unwrap().clone();
        bind_claims(&mut odd, &cert);
        assert_eq!(odd["cnf"], Confirmation::of(&cert).to_json());
    }

    #[test]
    fn the_bound_claims_are_what_the_resource_server_reads() {
        let cert = ClientCertificate::from_der(b"y".to_vec());
        let mut claims = Map::new();
        bind_claims(&mut claims, &cert);
        let token = crate::AccessToken::from_claims(claims).unwrap();
        assert_eq!(token.thumbprint(), Some(cert.thumbprint()));
    }
}
