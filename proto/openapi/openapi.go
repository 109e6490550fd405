// Package openapi embeds the OpenAPI 3.1 description of the HTTP/JSON API, generated from the protos by
// protoc-gen-openapi31 (`make proto`) and served by the gateway at /openapi.json.
package openapi

import _ "embed"

// Spec is the OpenAPI 3.1 document of the HTTP/JSON API. It has no servers: the gateway adds its public URL.
//
//go:embed casekeeper.openapi.json
var Spec []byte
