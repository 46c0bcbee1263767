//! Memory mode: the server's peak RSS after a flood of distinct tokens or proofs.

use super::*;

pub(crate) fn memory(
    args: &Args,
    material: &Arc<Material>,
    runtime: &tokio::runtime::Runtime,
) -> Result<u64, BoxError> {
    // Workloads whose every request brings the server something new to keep (a token, a proof).
    let variants: Vec<Variant> = args
        .variants
        .iter()
        .copied()
        .filter(|v| v.workload() != Workload::Repeated || *v == Variant::Baseline)
        .filter(|v| *v != Variant::DpopRedis)
        // Issue 26's variants (other algorithms, pairs of token and proof) are throughput only.
        .filter(|v| v.alg() == Alg::Es256 && v.workload() != Workload::DpopDistinct)
        .collect();
    let conns = args.memory_connections;
    let per_conn = args.memory_tokens.div_ceil(conns as u64);
    println!(
        "Peak RSS of the server process after {} requests over {conns} connections (HTTP/1.1), \
         each with a distinct token, or the same DPoP token with a distinct proof, signed on the fly \
         (none for the baseline); in-memory replay store bound: {}:\n",
        per_conn * conns as u64,
        args.replay_max_entries
            .map_or("none".to_owned(), |n| format!("{n} entries")),
    );
    println!(
        "| server | RSS at start | peak RSS (VmHWM) | RSS at end | peak − start | req/s | 200 | 503 (store full) | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut errors = 0;
    let mib = |b: Option<u64>| {
        b.map_or("?".to_owned(), |b| {
            format!("{:.1} MiB", b as f64 / 1048576.0)
        })
    };
    for variant in variants {
        let server = UnderTest::spawn(variant, args, &material.server)?;
        let start_rss = status_kb(server.memory_pid(), "VmRSS");
        let tokens = (0..conns)
            .map(|i| match variant.workload() {
                _ if variant == Variant::Baseline => Tokens::None,
                Workload::Dpop => Tokens::DpopMint(
                    material.signer.mint_dpop(&material.clients[i].dpop.jkt),
                    Arc::clone(material),
                    i,
                ),
                _ => Tokens::Mint(Arc::clone(material), i),
            })
            .collect();
        let result = runtime.block_on(run_load(
            &server,
            material,
            variant,
            Protocol::H1,
            tokens,
            Duration::ZERO,
            StopSpec::Requests(per_conn),
        ));
        let (hwm, end_rss) = (
            status_kb(server.memory_pid(), "VmHWM"),
            status_kb(server.memory_pid(), "VmRSS"),
        );
        server.stop()?;
        let mut result = result?;
        // A bounded replay store that is full refuses with 503 (fail closed): expected here.
        let full = if variant == Variant::Dpop && args.replay_max_entries.is_some() {
            result.stats.bad_status.remove(&503).unwrap_or(0)
        } else {
            0
        };
        errors += result.stats.errors();
        let name = match variant {
            Variant::Baseline => "baseline (no auth)",
            Variant::Distinct => "certbound (distinct tokens)",
            Variant::PeerDistinct => "peer (distinct tokens)",
            Variant::HuskarlDistinct => "huskarl (distinct tokens)",
            Variant::Dpop => "certbound, DPoP (distinct proofs, in-memory replay store)",
            Variant::HuskarlDpop => "huskarl, DPoP (distinct proofs, the glue's jti set)",
            Variant::NginxAuthzDistinct => "certbound-authz behind nginx (distinct tokens)",
            Variant::NginxAuthzDpop => "certbound-authz behind nginx, DPoP (distinct proofs)",
            _ => variant.name(),
        };
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} | {} | {full} | {} |",
            mib(start_rss),
            mib(hwm),
            mib(end_rss),
            mib(hwm.zip(start_rss).map(|(h, s)| h.saturating_sub(s))),
            result.rps(),
            result.stats.ok_total,
            describe_errors(&result.stats),
        );
    }
    Ok(errors)
}
