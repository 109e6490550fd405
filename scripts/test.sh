#!/usr/bin/env bash
# `make test`: checks, then every module's tests with -race against real components: embedded NATS and FerretDB
# (started by the tests themselves) and the real Keycloak, started here once and handed to the tests as KEYCLOAK_URL.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

# Every module of go.work, as package patterns for one go command.
packages=()
while read -r dir; do packages+=("./${dir#./}/..."); done < <(go work edit -json | python3 -c 'import json,sys; [print(u["DiskPath"]) for u in json.load(sys.stdin)["Use"]]')

step "go: fetching modules (first run downloads them from the Go module proxy)"
go mod download

step "gofmt"
unformatted="$(git ls-files '*.go' | grep -v -E '\.pb(\.gw)?\.go$' | xargs gofmt -l)"
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
echo "clean"

step "go vet"
go vet "${packages[@]}"
echo "clean"

step "protos: buf lint and freshness of the generated code"
scripts/tools.sh
scripts/proto-check.sh

step "browser: Debian chromium for the dashboard tests"
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is missing: installing it with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
chromium --version

step "Keycloak: the real server for the auth tests"
kc_pid=""
cleanup() {
  if [ -n "$kc_pid" ]; then
    echo "stopping the test Keycloak"
    kill -TERM -- "-$kc_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$kc_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$kc_pid" 2>/dev/null || true
  fi
  [ -n "${kc_dir:-}" ] && rm -rf "$kc_dir"
}
trap cleanup EXIT
if [ -n "${KEYCLOAK_URL:-}" ]; then
  echo "using the Keycloak at KEYCLOAK_URL=$KEYCLOAK_URL"
else
  export KEYCLOAK_PORT="${TEST_KEYCLOAK_PORT:-18180}" KEYCLOAK_MGMT_PORT="${TEST_KEYCLOAK_MGMT_PORT:-19000}"
  kc_dir="$(mktemp -d)"
  export KEYCLOAK_DATA_DIR="$kc_dir"
  scripts/keycloak.sh fetch
  echo "starting Keycloak on 127.0.0.1:$KEYCLOAK_PORT (log: $kc_dir/keycloak.log)"
  setsid scripts/keycloak.sh start >"$kc_dir/keycloak.log" 2>&1 &
  kc_pid=$!
  if ! scripts/keycloak.sh wait "$kc_pid"; then
    tail -n 50 "$kc_dir/keycloak.log" >&2
    exit 1
  fi
  export KEYCLOAK_URL="http://127.0.0.1:$KEYCLOAK_PORT"
fi

step "go test -race (every module)"
go test -race -count=1 -timeout 25m "${packages[@]}" "$@"
