//! certbound-authz behind real proxies: nginx (`auth_request`), Traefik (`ForwardAuth`) and
//! Caddy (`forward_auth`), each terminating mTLS in front of an echo server, with the real
//! binary deciding. Test files: `proxy_nginx.rs`, `proxy_traefik.rs`, `proxy_caddy.rs` (the
//! same [`cases`] for each), `proxy_two_instances.rs`.
#![allow(dead_code, unreachable_pub)]

pub mod cases;
pub mod pki;
pub mod proxy;
pub mod redis;
pub mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::binary::{Authz, JwksServer};
use crate::support::{TempDir, AUDIENCE, ISSUER};
pub use pki::{ClientId, Pki, HOST, PUBLIC_URL};
pub use proxy::{Kind, Proxy};
pub use upstream::Upstream;

/// The certbound-authz configuration of a deployment behind `kind`: the issuer of the
/// [`JwksServer`] at `jwks_url`, `public_url` the API's public origin, every identity header,
/// and `tokens` as more `[tokens]` lines.
pub fn authz_config(kind: Kind, jwks_url: &str, tokens: &str) -> String {
    let profile = kind.profile();
    format!(
        r#"
[listen]
http = "127.0.0.1:0"

[[issuers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks_url = "{jwks_url}"
ca_file = "as-ca.pem"

[tokens]
public_url = "{PUBLIC_URL}"
{tokens}

[proxy]
profile = "{profile}"
trusted = ["127.0.0.1/32"]

[identity_headers]
subject = "x-auth-subject"
client_id = "x-auth-client-id"
scope = "x-auth-scope"
issuer = "x-auth-issuer"
binding = "x-auth-binding"
"#
    )
}

/// One deployment: the proxy, certbound-authz behind it, the API, the issuer's keys.
/// (Fields drop in order: the proxy goes first, the directory last.)
pub struct Deployment {
    pub kind: Kind,
    pub proxy: Proxy,
    pub authz: Authz,
    pub upstream: Upstream,
    pub jwks: JwksServer,
    pub pki: Pki,
    pub dir: TempDir,
}

impl Deployment {
    /// `kind` in front of a new upstream and certbound-authz with `tokens` as more `[tokens]`
    /// lines (`dir` may already hold files those lines name); `None` when the proxy is not
    /// installed (and not required).
    pub async fn start(kind: Kind, dir: TempDir, tokens: &str) -> Option<Self> {
        let binary = kind.binary()?;
        let jwks = JwksServer::start(&dir).await;
        let config = dir.write("authz.toml", authz_config(kind, &jwks.url, tokens));
        let authz = Authz::start(&config).await;
        let upstream = Upstream::start().await;
        let pki = Pki::new();
        let proxy_dir = dir.0.join(kind.profile());
        let proxy = Proxy::start(kind, &binary, &proxy_dir, &pki, authz.addr, upstream.addr).await;
        Some(Self {
            kind,
            proxy,
            authz,
            upstream,
            jwks,
            pki,
            dir,
        })
    }

    /// An HTTPS client of the proxy, presenting `identity` when given.
    pub fn client(&self, identity: Option<&ClientId>) -> reqwest::Client {
        client(&self.pki, self.proxy.port, identity)
    }

    /// `https://api.example.com:PORT` + `path` (the client resolves the name to 127.0.0.1).
    pub fn url(&self, path: &str) -> String {
        url(self.proxy.port, path)
    }

    /// `GET path` through the proxy as `identity`, with `headers`.
    pub async fn get(
        &self,
        identity: Option<&ClientId>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client(identity).get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::of(request.send().await.expect("a response from the proxy")).await
    }
}

/// An HTTPS client of a proxy on `port` whose certificate `pki` issued.
pub fn client(pki: &Pki, port: u16, identity: Option<&ClientId>) -> reqwest::Client {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("trust anchor");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain(), id.key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], port)))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("client")
}

/// `https://api.example.com:PORT` + `path`.
pub fn url(port: u16, path: &str) -> String {
    format!("https://{HOST}:{port}{path}")
}

/// A response through the proxy, and what reached the upstream when it did.
#[derive(Debug)]
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// The upstream's echo (`None`: the request did not reach it).
    pub upstream: Option<Value>,
}

impl Reply {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body");
        let upstream = serde_json::from_slice::<Value>(&body)
            .ok()
            .filter(|echo| echo["upstream"] == true);
        Self {
            status,
            headers,
            upstream,
        }
    }

    /// The values of `name` the upstream received (none when it was not reached).
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.upstream
            .as_ref()
            .and_then(|echo| echo["headers"][name].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// The path and query the upstream received.
    pub fn upstream_target(&self) -> Option<&str> {
        self.upstream.as_ref()?["target"].as_str()
    }

    /// The refusal's `WWW-Authenticate`, or "".
    pub fn challenge(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}
