//! Binding issued tokens to the client's certificate (RFC 8705 §3.1, §3.2) and to its DPoP key
//! (RFC 9449 §6): the `cnf` claim in JWT access tokens and in introspection responses, and the
//! `token_type` that goes with it.

use serde_json::{Map, Value};

use crate::certificate::ClientCertificate;
use crate::thumbprint::{CertThumbprint, JwkThumbprint};
use crate::token::Binding;

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

/// Everything a token being issued is bound to: the client's certificate (`cnf.x5t#S256`,
/// RFC 8705 §3.1), its DPoP key (`cnf.jkt`, RFC 9449 §6.1), both, or neither; and the
/// `token_type` of the token response that goes with it (`DPoP` for a key-bound token,
/// RFC 9449 §5).
///
/// At issuance, take it from
/// [`AuthenticatedClient::sender_constraints`](super::AuthenticatedClient::sender_constraints),
/// which decides from the client's registration and the token request's proof. At
/// introspection, rebuild it from what was recorded when the token was issued.
///
/// ```
/// use certbound::authorization_server::SenderConstraints;
/// use certbound::{CertThumbprint, JwkThumbprint};
/// use serde_json::{json, Map};
///
/// # fn main() -> Result<(), certbound::InvalidThumbprint> {
/// let x5t: CertThumbprint = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0".parse()?;
/// let jkt: JwkThumbprint = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".parse()?;
/// let constraints = SenderConstraints::none().certificate(x5t).dpop_key(jkt);
/// let mut claims = Map::new();
/// constraints.insert_into(&mut claims);
/// assert_eq!(claims["cnf"], json!({"x5t#S256": x5t.to_string(), "jkt": jkt.to_string()}));
/// assert_eq!(constraints.token_type(), "DPoP");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct SenderConstraints {
    certificate: Option<CertThumbprint>,
    dpop_key: Option<JwkThumbprint>,
}

impl SenderConstraints {
    /// No constraint (a bearer token).
    pub const fn none() -> Self {
        Self {
            certificate: None,
            dpop_key: None,
        }
    }

    /// Also binds to the certificate with `thumbprint`.
    pub const fn certificate(mut self, thumbprint: CertThumbprint) -> Self {
        self.certificate = Some(thumbprint);
        self
    }

    /// Also binds to the DPoP key with thumbprint `jkt`.
    pub const fn dpop_key(mut self, jkt: JwkThumbprint) -> Self {
        self.dpop_key = Some(jkt);
        self
    }

    /// The certificate's thumbprint (`cnf.x5t#S256`), when bound to one.
    pub const fn certificate_thumbprint(&self) -> Option<&CertThumbprint> {
        self.certificate.as_ref()
    }

    /// The DPoP key's thumbprint (`cnf.jkt`), when bound to one.
    pub const fn dpop_thumbprint(&self) -> Option<&JwkThumbprint> {
        self.dpop_key.as_ref()
    }

    /// Which constraints, as the resource server names them.
    pub const fn binding(&self) -> Binding {
        match (self.certificate.is_some(), self.dpop_key.is_some()) {
            (false, false) => Binding::Unbound,
            (true, false) => Binding::Certificate,
            (false, true) => Binding::Dpop,
            (true, true) => Binding::CertificateAndDpop,
        }
    }

    /// The token response's `token_type`: `DPoP` for a token bound to a DPoP key (RFC 9449
    /// §5; the client must present it with `Authorization: DPoP`), else `Bearer` (RFC 8705
    /// keeps the `Bearer` scheme for certificate-bound tokens).
    pub const fn token_type(&self) -> &'static str {
        if self.dpop_key.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }

    /// The `cnf` value, `None` without any constraint.
    pub fn to_json(&self) -> Option<Value> {
        if self.certificate.is_none() && self.dpop_key.is_none() {
            return None;
        }
        let mut cnf = Map::new();
        self.insert_members(&mut cnf);
        Some(Value::Object(cnf))
    }

    /// Sets `cnf.x5t#S256` and `cnf.jkt` as bound in a claims set or an introspection
    /// response. Other confirmation members already in `cnf` are kept; a `cnf` that is not an
    /// object is replaced. Without any constraint, `claims` is left as it is.
    pub fn insert_into(&self, claims: &mut Map<String, Value>) {
        let Some(cnf) = self.to_json() else { return };
        match claims.get_mut("cnf") {
            Some(Value::Object(existing)) => self.insert_members(existing),
            _ => {
                claims.insert("cnf".to_owned(), cnf);
            }
        }
    }

    fn insert_members(&self, cnf: &mut Map<String, Value>) {
        if let Some(x5t) = &self.certificate {
            cnf.insert("x5t#S256".to_owned(), Value::String(x5t.to_string()));
        }
        if let Some(jkt) = &self.dpop_key {
            cnf.insert("jkt".to_owned(), Value::String(jkt.to_string()));
        }
    }
}

impl From<Confirmation> for SenderConstraints {
    fn from(confirmation: Confirmation) -> Self {
        Self::none().certificate(confirmation.0)
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

    fn jkt() -> JwkThumbprint {
        JwkThumbprint::from_digest([7; 32])
    }

    #[test]
    fn each_combination_of_constraints_is_what_the_resource_server_reads() {
        let x5t = *ClientCertificate::from_der(b"z".to_vec()).thumbprint();
        for (constraints, binding, token_type) in [
            (SenderConstraints::none(), Binding::Unbound, "Bearer"),
            (
                SenderConstraints::none().certificate(x5t),
                Binding::Certificate,
                "Bearer",
            ),
            (
                SenderConstraints::none().dpop_key(jkt()),
                Binding::Dpop,
                "DPoP",
            ),
            (
                SenderConstraints::none().certificate(x5t).dpop_key(jkt()),
                Binding::CertificateAndDpop,
                "DPoP",
            ),
        ] {
            assert_eq!(constraints.binding(), binding);
            assert_eq!(constraints.token_type(), token_type, "{binding:?}");
            let mut claims = Map::new();
            constraints.insert_into(&mut claims);
            let token = crate::AccessToken::from_claims(claims).unwrap();
            assert_eq!(token.binding(), binding);
            assert_eq!(token.thumbprint(), constraints.certificate_thumbprint());
            assert_eq!(token.dpop_thumbprint(), constraints.dpop_thumbprint());
        }
    }

    #[test]
    fn constraints_keep_other_confirmation_members_and_add_nothing_when_unbound() {
        let mut claims = json!({"cnf": {"kid": "k"}}).as_object().unwrap().clone();
        SenderConstraints::none()
            .dpop_key(jkt())
            .insert_into(&mut claims);
        assert_eq!(claims["cnf"], json!({"kid": "k", "jkt": jkt().to_string()}));
        let mut odd = json!({"cnf": 1}).as_object().unwrap().clone();
        SenderConstraints::none()
            .dpop_key(jkt())
            .insert_into(&mut odd);
        assert_eq!(odd["cnf"], json!({"jkt": jkt().to_string()}));
        let mut plain = Map::new();
        SenderConstraints::none().insert_into(&mut plain);
        assert!(plain.is_empty());
        assert_eq!(SenderConstraints::none().to_json(), None);
    }
}
