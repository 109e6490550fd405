# Case-keeper Core — the two commands every new user needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

# Binaries built to bin/<name> from services/<name>/cmd/<name>, and the command-line client.
SERVICES := case webhook gateway devserver
TOOLS_BIN := $(CURDIR)/.cache/bin

# `make images` (needs a Docker engine).
include deploy/images.mk

.PHONY: help run build test cluster-test bench proto proto-check lint vet fmt tools keycloak clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: build ## build and start the whole stack (NATS, FerretDB, Keycloak, services); Ctrl-C stops it
	@scripts/keycloak.sh fetch
	@./bin/devserver

build: ## build every binary into bin/
	@echo "building $(SERVICES) casekeeper into bin/ (Go modules are fetched on the first build)"
	@mkdir -p bin
	@for s in $(SERVICES); do CGO_ENABLED=0 go build -trimpath -o bin/$$s ./services/$$s/cmd/$$s; done
	@CGO_ENABLED=0 go build -trimpath -o bin/casekeeper ./sdk/go/cmd/casekeeper

test: ## check for committed binaries, vet, check generated code, start the real Keycloak and run every module's tests with -race
	@scripts/test.sh

cluster-test: ## the cluster test's long form: 3 NATS nodes, 2 replicas of each service, faults, 10,000 writes
	@CLUSTER_WRITES=$${CLUSTER_WRITES:-10000} scripts/with-keycloak.sh go test -count=1 -timeout 60m -v -run TestClusterLosesNothing ./tests/cluster/

bench: ## run the benchmarks (figures go to docs/benchmarks.md by hand)
	@scripts/bench.sh

tools: ## build buf and the protoc plugins (pinned in tools/go.mod) into .cache/bin
	@scripts/tools.sh

proto: tools ## regenerate the Go code and the OpenAPI 3.1 document from the protos
	@cd proto && PATH="$(TOOLS_BIN):$$PATH" buf lint && PATH="$(TOOLS_BIN):$$PATH" buf generate

proto-check: tools ## fail when the committed generated code (Go, OpenAPI) is stale
	@scripts/proto-check.sh

keycloak: ## start only Keycloak (foreground), as `make run` does
	@scripts/keycloak.sh start

clean: ## remove binaries and dev data
	rm -rf bin .data
