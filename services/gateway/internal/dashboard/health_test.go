package dashboard

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// healthyLog is the delivery log with a health answer: 24 hours of which three had attempts.
type healthyLog struct {
	*deliveryLog
	err error
}

func (h *healthyLog) GetEndpointHealth(context.Context, *casekeeperv1.GetEndpointHealthRequest, ...grpc.CallOption) (*casekeeperv1.GetEndpointHealthResponse, error) {
	if h.err != nil {
		return nil, h.err
	}
	start := time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)
	resp := &casekeeperv1.GetEndpointHealthResponse{
		HoursTotal: &casekeeperv1.HealthBucket{Attempts: 300, Succeeded: 285, LatencyP50: durationpb.New(25 * time.Millisecond), LatencyP99: durationpb.New(2500 * time.Millisecond)},
		DaysTotal:  &casekeeperv1.HealthBucket{},
	}
	for i := range 24 {
		b := &casekeeperv1.HealthBucket{Start: timestamppb.New(start.Add(time.Duration(i) * time.Hour))}
		switch i {
		case 20:
			b.Attempts, b.Succeeded = 100, 100
		case 21:
			b.Attempts, b.Succeeded = 100, 95
		case 22:
			b.Attempts, b.Succeeded = 100, 90-1
		}
		if b.Attempts > 0 {
			b.LatencyP50, b.LatencyP99 = durationpb.New(25*time.Millisecond), durationpb.New(time.Duration(i-19)*time.Second)
		}
		resp.Hours = append(resp.Hours, b)
	}
	for i := range 7 {
		resp.Days = append(resp.Days, &casekeeperv1.HealthBucket{Start: timestamppb.New(start.AddDate(0, 0, i-6))})
	}
	return resp, nil
}

func TestEndpointPageChartsItsHealth(t *testing.T) {
	f := newFixture(t, false)
	log := &healthyLog{deliveryLog: &deliveryLog{fakeWebhooks: f.webhooks}}
	f.h.opts.Webhooks = log
	f.signIn(t)
	resp := f.get(t, "/dashboard/webhooks/ep_a")
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("endpoint page: %d", resp.StatusCode)
	}
	// One bar per hour with attempts, in the band its success rate is in; none for the empty hours.
	bars := regexp.MustCompile(`<rect class="bar (\w+)" data-attempts="(\d+)" data-succeeded="(\d+)"`).FindAllStringSubmatch(page, -1)
	var got []string
	for _, b := range bars {
		got = append(got, b[1]+":"+b[3]+"/"+b[2])
	}
	if want := "ok:100/100 warn:95/100 bad:89/100"; strings.Join(got, " ") != want {
		t.Errorf("success bars %q, want %q", strings.Join(got, " "), want)
	}
	for _, want := range []string{"95.0 %", "25 ms", "2.5 s", `id="latency-last-24-hours"`, `class="line p99"`, "00:00: 89 of 100 succeeded (89.0 %)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the health section lacks %q", want)
		}
	}
	// Three hours in a row with attempts: one unbroken line per percentile.
	if n := strings.Count(page, `<polyline class="line p50"`); n != 1 {
		t.Errorf("%d p50 lines, want 1", n)
	}
	section := page[strings.Index(page, `id="health"`):]
	if section = section[:strings.Index(section, "</section>")]; strings.Contains(section, "<script") || strings.Contains(section, "style=") {
		t.Error("the health section brought a script or an inline style, which the page's CSP would refuse")
	}

	log.err = errors.New("unavailable")
	resp = f.get(t, "/dashboard/webhooks/ep_a")
	page = body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="health-error"`) || !strings.Contains(page, "accepted-one") {
		t.Fatalf("with the health unavailable: %d, the page should still show the log and say why the charts are missing", resp.StatusCode)
	}
}
