//! Throughput mode: every variant interleaved in each round, and the report.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) protocol: Protocol,
    pub(crate) connections: usize,
    pub(crate) variant: Variant,
}

pub(crate) struct Measured {
    pub(crate) round: usize,
    pub(crate) key: Key,
    pub(crate) result: RunResult,
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Distinct-token pools, one per client identity, sized so that no connection runs out at
/// `rate` requests/s over warm-up plus duration.
pub(crate) fn token_pools(
    args: &Args,
    material: &Material,
    alg: Alg,
) -> Vec<Arc<Vec<HeaderValue>>> {
    if !args
        .variants
        .iter()
        .any(|v| v.workload() == Workload::Distinct && v.alg() == alg)
    {
        return Vec::new();
    }
    let window = (args.warmup + args.duration).as_secs_f64();
    let rate = (args.pool_rate * args.server_threads as u64) as f64;
    let max_conns = args.connections.iter().copied().max().unwrap_or(1);
    let started = Instant::now();
    let pools: Vec<_> = (0..max_conns)
        .map(|i| {
            // The largest share identity `i` gets among the connection counts it takes part in.
            let need = args
                .connections
                .iter()
                .filter(|&&c| i < c)
                .map(|&c| (rate * window / c as f64 * 1.1).ceil() as usize + 16)
                .max()
                .unwrap_or(0);
            Arc::new(
                material
                    .signer_for(alg)
                    .mint_many(&material.clients[i].x5t_s256, need),
            )
        })
        .collect();
    let total: usize = pools.iter().map(|p| p.len()).sum();
    eprintln!(
        "load: minted {total} distinct {} tokens in {:.1} s",
        alg.name(),
        started.elapsed().as_secs_f64()
    );
    pools
}

/// Per connection, its DPoP token and fresh proofs for one run: enough that no connection runs
/// out at `--pool-rate` requests/s over warm-up plus duration. Signed just before each run,
/// because a proof is accepted for about a minute after its `iat`.
pub(crate) fn proof_pools(
    args: &Args,
    material: &Material,
    tokens: &[DpopToken],
    connections: usize,
) -> Vec<Tokens> {
    let window = (args.warmup + args.duration).as_secs_f64();
    let rate = (args.pool_rate * args.server_threads as u64) as f64;
    let need = (rate * window / connections as f64 * 1.1).ceil() as usize + 16;
    let started = Instant::now();
    let pools: Vec<Tokens> = (0..connections)
        .map(|i| {
            let proofs = material.clients[i].dpop.proofs(&tokens[i].ath, need);
            Tokens::Dpop(tokens[i].clone(), Arc::new(proofs))
        })
        .collect();
    eprintln!(
        "load: signed {} DPoP proofs in {:.1} s",
        need * connections,
        started.elapsed().as_secs_f64()
    );
    pools
}

pub(crate) fn throughput(
    args: &Args,
    material: &Arc<Material>,
    runtime: &tokio::runtime::Runtime,
    redis: Option<&RedisServer>,
) -> Result<Vec<Measured>, BoxError> {
    let pools = Alg::ALL.map(|alg| token_pools(args, material, alg));
    let mut repeated: Vec<HeaderValue> = Vec::new();
    let max_conns = args.connections.iter().copied().max().unwrap_or(1);
    if args
        .variants
        .iter()
        .any(|v| v.workload() == Workload::Repeated)
    {
        repeated = (0..max_conns)
            .map(|i| material.signer.mint(&material.clients[i].x5t_s256))
            .collect();
    }
    let dpop_tokens: Vec<DpopToken> =
        if args.variants.iter().any(|v| v.workload() == Workload::Dpop) {
            (0..max_conns)
                .map(|i| material.signer.mint_dpop(&material.clients[i].dpop.jkt))
                .collect()
        } else {
            Vec::new()
        };
    let mut measured = Vec::new();
    println!(
        "| round | protocol | conns | variant | req/s | p50 µs | p99 µs | errors | server CPU µs/req | server CPU % | client CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=args.rounds {
        for &protocol in &args.protocols {
            for &connections in &args.connections {
                for &variant in &args.variants {
                    let tokens = match variant.workload() {
                        Workload::Repeated => (0..connections)
                            .map(|i| Tokens::Same(repeated[i].clone()))
                            .collect(),
                        Workload::Distinct => (0..connections)
                            .map(|i| Tokens::Pool(Arc::clone(&pools[variant.alg().index()][i])))
                            .collect(),
                        Workload::Dpop => proof_pools(args, material, &dpop_tokens, connections),
                        Workload::DpopDistinct => dpop_pair_pools(args, material, connections),
                    };
                    let server = UnderTest::spawn(variant, args, &material.server)?;
                    if variant == Variant::DpopRedis {
                        redis.as_ref().ok_or("no redis-server")?.reset_stats()?;
                    }
                    let result = if variant.proxy() == Some(Proxy::AuthzGrpc) {
                        runtime.block_on(grpc_check::run_checks(
                            &server,
                            material,
                            tokens,
                            args.warmup,
                            StopSpec::Duration(args.duration),
                        ))
                    } else {
                        runtime.block_on(run_load(
                            &server,
                            material,
                            variant,
                            protocol,
                            tokens,
                            args.warmup,
                            StopSpec::Duration(args.duration),
                        ))
                    };
                    server.stop()?;
                    let mut result = result?;
                    if variant == Variant::DpopRedis {
                        let stats = redis.as_ref().ok_or("no redis-server")?.commandstats()?;
                        eprintln!(
                            "load: redis-server: {} for {} requests with a proof",
                            stats
                                .iter()
                                .map(|(command, calls)| format!("{calls} {command}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            result.stats.proofs_sent
                        );
                        result.store_commands = Some(stats);
                    }
                    let secs = result.elapsed.as_secs_f64();
                    println!(
                        "| {round} | {} | {connections} | {} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.0} | {:.0} |",
                        protocol.name(),
                        variant.name(),
                        result.rps(),
                        micros(result.stats.histogram.quantile(0.50)),
                        micros(result.stats.histogram.quantile(0.99)),
                        describe_errors(&result.stats),
                        result.server_cpu_us_per_request(),
                        result.server_cpu_ns as f64 / 1e7 / secs,
                        result.client_cpu_ns as f64 / 1e7 / secs,
                    );
                    if variant.workload() == Workload::Distinct {
                        // What the server's memory did (issue 26, third round): how many new
                        // tokens it had taken in all (the cache's entries, up to its bound), its
                        // RSS, and the fresh pages it touched while measured.
                        eprintln!(
                            "load: {round} {} {}: {} tokens in all (warm-up included), server RSS at the end {:.1} MiB, {:.3} minor page faults per measured request",
                            protocol.name(),
                            variant.name(),
                            result.stats.ok_total,
                            result.server_rss_end as f64 / (1 << 20) as f64,
                            result.server_minor_faults as f64 / result.stats.measured.max(1) as f64,
                        );
                    }
                    if result.stats.reused_tokens > 0 {
                        eprintln!(
                            "load: WARNING {} requests reused a token (pool too small: raise --pool-rate); \
                             this distinct run is not all cache misses",
                            result.stats.reused_tokens
                        );
                    }
                    measured.push(Measured {
                        round,
                        key: Key {
                            protocol,
                            connections,
                            variant,
                        },
                        result,
                    });
                }
            }
        }
    }
    Ok(measured)
}

pub(crate) fn describe_errors(stats: &ConnStats) -> String {
    if stats.errors() == 0 {
        return "0".to_owned();
    }
    let mut s = stats.errors().to_string();
    s.push_str(" (");
    let mut parts = Vec::new();
    for (status, n) in &stats.bad_status {
        parts.push(format!("{n}×{status}"));
    }
    if stats.transport_errors > 0 {
        parts.push(format!("{} transport", stats.transport_errors));
    }
    if stats.lost > 0 {
        parts.push(format!("{} lost connections", stats.lost));
    }
    s.push_str(&parts.join(", "));
    s.push(')');
    s
}

/// "median [min–max]" of per-round ratios: the median, because a round disturbed by the
/// machine (a virtual machine's neighbours) should not move the figure.
pub(crate) fn ratio_summary(ratios: &[f64]) -> String {
    let mut sorted: Vec<f64> = ratios.iter().copied().filter(|r| r.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => "–".to_owned(),
        1 => format!("{:.3}", sorted[0]),
        _ => {
            let median = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            format!("{median:.3} [{:.3}–{:.3}]", sorted[0], sorted[n - 1])
        }
    }
}

/// Per round, `numerator`'s rate divided by `denominator`'s, for one protocol and connection
/// count.
pub(crate) fn paired_ratios(
    measured: &[Measured],
    protocol: Protocol,
    connections: usize,
    numerator: Variant,
    denominator: Variant,
) -> Vec<f64> {
    paired_by(
        measured,
        protocol,
        connections,
        numerator,
        denominator,
        |r| r.rps(),
    )
}

/// Per round, the rate each of the two servers would reach on a core of its own: the
/// denominator's server CPU per request over the numerator's. On a shared machine it moves far
/// less than the requests per second (a neighbour that takes the server's core lowers the rate,
/// not the CPU a request costs; issue 26, third round).
pub(crate) fn paired_cpu_ratios(
    measured: &[Measured],
    protocol: Protocol,
    connections: usize,
    numerator: Variant,
    denominator: Variant,
) -> Vec<f64> {
    paired_by(
        measured,
        protocol,
        connections,
        numerator,
        denominator,
        |r| 1.0 / r.server_cpu_us_per_request(),
    )
}

fn paired_by(
    measured: &[Measured],
    protocol: Protocol,
    connections: usize,
    numerator: Variant,
    denominator: Variant,
    metric: impl Fn(&RunResult) -> f64,
) -> Vec<f64> {
    let rate = |round: usize, variant: Variant| {
        measured
            .iter()
            .find(|m| {
                m.round == round
                    && m.key
                        == Key {
                            protocol,
                            connections,
                            variant,
                        }
            })
            .map(|m| metric(&m.result))
    };
    let rounds = measured.iter().map(|m| m.round).max().unwrap_or(0);
    (1..=rounds)
        .filter_map(|round| Some(rate(round, numerator)? / rate(round, denominator)?))
        .collect()
}

pub(crate) fn summary(measured: &[Measured]) -> String {
    let mut keys: Vec<Key> = measured.iter().map(|m| m.key).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| protocol | conns | variant | req/s (mean) | median ratio to baseline, pair by pair [min–max] | p50 µs | p99 µs | server CPU µs/req | errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for key in &keys {
        let runs: Vec<&Measured> = measured.iter().filter(|m| m.key == *key).collect();
        let mut stats = ConnStats::new();
        let mut cpu = 0u64;
        for m in &runs {
            stats.merge(&m.result.stats);
            cpu += m.result.server_cpu_ns;
        }
        let mean_rps = runs.iter().map(|m| m.result.rps()).sum::<f64>() / runs.len() as f64;
        let ratio = if key.variant == key.variant.reference() {
            "1".to_owned()
        } else {
            ratio_summary(&paired_ratios(
                measured,
                key.protocol,
                key.connections,
                key.variant,
                key.variant.reference(),
            ))
        };
        let cpu_per_request = if stats.measured == 0 {
            f64::NAN
        } else {
            cpu as f64 / 1000.0 / stats.measured as f64
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.1} | {} |",
            key.protocol.name(),
            key.connections,
            key.variant.name(),
            mean_rps,
            ratio,
            micros(stats.histogram.quantile(0.50)),
            micros(stats.histogram.quantile(0.99)),
            cpu_per_request,
            describe_errors(&stats),
        );
    }

    let mut pairs: Vec<(Protocol, usize)> =
        keys.iter().map(|k| (k.protocol, k.connections)).collect();
    pairs.dedup();
    let present = |v: Variant| keys.iter().any(|k| k.variant == v);
    // certbound over each peer on the workloads they share.
    let comparisons: Vec<(&str, Variant, Variant)> = [
        (
            "repeated / peer-repeated",
            Variant::Repeated,
            Variant::PeerRepeated,
        ),
        (
            "distinct / peer-distinct",
            Variant::Distinct,
            Variant::PeerDistinct,
        ),
        (
            "repeated / huskarl-repeated",
            Variant::Repeated,
            Variant::HuskarlRepeated,
        ),
        (
            "distinct / huskarl-distinct",
            Variant::Distinct,
            Variant::HuskarlDistinct,
        ),
        (
            "distinct-nocache / huskarl-distinct",
            Variant::DistinctNoCache,
            Variant::HuskarlDistinct,
        ),
        (
            "distinct-smallcache / huskarl-distinct",
            Variant::DistinctSmallCache,
            Variant::HuskarlDistinct,
        ),
        (
            "distinct / distinct-nocache",
            Variant::Distinct,
            Variant::DistinctNoCache,
        ),
        (
            "distinct / raw-verify-es256",
            Variant::Distinct,
            Variant::RawVerifyEs256,
        ),
        (
            "distinct-nocache / raw-verify-es256",
            Variant::DistinctNoCache,
            Variant::RawVerifyEs256,
        ),
        (
            "distinct-smallcache / raw-verify-es256",
            Variant::DistinctSmallCache,
            Variant::RawVerifyEs256,
        ),
        ("dpop / huskarl-dpop", Variant::Dpop, Variant::HuskarlDpop),
        (
            "dpop-redis / huskarl-dpop",
            Variant::DpopRedis,
            Variant::HuskarlDpop,
        ),
        ("dpop-redis / dpop", Variant::DpopRedis, Variant::Dpop),
    ]
    .into_iter()
    .filter(|(_, a, b)| present(*a) && present(*b))
    .collect();
    // By requests per second, then by server CPU per request (inverted, so that both read
    // "higher is faster").
    type Pairing = fn(&[Measured], Protocol, usize, Variant, Variant) -> Vec<f64>;
    let tables: [(&str, Pairing); 2] = [
        ("req/s", paired_ratios),
        ("server CPU per request, inverted", paired_cpu_ratios),
    ];
    for (what, pairing) in tables {
        if comparisons.is_empty() {
            break;
        }
        let _ = writeln!(out);
        let _ = write!(out, "| protocol | conns | by |");
        for (name, _, _) in &comparisons {
            let _ = write!(out, " {name} |");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|---|---|---|{}", "---|".repeat(comparisons.len()));
        for &(protocol, connections) in &pairs {
            let _ = write!(out, "| {} | {} | {what} |", protocol.name(), connections);
            for (_, numerator, denominator) in &comparisons {
                let _ = write!(
                    out,
                    " {} |",
                    ratio_summary(&pairing(
                        measured,
                        protocol,
                        connections,
                        *numerator,
                        *denominator
                    ))
                );
            }
            let _ = writeln!(out);
        }
    }
    // What Redis adds: its commands per proof, and the latency difference to the in-memory store.
    if present(Variant::DpopRedis) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| protocol | conns | redis commands (all runs) | requests with a proof | commands per proof | p50 dpop-redis − dpop µs | p99 dpop-redis − dpop µs |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for &(protocol, connections) in &pairs {
            let runs = |variant: Variant| {
                measured.iter().filter(move |m| {
                    m.key
                        == Key {
                            protocol,
                            connections,
                            variant,
                        }
                })
            };
            let mut commands: BTreeMap<String, u64> = BTreeMap::new();
            let mut proofs = 0;
            let mut redis_histogram = Histogram::new();
            for m in runs(Variant::DpopRedis) {
                for (command, calls) in m.result.store_commands.iter().flatten() {
                    *commands.entry(command.clone()).or_default() += calls;
                }
                proofs += m.result.stats.proofs_sent;
                redis_histogram.merge(&m.result.stats.histogram);
            }
            let mut memory_histogram = Histogram::new();
            for m in runs(Variant::Dpop) {
                memory_histogram.merge(&m.result.stats.histogram);
            }
            let total: u64 = commands.values().sum();
            let difference = |q: f64| {
                if memory_histogram.total == 0 {
                    return "–".to_owned();
                }
                format!(
                    "{:+.0}",
                    micros(redis_histogram.quantile(q)) - micros(memory_histogram.quantile(q))
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {proofs} | {:.4} | {} | {} |",
                protocol.name(),
                connections,
                commands
                    .iter()
                    .map(|(command, calls)| format!("{calls} {command}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                total as f64 / proofs.max(1) as f64,
                difference(0.50),
                difference(0.99),
            );
        }
    }
    out
}
