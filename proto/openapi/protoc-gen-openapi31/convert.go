package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ownPackage is dropped from component names: casekeeper.v1.Case is "Case", google.rpc.Status stays "google.rpc.Status".
const ownPackage = "casekeeper.v1."

// durationPattern is protojson's google.protobuf.Duration in a body: seconds with up to nine decimals and an "s"
// ("1.5s", "30s"). It has no JSON Schema format: "duration" is ISO 8601 ("PT30S"), which the API neither reads nor
// writes. In a query, grpc-gateway reads a Duration with Go's time.ParseDuration ("30s", "1m", "500ms"):
// queryDurationPattern.
const (
	durationPattern      = `^-?[0-9]+(\.[0-9]{1,9})?s$`
	queryDurationPattern = `^[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)$`
)

// converter turns protoc-gen-openapiv2's Swagger 2.0 into OpenAPI 3.1. Whatever it does not know how to convert is an
// error, not a silent omission: a new generator option or annotation must be taught here first.
type converter struct {
	files   *protoregistry.Files
	methods map[string]protoreflect.MethodDescriptor // by operationId, Service_Method
}

func convert(sw map[string]any, files *protoregistry.Files) (map[string]any, error) {
	if sw["swagger"] != "2.0" {
		return nil, fmt.Errorf("not a Swagger 2.0 document: %v", sw["swagger"])
	}
	if err := onlyKeys("document", sw, "swagger", "info", "tags", "consumes", "produces", "paths", "definitions"); err != nil {
		return nil, err
	}
	c := &converter{files: files, methods: map[string]protoreflect.MethodDescriptor{}}
	files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				c.methods[string(s.Name())+"_"+string(m.Name())] = m
			}
		}
		return true
	})

	schemas := map[string]any{}
	for name, def := range object(sw["definitions"]) {
		short := componentName(name)
		if _, dup := schemas[short]; dup {
			return nil, fmt.Errorf("two definitions named %s", short)
		}
		s := schema(object(def))
		if msg := c.messageOf(name); msg != nil {
			wellKnownTypes(s, msg)
		}
		schemas[short] = s
	}

	paths := map[string]any{}
	for path, item := range object(sw["paths"]) {
		ops := map[string]any{}
		for method, op := range object(item) {
			o, err := c.operation(object(op), stringList(sw["consumes"]), stringList(sw["produces"]))
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", strings.ToUpper(method), path, err)
			}
			ops[method] = o
		}
		paths[path] = ops
	}

	doc := map[string]any{
		"openapi":    "3.1.0",
		"info":       sw["info"],
		"paths":      paths,
		"components": map[string]any{"schemas": schemas},
	}
	if tags, ok := sw["tags"]; ok {
		doc["tags"] = tags
	}
	return doc, nil
}

// messageOf finds the message a definition describes: a message by its full name, or the request of a method for
// the bodies protoc-gen-openapiv2 synthesises (casekeeper.v1.WebhookService.RotateSecretBody: RotateSecretRequest
// without its path fields).
func (c *converter) messageOf(definition string) protoreflect.MessageDescriptor {
	if d, err := c.files.FindDescriptorByName(protoreflect.FullName(definition)); err == nil {
		if m, ok := d.(protoreflect.MessageDescriptor); ok {
			return m
		}
	}
	if name, ok := strings.CutSuffix(definition, "Body"); ok {
		if d, err := c.files.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
			if m, ok := d.(protoreflect.MethodDescriptor); ok {
				return m.Input()
			}
		}
	}
	return nil
}

func (c *converter) operation(op map[string]any, consumes, produces []string) (map[string]any, error) {
	if err := onlyKeys("operation", op, "summary", "description", "operationId", "tags", "parameters", "responses",
		"deprecated", "consumes", "produces"); err != nil {
		return nil, err
	}
	if v, ok := op["consumes"]; ok {
		consumes = stringList(v)
	}
	if v, ok := op["produces"]; ok {
		produces = stringList(v)
	}
	method := c.methods[fmt.Sprint(op["operationId"])]
	if method == nil {
		return nil, fmt.Errorf("no RPC for operationId %v", op["operationId"])
	}
	out := map[string]any{}
	for _, k := range []string{"summary", "description", "operationId", "tags", "deprecated"} {
		if v, ok := op[k]; ok {
			out[k] = v
		}
	}
	var params []any
	for _, p := range array(op["parameters"]) {
		p := object(p)
		if err := onlyKeys("parameter", p, "name", "in", "description", "required", "type", "format", "items", "enum",
			"default", "collectionFormat", "schema"); err != nil {
			return nil, err
		}
		if p["in"] == "body" {
			s := schema(object(p["schema"]))
			if _, isRef := s["$ref"]; !isRef {
				if body := bodyMessage(method, fmt.Sprint(p["name"])); body != nil {
					wellKnownTypes(s, body)
				}
			}
			rb := map[string]any{"required": p["required"] == true, "content": content(consumes, s)}
			if d, ok := p["description"]; ok {
				rb["description"] = d
			}
			out["requestBody"] = rb
			continue
		}
		params = append(params, c.parameter(p, method.Input()))
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	responses := map[string]any{}
	for code, r := range object(op["responses"]) {
		r := object(r)
		if err := onlyKeys("response", r, "description", "schema", "headers"); err != nil {
			return nil, err
		}
		resp := map[string]any{"description": r["description"]}
		if s, ok := r["schema"]; ok {
			resp["content"] = content(produces, schema(object(s)))
		}
		if hs, ok := r["headers"]; ok {
			headers := map[string]any{}
			for name, h := range object(hs) {
				h := object(h)
				header := map[string]any{"schema": simpleSchema(h)}
				if d, ok := h["description"]; ok {
					header["description"] = d
				}
				headers[name] = header
			}
			resp["headers"] = headers
		}
		responses[code] = resp
	}
	out["responses"] = responses
	return out, nil
}

// parameter converts a path, query or header parameter; its field in the request says whether it is a well-known
// type whose JSON form the Swagger types cannot express.
func (c *converter) parameter(p map[string]any, request protoreflect.MessageDescriptor) map[string]any {
	out := map[string]any{"name": p["name"], "in": p["in"]}
	for _, k := range []string{"description", "required"} {
		if v, ok := p[k]; ok {
			out[k] = v
		}
	}
	s := simpleSchema(p)
	if f := fieldAt(request, fmt.Sprint(p["name"])); f != nil && f.Message() != nil && f.Message().FullName() == "google.protobuf.Duration" {
		s["pattern"] = queryDurationPattern
	}
	out["schema"] = s
	switch p["collectionFormat"] {
	case "multi":
		out["style"], out["explode"] = "form", true
	case "csv":
		out["style"], out["explode"] = "form", false
	}
	return out
}

// simpleSchema is the schema of a Swagger 2.0 parameter or header, whose type keywords sit beside its name.
func simpleSchema(p map[string]any) map[string]any {
	s := map[string]any{}
	for _, k := range []string{"type", "format", "enum", "default", "pattern", "minimum", "maximum"} {
		if v, ok := p[k]; ok {
			s[k] = v
		}
	}
	if items, ok := p["items"]; ok {
		s["items"] = simpleSchema(object(items))
	}
	return s
}

// schema converts a Swagger 2.0 schema to JSON Schema 2020-12: references into components/schemas (with no sibling
// type, which a reference makes redundant), x-nullable as a type array, example as examples.
func schema(in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		switch k {
		case "$ref":
			out[k] = "#/components/schemas/" + componentName(strings.TrimPrefix(fmt.Sprint(v), "#/definitions/"))
		case "properties":
			props := map[string]any{}
			for name, p := range object(v) {
				props[name] = schema(object(p))
			}
			out[k] = props
		case "items", "additionalProperties", "not":
			if m, ok := v.(map[string]any); ok {
				out[k] = schema(m)
			} else {
				out[k] = v
			}
		case "allOf", "anyOf", "oneOf":
			var list []any
			for _, s := range array(v) {
				list = append(list, schema(object(s)))
			}
			out[k] = list
		case "example":
			out["examples"] = []any{v}
		case "x-nullable":
		default:
			out[k] = v
		}
	}
	if _, ok := out["$ref"]; ok {
		delete(out, "type")
	}
	if in["x-nullable"] == true {
		if t, ok := out["type"].(string); ok {
			out["type"] = []any{t, "null"}
		}
	}
	return out
}

// wellKnownTypes adds to a message's schema what Swagger could not say about its well-known-type fields.
func wellKnownTypes(s map[string]any, msg protoreflect.MessageDescriptor) {
	props := object(s["properties"])
	for i := range msg.Fields().Len() {
		f := msg.Fields().Get(i)
		p, ok := props[string(f.Name())].(map[string]any)
		if !ok || f.Message() == nil || f.IsMap() {
			continue
		}
		if f.IsList() {
			p = object(p["items"])
		}
		if f.Message().FullName() == "google.protobuf.Duration" {
			p["pattern"] = durationPattern
		}
	}
}

// bodyMessage is the message a body parameter holds: the request itself for body "*" (name "body"), else the field.
func bodyMessage(m protoreflect.MethodDescriptor, name string) protoreflect.MessageDescriptor {
	if f := m.Input().Fields().ByName(protoreflect.Name(name)); f != nil && f.Message() != nil {
		return f.Message()
	}
	return m.Input()
}

// fieldAt follows a dotted parameter name (endpoint.id) through the request's fields.
func fieldAt(msg protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var f protoreflect.FieldDescriptor
	for part := range strings.SplitSeq(path, ".") {
		if msg == nil {
			return nil
		}
		if f = msg.Fields().ByName(protoreflect.Name(part)); f == nil {
			return nil
		}
		msg = f.Message()
	}
	return f
}

func content(types []string, s map[string]any) map[string]any {
	if len(types) == 0 {
		types = []string{"application/json"}
	}
	c := map[string]any{}
	for _, t := range types {
		c[t] = map[string]any{"schema": s}
	}
	return c
}

func componentName(definition string) string { return strings.TrimPrefix(definition, ownPackage) }

func onlyKeys(what string, m map[string]any, known ...string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			return fmt.Errorf("%s has %q, which the conversion does not know", what, k)
		}
	}
	return nil
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

func array(v any) []any {
	a, _ := v.([]any)
	return a
}

func stringList(v any) []string {
	var out []string
	for _, s := range array(v) {
		out = append(out, fmt.Sprint(s))
	}
	return out
}
