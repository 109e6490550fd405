// Package tests holds the integration tests that cross services and languages: the example webhook receivers in
// examples/receivers (Go, Node.js, Python) run against webhooks signed and sent by the real webhook service, and
// the JSON Schemas in proto/schemas are checked against the protos, the real bodies and the samples of
// docs/webhooks.md, and the dashboard is driven in chromium against the real case, webhook and gateway services
// (dashboard_test.go), and the shell blocks of README.md and services/gateway/README.md are run against the dev
// server of `make run` (readme_test.go). Everything is in _test.go files; this file only gives the module a package.
//
// Run with the real Keycloak (KEYCLOAK_URL), as `make test` does:
//
//	KEYCLOAK_URL=http://127.0.0.1:8180 go test -race ./tests/...
package tests
