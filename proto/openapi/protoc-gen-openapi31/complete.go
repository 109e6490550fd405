package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// additions.json holds what the protos cannot say, written by hand: the API's description, the bearer scheme,
// the shared headers, parameters, responses and error-detail schemas, the examples, and the SSE route, which
// grpc-gateway does not serve (the gateway's own handler does).
//
//go:embed additions.json
var additionsJSON []byte

// The routes with answers of their own: the feed (its poll interval, the expired cursor) and the case (an example).
const (
	feedPath = "/v1/events"
	casePath = "/v1/cases/{id}"
)

func ref(kind, name string) map[string]any {
	return map[string]any{"$ref": "#/components/" + kind + "/" + name}
}

func complete(doc map[string]any) error {
	var add map[string]any
	if err := json.Unmarshal(additionsJSON, &add); err != nil {
		return fmt.Errorf("additions.json: %w", err)
	}
	// The generated info names a proto file; the API's own title, version and description replace it.
	doc["info"] = add["info"]
	doc["security"] = add["security"]

	paths := object(doc["paths"])
	if err := special(paths); err != nil {
		return err
	}
	for path, item := range paths {
		for method, op := range object(item) {
			routeRules(path, method, object(op))
		}
	}

	components := object(doc["components"])
	for kind, entries := range object(add["components"]) {
		section := object(components[kind])
		for name, v := range object(entries) {
			if _, dup := section[name]; dup {
				return fmt.Errorf("components/%s/%s is both generated and in additions.json", kind, name)
			}
			section[name] = v
		}
		components[kind] = section
	}
	doc["components"] = components
	if err := errorDetails(object(components["schemas"])); err != nil {
		return err
	}
	// A schema cannot refer to a named example: the event's is copied in, so a reader of CaseEvent sees one.
	event := object(object(components["schemas"])["CaseEvent"])
	example, ok := object(object(components["examples"])["CaseStatusChanged"])["value"]
	if len(event) == 0 || !ok {
		return fmt.Errorf("no CaseEvent schema or CaseStatusChanged example")
	}
	event["examples"] = []any{example}
	for path, item := range object(add["paths"]) {
		if _, dup := paths[path]; dup {
			return fmt.Errorf("path %s is both generated and in additions.json", path)
		}
		paths[path] = item
	}
	doc["tags"] = usedTags(doc)
	return nil
}

// routeRules adds to one grpc-gateway route the answers the gateway gives on every such route besides the RPC's
// own: field-level validation (400), authentication (401), roles (403), rate limits (429), a request-body limit
// (413), and conditional GETs (ETag, If-None-Match, 304).
func routeRules(path, method string, op map[string]any) {
	responses := object(op["responses"])
	responses["default"] = ref("responses", "Error")
	responses["400"] = ref("responses", "BadRequest")
	responses["401"] = ref("responses", "Unauthenticated")
	responses["403"] = ref("responses", "PermissionDenied")
	responses["429"] = ref("responses", "TooManyRequests")
	if strings.Contains(path, "{") {
		responses["404"] = ref("responses", "NotFound")
	}
	if _, ok := op["requestBody"]; ok {
		responses["413"] = ref("responses", "PayloadTooLarge")
	}
	if strings.EqualFold(method, http.MethodGet) {
		op["parameters"] = append(array(op["parameters"]), ref("parameters", "If-None-Match"))
		if _, ok := responses["304"]; !ok {
			responses["304"] = ref("responses", "NotModified")
		}
		ok := object(responses["200"])
		headers := object(ok["headers"])
		headers["ETag"] = ref("headers", "ETag")
		ok["headers"] = headers
	}
	op["responses"] = responses
}

// special adds what only some routes do; a route named here that the protos no longer have is an error, so
// that the document never describes a behaviour on a route that is gone.
func special(paths map[string]any) error {
	feed := object(object(paths[feedPath])["get"])
	getCase := object(object(paths[casePath])["get"])
	if len(feed) == 0 || len(getCase) == 0 {
		return fmt.Errorf("the protos have no GET %s or GET %s, which additions describe", feedPath, casePath)
	}
	responses := object(feed["responses"])
	responses["410"] = ref("responses", "CursorExpired")
	ok := object(responses["200"])
	ok["headers"] = map[string]any{"X-Poll-Interval": ref("headers", "X-Poll-Interval")}
	responses["304"] = map[string]any{
		"description": "Not modified: nothing new since the page whose ETag is in If-None-Match. No body.",
		"headers":     map[string]any{"ETag": ref("headers", "ETag"), "X-Poll-Interval": ref("headers", "X-Poll-Interval")},
	}
	examples(ok, "FeedPage", "FeedHead")
	examples(object(object(getCase["responses"])["200"]), "Case")
	return nil
}

// errorDetails lists, in google.rpc.Status, the details the API sends (documented in additions.json) before any
// other Any, so that a client generator and a validator know their fields.
func errorDetails(schemas map[string]any) error {
	st := object(schemas["google.rpc.Status"])
	details := object(object(st["properties"])["details"])
	if len(details) == 0 {
		return fmt.Errorf("google.rpc.Status has no details")
	}
	var kinds []any
	for _, name := range []string{"google.rpc.BadRequest", "google.rpc.ErrorInfo", "google.rpc.RetryInfo", "google.protobuf.Any"} {
		if _, ok := schemas[name]; !ok {
			return fmt.Errorf("no schema %s for the error details", name)
		}
		kinds = append(kinds, ref("schemas", name))
	}
	details["items"] = map[string]any{"anyOf": kinds}
	st["description"] = "The error of every route: a gRPC code (3 INVALID_ARGUMENT, 5 NOT_FOUND, 7 PERMISSION_DENIED, " +
		"8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION, 16 UNAUTHENTICATED, …), a message for people, and typed details."
	return nil
}

// examples attaches named examples of components/examples to a response's JSON content.
func examples(resp map[string]any, names ...string) {
	media := object(object(resp["content"])["application/json"])
	ex := map[string]any{}
	for _, n := range names {
		ex[n] = ref("examples", n)
	}
	media["examples"] = ex
}

// usedTags keeps the tags some operation uses: the protos also describe CaseService, which has no HTTP route.
func usedTags(doc map[string]any) []any {
	used := map[string]bool{}
	for _, item := range object(doc["paths"]) {
		for _, op := range object(item) {
			for _, t := range array(object(op)["tags"]) {
				used[fmt.Sprint(t)] = true
			}
		}
	}
	var tags []any
	for _, t := range array(doc["tags"]) {
		if used[fmt.Sprint(object(t)["name"])] {
			tags = append(tags, t)
			delete(used, fmt.Sprint(object(t)["name"]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		tags = append(tags, map[string]any{"name": name})
	}
	return tags
}
