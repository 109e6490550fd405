#!/usr/bin/env bash
# Real Keycloak for Case-keeper development and tests (no Docker needed).
#
# Usage: scripts/keycloak.sh <command> [extra kc.sh options for start]
#
#   fetch   Make sure Keycloak 26.5.6 is unpacked (and pre-built for dev mode) in
#           ${CASEKEEPER_CACHE:-$HOME/.cache/casekeeper}/keycloak-<version>. Idempotent.
#   start   fetch if needed, then exec `kc.sh start-dev --import-realm` in the foreground with the
#           casekeeper realm from deploy/keycloak/casekeeper-realm.json. Extra arguments are
#           passed to kc.sh unchanged. A realm that already exists in the data dir is kept (delete
#           KEYCLOAK_DATA_DIR to re-import). Stop it with SIGTERM to its process group (Ctrl-C in a
#           terminal works too; a job started with `&` from a script ignores SIGINT).
#   wait [PID]  Poll the management health endpoint (/health/ready), then the realm's OIDC
#           discovery document, until both answer; fail after KEYCLOAK_WAIT_SECONDS, or as soon
#           as process PID (if given, e.g. the pid of a backgrounded `start`) has exited.
#   java    Print the Java that would be used, and why.
#   help    Show this help.
#
# Environment (defaults in brackets):
#   CASEKEEPER_CACHE          cache dir                      [$HOME/.cache/casekeeper]
#   KEYCLOAK_HOST             bind/listen address            [127.0.0.1]
#   KEYCLOAK_PORT             HTTP port                      [8180]
#   KEYCLOAK_MGMT_PORT        management port (health)       [9000]
#   KEYCLOAK_DATA_DIR         H2 database, import dir, tx logs; survives restarts
#                                                            [<repo>/.data/keycloak]
#   KEYCLOAK_REALM_FILE       realm to import                [<repo>/deploy/keycloak/casekeeper-realm.json]
#   KEYCLOAK_REALM            realm `wait` checks            [casekeeper]
#   KEYCLOAK_WAIT_SECONDS     `wait` timeout                 [180]
#   KEYCLOAK_HEAP_OPTS        JVM heap options               [-Xms64m -Xmx512m]
#   KEYCLOAK_JIT_OPTS         JIT options; empty = JVM default (full C2)  [-XX:TieredStopAtLevel=1]
#   JAVA_OPTS_APPEND          more JVM options, passed through to kc.sh
#   KEYCLOAK_ADMIN_USER / KEYCLOAK_ADMIN_PASSWORD  bootstrap master-realm admin [admin / admin]
#   KEYCLOAK_JAVA_HOME        force a JDK (must be Java 17+). Otherwise: JAVA_HOME when it is Java 17+;
#                             else `java` on PATH when it is 17, 21 or 25 (the LTS releases Keycloak
#                             26.5 supports); else the newest supported JDK under /usr/lib/jvm.
set -euo pipefail

KC_VERSION=26.5.6
KC_ARTIFACT="org.keycloak:keycloak-quarkus-dist:${KC_VERSION}:zip"
KC_MIN_JAVA=17
KC_SUPPORTED_JAVA=(25 21 17) # Keycloak 26.5 "Supported Configurations"; newest first

CK_ORIG_JAVA_HOME="${JAVA_HOME:-}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${CASEKEEPER_CACHE:-$HOME/.cache/casekeeper}"
KC_HOME="${CACHE_DIR}/keycloak-${KC_VERSION}"
KC_READY_MARKER="${KC_HOME}/.casekeeper-ready"

KEYCLOAK_HOST="${KEYCLOAK_HOST:-127.0.0.1}"
KEYCLOAK_PORT="${KEYCLOAK_PORT:-8180}"
KEYCLOAK_MGMT_PORT="${KEYCLOAK_MGMT_PORT:-9000}"
KEYCLOAK_REALM="${KEYCLOAK_REALM:-casekeeper}"
KEYCLOAK_WAIT_SECONDS="${KEYCLOAK_WAIT_SECONDS:-180}"
KEYCLOAK_REALM_FILE="${KEYCLOAK_REALM_FILE:-${REPO_ROOT}/deploy/keycloak/casekeeper-realm.json}"

log() { printf 'keycloak.sh: %s\n' "$*" >&2; }
die() { printf 'keycloak.sh: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# ---------------------------------------------------------------------------------------------
# Java selection

# java_major <path-to-java> -> prints the major version (e.g. 17, 25) or nothing.
java_major() {
  local v
  v="$("$1" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')" || return 0
  [[ -n "$v" ]] || return 0
  v="${v%%[.+-]*}"
  [[ "$v" == 1 ]] && v=8 # 1.8.x style
  [[ "$v" =~ ^[0-9]+$ ]] && printf '%s\n' "$v"
  return 0
}

is_supported_major() {
  local m="$1" s
  for s in "${KC_SUPPORTED_JAVA[@]}"; do [[ "$m" == "$s" ]] && return 0; done
  return 1
}

# select_java sets SELECTED_JAVA_HOME, SELECTED_JAVA_MAJOR, SELECTED_JAVA_WHY, or fails.
select_java() {
  [[ -n "${SELECTED_JAVA_HOME:-}" ]] && return 0
  local m
  if [[ -n "${KEYCLOAK_JAVA_HOME:-}" ]]; then
    [[ -x "${KEYCLOAK_JAVA_HOME}/bin/java" ]] || die "KEYCLOAK_JAVA_HOME=${KEYCLOAK_JAVA_HOME} has no bin/java"
    m="$(java_major "${KEYCLOAK_JAVA_HOME}/bin/java")"
    [[ -n "$m" && "$m" -ge $KC_MIN_JAVA ]] ||
      die "KEYCLOAK_JAVA_HOME=${KEYCLOAK_JAVA_HOME} is Java ${m:-?}; Keycloak ${KC_VERSION} needs Java ${KC_MIN_JAVA}+"
    SELECTED_JAVA_HOME="${KEYCLOAK_JAVA_HOME}" SELECTED_JAVA_MAJOR="$m"
    SELECTED_JAVA_WHY="KEYCLOAK_JAVA_HOME is set"
    return 0
  fi
  if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    m="$(java_major "${JAVA_HOME}/bin/java")"
    if [[ -n "$m" && "$m" -ge $KC_MIN_JAVA ]]; then
      SELECTED_JAVA_HOME="${JAVA_HOME}" SELECTED_JAVA_MAJOR="$m"
      SELECTED_JAVA_WHY="JAVA_HOME is set and is Java ${KC_MIN_JAVA}+"
      return 0
    fi
    log "ignoring JAVA_HOME=${JAVA_HOME} (Java ${m:-?}; Keycloak needs ${KC_MIN_JAVA}+)"
  fi
  # The default `java` on PATH, when it is a Keycloak-supported LTS (Keycloak starts as fast on 17
  # as on 25 and needs no extra JVM flags there).
  local c home best_home="" best_major=0 best_supported=0 sup
  if command -v java >/dev/null 2>&1; then
    c="$(readlink -f "$(command -v java)")"
    home="${c%/bin/java}"
    m="$(java_major "$c")"
    if [[ -n "$m" ]] && is_supported_major "$m"; then
      SELECTED_JAVA_HOME="$home" SELECTED_JAVA_MAJOR="$m"
      SELECTED_JAVA_WHY="default java on PATH, a Keycloak-supported LTS (${KC_SUPPORTED_JAVA[*]})"
      return 0
    fi
  fi
  # Otherwise every JDK/JRE under /usr/lib/jvm (and PATH's): newest supported major wins.
  local cands=()
  [[ -n "${home:-}" ]] && cands+=("$home")
  for c in /usr/lib/jvm/*/bin/java; do
    [[ -x "$c" ]] && cands+=("$(readlink -f "${c%/bin/java}")")
  done
  for home in "${cands[@]+"${cands[@]}"}"; do
    m="$(java_major "${home}/bin/java")"
    [[ -n "$m" && "$m" -ge $KC_MIN_JAVA ]] || continue
    sup=0; is_supported_major "$m" && sup=1
    # Prefer a supported major over an unsupported one, then the newest.
    if (( sup > best_supported || (sup == best_supported && m > best_major) )); then
      best_home="$home" best_major="$m" best_supported="$sup"
    fi
  done
  [[ -n "$best_home" ]] || die "no Java ${KC_MIN_JAVA}+ found (looked at JAVA_HOME, PATH, /usr/lib/jvm).
  Install one, e.g. on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless
  (or openjdk-21-jre-headless), or point KEYCLOAK_JAVA_HOME at a JDK 17/21/25."
  SELECTED_JAVA_HOME="$best_home" SELECTED_JAVA_MAJOR="$best_major"
  if (( best_supported )); then
    SELECTED_JAVA_WHY="newest Keycloak-supported JDK found (supported: ${KC_SUPPORTED_JAVA[*]})"
  else
    SELECTED_JAVA_WHY="no JDK ${KC_SUPPORTED_JAVA[*]} found; Java ${best_major} is not officially supported by Keycloak ${KC_VERSION}"
  fi
}

java_env() {
  select_java
  export JAVA_HOME="${SELECTED_JAVA_HOME}"
  export JAVA="${SELECTED_JAVA_HOME}/bin/java" # kc.sh prefers $JAVA over $JAVA_HOME
  # C1-only JIT: measured on 2 busy cores, ~40% less CPU to start (cold ~37 -> ~23 CPU-s, warm
  # ~17 -> ~9.5 CPU-s); tokens get slower (~50 ms instead of ~27 ms each), fine for dev and tests.
  local jit="${KEYCLOAK_JIT_OPTS--XX:TieredStopAtLevel=1}"
  if [[ -n "$jit" && "${JAVA_OPTS_APPEND:-}" != *"$jit"* ]]; then
    export JAVA_OPTS_APPEND="${JAVA_OPTS_APPEND:+$JAVA_OPTS_APPEND }$jit"
  fi
  if ((SELECTED_JAVA_MAJOR >= 24)) && [[ "${JAVA_OPTS_APPEND:-}" != *sun-misc-unsafe-memory-access* ]]; then
    # JDK 24+: silence warnings about Netty's sun.misc.Unsafe use and native access, and let
    # jboss-threads reset thread locals (without the add-opens it throws IllegalAccessError).
    export JAVA_OPTS_APPEND="${JAVA_OPTS_APPEND:+$JAVA_OPTS_APPEND }--sun-misc-unsafe-memory-access=allow --enable-native-access=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED"
  fi
}

# ---------------------------------------------------------------------------------------------
# fetch

extract_zip() { # extract_zip <zip> <dest-dir>
  local zip="$1" dest="$2"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q "$zip" -d "$dest"
  elif command -v python3 >/dev/null 2>&1; then
    # zipfile loses the executable bit; kc.sh is fixed up below.
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$dest"
  elif [[ -x "${SELECTED_JAVA_HOME}/bin/jar" ]]; then
    (cd "$dest" && "${SELECTED_JAVA_HOME}/bin/jar" xf "$zip")
  else
    die "cannot unpack ${zip}: need unzip (apt-get install -y unzip), python3, or a JDK's jar tool"
  fi
}

# Run kc.sh start-dev once so that Quarkus "augmentation" for the dev profile (with the build-time
# options `start` uses) happens now, inside the not-yet-published directory. Keycloak exits with
# status 10 after re-augmenting; the wrapper turns that into success instead of relaunching.
prebuild_dev() {
  local home="$1" tmp="$2" wrapper="$2/java-prebuild" rc=0
  cat >"$wrapper" <<'EOF'
#!/bin/sh
"$CK_REAL_JAVA" "$@"
rc=$?
if [ "$rc" -eq 10 ]; then exit 0; fi
if [ "$rc" -eq 0 ]; then exit 0; fi
echo "keycloak.sh: pre-build exited with status $rc" >&2
exit "$rc"
EOF
  chmod +x "$wrapper"
  # Ports 0: if augmentation were somehow skipped the server would start; make it harmless.
  CK_REAL_JAVA="$JAVA" JAVA="$wrapper" JAVA_OPTS_KC_HEAP="-Xms64m -Xmx512m" \
    KC_DB_URL_PATH="$tmp/prebuild-data" \
    timeout 600 "$home/bin/kc.sh" start-dev --health-enabled=true \
    --http-host=127.0.0.1 --http-port=0 --http-management-port=0 \
    >"$tmp/prebuild.log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    tail -n 30 "$tmp/prebuild.log" >&2 || true
    die "pre-building Keycloak failed (status $rc); see output above"
  fi
  rm -rf "$home/data" # nothing runtime-related may live in the shared distribution
}

cmd_fetch() {
  if [[ -f "$KC_READY_MARKER" ]]; then
    return 0
  fi
  java_env
  mkdir -p "$CACHE_DIR"
  # Serialise concurrent fetches (e.g. two test packages starting Keycloak at once).
  local lock="${CACHE_DIR}/.keycloak-${KC_VERSION}.lock"
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$lock"
    if ! flock -n 8; then
      log "another fetch of Keycloak ${KC_VERSION} is running; waiting for it…"
      flock 8
    fi
    if [[ -f "$KC_READY_MARKER" ]]; then exec 8>&-; return 0; fi
    # We hold the lock, so any temp dir left here is debris of an interrupted (e.g. SIGKILLed) fetch.
    rm -rf "${CACHE_DIR}/.keycloak-${KC_VERSION}.tmp."*
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn (Apache Maven) not found; it downloads Keycloak from Maven Central. Install it: apt-get install -y maven"
  if ! command -v unzip >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1 &&
    [[ ! -x "${SELECTED_JAVA_HOME}/bin/jar" ]]; then
    die "unzip not found (nor python3 or a JDK jar tool). Install it: apt-get install -y unzip"
  fi

  local tmp
  tmp="$(mktemp -d "${CACHE_DIR}/.keycloak-${KC_VERSION}.tmp.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT

  log "fetching Keycloak ${KC_VERSION} from Maven Central (~160 MB, first run only)…"
  local t0=$SECONDS
  # mvn runs with the caller's own JAVA_HOME (not the JDK picked for Keycloak); output goes to a
  # log that is shown only on failure.
  local mvn_env=(env -u JAVA)
  if [[ -n "${CK_ORIG_JAVA_HOME:-}" ]]; then mvn_env+=("JAVA_HOME=${CK_ORIG_JAVA_HOME}"); else mvn_env+=(-u JAVA_HOME); fi
  if ! (cd "$tmp" && "${mvn_env[@]}" mvn -B -Dstyle.color=never dependency:copy \
    -Dartifact="$KC_ARTIFACT" -DoutputDirectory="$tmp/dl" >"$tmp/mvn.log" 2>&1); then
    tail -n 40 "$tmp/mvn.log" >&2 || true
    die "mvn could not fetch ${KC_ARTIFACT} (is Maven Central reachable? proxy settings in ~/.m2/settings.xml?)"
  fi
  local zip="$tmp/dl/keycloak-quarkus-dist-${KC_VERSION}.zip"
  [[ -s "$zip" ]] || die "mvn reported success but ${zip} is missing"

  log "unpacking…"
  mkdir -p "$tmp/x"
  extract_zip "$zip" "$tmp/x"
  rm -f "$zip"
  local home="$tmp/x/keycloak-${KC_VERSION}"
  [[ -f "$home/bin/kc.sh" ]] || die "unexpected archive layout: $home/bin/kc.sh missing"
  chmod +x "$home"/bin/*.sh

  log "pre-building Keycloak for dev mode with Java ${SELECTED_JAVA_MAJOR} (one time, ~30-60 s)…"
  prebuild_dev "$home" "$tmp"

  date -u +%FT%TZ >"$home/.casekeeper-ready"
  # A directory without the marker is a leftover of an interrupted run of an older script: replace it.
  if [[ -e "$KC_HOME" ]]; then
    mv "$KC_HOME" "$tmp/old"
  fi
  mv "$home" "$KC_HOME"
  rm -rf "$tmp"
  trap - EXIT
  exec 8>&- # release the fetch lock (and don't leak the fd into kc.sh)
  log "Keycloak ${KC_VERSION} ready in ${KC_HOME} ($((SECONDS - t0)) s)"
}

# ---------------------------------------------------------------------------------------------
# start

port_in_use() { # port_in_use <host> <port>
  local host="$1" port="$2"
  [[ "$host" == "0.0.0.0" ]] && host=127.0.0.1
  [[ "$host" == "::" ]] && host=::1
  (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null
}

check_port() {
  local name="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "${name}=${port} is not a valid port"
  if port_in_use "$KEYCLOAK_HOST" "$port"; then
    die "port ${port} (${name}) on ${KEYCLOAK_HOST} is already in use; stop whatever listens there (ss -ltnp 'sport = :${port}') or set ${name}"
  fi
}

cmd_start() {
  cmd_fetch
  java_env
  [[ -f "$KEYCLOAK_REALM_FILE" ]] || die "realm file not found: ${KEYCLOAK_REALM_FILE}"
  [[ "$KEYCLOAK_PORT" != "$KEYCLOAK_MGMT_PORT" ]] || die "KEYCLOAK_PORT and KEYCLOAK_MGMT_PORT are both ${KEYCLOAK_PORT}"
  check_port KEYCLOAK_PORT "$KEYCLOAK_PORT"
  check_port KEYCLOAK_MGMT_PORT "$KEYCLOAK_MGMT_PORT"

  local data="${KEYCLOAK_DATA_DIR:-${REPO_ROOT}/.data/keycloak}"
  mkdir -p "$data/import"
  data="$(cd "$data" && pwd)"
  # Only our realm file is imported (a realm that already exists in the database is skipped).
  # Keycloak insists on the file name <realm>-realm.json, so the file keeps its own name.
  find "$data/import" -maxdepth 1 -type f -name '*.json' -delete
  cp "$KEYCLOAK_REALM_FILE" "$data/import/$(basename "$KEYCLOAK_REALM_FILE")"

  export JAVA_OPTS_KC_HEAP="${KEYCLOAK_HEAP_OPTS:--Xms64m -Xmx512m}"
  export KC_BOOTSTRAP_ADMIN_USERNAME="${KEYCLOAK_ADMIN_USER:-admin}"
  export KC_BOOTSTRAP_ADMIN_PASSWORD="${KEYCLOAK_ADMIN_PASSWORD:-admin}"
  # Dev H2 database lives in $data/data/h2/keycloakdb.* instead of inside the shared distribution.
  export KC_DB_URL_PATH="$data"

  if [[ -f "$data/data/h2/keycloakdb.mv.db" ]]; then
    log "existing Keycloak database in ${data}: realms already there are kept (delete the directory to re-import)"
  fi
  log "starting Keycloak ${KC_VERSION} (Java ${SELECTED_JAVA_MAJOR}: ${SELECTED_JAVA_HOME}) on http://${KEYCLOAK_HOST}:${KEYCLOAK_PORT} (management ${KEYCLOAK_MGMT_PORT}), data ${data}"
  cd "$data"
  # -Dkeycloak.migration.dir: --import-realm otherwise only reads <kc home>/data/import (which the
  # shared distribution does not have, so this value is kept).
  exec "$KC_HOME/bin/kc.sh" start-dev --import-realm \
    --health-enabled=true \
    --http-host="$KEYCLOAK_HOST" \
    --http-port="$KEYCLOAK_PORT" \
    --http-management-port="$KEYCLOAK_MGMT_PORT" \
    "-Dkeycloak.migration.dir=$data/import" \
    "-Dquarkus.transaction-manager.object-store.directory=$data/transaction-logs" \
    "$@"
}

# ---------------------------------------------------------------------------------------------
# wait

# With `wait PID`: make sure the process answering on KEYCLOAK_PORT is PID or one of its children
# (kc.sh runs java as a child), not another Keycloak that won a race for the port. Best effort:
# skipped when ss cannot tell.
check_listener_owner() {
  local pid="$1" lpid stat ppid pgrp
  command -v ss >/dev/null 2>&1 || return 0
  lpid="$(ss -Hltnp "sport = :${KEYCLOAK_PORT}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)" || true
  [[ -n "$lpid" && -r "/proc/${lpid}/stat" ]] || return 0
  stat="$(<"/proc/${lpid}/stat")"
  stat="${stat##*) }" # fields after "pid (comm) ": state ppid pgrp ...
  read -r _ ppid pgrp _ <<<"$stat"
  if [[ "$lpid" != "$pid" && "$ppid" != "$pid" && "$pgrp" != "$pid" ]]; then
    die "port ${KEYCLOAK_PORT} is served by process ${lpid}, not by Keycloak pid ${pid} (another Keycloak on the same port?)"
  fi
}

cmd_wait() { # cmd_wait [pid]: with a pid, fail at once when that process has exited
  local pid="${1:-}"
  [[ -z "$pid" || "$pid" =~ ^[0-9]+$ ]] || die "wait: '${pid}' is not a process id"
  command -v curl >/dev/null 2>&1 || die "curl not found; install it: apt-get install -y curl"
  [[ "$KEYCLOAK_WAIT_SECONDS" =~ ^[0-9]+$ ]] || die "KEYCLOAK_WAIT_SECONDS=${KEYCLOAK_WAIT_SECONDS} is not a number"
  local host="$KEYCLOAK_HOST"
  [[ "$host" == "0.0.0.0" ]] && host=127.0.0.1
  local health="http://${host}:${KEYCLOAK_MGMT_PORT}/health/ready"
  local discovery="http://${host}:${KEYCLOAK_PORT}/realms/${KEYCLOAK_REALM}/.well-known/openid-configuration"
  local start=$SECONDS last=-1 elapsed stage="health" url="$health"
  log "waiting up to ${KEYCLOAK_WAIT_SECONDS}s for Keycloak (${health})…"
  while :; do
    if curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; then
      if [[ "$stage" == health ]]; then
        stage="realm" url="$discovery"
        continue
      fi
      if [[ -n "$pid" ]]; then check_listener_owner "$pid"; fi
      log "Keycloak is ready after $((SECONDS - start)) s (realm ${KEYCLOAK_REALM} at http://${host}:${KEYCLOAK_PORT}/realms/${KEYCLOAK_REALM})"
      return 0
    fi
    elapsed=$((SECONDS - start))
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      die "Keycloak (pid ${pid}) exited before it was ready; check its output"
    fi
    if ((elapsed >= KEYCLOAK_WAIT_SECONDS)); then
      die "Keycloak not ready after ${KEYCLOAK_WAIT_SECONDS}s (${url} did not answer 2xx); check the Keycloak output"
    fi
    if ((elapsed / 10 != last)); then
      last=$((elapsed / 10))
      ((elapsed > 0)) && log "still waiting for Keycloak (${stage}) … ${elapsed}s"
    fi
    sleep 1
  done
}

cmd_java() {
  select_java
  printf 'Java %s at %s (%s)\n' "$SELECTED_JAVA_MAJOR" "$SELECTED_JAVA_HOME" "$SELECTED_JAVA_WHY"
}

main() {
  local cmd="${1:-help}"
  (($#)) && shift
  case "$cmd" in
  fetch) (($# == 0)) || die "fetch takes no arguments"; cmd_fetch; log "Keycloak ${KC_VERSION} is in ${KC_HOME}" ;;
  start) cmd_start "$@" ;;
  wait) (($# <= 1)) || die "usage: wait [PID]"; cmd_wait "$@" ;;
  java) cmd_java ;;
  help | -h | --help) usage ;;
  *) usage >&2; die "unknown command: ${cmd}" ;;
  esac
}

main "$@"
