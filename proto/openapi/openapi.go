// Package openapi embeds the OpenAPI description generated from the protos, served by the gateway at /openapi.json.
package openapi

import _ "embed"

// Spec is the OpenAPI v2 document of the HTTP/JSON API.
//
//go:embed casekeeper.swagger.json
var Spec []byte
