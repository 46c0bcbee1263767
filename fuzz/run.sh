#!/usr/bin/env bash
# Fuzzes every target of fuzz/ for SECONDS each (default 25), one after the other, each on a
# temporary copy of its committed corpus (fuzz/corpus/<target>) plus its regression inputs
# (fuzz/regressions/<target>), so that runs never grow the committed corpus.
#
#   fuzz/run.sh [SECONDS]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Runs every
# target, then exits non-zero if any crashed, leaked or timed out (inputs under fuzz/artifacts/).
# Prints one line per target: executions, coverage (cov, ft) and corpus size, from
# libFuzzer's final `#N DONE cov: X ft: Y corp: Z/...` line.
#
# Environment: FUZZ_SANITIZER (default address; `none` builds faster and runs ~2x more
# executions, but finds memory errors only as panics), FUZZ_TOOLCHAIN (default nightly),
# FUZZ_TARGETS (a space-separated subset), FUZZ_JOBS (cargo build jobs, default 2).
set -euo pipefail

seconds=${1:-25}
sanitizer=${FUZZ_SANITIZER:-address}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$fuzz_dir/.."

cargo_fuzz=(cargo "+$toolchain" fuzz)
export CARGO_BUILD_JOBS=${FUZZ_JOBS:-2}
"${cargo_fuzz[@]}" build --sanitizer "$sanitizer"

targets=${FUZZ_TARGETS:-$("${cargo_fuzz[@]}" list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$fuzz_dir/artifacts"

printf '%-22s %12s %7s %7s %7s %5s\n' target executions cov ft corpus secs
failed=0
for target in $targets; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    cp -r "$fuzz_dir/corpus/$target/." "$corpus/" 2>/dev/null || true
    cp -r "$fuzz_dir/regressions/$target/." "$corpus/" 2>/dev/null || true
    log="$work/$target.log"
    start=$SECONDS
    case $target in
        jwt_claims | jwt_fields | introspection_answer | jwks | client_registration) dict=json ;;
        forwarded_xfcc | forwarded_nginx) dict=forwarded_pem ;;
        *) dict=$target ;;
    esac
    dict_flag=()
    [[ -f "$fuzz_dir/dict/$dict.dict" ]] && dict_flag=("-dict=$fuzz_dir/dict/$dict.dict")
    if ! "${cargo_fuzz[@]}" run --sanitizer "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$fuzz_dir/artifacts/$target-" \
        "${dict_flag[@]}" >"$log" 2>&1; then
        echo "FAILED: $target (input under fuzz/artifacts/$target-*):"
        grep -E -A4 'panicked at|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY' "$log" | head -n 20
        failed=1
        continue
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$done_line")
    cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$done_line")
    ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<<"$done_line")
    corp=$(sed -E 's/.* corp: ([0-9]+).*/\1/' <<<"$done_line")
    printf '%-22s %12s %7s %7s %7s %5s\n' "$target" "$execs" "$cov" "$ft" "$corp" \
        "$((SECONDS - start))"
done
exit "$failed"
