//! The command line: options, their parsing and the CPU pinning of the two processes.

use super::*;

pub(crate) const USAGE: &str = "\
cargo run --release --manifest-path loadtest/Cargo.toml -- [options]
  --duration SECS          measured time per run (default 3; --quick 0.5)
  --warmup SECS            warm-up per run, after the connections are up (default 1; --quick 0.2)
  --rounds N               rounds of all variants (default 5; --quick 1)
  --connections LIST       concurrent connections, e.g. 16,64 (default 16,64)
  --protocols LIST         h1,h2 (default both)
  --variants LIST          baseline,repeated,distinct,peer-repeated,peer-distinct,dpop,dpop-redis,
                           huskarl-repeated,huskarl-distinct,huskarl-dpop,issuers1-distinct,
                           issuers1000-repeated,issuers1000-distinct (default all of these);
                           nginx,nginx-authz-repeated,nginx-authz-distinct,nginx-authz-dpop
                           (nginx in front of an upstream, with auth_request to certbound-authz;
                           the workspace's target/release/certbound-authz or LOAD_AUTHZ_BIN);
                           nginx-authz-repeated-no-keepalive (a new connection per check);
                           grpc-check-repeated (ext_authz Check requests to its gRPC listener);
                           issue 26: distinct-rs256,distinct-eddsa,peer-distinct-rs256,
                           peer-distinct-eddsa,huskarl-distinct-rs256,huskarl-distinct-eddsa,
                           raw-verify-es256,raw-verify-rs256,raw-verify-eddsa,dpop-distinct,
                           distinct-nocache (the validated-token cache off),
                           distinct-smallcache (a cache of 1 000 entries, 1 MiB)
  --server-threads N       server runtime workers (default 1)
  --client-threads N       load generator runtime workers (default: cores - server threads, min 1)
  --pool-rate RPS          distinct-token pool sized for this rate per server thread (default 12000)
  --memory                 peak server RSS after --memory-tokens distinct tokens instead
  --memory-tokens N        (default 200000; --quick 20000)
  --memory-connections N   (default 4)
  --replay-max-entries N   bound of the in-memory DPoP replay store (default: none; --memory with
                           the dpop variant: the flood's proofs beyond it are answered 503)
  --soak                   issue 26's soak instead: one server, mixed traffic at a fixed rate for
                           --soak-minutes, the server's RSS and open fds sampled (see soak.rs)
  --soak-minutes N         length of the soak (default 30)
  --sample-seconds SECS    time between two samples (default 60)
  --soak-rate RPS          total request rate of the soak's clients (default 300)
  --soak-warmup-minutes M  samples before this are warm-up (default 15, at most half the run)
  --soak-token-lifetime S  lifetime of the soak's distinct tokens (default 180)
  --soak-idle N            idle connections held for the whole run (default 8; half of them
                           silent for longer than the server's idle timeout, which closes them)
  --soak-max-growth-mib M  verdict: most RSS growth from the end of warm-up to the end (default 8)
  --soak-csv PATH          the samples as CSV (default loadtest/target/soak.csv)
  --no-pin                 do not pin the load generator and the server to separate cores
  --quick                  short smoke run
  --server-only            internal: run one server (the child process)";

#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) rounds: usize,
    pub(crate) connections: Vec<usize>,
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) variants: Vec<Variant>,
    pub(crate) server_threads: usize,
    pub(crate) client_threads: usize,
    pub(crate) pool_rate: u64,
    pub(crate) memory: bool,
    pub(crate) memory_tokens: u64,
    pub(crate) memory_connections: usize,
    /// `max_entries` of the in-memory DPoP replay store.
    pub(crate) replay_max_entries: Option<usize>,
    pub(crate) quick: bool,
    /// Client threads on the first cores, the server child on the others (`taskset`).
    pub(crate) pin: bool,
    /// The machine's cores, counted before pinning (which narrows what the process sees).
    pub(crate) cores: usize,
    /// `Some(kind)`: this process is a server child.
    pub(crate) server_only: Option<ServerKind>,
    /// `--soak`: its settings.
    pub(crate) soak: Option<SoakArgs>,
}

/// The soak's settings (`--soak` and the `--soak-…` options).
#[derive(Debug, Clone)]
pub(crate) struct SoakArgs {
    pub(crate) duration: Duration,
    pub(crate) sample: Duration,
    pub(crate) rate: f64,
    pub(crate) warmup: Duration,
    pub(crate) token_lifetime: u64,
    pub(crate) idle: usize,
    pub(crate) max_growth_mib: f64,
    pub(crate) csv: std::path::PathBuf,
}

pub(crate) fn parse_list<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let items = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() {
        return Err(format!("empty list {s:?}"));
    }
    Ok(items)
}

pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("seconds must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) fn parse_count<T: std::str::FromStr + PartialOrd + From<u8>>(
    s: &str,
) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        _ => Err(format!("not a positive integer: {s:?}")),
    }
}

impl Args {
    pub(crate) fn parse(argv: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut duration = None;
        let mut warmup = None;
        let mut rounds = None;
        let mut connections = vec![16, 64];
        let mut protocols = vec![Protocol::H1, Protocol::H2];
        // The nginx variants (which need nginx and certbound-authz) only when named.
        let mut variants: Vec<Variant> = Variant::ALL
            .into_iter()
            .filter(|v| !v.only_when_named())
            .collect();
        let mut server_threads = 1;
        let mut client_threads = None;
        let mut pool_rate = 12_000;
        let mut memory = false;
        let mut memory_tokens = None;
        let mut memory_connections = 4;
        let mut replay_max_entries = None;
        let mut quick = false;
        let mut pin = true;
        let mut bench_flag = false;
        let mut server_only = None;
        let mut soak = false;
        let mut soak_minutes: u64 = 30;
        let mut sample = Duration::from_secs(60);
        let mut soak_rate: u64 = 300;
        let mut soak_warmup = None;
        let mut token_lifetime: u64 = 180;
        let mut idle: usize = 8;
        let mut max_growth_mib: u64 = 8;
        let mut csv = None;

        let mut argv = argv.into_iter();
        while let Some(arg) = argv.next() {
            let mut value = || argv.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--duration" => duration = Some(parse_secs(&value()?)?),
                "--warmup" => warmup = Some(parse_secs(&value()?)?),
                "--rounds" => rounds = Some(parse_count(&value()?)?),
                "--connections" => connections = parse_list(&value()?, parse_count)?,
                "--protocols" => {
                    protocols = parse_list(&value()?, |s| match s {
                        "h1" | "http1" => Ok(Protocol::H1),
                        "h2" | "http2" => Ok(Protocol::H2),
                        other => Err(format!("unknown protocol {other:?} (h1, h2)")),
                    })?;
                }
                "--variants" => variants = parse_list(&value()?, Variant::parse)?,
                "--server-threads" => server_threads = parse_count(&value()?)?,
                "--client-threads" => client_threads = Some(parse_count(&value()?)?),
                "--pool-rate" => pool_rate = parse_count(&value()?)?,
                "--memory" => memory = true,
                "--memory-tokens" => memory_tokens = Some(parse_count(&value()?)?),
                "--memory-connections" => memory_connections = parse_count(&value()?)?,
                "--replay-max-entries" => replay_max_entries = Some(parse_count(&value()?)?),
                "--soak" => soak = true,
                "--soak-minutes" => soak_minutes = parse_count(&value()?)?,
                "--sample-seconds" => sample = parse_secs(&value()?)?,
                "--soak-rate" => soak_rate = parse_count(&value()?)?,
                "--soak-warmup-minutes" => soak_warmup = Some(parse_secs(&value()?)? * 60),
                "--soak-token-lifetime" => token_lifetime = parse_count(&value()?)?,
                "--soak-idle" => idle = value()?.parse().map_err(|_| "--soak-idle: a count")?,
                "--soak-max-growth-mib" => max_growth_mib = parse_count(&value()?)?,
                "--soak-csv" => csv = Some(std::path::PathBuf::from(value()?)),
                "--quick" => quick = true,
                "--no-pin" => pin = false,
                "--server-only" => server_only = Some(ServerKind::parse(&value()?)?),
                // cargo bench passes `--bench`; without it (cargo test --benches) run quick.
                "--bench" => bench_flag = true,
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let _ = bench_flag;
        protocols.sort();
        protocols.dedup();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Args {
            duration: duration.unwrap_or(if quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(3)
            }),
            warmup: warmup.unwrap_or(if quick {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            }),
            rounds: rounds.unwrap_or(if quick { 1 } else { 5 }),
            connections,
            protocols,
            variants,
            server_threads,
            client_threads: client_threads
                .unwrap_or_else(|| cores.saturating_sub(server_threads).max(1)),
            pool_rate,
            memory,
            memory_tokens: memory_tokens.unwrap_or(if quick { 20_000 } else { 200_000 }),
            memory_connections,
            replay_max_entries,
            quick,
            // Pinning needs a core for each side and `taskset` (util-linux).
            pin: pin && cores >= server_threads + 1,
            cores,
            server_only,
            soak: soak.then(|| {
                let duration = Duration::from_secs(soak_minutes * 60);
                SoakArgs {
                    duration,
                    sample,
                    rate: soak_rate as f64,
                    warmup: soak_warmup
                        .unwrap_or(Duration::from_secs(15 * 60))
                        .min(duration / 2),
                    token_lifetime,
                    idle,
                    max_growth_mib: max_growth_mib as f64,
                    csv: csv.unwrap_or_else(|| {
                        concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak.csv").into()
                    }),
                }
            }),
        })
    }
}

impl Args {
    /// The load generator's cores: the first `client_threads` (always leaving one).
    pub(crate) fn client_cpus(&self) -> String {
        let last = self.client_threads.min(self.cores - 1).max(1) - 1;
        format!("0-{last}")
    }

    /// The server's cores: all the others.
    pub(crate) fn server_cpus(&self) -> String {
        let first = self.client_threads.min(self.cores - 1).max(1);
        format!("{first}-{}", self.cores - 1)
    }
}

/// Pins every thread of process `pid` to `cpus` (a list such as `0-0`), with util-linux's
/// `taskset`. Threads made later inherit it.
pub(crate) fn pin(pid: u32, cpus: &str) -> Result<(), BoxError> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset (pass --no-pin to run without it): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -a -c -p {cpus} {pid} failed").into())
    }
}
