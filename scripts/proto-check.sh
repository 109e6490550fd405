#!/usr/bin/env bash
# Lints the protos and regenerates them into a scratch copy: any difference from the committed code fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/.cache/bin:$PATH"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/proto/." "$scratch/"
(cd "$scratch" && buf lint && buf generate)
if ! diff -r -q "$root/proto" "$scratch" >/dev/null; then
  echo "proto: the committed generated code is stale; run 'make proto' and commit the result:" >&2
  diff -r -q "$root/proto" "$scratch" >&2 || true
  exit 1
fi
# Breaking changes against the last commit: a field renumbered or a message removed breaks every deployed client.
if git -C "$root" rev-parse --verify -q HEAD >/dev/null && git -C "$root" cat-file -e HEAD:proto/buf.yaml 2>/dev/null; then
  (cd "$root/proto" && buf breaking --against "$root/.git#ref=HEAD,subdir=proto")
fi
echo "proto: lint clean, no breaking change against HEAD, generated code up to date"
