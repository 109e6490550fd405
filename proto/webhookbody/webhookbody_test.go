package webhookbody

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
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

func TestFullUsesProtoNames(t *testing.T) {
	b, err := Full(sample())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type, Timestamp string
		Data            map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "case.created" || got.Timestamp != "2026-01-02T03:04:05Z" || got.Data["external_ref"] != "ref-9" {
		t.Fatalf("body %s", b)
	}
}

func TestThinHasNoPersonalData(t *testing.T) {
	b, err := Thin(sample(), "https://api.example")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "Ada") {
		t.Fatalf("thin payload leaks the applicant: %s", b)
	}
	if !strings.Contains(string(b), `"url":"https://api.example/v1/cases/case_1"`) || !strings.Contains(string(b), `"case_version":3`) {
		t.Fatalf("body %s", b)
	}
}

func TestEveryVersionRendersAndOthersAreRefused(t *testing.T) {
	for _, v := range append([]string{""}, Versions...) {
		if _, err := FullAt(sample(), v); err != nil {
			t.Errorf("version %q: %v", v, err)
		}
	}
	if !KnownVersion(CurrentVersion) || KnownVersion("2019-01-01") {
		t.Error("KnownVersion")
	}
	if _, err := FullAt(sample(), "2019-01-01"); err == nil {
		t.Error("an unknown version rendered")
	}
}
