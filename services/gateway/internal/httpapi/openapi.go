package httpapi

import (
	"encoding/json"
	"fmt"

	"github.com/casekeeper/core/proto/openapi"
)

// openAPISpec is the description generated from the protos (proto/openapi), completed with what protoc-gen-openapiv2
// cannot know: the bearer scheme, the server's public address and the SSE route, which is not an RPC annotation.
// The generated part stays the source of truth for every JSON route.
func openAPISpec(publicURL string) ([]byte, error) {
	var spec map[string]any
	if err := json.Unmarshal(openapi.Spec, &spec); err != nil {
		return nil, fmt.Errorf("embedded OpenAPI document: %w", err)
	}
	info, _ := spec["info"].(map[string]any)
	if info == nil {
		info = map[string]any{}
	}
	info["title"] = "Case-keeper API"
	info["version"] = "v1"
	spec["info"] = info
	if publicURL != "" {
		var scheme, host string
		if n, _ := fmt.Sscanf(publicURL, "%[^:]://%s", &scheme, &host); n == 2 {
			spec["schemes"] = []string{scheme}
			spec["host"] = host
		}
	}
	spec["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{"type": "apiKey", "name": "Authorization", "in": "header",
			"description": "A Keycloak access token of the casekeeper realm: `Bearer <token>`."},
	}
	spec["security"] = []any{map[string]any{"bearer": []any{}}}
	paths, _ := spec["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
	}
	paths["/v1/events:stream"] = map[string]any{"get": map[string]any{
		"summary": "The change feed as Server-Sent Events, resumable with Last-Event-ID.",
		"description": "Streams the tenant's events after `after` (or the Last-Event-ID header), then new ones as they " +
			"happen. Each event is `id: <cursor>`, `event: <type>`, `data: <CaseEvent JSON>`. Needs cases:read. " +
			"When the access token expires the stream sends a final `event: error` (an UNAUTHENTICATED status) and " +
			"closes: reconnect with a fresh token and the last cursor. A client holds at most " +
			"GATEWAY_MAX_STREAMS_PER_CLIENT streams (default 8) per gateway replica; one more is a 429.",
		"operationId": "CaseQueryService_StreamCaseEvents",
		"tags":        []string{"CaseQueryService"},
		"produces":    []string{"text/event-stream"},
		"parameters": []any{
			map[string]any{"name": "after", "in": "query", "type": "string", "required": false},
			map[string]any{"name": "types", "in": "query", "type": "array", "items": map[string]any{"type": "string"}, "collectionFormat": "multi", "required": false},
			map[string]any{"name": "Last-Event-ID", "in": "header", "type": "string", "required": false},
		},
		"responses": map[string]any{
			"200":     map[string]any{"description": "An event stream.", "schema": map[string]any{"type": "string"}},
			"429":     map[string]any{"description": "Too many open streams for this client.", "schema": map[string]any{"$ref": "#/definitions/rpcStatus"}},
			"default": map[string]any{"description": "An error.", "schema": map[string]any{"$ref": "#/definitions/rpcStatus"}},
		},
	}}
	spec["paths"] = paths
	return json.MarshalIndent(spec, "", "  ")
}
