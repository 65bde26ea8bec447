#!/usr/bin/env bash
# Runs every native fuzz target for a while (default 30s each). New
# crashers land in the package's testdata/fuzz/ and then run in every
# `go test` as regression seeds.
#
#   bash scripts/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
time=${1:-30s}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($time)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg"
  done
done
