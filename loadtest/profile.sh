#!/usr/bin/env bash
# Where the server's CPU goes, natively: each run's server child under `perf record` (the
# software clock, `cpu-clock`, which a virtual machine without hardware counters still has),
# the variants interleaved in each round, and per server the CPU per request by category:
# the P-256 verification (aws-lc-rs), the kernel, malloc/free, the validated-token cache, its
# key (BLAKE3), the rest.
#
# On a shared machine the CPU a request costs moves with the neighbours (their cache
# pollution, the host's clock), by a few per cent from one run to the next, as much as the
# differences between the variants. The verification is the same code in every `distinct`
# variant, so its time per request measures the machine at the time of the run: the last
# column, the server's CPU per request over the verification's, is the comparable figure
# (issue 26, third round; BENCHMARKS.md, "The throughput witness and the cache").
#
#   loadtest/profile.sh
#   VARIANTS="distinct distinct-nocache" ROUNDS=5 loadtest/profile.sh
#   KEEP=/tmp/profiles loadtest/profile.sh   # keep the perf files (perf report -i FILE)
#
# The profile covers the whole run, warm-up included (WARMUP, default 10 s: long enough at
# ~10 000 requests/s for `distinct`'s cache to reach its 64 MiB bound, ~50 000 of the load
# test's tokens, and evict for most of the run), and the server's exit (dropping a full cache:
# `drop_in_place<…ResultCache…>`, counted in the cache's category, ~0.2 µs a request).
# Needs perf (Debian: linux-perf) with perf_event_paranoid ≤ 2, and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "needs perf (Debian: apt-get install linux-perf)" >&2; exit 1; }
variants=${VARIANTS:-distinct distinct-nocache distinct-smallcache huskarl-distinct}
cargo build --quiet --release --manifest-path loadtest/Cargo.toml
if [ -n "${KEEP:-}" ]; then
  out=$KEEP
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
hz=${HZ:-1999}
cat >"$out/wrap.sh" <<EOF
#!/bin/sh
kind=\$(echo "\$@" | sed -n 's/.*--server-only \([^ ]*\).*/\1/p')
exec perf record -q -e cpu-clock -F $hz -o "$out/\$(date +%s%N)-\$kind.data" -- "\$@"
EOF
chmod +x "$out/wrap.sh"
LOAD_SERVER_WRAPPER="$out/wrap.sh" ./loadtest/target/release/load --variants "$(echo $variants | tr ' ' ,)" \
  --protocols "${PROTOCOL:-h1}" --connections "${CONNECTIONS:-16}" --rounds "${ROUNDS:-3}" \
  --warmup "${WARMUP:-10}" --duration "${DURATION:-3}" --pool-rate "${POOL_RATE:-16000}" \
  >"$out/stdout" 2>"$out/stderr" || { cat "$out/stdout" "$out/stderr" >&2; exit 1; }
python3 - "$out" "$hz" <<'EOF'
import collections, glob, os, re, statistics, subprocess, sys
out, hz = sys.argv[1], int(sys.argv[2])
# The server children print, in run order, how many requests each handled.
handled = [int(n) for n in re.findall(r"handled (\d+) requests", open(f"{out}/stderr").read())]
files = sorted(glob.glob(f"{out}/*.data"))
groups = [("verify (aws-lc P-256)", r"ecp_nistz256|beeu_mod_inverse|bn_mul_mont|aws_lc_\w*_ec|p256"),
          ("kernel", r"\[k\]"),
          ("malloc/free", r"malloc|free|realloc|_int_|tcache"),
          ("cache", r"quick_cache|support::cache|single_flight|SingleFlight"),
          ("cache key (BLAKE3)", r"blake3")]
names = [g for g, _ in groups] + ["other", "total"]
rows = collections.defaultdict(list)
for f, n in zip(files, handled):
    kind = os.path.basename(f).split("-", 1)[1][:-len(".data")]
    report = subprocess.run(["perf", "report", "-i", f, "--stdio", "--sort", "dso,symbol", "-n"],
                            capture_output=True, text=True).stdout
    by = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(.*)", line)
        if m:
            by[next((g for g, r in groups if re.search(r, m.group(2))), "other")] += int(m.group(1))
    by["total"] = sum(by.values())
    rows[kind].append({g: by[g] / hz / n * 1e6 for g in names})
print("Server CPU per request (µs; median of the runs), whole run, by category:\n")
print("| server | runs | " + " | ".join(names) + " | total / verify, median [min–max] |")
print("|---|---|" + "---|" * (len(names) + 1))
for kind, runs in rows.items():
    ratio = sorted(r["total"] / r[groups[0][0]] for r in runs)
    print(f"| {kind} | {len(runs)} | "
          + " | ".join(f"{statistics.median(r[g] for r in runs):.2f}" for g in names)
          + f" | {statistics.median(ratio):.3f} [{ratio[0]:.3f}–{ratio[-1]:.3f}] |")
EOF
