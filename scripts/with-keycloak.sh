#!/usr/bin/env bash
# Runs a command with the real Keycloak: the one at KEYCLOAK_URL when set, otherwise a fresh one started here on
# TEST_KEYCLOAK_PORT (18180) / TEST_KEYCLOAK_MGMT_PORT (19000) with a throw-away database, stopped afterwards.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

kc_pid=""
kc_dir=""
cleanup() {
  if [ -n "$kc_pid" ]; then
    echo "with-keycloak: stopping the Keycloak started for this run"
    kill -TERM -- "-$kc_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$kc_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$kc_pid" 2>/dev/null || true
  fi
  if [ -n "$kc_dir" ]; then rm -rf "$kc_dir"; fi
}
trap cleanup EXIT

if [ -n "${KEYCLOAK_URL:-}" ]; then
  echo "with-keycloak: using the Keycloak at KEYCLOAK_URL=$KEYCLOAK_URL"
else
  export KEYCLOAK_PORT="${TEST_KEYCLOAK_PORT:-18180}" KEYCLOAK_MGMT_PORT="${TEST_KEYCLOAK_MGMT_PORT:-19000}"
  kc_dir="$(mktemp -d)"
  export KEYCLOAK_DATA_DIR="$kc_dir"
  "$root/scripts/keycloak.sh" fetch
  echo "with-keycloak: starting Keycloak on 127.0.0.1:$KEYCLOAK_PORT (log: $kc_dir/keycloak.log)"
  setsid "$root/scripts/keycloak.sh" start >"$kc_dir/keycloak.log" 2>&1 &
  kc_pid=$!
  if ! "$root/scripts/keycloak.sh" wait "$kc_pid"; then
    tail -n 50 "$kc_dir/keycloak.log" >&2
    exit 1
  fi
  export KEYCLOAK_URL="http://127.0.0.1:$KEYCLOAK_PORT"
fi

"$@"
