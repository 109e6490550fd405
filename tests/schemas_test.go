package tests

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

const schemaBase = "https://casekeeper.example.com/schemas/v1/"

var schemaFiles = []string{"case.schema.json", "webhook-full.schema.json", "webhook-thin.schema.json"}

func loadSchema(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "proto", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc.(map[string]any)
}

// strict closes every object schema that lists its properties: the published schemas leave room for fields
// added later, but what the service sends today must hold no field the schemas do not name.
func strict(v any) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["properties"]; ok {
			if _, set := x["additionalProperties"]; !set {
				x["additionalProperties"] = false
			}
		}
		for _, e := range x {
			strict(e)
		}
	case []any:
		for _, e := range x {
			strict(e)
		}
	}
}

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

// validate checks a body against one of the schemas, in strict mode, with formats asserted.
func validate(t *testing.T, schema string, body []byte) {
	t.Helper()
	compileOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		for _, f := range schemaFiles {
			doc := loadSchema(t, f)
			strict(doc)
			if compileErr = c.AddResource(schemaBase+f, doc); compileErr != nil {
				return
			}
		}
		compiled = map[string]*jsonschema.Schema{}
		for _, f := range schemaFiles {
			if compiled[f], compileErr = c.Compile(schemaBase + f); compileErr != nil {
				return
			}
		}
	})
	if compileErr != nil {
		t.Fatalf("compiling the schemas: %v", compileErr)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if err := compiled[schema].Validate(inst); err != nil {
		t.Errorf("body does not match %s: %v\n%s", schema, err, body)
	}
}

// TestSchemasMatchProtos keeps case.schema.json in step with proto/casekeeper/v1/case.proto: every message
// reachable from Case has a $defs entry whose properties are exactly its fields (by proto name, as protojson with
// UseProtoNames writes them), of the JSON type protojson gives them, and every enum lists exactly its values.
func TestSchemasMatchProtos(t *testing.T) {
	defs := loadSchema(t, "case.schema.json")["$defs"].(map[string]any)
	seen := map[string]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		name := string(md.Name())
		if seen[name] {
			return
		}
		seen[name] = true
		def, ok := defs[name].(map[string]any)
		if !ok {
			t.Errorf("case.schema.json has no $defs/%s", name)
			return
		}
		props, _ := def["properties"].(map[string]any)
		var fields []string
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			fields = append(fields, string(fd.Name()))
			p, ok := props[string(fd.Name())].(map[string]any)
			if !ok {
				t.Errorf("$defs/%s has no property %s", name, fd.Name())
				continue
			}
			checkField(t, defs, name, fd, p)
			if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && fd.Message().FullName() != "google.protobuf.Timestamp" {
				walk(fd.Message())
			}
		}
		slices.Sort(fields)
		names := slices.Sorted(maps.Keys(props))
		if !slices.Equal(fields, names) {
			t.Errorf("$defs/%s properties %v, proto fields %v", name, names, fields)
		}
	}
	walk((&casekeeperv1.Case{}).ProtoReflect().Descriptor())

	for _, f := range []string{"webhook-full.schema.json", "webhook-thin.schema.json"} {
		enum := loadSchema(t, f)["$defs"].(map[string]any)["EventType"].(map[string]any)["enum"].([]any)
		var got []string
		for _, e := range enum {
			got = append(got, e.(string))
		}
		if want := append(slices.Clone(webhooks.Types), webhooks.TypeTest); !slices.Equal(got, want) {
			t.Errorf("%s event types %v, want %v", f, got, want)
		}
	}
}

func checkField(t *testing.T, defs map[string]any, msg string, fd protoreflect.FieldDescriptor, p map[string]any) {
	t.Helper()
	where := msg + "." + string(fd.Name())
	if fd.IsMap() {
		if p["type"] != "object" {
			t.Errorf("%s: a map, want type object", where)
		}
		return
	}
	if fd.IsList() {
		if p["type"] != "array" {
			t.Errorf("%s: repeated, want type array", where)
			return
		}
		p = p["items"].(map[string]any)
	}
	want := map[protoreflect.Kind]string{
		protoreflect.StringKind: "string", protoreflect.Int64Kind: "string", protoreflect.Int32Kind: "integer",
		protoreflect.BoolKind: "boolean", protoreflect.EnumKind: "string", protoreflect.MessageKind: "object",
	}[fd.Kind()]
	if ref, ok := p["$ref"].(string); ok {
		def := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		switch fd.Kind() {
		case protoreflect.EnumKind:
			if strings.TrimPrefix(ref, "#/$defs/") != string(fd.Enum().Name()) {
				t.Errorf("%s refers to %s, want %s", where, ref, fd.Enum().Name())
			}
			var vals []string
			for i := range fd.Enum().Values().Len() {
				vals = append(vals, string(fd.Enum().Values().Get(i).Name()))
			}
			var got []string
			for _, v := range def["enum"].([]any) {
				got = append(got, v.(string))
			}
			if !slices.Equal(got, vals) {
				t.Errorf("%s enum %v, want %v", ref, got, vals)
			}
		case protoreflect.MessageKind:
			if strings.TrimPrefix(ref, "#/$defs/") != string(fd.Message().Name()) {
				t.Errorf("%s refers to %s, want %s", where, ref, fd.Message().Name())
			}
		default:
			t.Errorf("%s: a %s field refers to %s", where, fd.Kind(), ref)
		}
		return
	}
	if fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Timestamp" {
		if p["type"] != "string" || p["format"] != "date-time" {
			t.Errorf("%s: a Timestamp, want a date-time string", where)
		}
		return
	}
	if p["type"] != want {
		t.Errorf("%s: type %v, want %s (protojson of %s)", where, p["type"], want, fd.Kind())
	}
}

var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)```")

// TestGuideSamplesMatchSchemas keeps the sample bodies in docs/webhooks.md true: every JSON sample of a webhook
// body there validates against its schema and decodes with pkg/webhooks, and every event type has a full sample.
func TestGuideSamplesMatchSchemas(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	fullTypes := map[string]bool{}
	samples := 0
	for _, m := range jsonBlock.FindAllSubmatch(doc, -1) {
		var body struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(m[1], &body); err != nil {
			t.Errorf("a json block of the guide does not parse: %v\n%s", err, m[1])
			continue
		}
		if !strings.HasPrefix(body.Type, "case.") || body.Data == nil {
			continue // not a webhook body (a jq output, a gateway response)
		}
		samples++
		if _, thin := body.Data["event_id"]; thin {
			validate(t, "webhook-thin.schema.json", m[1])
			if _, err := webhooks.Decode(webhooks.FormatThin, m[1]); err != nil {
				t.Errorf("thin sample: %v", err)
			}
			continue
		}
		validate(t, "webhook-full.schema.json", m[1])
		if _, err := webhooks.Decode(webhooks.FormatFull, m[1]); err != nil {
			t.Errorf("full sample: %v", err)
		}
		fullTypes[body.Type] = true
	}
	for _, ty := range webhooks.Types {
		if !fullTypes[ty] {
			t.Errorf("docs/webhooks.md has no full sample of %s", ty)
		}
	}
	if samples == 0 {
		t.Fatal("no samples found in docs/webhooks.md")
	}
}
