//! Metadata documents under their registered names: client metadata (RFC 7591 §2 with the
//! RFC 8705 §2.1.2 / §3.4 additions) and authorization server metadata (RFC 8414 §2 with the
//! RFC 8705 §3.3 / §5 and RFC 9449 §5.1 additions).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// `token_endpoint_auth_method` (RFC 7591 §2): how a client authenticates at the token
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenEndpointAuthMethod {
    /// `tls_client_auth` (RFC 8705 §2.1): a certificate from a PKI, identified by one
    /// registered subject value.
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): a certificate registered in the client's
    /// JWKS.
    SelfSignedTlsClientAuth,
    /// Any other method (`client_secret_basic`, `private_key_jwt`, `none`, ...), which the
    /// mutual-TLS layer does not accept.
    Other(String),
}

impl TokenEndpointAuthMethod {
    /// The registered name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::Other(name) => name,
        }
    }
}

impl Default for TokenEndpointAuthMethod {
    /// RFC 7591 §2: `client_secret_basic` when the metadata names none.
    fn default() -> Self {
        Self::Other("client_secret_basic".to_owned())
    }
}

impl fmt::Display for TokenEndpointAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for TokenEndpointAuthMethod {
    fn from(name: &str) -> Self {
        match name {
            "tls_client_auth" => Self::TlsClientAuth,
            "self_signed_tls_client_auth" => Self::SelfSignedTlsClientAuth,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl Serialize for TokenEndpointAuthMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TokenEndpointAuthMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::from(name.as_str()))
    }
}

/// A client's registration, as RFC 7591 / RFC 8705 metadata.
///
/// Deserialize it from the JSON a registration store or dynamic registration holds, then
/// check it with [`RegisteredClient::from_metadata`](super::RegisteredClient::from_metadata).
/// Members this type does not name are kept in [`other`](Self::other).
///
/// ```
/// use certbound::authorization_server::{ClientMetadata, TokenEndpointAuthMethod};
///
/// let m: ClientMetadata = serde_json::from_str(r#"{
///     "client_id": "payments",
///     "token_endpoint_auth_method": "tls_client_auth",
///     "tls_client_auth_subject_dn": "CN=payments,O=Example Bank,C=DE",
///     "client_name": "Payments backend"
/// }"#).unwrap();
/// assert_eq!(m.token_endpoint_auth_method, TokenEndpointAuthMethod::TlsClientAuth);
/// assert_eq!(m.other["client_name"], "Payments backend");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// `client_id`.
    pub client_id: String,
    /// `token_endpoint_auth_method` (default `client_secret_basic`, RFC 7591 §2).
    #[serde(default)]
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// `tls_client_auth_subject_dn`: the certificate's subject DN, RFC 4514 string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth_san_dns`: a dNSName SAN entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth_san_uri`: a uniformResourceIdentifier SAN entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// `tls_client_auth_san_ip`: an iPAddress SAN entry, IPv4 dotted decimal or IPv6 text form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// `tls_client_auth_san_email`: an rfc822Name SAN entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// `jwks`: the client's keys by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// `jwks_uri`: where the client's keys are published (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4; absent means `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Every other member (`client_name`, `scope`, `grant_types`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ClientMetadata {
    /// Metadata with only a `client_id` and an authentication method; set the other fields
    /// on the result.
    pub fn new(client_id: impl Into<String>, method: TokenEndpointAuthMethod) -> Self {
        Self {
            client_id: client_id.into(),
            token_endpoint_auth_method: method,
            ..Self::default()
        }
    }
}

/// `mtls_endpoint_aliases` (RFC 8705 §5): where the mutual-TLS variants of the endpoints are,
/// when they differ from the ones in the main metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MtlsEndpointAliases {
    /// `token_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// `revocation_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// `introspection_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// `device_authorization_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// `registration_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// `userinfo_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// `pushed_authorization_request_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// `backchannel_authentication_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_authentication_endpoint: Option<String>,
    /// Aliases of other endpoints.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Authorization server metadata (RFC 8414 §2), served at
/// `/.well-known/oauth-authorization-server`.
///
/// [`new`](Self::new) starts a document for an AS that authenticates clients by mutual TLS and
/// issues certificate-bound tokens: `tls_client_certificate_bound_access_tokens: true` and
/// both RFC 8705 methods in `token_endpoint_auth_methods_supported`.
///
/// ```
/// use certbound::authorization_server::AuthorizationServerMetadata;
///
/// let metadata = AuthorizationServerMetadata::new("https://as.example")
///     .token_endpoint("https://as.example/token")
///     .jwks_uri("https://as.example/jwks")
///     .grant_types_supported(["client_credentials"])
///     .mtls_token_endpoint("https://mtls.as.example/token");
/// let json = serde_json::to_value(&metadata).unwrap();
/// assert_eq!(json["tls_client_certificate_bound_access_tokens"], true);
/// assert_eq!(json["mtls_endpoint_aliases"]["token_endpoint"], "https://mtls.as.example/token");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct AuthorizationServerMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// `jwks_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `introspection_endpoint` (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// `revocation_endpoint` (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// `scopes_supported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `response_types_supported` (required by RFC 8414; empty for an AS without an
    /// authorization endpoint).
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// `grant_types_supported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<TokenEndpointAuthMethod>>,
    /// `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.3).
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// `mtls_endpoint_aliases` (RFC 8705 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_endpoint_aliases: Option<MtlsEndpointAliases>,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1): the algorithms accepted in DPoP
    /// proofs; absent when the server does not take DPoP proofs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// Every other member.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl AuthorizationServerMetadata {
    /// Metadata for `issuer` with certificate-bound tokens and both mutual-TLS client
    /// authentication methods.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            authorization_endpoint: None,
            token_endpoint: None,
            jwks_uri: None,
            introspection_endpoint: None,
            revocation_endpoint: None,
            scopes_supported: None,
            response_types_supported: Vec::new(),
            grant_types_supported: None,
            token_endpoint_auth_methods_supported: Some(vec![
                TokenEndpointAuthMethod::TlsClientAuth,
                TokenEndpointAuthMethod::SelfSignedTlsClientAuth,
            ]),
            tls_client_certificate_bound_access_tokens: true,
            mtls_endpoint_aliases: None,
            dpop_signing_alg_values_supported: None,
            other: Map::new(),
        }
    }

    /// Sets `token_endpoint`.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Sets `jwks_uri`.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// Sets `introspection_endpoint`.
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// Sets `revocation_endpoint`.
    pub fn revocation_endpoint(mut self, url: impl Into<String>) -> Self {
        self.revocation_endpoint = Some(url.into());
        self
    }

    /// Sets `grant_types_supported`.
    pub fn grant_types_supported<I, S>(mut self, grants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.grant_types_supported = Some(grants.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `scopes_supported`.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `token_endpoint_auth_methods_supported`.
    pub fn token_endpoint_auth_methods_supported(
        mut self,
        methods: impl IntoIterator<Item = TokenEndpointAuthMethod>,
    ) -> Self {
        self.token_endpoint_auth_methods_supported = Some(methods.into_iter().collect());
        self
    }

    /// Sets `mtls_endpoint_aliases.token_endpoint` (RFC 8705 §5).
    pub fn mtls_token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.mtls_endpoint_aliases
            .get_or_insert_with(MtlsEndpointAliases::default)
            .token_endpoint = Some(url.into());
        self
    }

    /// Sets all of `mtls_endpoint_aliases` (RFC 8705 §5).
    pub fn mtls_endpoint_aliases(mut self, aliases: MtlsEndpointAliases) -> Self {
        self.mtls_endpoint_aliases = Some(aliases);
        self
    }

    /// Sets `dpop_signing_alg_values_supported` (RFC 9449 §5.1), from
    /// [`TokenEndpointDpop::signing_alg_values`](super::TokenEndpointDpop::signing_alg_values).
    pub fn dpop_signing_alg_values_supported<I, S>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.dpop_signing_alg_values_supported =
            Some(algorithms.into_iter().map(Into::into).collect());
        self
    }

    /// Sets any other member.
    pub fn member(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.other.insert(name.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_metadata_round_trips_under_the_registered_names() {
        let json = json!({
            "client_id": "c",
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "https://c.example/jwks",
            "tls_client_certificate_bound_access_tokens": true,
            "scope": "read",
        });
        let m: ClientMetadata = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            m.token_endpoint_auth_method,
            TokenEndpointAuthMethod::SelfSignedTlsClientAuth
        );
        assert_eq!(m.tls_client_certificate_bound_access_tokens, Some(true));
        assert_eq!(serde_json::to_value(&m).unwrap(), json);
    }

    #[test]
    fn the_default_method_is_client_secret_basic() {
        let m: ClientMetadata = serde_json::from_value(json!({"client_id": "c"})).unwrap();
        assert_eq!(m.token_endpoint_auth_method.as_str(), "client_secret_basic");
    }

    #[test]
    fn as_metadata_has_the_rfc8705_members() {
        let m = AuthorizationServerMetadata::new("https://as.example")
            .mtls_token_endpoint("https://mtls.as.example/token")
            .member("service_documentation", "https://docs.example");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            json!({
                "issuer": "https://as.example",
                "response_types_supported": [],
                "token_endpoint_auth_methods_supported": ["tls_client_auth", "self_signed_tls_client_auth"],
                "tls_client_certificate_bound_access_tokens": true,
                "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.as.example/token"},
                "service_documentation": "https://docs.example",
            })
        );
        let back: AuthorizationServerMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn as_metadata_has_the_rfc9449_member() {
        let m = AuthorizationServerMetadata::new("https://as.example")
            .dpop_signing_alg_values_supported(["ES256", "EdDSA"]);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json["dpop_signing_alg_values_supported"],
            json!(["ES256", "EdDSA"])
        );
        let back: AuthorizationServerMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }
}
