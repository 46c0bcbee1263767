#!/usr/bin/env bash
# Server-side instructions per request, counted by callgrind: a figure that does not move with
# the machine's neighbours, unlike requests/s on a shared virtual machine.
#
# Each variant's server runs twice under callgrind (short and long run) and the figure is the
# slope: (instructions of the long run - of the short run) / (requests of the long run - of the
# short run), so start-up and TLS handshakes cancel out.
#
#   loadtest/instructions.sh                   # HTTP/1.1, 16 connections
#   PROTOCOL=h2 loadtest/instructions.sh       # HTTP/2
#   VARIANTS="baseline repeated" loadtest/instructions.sh
#   VARIANTS="dpop dpop-redis huskarl-dpop" loadtest/instructions.sh   # DPoP (issue 13)
#   FEATURES=metrics loadtest/instructions.sh                          # certbound's metrics feature,
#   FEATURES=metrics LOAD_METRICS_RECORDER=1 loadtest/instructions.sh  # with a Prometheus recorder
#
# DPoP variants: the load client signs each run's proofs before the server starts (see
# BENCHMARKS.md); dpop-redis starts its own redis-server (not under callgrind: the figure is the
# resource server's own instructions, the store's round trip excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (Debian: apt-get install valgrind)" >&2; exit 1; }
cargo build --quiet --release --manifest-path loadtest/Cargo.toml ${FEATURES:+--features "$FEATURES"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Instructions and requests of one run of one variant: "IR N".
measure() { # variant duration
  local run="$out/$1-$2"
  mkdir -p "$run"
  LOAD_SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$run/callgrind.%p" \
    ./loadtest/target/release/load --variants "$1" --protocols "${PROTOCOL:-h1}" \
    --connections "${CONNECTIONS:-16}" --rounds 1 --warmup 0.5 --duration "$2" --no-pin \
    >"$run/stdout" 2>"$run/stderr" || { cat "$run/stdout" "$run/stderr" >&2; exit 1; }
  local ir n
  ir=$(sed -n 's/^summary: //p' "$run"/callgrind.*)
  n=$(sed -n 's/.*handled \([0-9]*\) requests.*/\1/p' "$run/stderr")
  echo "$ir $n"
}

printf '| variant | instructions per request | requests counted |\n|---|---|---|\n'
for variant in ${VARIANTS:-baseline repeated distinct dpop peer-repeated peer-distinct huskarl-repeated huskarl-distinct huskarl-dpop}; do
  read -r ir1 n1 < <(measure "$variant" "${SHORT:-2}")
  read -r ir2 n2 < <(measure "$variant" "${LONG:-6}")
  if [ "$n2" -le "$n1" ]; then
    echo "$variant: the long run handled no more requests than the short one" >&2
    exit 1
  fi
  printf '| %s | %d | %d |\n' "$variant" $(((ir2 - ir1) / (n2 - n1))) $((n2 - n1))
done
