use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use jsonwebtoken::{Algorithm, EncodingKey};

use super::service::{Prebuilt, ResourceMetadataService};
use super::signed::Signer;
use crate::bound_token::layer::BoundTokenLayer;
use crate::challenge::{checked_resource_metadata_url, scope_challenge};
use crate::dpop::Dpop;
use crate::error::ConfigError;
use crate::require_scope::layer::RequireScopeLayer;

/// RFC 9728 §3: the well-known URI suffix of protected resource metadata.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// How long clients and caches may keep the document by default (`cache-control: max-age`).
/// It changes only when the service is reconfigured, which is a redeployment.
const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// The protected resource metadata (RFC 9728) of a resource behind a
/// [`BoundTokenLayer`], built once into a [`ResourceMetadataService`].
///
/// What the layers enforce comes from them, so that the document cannot say otherwise:
/// [`bound_token_layer`](Self::bound_token_layer) copies the DPoP algorithms and the scopes the
/// layer requires, [`require_scope_layer`](Self::require_scope_layer) a route's scopes. What only
/// the operator knows is set by hand: the authorization servers (a validator does not tell
/// which issuers it trusts), the resource's name and links.
///
/// Every document says `bearer_methods_supported: ["header"]` (certbound reads tokens from the
/// `Authorization` header only, RFC 6750 §2.1) and, unless told otherwise,
/// `tls_client_certificate_bound_access_tokens: true` (RFC 8705 §3.4).
///
/// See the [module docs](crate::resource_metadata) for an example.
#[must_use]
pub struct ResourceMetadata {
    resource: String,
    metadata_url: String,
    /// The path of `metadata_url`: the well-known suffix, then the resource's path.
    path: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    certificate_bound: bool,
    dpop_algs: Option<Vec<String>>,
    dpop_bound_required: bool,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    resource_policy_uri: Option<String>,
    resource_tos_uri: Option<String>,
    jwks_uri: Option<String>,
    /// `signed_metadata` (RFC 9728 §2.2), when configured.
    signer: Option<Signer>,
    cache_max_age: Duration,
    /// The first problem a chained setter found; [`build`](Self::build) returns it.
    error: Option<ConfigError>,
}

impl ResourceMetadata {
    /// Metadata for the resource identified by `resource` (RFC 9728 §1.2): an absolute `https`
    /// URL without query or fragment. It is published exactly as given (§3.3: clients compare
    /// it with the identifier they built the metadata URL from).
    ///
    /// # Errors
    /// When `resource` is not such a URL, or holds characters a challenge cannot carry.
    pub fn new(resource: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Url {
            option: "resource",
            url: resource.to_owned(),
            reason,
        };
        let rest = strip_prefix_ignore_case(resource, "https://")
            .ok_or_else(|| bad("a resource identifier is an https URL (RFC 9728 §1.2)"))?;
        if resource.contains('?') || resource.contains('#') {
            // §1.2 forbids a fragment; a query would go into the well-known URL (§3.1), where
            // the service could not match it.
            return Err(bad("a resource identifier has no query or fragment"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad(
                "a resource identifier has a host and no user information",
            ));
        }
        // RFC 9728 §3.1: the well-known suffix goes between the host and the path; a path of
        // only "/" is a terminating slash, dropped.
        let path = if path == "/" { "" } else { path };
        let well_known = format!("{WELL_KNOWN}{path}");
        let metadata_url = format!("https://{authority}{well_known}");
        let metadata_url = checked_resource_metadata_url(&metadata_url)
            .map_err(|_| bad("a resource identifier holds characters a challenge cannot carry"))?;
        Ok(Self {
            resource: resource.to_owned(),
            metadata_url,
            path: well_known,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            certificate_bound: true,
            dpop_algs: None,
            dpop_bound_required: false,
            resource_name: None,
            resource_documentation: None,
            resource_policy_uri: None,
            resource_tos_uri: None,
            jwks_uri: None,
            signer: None,
            cache_max_age: DEFAULT_CACHE_MAX_AGE,
            error: None,
        })
    }

    /// The resource identifier (`resource`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Where the document is served (RFC 9728 §3.1): for `https://api.example/v1`,
    /// `https://api.example/.well-known/oauth-protected-resource/v1`. Give it to the layers'
    /// `resource_metadata` so that their challenges point at it (§5.1).
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The path of [`metadata_url`](Self::metadata_url), where to mount the service
    /// (`/.well-known/oauth-protected-resource/v1`).
    pub fn well_known_path(&self) -> &str {
        &self.path
    }

    fn fail(&mut self, error: ConfigError) {
        self.error.get_or_insert(error);
    }

    /// Adds an issuer to `authorization_servers` (RFC 9728 §2): an authorization server whose
    /// tokens the resource accepts, by its RFC 8414 issuer identifier (an `https` URL without
    /// query or fragment). Calls accumulate, in order; a repeated issuer is listed once.
    pub fn authorization_server(mut self, issuer: &str) -> Self {
        match checked_url("authorization_servers", issuer, true) {
            Ok(()) if issuer.contains('?') => self.fail(ConfigError::Url {
                option: "authorization_servers",
                url: issuer.to_owned(),
                reason: "an issuer identifier has no query (RFC 8414 §2)",
            }),
            Ok(()) => push_new(&mut self.authorization_servers, issuer),
            Err(error) => self.fail(error),
        }
        self
    }

    /// Adds scopes to `scopes_supported` (RFC 9728 §2): those a client may ask for to reach
    /// this resource. Calls accumulate, in order, without repeats.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for scope in scopes {
            let scope = scope.into();
            match scope_challenge(std::slice::from_ref(&scope)) {
                Ok(_) => push_new(&mut self.scopes_supported, &scope),
                Err(error) => self.fail(error),
            }
        }
        self
    }

    /// Takes what `layer` enforces: the scopes it requires (`scopes_supported`) and, with DPoP
    /// on, the algorithms its proofs may use (`dpop_signing_alg_values_supported`).
    ///
    /// [`build`](Self::build) fails when the layer's challenges point at another metadata URL.
    pub fn bound_token_layer<V, R>(mut self, layer: &BoundTokenLayer<V, R>) -> Self {
        let policy = layer.policy();
        self.check_layer_url(policy.resource_metadata.as_deref());
        if let Some(dpop) = &policy.dpop {
            self = self.dpop(dpop);
        }
        self.scopes_supported(policy.required_scopes.iter().cloned())
    }

    /// Adds the scopes a route's `layer` requires to `scopes_supported`.
    ///
    /// [`build`](Self::build) fails when the layer's challenges point at another metadata URL.
    pub fn require_scope_layer<R>(mut self, layer: &RequireScopeLayer<R>) -> Self {
        self.check_layer_url(layer.resource_metadata_url());
        self.scopes_supported(layer.required_scopes().iter().cloned())
    }

    /// A layer whose challenges name another document would send clients elsewhere.
    fn check_layer_url(&mut self, url: Option<&str>) {
        if let Some(url) = url.filter(|url| *url != self.metadata_url) {
            self.fail(ConfigError::Url {
                option: "resource_metadata",
                url: url.to_owned(),
                reason: "the layer's challenges point at another metadata URL than this document's",
            });
        }
    }

    /// Sets `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4; default `true`:
    /// a [`BoundTokenLayer`] checks every certificate binding).
    pub fn certificate_bound(mut self, supported: bool) -> Self {
        self.certificate_bound = supported;
        self
    }

    /// Sets `dpop_signing_alg_values_supported` (RFC 9728 §2) to the algorithms `dpop` accepts,
    /// under every name it accepts them by (`EdDSA` and `Ed25519`, RFC 9864).
    /// [`bound_token_layer`](Self::bound_token_layer) does this for a layer with DPoP on.
    pub fn dpop(mut self, dpop: &Dpop) -> Self {
        self.dpop_algs = Some(dpop.algs().split(' ').map(str::to_owned).collect());
        self
    }

    /// Sets `dpop_bound_access_tokens_required` (RFC 9728 §2; default `false`, as a
    /// [`BoundTokenLayer`] with DPoP on still accepts certificate-bound `Bearer` tokens). Only
    /// with [`dpop`](Self::dpop) or a layer with DPoP on.
    pub fn dpop_bound_access_tokens_required(mut self, required: bool) -> Self {
        self.dpop_bound_required = required;
        self
    }

    /// Sets `resource_name`, the human-readable name of the resource.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Sets `resource_documentation`, a page for developers (an absolute `http(s)` URL).
    pub fn resource_documentation(mut self, url: &str) -> Self {
        self.resource_documentation = self.url("resource_documentation", url, false);
        self
    }

    /// Sets `resource_policy_uri`, how the resource's data may be used (an absolute `http(s)`
    /// URL).
    pub fn resource_policy_uri(mut self, url: &str) -> Self {
        self.resource_policy_uri = self.url("resource_policy_uri", url, false);
        self
    }

    /// Sets `resource_tos_uri`, the resource's terms of service (an absolute `http(s)` URL).
    pub fn resource_tos_uri(mut self, url: &str) -> Self {
        self.resource_tos_uri = self.url("resource_tos_uri", url, false);
        self
    }

    /// Sets `jwks_uri`, the resource's public keys (an `https` URL).
    pub fn jwks_uri(mut self, url: &str) -> Self {
        self.jwks_uri = self.url("jwks_uri", url, true);
        self
    }

    /// Adds `signed_metadata` (RFC 9728 §2.2): the document's values, and `iss` = `issuer`
    /// (an `https` URL: the party that attests to them), as a JWT signed with `key` under
    /// `algorithm`, once, at [`build`](Self::build). A client that trusts `issuer`'s keys
    /// prefers the signed values to the plain ones.
    pub fn signed_metadata(mut self, issuer: &str, algorithm: Algorithm, key: EncodingKey) -> Self {
        if self.url("signed_metadata", issuer, true).is_some() {
            self.signer = Some(Signer {
                issuer: issuer.to_owned(),
                algorithm,
                key,
                kid: None,
            });
        }
        self
    }

    /// The `kid` header of the [`signed_metadata`](Self::signed_metadata) JWT, naming the key
    /// among the issuer's published keys.
    pub fn signed_metadata_key_id(mut self, kid: &str) -> Self {
        if let Some(signer) = &mut self.signer {
            signer.kid = Some(kid.to_owned());
        }
        self
    }

    /// How long clients and caches may keep the document (`cache-control: max-age`; default
    /// an hour). Whole seconds count.
    pub fn cache_max_age(mut self, max_age: Duration) -> Self {
        self.cache_max_age = max_age;
        self
    }

    fn url(&mut self, option: &'static str, url: &str, https_only: bool) -> Option<String> {
        match checked_url(option, url, https_only) {
            Ok(()) => Some(url.to_owned()),
            Err(error) => {
                self.fail(error);
                None
            }
        }
    }

    /// Checks the document and renders it, once: the service answers every request with these
    /// bytes.
    ///
    /// # Errors
    /// The first problem a setter found (a URL that is not absolute, an issuer that is not
    /// `https`, a scope that is not an RFC 6749 §3.3 scope token, a layer pointing at another
    /// metadata URL), or `dpop_bound_access_tokens_required` without DPoP.
    pub fn build(self) -> Result<ResourceMetadataService, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.dpop_bound_required && self.dpop_algs.is_none() {
            return Err(ConfigError::invalid(
                "dpop_bound_access_tokens_required",
                "DPoP-bound tokens required, but DPoP is not configured",
            ));
        }
        let mut document = Document {
            resource: &self.resource,
            authorization_servers: &self.authorization_servers,
            jwks_uri: self.jwks_uri.as_deref(),
            scopes_supported: &self.scopes_supported,
            bearer_methods_supported: &["header"],
            resource_name: self.resource_name.as_deref(),
            resource_documentation: self.resource_documentation.as_deref(),
            resource_policy_uri: self.resource_policy_uri.as_deref(),
            resource_tos_uri: self.resource_tos_uri.as_deref(),
            tls_client_certificate_bound_access_tokens: self.certificate_bound,
            dpop_signing_alg_values_supported: self.dpop_algs.as_deref(),
            dpop_bound_access_tokens_required: self
                .dpop_algs
                .as_ref()
                .map(|_| self.dpop_bound_required),
            signed_metadata: None,
        };
        // Signed over every other value (§2.2), then added beside them.
        let signed = match &self.signer {
            Some(signer) => Some(signer.sign(&document)?),
            None => None,
        };
        document.signed_metadata = signed.as_deref();
        let body = serde_json::to_vec(&document).map_err(|error| {
            ConfigError::invalid_because("resource_metadata", "cannot render the document", error)
        })?;
        let cache_control = format!("public, max-age={}", self.cache_max_age.as_secs());
        let cache_control = HeaderValue::from_str(&cache_control).map_err(|error| {
            ConfigError::invalid_because("cache_max_age", "not a header value", error)
        })?;
        Ok(ResourceMetadataService::new(Prebuilt {
            path: self.path,
            metadata_url: self.metadata_url,
            body: Bytes::from(body),
            cache_control,
        }))
    }
}

impl fmt::Debug for ResourceMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceMetadata")
            .field("resource", &self.resource)
            .field("metadata_url", &self.metadata_url)
            .field("authorization_servers", &self.authorization_servers)
            .field("scopes_supported", &self.scopes_supported)
            .finish_non_exhaustive()
    }
}

/// The document under its registered names (RFC 9728 §2), in the RFC's order.
#[derive(Serialize)]
struct Document<'a> {
    resource: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    authorization_servers: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    scopes_supported: &'a [String],
    bearer_methods_supported: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_policy_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_tos_uri: Option<&'a str>,
    tls_client_certificate_bound_access_tokens: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_signing_alg_values_supported: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_bound_access_tokens_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_metadata: Option<&'a str>,
}

fn push_new(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|known| known == value) {
        list.push(value.to_owned());
    }
}

/// Checks an absolute `http(s)` URL (`https` only when `https_only`) with a host and without
/// fragment, spaces or control characters.
fn checked_url(option: &'static str, url: &str, https_only: bool) -> Result<(), ConfigError> {
    let bad = |reason| ConfigError::Url {
        option,
        url: url.to_owned(),
        reason,
    };
    let rest = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
        rest
    } else if let (false, Some(rest)) = (https_only, strip_prefix_ignore_case(url, "http://")) {
        rest
    } else if https_only {
        return Err(bad("not an https URL"));
    } else {
        return Err(bad("not an absolute http(s) URL"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("a URL here has a host and no user information"));
    }
    if url.contains('#') {
        return Err(bad("a URL here has no fragment"));
    }
    if url.bytes().any(|b| b <= b' ' || b == 0x7F) {
        return Err(bad("a URL has no spaces or control characters"));
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    match (text.get(..prefix.len()), text.get(prefix.len()..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(prefix) => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::{JwtValidator, RequireScopeLayer};

    fn document(metadata: ResourceMetadata) -> Value {
        let service = metadata.build().unwrap();
        serde_json::from_slice(&service.body()).unwrap()
    }

    fn plain_layer() -> BoundTokenLayer<JwtValidator> {
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"1yfLHCpXqFjxCeHHHMVDTcLscpb07KUxudBmOMn8C7Q","y":"8_coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8"}]}"#;
        let validator = JwtValidator::builder("https://as.example", "https://api.example")
            .jwks_json(jwks)
            .build()
            .unwrap();
        BoundTokenLayer::new(validator)
    }

    #[test]
    fn the_document_holds_exactly_the_registered_members() {
        let metadata = ResourceMetadata::new("https://api.example/v1")
            .unwrap()
            .authorization_server("https://as.example")
            .authorization_server("https://as2.example/tenant")
            .authorization_server("https://as.example")
            .scopes_supported(["read", "write", "read"])
            .dpop(&Dpop::new())
            .dpop_bound_access_tokens_required(true)
            .resource_name("Example API")
            .resource_documentation("https://docs.example/api")
            .resource_policy_uri("https://api.example/policy")
            .resource_tos_uri("http://api.example/tos")
            .jwks_uri("https://api.example/jwks");
        assert_eq!(
            document(metadata),
            json!({
                "resource": "https://api.example/v1",
                "authorization_servers": ["https://as.example", "https://as2.example/tenant"],
                "jwks_uri": "https://api.example/jwks",
                "scopes_supported": ["read", "write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example API",
                "resource_documentation": "https://docs.example/api",
                "resource_policy_uri": "https://api.example/policy",
                "resource_tos_uri": "http://api.example/tos",
                "tls_client_certificate_bound_access_tokens": true,
                "dpop_signing_alg_values_supported":
                    ["ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA", "Ed25519"],
                "dpop_bound_access_tokens_required": true,
            })
        );
    }

    #[test]
    fn a_minimal_document_says_only_what_is_known() {
        let metadata = ResourceMetadata::new("https://api.example")
            .unwrap()
            .certificate_bound(false);
        assert_eq!(
            document(metadata),
            json!({
                "resource": "https://api.example",
                "bearer_methods_supported": ["header"],
                "tls_client_certificate_bound_access_tokens": false,
            })
        );
    }

    #[test]
    fn the_metadata_url_puts_the_well_known_suffix_between_host_and_path() {
        let cases = [
            (
                "https://api.example",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example/",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example/v1",
                "https://api.example/.well-known/oauth-protected-resource/v1",
            ),
            (
                "https://api.example:8443/a/b/",
                "https://api.example:8443/.well-known/oauth-protected-resource/a/b/",
            ),
            (
                "HTTPS://Api.Example/V1",
                "https://Api.Example/.well-known/oauth-protected-resource/V1",
            ),
        ];
        for (resource, url) in cases {
            let metadata = ResourceMetadata::new(resource).unwrap();
            assert_eq!(metadata.metadata_url(), url, "{resource}");
            assert_eq!(metadata.resource(), resource, "published as given (§3.3)");
            let path = &url[url.find("/.well-known").unwrap()..];
            assert_eq!(metadata.well_known_path(), path, "{resource}");
            assert_eq!(metadata.build().unwrap().path(), path, "{resource}");
        }
    }

    #[test]
    fn a_resource_identifier_must_be_an_https_url_without_query_or_fragment() {
        for bad in [
            "http://api.example",
            "api.example",
            "/v1",
            "https://",
            "https:///v1",
            "https://user@api.example",
            "https://api.example/v1?tenant=a",
            "https://api.example/v1#top",
            "https://api.example/a b",
            "https://api.example/\"",
            "",
        ] {
            let error = ResourceMetadata::new(bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::Url {
                        option: "resource",
                        ..
                    }
                ),
                "{bad:?}: {error:?}"
            );
        }
    }

    #[test]
    fn a_bad_value_from_any_setter_fails_the_build() {
        let base = || ResourceMetadata::new("https://api.example").unwrap();
        let cases: [(&str, ResourceMetadata); 8] = [
            (
                "authorization_servers",
                base().authorization_server("http://as.example"),
            ),
            (
                "authorization_servers",
                base().authorization_server("https://as.example?x=1"),
            ),
            ("scope", base().scopes_supported(["a b"])),
            (
                "resource_documentation",
                base().resource_documentation("/docs"),
            ),
            (
                "resource_policy_uri",
                base().resource_policy_uri("ftp://x.example"),
            ),
            (
                "resource_tos_uri",
                base().resource_tos_uri("https://x.example/#tos"),
            ),
            ("jwks_uri", base().jwks_uri("http://api.example/jwks")),
            (
                "dpop_bound_access_tokens_required",
                base().dpop_bound_access_tokens_required(true),
            ),
        ];
        for (option, metadata) in cases {
            let error = metadata.build().unwrap_err();
            let named = match &error {
                ConfigError::Url { option, .. } | ConfigError::Invalid { option, .. } => *option,
                _ => "",
            };
            assert_eq!(named, option, "{error}");
        }
        // The first problem is the one reported.
        let error = base()
            .jwks_uri("nope")
            .resource_tos_uri("nope")
            .build()
            .unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Url {
                option: "jwks_uri",
                ..
            }
        ));
    }

    #[test]
    fn the_layers_settings_flow_into_the_document() {
        let metadata = ResourceMetadata::new("https://api.example").unwrap();
        let url = metadata.metadata_url().to_owned();
        let layer = plain_layer()
            .dpop(Dpop::new().algorithms(&[crate::Algorithm::EdDSA]).unwrap())
            .require_scope("read")
            .unwrap()
            .resource_metadata(&url)
            .unwrap();
        let admin = RequireScopeLayer::new(["admin", "read"])
            .unwrap()
            .resource_metadata(&url)
            .unwrap();
        let doc = document(
            metadata
                .bound_token_layer(&layer)
                .require_scope_layer(&admin)
                .scopes_supported(["audit"]),
        );
        assert_eq!(doc["scopes_supported"], json!(["read", "admin", "audit"]));
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            json!(["EdDSA", "Ed25519"])
        );
        assert_eq!(doc["dpop_bound_access_tokens_required"], false);
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);

        // Without DPoP on the layer, the document offers none.
        let doc = document(
            ResourceMetadata::new("https://api.example")
                .unwrap()
                .bound_token_layer(&plain_layer()),
        );
        assert!(doc.get("dpop_signing_alg_values_supported").is_none());
        assert!(doc.get("dpop_bound_access_tokens_required").is_none());
    }

    #[test]
    fn a_layer_whose_challenges_name_another_document_fails_the_build() {
        let other = "https://api.example/.well-known/oauth-protected-resource/v2";
        let layer = plain_layer().resource_metadata(other).unwrap();
        let error = ResourceMetadata::new("https://api.example/v1")
            .unwrap()
            .bound_token_layer(&layer)
            .build()
            .unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Url {
                option: "resource_metadata",
                ..
            }
        ));
        let admin = RequireScopeLayer::new(["admin"])
            .unwrap()
            .resource_metadata(other)
            .unwrap();
        assert!(ResourceMetadata::new("https://api.example/v1")
            .unwrap()
            .require_scope_layer(&admin)
            .build()
            .is_err());
    }
}
