package main

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/casekeeper/core/proto/casekeeper/v1" // registers the descriptors the conversion reads
)

// A Swagger 2.0 fragment as protoc-gen-openapiv2 writes it, with the fully qualified names the plugin asks for.
const swaggerFragment = `{
  "swagger": "2.0",
  "info": {"title": "casekeeper/v1/case.proto", "version": "version not set"},
  "consumes": ["application/json"],
  "produces": ["application/json"],
  "paths": {
    "/v1/events": {"get": {
      "operationId": "CaseQueryService_ListCaseEvents",
      "parameters": [
        {"name": "wait", "in": "query", "required": false, "type": "string"},
        {"name": "types", "in": "query", "required": false, "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"}
      ],
      "responses": {"200": {"description": "A successful response.", "schema": {"$ref": "#/definitions/casekeeper.v1.ListCaseEventsResponse"}}}
    }},
    "/v1/webhooks/endpoints/{id}/secret:rotate": {"post": {
      "operationId": "WebhookService_RotateSecret",
      "parameters": [
        {"name": "id", "in": "path", "required": true, "type": "string"},
        {"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/casekeeper.v1.WebhookService.RotateSecretBody"}}
      ],
      "responses": {"200": {"description": "A successful response.", "schema": {"$ref": "#/definitions/casekeeper.v1.RotateSecretResponse"}}}
    }}
  },
  "definitions": {
    "casekeeper.v1.ListCaseEventsResponse": {"type": "object", "properties": {
      "events": {"type": "array", "items": {"type": "object", "$ref": "#/definitions/casekeeper.v1.CaseEvent"}},
      "next_cursor": {"type": "string", "x-nullable": true, "example": "AQAAAAAAALxTS2DhFw"}}},
    "casekeeper.v1.Attempt": {"type": "object", "properties": {"latency": {"type": "string"}}},
    "casekeeper.v1.WebhookService.RotateSecretBody": {"type": "object"}
  }
}`

func convertFragment(t *testing.T, fragment string) (map[string]any, error) {
	t.Helper()
	var sw map[string]any
	if err := json.Unmarshal([]byte(fragment), &sw); err != nil {
		t.Fatal(err)
	}
	return convert(sw, protoregistry.GlobalFiles)
}

// get walks a converted document by keys separated with |.
func get(v any, path string) any {
	for _, k := range strings.Split(path, "|") {
		switch c := v.(type) {
		case map[string]any:
			v = c[k]
		case []any:
			i := int(k[0] - '0')
			if i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func TestConvertToOpenAPI31(t *testing.T) {
	doc, err := convertFragment(t, swaggerFragment)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want any
	}{
		{"openapi", "3.1.0"},
		// References point into components/schemas, named without our package, with no redundant sibling type.
		{"components|schemas|ListCaseEventsResponse|properties|events|items|$ref", "#/components/schemas/CaseEvent"},
		{"components|schemas|ListCaseEventsResponse|properties|events|items|type", nil},
		// 2020-12: a type array instead of x-nullable, examples instead of example.
		{"components|schemas|ListCaseEventsResponse|properties|next_cursor|type", []any{"string", "null"}},
		{"components|schemas|ListCaseEventsResponse|properties|next_cursor|examples|0", "AQAAAAAAALxTS2DhFw"},
		// A Duration in a body is protojson's; in a query, Go's time.ParseDuration's.
		{"components|schemas|Attempt|properties|latency|pattern", durationPattern},
		{"paths|/v1/events|get|parameters|0|schema|pattern", queryDurationPattern},
		{"paths|/v1/events|get|parameters|1|style", "form"},
		{"paths|/v1/events|get|parameters|1|schema|items|type", "string"},
		{"paths|/v1/events|get|responses|200|content|application/json|schema|$ref", "#/components/schemas/ListCaseEventsResponse"},
		// A body parameter becomes the request body.
		{"paths|/v1/webhooks/endpoints/{id}/secret:rotate|post|requestBody|content|application/json|schema|$ref",
			"#/components/schemas/WebhookService.RotateSecretBody"},
		{"paths|/v1/webhooks/endpoints/{id}/secret:rotate|post|parameters|0|in", "path"},
		{"paths|/v1/webhooks/endpoints/{id}/secret:rotate|post|parameters|1", nil},
	}
	for _, c := range cases {
		got, _ := json.Marshal(get(doc, c.path))
		want, _ := json.Marshal(c.want)
		if string(got) != string(want) {
			t.Errorf("%s = %s, want %s", c.path, got, want)
		}
	}
}

// What the conversion does not know is an error, never a silent omission.
func TestConvertRefusesWhatItDoesNotKnow(t *testing.T) {
	for name, fragment := range map[string]string{
		"security definitions": strings.Replace(swaggerFragment, `"consumes"`, `"securityDefinitions": {}, "consumes"`, 1),
		"an operation key":     strings.Replace(swaggerFragment, `"operationId": "CaseQueryService_ListCaseEvents",`, `"operationId": "CaseQueryService_ListCaseEvents", "x-foo": 1,`, 1),
		"an unknown RPC":       strings.Replace(swaggerFragment, `CaseQueryService_ListCaseEvents`, `CaseQueryService_Nope`, 1),
		"a parameter key":      strings.Replace(swaggerFragment, `"collectionFormat": "multi"`, `"collectionFormat": "multi", "allowEmptyValue": true`, 1),
	} {
		if _, err := convertFragment(t, fragment); err == nil {
			t.Errorf("%s: converted", name)
		}
	}
}
