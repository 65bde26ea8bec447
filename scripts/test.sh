#!/usr/bin/env bash
# Runs every test: vet, unit, fuzz seed corpora, end-to-end and browser
# tests. Installs what the tests need (Debian's Chromium, the sqlite3 shell
# for the migration docs' query) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} for the tests"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

unformatted=$(gofmt -l . | grep -v '^vendor/' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
export GATEHOUSE_CHROMIUM="${GATEHOUSE_CHROMIUM:-$(command -v chromium)}"
go test -race -count=1 -timeout 12m ./... "$@"
# Allocation counts are meaningless under -race; check them in a plain pass.
go test -count=1 -run DoesNotAllocate ./...
