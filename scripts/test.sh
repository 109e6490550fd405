#!/usr/bin/env bash
# `make test`: checks (repository hygiene, gofmt, vet, protos), then every module's tests with -race against real
# components: embedded NATS and FerretDB (started by the tests themselves) and the real Keycloak, started here once
# and handed to the tests as KEYCLOAK_URL.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

# Every module of go.work, as package patterns for one go command.
packages=()
while read -r dir; do packages+=("./${dir#./}/..."); done < <(go work edit -json | python3 -c 'import json,sys; [print(u["DiskPath"]) for u in json.load(sys.stdin)["Use"]]')

step "repository: no built binaries, no large files"
scripts/repo-check.sh

step "go: fetching modules (first run downloads them from the Go module proxy)"
go list -deps -test "${packages[@]}" >/dev/null

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

step "go test -race (every module), then every fuzz target for FUZZTIME (${FUZZTIME:-5s}) each, with the real Keycloak"
scripts/with-keycloak.sh bash -c 'go test -race -count=1 -timeout 25m "$@" && scripts/fuzz.sh' _ "${packages[@]}" "$@"
