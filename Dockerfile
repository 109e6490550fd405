# syntax=docker/dockerfile:1
# check=skip=InvalidDefaultArgInFrom
#
# One image definition for every service; the build argument SERVICE picks which:
#
#   case       owns cases: appends their events to NATS JetStream, projects them into MongoDB
#   webhook    consumes case events from NATS JetStream and delivers them to tenant endpoints
#   gateway    the public HTTP/JSON + gRPC API and the dashboard; calls the case and webhook services
#   devserver  optional, for demos: the all-in-one development stack (embedded NATS, FerretDB on SQLite, every
#              service) in one process; it still needs a Keycloak (KEYCLOAK_URL). Production runs the images above.
#
# Build from the repository root: the build context must hold the whole go.work workspace.
#   docker build --build-arg SERVICE=case -t casekeeper/case:dev .
# or `make images` (deploy/images.mk builds every service image this way).
#
# What differs between services (binary, listen addresses, ports, data volume) is in the per-service stages at the
# end; the last line picks one of them by SERVICE. BuildKit builds only the stages the picked one needs.

ARG GO_VERSION=1.26
# case, webhook, gateway or devserver. No default on purpose: without it the last FROM is blank and the build stops,
# rather than quietly building some service (the check skipped at the top would warn about that on every build).
ARG SERVICE

# ---- build stage -------------------------------------------------------------------------------------------------
# Runs on the build machine's own platform and cross-compiles (pure Go, CGO off), so multi-arch builds need no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# 1) The workspace file and every member module's go.mod/go.sum, and nothing else, so that the dependency download
#    below stays cached until a dependency changes. Every module listed in go.work must be here (Go refuses a
#    workspace with a missing member, and dropping one would change the versions MVS selects), including deploy/
#    (manifest tests), examples/demo-receiver and sdk/go. deploy/dockerfiles_test.go checks this list against go.work.
#    The `*` globs tolerate a go.sum/go.work.sum that does not exist (a module without dependencies has none).
COPY go.work go.work.sum* ./
COPY pkg/go.mod pkg/go.sum* pkg/
COPY pkg/devinfra/go.mod pkg/devinfra/go.sum* pkg/devinfra/
COPY pkg/testinfra/go.mod pkg/testinfra/go.sum* pkg/testinfra/
COPY pkg/webhooks/go.mod pkg/webhooks/go.sum* pkg/webhooks/
COPY proto/go.mod proto/go.sum* proto/
COPY services/case/go.mod services/case/go.sum* services/case/
COPY services/webhook/go.mod services/webhook/go.sum* services/webhook/
COPY services/gateway/go.mod services/gateway/go.sum* services/gateway/
COPY services/devserver/go.mod services/devserver/go.sum* services/devserver/
COPY deploy/go.mod deploy/go.sum* deploy/
COPY examples/demo-receiver/go.mod examples/demo-receiver/go.sum* examples/demo-receiver/
COPY tests/go.mod tests/go.sum* tests/
COPY sdk/go/go.mod sdk/go/go.sum* sdk/go/
RUN go mod download

# 2) Sources: the shared code and every service (the devserver links them all in). These layers are the same for
#    every SERVICE, so the four images share them; the compile below is per service, with a cache across builds.
COPY pkg/ pkg/
COPY proto/ proto/
COPY services/ services/

# 3) A static binary (CGO off, -trimpath for reproducible paths, -s -w strips the symbol table and DWARF).
ARG SERVICE
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    case "$SERVICE" in case|webhook|gateway|devserver) ;; \
      *) echo "build with --build-arg SERVICE=case|webhook|gateway|devserver (got '$SERVICE')" >&2; exit 1 ;; esac && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/${SERVICE} ./services/${SERVICE}/cmd/${SERVICE}
# The devserver's data directory must exist and belong to the runtime user: distroless has no mkdir/chown.
RUN mkdir -p /out/data

# ---- runtime stages ----------------------------------------------------------------------------------------------
# distroless/static: CA certificates, tzdata and /etc/passwd with the `nonroot` user (65532), no shell, no package
# manager. The numeric USER lets Kubernetes verify runAsNonRoot without a runAsUser.
# No HEALTHCHECK: the image has no shell or curl, and the binaries have no self-probe mode. Health is probed from
# outside instead: HTTP GET /healthz and /readyz on the service's HTTP (ops) port, by Kubernetes (deploy/k8s) and by
# whatever runs the container.
# The binaries default to 127.0.0.1 (safe for `make run`); in a container they must listen on every interface.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="casekeeper-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/casekeeper/core"
USER 65532:65532

FROM runtime AS case
LABEL org.opencontainers.image.description="Case-keeper case service"
COPY --from=build /out/case /usr/local/bin/case
ENV CASE_GRPC_ADDR=0.0.0.0:9091 \
    CASE_HTTP_ADDR=0.0.0.0:8091
EXPOSE 9091 8091
ENTRYPOINT ["/usr/local/bin/case"]

FROM runtime AS webhook
LABEL org.opencontainers.image.description="Case-keeper webhook service"
COPY --from=build /out/webhook /usr/local/bin/webhook
ENV WEBHOOK_GRPC_ADDR=0.0.0.0:9092 \
    WEBHOOK_HTTP_ADDR=0.0.0.0:8092
EXPOSE 9092 8092
ENTRYPOINT ["/usr/local/bin/webhook"]

FROM runtime AS gateway
LABEL org.opencontainers.image.description="Case-keeper API gateway"
COPY --from=build /out/gateway /usr/local/bin/gateway
ENV GATEWAY_HTTP_ADDR=0.0.0.0:8080 \
    GATEWAY_GRPC_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/gateway"]

# The embedded NATS and FerretDB stay on the container's loopback; their data is under /data (mount a volume there
# to keep it across restarts).
FROM runtime AS devserver
LABEL org.opencontainers.image.description="Case-keeper all-in-one development server"
COPY --from=build /out/devserver /usr/local/bin/devserver
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
ENV DATA_DIR=/data \
    GATEWAY_HTTP_ADDR=0.0.0.0:8080 \
    GATEWAY_GRPC_ADDR=0.0.0.0:9090 \
    CASE_GRPC_ADDR=0.0.0.0:9091 \
    CASE_HTTP_ADDR=0.0.0.0:8091 \
    WEBHOOK_GRPC_ADDR=0.0.0.0:9092 \
    WEBHOOK_HTTP_ADDR=0.0.0.0:8092
EXPOSE 8080 9090 9091 9092 8091 8092
ENTRYPOINT ["/usr/local/bin/devserver"]

# The image: the stage named by SERVICE.
FROM ${SERVICE}
