package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// lifecycle takes one case through a change of every kind, through the real case service, and returns the event
// types in order (one event per change) and the case's final version.
func lifecycle(t *testing.T, s *stack, externalRef string) (types []string, version int64) {
	t.Helper()
	must := func(what string, c *casekeeperv1.Case, err error) *casekeeperv1.Case {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
	ctx := s.provider
	created, err := s.cases.CreateCase(ctx, &casekeeperv1.CreateCaseRequest{
		RequestId: "req-" + externalRef, ExternalRef: externalRef, Level: casekeeperv1.VerificationLevel_VERIFICATION_LEVEL_ENHANCED,
		Applicant: &casekeeperv1.Applicant{FullName: "Jane Example", DateOfBirth: "1990-04-01", Nationality: "DE",
			Email: "jane@example.com", Phone: "+4915112345678",
			Address: &casekeeperv1.Address{Line1: "Hauptstr. 1", City: "Berlin", PostalCode: "10115", Country: "DE"}},
		Labels: []string{"onboarding"}, Metadata: map[string]string{"crm_id": "42"},
	})
	c := must("CreateCase", created.GetCase(), err)
	id := c.GetId()
	u, err := s.cases.UpdateCase(ctx, &casekeeperv1.UpdateCaseRequest{Id: id, Assignee: "analyst-7",
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"assignee"}}})
	must("UpdateCase", u.GetCase(), err)
	d, err := s.cases.AddDocument(ctx, &casekeeperv1.AddDocumentRequest{Id: id, Document: &casekeeperv1.Document{
		Type: casekeeperv1.DocumentType_DOCUMENT_TYPE_PASSPORT, IssuingCountry: "DE", MaskedNumber: "*****1234",
		Decision: casekeeperv1.DocumentDecision_DOCUMENT_DECISION_PENDING}})
	must("AddDocument", d.GetCase(), err)
	ch, err := s.cases.RecordCheck(ctx, &casekeeperv1.RecordCheckRequest{Id: id, Check: &casekeeperv1.Check{
		Type: casekeeperv1.CheckType_CHECK_TYPE_AML_SCREENING, Result: casekeeperv1.CheckResult_CHECK_RESULT_CLEAR,
		Provider: "screening-co", Reference: "scr-991"}})
	must("RecordCheck", ch.GetCase(), err)
	r, err := s.cases.SetRisk(ctx, &casekeeperv1.SetRiskRequest{Id: id, Risk: &casekeeperv1.Risk{
		Level: casekeeperv1.RiskLevel_RISK_LEVEL_LOW, Score: 12, Reasons: []string{"domestic"}}})
	must("SetRisk", r.GetCase(), err)
	sub, err := s.cases.Submit(ctx, &casekeeperv1.SubmitRequest{Id: id})
	must("Submit", sub.GetCase(), err)
	sr, err := s.cases.StartReview(ctx, &casekeeperv1.StartReviewRequest{Id: id, Reviewer: "analyst-7"})
	must("StartReview", sr.GetCase(), err)
	cr, err := s.cases.CompleteReview(ctx, &casekeeperv1.CompleteReviewRequest{Id: id,
		Answer: casekeeperv1.ReviewAnswer_REVIEW_ANSWER_APPROVED, Reviewer: "analyst-7", Comment: "all clear"})
	must("CompleteReview", cr.GetCase(), err)
	rd, err := s.cases.Redact(ctx, &casekeeperv1.RedactRequest{Id: id, Reason: "retention period over"})
	c = must("Redact", rd.GetCase(), err)
	return []string{webhooks.TypeCreated, webhooks.TypeUpdated, webhooks.TypeDocumentAdded, webhooks.TypeCheckRecorded,
		webhooks.TypeRiskSet, webhooks.TypeStatusChanged, webhooks.TypeStatusChanged, webhooks.TypeReviewCompleted,
		webhooks.TypeRedacted}, c.GetVersion()
}

// TestExampleReceiversVerifyRealWebhooks runs the Go, Node.js and Python example receivers, each once for a full
// and once for a thin endpoint, against webhooks signed and sent by the real webhook service for a case driven
// through the real case service, with a secret rotation half-way. Each receiver must verify every delivery (with
// the secret it started with, which keeps working for 24 hours after the rotation) and refuse tampered, replayed,
// foreign-secret and unsigned requests. The raw bodies must match the JSON Schemas in proto/schemas and decode
// with pkg/webhooks.
func TestExampleReceiversVerifyRealWebhooks(t *testing.T) {
	testinfra.KeycloakURL(t)
	commands := map[string][]string{"go": goReceiver(t), "node": nodeReceiver(t), "python": pythonReceiver(t)}
	s := startStack(t)
	dir := t.TempDir()

	var receivers []*receiver
	for _, lang := range []string{"go", "node", "python"} {
		for _, format := range []casekeeperv1.PayloadFormat{casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL, casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN} {
			r := &receiver{name: lang + "/" + formatName(format), port: testinfra.FreePort(t), format: format, command: commands[lang]}
			r.url = fmt.Sprintf("http://127.0.0.1:%d/webhooks", r.port)
			r.events = filepath.Join(dir, lang+"-"+formatName(format)+".jsonl")
			r.endpnt, r.secret = s.createEndpoint(t, r.url, "example receiver "+r.name, format, "")
			r.start(t, filepath.Dir(commands[lang][len(commands[lang])-1]))
			receivers = append(receivers, r)
		}
		// And an Ed25519 endpoint: the receiver verifies v1a signatures with the whpk_ public key.
		r := &receiver{name: lang + "/full-ed25519", port: testinfra.FreePort(t), format: casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL,
			command: commands[lang]}
		r.url = fmt.Sprintf("http://127.0.0.1:%d/webhooks", r.port)
		r.events = filepath.Join(dir, lang+"-full-ed25519.jsonl")
		resp, err := s.webhooks.CreateEndpoint(s.admin, &casekeeperv1.CreateEndpointRequest{Endpoint: &casekeeperv1.Endpoint{
			Url: r.url, Description: "example receiver " + r.name, PayloadFormat: r.format,
			SignatureScheme: casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519}})
		if err != nil || !strings.HasPrefix(resp.GetSecret(), webhooks.PublicKeyPrefix) {
			t.Fatalf("CreateEndpoint (Ed25519): %v %v", resp, err)
		}
		r.endpnt, r.secret = resp.GetEndpoint(), resp.GetSecret()
		if r.signingKey, _, err = webhooks.NewSigningKey(); err != nil {
			t.Fatal(err)
		}
		r.start(t, filepath.Dir(commands[lang][len(commands[lang])-1]))
		receivers = append(receivers, r)
	}
	// Endpoints inside the test keep the raw requests of each format.
	caps := map[string]*capEndpoint{}
	for name, f := range map[string]casekeeperv1.PayloadFormat{"full": casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL,
		"thin": casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN, "jq": casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ} {
		c := testinfra.NewRecorder(t, func(int, *http.Request) int { return http.StatusNoContent })
		jq := ""
		wf := map[string]webhooks.Format{"full": webhooks.FormatFull, "thin": webhooks.FormatThin, "jq": webhooks.FormatRaw}[name]
		if name == "jq" {
			jq = `{event: .type, case_id: .data.id, status: .data.status, version: (.data.version | tonumber)}`
		}
		ep, secret := s.createEndpoint(t, c.URL, "capture "+name, f, jq)
		caps[name] = &capEndpoint{cap: c, ep: ep, secret: secret, format: wf}
	}

	// Two cases, the second after every endpoint's secret was rotated: the service then signs with the new and
	// the previous secret, and the receivers still hold only the previous one.
	wantTypes, version1 := lifecycle(t, s, "cust-1")
	oldSecrets := map[string]string{}
	for _, c := range caps {
		oldSecrets[c.ep.GetId()] = c.secret
	}
	newSecrets := map[string]string{}
	for _, id := range append(endpointIDs(receivers), capIDs(caps)...) {
		rot, err := s.webhooks.RotateSecret(s.admin, &casekeeperv1.RotateSecretRequest{Id: id})
		if err != nil {
			t.Fatalf("RotateSecret: %v", err)
		}
		newSecrets[id] = rot.GetSecret().GetSecret()
	}
	types2, version2 := lifecycle(t, s, "cust-2")
	wantTypes = append(wantTypes, types2...)
	slices.Sort(wantTypes)

	// Every delivery of every endpoint succeeds: each receiver answered 2xx to each.
	for _, r := range receivers {
		s.waitAllSucceeded(t, r.endpnt.GetId(), r.name, len(wantTypes))
	}
	for name, c := range caps {
		s.waitAllSucceeded(t, c.ep.GetId(), "capture "+name, len(wantTypes))
	}

	for _, r := range receivers {
		t.Run("receiver "+r.name, func(t *testing.T) {
			var wantIDs []string
			for _, d := range s.deliveries(t, r.endpnt.GetId()) {
				if d.GetAttemptCount() > 1 {
					// A slow machine may time an attempt out; a refusal, though, means the receiver rejected a
					// genuine webhook.
					full, err := s.webhooks.GetDelivery(s.admin, &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
					if err != nil {
						t.Fatal(err)
					}
					for _, a := range full.GetDelivery().GetAttempts() {
						if a.GetStatusCode() >= 400 {
							t.Errorf("delivery %s (%s): attempt %d answered %d %q", d.GetId(), d.GetEventType(), a.GetNumber(), a.GetStatusCode(), a.GetResponseExcerpt())
						}
					}
				}
				wantIDs = append(wantIDs, d.GetId())
			}
			lines := r.lines(t)
			var gotIDs, gotTypes []string
			latest := map[string]int64{}
			for _, l := range lines {
				gotIDs, gotTypes = append(gotIDs, l.WebhookID), append(gotTypes, l.Type)
				if l.Applied {
					latest[l.CaseID] = max(latest[l.CaseID], l.CaseVersion)
				}
			}
			slices.Sort(wantIDs)
			slices.Sort(gotIDs)
			slices.Sort(gotTypes)
			if !slices.Equal(gotIDs, wantIDs) {
				t.Errorf("recorded webhook-ids %v, want the delivery ids %v", gotIDs, wantIDs)
			}
			if !slices.Equal(gotTypes, wantTypes) {
				t.Errorf("recorded types %v, want %v", gotTypes, wantTypes)
			}
			if got := slices.Sorted(maps.Values(latest)); !slices.Equal(got, slices.Sorted(slices.Values([]int64{version1, version2}))) {
				t.Errorf("latest applied versions %v, want %d and %d", got, version1, version2)
			}
			refusesForgeries(t, r, caps[formatName(r.format)].cap.Requests()[0].Body, len(lines))
		})
	}

	for name, c := range caps {
		t.Run("bodies "+name, func(t *testing.T) {
			got := c.cap.Requests()
			if len(got) != len(wantTypes) {
				t.Fatalf("%d requests, want %d", len(got), len(wantTypes))
			}
			oldV, err := webhooks.NewVerifier([]string{oldSecrets[c.ep.GetId()]})
			if err != nil {
				t.Fatal(err)
			}
			newV, err := webhooks.NewVerifier([]string{newSecrets[c.ep.GetId()]})
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			full := 0
			for _, req := range got {
				if ct := req.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if err := oldV.Verify(req.Header, req.Body); err != nil {
					t.Errorf("pkg/webhooks refused a real request with the first secret: %v", err)
				}
				rotated := len(strings.Fields(req.Header.Get(webhooks.HeaderSignature))) == 2
				if err := newV.Verify(req.Header, req.Body); rotated && err != nil {
					t.Errorf("pkg/webhooks refused a request signed after the rotation with the new secret: %v", err)
				}
				if c.format != webhooks.FormatThin {
					// Both cases are redacted at the end of their lifecycle: an event whose first attempt was still
					// queued then goes out in the thin form whatever the endpoint's format (docs/webhooks.md), never
					// with the case. The tombstone itself is sent as the endpoint's format asks.
					if thin, err := webhooks.Decode(webhooks.FormatThin, req.Body); err == nil {
						validate(t, "webhook-thin.schema.json", req.Body)
						if thin.Type == webhooks.TypeRedacted || bytes.Contains(req.Body, []byte("Jane")) {
							t.Errorf("thin form of an erased event: %s", req.Body)
						}
						types = append(types, thin.Type)
						continue
					}
				}
				full++
				e, err := webhooks.Decode(c.format, req.Body)
				if err != nil {
					t.Fatalf("Decode(%s): %v\n%s", c.format, err, req.Body)
				}
				types = append(types, e.Type)
				switch c.format {
				case webhooks.FormatFull:
					validate(t, "webhook-full.schema.json", req.Body)
					// The typed case, as a Go receiver that wants one decodes it.
					var decoded casekeeperv1.Case
					if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.Data, &decoded); err != nil {
						t.Errorf("the case in a full payload: %v\n%s", err, e.Data)
					}
					if _, v, _ := e.CaseVersion(); decoded.GetTenant() != "acme" || decoded.GetVersion() < 1 || v != decoded.GetVersion() {
						t.Errorf("decoded case %v, CaseVersion %d", &decoded, v)
					}
				case webhooks.FormatThin:
					validate(t, "webhook-thin.schema.json", req.Body)
					if !strings.HasPrefix(e.Thin.URL, "https://api.casekeeper.example.com/v1/cases/") || bytes.Contains(req.Body, []byte("Jane")) {
						t.Errorf("thin payload %s", req.Body)
					}
				case webhooks.FormatRaw:
					var out struct {
						Event   string `json:"event"`
						CaseID  string `json:"case_id"`
						Status  string `json:"status"`
						Version int64  `json:"version"`
					}
					if err := json.Unmarshal(req.Body, &out); err != nil || out.CaseID == "" || out.Version < 1 || !strings.HasPrefix(out.Status, "CASE_STATUS_") {
						t.Errorf("jq payload %s (%v)", req.Body, err)
					}
					types = append(types[:len(types)-1], out.Event)
				}
			}
			slices.Sort(types)
			if !slices.Equal(types, wantTypes) {
				t.Errorf("types %v, want %v", types, wantTypes)
			}
			if full < 2 { // at least the two tombstones
				t.Errorf("%d of %d bodies in the endpoint's own format", full, len(got))
			}
			writeSamples(t, name, got)
		})
	}

	// "Send test event" reaches every receiver, and its body matches the schemas too.
	t.Run("test event", func(t *testing.T) {
		for _, r := range receivers {
			resp, err := s.webhooks.SendTestEvent(s.admin, &casekeeperv1.SendTestEventRequest{Id: r.endpnt.GetId()})
			if err != nil || resp.GetAttempt().GetStatusCode()/100 != 2 {
				t.Errorf("SendTestEvent to %s: %v %v", r.name, resp.GetAttempt(), err)
			}
		}
		// The samples of every type, too: each matches the schemas as a real event of its type does.
		for name, schema := range map[string]string{"full": "webhook-full.schema.json", "thin": "webhook-thin.schema.json"} {
			c := caps[name]
			for _, typ := range append([]string{webhooks.TypeTest}, webhooks.Types...) {
				if _, err := s.webhooks.SendTestEvent(s.admin, &casekeeperv1.SendTestEventRequest{Id: c.ep.GetId(), EventType: typ}); err != nil {
					t.Fatal(err)
				}
				got := c.cap.Requests()
				last := got[len(got)-1]
				validate(t, schema, last.Body)
				if e, err := webhooks.Decode(c.format, last.Body); err != nil || e.Type != typ {
					t.Errorf("test event %s of type %s: %v", last.Body, typ, err)
				}
			}
		}
	})
}

// refusesForgeries sends requests straight to a receiver: a correctly signed copy of a real body is taken, and
// the same body tampered with, replayed after the tolerance, signed with another secret or unsigned is refused
// and not recorded. before is how many lines the receiver had recorded.
func refusesForgeries(t *testing.T, r *receiver, realBody []byte, before int) {
	t.Helper()
	post := func(h http.Header, body []byte) int {
		req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range h {
			req.Header[k] = vs
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST to %s: %v", r.name, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(id string, at time.Time, body []byte, secret string) http.Header {
		h, err := webhooks.SignedHeaders(id, at, body, secret)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// A real body under a new webhook-id: recorded (as not applied, its version is not newer).
	now := time.Now()
	key, other := r.secret, "whsec_"+strings.Repeat("Zm9v", 8)
	if r.signingKey != "" {
		key = r.signingKey
		var err error
		if other, _, err = webhooks.NewSigningKey(); err != nil {
			t.Fatal(err)
		}
	}
	if code := post(sign("msg_genuine", now, realBody, key), realBody); code/100 != 2 {
		t.Fatalf("a correctly signed request got %d", code)
	}
	tampered := bytes.Replace(realBody, []byte(`"case.`), []byte(`"case.x`), 1)
	for name, req := range map[string]struct {
		h    http.Header
		body []byte
	}{
		"tampered body":              {sign("msg_tampered", now, realBody, key), tampered},
		"replayed after ten minutes": {sign("msg_replayed", now.Add(-10*time.Minute), realBody, key), realBody},
		"signed ten minutes ahead":   {sign("msg_future", now.Add(10*time.Minute), realBody, key), realBody},
		"another secret":             {sign("msg_foreign", now, realBody, other), realBody},
		"unsigned":                   {http.Header{"Content-Type": {"application/json"}}, realBody},
		"malformed signature":        {withHeader(sign("msg_malformed", now, realBody, key), webhooks.HeaderSignature, "v1"), realBody},
	} {
		if code := post(req.h, req.body); code < 400 || code >= 500 {
			t.Errorf("%s: got %d, want a 4xx refusal", name, code)
		}
	}
	lines := r.lines(t)
	if len(lines) != before+1 || lines[len(lines)-1].WebhookID != "msg_genuine" {
		t.Errorf("after the forged requests the receiver recorded %v, want only msg_genuine added", lines[before:])
	}
}

func withHeader(h http.Header, k, v string) http.Header {
	h.Set(k, v)
	return h
}

func endpointIDs(rs []*receiver) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.endpnt.GetId())
	}
	return ids
}

// capEndpoint is an endpoint served by a capture.
type capEndpoint struct {
	cap    *testinfra.Recorder
	ep     *casekeeperv1.Endpoint
	secret string
	format webhooks.Format
}

func capIDs(m map[string]*capEndpoint) []string {
	var ids []string
	for _, c := range m {
		ids = append(ids, c.ep.GetId())
	}
	return ids
}

// writeSamples keeps one real body per event type when CASEKEEPER_WEBHOOK_SAMPLES names a directory: the samples
// in docs/webhooks.md come from there.
func writeSamples(t *testing.T, format string, got []testinfra.Request) {
	dir := os.Getenv("CASEKEEPER_WEBHOOK_SAMPLES")
	if dir == "" {
		return
	}
	for _, c := range got {
		var b struct {
			Type  string `json:"type"`
			Event string `json:"event"`
		}
		_ = json.Unmarshal(c.Body, &b)
		name := filepath.Join(dir, format+"-"+b.Type+b.Event+".json")
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, c.Body, "", "  ")
		hdr := fmt.Sprintf("webhook-id: %s\nwebhook-timestamp: %s\nwebhook-signature: %s\n\n",
			c.Header.Get(webhooks.HeaderID), c.Header.Get(webhooks.HeaderTimestamp), c.Header.Get(webhooks.HeaderSignature))
		if err := os.WriteFile(name, append([]byte(hdr), pretty.Bytes()...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
