//! Real TLS-terminating proxies (nginx, HAProxy from Debian packages) started on 127.0.0.1 with
//! generated configurations, forwarding the client certificate to an upstream over plain HTTP.
//!
//! The proxies connect upstream **from 127.0.0.2** (nginx `proxy_bind`, HAProxy `source`), so
//! that the upstream can trust exactly them (`127.0.0.2/32`) while a test client connecting
//! directly from 127.0.0.1 is an untrusted peer.
//!
//! When a proxy binary is missing the tests that need it are skipped with a message, unless
//! `CERTBOUND_REQUIRE_PROXIES=1` (set by `.ci/run`, which installs them), where it is a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Pki;

/// The address the proxies connect upstream from.
pub const PROXY_SOURCE: &str = "127.0.0.2";

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// nginx: `ssl_verify_client optional_no_ca`, `$ssl_client_escaped_cert` (URL-encoded PEM).
    Nginx,
    /// HAProxy: `verify optional` against the client CA, `%[ssl_c_der,base64]`.
    Haproxy,
}

impl ProxyKind {
    fn binary(self) -> &'static str {
        match self {
            Self::Nginx => "/usr/sbin/nginx",
            Self::Haproxy => "/usr/sbin/haproxy",
        }
    }

    /// Whether the proxy is installed; when it is not, says so and whether the test must fail.
    pub fn available(self) -> bool {
        if Path::new(self.binary()).exists() {
            return true;
        }
        assert!(
            std::env::var("CERTBOUND_REQUIRE_PROXIES").as_deref() != Ok("1"),
            "{} is not installed, and CERTBOUND_REQUIRE_PROXIES=1",
            self.binary()
        );
        eprintln!(
            "SKIPPED: {} is not installed (apt-get install nginx-light haproxy; .ci/run does)",
            self.binary()
        );
        false
    }
}

/// The nginx configuration the README shows, on `port`, forwarding to `upstream`.
fn nginx_config(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server-cert.pem;
        ssl_certificate_key {d}/server-key.pem;
        # Ask for a client certificate, accept any (the token binding decides what it means).
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass http://{upstream};
            proxy_bind {PROXY_SOURCE};
            # Always set: overwrites whatever the client sent; empty (so not sent) without a
            # client certificate.
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"#
    )
}

/// The HAProxy configuration the README shows, on `port`, forwarding to `upstream`.
fn haproxy_config(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"global
    maxconn 64
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tls
    bind 127.0.0.1:{port} ssl crt {d}/haproxy.pem verify optional ca-file {d}/ca.pem
    # Never pass on what the client sent; set it only for a verified client certificate.
    http-request del-header X-SSL-Client-Cert
    http-request set-header X-SSL-Client-Cert %[ssl_c_der,base64] if {{ ssl_c_used }}
    default_backend app
backend app
    server app {upstream} source {PROXY_SOURCE}
"#
    )
}

/// A running proxy; killed on drop.
pub struct Proxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Proxy {
    /// Starts `kind` on a free port in front of `upstream`, with `pki`'s server identity and
    /// (HAProxy) its CA for client certificates, and returns once it accepts connections.
    pub async fn start(kind: ProxyKind, pki: &Pki, upstream: SocketAddr) -> Proxy {
        Self::start_with_config(kind, pki, upstream, |dir, port| match kind {
            ProxyKind::Nginx => nginx_config(dir, port, upstream),
            ProxyKind::Haproxy => haproxy_config(dir, port, upstream),
        })
        .await
    }

    /// Like [`start`](Self::start), with the configuration `config(dir, port)` writes (the
    /// PEM files are in `dir`: `server-cert.pem`, `server-key.pem`, `ca.pem`, and for HAProxy
    /// the bundle `haproxy.pem`).
    pub async fn start_with_config(
        kind: ProxyKind,
        pki: &Pki,
        upstream: SocketAddr,
        config: impl FnOnce(&Path, u16) -> String,
    ) -> Proxy {
        let dir = std::env::temp_dir().join(format!(
            "certbound-proxy-{kind:?}-{}-{}",
            std::process::id(),
            upstream.port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("proxy dir");
        let pem = pki.write_pem_files(&dir).expect("PEM files");
        let port = free_port();
        let (config, args): (String, Vec<String>) = match kind {
            ProxyKind::Nginx => {
                let path = dir.join("nginx.conf");
                let args = vec![
                    "-p".into(),
                    dir.display().to_string(),
                    "-e".into(),
                    dir.join("error.log").display().to_string(),
                    "-c".into(),
                    path.display().to_string(),
                ];
                (config(&dir, port), args)
            }
            ProxyKind::Haproxy => {
                let bundle = [
                    std::fs::read_to_string(&pem.server_cert).expect("cert"),
                    std::fs::read_to_string(&pem.server_key).expect("key"),
                ]
                .concat();
                std::fs::write(dir.join("haproxy.pem"), bundle).expect("haproxy.pem");
                let path = dir.join("haproxy.cfg");
                (
                    config(&dir, port),
                    vec!["-db".into(), "-f".into(), path.display().to_string()],
                )
            }
        };
        let config_name = match kind {
            ProxyKind::Nginx => "nginx.conf",
            ProxyKind::Haproxy => "haproxy.cfg",
        };
        std::fs::write(dir.join(config_name), config).expect("proxy config");
        let child = Command::new(kind.binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", kind.binary()));
        let mut proxy = Proxy { child, port, dir };

        // Poll until it accepts TCP connections (every 20 ms, at most 10 s).
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..500 {
            tick.tick().await;
            if let Some(status) = proxy.child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(proxy.dir.join("error.log")).unwrap_or_default();
                panic!("{kind:?} exited at start ({status}): {log}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return proxy;
            }
        }
        panic!("{kind:?} did not listen on 127.0.0.1:{port} within 10 s");
    }

    /// `https://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
