//! nginx terminating mTLS in front of a trivial upstream, with and without `certbound-authz`
//! deciding through `auth_request` (issue 25).
//!
//! A proxied variant runs three processes on the server side:
//! - **nginx** (`/usr/sbin/nginx`, or `LOAD_NGINX`): `daemon off; master_process off;`, so that
//!   it is one process (callgrind then counts all of nginx's work in one file, with no
//!   `--trace-children`), TLS 1.3 with client certificates required and verified against the
//!   load CA, keep-alive connections to both upstreams (`keepalive`, HTTP/1.1, as a production
//!   configuration has them: a new connection per subrequest would be measured otherwise);
//! - **the upstream**: this binary with `--server-only upstream`, plain HTTP/1.1
//!   (`certbound::serve_plain`), `GET /` → `200 ok`; it counts the requests it handled;
//! - **certbound-authz** (the authz variants): the workspace's release build
//!   (`target/release/certbound-authz`, or `LOAD_AUTHZ_BIN`), profile `nginx`, the load issuer's
//!   keys fetched at start from nginx itself (a second `server` block serving the JWKS over TLS,
//!   no client certificate: at start only, so it cancels out of the slope).
//!
//! The configuration files of both are written by this module into a fresh directory, removed
//! when the run ends. Under `LOAD_SERVER_WRAPPER` every one of the three runs under the wrapper,
//! and the process ids are printed (`load: proxied pids: nginx=… authz=… upstream=…`) so that
//! `instructions.sh` can tell their callgrind files apart.

use super::*;

/// Overrides the nginx binary.
pub(crate) const NGINX_ENV: &str = "LOAD_NGINX";
/// Overrides the certbound-authz binary.
pub(crate) const AUTHZ_ENV: &str = "LOAD_AUTHZ_BIN";

/// The nginx binary.
fn nginx_bin() -> String {
    std::env::var(NGINX_ENV).unwrap_or_else(|_| "/usr/sbin/nginx".to_owned())
}

/// The certbound-authz binary: the workspace's release build unless overridden.
fn authz_bin() -> std::path::PathBuf {
    std::env::var_os(AUTHZ_ENV).map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/release/certbound-authz")
        },
        std::path::PathBuf::from,
    )
}

/// What runs on the server side of a variant: one server child, or nginx with its upstream and
/// (for the authz variants) certbound-authz.
pub(crate) enum UnderTest {
    Direct(ServerProcess),
    Proxied(Proxied),
}

impl UnderTest {
    /// Starts what `variant` measures, pinned to the server cores when pinning is on.
    pub(crate) fn spawn(
        variant: Variant,
        args: &Args,
        material: &ServerMaterial,
    ) -> Result<Self, BoxError> {
        let under_test = match variant.proxy() {
            None => UnderTest::Direct(ServerProcess::spawn(
                variant.server(),
                args.server_threads,
                &material.for_alg(variant.alg()),
            )?),
            Some(authz) => UnderTest::Proxied(Proxied::spawn(authz, args, material)?),
        };
        if args.pin {
            for pid in under_test.pids() {
                pin(pid, &args.server_cpus())?;
            }
        }
        Ok(under_test)
    }

    /// Where the load client connects.
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            UnderTest::Direct(server) => server.addr,
            UnderTest::Proxied(proxied) => proxied.addr,
        }
    }

    /// Every server-side process (their CPU time is the server's).
    pub(crate) fn pids(&self) -> Vec<u32> {
        match self {
            UnderTest::Direct(server) => vec![server.pid()],
            UnderTest::Proxied(proxied) => proxied.pids(),
        }
    }

    /// The process whose memory `--memory` reports: the server, or certbound-authz (nginx when
    /// there is none).
    pub(crate) fn memory_pid(&self) -> u32 {
        match self {
            UnderTest::Direct(server) => server.pid(),
            UnderTest::Proxied(proxied) => proxied
                .authz
                .as_ref()
                .map(|authz| authz.child.id())
                .or(proxied.nginx.as_ref().map(Child::id))
                .unwrap_or(0),
        }
    }

    pub(crate) fn stop(self) -> Result<(), BoxError> {
        match self {
            UnderTest::Direct(server) => server.stop(),
            UnderTest::Proxied(proxied) => proxied.stop(),
        }
    }
}

/// A running certbound-authz.
pub(crate) struct Authz {
    child: Child,
}

/// Starts certbound-authz with `toml` and waits for its `listening` line; `true` when it had
/// its issuer's keys by then. Its stdout and stderr share one pipe, so that its warning about
/// the keys (stderr) is read in order before the `listening` line (stdout); a thread then
/// forwards the rest (refusal lines) to this process's stderr.
fn start_authz(toml: &std::path::Path) -> Result<(Authz, bool), BoxError> {
    let bin = authz_bin();
    let (reader, writer) = std::io::pipe()?;
    let mut command = wrapped(&bin);
    command
        .arg("--config")
        .arg(toml)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let child = command.spawn().map_err(|e| {
        format!(
            "{} ({e}): build it with `cargo build --release -p certbound-authz` at the workspace \
             root, or set {AUTHZ_ENV}",
            bin.display()
        )
    })?;
    // Our copies of the write end are gone with `command`: end of file when the child exits.
    drop(command);
    let authz = Authz { child };
    let mut lines = BufReader::new(reader);
    let mut keys = true;
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Err("certbound-authz exited at start".into());
        }
        if line.starts_with("listening on ") {
            break;
        }
        if line.contains("no keys for") {
            keys = false;
        }
        eprint!("{line}");
    }
    std::thread::spawn(move || {
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            eprint!("{line}");
            line.clear();
        }
    });
    Ok((authz, keys))
}

/// nginx, its upstream and (authz variants) certbound-authz, with their files.
pub(crate) struct Proxied {
    nginx: Option<Child>,
    authz: Option<Authz>,
    upstream: Option<ServerProcess>,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

/// A command, under `LOAD_SERVER_WRAPPER` when it is set.
fn wrapped(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let wrapper = std::env::var(WRAPPER_ENV).unwrap_or_default();
    let mut wrapper = wrapper.split_whitespace();
    match wrapper.next() {
        Some(first) => {
            let mut command = Command::new(first);
            command.args(wrapper).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A port free now on 127.0.0.1 (for the configuration files, which need it before start).
fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// PEM armour around DER.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Polls until something accepts TCP connections on `addr`, or `child` exits.
fn wait_listening(addr: SocketAddr, child: &mut Child, what: &str) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("{what} exited at start ({status})").into());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} did not listen on {addr} within 120 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The nginx configuration: mTLS on `port`, `auth_request` to certbound-authz on `authz` when
/// given, the upstream on `upstream`, the JWKS (for certbound-authz's start) on `jwks_port`.
pub(crate) fn nginx_conf(
    dir: &std::path::Path,
    port: u16,
    jwks_port: u16,
    upstream: Option<SocketAddr>,
    authz: Option<u16>,
    authz_keepalive: bool,
) -> String {
    let d = dir.display();
    let Some(upstream) = upstream else {
        // grpc-check: nginx only serves the JWKS.
        return format!(
            "# Written by the load test (loadtest/src/proxied.rs): the JWKS only.
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{jwks_port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location = /jwks {{
            default_type application/json;
            alias {d}/jwks.json;
        }}
    }}
}}
"
        );
    };
    let (auth, authz_upstream, auth_location) = match authz {
        None => (String::new(), String::new(), String::new()),
        Some(authz) if !authz_keepalive => (
            AUTH_REQUEST.to_owned(),
            String::new(),
            // As `certbound-authz/deploy/nginx-site.conf` has it: a new connection per check.
            format!(
                "        location = /_certbound_authz {{
            internal;
            proxy_pass http://127.0.0.1:{authz};
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URL $scheme://$host$request_uri;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
"
            ),
        ),
        Some(authz) => (
            AUTH_REQUEST.to_owned(),
            format!(
                "    upstream certbound_authz {{
        server 127.0.0.1:{authz};
        keepalive 32;
        keepalive_requests 100000000;
    }}
"
            ),
            "        location = /_certbound_authz {
            internal;
            proxy_pass http://certbound_authz;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URL $scheme://$host$request_uri;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }
"
            .to_owned(),
        ),
    };
    format!(
        "# Written by the load test (loadtest/src/proxied.rs). One process (no master, no
# daemon), so that callgrind counts all of nginx in one file.
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # The load client keeps its connections for the whole run.
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream app {{
        server {upstream};
        keepalive 32;
        keepalive_requests 100000000;
    }}
{authz_upstream}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        ssl_protocols TLSv1.3;
        ssl_client_certificate {d}/ca.pem;
        ssl_verify_client on;

        location / {{
{auth}            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
{auth_location}    }}
    # certbound-authz's issuer keys, fetched once at its start.
    server {{
        listen 127.0.0.1:{jwks_port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location = /jwks {{
            default_type application/json;
            alias {d}/jwks.json;
        }}
    }}
}}
"
    )
}

/// The `location /` lines that ask certbound-authz and pass its identity headers on.
const AUTH_REQUEST: &str = "            auth_request /_certbound_authz;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_binding $upstream_http_x_auth_binding;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Binding $auth_binding;
";

/// certbound-authz's configuration: the load issuer, the HTTP listener with profile nginx
/// (or the gRPC listener), 127.0.0.1 trusted.
pub(crate) fn authz_toml(dir: &std::path::Path, port: u16, jwks_port: u16, grpc: bool) -> String {
    let d = dir.display();
    let (listener, profile) = if grpc {
        ("grpc", "")
    } else {
        ("http", "profile = \"nginx\"\n")
    };
    format!(
        r#"# Written by the load test (loadtest/src/proxied.rs).
[listen]
{listener} = "127.0.0.1:{port}"

[[issuers]]
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_url = "https://localhost:{jwks_port}/jwks"
ca_file = "{d}/ca.pem"

[proxy]
{profile}trusted = ["127.0.0.1/32"]

[identity_headers]
subject = "x-auth-subject"
binding = "x-auth-binding"
"#
    )
}

/// Which proxied set-up a variant measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proxy {
    /// nginx and the upstream, no authorization.
    NginxOnly,
    /// nginx `auth_request` to certbound-authz, over keep-alive connections.
    NginxAuthz,
    /// The same with a new connection per subrequest (no `upstream` block with `keepalive`).
    NginxAuthzNoKeepalive,
    /// certbound-authz's gRPC listener alone, checked by the load client (nginx serves the
    /// JWKS only).
    AuthzGrpc,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

impl Proxied {
    fn spawn(proxy: Proxy, args: &Args, material: &ServerMaterial) -> Result<Self, BoxError> {
        let dir = std::env::temp_dir().join(format!(
            "certbound-load-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut proxied = Proxied {
            nginx: None,
            authz: None,
            upstream: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.clone(),
        };
        std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", &material.ca_der))?;
        std::fs::write(
            dir.join("server.pem"),
            pem("CERTIFICATE", &material.cert_der),
        )?;
        std::fs::write(
            dir.join("server.key"),
            pem("PRIVATE KEY", &material.key_pkcs8),
        )?;
        std::fs::write(dir.join("jwks.json"), &material.jwks)?;

        let mut upstream_addr = None;
        if proxy != Proxy::AuthzGrpc {
            let upstream =
                ServerProcess::spawn(ServerKind::Upstream, args.server_threads, material)?;
            upstream_addr = Some(upstream.addr);
            proxied.upstream = Some(upstream);
        }
        let (port, jwks_port) = (free_port()?, free_port()?);
        let authz_port = match proxy {
            Proxy::NginxOnly => None,
            Proxy::NginxAuthz | Proxy::NginxAuthzNoKeepalive | Proxy::AuthzGrpc => {
                Some(free_port()?)
            }
        };
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            nginx_conf(
                &dir,
                port,
                jwks_port,
                upstream_addr,
                authz_port.filter(|_| proxy != Proxy::AuthzGrpc),
                proxy != Proxy::NginxAuthzNoKeepalive,
            ),
        )?;
        let nginx = wrapped(nginx_bin())
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("nginx ({}): {e}", nginx_bin()))?;
        let nginx = proxied.nginx.insert(nginx);
        let listening = SocketAddr::from(([127, 0, 0, 1], port));
        let listening = if proxy == Proxy::AuthzGrpc {
            SocketAddr::from(([127, 0, 0, 1], jwks_port))
        } else {
            listening
        };
        proxied.addr = listening;
        if let Err(e) = wait_listening(listening, nginx, "nginx") {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            return Err(format!("{e}; its error log: {log}").into());
        }
        if let Some(authz_port) = authz_port {
            let toml = dir.join("certbound-authz.toml");
            std::fs::write(
                &toml,
                authz_toml(&dir, authz_port, jwks_port, proxy == Proxy::AuthzGrpc),
            )?;
            if proxy == Proxy::AuthzGrpc {
                proxied.addr = SocketAddr::from(([127, 0, 0, 1], authz_port));
            }
            // Under callgrind on a busy machine the key fetch at start can time out (its TLS
            // handshake seeds aws-lc's jitter entropy, billions of simulated instructions); its
            // tokens would then be refused with 503 for the 10 s the validator waits before
            // fetching again. A fresh process is tried instead.
            for attempt in 1..=5 {
                match start_authz(&toml)? {
                    (authz, true) => {
                        proxied.authz = Some(authz);
                        break;
                    }
                    (mut authz, false) if attempt < 5 => {
                        eprintln!("load: certbound-authz started without its keys; again");
                        let _ = authz.child.kill();
                        let _ = authz.child.wait();
                    }
                    (authz, false) => {
                        proxied.authz = Some(authz);
                        return Err("certbound-authz could not fetch its keys in 5 starts".into());
                    }
                }
            }
        }
        if std::env::var_os(WRAPPER_ENV).is_some() {
            let authz = proxied
                .authz
                .as_ref()
                .map_or("none".to_owned(), |a| a.child.id().to_string());
            eprintln!(
                "load: proxied pids: nginx={} authz={authz} upstream={}",
                proxied.nginx.as_ref().map_or(0, Child::id),
                proxied.upstream.as_ref().map_or(0, ServerProcess::pid),
            );
        }
        Ok(proxied)
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.nginx.iter().map(Child::id).collect();
        pids.extend(self.authz.as_ref().map(|a| a.child.id()));
        pids.extend(self.upstream.as_ref().map(ServerProcess::pid));
        pids
    }

    /// nginx first (SIGQUIT: graceful, it closes its connections to the others), then
    /// certbound-authz (SIGTERM: its graceful shutdown), then the upstream. Each must exit by
    /// itself so that a wrapper (callgrind) writes its counts.
    fn stop(mut self) -> Result<(), BoxError> {
        if let Some(nginx) = self.nginx.as_mut() {
            signal_and_wait(nginx, "QUIT", "nginx")?;
        }
        if let Some(mut authz) = self.authz.take() {
            signal_and_wait(&mut authz.child, "TERM", "certbound-authz")?;
        }
        if let Some(upstream) = self.upstream.take() {
            upstream.stop()?;
        }
        Ok(())
    }
}

/// Sends `signal` (with `kill`, util-linux/procps) and waits for the exit, up to 2 minutes (a
/// process under callgrind writes its counts first).
fn signal_and_wait(child: &mut Child, signal: &str, what: &str) -> Result<(), BoxError> {
    if child.try_wait()?.is_some() {
        return Err(format!("{what} had exited before the end of the run").into());
    }
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()?;
    if !status.success() {
        return Err(format!("kill -{signal} {what}: {status}").into());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{what} exited with {status}").into())
            };
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not exit within 120 s of SIGQUIT/SIGTERM").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Proxied {
    fn drop(&mut self) {
        // After `stop` these have exited already; on an error path, end them.
        for child in [
            self.nginx.as_mut(),
            self.authz.as_mut().map(|a| &mut a.child),
        ]
        .into_iter()
        .flatten()
        {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The upstream child (`--server-only upstream`): plain HTTP/1.1, `GET /` → `200 ok`.
pub(crate) fn spawn_upstream(listener: TcpListener) {
    tokio::spawn(certbound::serve_plain(listener, tower::service_fn(hello)).into_future());
}
