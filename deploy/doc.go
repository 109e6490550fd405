// Package deploy holds no code: its tests check the deployment artefacts of the repository without a cluster or a
// Docker engine.
//
//   - every Kubernetes manifest under deploy/k8s decodes strictly into the k8s.io/api type of its kind, and every
//     kustomization.yaml into kustomize's Kustomization;
//   - each overlay (deploy/k8s/overlays/dev, prod) builds with kustomize, and its output decodes strictly and meets
//     the operational rules: probes, resources, hardened security contexts, pinned images, references that resolve,
//     replica counts that agree (NATS, MongoDB, EVENTS_STREAM_REPLICAS), network policies that deny by default;
//   - docker-compose.yml loads and validates with compose-go, starts in health-gated order, and configures the
//     services as the contract says;
//   - the one Dockerfile (at the repository root) has a stage per service the Makefile knows, picked by the build
//     argument SERVICE, each building its binary from a directory that exists onto a distroless, non-root base; it
//     copies every module of go.work, and deploy/images.mk and docker-compose.yml build it per service;
//   - the Keycloak realm holds the clients (and, in dev, the secrets) that compose and Kubernetes configure, and
//     deploy/k8s/base/keycloak/casekeeper-realm.json is an exact copy of deploy/keycloak/casekeeper-realm.json.
package deploy
