#!/usr/bin/env bash
# Runs every fuzz target of the repository (each `func FuzzXxx` in a _test.go file) for FUZZTIME (default 5s) with
# coverage-guided fuzzing, one after the other; `make test` calls it after the tests, with the real Keycloak at
# KEYCLOAK_URL. A failing input is written to the package's testdata/fuzz/<target>/ and fails the run: commit it
# with the fix, and it runs as a seed in every `go test` from then on.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fuzztime="${FUZZTIME:-5s}"

git ls-files '*_test.go' | xargs grep -l -E '^func Fuzz[A-Z][A-Za-z0-9_]*\(f \*testing\.F\)' | sort | while read -r file; do
  dir="$(dirname "$file")"
  for target in $(grep -o -E '^func Fuzz[A-Z][A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "fuzz: $target in ./$dir for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir" >"${TMPDIR:-/tmp}/fuzz-$target.log" 2>&1 || {
      cat "${TMPDIR:-/tmp}/fuzz-$target.log"
      echo "fuzz: $target failed (the failing input is in ./$dir/testdata/fuzz/$target/)" >&2
      exit 1
    }
    # The last progress line; none when the time went to replaying the cached corpus.
    grep -E '^fuzz: elapsed: ' "${TMPDIR:-/tmp}/fuzz-$target.log" | tail -n 1 || true
  done
done
