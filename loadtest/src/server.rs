//! The server child, the redis-server of `dpop-redis`, and the `/proc` readings of both.

use super::*;

pub(crate) type OkBody = Full<Bytes>;

/// `GET /` → `200 ok`; anything else `404`.
/// Requests that reached the handler (printed at exit under `LOAD_SERVER_WRAPPER`).
pub(crate) static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs the server child under this command (e.g. `valgrind --tool=callgrind`), split at
/// whitespace; the child then prints how many requests it handled when it exits.
pub(crate) const WRAPPER_ENV: &str = "LOAD_SERVER_WRAPPER";

/// Set (to anything) in the environment of a load test built with the `metrics` feature: the
/// server child installs a Prometheus recorder before it starts serving, so that certbound's
/// series are recorded (rendered at exit, not served).
pub(crate) const METRICS_RECORDER_ENV: &str = "LOAD_METRICS_RECORDER";

/// What renders the installed recorder's series.
#[cfg(feature = "metrics")]
type Recorded = metrics_exporter_prometheus::PrometheusHandle;
#[cfg(not(feature = "metrics"))]
type Recorded = std::convert::Infallible;

/// Installs a Prometheus recorder (without its HTTP listener) when asked to.
fn install_recorder() -> Result<Option<Recorded>, BoxError> {
    if std::env::var_os(METRICS_RECORDER_ENV).is_none() {
        return Ok(None);
    }
    #[cfg(feature = "metrics")]
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        Ok(Some(handle))
    }
    #[cfg(not(feature = "metrics"))]
    Err(format!("{METRICS_RECORDER_ENV} needs the load test built with --features metrics").into())
}

/// The series in Prometheus's text format.
#[cfg(feature = "metrics")]
fn rendered(handle: Recorded) -> String {
    handle.render()
}
#[cfg(not(feature = "metrics"))]
fn rendered(handle: Recorded) -> String {
    match handle {}
}

/// The soak server's scoped route (behind `RequireScopeLayer`): `200 ok` (kept apart from
/// [`hello`], whose instructions every variant counts).
pub(crate) async fn admin(_request: Request<Incoming>) -> Result<Response<OkBody>, Infallible> {
    SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

pub(crate) async fn hello(request: Request<Incoming>) -> Result<Response<OkBody>, Infallible> {
    SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    if request.method() != http::Method::GET || request.uri().path() != "/" {
        *response.status_mut() = StatusCode::NOT_FOUND;
        *response.body_mut() = Full::default();
    }
    Ok(response)
}

/// Runs one server until its stdin closes (the parent's signal; also when the parent dies).
pub(crate) fn server_main(kind: ServerKind, threads: usize) -> Result<(), BoxError> {
    let recorder = install_recorder()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let material = ServerMaterial::from_json_line(&line)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("load-server")
        .enable_all()
        .build()?;
    let addr = runtime.block_on(async move {
        let mut tls = ServerTls::new(
            vec![CertificateDer::from(material.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.key_pkcs8)),
        )
        .client_ca([CertificateDer::from(material.ca_der)])?;
        if kind == ServerKind::Soak {
            // DPoP clients need no certificate; certificate-bound tokens without one are refused
            // by the layer (the soak's `no-client-certificate` rejection).
            tls = tls.client_certificate_optional();
        }
        let tls = tls.build()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handler = tower::service_fn(hello);
        match kind {
            ServerKind::Plain => {
                tokio::spawn(certbound::serve(listener, tls, handler).into_future());
            }
            ServerKind::Certbound
            | ServerKind::CertboundNoCache
            | ServerKind::CertboundSmallCache => {
                let mut validator = JwtValidator::builder(ISS, AUD).jwks_json(material.jwks);
                if kind == ServerKind::CertboundNoCache {
                    validator = validator.no_cache();
                } else if kind == ServerKind::CertboundSmallCache {
                    // Small enough to stay in the CPU's caches (one shard, ~800 ES256 entries
                    // of ~1.3 KiB each by the cache's weights); the default is 100 000 / 64 MiB.
                    validator = validator.max_cache_entries(1_000).max_cache_bytes(1 << 20);
                }
                let validator = validator.build()?;
                let service = BoundTokenLayer::new(validator).layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Peer => {
                use tower_oauth2_resource_server::{
                    server::OAuth2ResourceServer, tenant::TenantConfiguration,
                    validation::ClaimsValidationSpec,
                };
                // The same checks as certbound's validator: iss, aud, exp, nbf (60 s leeway,
                // jsonwebtoken's default in both). Claims decoded into a full JSON map, as
                // certbound keeps every claim of a validated token.
                let tenant = TenantConfiguration::static_builder(material.jwks)
                    .claims_validation(ClaimsValidationSpec::recommended(
                        ISS,
                        &vec![AUD.to_owned()],
                    ))
                    .build()?;
                let peer = OAuth2ResourceServer::<serde_json::Map<String, Value>>::builder()
                    .add_tenant(tenant)
                    .build()
                    .await?;
                let service = peer.into_layer::<OkBody>().layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::CertboundDpop | ServerKind::CertboundDpopRedis => {
                let validator = JwtValidator::builder(ISS, AUD)
                    .jwks_json(material.jwks)
                    .build()?;
                let dpop = if kind == ServerKind::CertboundDpopRedis {
                    let url = material.redis_url.ok_or("dpop-redis: no redis URL")?;
                    Dpop::new().replay_store(RedisReplayStore::connect(&url).await?)
                } else {
                    let mut store = MemoryReplayStore::new();
                    if let Some(entries) = material.replay_max_entries {
                        store = store.max_entries(entries);
                    }
                    Dpop::new().replay_store(store)
                };
                let service = BoundTokenLayer::new(validator).dpop(dpop).layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Issuers1 | ServerKind::Issuers1000 => {
                // Routed by `iss`: the tokens' issuer, alone or among 999 others with the same
                // keys (only the map lookup grows with the set).
                let others = if kind == ServerKind::Issuers1000 {
                    999
                } else {
                    0
                };
                let mut issuers = certbound::Issuers::builder();
                for i in 0..others {
                    let other = JwtValidator::builder(format!("https://as-{i}.example"), AUD)
                        .jwks_json(material.jwks.clone())
                        .build()?;
                    issuers = issuers.jwt(other);
                }
                let validator = JwtValidator::builder(ISS, AUD)
                    .jwks_json(material.jwks)
                    .build()?;
                let issuers = issuers.jwt(validator).build()?;
                let service = BoundTokenLayer::new(issuers).layer(handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Soak => {
                // The defaults of an application: the validator's cache (5 min, 100 000
                // entries, 64 MiB) and the in-memory replay store's bounds (64 MiB).
                let validator = JwtValidator::builder(ISS, AUD)
                    .jwks_json(material.jwks)
                    .build()?;
                let admin = RequireScopeLayer::new(["admin"])?.layer(tower::service_fn(admin));
                let routes = tower::service_fn(move |request: Request<Incoming>| {
                    let admin = admin.clone();
                    async move {
                        if request.uri().path() == "/admin" {
                            admin.oneshot(request).await
                        } else {
                            hello(request).await
                        }
                    }
                });
                let dpop = Dpop::new().replay_store(MemoryReplayStore::new());
                let service = BoundTokenLayer::new(validator).dpop(dpop).layer(routes);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Upstream => proxied::spawn_upstream(listener),
            ServerKind::RawVerify => {
                let key = Arc::new(parsed_key(&material.jwks)?);
                let service =
                    tower::service_fn(move |request| raw_verify(Arc::clone(&key), request));
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
            ServerKind::Huskarl => {
                let validator = huskarl_peer::validator(&material.jwks, ISS, AUD).await?;
                let service = huskarl_peer::HuskarlAuth::new(validator, handler);
                tokio::spawn(certbound::serve(listener, tls, service).into_future());
            }
        }
        Ok::<_, BoxError>(addr)
    })?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {addr}")?;
    stdout.flush()?;
    // Blocks (no CPU) until the parent closes our stdin.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Some(recorder) = recorder {
        // What the recorder saw: the proof that it was installed and recorded.
        let text = rendered(recorder);
        for line in text.lines().filter(|l| l.starts_with("certbound_")) {
            eprintln!("load server ({}): {line}", kind.name());
        }
    }
    if std::env::var_os(WRAPPER_ENV).is_some() {
        eprintln!(
            "load server ({}): handled {} requests",
            kind.name(),
            SERVED.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    Ok(())
}

/// A server child process.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    pub(crate) fn spawn(
        kind: ServerKind,
        threads: usize,
        material: &ServerMaterial,
    ) -> Result<Self, BoxError> {
        let wrapper = std::env::var(WRAPPER_ENV).unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(std::env::current_exe()?);
                command
            }
            None => Command::new(std::env::current_exe()?),
        };
        let mut child = command
            .args(["--server-only", kind.name(), "--server-threads"])
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("child stdin")?;
        stdin.write_all(material.to_json_line().as_bytes())?;
        stdin.flush()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("child stdout")?).read_line(&mut line)?;
        let addr = match line.trim().strip_prefix("listening ") {
            Some(addr) => addr.parse()?,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("server child did not start ({kind:?}): {line:?}").into());
            }
        };
        Ok(ServerProcess {
            child,
            stdin: Some(stdin),
            addr,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(mut self) -> Result<(), BoxError> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("server child exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The redis-server of `dpop-redis`
// ---------------------------------------------------------------------------------------------

/// A redis-server of this tool's own on a free local port, without persistence (as the test
/// fixtures start it), pinned with the server child; stopped on drop.
pub(crate) struct RedisServer {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl RedisServer {
    pub(crate) fn start(args: &Args) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = if args.pin {
            // The store is server-side work: it shares the server's cores, never the client's.
            let mut command = Command::new("taskset");
            command.args(["-c", &args.server_cpus(), "redis-server"]);
            command
        } else {
            Command::new("redis-server")
        };
        let child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (Debian: apt-get install redis-server): {e}"))?;
        let server = RedisServer { child, port };
        for _ in 0..100 {
            if server.cli(&["PING"]).is_ok_and(|out| out.trim() == "PONG") {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("redis-server did not answer PING within 5 s".into())
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn cli(&self, command: &[&str]) -> Result<String, BoxError> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(command)
            .output()?;
        if !out.status.success() {
            return Err(format!("redis-cli {command:?}: {}", out.status).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Zeroes `INFO commandstats`.
    pub(crate) fn reset_stats(&self) -> Result<(), BoxError> {
        self.cli(&["CONFIG", "RESETSTAT"]).map(drop)
    }

    /// Calls per command since the last reset (`cmdstat_set:calls=N,...`), this tool's own
    /// `CONFIG` and `INFO` left out.
    pub(crate) fn commandstats(&self) -> Result<BTreeMap<String, u64>, BoxError> {
        let info = self.cli(&["INFO", "commandstats"])?;
        Ok(info
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .filter(|(name, _)| !name.starts_with("config") && name != "info")
            .collect())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------------

/// CPU time of every live thread of `pid`, in nanoseconds (`schedstat`'s first field), falling
/// back to the process's `utime + stime` (clock ticks, assumed 100 Hz) without schedstat.
pub(crate) fn process_cpu_ns(pid: u32) -> u64 {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let path = task.path().join("schedstat");
            if let Some(ns) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
                any = true;
            }
        }
    }
    if any && total > 0 {
        return total;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the `(comm)`, which may contain spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) * 10_000_000)
        })
        .unwrap_or(0)
}

/// Minor page faults of process `pid` so far (`/proc/<pid>/stat`'s `minflt`): memory the process
/// touched for the first time (fresh pages from the kernel, zeroed), 0 if unreadable.
pub(crate) fn process_minor_faults(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
