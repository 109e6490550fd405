#!/usr/bin/env bash
# Builds buf and the protoc plugins pinned in tools/go.mod into .cache/bin (once; rebuilt when tools/go.mod changes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/bin"
stamp="$bin/.tools-$(sha256sum "$root/tools/go.mod" | cut -c1-16)"
[ -f "$stamp" ] && exit 0
echo "tools: building buf and protoc plugins from tools/go.mod into .cache/bin (first time only, a few minutes)"
mkdir -p "$bin"
GOWORK=off go -C "$root/tools" build -o "$bin/" \
  github.com/bufbuild/buf/cmd/buf \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2
rm -f "$bin"/.tools-*
touch "$stamp"
