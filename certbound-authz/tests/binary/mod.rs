//! The built binary, run as operators run it, and the HTTPS JWKS endpoint its issuer needs.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use certbound::tls::ServerTls;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::support::{server_pki, Issuer, TempDir};

pub const BINARY: &str = env!("CARGO_BIN_EXE_certbound-authz");

/// Runs `certbound-authz ARGS` to completion: (exit code, stdout, stderr).
pub fn run(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let output = std::process::Command::new(BINARY)
        .args(args)
        .output()
        .expect("run certbound-authz");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An issuer whose JWKS is served over HTTPS by a test CA (written to the directory as
/// `as-ca.pem`, for `ca_file`).
pub struct JwksServer {
    pub issuer: Issuer,
    pub url: String,
    /// Whether it serves the key set (`false`: `503`, as an authorization server that is down).
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(dir: &TempDir) -> Self {
        Self::start_with(dir, true).await
    }

    /// A server that answers `503` until [`JwksServer::come_up`].
    pub async fn start_down(dir: &TempDir) -> Self {
        Self::start_with(dir, false).await
    }

    /// Serves the key set from now on.
    pub fn come_up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    async fn start_with(dir: &TempDir, up: bool) -> Self {
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(up));
        let issuer = Issuer::new();
        let (ca_pem, chain, key) = server_pki();
        dir.write("as-ca.pem", ca_pem);
        let tls = ServerTls::new(
            vec![CertificateDer::from(chain)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .no_client_auth()
        .build()
        .expect("server TLS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let jwks = issuer.jwks().to_string();
        let serving = std::sync::Arc::clone(&up);
        let service = tower::service_fn(move |_request: http::Request<hyper::body::Incoming>| {
            let jwks = jwks.clone();
            let up = serving.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut response =
                    http::Response::new(http_body_util::Full::new(bytes::Bytes::from(jwks)));
                if !up {
                    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    *response.body_mut() = http_body_util::Full::default();
                }
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let task = tokio::spawn(async move {
            let _ = certbound::serve(listener, tls, service).await;
        });
        Self {
            issuer,
            url: format!("https://localhost:{port}/jwks"),
            up,
            task,
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running `certbound-authz --config FILE`, killed on drop.
pub struct Authz {
    /// The address of the first listener (`http` with [`Authz::start`]).
    pub addr: SocketAddr,
    /// The metrics listener's address, when `listen.metrics` is set.
    pub metrics: Option<SocketAddr>,
    /// Each listener's scheme and address, in the order of the `listening on` lines.
    pub listening: Vec<(String, SocketAddr)>,
    child: Child,
    stderr: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Authz {
    /// Starts the binary with the configuration at `config` and waits for its
    /// `listening on http://ADDR` line, after `metrics on http://ADDR` with `listen.metrics`
    /// (no sleeping: each is read as soon as it is written).
    pub async fn start(config: &Path) -> Self {
        Self::start_with(config, &["http"]).await
    }

    /// Starts the binary and waits for one `listening on SCHEME://ADDR` line per scheme, in
    /// this order (`http` before `grpc`, as the binary writes them).
    pub async fn start_with(config: &Path, schemes: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start certbound-authz");
        // Its stderr, line by line, for `stderr_line` (and echoed for a failing test's output).
        let (lines_tx, stderr) = tokio::sync::mpsc::unbounded_channel();
        let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                eprintln!("certbound-authz stderr: {line}");
                let _ = lines_tx.send(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics = None;
        let mut listening = Vec::new();
        for scheme in schemes {
            let addr: SocketAddr = loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("read stdout")
                    .expect("certbound-authz exited before listening");
                if let Some(addr) = line.strip_prefix("metrics on http://") {
                    metrics = Some(addr.parse().expect("an address"));
                    continue;
                }
                break line
                    .strip_prefix(&format!("listening on {scheme}://"))
                    .unwrap_or_else(|| panic!("unexpected line: {line}"))
                    .parse()
                    .expect("an address");
            };
            listening.push(((*scheme).to_owned(), addr));
        }
        Self {
            addr: listening[0].1,
            metrics,
            listening,
            child,
            stderr,
        }
    }

    /// The address of the `scheme` listener.
    pub fn listener(&self, scheme: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(s, _)| s == scheme)
            .unwrap_or_else(|| panic!("no {scheme} listener"))
            .1
    }

    /// The next line the binary writes on stderr.
    pub async fn stderr_line(&mut self) -> String {
        self.stderr
            .recv()
            .await
            .expect("certbound-authz closed stderr")
    }

    /// The next line on stderr that contains `text` (the lines before it are skipped).
    pub async fn stderr_line_with(&mut self, text: &str) -> String {
        loop {
            let line = self.stderr_line().await;
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends SIGHUP.
    pub fn hang_up(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP {pid}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        let addr = self.metrics.expect("listen.metrics is set");
        format!("http://{addr}{path}")
    }

    /// Sends SIGTERM and waits for the exit: its code and the stderr lines not read yet.
    pub async fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        let code = self.child.wait().await.expect("wait").code();
        let mut rest = Vec::new();
        while let Some(line) = self.stderr.recv().await {
            rest.push(line);
        }
        (code, rest)
    }
}

/// A configuration for `profile` trusting `trusted`, with the issuer of the [`JwksServer`] at
/// `jwks_url` (its CA in `as-ca.pem` beside the file) and `tokens` as the `[tokens]` lines.
pub fn config(profile: &str, trusted: &str, jwks_url: &str, tokens: &str) -> String {
    use crate::support::{AUDIENCE, ISSUER};
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
{tokens}

[proxy]
profile = "{profile}"
trusted = ["{trusted}"]

[identity_headers]
subject = "x-auth-subject"
binding = "x-auth-binding"
"#
    )
}
