#!/usr/bin/env bash
# Signed-in traffic during a password-guessing flood, on loopback: the
# gateway (TLS off) in front of a small upstream; 32 attackers post wrong
# sign-ins, each from a new 127.0.0.0/8 address and username, while wrk
# measures a signed-in user's requests. Prints the signed-in latency
# percentiles (target: p90 under 50 ms) and how the flood was answered.
#
#   bash scripts/flood.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
duration=${1:-15s}
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
go build -o "$work/flood" ./scripts/bench/flood
cat > "$work/config.yaml" <<YAML
listen: { http: "127.0.0.1:19023", https: "127.0.0.1:19024" }
tls: { mode: "off" }
data_dir: $work/data
log: { level: warn, access: false }
apps:
  - host: 127.0.0.1
    upstream: http://127.0.0.1:19021
    rules:
      - { path: /**, allow: authenticated }
YAML
"$work/upstream" -listen 127.0.0.1:19021 & pids+=($!)
GATEHOUSE_ADMIN_PASSWORD='flood-password-123' "$work/gatehouse" -config "$work/config.yaml" 2>"$work/gatehouse.log" & pids+=($!)
for _ in $(seq 100); do curl -fso /dev/null http://127.0.0.1:19023/.gatehouse/healthz && break || sleep 0.1; done
jar="$work/cookies"
page=$(curl -fsS -c "$jar" -b "$jar" http://127.0.0.1:19023/.gatehouse/login)
token=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n1)
curl -fsS -o /dev/null -c "$jar" -b "$jar" --data-urlencode username=admin --data-urlencode password=flood-password-123 \
  --data-urlencode "csrf=$token" http://127.0.0.1:19023/.gatehouse/login
cookie=$(awk '$6 ~ /gatehouse$/ {print $6"="$7}' "$jar" | tail -n1)
[ -n "$cookie" ] || { echo "sign-in failed"; cat "$work/gatehouse.log"; exit 1; }

echo "baseline (no flood): wrk -t1 -c16 -d5s"
wrk -t1 -c16 -d5s --latency -H "Cookie: $cookie" http://127.0.0.1:19023/home | awk '$1=="50%"||$1=="90%"||$1=="99%"||/Requests\/sec/'
"$work/flood" -target http://127.0.0.1:19023 -workers 32 -duration "$duration" > "$work/flood.txt" & flood=$!
sleep 1
echo "during the flood: wrk -t1 -c16 -d$duration"
wrk -t1 -c16 -d"$duration" --latency -H "Cookie: $cookie" http://127.0.0.1:19023/home | awk '$1=="50%"||$1=="90%"||$1=="99%"||/Requests\/sec/||/Non-2xx/'
wait "$flood"
cat "$work/flood.txt"
