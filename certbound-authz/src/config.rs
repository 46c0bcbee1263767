//! The configuration file: the TOML keys of the command-line contract (issue 25), read with
//! `deny_unknown_fields` so that a misspelt key is an error, never a silent default; every path
//! it names is read and checked here, at load, so that errors are found at start and never on
//! the first request. Every error names the key it is about (`tokens.dpop_nonce_key_file: ...`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use certbound::forwarded::IpRange;
use http::{HeaderName, Method};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

/// A configuration error: the key it is about and what is wrong, shown on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The dotted key (`tokens.public_url`, `issuers[1].ca_file`), or `configuration` when the
    /// error is about no key in particular (an unreadable file, a TOML syntax error).
    pub(crate) key: String,
    pub(crate) message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl fmt::Display) -> Self {
        // One line, whatever the message (a library error may hold newlines).
        let message = message.to_string().replace(['\n', '\r'], " ");
        Self {
            key: key.into(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: RawListen,
    issuers: Vec<RawIssuer>,
    introspection: Option<RawIntrospection>,
    #[serde(default)]
    tokens: RawTokens,
    proxy: RawProxy,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    identity_headers: IdentityHeaderNames,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    http: Option<String>,
    grpc: Option<String>,
    metrics: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audiences: Vec<String>,
    jwks_url: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntrospection {
    url: String,
    client_id: String,
    client_secret_file: PathBuf,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    #[serde(default)]
    allow_unbound: bool,
    #[serde(default = "yes")]
    dpop: bool,
    dpop_nonce_key_file: Option<PathBuf>,
    dpop_max_cached_proof_keys: Option<usize>,
    replay_redis: Option<String>,
    public_url: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            allow_unbound: false,
            dpop: true,
            dpop_nonce_key_file: None,
            dpop_max_cached_proof_keys: None,
            replay_redis: None,
            public_url: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    /// Required with `listen.http` only.
    profile: Option<Profile>,
    trusted: Vec<String>,
    client_cert_header: Option<String>,
    #[serde(default)]
    grpc_client_cert: GrpcClientCert,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path_prefix: String,
    methods: Option<Vec<String>>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    open: bool,
    /// `false`: the prefix matches in any letter case (for upstreams that read `/ADMIN` as
    /// `/admin`).
    #[serde(default = "yes")]
    case_sensitive: bool,
    /// Step-up (RFC 9470): the acceptable `acr` values.
    acr_values: Option<Vec<String>>,
    /// Step-up (RFC 9470): the longest time since the user authenticated, in seconds (signed
    /// here so that a negative value is refused with the route's index).
    max_age: Option<i64>,
}

/// Where the HTTP listener takes each fact from, and how it shapes a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Profile {
    Nginx,
    Traefik,
    Caddy,
    EnvoyHttp,
}

/// Where the gRPC frontend takes the client certificate from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum GrpcClientCert {
    /// `attributes.source.certificate` (Envoy's `include_peer_certificate: true`).
    #[default]
    Source,
    /// The `Cert=` (or `Hash=`) of the nearest element of `x-forwarded-client-cert` (an Istio
    /// ingress gateway's).
    Xfcc,
}

/// `[identity_headers]`: the header each identity fact goes upstream in; a fact without a
/// header is not sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityHeaderNames {
    pub(crate) subject: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) binding: Option<String>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen_http: Option<SocketAddr>,
    pub(crate) listen_grpc: Option<SocketAddr>,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub(crate) listen_metrics: Option<SocketAddr>,
    pub(crate) log_format: LogFormat,
    pub(crate) issuers: Vec<Issuer>,
    pub(crate) introspection: Option<Introspection>,
    pub(crate) tokens: Tokens,
    pub(crate) proxy: Proxy,
    pub(crate) routes: Vec<Route>,
    pub(crate) identity_headers: IdentityHeaders,
}

#[derive(Debug, Clone)]
pub(crate) struct Issuer {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
}

#[derive(Clone)]
pub(crate) struct Introspection {
    pub(crate) url: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) roots: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("Introspection")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) allow_unbound: bool,
    pub(crate) dpop: bool,
    pub(crate) dpop_nonce_key_file: Option<PathBuf>,
    /// `Dpop::max_cached_proof_keys`; the library's default when not set.
    pub(crate) dpop_max_cached_proof_keys: Option<usize>,
    pub(crate) replay_redis: Option<String>,
    pub(crate) public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    /// `envoy-http` when not set (then there is no `listen.http`).
    pub(crate) profile: Profile,
    pub(crate) trusted: Vec<IpRange>,
    pub(crate) client_cert_header: HeaderName,
    pub(crate) grpc_client_cert: GrpcClientCert,
}

#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) path_prefix: String,
    /// `None`: every method.
    pub(crate) methods: Option<Vec<Method>>,
    pub(crate) scopes: Vec<String>,
    pub(crate) open: bool,
    /// `false`: `path_prefix` is held in lower case and compared with the lower-cased path.
    pub(crate) case_sensitive: bool,
    /// Step-up: the acceptable `acr` values (`None`: any).
    pub(crate) acr_values: Option<Vec<String>>,
    /// Step-up: the longest time since the user authenticated (`None`: any).
    pub(crate) max_age: Option<std::time::Duration>,
}

impl Route {
    /// Whether the route covers `method` and `path`: `path_prefix` matches whole segments
    /// (`/admin` covers `/admin` and `/admin/users`, not `/administrators`); in any letter case
    /// with `case_sensitive = false` (Unicode lower case on both sides).
    pub(crate) fn covers(&self, method: &Method, path: &str) -> bool {
        let prefix = self.path_prefix.as_str();
        let lowered;
        let path = if self.case_sensitive {
            path
        } else {
            lowered = path.to_lowercase();
            lowered.as_str()
        };
        let path_matches = match path.strip_prefix(prefix) {
            None => false,
            Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        };
        path_matches
            && self
                .methods
                .as_ref()
                .is_none_or(|methods| methods.contains(method))
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityHeaders {
    pub(crate) subject: Option<HeaderName>,
    pub(crate) client_id: Option<HeaderName>,
    pub(crate) scope: Option<HeaderName>,
    pub(crate) issuer: Option<HeaderName>,
    pub(crate) binding: Option<HeaderName>,
}

impl Profile {
    /// The header the profile reads the client certificate from, unless
    /// `proxy.client_cert_header` says otherwise.
    pub(crate) fn default_cert_header(self) -> &'static str {
        match self {
            Profile::Nginx => "x-ssl-client-cert",
            Profile::Traefik => "x-forwarded-tls-client-cert",
            Profile::Caddy => "x-client-cert",
            Profile::EnvoyHttp => "x-forwarded-client-cert",
        }
    }
}

/// Reads, parses and checks the file at `path`. Relative paths inside it are relative to the
/// file's directory.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("configuration", format!("cannot read the file: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base)
}

/// Parses and checks `text`; relative paths are resolved against `base`.
pub(crate) fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let raw: Raw = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    check(raw, base)
}

fn check(raw: Raw, base: &Path) -> Result<Config, ConfigError> {
    let addr = |key: &str, value: &Option<String>| -> Result<Option<SocketAddr>, ConfigError> {
        value
            .as_deref()
            .map(|v| {
                v.parse::<SocketAddr>().map_err(|_| {
                    ConfigError::new(
                        key,
                        format!("{v:?} is not an address such as 127.0.0.1:9191"),
                    )
                })
            })
            .transpose()
    };
    let listen_http = addr("listen.http", &raw.listen.http)?;
    let listen_grpc = addr("listen.grpc", &raw.listen.grpc)?;
    let listen_metrics = addr("listen.metrics", &raw.listen.metrics)?;
    if listen_http.is_none() && listen_grpc.is_none() {
        return Err(ConfigError::new(
            "listen",
            "set at least one of listen.http and listen.grpc",
        ));
    }

    if raw.issuers.is_empty() {
        return Err(ConfigError::new("issuers", "list at least one [[issuers]]"));
    }
    let mut issuers: Vec<Issuer> = Vec::with_capacity(raw.issuers.len());
    for (i, issuer) in raw.issuers.into_iter().enumerate() {
        let key = |name: &str| format!("issuers[{i}].{name}");
        if issuer.issuer.is_empty() {
            return Err(ConfigError::new(key("issuer"), "must not be empty"));
        }
        if issuers.iter().any(|seen| seen.issuer == issuer.issuer) {
            return Err(ConfigError::new(
                key("issuer"),
                format!("{:?} is listed twice", issuer.issuer),
            ));
        }
        if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                key("audiences"),
                "list at least one audience, none empty",
            ));
        }
        if let Some(url) = &issuer.jwks_url {
            https_url(&key("jwks_url"), url)?;
        }
        let roots = match &issuer.ca_file {
            Some(file) => read_cas(&key("ca_file"), &base.join(file))?,
            None => Vec::new(),
        };
        issuers.push(Issuer {
            issuer: issuer.issuer,
            audiences: issuer.audiences,
            jwks_url: issuer.jwks_url,
            roots,
        });
    }

    let introspection = match raw.introspection {
        None => None,
        Some(raw) => {
            https_url("introspection.url", &raw.url)?;
            if raw.client_id.is_empty() {
                return Err(ConfigError::new(
                    "introspection.client_id",
                    "must not be empty",
                ));
            }
            let key = "introspection.client_secret_file";
            let secret = std::fs::read_to_string(base.join(&raw.client_secret_file))
                .map_err(|e| ConfigError::new(key, format!("cannot read it: {e}")))?;
            // A trailing newline is the editor's, not the secret's.
            let secret = secret.trim_end_matches(['\n', '\r']).to_owned();
            if secret.is_empty() {
                return Err(ConfigError::new(key, "the file is empty"));
            }
            let roots = match &raw.ca_file {
                Some(file) => read_cas("introspection.ca_file", &base.join(file))?,
                None => Vec::new(),
            };
            Some(Introspection {
                url: raw.url,
                client_id: raw.client_id,
                client_secret: secret,
                roots,
            })
        }
    };

    let tokens = raw.tokens;
    if !tokens.dpop {
        for (set, key) in [
            (
                tokens.dpop_nonce_key_file.is_some(),
                "tokens.dpop_nonce_key_file",
            ),
            (tokens.replay_redis.is_some(), "tokens.replay_redis"),
            (
                tokens.dpop_max_cached_proof_keys.is_some(),
                "tokens.dpop_max_cached_proof_keys",
            ),
        ] {
            if set {
                return Err(ConfigError::new(
                    key,
                    "only applies with tokens.dpop = true",
                ));
            }
        }
    }
    let dpop_nonce_key_file = match tokens.dpop_nonce_key_file {
        None => None,
        Some(file) => {
            let file = base.join(file);
            // Read now (32 bytes or more), and again by the engine, which keeps the nonces.
            certbound::dpop::DpopNonces::from_file(&file)
                .map_err(|e| ConfigError::new("tokens.dpop_nonce_key_file", e))?;
            Some(file)
        }
    };
    if let Some(url) = &tokens.replay_redis {
        if !(url.starts_with("redis://") || url.starts_with("unix://")) {
            return Err(ConfigError::new(
                "tokens.replay_redis",
                format!("{url:?} is not a redis:// or unix:// URL"),
            ));
        }
    }
    if let Some(url) = &tokens.public_url {
        certbound::dpop::Dpop::new()
            .public_url(url)
            .map_err(|e| ConfigError::new("tokens.public_url", e))?;
    }

    let mut trusted = Vec::with_capacity(raw.proxy.trusted.len());
    for (i, range) in raw.proxy.trusted.iter().enumerate() {
        let range = range.parse::<IpRange>().map_err(|_| {
            ConfigError::new(
                format!("proxy.trusted[{i}]"),
                format!("{range:?} is not an IP address or CIDR range"),
            )
        })?;
        trusted.push(range);
    }
    if trusted.is_empty() {
        return Err(ConfigError::new(
            "proxy.trusted",
            "list the proxies' addresses (no peer is trusted otherwise)",
        ));
    }
    let profile = match raw.proxy.profile {
        Some(profile) => profile,
        None if listen_http.is_some() => {
            return Err(ConfigError::new(
                "proxy.profile",
                "set it for listen.http: nginx, traefik, caddy or envoy-http",
            ))
        }
        // Only the gRPC listener: no profile is read.
        None => Profile::EnvoyHttp,
    };
    let client_cert_header = header_name(
        "proxy.client_cert_header",
        raw.proxy
            .client_cert_header
            .as_deref()
            .unwrap_or(profile.default_cert_header()),
    )?;

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, route) in raw.routes.into_iter().enumerate() {
        let key = |name: &str| format!("routes[{i}].{name}");
        if !route.path_prefix.starts_with('/') {
            return Err(ConfigError::new(key("path_prefix"), "must start with /"));
        }
        let (acr_values, max_age) = step_up(&key, &route)?;
        let methods = match route.methods {
            None => None,
            Some(methods) if methods.is_empty() => {
                return Err(ConfigError::new(
                    key("methods"),
                    "an empty list matches nothing; leave the key out for every method",
                ))
            }
            Some(methods) => Some(
                methods
                    .iter()
                    .map(|m| {
                        Method::from_bytes(m.as_bytes()).map_err(|_| {
                            ConfigError::new(key("methods"), format!("{m:?} is not a method"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        if route.open && !route.scopes.is_empty() {
            return Err(ConfigError::new(
                key("scopes"),
                "an open route needs no token, so it cannot require scopes",
            ));
        }
        if let Some(scope) = route
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(' '))
        {
            return Err(ConfigError::new(
                key("scopes"),
                format!("{scope:?} is not a scope (no spaces, not empty)"),
            ));
        }
        routes.push(Route {
            path_prefix: if route.case_sensitive {
                route.path_prefix
            } else {
                route.path_prefix.to_lowercase()
            },
            case_sensitive: route.case_sensitive,
            methods,
            scopes: route.scopes,
            open: route.open,
            acr_values,
            max_age,
        });
    }

    let names = raw.identity_headers;
    let identity = |key: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|name| header_name(&format!("identity_headers.{key}"), name))
            .transpose()
    };
    let identity_headers = IdentityHeaders {
        subject: identity("subject", &names.subject)?,
        client_id: identity("client_id", &names.client_id)?,
        scope: identity("scope", &names.scope)?,
        issuer: identity("issuer", &names.issuer)?,
        binding: identity("binding", &names.binding)?,
    };

    Ok(Config {
        listen_http,
        listen_grpc,
        listen_metrics,
        log_format: raw.log.format,
        issuers,
        introspection,
        tokens: Tokens {
            allow_unbound: tokens.allow_unbound,
            dpop: tokens.dpop,
            dpop_nonce_key_file,
            dpop_max_cached_proof_keys: tokens.dpop_max_cached_proof_keys,
            replay_redis: tokens.replay_redis,
            public_url: tokens.public_url,
        },
        proxy: Proxy {
            profile,
            trusted,
            client_cert_header,
            grpc_client_cert: raw.proxy.grpc_client_cert,
        },
        routes,
        identity_headers,
    })
}

fn https_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::new(key, format!("{url:?} is not a URL")))?;
    if parsed.scheme_str() != Some("https") || parsed.host().is_none() {
        return Err(ConfigError::new(
            key,
            format!("{url:?} is not an https:// URL"),
        ));
    }
    Ok(())
}

fn header_name(key: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new(key, format!("{name:?} is not a header name")))
}

/// The certificates of a PEM file: at least one.
fn read_cas(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// A TOML or schema error, on one line, with the dotted key it is about: the table header
/// above the error and the key on the error's line (toml's own `Display` spans several lines).
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim_end_matches('\n');
    let Some(span) = error.span() else {
        return ConfigError::new("configuration", message);
    };
    let offset = span.start.min(text.len());
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_no = before.matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let trimmed = line.trim();
    let key_here = if trimmed.starts_with('[') {
        Some(
            trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        )
    } else {
        trimmed
            .split_once('=')
            .map(|(key, _)| key.trim().trim_matches('"').to_owned())
            .map(|key| match &table {
                Some(table) => format!("{table}.{key}"),
                None => key,
            })
    };
    let mut key = key_here
        .or(table)
        .unwrap_or_else(|| "configuration".to_owned());
    // `missing field `name``: the key is the missing one, in the table the span covers (the
    // whole document for a top-level key).
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    {
        key = if span.start == 0 && span.end >= text.trim_end().len() {
            name.to_owned()
        } else if trimmed.starts_with('[') {
            format!(
                "{}.{name}",
                trimmed.trim_matches(|c| c == '[' || c == ']').trim()
            )
        } else {
            name.to_owned()
        };
    }
    ConfigError::new(key, format!("{message} (line {line_no})"))
}

// `[log]` and the routes' step-up keys.
#[path = "config_ops.rs"]
mod ops;
pub(crate) use ops::LogFormat;
use ops::{step_up, RawLog};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
