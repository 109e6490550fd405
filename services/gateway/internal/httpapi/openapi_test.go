package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	validationerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"google.golang.org/genproto/googleapis/api/annotations"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/logging"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/feed"
	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
	"github.com/casekeeper/core/services/gateway/internal/notify"
	"github.com/casekeeper/core/services/gateway/internal/ratelimit"
)

const testPublicURL = "https://casekeeper.example.com"

// servedSpec is the document as GET /openapi.json serves it, parsed by libopenapi.
func servedSpec(t *testing.T) ([]byte, map[string]any, libopenapi.Document) {
	t.Helper()
	raw, err := openAPISpec(testPublicURL)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	return raw, m, doc
}

func specValidator(t *testing.T, doc libopenapi.Document) validator.Validator {
	t.Helper()
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("building the validator: %v", errs)
	}
	return v
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	_, m, doc := servedSpec(t)
	if m["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", m["openapi"])
	}
	if got := doc.GetSpecInfo().VersionNumeric; got != 3.1 {
		t.Fatalf("libopenapi reads version %v", got)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("building the model (unresolved references?): %v", err)
	}
	if s := model.Model.Servers; len(s) != 1 || s[0].URL != testPublicURL {
		t.Fatalf("servers = %v, want the public URL", s)
	}
	if ok, errs := specValidator(t, doc).ValidateDocument(); !ok {
		t.Errorf("not a valid OpenAPI 3.1 document:\n%s", describe(errs))
	}
	bearer := model.Model.Components.SecuritySchemes.GetOrZero("bearer")
	if bearer == nil || bearer.Type != "http" || bearer.Scheme != "bearer" || bearer.BearerFormat != "JWT" {
		t.Fatalf("bearer scheme = %+v", bearer)
	}

	// Without a public URL there is no servers entry (relative to where the document was fetched).
	raw, err := openAPISpec("")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(`"servers"`)) {
		t.Fatal("servers without a public URL")
	}
}

// Every google.api.http annotation of the protos is an operation of the document, under its operationId, and so
// is the SSE route, which no annotation describes.
func TestOpenAPIHasEveryHTTPRoute(t *testing.T) {
	_, m, _ := servedSpec(t)
	operation := func(path, method string) map[string]any { return at(m, "paths", path, method) }
	routes := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("casekeeper.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			for j := range s.Methods().Len() {
				md := s.Methods().Get(j)
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					method, path := httpRoute(r)
					routes++
					op := operation(path, method)
					if op == nil {
						t.Errorf("%s %s (%s) is not in the document", strings.ToUpper(method), path, md.FullName())
						continue
					}
					if want := string(s.Name()) + "_" + string(md.Name()); op["operationId"] != want {
						t.Errorf("%s %s: operationId %v, want %s", method, path, op["operationId"], want)
					}
				}
			}
		}
		return true
	})
	if routes < 17 {
		t.Fatalf("found %d annotated routes in the protos; are they registered?", routes)
	}
	content := at(m, "paths", "/v1/events:stream", "get", "responses", "200", "content")
	if _, ok := content["text/event-stream"]; !ok {
		t.Fatalf("the SSE route answers %v, want text/event-stream", content)
	}
}

func httpRoute(r *annotations.HttpRule) (method, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "get", p.Get
	case *annotations.HttpRule_Post:
		return "post", p.Post
	case *annotations.HttpRule_Put:
		return "put", p.Put
	case *annotations.HttpRule_Patch:
		return "patch", p.Patch
	case *annotations.HttpRule_Delete:
		return "delete", p.Delete
	case *annotations.HttpRule_Custom:
		return strings.ToLower(p.Custom.GetKind()), p.Custom.GetPath()
	}
	return "", ""
}

// exampleMessages says which message and schema each JSON example is. An example must read as that message with no
// unknown field and come back from protojson unchanged, so it has the shape the API really sends; and it must
// pass its schema, so the document agrees with itself.
var exampleMessages = map[string]struct {
	schema string
	msg    func() proto.Message
}{
	"CaseStatusChanged": {"CaseEvent", func() proto.Message { return &casekeeperv1.CaseEvent{} }},
	"FeedPage":          {"ListCaseEventsResponse", func() proto.Message { return &casekeeperv1.ListCaseEventsResponse{} }},
	"FeedHead":          {"ListCaseEventsResponse", func() proto.Message { return &casekeeperv1.ListCaseEventsResponse{} }},
	"Case":              {"GetCaseResponse", func() proto.Message { return &casekeeperv1.GetCaseResponse{} }},
	"CursorExpired":     {"google.rpc.Status", func() proto.Message { return &spb.Status{} }},
	"InvalidArgument":   {"google.rpc.Status", func() proto.Message { return &spb.Status{} }},
	"Unauthenticated":   {"google.rpc.Status", func() proto.Message { return &spb.Status{} }},
	"NotFound":          {"google.rpc.Status", func() proto.Message { return &spb.Status{} }},
	"RateLimited":       {"google.rpc.Status", func() proto.Message { return &spb.Status{} }},
}

func TestOpenAPIExamplesAreRealMessages(t *testing.T) {
	_, m, doc := servedSpec(t)
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	sv := schema_validation.NewSchemaValidator(config.WithFormatAssertions())
	for name, e := range at(m, "components", "examples") {
		value := at(e)["value"]
		if name == "EventStream" {
			checkEventStream(t, value.(string))
			continue
		}
		want, ok := exampleMessages[name]
		if !ok {
			t.Errorf("example %s: no message to check it against (add it to exampleMessages)", name)
			continue
		}
		in, _ := json.Marshal(value)
		msg := want.msg()
		if err := protojson.Unmarshal(in, msg); err != nil {
			t.Errorf("example %s is not a %s: %v", name, msg.ProtoReflect().Descriptor().FullName(), err)
			continue
		}
		if out, _ := eventMarshaler.Marshal(msg); !sameJSON(in, out) {
			t.Errorf("example %s is not what the API would send:\n got %s\nsent %s", name, in, out)
		}
		proxy := model.Model.Components.Schemas.GetOrZero(want.schema)
		if proxy == nil {
			t.Fatalf("no schema %s", want.schema)
		}
		if ok, errs := sv.ValidateSchemaBytes(proxy.Schema(), in); !ok {
			t.Errorf("example %s does not pass %s:\n%s", name, want.schema, describe(errs))
		}
		if u := undeclared(m, ref("schemas", want.schema), value, "$"); len(u) > 0 {
			t.Errorf("example %s has properties %s does not declare: %v", name, want.schema, u)
		}
	}
	if ex := at(m, "components", "schemas", "CaseEvent")["examples"]; ex == nil {
		t.Error("the CaseEvent schema has no example")
	}
}

// checkEventStream reads the SSE example as a client would: events are CaseEvents whose id is their cursor,
// bookmarks are Bookmarks whose id is theirs.
func checkEventStream(t *testing.T, stream string) {
	t.Helper()
	kinds := map[string]bool{}
	for frame := range strings.SplitSeq(strings.TrimSpace(stream), "\n\n") {
		fields := map[string]string{}
		for line := range strings.SplitSeq(frame, "\n") {
			k, v, _ := strings.Cut(line, ": ")
			fields[k] = v
		}
		switch ev := fields["event"]; {
		case ev == "bookmark":
			b := &casekeeperv1.Bookmark{}
			if err := protojson.Unmarshal([]byte(fields["data"]), b); err != nil || b.GetCursor() != fields["id"] {
				t.Errorf("bookmark %q: %v", frame, err)
			}
		case strings.HasPrefix(ev, "case."):
			e := &casekeeperv1.CaseEvent{}
			if err := protojson.Unmarshal([]byte(fields["data"]), e); err != nil || e.GetCursor() != fields["id"] || e.GetType() != ev {
				t.Errorf("event %q: %v", frame, err)
			}
		}
		kinds[fields["event"]] = true
	}
	if !kinds["bookmark"] || !kinds["case.status_changed"] {
		t.Errorf("the stream example shows %v, want an event and a bookmark", kinds)
	}
}

// at walks a decoded JSON document by keys; a missing key is an empty object.
func at(v any, keys ...string) map[string]any {
	m, _ := v.(map[string]any)
	for _, k := range keys {
		m, _ = m[k].(map[string]any)
	}
	return m
}

func ref(kind, name string) map[string]any {
	return map[string]any{"$ref": "#/components/" + kind + "/" + name}
}

// resolve follows a schema's (or response's) $ref within the document.
func resolve(doc, s map[string]any) map[string]any {
	for {
		r, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		keys := strings.Split(strings.TrimPrefix(r, "#/"), "/")
		s = at(doc, keys...)
	}
}

// undeclared lists the properties of a JSON value that its schema does not declare. The schemas stay open (a
// server may add fields, as protobuf allows), so a validator passes them; this check is what fails when a field
// name is not the proto name the document says, or a field is missing from the document.
func undeclared(doc, s map[string]any, v any, path string) []string {
	s = resolve(doc, s)
	if branches, ok := s["anyOf"].([]any); ok {
		var first []string
		for i, b := range branches {
			u := undeclared(doc, at(b), v, path)
			if len(u) == 0 {
				return nil
			}
			if i == 0 {
				first = u
			}
		}
		return first
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		props := at(s, "properties")
		for k, val := range v {
			if p, ok := props[k]; ok {
				out = append(out, undeclared(doc, at(p), val, path+"."+k)...)
			} else if a, ok := s["additionalProperties"].(map[string]any); ok {
				out = append(out, undeclared(doc, a, val, path+"."+k)...)
			} else if s["additionalProperties"] != true {
				out = append(out, path+"."+k)
			}
		}
	case []any:
		for i, item := range v {
			out = append(out, undeclared(doc, at(s, "items"), item, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func describe(errs []*validationerrors.ValidationError) string {
	var parts []string
	for _, e := range errs {
		parts = append(parts, e.Message+": "+e.Reason)
		for _, se := range e.SchemaValidationErrors {
			parts = append(parts, "  "+se.Reason+" at "+se.FieldPath+" ("+se.KeywordLocation+")")
		}
	}
	return strings.Join(parts, "\n")
}

// The gateway's real answers — feed pages, an empty poll, a 304, a case, a list, the errors — over the real
// grpc-gateway mux, query server and authentication, each pass the served document's validation, request and
// response.
func TestOpenAPIDescribesTheRealAnswers(t *testing.T) {
	_, spec, doc := servedSpec(t)
	v := specValidator(t, doc)
	h := realAPI(t)

	type call struct {
		name, template, path, token string
		header                      http.Header
		want                        int
	}
	var next, etag string
	// Handed out long before the retention, at a position before the oldest stored event.
	expired := feed.Cursor{Seq: 100, Issued: time.Now().Add(-1000 * time.Hour)}.String()
	calls := []call{
		{name: "feed page", template: "/v1/events", path: "/v1/events?page_size=10&types=case.status_changed&types=case.created", token: "reader", want: 200},
		{name: "from the oldest", template: "/v1/events", path: "/v1/events?after=", token: "reader", want: 200},
		{name: "bad cursor", template: "/v1/events", path: "/v1/events?after=nope", token: "reader", want: 400},
		{name: "bad wait", template: "/v1/events", path: "/v1/events?wait=2h", token: "reader", want: 400},
		{name: "from the head", template: "/v1/events", path: "/v1/events?after=latest", token: "reader", want: 200},
		{name: "expired cursor", template: "/v1/events", path: "/v1/events?after=" + expired, token: "reader", want: 410},
		{name: "stream from an expired cursor", template: "/v1/events:stream", path: "/v1/events:stream?after=" + expired, token: "reader", want: 410},
		{name: "case", template: "/v1/cases/{id}", path: "/v1/cases/" + exampleCaseID, token: "reader", want: 200},
		{name: "no such case", template: "/v1/cases/{id}", path: "/v1/cases/01938f2e-0000-7000-8000-000000000000", token: "reader", want: 404},
		{name: "cases", template: "/v1/cases", path: "/v1/cases?page_size=5", token: "reader", want: 200},
		{name: "no token", template: "/v1/cases/{id}", path: "/v1/cases/" + exampleCaseID, want: 401},
		{name: "audit without the role", template: "/v1/audit", path: "/v1/audit", token: "reader", want: 403},
		{name: "stream without a token", template: "/v1/events:stream", path: "/v1/events:stream", want: 401},
	}
	do := func(c call) *http.Response {
		req := httptest.NewRequest(http.MethodGet, testPublicURL+c.path, nil)
		for k, vs := range c.header {
			req.Header[k] = vs
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		res.Request = req
		body, _ := io.ReadAll(res.Body)
		res.Body = io.NopCloser(bytes.NewReader(body))
		if res.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, res.StatusCode, body, c.want)
		}
		validate := v.ValidateHttpRequestResponse
		if c.token == "" {
			validate = v.ValidateHttpResponse // the request itself lacks the security the document asks for
		}
		if ok, errs := validate(req, res); !ok {
			t.Errorf("%s: GET %s → %d %s\n%s", c.name, c.path, res.StatusCode, body, describe(errs))
		}
		if len(body) > 0 {
			var value any
			if err := json.Unmarshal(body, &value); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			resp := resolve(spec, at(spec, "paths", c.template, "get", "responses", fmt.Sprint(res.StatusCode)))
			if u := undeclared(spec, at(resp, "content", "application/json", "schema"), value, "$"); len(u) > 0 {
				t.Errorf("%s: the answer has properties the document does not declare: %v", c.name, u)
			}
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		return res
	}
	for _, c := range calls {
		res := do(c)
		if c.name == "feed page" {
			var page struct {
				NextCursor string `json:"next_cursor"`
			}
			_ = json.NewDecoder(res.Body).Decode(&page)
			next, etag = page.NextCursor, res.Header.Get("ETag")
		}
	}
	if next == "" || etag == "" {
		t.Fatalf("the feed page has no next_cursor (%q) or ETag (%q)", next, etag)
	}
	caught := do(call{name: "caught up", template: "/v1/events", path: "/v1/events?after=" + next, token: "reader", want: 200})
	do(call{name: "not modified", template: "/v1/events", path: "/v1/events?after=" + next, token: "reader", want: 304,
		header: http.Header{"If-None-Match": {caught.Header.Get("ETag")}}})
}

const exampleCaseID = "01938f2e-7c41-7b2a-9d4e-3f6a0c8b51d2"

// realAPI is the HTTP API over the real query server and authentication interceptors, in process, with a feed of
// three events and a case service that knows one case.
func realAPI(t *testing.T) http.Handler {
	t.Helper()
	v := &tokens{m: map[string]auth.Principal{
		"reader": {Subject: "s", ClientID: "acme-backend", Tenant: "acme", Roles: []string{auth.RoleCasesRead}, ExpiresAt: time.Now().Add(time.Hour)},
	}}
	policy := auth.Policy{Roles: grpcapi.Roles}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.UnaryInterceptor(auth.UnaryServerInterceptor(v, policy)),
		grpc.StreamInterceptor(auth.StreamServerInterceptor(v, policy)))
	casekeeperv1.RegisterCaseQueryServiceServer(srv, &grpcapi.Server{Cases: &oneCase{c: testCase()}, Feed: newTestFeed(),
		Notifier: notify.NewHub(), Audit: noAudit{}, Log: logging.Discard(), Recheck: time.Hour})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///self", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	a, err := New(t.Context(), Options{Self: conn, Verifier: v, FailedAuth: ratelimit.New(100, 100), MaxBodyBytes: 1 << 20, RequestTimeout: 10 * time.Second,
		PublicURL: testPublicURL})
	if err != nil {
		t.Fatal(err)
	}
	return a.Mux
}

func testCase() *casekeeperv1.Case {
	at := timestamppb.New(time.Date(2026, 11, 30, 9, 41, 7, 318e6, time.UTC))
	return &casekeeperv1.Case{
		Id: exampleCaseID, Tenant: "acme", ExternalRef: "customer-20931", Level: casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_ENHANCED,
		Status: casekeeperv1.CaseStatus_CASE_STATUS_IN_REVIEW,
		Applicant: &casekeeperv1.Applicant{FullName: "Lena Hoffmann", DateOfBirth: "1991-04-17", Nationality: "DE",
			Address: &casekeeperv1.Address{Line1: "Karl-Liebknecht-Str. 12", City: "Leipzig", PostalCode: "04107", Country: "DE"}},
		Documents: []*casekeeperv1.Document{{Id: "01938f2e-7c42-7d10-8a3b-52e1f09c6a77", Type: casekeeperv1.DocumentType_DOCUMENT_TYPE_PASSPORT,
			IssuingCountry: "DE", MaskedNumber: "*****4821", Decision: casekeeperv1.DocumentDecision_DOCUMENT_DECISION_ACCEPTED, AddedAt: at}},
		Checks: []*casekeeperv1.Check{{Id: "01938f31-5b9e-7f02-a6d8-1c4b7e93d015", Type: casekeeperv1.CheckType_CHECK_TYPE_AML_SCREENING,
			Result: casekeeperv1.CheckResult_CHECK_RESULT_CONSIDER, Provider: "amlscreen", CompletedAt: at}},
		Risk:     &casekeeperv1.Risk{Level: casekeeperv1.RiskLevel_RISK_LEVEL_MEDIUM, Score: 48, Reasons: []string{"possible name match"}},
		Review:   &casekeeperv1.Review{Answer: casekeeperv1.ReviewAnswer_REVIEW_ANSWER_REJECTED, RejectType: casekeeperv1.RejectType_REJECT_TYPE_RETRY, ReviewedAt: at},
		Metadata: map[string]string{"channel": "mobile-app"}, Labels: []string{"onboarding"}, Assignee: "reviewer.jonas",
		CreatedAt: at, UpdatedAt: at, SubmittedAt: at, Version: 6,
	}
}

type oneCase struct {
	casekeeperv1.CaseServiceClient
	c *casekeeperv1.Case
}

func (o *oneCase) GetCase(_ context.Context, in *casekeeperv1.GetCaseRequest, _ ...grpc.CallOption) (*casekeeperv1.GetCaseResponse, error) {
	if in.GetId() != o.c.GetId() {
		return nil, status.Error(codes.NotFound, "case not found")
	}
	return &casekeeperv1.GetCaseResponse{Case: o.c}, nil
}

func (o *oneCase) ListCases(context.Context, *casekeeperv1.ListCasesRequest, ...grpc.CallOption) (*casekeeperv1.ListCasesResponse, error) {
	return &casekeeperv1.ListCasesResponse{Cases: []*casekeeperv1.Case{o.c}, NextPageToken: "eyJvIjo1fQ"}, nil
}

// testFeed holds three events of the tenant acme.
type testFeed struct{ entries []feed.Entry }

func newTestFeed() *testFeed {
	f := &testFeed{}
	for i, typ := range []string{"case.created", "case.updated", "case.status_changed"} {
		seq := int64(48211 + i)
		c := proto.Clone(testCase()).(*casekeeperv1.Case)
		c.Version = int64(i + 4)
		e := feed.Entry{Seq: seq, StoredAt: time.Now(), Event: &casekeeperv1.CaseEvent{
			Id: fmt.Sprintf("01938f4a-2e07-7c83-95ab-6d1f40e8c2b%d", i), Type: typ, Tenant: "acme", CaseId: c.GetId(),
			CaseVersion: c.GetVersion(), OccurredAt: c.GetUpdatedAt(), Data: c}}
		e.Event.Cursor = e.Cursor().String()
		f.entries = append(f.entries, e)
	}
	return f
}

func (f *testFeed) Head(context.Context, string) (int64, error) {
	return f.entries[len(f.entries)-1].Seq, nil
}

func (f *testFeed) Oldest(context.Context, string) (int64, bool, error) {
	return f.entries[0].Seq, true, nil
}

func (f *testFeed) After(_ context.Context, q feed.Query) ([]feed.Entry, error) {
	var out []feed.Entry
	for _, e := range f.entries {
		if e.Seq > q.After && (len(q.Types) == 0 || slices.Contains(q.Types, e.Event.GetType())) && len(out) < q.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}
