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
#   VARIANTS="nginx nginx-authz-repeated nginx-authz-distinct nginx-authz-dpop" loadtest/instructions.sh
#   KEEP=/tmp/runs loadtest/instructions.sh    # keep the callgrind files (one directory per run)
#   POOL_RATE=3000 VARIANTS="distinct-rs256 raw-verify-rs256" loadtest/instructions.sh
#       # issue 26; POOL_RATE sizes the distinct-token pools (--pool-rate; default 12000/s, far
#       # above what a server under callgrind handles, and RS256 tokens are slow to sign)
#
# DPoP variants: the load client signs each run's proofs before the server starts (see
# BENCHMARKS.md); dpop-redis starts its own redis-server (not under callgrind: the figure is the
# resource server's own instructions, the store's round trip excluded).
#
# nginx variants (issue 25): nginx (one process: `daemon off; master_process off;`), the
# upstream and certbound-authz each run under callgrind, and each one's slope is reported; the
# requests are those the upstream handled. certbound-authz is the workspace's release build
# (built here, unless LOAD_AUTHZ_BIN names another). The ratio column: (nginx + certbound-authz)
# / nginx of the `nginx` variant.
#
# grpc-check-repeated: certbound-authz alone under callgrind, Envoy-shaped ext_authz Check
# requests from the load client; the requests are the checks the client sent.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (Debian: apt-get install valgrind)" >&2; exit 1; }
variants=${VARIANTS:-baseline repeated distinct dpop peer-repeated peer-distinct huskarl-repeated huskarl-distinct huskarl-dpop}
case " $variants " in
  *" nginx-authz-"* | *" grpc-check-"*)
    [ -n "${LOAD_AUTHZ_BIN:-}" ] || cargo build --quiet --release -p certbound-authz ;;
esac
cargo build --quiet --release --manifest-path loadtest/Cargo.toml ${FEATURES:+--features "$FEATURES"}
if [ -n "${KEEP:-}" ]; then
  # The callgrind files of every run are kept there (callgrind_annotate them).
  out=$KEEP
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

# Instructions of one run of one variant and the requests it handled:
# "TOTAL NGINX AUTHZ UPSTREAM N" (the three roles are 0 for a server child of its own).
measure() { # variant duration
  local run="$out/$1-$2"
  mkdir -p "$run"
  LOAD_SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$run/callgrind.%p" \
    ./loadtest/target/release/load --variants "$1" --protocols "${PROTOCOL:-h1}" ${POOL_RATE:+--pool-rate "$POOL_RATE"} \
    --connections "${CONNECTIONS:-16}" --rounds 1 --warmup 0.5 --duration "$2" --no-pin \
    >"$run/stdout" 2>"$run/stderr" || { cat "$run/stdout" "$run/stderr" >&2; exit 1; }
  local n total roles pid role ir
  n=$(sed -n 's/.*handled \([0-9]*\) requests.*/\1/p' "$run/stderr")
  total=$(cat "$run"/callgrind.* | sed -n 's/^summary: //p' | awk '{ s += $1 } END { printf "%.0f\n", s }')
  roles="0 0 0"
  pids=$(sed -n 's/^load: proxied pids: //p' "$run/stderr")
  if [ -n "$pids" ]; then
    roles=""
    for role in nginx authz upstream; do
      pid=$(echo "$pids" | tr ' ' '\n' | sed -n "s/^$role=//p")
      ir=0
      [ -f "$run/callgrind.$pid" ] && ir=$(sed -n 's/^summary: //p' "$run/callgrind.$pid")
      roles="$roles $ir"
    done
  fi
  echo "$total $roles $n"
}

direct=() proxied=() grpc=()
for variant in $variants; do
  case $variant in
    nginx*) proxied+=("$variant") ;;
    grpc-check-*) grpc+=("$variant") ;;
    *) direct+=("$variant") ;;
  esac
done
if [ ${#direct[@]} -gt 0 ]; then
  printf '| variant | instructions per request | requests counted |\n|---|---|---|\n'
  for variant in "${direct[@]}"; do
    read -r ir1 _ _ _ n1 < <(measure "$variant" "${SHORT:-2}")
    read -r ir2 _ _ _ n2 < <(measure "$variant" "${LONG:-6}")
    if [ "$n2" -le "$n1" ]; then
      echo "$variant: the long run handled no more requests than the short one" >&2
      exit 1
    fi
    printf '| %s | %d | %d |\n' "$variant" $(((ir2 - ir1) / (n2 - n1))) $((n2 - n1))
  done
fi
if [ ${#proxied[@]} -gt 0 ]; then
  [ ${#direct[@]} -gt 0 ] && echo
  printf '| variant | nginx | certbound-authz | upstream | nginx + certbound-authz | (nginx + certbound-authz) / nginx alone | requests counted |\n'
  printf '|---|---|---|---|---|---|---|\n'
  alone=""
  for variant in "${proxied[@]}"; do
    read -r _ ng1 az1 up1 n1 < <(measure "$variant" "${SHORT:-2}")
    read -r _ ng2 az2 up2 n2 < <(measure "$variant" "${LONG:-6}")
    if [ "$n2" -le "$n1" ]; then
      echo "$variant: the long run handled no more requests than the short one" >&2
      exit 1
    fi
    dn=$((n2 - n1))
    ng=$(((ng2 - ng1) / dn)) az=$(((az2 - az1) / dn)) up=$(((up2 - up1) / dn))
    [ "$variant" = nginx ] && alone=$ng
    ratio="–"
    [ -n "$alone" ] && ratio=$(awk -v a="$((ng + az))" -v b="$alone" 'BEGIN { printf "%.2f", a / b }')
    printf '| %s | %d | %d | %d | %d | %s | %d |\n' "$variant" "$ng" "$az" "$up" $((ng + az)) "$ratio" "$dn"
  done
fi
if [ ${#grpc[@]} -gt 0 ]; then
  { [ ${#direct[@]} -gt 0 ] || [ ${#proxied[@]} -gt 0 ]; } && echo
  printf '| variant | certbound-authz instructions per check | checks counted |\n|---|---|---|\n'
  for variant in "${grpc[@]}"; do
    read -r _ _ az1 _ n1 < <(measure "$variant" "${SHORT:-2}")
    read -r _ _ az2 _ n2 < <(measure "$variant" "${LONG:-6}")
    if [ "$n2" -le "$n1" ]; then
      echo "$variant: the long run handled no more checks than the short one" >&2
      exit 1
    fi
    printf '| %s | %d | %d |\n' "$variant" $(((az2 - az1) / (n2 - n1))) $((n2 - n1))
  done
fi
