package webhooksvc_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/testinfra"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

type noticeBody struct {
	Type string `json:"type"`
	Data struct {
		ID         string `json:"id"`
		EndpointID string `json:"endpoint_id"`
		Reason     string `json:"reason"`
	} `json:"data"`
}

// TestOperationalNotices: an endpoint that starts failing raises endpoint.failing once, however many attempts
// fail, and endpoint.recovered at its first success; each is sent, signed with the tenant's notice secret, to the
// notice URL the tenant admin set (tried again when it does not answer 2xx), listed for the admin, counted in the
// metrics, and the endpoint shows since when it has been failing.
func TestOperationalNotices(t *testing.T) {
	e := newEnv(t)
	e.start()
	admin := as("acme-admin")
	var noticeCalls atomic.Int64
	notices := testinfra.NewRecorder(t, func(int, *http.Request) int {
		if noticeCalls.Add(1) == 1 {
			return http.StatusBadGateway // the notice URL's first answer: tried again
		}
		return http.StatusOK
	})
	if _, err := e.client.UpdateNoticeSettings(admin, &casekeeperv1.UpdateNoticeSettingsRequest{Url: "ftp://notices.example"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an ftp notice URL: %v, want InvalidArgument", err)
	}
	set, err := e.client.UpdateNoticeSettings(admin, &casekeeperv1.UpdateNoticeSettingsRequest{Url: notices.URL + "/notices"})
	if err != nil || !strings.HasPrefix(set.GetSettings().GetSecret(), "whsec_") {
		t.Fatalf("UpdateNoticeSettings: %v %v", set, err)
	}
	if got, err := e.client.GetNoticeSettings(as("globex-admin"), &casekeeperv1.GetNoticeSettingsRequest{}); err != nil || got.GetSettings().GetUrl() != "" {
		t.Fatalf("globex sees notice settings %v (%v)", got, err)
	}
	verifier, err := webhooks.NewVerifier([]string{set.GetSettings().GetSecret()})
	if err != nil {
		t.Fatal(err)
	}

	// The endpoint fails 4 attempts (two deliveries, all their retries but the last), then succeeds.
	var failing atomic.Bool
	failing.Store(true)
	hooks := newReceiver(t, func(int, *http.Request) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	ep, _ := e.createEndpoint(hooks.URL)
	e.publish("acme", 2)
	testinfra.Eventually(t, 30*time.Second, "four failed attempts", func() bool { return len(hooks.Requests()) >= 4 })
	got, err := e.client.GetEndpoint(admin, &casekeeperv1.GetEndpointRequest{Id: ep.GetId()})
	if err != nil || got.GetEndpoint().GetFailingSince() == nil {
		t.Fatalf("the failing endpoint shows no failing_since: %v %v", got.GetEndpoint(), err)
	}
	failing.Store(false)
	testinfra.Eventually(t, 30*time.Second, "endpoint.failing and endpoint.recovered at the notice URL", func() bool {
		var kinds []string
		for _, r := range notices.Requests() {
			if r.Status == http.StatusOK {
				var b noticeBody
				_ = json.Unmarshal(r.Body, &b)
				kinds = append(kinds, b.Type)
			}
		}
		slices.Sort(kinds) // the failing one was tried again, after the recovered one went out
		return strings.Join(kinds, ",") == "endpoint.failing,endpoint.recovered"
	})
	time.Sleep(2 * time.Second) // anything raised twice would arrive by now
	var sent []noticeBody
	ids := map[string]bool{}
	for _, r := range notices.Requests() {
		if err := verifier.Verify(r.Header, r.Body); err != nil {
			t.Errorf("notice %s: signature: %v", r.Header.Get("Webhook-Id"), err)
		}
		var b noticeBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatalf("notice body %s: %v", r.Body, err)
		}
		if r.Header.Get("Webhook-Id") != b.Data.ID || b.Data.EndpointID != ep.GetId() {
			t.Errorf("notice %s: webhook-id %s, endpoint %s", b.Data.ID, r.Header.Get("Webhook-Id"), b.Data.EndpointID)
		}
		if r.Status == http.StatusOK {
			sent = append(sent, b)
		}
		ids[b.Data.ID] = true
	}
	slices.SortFunc(sent, func(a, b noticeBody) int { return strings.Compare(a.Type, b.Type) })
	if len(sent) != 2 || len(ids) != 2 || !strings.Contains(sent[0].Data.Reason, "503") {
		t.Fatalf("notices sent %+v (%d distinct ids), want one failing (HTTP 503) and one recovered", sent, len(ids))
	}

	list, err := e.client.ListNotices(admin, &casekeeperv1.ListNoticesRequest{})
	if err != nil || len(list.GetNotices()) != 2 || list.GetNotices()[0].GetType() != "endpoint.recovered" ||
		list.GetNotices()[1].GetEndpointUrl() != hooks.URL {
		t.Fatalf("ListNotices: %v %v, want recovered then failing, with the endpoint's URL", list.GetNotices(), err)
	}
	if other, err := e.client.ListNotices(as("globex-admin"), &casekeeperv1.ListNoticesRequest{}); err != nil || len(other.GetNotices()) != 0 {
		t.Fatalf("globex lists %v (%v)", other.GetNotices(), err)
	}
	metrics := "http://" + e.svc.HTTPAddr() + "/metrics"
	for kind, want := range map[string]float64{"endpoint.failing": 1, "endpoint.recovered": 1} {
		if n := testinfra.Metric(t, metrics, `webhook_notices_total{kind="`+kind+`"}`); n != want {
			t.Errorf("webhook_notices_total{kind=%q} = %v, want %v", kind, n, want)
		}
	}
	if n := testinfra.Metric(t, metrics, `webhook_notice_sends_total{result="failed"}`); n != 1 {
		t.Errorf("failed notice sends %v, want 1 (the notice URL's first answer)", n)
	}
	if got, _ := e.client.GetEndpoint(admin, &casekeeperv1.GetEndpointRequest{Id: ep.GetId()}); got.GetEndpoint().GetFailingSince() != nil {
		t.Error("the recovered endpoint still shows failing_since")
	}
}
