//! Soak mode (issue 26, `--soak`): one server under mixed traffic at a fixed, moderate rate for
//! a long time (default 30 minutes), its RSS and open file descriptors sampled at a fixed
//! interval (default every minute).
//!
//! The server is the `soak` server child (see [`ServerKind::Soak`]): the load test's example
//! server (`certbound::serve` over mTLS, `BoundTokenLayer<JwtValidator>` with a static JWKS)
//! with DPoP on (`Dpop::new()`, in-memory replay store) so that one process takes
//! certificate-bound and DPoP-bound tokens at once, as an application that accepts both does;
//! client certificates optional (DPoP clients need none); `/admin` behind
//! `RequireScopeLayer::new(["admin"])`. Every bound is the library's default: the validated-token
//! cache (5 minutes, 100 000 entries, 64 MiB), the replay store (64 MiB), the server's idle
//! timeout (60 s).
//!
//! Client tasks run for the whole soak, each on its own connection(s) at its share of
//! `--soak-rate` (see [`plans`]): the same token on keep-alive connections (HTTP/1.1 and HTTP/2);
//! a new token per request (`distinct`, minted on the fly with a lifetime of
//! `--soak-token-lifetime`); DPoP with a fresh proof per request (with and without a client
//! certificate); the scoped route; a new TLS connection per request (`churn`); every kind of
//! rejection the layer gives, in turn ([`Kind`], in `soak_kinds.rs`, lists them with the status
//! and `error` code each must get); and `--soak-idle` idle connections, HTTP/1.1 and HTTP/2, half of them held
//! open for the whole run by a request now and then (within the server's timeouts, see
//! [`idle_period`]), half silent for longer (each must find its connection closed by the
//! server, and opens a new one).
//!
//! Any other outcome is *unexpected* and counted as an error: a wrong status or `error` code, a
//! transport error, a held idle connection that the server closed, a lapsing one it did not.
//!
//! At the end: the samples (table and CSV), the requests per kind, and the verdict: 0 unexpected
//! outcomes; RSS growth from the end of warm-up to the end at most `--soak-max-growth-mib`;
//! the server's open descriptors never above their level before the first connection plus one
//! per client task (each holds at most one connection at a time) plus [`FD_SLACK`], so that a
//! descriptor leaked per connection, per request or per rejection shows within the run; and,
//! once the clients have closed every connection, back to their level before the first.
//! The process exits with status 1 when the verdict fails.
//!
//! What the caches hold: a `distinct` token's cache entry lives until the token's `exp` (at
//! most 5 minutes), but the cache never sweeps expired entries: they stay until eviction needs
//! their room. Its size therefore grows with the distinct tokens until its byte bound (about
//! 50 000 of the load test's ~600-character tokens at the default 64 MiB, each charged
//! ~1.3 KiB) and stays there; the soak's distinct rate is
//! chosen so that this happens within warm-up (printed at start). The replay store drops proofs
//! as they expire (the `iat` window, about 80 s), so it levels off at rate × window.

use super::*;
use crate::soak_kinds::*;

/// Descriptors the server may hold beyond its level before the first connection and one per
/// client task (each holds at most one connection at a time): a `churn` connection the client
/// has closed and the server has not yet, at the moment of a sample.
pub(crate) const FD_SLACK: i64 = 2;

/// About how many entries the validated-token cache holds at its default byte bound (64 MiB),
/// as it weighs the load test's ~600-character tokens (800 bytes + 7/8 of the token's length):
/// the `distinct` tokens it takes to reach its plateau.
const CACHE_ENTRIES: f64 = 50_000.0;

/// Requests that no answer came back for within this are transport errors.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle connections send a request, by kind. The server closes an HTTP/1.1
/// connection that waits more than its `header_read_timeout` (10 s) for the next request, and
/// an HTTP/2 connection without a request for its `idle_timeout` (60 s; checked every 60 s, so
/// closed 60 to 120 s after its last request).
fn idle_period(kind: Kind) -> Duration {
    Duration::from_secs(match kind {
        Kind::IdleHeld => 7,
        Kind::IdleHeldH2 => 45,
        Kind::IdleLapsing => 25,
        _ => 150,
    })
}

/// Clients go on this long after the last sample, so that it sees them all at work.
const GRACE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

/// Outcomes per kind, shared by the tasks and read by the sampler.
pub(crate) struct Tally {
    expected: Vec<AtomicU64>,
    unexpected: Vec<AtomicU64>,
    /// Lapsing idle connections found closed by the server (as they must be).
    lapsed: AtomicU64,
    /// Unexpected outcomes described so far (only the first few are printed).
    reported: AtomicU64,
}

impl Tally {
    fn new() -> Self {
        let counters = || Kind::ALL.iter().map(|_| AtomicU64::new(0)).collect();
        Tally {
            expected: counters(),
            unexpected: counters(),
            lapsed: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    fn expected(&self, kind: Kind) {
        self.expected[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// An unexpected outcome: counted, and described on stderr (the first 20; never a token).
    fn unexpected(&self, kind: Kind, what: &str) {
        self.unexpected[kind.index()].fetch_add(1, Ordering::Relaxed);
        if self.reported.fetch_add(1, Ordering::Relaxed) < 20 {
            eprintln!(
                "load soak: unexpected: {}: {what} (expected {})",
                kind.name(),
                kind.describe_expected()
            );
        }
    }

    fn snapshot(&self) -> Counts {
        let read = |v: &Vec<AtomicU64>| v.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        Counts {
            expected: read(&self.expected),
            unexpected: read(&self.unexpected),
        }
    }
}

/// Cumulative outcomes per kind (indexed as [`Kind::ALL`]).
#[derive(Clone, Default)]
pub(crate) struct Counts {
    expected: Vec<u64>,
    unexpected: Vec<u64>,
}

impl Counts {
    fn requests(&self) -> u64 {
        self.expected.iter().sum::<u64>() + self.unexpected.iter().sum::<u64>()
    }

    fn unexpected_total(&self) -> u64 {
        self.unexpected.iter().sum()
    }

    fn of(&self, kind: Kind) -> u64 {
        self.expected[kind.index()] + self.unexpected[kind.index()]
    }
}

// ---------------------------------------------------------------------------------------------
// The client tasks
// ---------------------------------------------------------------------------------------------

/// One client task: its connection, the kinds it sends in turn, and how often.
pub(crate) struct Plan {
    connector: Connector,
    /// A new connection for every request.
    churn: bool,
    kinds: Vec<Kind>,
    period: Duration,
    /// Before the first request (spreads the idle connections over their period).
    delay: Duration,
    /// The idle connections' own token (`None`: the kind's own).
    token: Option<HeaderValue>,
}

/// The tasks and their shares of `rate`: 30 % `repeated` (HTTP/1.1 and HTTP/2), 30 %
/// `distinct`, 16 % `dpop`, 13 % the rejections in turn (with `scoped` among them), 2 % on a
/// connection without a client certificate, 8 % `churn`; plus the idle connections.
pub(crate) fn plans(addr: SocketAddr, fixtures: &Fixtures, soak: &SoakArgs) -> Vec<Plan> {
    let material = &fixtures.material;
    let ca = &material.server.ca_der;
    let with =
        |client: usize, protocol| Connector::new(addr, &material.clients[client], ca, protocol);
    let every = |share: f64| Duration::from_secs_f64(1.0 / (soak.rate * share).max(0.001));
    let plan = |connector, kinds: Vec<Kind>, share| Plan {
        connector,
        churn: false,
        kinds,
        period: every(share),
        delay: Duration::ZERO,
        token: None,
    };
    let mut refused = Kind::refused_with_certificate();
    refused.push(Kind::Scoped);
    let mut plans = vec![
        plan(with(REPEATED, Protocol::H1), vec![Kind::Repeated], 0.17),
        plan(
            with(REPEATED_H2, Protocol::H2),
            vec![Kind::RepeatedH2],
            0.13,
        ),
        plan(with(DISTINCT, Protocol::H1), vec![Kind::Distinct], 0.30),
        plan(with(DPOP, Protocol::H1), vec![Kind::Dpop], 0.16),
        plan(with(REFUSED, Protocol::H1), refused, 0.13),
        plan(
            Connector::without_certificate(addr, ca, Protocol::H1),
            vec![Kind::NoCertificate, Kind::DpopNoCertificate],
            0.02,
        ),
        Plan {
            churn: true,
            ..plan(with(CHURN, Protocol::H1), vec![Kind::Churn], 0.08)
        },
    ];
    let idle = [
        (Kind::IdleHeld, Protocol::H1),
        (Kind::IdleHeldH2, Protocol::H2),
        (Kind::IdleLapsing, Protocol::H1),
        (Kind::IdleLapsingH2, Protocol::H2),
    ];
    for i in 0..soak.idle {
        let client = IDLE + i;
        let (kind, protocol) = idle[i % idle.len()];
        let period = idle_period(kind);
        plans.push(Plan {
            connector: with(client, protocol),
            churn: false,
            kinds: vec![kind],
            period,
            delay: period.mul_f64(i as f64 / soak.idle as f64),
            token: Some(fixtures.bound[client].clone()),
        });
    }
    plans
}

fn build(
    protocol: Protocol,
    path: &str,
    headers: Vec<(&'static str, HeaderValue)>,
) -> Request<Empty<Bytes>> {
    let mut request = match protocol {
        Protocol::H1 => Request::get(path).header(header::HOST, "localhost"),
        Protocol::H2 => Request::get(format!("https://localhost{path}")),
    };
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.body(Empty::new()).expect("request")
}

/// Runs one plan until `end`.
async fn run_plan(plan: Plan, fixtures: Arc<Fixtures>, tally: Arc<Tally>, end: Instant) {
    let mut sender: Option<Sender> = None;
    let mut ticks = tokio::time::interval_at((Instant::now() + plan.delay).into(), plan.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut turn = 0usize;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = tokio::time::sleep_until(end.into()) => break,
        }
        if Instant::now() >= end {
            break;
        }
        let kind = plan.kinds[turn % plan.kinds.len()];
        turn += 1;
        // What the server's timeouts (see [`idle_period`]) must have done since the last request.
        if let Some(open) = &sender {
            let lapsing = matches!(kind, Kind::IdleLapsing | Kind::IdleLapsingH2);
            match (lapsing, open.is_closed()) {
                (true, true) => {
                    tally.lapsed.fetch_add(1, Ordering::Relaxed);
                    sender = None;
                }
                (true, false) => {
                    tally.unexpected(kind, "the server kept a connection idle past its timeout");
                }
                (false, true) => {
                    tally.unexpected(kind, "the server closed a connection in use");
                    sender = None;
                }
                (false, false) => {}
            }
        }
        let Some((path, mut headers)) = fixtures.request(kind) else {
            continue;
        };
        if let Some(token) = &plan.token {
            headers.push(("authorization", token.clone()));
        }
        let proof = (kind == Kind::Dpop)
            .then(|| {
                headers
                    .iter()
                    .find(|(n, _)| *n == "dpop")
                    .map(|(_, v)| v.clone())
            })
            .flatten();
        let mut open = match sender.take() {
            Some(open) => open,
            None => match plan.connector.connect().await {
                Ok(open) => open,
                Err(e) => {
                    tally.unexpected(kind, &format!("connect: {e}"));
                    continue;
                }
            },
        };
        let request = build(plan.connector.protocol, path, headers);
        match tokio::time::timeout(REQUEST_TIMEOUT, open.exchange(request)).await {
            Ok(Ok((status, code))) => {
                let (want_status, want_code) = kind.expected();
                if status == want_status && code.as_deref() == want_code {
                    tally.expected(kind);
                    if let Some(proof) = proof {
                        *fixtures
                            .accepted_proof
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(proof);
                    }
                } else {
                    tally.unexpected(
                        kind,
                        &format!(
                            "{} {}",
                            status.as_u16(),
                            code.as_deref().unwrap_or("(no code)")
                        ),
                    );
                }
                if !plan.churn {
                    sender = Some(open);
                }
            }
            Ok(Err(e)) => tally.unexpected(kind, &format!("transport: {e}")),
            Err(_) => tally.unexpected(kind, "no answer within 10 s"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling, report, verdict
// ---------------------------------------------------------------------------------------------

/// One reading of the server process.
#[derive(Clone)]
pub(crate) struct Sample {
    at: Duration,
    rss: u64,
    fds: i64,
    cpu_ns: u64,
    counts: Counts,
}

/// Open file descriptors of `pid`.
pub(crate) fn open_fds(pid: u32) -> i64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(-1, |dir| dir.count() as i64)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Runs the soak; `Ok(true)` when the verdict passes.
pub(crate) fn soak(
    args: &Args,
    soak: &SoakArgs,
    material: Arc<Material>,
    runtime: &tokio::runtime::Runtime,
) -> Result<bool, BoxError> {
    let fixtures = Arc::new(Fixtures::new(material, soak));
    let server = UnderTest::Direct(ServerProcess::spawn(
        ServerKind::Soak,
        args.server_threads,
        &fixtures.material.server,
    )?);
    if args.pin {
        pin(server.memory_pid(), &args.server_cpus())?;
    }
    let pid = server.memory_pid();
    let plans = plans(server.addr(), &fixtures, soak);
    let connections = plans.len() as i64;
    let distinct_rate = soak.rate * 0.30;
    println!(
        "soak: {:.0} minutes, a sample every {:.0} s, warm-up {:.1} minutes; {:.0} requests/s in \
         all over {} client tasks ({} idle connections); distinct tokens live {} s\n\
         validated-token cache at its byte bound (~{CACHE_ENTRIES:.0} entries) after ~{:.0} s of distinct \
         tokens at {distinct_rate:.0}/s; server pid {pid}\n",
        soak.duration.as_secs_f64() / 60.0,
        soak.sample.as_secs_f64(),
        soak.warmup.as_secs_f64() / 60.0,
        soak.rate,
        plans.len(),
        soak.idle,
        soak.token_lifetime,
        CACHE_ENTRIES / distinct_rate,
    );
    let tally = Arc::new(Tally::new());
    let sample = |at: Duration| Sample {
        at,
        rss: status_kb(pid, "VmRSS").unwrap_or(0),
        fds: open_fds(pid),
        cpu_ns: process_cpu_ns(pid),
        counts: tally.snapshot(),
    };
    let mut samples = vec![sample(Duration::ZERO)];
    let fds_before = samples[0].fds;
    print_row_header();
    print_row(&samples[0], None);
    let (samples, fds_after) = runtime.block_on(async {
        let start = Instant::now();
        let end = start + soak.duration + GRACE;
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            tasks.spawn(run_plan(
                plan,
                Arc::clone(&fixtures),
                Arc::clone(&tally),
                end,
            ));
        }
        let mut k = 1u32;
        loop {
            let at = (soak.sample * k).min(soak.duration);
            tokio::time::sleep_until((start + at).into()).await;
            let s = sample(at);
            print_row(&s, samples.last());
            samples.push(s);
            if at >= soak.duration {
                break;
            }
            k += 1;
        }
        while let Some(done) = tasks.join_next().await {
            done?;
        }
        // Every connection closed on the client side: the server's descriptors must come back
        // to their level before the first connection.
        let mut fds_after = open_fds(pid);
        for _ in 0..100 {
            if fds_after <= fds_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            fds_after = open_fds(pid);
        }
        Ok::<_, BoxError>((samples, fds_after))
    })?;
    server.stop()?;
    let last = samples.last().expect("samples").counts.clone();
    println!("\nRequests per kind (whole run):\n");
    println!("| kind | expected answer | as expected | unexpected |");
    println!("|---|---|---|---|");
    for kind in Kind::ALL {
        println!(
            "| {} | {} | {} | {} |",
            kind.name(),
            kind.describe_expected(),
            last.expected[kind.index()],
            last.unexpected[kind.index()],
        );
    }
    println!(
        "\nlapsing idle connections found closed by the server (as they must \
         be): {}",
        tally.lapsed.load(Ordering::Relaxed)
    );
    write_csv(&soak.csv, &samples)?;
    println!("samples written to {}", soak.csv.display());
    let pass = verdict(soak, &samples, connections, fds_after);
    if soak.warmup.as_secs_f64() < CACHE_ENTRIES / distinct_rate {
        println!(
            "  (warm-up shorter than the validated-token cache's fill: its RSS verdict says \
             little; run at least {:.0} minutes of warm-up)",
            (CACHE_ENTRIES / distinct_rate / 60.0).ceil()
        );
    }
    Ok(pass)
}

fn print_row_header() {
    println!("| minute | RSS MiB | open fds | requests | requests/s | unexpected | server CPU % |");
    println!("|---|---|---|---|---|---|---|");
}

fn print_row(s: &Sample, before: Option<&Sample>) {
    let (requests, rate, unexpected, cpu) = match before {
        Some(b) => {
            let secs = (s.at - b.at).as_secs_f64().max(1e-9);
            let requests = s.counts.requests() - b.counts.requests();
            (
                requests.to_string(),
                format!("{:.0}", requests as f64 / secs),
                (s.counts.unexpected_total() - b.counts.unexpected_total()).to_string(),
                format!("{:.1}", (s.cpu_ns - b.cpu_ns) as f64 / 1e7 / secs),
            )
        }
        None => ("–".into(), "–".into(), "–".into(), "–".into()),
    };
    println!(
        "| {:.1} | {:.1} | {} | {requests} | {rate} | {unexpected} | {cpu} |",
        s.at.as_secs_f64() / 60.0,
        mib(s.rss),
        s.fds,
    );
}

fn write_csv(path: &std::path::Path, samples: &[Sample]) -> Result<(), BoxError> {
    let mut out = String::from("seconds,rss_kib,open_fds,server_cpu_ms,requests,unexpected");
    for kind in Kind::ALL {
        write!(out, ",{}", kind.name())?;
    }
    out.push('\n');
    let zero = Counts {
        expected: vec![0; Kind::ALL.len()],
        unexpected: vec![0; Kind::ALL.len()],
    };
    let mut before: Option<&Sample> = None;
    for s in samples {
        let b = before.map_or(&zero, |b| &b.counts);
        let cpu = before.map_or(0, |b| s.cpu_ns - b.cpu_ns);
        write!(
            out,
            "{:.0},{},{},{},{},{}",
            s.at.as_secs_f64(),
            s.rss / 1024,
            s.fds,
            cpu / 1_000_000,
            s.counts.requests() - b.requests(),
            s.counts.unexpected_total() - b.unexpected_total(),
        )?;
        for kind in Kind::ALL {
            write!(out, ",{}", s.counts.of(kind) - b.of(kind))?;
        }
        out.push('\n');
        before = Some(s);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// Prints the verdict; whether it passes.
fn verdict(soak: &SoakArgs, samples: &[Sample], connections: i64, fds_after: i64) -> bool {
    let fds_before = samples[0].fds;
    let fd_bound = fds_before + connections + FD_SLACK;
    let last = samples.last().expect("samples");
    let warm = samples.iter().find(|s| s.at >= soak.warmup).unwrap_or(last);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm.at).collect();
    let growth = mib(last.rss) - mib(warm.rss);
    // Least-squares slope of RSS over the samples after warm-up, in MiB per 10 minutes.
    let n = after.len() as f64;
    let (mx, my) = (
        after.iter().map(|s| s.at.as_secs_f64()).sum::<f64>() / n,
        after.iter().map(|s| mib(s.rss)).sum::<f64>() / n,
    );
    let (sxy, sxx) = after.iter().fold((0.0, 0.0), |(sxy, sxx), s| {
        let dx = s.at.as_secs_f64() - mx;
        (sxy + dx * (mib(s.rss) - my), sxx + dx * dx)
    });
    let slope = if sxx > 0.0 { sxy / sxx * 600.0 } else { 0.0 };
    let (fd_low, fd_high) = after.iter().fold((i64::MAX, i64::MIN), |(lo, hi), s| {
        (lo.min(s.fds), hi.max(s.fds))
    });
    let fd_max = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let unexpected = last.counts.unexpected_total();
    let rss_ok = growth <= soak.max_growth_mib;
    let fds_ok = fd_max <= fd_bound;
    let closed_ok = fds_after <= fds_before;
    let errors_ok = unexpected == 0;
    let mark = |ok: bool| if ok { "ok" } else { "FAILED" };
    println!("\nVerdict:");
    println!(
        "- RSS after warm-up (minute {:.1} → {:.1}): {:.1} → {:.1} MiB, growth {growth:+.1} MiB \
         (at most {:.0}), least-squares slope {slope:+.2} MiB per 10 minutes: {}",
        warm.at.as_secs_f64() / 60.0,
        last.at.as_secs_f64() / 60.0,
        mib(warm.rss),
        mib(last.rss),
        soak.max_growth_mib,
        mark(rss_ok),
    );
    println!(
        "- open fds: at most {fd_max} (bound: {fds_before} before the first connection + \
         {connections} client tasks + {FD_SLACK}); after warm-up {fd_low}..{fd_high}: {}",
        mark(fds_ok),
    );
    println!(
        "- open fds once the clients closed every connection: {fds_after} (before the first: \
         {fds_before}): {}",
        mark(closed_ok),
    );
    println!(
        "- unexpected outcomes: {unexpected} of {} requests: {}",
        last.counts.requests(),
        mark(errors_ok),
    );
    let pass = rss_ok && fds_ok && closed_ok && errors_ok;
    println!("- verdict: {}", if pass { "PASS" } else { "FAIL" });
    pass
}
