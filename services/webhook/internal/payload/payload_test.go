package payload

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
)

func sample() *casekeeperv1.CaseEvent {
	return &casekeeperv1.CaseEvent{
		Id: "evt_1", Type: "case.created", Tenant: "acme", CaseId: "case_1", CaseVersion: 3,
		OccurredAt: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		Data: &casekeeperv1.Case{Id: "case_1", Tenant: "acme", ExternalRef: "ref-9", Version: 3,
			Status:    casekeeperv1.CaseStatus_CASE_STATUS_SUBMITTED,
			Applicant: &casekeeperv1.Applicant{FullName: "Ada Lovelace"}},
	}
}

func TestCompileReportsPosition(t *testing.T) {
	_, err := Compile("{a: .data.id,\n  b: ]")
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Offset < 0 {
		t.Fatalf("err %v (%+v)", err, ce)
	}
	if !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("message %q names no line", err)
	}
	if _, err := Compile("$undefined"); err == nil {
		t.Fatal("undefined variable compiled")
	}
}

func TestApply(t *testing.T) {
	full, _ := webhookbody.Full(sample())
	tr, err := Compile(`{id: .data.id, status: .data.status, v: .data.version}`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tr.Apply(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"id":"case_1","status":"CASE_STATUS_SUBMITTED","v":"3"}` {
		t.Fatalf("out %s", out)
	}
	for name, prog := range map[string]string{
		"error":   `error("boom")`,
		"empty":   `empty`,
		"endless": `def f: f; f`,
		"huge":    `[range(0; 100000)] | map(tostring) | join("xxxxxxxxxxxx")`,
	} {
		tr, err := Compile(prog)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := tr.Apply(context.Background(), full); !errors.Is(err, ErrTransform) {
			t.Errorf("%s: err %v, want ErrTransform", name, err)
		}
	}
}

// TestTransformSeesNoEnvironment plants a distinctive variable in the environment and reads every way jq offers to
// the environment: the transform must succeed and show none of it.
func TestTransformSeesNoEnvironment(t *testing.T) {
	const canary = "ck-env-canary-5f1d9c"
	t.Setenv("CASEKEEPER_TRANSFORM_CANARY", canary)
	full, _ := webhookbody.Full(sample())
	tr, err := Compile(`{env: env, ENV: $ENV, one: $ENV.CASEKEEPER_TRANSFORM_CANARY, path: env.PATH}`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tr.Apply(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), canary) {
		t.Fatalf("the environment leaked into the output: %s", out)
	}
	if string(out) != `{"ENV":{},"env":{},"one":null,"path":null}` {
		t.Fatalf("out %s, want an empty environment", out)
	}
}

// A failing transform's error names types, never the values of the case it ran on.
func TestRuntimeErrorsCarryNoValues(t *testing.T) {
	full := []byte(`{"type":"case.updated","data":{"applicant":{"full_name":"Jane Secretname","date_of_birth":"1984-02-29",` +
		`"document_number":"C01X00T47"},"labels":["x"]}}`)
	for _, prog := range []string{
		`.data.applicant.full_name | keys`,
		`.data.applicant.full_name[]`,
		`.data.applicant.full_name - 1`,
		`.data.applicant.document_number + {}`,
		`.data.applicant | .date_of_birth | tonumber`,
		`error(.data.applicant.full_name)`,
		`error({name: .data.applicant.full_name})`,
		`.data.applicant.full_name as $n | {} | .[$n] | .[$n][]`,
		`.data.applicant | to_entries | .[0].value | ltrimstr(1) | . * {}`,
	} {
		tr, err := Compile(prog)
		if err != nil {
			t.Fatalf("%s: %v", prog, err)
		}
		_, err = tr.Apply(context.Background(), full)
		if err == nil {
			t.Fatalf("%s: no error", prog)
		}
		for _, secret := range []string{"Jane", "Secretname", "1984", "C01X00T47"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q shows %q", prog, err, secret)
			}
		}
	}
	if got := withoutPreviews(`cannot add: object ({"a":1}) and string ("x) and y")`); got != "cannot add: object and string" {
		t.Errorf("withoutPreviews: %q", got)
	}
}
