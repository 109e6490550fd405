package httpapi

import (
	"encoding/json"
	"fmt"

	"github.com/casekeeper/core/proto/openapi"
)

// openAPISpec is the OpenAPI 3.1 document generated from the protos and completed at generation time
// (proto/openapi), with the one thing only the running gateway knows: its public address, as the document's
// server. Without one the document has no servers, which OpenAPI reads as relative to where it was fetched.
func openAPISpec(publicURL string) ([]byte, error) {
	var spec map[string]any
	if err := json.Unmarshal(openapi.Spec, &spec); err != nil {
		return nil, fmt.Errorf("embedded OpenAPI document: %w", err)
	}
	if publicURL != "" {
		spec["servers"] = []any{map[string]any{"url": publicURL}}
	}
	return json.MarshalIndent(spec, "", "  ")
}
