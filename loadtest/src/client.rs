//! The load generator and its latency histogram.

use super::*;

// Latency histogram: log-linear buckets, 64 per power of two (< 1.6 % relative error).

pub(crate) const SUB_BITS: u32 = 7;
pub(crate) const HALF: usize = 1 << (SUB_BITS - 1);

#[derive(Clone)]
pub(crate) struct Histogram {
    pub(crate) counts: Vec<u64>,
    pub(crate) total: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 2) * HALF],
            total: 0,
        }
    }

    pub(crate) fn index(ns: u64) -> usize {
        if ns < (1 << SUB_BITS) {
            return ns as usize;
        }
        let shift = 63 - ns.leading_zeros() - (SUB_BITS - 1);
        shift as usize * HALF + (ns >> shift) as usize
    }

    /// The middle of a bucket's range.
    pub(crate) fn value(index: usize) -> u64 {
        if index < (1 << SUB_BITS) {
            return index as u64;
        }
        let shift = index / HALF - 1;
        let mantissa = (index - shift * HALF) as u64;
        (mantissa << shift) + (1u64 << shift) / 2
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The latency at quantile `q` (0..=1); zero when empty.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(Self::value(i));
            }
        }
        Duration::MAX
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------------

/// How a connection obtains the `Authorization` (and `DPoP`) headers of each request.
#[derive(Clone)]
pub(crate) enum Tokens {
    None,
    Same(HeaderValue),
    /// Pre-minted, each used once; past the end, reused (counted and reported).
    Pool(Arc<Vec<HeaderValue>>),
    /// Minted on the fly on the client (memory mode, where client time does not matter).
    Mint(Arc<Material>, usize),
    /// One DPoP-bound token and pre-signed proofs, each used once; past the end, reused
    /// (counted and reported: the server refuses a replayed proof).
    Dpop(DpopToken, Arc<Vec<HeaderValue>>),
    /// `dpop-distinct`: pre-signed (DPoP-bound token, proof) pairs, each pair used once; past
    /// the end, reused (counted and reported).
    DpopPairs(Arc<Vec<(HeaderValue, HeaderValue)>>),
    /// One DPoP-bound token, proofs signed on the fly by client `.1` (memory mode).
    DpopMint(DpopToken, Arc<Material>, usize),
}

pub(crate) struct TokenCursor {
    pub(crate) tokens: Tokens,
    pub(crate) next: usize,
}

/// The credentials of one request: `Authorization` and `DPoP`.
pub(crate) type Credentials = (Option<HeaderValue>, Option<HeaderValue>);

impl TokenCursor {
    pub(crate) fn next(&mut self, stats: &mut ConnStats) -> Credentials {
        let TokenCursor { tokens, next } = self;
        let mut take = |pool: &[HeaderValue]| {
            if *next >= pool.len() {
                stats.reused_tokens += 1;
            }
            let value = pool[*next % pool.len()].clone();
            *next += 1;
            value
        };
        match tokens {
            Tokens::None => (None, None),
            Tokens::Same(value) => (Some(value.clone()), None),
            Tokens::Pool(pool) => (Some(take(pool)), None),
            Tokens::Mint(material, client) => (
                Some(material.signer.mint(&material.clients[*client].x5t_s256)),
                None,
            ),
            Tokens::Dpop(token, proofs) => (Some(token.authorization.clone()), Some(take(proofs))),
            Tokens::DpopPairs(pairs) => {
                if *next >= pairs.len() {
                    stats.reused_tokens += 1;
                }
                let (token, proof) = pairs[*next % pairs.len()].clone();
                *next += 1;
                (Some(token), Some(proof))
            }
            Tokens::DpopMint(token, material, client) => (
                Some(token.authorization.clone()),
                Some(material.clients[*client].dpop.proof(&token.ath)),
            ),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: TlsConnector,
    pub(crate) protocol: Protocol,
}

pub(crate) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Connector {
    pub(crate) fn new(
        addr: SocketAddr,
        client: &ClientIdentity,
        ca: &[u8],
        protocol: Protocol,
    ) -> Self {
        Self::with_identity(addr, Some(client), ca, protocol)
    }

    /// A client that presents no certificate (the soak's DPoP clients and its
    /// `no-client-certificate` rejection).
    pub(crate) fn without_certificate(addr: SocketAddr, ca: &[u8], protocol: Protocol) -> Self {
        Self::with_identity(addr, None, ca, protocol)
    }

    fn with_identity(
        addr: SocketAddr,
        client: Option<&ClientIdentity>,
        ca: &[u8],
        protocol: Protocol,
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.to_vec()))
            .expect("CA as trust anchor");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
        let mut config = match client {
            Some(client) => builder
                .with_client_auth_cert(
                    vec![client.cert.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_pkcs8.clone())),
                )
                .expect("client certificate"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![protocol.alpn().to_vec()];
        Connector {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            protocol,
        }
    }

    pub(crate) async fn connect(&self) -> Result<Sender, BoxError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        if tls.get_ref().1.alpn_protocol() != Some(self.protocol.alpn()) {
            return Err(format!("ALPN did not negotiate {}", self.protocol.name()).into());
        }
        let io = TokioIo::new(tls);
        Ok(match self.protocol {
            Protocol::H1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                Sender::H1(sender)
            }
            Protocol::H2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(conn);
                Sender::H2(sender)
            }
        })
    }
}

impl Sender {
    /// One request, response body read to the end; the status.
    pub(crate) async fn send(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> Result<StatusCode, BoxError> {
        Ok(self.exchange(request).await?.0)
    }

    /// Whether the connection is closed (by the server, or after an error).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// One request, response body read to the end; the status and the RFC 6750 `error` code of
    /// its `WWW-Authenticate` challenges, if any.
    pub(crate) async fn exchange(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> Result<(StatusCode, Option<String>), BoxError> {
        let response = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = response.status();
        let error = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .find_map(|value| {
                let value = value.to_str().ok()?;
                let rest = &value[value.find("error=\"")? + "error=\"".len()..];
                Some(rest[..rest.find('"')?].to_owned())
            });
        response.into_body().collect().await?;
        Ok((status, error))
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Stop {
    /// Keep sending until then.
    At(Instant),
    /// Send this many requests.
    After(u64),
}

pub(crate) struct ConnStats {
    pub(crate) histogram: Histogram,
    /// 200 responses completed inside the measured window.
    pub(crate) measured: u64,
    /// Every 200 response (warm-up included).
    pub(crate) ok_total: u64,
    /// Non-200 responses, by status (whole run).
    pub(crate) bad_status: BTreeMap<u16, u64>,
    /// Transport errors (whole run).
    pub(crate) transport_errors: u64,
    pub(crate) reused_tokens: u64,
    /// Requests sent with a DPoP proof (each one reaches the replay store unless refused
    /// before).
    pub(crate) proofs_sent: u64,
    /// Connections that failed and could not be re-established.
    pub(crate) lost: u64,
}

impl ConnStats {
    pub(crate) fn new() -> Self {
        ConnStats {
            histogram: Histogram::new(),
            measured: 0,
            ok_total: 0,
            bad_status: BTreeMap::new(),
            transport_errors: 0,
            reused_tokens: 0,
            proofs_sent: 0,
            lost: 0,
        }
    }

    pub(crate) fn merge(&mut self, other: &ConnStats) {
        self.histogram.merge(&other.histogram);
        self.measured += other.measured;
        self.ok_total += other.ok_total;
        for (status, n) in &other.bad_status {
            *self.bad_status.entry(*status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.reused_tokens += other.reused_tokens;
        self.proofs_sent += other.proofs_sent;
        self.lost += other.lost;
    }

    pub(crate) fn errors(&self) -> u64 {
        self.bad_status.values().sum::<u64>() + self.transport_errors + self.lost
    }
}

/// One connection's request loop.
pub(crate) async fn drive(
    connector: Connector,
    mut sender: Sender,
    mut tokens: TokenCursor,
    measure_from: Instant,
    stop: Stop,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let uri: Uri = match connector.protocol {
        Protocol::H1 => Uri::from_static("/"),
        Protocol::H2 => Uri::from_static("https://localhost/"),
    };
    let mut sent = 0u64;
    loop {
        match stop {
            Stop::At(end) if Instant::now() >= end => break,
            Stop::After(n) if sent >= n => break,
            _ => {}
        }
        let mut request = Request::get(uri.clone());
        if connector.protocol == Protocol::H1 {
            request = request.header(header::HOST, "localhost");
        }
        let (authorization, proof) = tokens.next(&mut stats);
        if let Some(token) = authorization {
            request = request.header(header::AUTHORIZATION, token);
        }
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
            stats.proofs_sent += 1;
        }
        let request = request.body(Empty::new()).expect("request");
        sent += 1;
        let started = Instant::now();
        let outcome = sender.send(request).await;
        let done = Instant::now();
        match outcome {
            Ok(StatusCode::OK) => {
                stats.ok_total += 1;
                let in_window = match stop {
                    Stop::At(end) => done >= measure_from && done <= end,
                    Stop::After(_) => true,
                };
                if in_window {
                    stats.measured += 1;
                    stats.histogram.record(done - started);
                }
            }
            Ok(status) => *stats.bad_status.entry(status.as_u16()).or_default() += 1,
            Err(_) => {
                stats.transport_errors += 1;
                match connector.connect().await {
                    Ok(fresh) => sender = fresh,
                    Err(_) => {
                        stats.lost += 1;
                        break;
                    }
                }
            }
        }
    }
    stats
}

pub(crate) struct RunResult {
    pub(crate) stats: ConnStats,
    pub(crate) elapsed: Duration,
    pub(crate) server_cpu_ns: u64,
    pub(crate) client_cpu_ns: u64,
    /// The server's minor page faults inside the measured window (0 where not read).
    pub(crate) server_minor_faults: u64,
    /// The server's RSS at the end of the measured window, in bytes (0 where not read).
    pub(crate) server_rss_end: u64,
    /// `dpop-redis`: the redis-server's commands during the run, by command.
    pub(crate) store_commands: Option<BTreeMap<String, u64>>,
}

impl RunResult {
    pub(crate) fn rps(&self) -> f64 {
        self.stats.measured as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn server_cpu_us_per_request(&self) -> f64 {
        if self.stats.measured == 0 {
            return f64::NAN;
        }
        self.server_cpu_ns as f64 / 1000.0 / self.stats.measured as f64
    }
}

/// Before any measurement: the server under test really authenticates. Without a token it must
/// answer 401 (auth variants) or 200 (baseline); servers that bind tokens to certificates must
/// refuse a valid token bound to another certificate (the peer, which does not bind, accepts
/// it); DPoP servers must accept a fresh proof and refuse it replayed. Returns the number of
/// proofs sent.
pub(crate) async fn preflight(
    sender: &mut Sender,
    protocol: Protocol,
    variant: Variant,
    material: &Material,
) -> Result<u64, BoxError> {
    let kind = variant.server();
    let request = |authorization: Option<HeaderValue>, proof: Option<HeaderValue>| {
        let mut request = Request::get(match protocol {
            Protocol::H1 => "/",
            Protocol::H2 => "https://localhost/",
        });
        if protocol == Protocol::H1 {
            request = request.header(header::HOST, "localhost");
        }
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.body(Empty::new()).expect("request")
    };
    let expect = |what: &str, got: StatusCode, want: StatusCode| {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "preflight ({}, {what}): {got}, expected {want}",
                variant.name()
            ))
        }
    };
    let no_token = sender.send(request(None, None)).await?;
    if kind == ServerKind::Plain {
        expect("no token", no_token, StatusCode::OK)?;
        return Ok(0);
    }
    expect("no token", no_token, StatusCode::UNAUTHORIZED)?;
    if matches!(variant.workload(), Workload::Dpop | Workload::DpopDistinct) {
        let signer = &material.clients[0].dpop;
        let token = material.signer.mint_dpop(&signer.jkt);
        let proof = signer.proof(&token.ath);
        let status = sender
            .send(request(
                Some(token.authorization.clone()),
                Some(proof.clone()),
            ))
            .await?;
        expect("fresh proof", status, StatusCode::OK)?;
        let status = sender
            .send(request(Some(token.authorization), Some(proof)))
            .await?;
        expect("replayed proof", status, StatusCode::UNAUTHORIZED)?;
        return Ok(2);
    }
    let signer = material.signer_for(variant.alg());
    // A token that is bound to this connection's certificate but whose signature was altered.
    let forged = corrupted(&signer.mint(&material.clients[0].x5t_s256));
    let status = sender.send(request(Some(forged), None)).await?;
    expect("corrupted signature", status, StatusCode::UNAUTHORIZED)?;
    let elsewhere = signer.mint(&URL_SAFE_NO_PAD.encode([0u8; 32]));
    let status = sender.send(request(Some(elsewhere), None)).await?;
    let want = if kind.binds_certificates() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    expect("token bound to another certificate", status, want)?;
    Ok(0)
}

/// Connects `tokens.len()` clients to `server`, checks it (see [`preflight`]), then drives them.
pub(crate) async fn run_load(
    server: &UnderTest,
    material: &Material,
    variant: Variant,
    protocol: Protocol,
    tokens: Vec<Tokens>,
    warmup: Duration,
    stop: StopSpec,
) -> Result<RunResult, BoxError> {
    let mut connections = Vec::with_capacity(tokens.len());
    let mut preflight_proofs = 0;
    for (i, tokens) in tokens.into_iter().enumerate() {
        let connector = Connector::new(
            server.addr(),
            &material.clients[i],
            &material.server.ca_der,
            protocol,
        );
        let mut sender = connector.connect().await?;
        if i == 0 {
            preflight_proofs = preflight(&mut sender, protocol, variant, material).await?;
        }
        connections.push((connector, sender, tokens));
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop = match stop {
        StopSpec::Duration(d) => Stop::At(measure_from + d),
        StopSpec::Requests(n) => Stop::After(n),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (connector, sender, tokens) in connections {
        let cursor = TokenCursor { tokens, next: 0 };
        tasks.spawn(drive(connector, sender, cursor, measure_from, stop));
    }
    let pids = server.pids();
    let server_cpu_ns = || pids.iter().map(|&pid| process_cpu_ns(pid)).sum::<u64>();
    let server_faults = || {
        pids.iter()
            .map(|&pid| process_minor_faults(pid))
            .sum::<u64>()
    };
    let server_rss = || {
        pids.iter()
            .filter_map(|&pid| status_kb(pid, "VmRSS"))
            .sum::<u64>()
    };
    let self_pid = std::process::id();
    tokio::time::sleep_until(measure_from.into()).await;
    let faults0 = server_faults();
    let (server_cpu0, client_cpu0, t0) =
        (server_cpu_ns(), process_cpu_ns(self_pid), Instant::now());
    let mut stats = ConnStats::new();
    let (faults1, rss1);
    let (server_cpu1, client_cpu1, t1) = match stop {
        Stop::At(end) => {
            tokio::time::sleep_until(end.into()).await;
            let sample = (server_cpu_ns(), process_cpu_ns(self_pid), Instant::now());
            faults1 = server_faults();
            rss1 = server_rss();
            while let Some(done) = tasks.join_next().await {
                stats.merge(&done?);
            }
            sample
        }
        Stop::After(_) => {
            while let Some(done) = tasks.join_next().await {
                stats.merge(&done?);
            }
            faults1 = server_faults();
            rss1 = server_rss();
            (server_cpu_ns(), process_cpu_ns(self_pid), Instant::now())
        }
    };
    let elapsed = match stop {
        Stop::At(end) => end - measure_from,
        Stop::After(_) => t1 - t0,
    };
    stats.proofs_sent += preflight_proofs;
    Ok(RunResult {
        stats,
        elapsed,
        server_cpu_ns: server_cpu1.saturating_sub(server_cpu0),
        client_cpu_ns: client_cpu1.saturating_sub(client_cpu0),
        server_minor_faults: faults1.saturating_sub(faults0),
        server_rss_end: rss1,
        store_commands: None,
    })
}

#[derive(Clone, Copy)]
pub(crate) enum StopSpec {
    Duration(Duration),
    Requests(u64),
}
