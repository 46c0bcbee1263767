//! [`RegisteredClient`] (a checked registration) and [`AuthenticatedClient`] (the outcome of
//! a successful mutual-TLS authentication).

use std::fmt;
use std::sync::Arc;

use super::issue::{Confirmation, SenderConstraints};
use super::keys::SelfSignedKeys;
use super::metadata::{ClientMetadata, TokenEndpointAuthMethod};
use super::subject::SubjectMatcher;
use crate::certificate::ClientCertificate;
use crate::dpop::VerifiedProof;
use crate::error::ConfigError;
use crate::thumbprint::{CertThumbprint, JwkThumbprint};

/// A client registration, checked: what [`ClientRegistry`](super::ClientRegistry)
/// implementations return. Cheap to clone.
///
/// Built from [`ClientMetadata`] by [`from_metadata`](Self::from_metadata), which refuses
/// registrations that cannot work:
/// - `tls_client_auth` needs exactly one of `tls_client_auth_subject_dn`, `_san_dns`,
///   `_san_uri`, `_san_ip`, `_san_email`, with a well-formed value;
/// - `self_signed_tls_client_auth` needs exactly one of `jwks` (with at least one usable
///   certificate or key) and `jwks_uri` (https), and no `tls_client_auth_*` value;
/// - other methods are kept as they are; the mutual-TLS layer refuses such clients.
#[derive(Clone)]
pub struct RegisteredClient(Arc<Inner>);

struct Inner {
    metadata: ClientMetadata,
    method: Method,
}

#[derive(Debug)]
pub(crate) enum Method {
    Tls(SubjectMatcher),
    SelfSignedStatic(SelfSignedKeys),
    SelfSignedUri(String),
    Other,
}

impl RegisteredClient {
    /// Checks `metadata` (see the [type docs](Self)).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming what is wrong with the registration.
    pub fn from_metadata(metadata: ClientMetadata) -> Result<Self, ConfigError> {
        let invalid = |msg: &str| {
            ConfigError::invalid(
                "client registration",
                format!("client {:?}: {msg}", metadata.client_id),
            )
        };
        if metadata.client_id.is_empty() {
            return Err(ConfigError::invalid("client_id", "must not be empty"));
        }
        let subjects = [
            (
                &metadata.tls_client_auth_subject_dn,
                SubjectMatcher::subject_dn as fn(&str) -> _,
            ),
            (&metadata.tls_client_auth_san_dns, SubjectMatcher::san_dns),
            (&metadata.tls_client_auth_san_uri, SubjectMatcher::san_uri),
            (&metadata.tls_client_auth_san_ip, SubjectMatcher::san_ip),
            (
                &metadata.tls_client_auth_san_email,
                SubjectMatcher::san_email,
            ),
        ];
        let given: Vec<_> = subjects
            .iter()
            .filter_map(|(value, parse)| value.as_deref().map(|v| (v, parse)))
            .collect();
        let method = match &metadata.token_endpoint_auth_method {
            TokenEndpointAuthMethod::TlsClientAuth => match given.as_slice() {
                // RFC 8705 §2.1.2: exactly one subject value.
                [(value, parse)] => Method::Tls(parse(value).map_err(|e| invalid(&e.to_string()))?),
                [] => {
                    return Err(invalid(
                        "tls_client_auth needs one tls_client_auth_* subject value",
                    ))
                }
                _ => {
                    return Err(invalid(
                        "tls_client_auth takes exactly one tls_client_auth_* subject value",
                    ))
                }
            },
            TokenEndpointAuthMethod::SelfSignedTlsClientAuth => {
                if !given.is_empty() {
                    return Err(invalid(
                        "self_signed_tls_client_auth matches the registered certificate, not a tls_client_auth_* subject",
                    ));
                }
                match (&metadata.jwks, &metadata.jwks_uri) {
                    (Some(jwks), None) => Method::SelfSignedStatic(
                        SelfSignedKeys::from_jwks(jwks)
                            .map_err(|e| invalid(&format!("jwks: {e}")))?,
                    ),
                    (None, Some(uri)) => {
                        if !is_https_url(uri) {
                            return Err(invalid("jwks_uri must be an https URL"));
                        }
                        Method::SelfSignedUri(uri.clone())
                    }
                    // RFC 7591 §2: jwks and jwks_uri MUST NOT both be present.
                    (Some(_), Some(_)) => return Err(invalid("give jwks or jwks_uri, not both")),
                    (None, None) => {
                        return Err(invalid(
                            "self_signed_tls_client_auth needs jwks or jwks_uri",
                        ))
                    }
                }
            }
            TokenEndpointAuthMethod::Other(_) => Method::Other,
        };
        Ok(Self(Arc::new(Inner { metadata, method })))
    }

    /// The `client_id`.
    pub fn client_id(&self) -> &str {
        &self.0.metadata.client_id
    }

    /// The registered authentication method.
    pub fn auth_method(&self) -> &TokenEndpointAuthMethod {
        &self.0.metadata.token_endpoint_auth_method
    }

    /// The registration as given.
    pub fn metadata(&self) -> &ClientMetadata {
        &self.0.metadata
    }

    /// Whether the client registered for certificate-bound access tokens
    /// (`tls_client_certificate_bound_access_tokens: true`, RFC 8705 §3.4; absent means no).
    pub fn registered_for_certificate_bound_tokens(&self) -> bool {
        self.0.metadata.tls_client_certificate_bound_access_tokens == Some(true)
    }

    pub(crate) fn method(&self) -> &Method {
        &self.0.method
    }
}

/// An absolute `https` URL with a host.
fn is_https_url(uri: &str) -> bool {
    reqwest::Url::parse(uri).is_ok_and(|url| url.scheme() == "https" && url.host().is_some())
}

impl TryFrom<ClientMetadata> for RegisteredClient {
    type Error = ConfigError;

    fn try_from(metadata: ClientMetadata) -> Result<Self, ConfigError> {
        Self::from_metadata(metadata)
    }
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id())
            .field("auth_method", self.auth_method())
            .finish_non_exhaustive()
    }
}

/// A client that proved its identity with its TLS certificate: inserted into the request's
/// extensions by [`MtlsClientAuthLayer`](super::MtlsClientAuthLayer) (with the `axum` feature
/// it is also an extractor), together with the token request's DPoP proof when the layer
/// checks them. Cheap to clone.
#[derive(Clone)]
pub struct AuthenticatedClient {
    client: RegisteredClient,
    certificate: ClientCertificate,
    dpop_proof: Option<VerifiedProof>,
}

impl AuthenticatedClient {
    pub(crate) fn new(client: RegisteredClient, certificate: ClientCertificate) -> Self {
        Self {
            client,
            certificate,
            dpop_proof: None,
        }
    }

    pub(crate) fn with_dpop_proof(mut self, proof: Option<VerifiedProof>) -> Self {
        self.dpop_proof = proof;
        self
    }

    /// The authenticated `client_id`.
    pub fn client_id(&self) -> &str {
        self.client.client_id()
    }

    /// The client's registration.
    pub fn client(&self) -> &RegisteredClient {
        &self.client
    }

    /// The method it authenticated with (`tls_client_auth` or `self_signed_tls_client_auth`).
    pub fn auth_method(&self) -> &TokenEndpointAuthMethod {
        self.client.auth_method()
    }

    /// The certificate it presented.
    pub fn certificate(&self) -> &ClientCertificate {
        &self.certificate
    }

    /// The certificate's `x5t#S256` thumbprint.
    pub fn thumbprint(&self) -> &CertThumbprint {
        self.certificate.thumbprint()
    }

    /// The `cnf` claim that binds tokens issued to this client to its certificate
    /// (RFC 8705 §3.1). For tokens requested with a DPoP proof, use
    /// [`sender_constraints`](Self::sender_constraints).
    pub fn confirmation(&self) -> Confirmation {
        Confirmation::of(&self.certificate)
    }

    /// The token request's DPoP proof, checked (RFC 9449 §5): present when the layer checks
    /// proofs ([`MtlsClientAuthLayer::dpop`](super::MtlsClientAuthLayer::dpop)) and the
    /// request carried one.
    pub fn dpop_proof(&self) -> Option<&VerifiedProof> {
        self.dpop_proof.as_ref()
    }

    /// What a token issued for this request is bound to:
    /// - without a DPoP proof, the certificate (RFC 8705 §3.1), as [`confirmation`](Self::confirmation);
    /// - with a proof, the proof's key (`cnf.jkt`, RFC 9449 §6.1), and the certificate as well
    ///   when the client registered for certificate-bound tokens
    ///   ([`RegisteredClient::registered_for_certificate_bound_tokens`]). The resource server then
    ///   requires both the certificate and a proof by the key. Refusing the combination would
    ///   lock out clients that authenticate with mutual TLS and use DPoP-bound tokens (FAPI 2.0
    ///   allows both); dropping the certificate binding would silently weaken a client that
    ///   registered for it.
    pub fn sender_constraints(&self) -> SenderConstraints {
        constraints_for(
            *self.thumbprint(),
            self.client.registered_for_certificate_bound_tokens(),
            self.dpop_proof.as_ref().map(|proof| *proof.jkt()),
        )
    }
}

/// The binding table of the module docs: the certificate without a proof; with one, its key,
/// and the certificate too for a client registered for certificate-bound tokens.
fn constraints_for(
    certificate: CertThumbprint,
    registered_for_certificate: bool,
    dpop_key: Option<JwkThumbprint>,
) -> SenderConstraints {
    let bound = SenderConstraints::none();
    match dpop_key {
        None => bound.certificate(certificate),
        Some(jkt) if registered_for_certificate => bound.certificate(certificate).dpop_key(jkt),
        Some(jkt) => bound.dpop_key(jkt),
    }
}

impl fmt::Debug for AuthenticatedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedClient")
            .field("client_id", &self.client_id())
            .field("auth_method", self.auth_method())
            .field("thumbprint", self.thumbprint())
            .field(
                "dpop_key",
                &self.dpop_proof.as_ref().map(VerifiedProof::jkt),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(json: serde_json::Value) -> Result<RegisteredClient, ConfigError> {
        RegisteredClient::from_metadata(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn tls_client_auth_needs_exactly_one_subject_value() {
        assert!(
            client(json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth"}))
                .is_err()
        );
        assert!(client(
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "c.example", "tls_client_auth_san_uri": "https://c.example"})
        )
        .is_err());
        assert!(client(
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=c"})
        )
        .is_ok());
        let err = client(
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=c;O=x"}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("tls_client_auth_subject_dn"),
            "{err}"
        );
        // And why: the parser's own reason.
        assert!(
            err.to_string()
                .contains("unescaped special character in a value"),
            "{err}"
        );
    }

    #[test]
    fn self_signed_needs_jwks_or_jwks_uri() {
        let jwks = json!({"keys": [{"kty": "EC", "x5c": ["AQID"]}]});
        let ok = |j| client(j).is_ok();
        assert!(!ok(
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth"})
        ));
        assert!(ok(
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": jwks})
        ));
        assert!(ok(
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "https://c.example/jwks"})
        ));
        assert!(!ok(
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "http://c.example/jwks"})
        ));
        assert!(!ok(
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": jwks, "jwks_uri": "https://c.example/jwks"})
        ));
        assert!(!ok(
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": jwks, "tls_client_auth_subject_dn": "CN=c"})
        ));
    }

    #[test]
    fn a_proof_binds_its_key_and_the_certificate_only_for_clients_registered_for_it() {
        use crate::token::Binding;
        let x5t = CertThumbprint::from_digest([1; 32]);
        let jkt = JwkThumbprint::from_digest([2; 32]);
        for (registered, key, binding) in [
            (false, None, Binding::Certificate),
            (true, None, Binding::Certificate),
            (false, Some(jkt), Binding::Dpop),
            (true, Some(jkt), Binding::CertificateAndDpop),
        ] {
            let constraints = constraints_for(x5t, registered, key);
            assert_eq!(constraints.binding(), binding, "{registered} {key:?}");
            assert_eq!(constraints.dpop_thumbprint(), key.as_ref());
        }
        let registered = |value: Option<bool>| {
            let mut metadata = ClientMetadata::new("c", TokenEndpointAuthMethod::TlsClientAuth);
            metadata.tls_client_auth_san_dns = Some("c.example".into());
            metadata.tls_client_certificate_bound_access_tokens = value;
            RegisteredClient::from_metadata(metadata)
                .unwrap()
                .registered_for_certificate_bound_tokens()
        };
        assert!(registered(Some(true)));
        assert!(!registered(Some(false)));
        assert!(!registered(None));
    }

    #[test]
    fn other_methods_are_kept_but_marked() {
        let c =
            client(json!({"client_id": "c", "token_endpoint_auth_method": "client_secret_basic"}))
                .unwrap();
        assert!(matches!(c.method(), Method::Other));
        assert!(client(json!({"client_id": "", "token_endpoint_auth_method": "none"})).is_err());
    }
}
