#!/usr/bin/env bash
# Load comparison on loopback: the same wrk load (64 keep-alive connections)
# against a bare httputil.ReverseProxy and against Gatehouse (TLS off, a
# signed-in session cookie), both in front of the same small upstream.
# Prints requests/s, p50/p99 latency and CPU time per request of each
# process, and Gatehouse's throughput as a share of the bare proxy's.
#
# A shared machine's speed drifts by tens of percent within minutes, so one
# pair of runs proves little, and running the bare proxy always first would
# hand it the faster minutes. The two therefore alternate in ABBA order
# (bare, gatehouse, gatehouse, bare, ...) for BENCH_ROUNDS rounds (default
# 8, kept even), which cancels a steady drift, and the figure is the pooled
# share: all of Gatehouse's requests over all of the bare proxy's.
#
#   bash scripts/bench.sh [DURATION per run, default 5s] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
duration=${1:-5s}
conns=${2:-64}

if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/gatehouse" ./cmd/gatehouse
go build -o "$work/upstream" ./scripts/bench/upstream
go build -o "$work/bareproxy" ./scripts/bench/bareproxy

cat > "$work/config.yaml" <<YAML
listen: { http: "127.0.0.1:19003", https: "127.0.0.1:19004" }
tls: { mode: "off" }
data_dir: $work/data
log: { level: ${BENCH_LOG_LEVEL:-info}, access: ${BENCH_ACCESS_LOG:-true} }
apps:
  - host: 127.0.0.1
    upstream: http://127.0.0.1:19001
    rules:
      - { path: /static/**, allow: public }
      - { path: /admin/**, roles: [admin] }
      - { path: /**, allow: authenticated }
YAML

"$work/upstream" -listen 127.0.0.1:19001 & pids+=($!); up=$!
"$work/bareproxy" -listen 127.0.0.1:19002 -upstream http://127.0.0.1:19001 & pids+=($!); bare=$!
GATEHOUSE_ADMIN_PASSWORD='bench-password-123' "$work/gatehouse" -config "$work/config.yaml" 2>"$work/gatehouse.log" & pids+=($!); gh=$!

for port in 19001 19002 19003; do
  for _ in $(seq 100); do curl -fso /dev/null "http://127.0.0.1:$port/.gatehouse/healthz" -H 'Host: 127.0.0.1' && break || sleep 0.1; done
done

# Sign in through the real form to get a session cookie.
jar="$work/cookies"
page=$(curl -fsS -c "$jar" -b "$jar" "http://127.0.0.1:19003/.gatehouse/login")
token=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n1)
curl -fsS -o /dev/null -c "$jar" -b "$jar" --data-urlencode "username=admin" --data-urlencode "password=bench-password-123" \
  --data-urlencode "csrf=$token" "http://127.0.0.1:19003/.gatehouse/login"
cookie=$(awk '$6 ~ /gatehouse$/ {print $6"="$7}' "$jar" | tail -n1)
[ -n "$cookie" ] || { echo "sign-in failed; log:"; cat "$work/gatehouse.log"; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" http://127.0.0.1:19003/home)
[ "$status" = 200 ] || { echo "signed-in request got $status"; exit 1; }

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# Totals per target over all rounds: requests, proxy and upstream CPU ticks.
declare -A reqs_total=() cpu_total=() up_total=() rps_list=()

run() { # name url pid [header]
  local name=$1 url=$2 pid=$3; shift 3
  local c0 u0; c0=$(cpu "$pid"); u0=$(cpu "$up")
  wrk -t2 -c"$conns" -d"$duration" --latency "$@" "$url" > "$work/$name.txt"
  local c1 u1; c1=$(cpu "$pid"); u1=$(cpu "$up")
  local reqs rps p50 p99 errs
  reqs=$(awk '/requests in/ {print $1}' "$work/$name.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$name.txt")
  errs=$(awk '/Non-2xx|Socket errors/' "$work/$name.txt")
  printf '  %-10s %10s req/s   p50 %-8s p99 %-8s  proxy CPU %6.1f µs/req   upstream CPU %6.1f µs/req %s\n' \
    "$name" "$rps" "$p50" "$p99" \
    "$(awk -v a="$c0" -v b="$c1" -v t="$tck" -v n="$reqs" 'BEGIN{print (b-a)*1e6/t/n}')" \
    "$(awk -v a="$u0" -v b="$u1" -v t="$tck" -v n="$reqs" 'BEGIN{print (b-a)*1e6/t/n}')" "$errs"
  reqs_total[$name]=$(( ${reqs_total[$name]:-0} + reqs ))
  cpu_total[$name]=$(( ${cpu_total[$name]:-0} + c1 - c0 ))
  up_total[$name]=$(( ${up_total[$name]:-0} + u1 - u0 ))
  echo "$rps" > "$work/$name.rps"
}

rounds=${BENCH_ROUNDS:-8}
rounds=$(( (rounds + 1) / 2 * 2 ))
echo "load: wrk -t2 -c$conns -d$duration per run, keep-alive, loopback, $(nproc) cores, $rounds rounds in ABBA order"
bare_run() { run bare "http://127.0.0.1:19002/home" "$bare"; }
gh_run() { run gatehouse "http://127.0.0.1:19003/home" "$gh" -H "Cookie: $cookie"; }
# Warm both (connection pools, heap, caches) before anything counts.
wrk -t2 -c"$conns" -d5s "http://127.0.0.1:19002/home" >/dev/null
wrk -t2 -c"$conns" -d5s -H "Cookie: $cookie" "http://127.0.0.1:19003/home" >/dev/null
for i in $(seq "$rounds"); do
  echo "round $i"
  if (( i % 2 )); then bare_run; gh_run; else gh_run; bare_run; fi
  printf '  gatehouse at %.1f%% of the bare proxy\n' "$(awk -v g="$(cat "$work/gatehouse.rps")" -v b="$(cat "$work/bare.rps")" 'BEGIN{print 100*g/b}')"
done
for name in bare gatehouse; do
  printf '%-10s over all rounds: proxy CPU %6.1f µs/req, upstream CPU %6.1f µs/req\n' "$name" \
    "$(awk -v c="${cpu_total[$name]}" -v t="$tck" -v n="${reqs_total[$name]}" 'BEGIN{print c*1e6/t/n}')" \
    "$(awk -v c="${up_total[$name]}" -v t="$tck" -v n="${reqs_total[$name]}" 'BEGIN{print c*1e6/t/n}')"
done
printf 'gatehouse (signed in) reaches %.1f%% of the bare proxy throughput over %d ABBA rounds (target >= 85%%)\n' \
  "$(awk -v g="${reqs_total[gatehouse]}" -v b="${reqs_total[bare]}" 'BEGIN{print 100*g/b}')" "$rounds"
