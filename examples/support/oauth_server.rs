//! The routes of a small RFC 8705 authorization server, shared by `examples/authorization_server.rs`
//! (behind its command-line flags) and `examples/demo.rs` (in-process):
//!
//! - `POST /token`: `grant_type=client_credentials`, behind [`MtlsClientAuthLayer`]; issues an
//!   RFC 9068 JWT access token (ES256) bound to the client's certificate (`cnf.x5t#S256`), or,
//!   when the request carries a `DPoP` proof (RFC 9449 §5), to the proof's key (`cnf.jkt`,
//!   `token_type: DPoP`; with `x5t#S256` as well for clients registered with
//!   `tls_client_certificate_bound_access_tokens: true`);
//! - `GET /jwks`: the token-signing key;
//! - `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata (also under the issuer's
//!   path, RFC 8414 §3.1), with `dpop_signing_alg_values_supported`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::authorization_server::{
    AuthenticatedClient, AuthorizationServerMetadata, ClientAuthenticator, ClientRegistry,
    FormParameters, MtlsClientAuthLayer, SenderConstraints, TokenEndpointDpop,
};
use certbound::dpop::Dpop;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

/// Lifetime of issued access tokens.
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 300;

/// The token-signing key and what goes into every token.
pub(crate) struct TokenIssuer {
    issuer: String,
    audience: String,
    lifetime_secs: u64,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl TokenIssuer {
    /// A fresh ES256 key for `issuer`, tokens for `audience` valid for
    /// [`TOKEN_LIFETIME_SECS`].
    pub(crate) fn generate(
        issuer: &str,
        audience: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        Self::generate_with_lifetime(issuer, audience, TOKEN_LIFETIME_SECS)
    }

    /// [`TokenIssuer::generate`] with tokens valid for `lifetime_secs`.
    pub(crate) fn generate_with_lifetime(
        issuer: &str,
        audience: &str,
        lifetime_secs: u64,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        // jsonwebtoken signs with the process-wide provider; this one is aws-lc-rs.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let point = key.public_key_raw(); // 0x04 || x (32 bytes) || y (32 bytes)
        let kid = URL_SAFE_NO_PAD.encode(&random_bytes()[..8]);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime_secs,
            kid,
            key: EncodingKey::from_ec_der(&key.serialize_der()),
            jwk,
        })
    }

    /// `{"keys": [the public key]}`.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Signs an RFC 9068 access token for `client`, bound as `constraints` say.
    fn issue(
        &self,
        client: &AuthenticatedClient,
        scope: Option<&str>,
        constraints: &SenderConstraints,
    ) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), self.audience.clone().into());
        // RFC 9068 §2.2: with client credentials, the subject is the client itself.
        claims.insert("sub".into(), client.client_id().into());
        claims.insert("client_id".into(), client.client_id().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.lifetime_secs).into());
        claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(random_bytes()).into());
        if let Some(scope) = scope {
            claims.insert("scope".into(), scope.into());
        }
        // RFC 8705 §3.1: cnf.x5t#S256 of the certificate the client authenticated with;
        // RFC 9449 §6.1: cnf.jkt of the token request's DPoP proof key.
        constraints.insert_into(&mut claims);

        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        // jsonwebtoken's process-wide provider, installed in `generate_with_lifetime`.
        #[allow(clippy::disallowed_methods)]
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // The system CSPRNG through rustls' aws-lc-rs provider; it does not fail on supported
    // platforms, and a zero jti would only weaken replay detection, not token security.
    let _ = rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes);
    bytes
}

struct AppState {
    tokens: TokenIssuer,
    metadata: Value,
}

/// The routes. `issuer` must be an https URL without query or fragment (RFC 8414 §2); the
/// endpoints are announced under its origin. DPoP proofs at the token endpoint are checked
/// with the defaults of [`Dpop::new`] (one process: an in-memory replay store, no nonces).
/// `clients`: a `StaticClients`, or a `ReloadableClients` whose file is watched.
pub(crate) fn router(
    tokens: TokenIssuer,
    clients: impl ClientRegistry,
    authenticator: ClientAuthenticator,
) -> Result<Router, String> {
    router_with_dpop(tokens, clients, authenticator, Dpop::new())
}

/// [`router`] with DPoP proofs at the token endpoint checked as `dpop` says (nonces, say).
pub(crate) fn router_with_dpop(
    tokens: TokenIssuer,
    clients: impl ClientRegistry,
    authenticator: ClientAuthenticator,
    dpop: Dpop,
) -> Result<Router, String> {
    let url = reqwest::Url::parse(&tokens.issuer).map_err(|e| format!("--issuer: {e}"))?;
    if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
        return Err("--issuer must be an https URL without query or fragment".to_owned());
    }
    let origin = url.origin().ascii_serialization();
    let token_endpoint = format!("{origin}/token");
    // Proofs are for the one URL clients use: the token endpoint is its own mTLS alias.
    let dpop = TokenEndpointDpop::new(dpop, &token_endpoint).map_err(|e| e.to_string())?;
    let metadata = AuthorizationServerMetadata::new(tokens.issuer.clone())
        .token_endpoint(token_endpoint.clone())
        .jwks_uri(format!("{origin}/jwks"))
        .grant_types_supported(["client_credentials"])
        // Every endpoint of this server accepts client certificates.
        .mtls_token_endpoint(token_endpoint)
        .dpop_signing_alg_values_supported(dpop.signing_alg_values());
    let metadata = serde_json::to_value(metadata).map_err(|e| e.to_string())?;
    let state = Arc::new(AppState { tokens, metadata });

    let well_known = "/.well-known/oauth-authorization-server";
    let mut app = Router::new()
        .route("/token", post(token))
        .route_layer(MtlsClientAuthLayer::new(clients, authenticator).dpop(dpop))
        .route("/jwks", get(jwks))
        .route(well_known, get(metadata_document));
    let path = url.path().trim_end_matches('/');
    if !path.is_empty() {
        app = app.route(&format!("{well_known}{path}"), get(metadata_document));
    }
    Ok(app.with_state(state))
}

async fn jwks(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.tokens.jwks())
}

async fn metadata_document(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.metadata.clone())
}

/// An RFC 6749 §5.1 / §5.2 JSON response, never cached.
fn no_store(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(code: &str, description: &str) -> Response {
    no_store(
        StatusCode::BAD_REQUEST,
        json!({ "error": code, "error_description": description }),
    )
}

/// RFC 6749 §3.3 scope-token characters.
fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// `POST /token`: the layer has authenticated the client by its certificate, and checked the
/// DPoP proof if there is one, already.
async fn token(
    State(state): State<Arc<AppState>>,
    client: AuthenticatedClient,
    params: FormParameters,
) -> Response {
    match params.get("grant_type") {
        Some("client_credentials") => {}
        Some(_) => return oauth_error("unsupported_grant_type", "only client_credentials"),
        None => return oauth_error("invalid_request", "grant_type is required"),
    }
    // The client's registered `scope` (RFC 7591 §2), if any, bounds what it may ask for: the
    // registration it authenticated with (the registry may have been reloaded since).
    let registered: Option<Vec<&str>> = client
        .client()
        .metadata()
        .other
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect());
    let scope = match params.get("scope") {
        Some(requested) => {
            let tokens: Vec<&str> = requested.split(' ').collect();
            if !tokens.iter().all(|t| is_scope_token(t)) {
                return oauth_error("invalid_scope", "malformed scope");
            }
            if let Some(allowed) = &registered {
                if !tokens.iter().all(|t| allowed.contains(t)) {
                    return oauth_error("invalid_scope", "scope not allowed for this client");
                }
            }
            Some(requested.to_owned())
        }
        None => registered.map(|s| s.join(" ")),
    };
    let constraints = client.sender_constraints();
    match state.tokens.issue(&client, scope.as_deref(), &constraints) {
        Ok(access_token) => {
            let mut body = json!({
                "access_token": access_token,
                // RFC 9449 §5: DPoP for a token bound to the proof's key.
                "token_type": constraints.token_type(),
                "expires_in": state.tokens.lifetime_secs,
            });
            if let Some(scope) = scope {
                body["scope"] = scope.into();
            }
            no_store(StatusCode::OK, body)
        }
        Err(_) => no_store(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": "server_error" }),
        ),
    }
}
