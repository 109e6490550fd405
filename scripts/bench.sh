#!/usr/bin/env bash
# `make bench`: every benchmark of the workspace, once each, against the embedded stack and the real Keycloak.
# Figures are recorded in docs/benchmarks.md with the command that reproduces them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
packages=()
while read -r dir; do packages+=("./${dir#./}/..."); done < <(go work edit -json | python3 -c 'import json,sys; [print(u["DiskPath"]) for u in json.load(sys.stdin)["Use"]]')
scripts/with-keycloak.sh go test -run '^$' -bench "${BENCH:-.}" ${BENCHTIME:+-benchtime "$BENCHTIME"} -timeout 30m "${packages[@]}"
