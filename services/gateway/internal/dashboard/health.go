package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// healthView is one period of an endpoint's delivery health (the last 24 hours or 7 days): totals and two charts,
// drawn here as inline SVG, so that the page needs no script and keeps to its CSP.
type healthView struct {
	Title    string
	Attempts int64
	Rate     string // "99.5 %", or "–" without attempts
	P50, P99 string
	Success  template.HTML
	Latency  template.HTML
}

// Chart geometry, in SVG user units; the SVG scales to the panel's width.
const (
	chartW, chartH   = 720.0, 150.0
	plotL, plotR     = 48.0, 8.0
	plotT, plotB     = 10.0, 24.0
	healthyRate      = 0.99
	degradedRate     = 0.90
	latencyGridLines = 3
)

func viewHealth(title string, total *casekeeperv1.HealthBucket, buckets []*casekeeperv1.HealthBucket, label func(time.Time) string, every int) healthView {
	v := healthView{Title: title, Attempts: total.GetAttempts(), Rate: "–", P50: "–", P99: "–"}
	if total.GetAttempts() > 0 {
		v.Rate = percent(total.GetSucceeded(), total.GetAttempts())
		v.P50, v.P99 = latencyText(total.GetLatencyP50().AsDuration()), latencyText(total.GetLatencyP99().AsDuration())
	}
	v.Success = successChart(title, buckets, label, every)
	v.Latency = latencyChart(title, buckets, label, every)
	return v
}

func percent(n, of int64) string {
	return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(of))
}

func latencyText(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < 10*time.Millisecond && d%time.Millisecond != 0:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// slot is the x of bucket i's left edge and the width of one bucket.
func slot(i, n int) (x, w float64) {
	w = (chartW - plotL - plotR) / float64(n)
	return plotL + float64(i)*w, w
}

func svgOpen(b *strings.Builder, id, title, desc string) {
	fmt.Fprintf(b, `<svg class="chart" id="%s" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-t %s-d">`, id, chartW, chartH, id, id)
	fmt.Fprintf(b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id, template.HTMLEscapeString(title), id, template.HTMLEscapeString(desc))
}

func xLabels(b *strings.Builder, buckets []*casekeeperv1.HealthBucket, label func(time.Time) string, every int) {
	for i, bk := range buckets {
		if i%every != 0 {
			continue
		}
		x, w := slot(i, len(buckets))
		fmt.Fprintf(b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+w/2, chartH-6,
			template.HTMLEscapeString(label(bk.GetStart().AsTime())))
	}
}

func yGrid(b *strings.Builder, frac float64, text string) {
	y := plotT + (1-frac)*(chartH-plotT-plotB)
	fmt.Fprintf(b, `<line class="grid" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f"/>`, plotL, chartW-plotR, y, y)
	fmt.Fprintf(b, `<text class="axis" x="%.0f" y="%.1f" text-anchor="end">%s</text>`, plotL-6, y+4, template.HTMLEscapeString(text))
}

// successChart is one bar per bucket, its height the share of attempts answered 2xx, its class the band it is in
// (healthy ≥ 99 %, degraded ≥ 90 %, failing below); a bucket without attempts has no bar.
func successChart(title string, buckets []*casekeeperv1.HealthBucket, label func(time.Time) string, every int) template.HTML {
	var b strings.Builder
	id := "success-" + chartID(title)
	svgOpen(&b, id, "Success rate, "+title, "Share of attempts answered 2xx, per period; periods without attempts have no bar.")
	for _, f := range []float64{0, 0.5, 1} {
		yGrid(&b, f, fmt.Sprintf("%.0f %%", 100*f))
	}
	plotH := chartH - plotT - plotB
	for i, bk := range buckets {
		if bk.GetAttempts() == 0 {
			continue
		}
		rate := float64(bk.GetSucceeded()) / float64(bk.GetAttempts())
		class := "bad"
		switch {
		case rate >= healthyRate:
			class = "ok"
		case rate >= degradedRate:
			class = "warn"
		}
		x, w := slot(i, len(buckets))
		h := max(rate*plotH, 1) // a failing period still shows a sliver
		fmt.Fprintf(&b, `<rect class="bar %s" data-attempts="%d" data-succeeded="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d of %d succeeded (%s)</title></rect>`,
			class, bk.GetAttempts(), bk.GetSucceeded(), x+w*0.15, plotT+plotH-h, w*0.7, h,
			template.HTMLEscapeString(label(bk.GetStart().AsTime())), bk.GetSucceeded(), bk.GetAttempts(), percent(bk.GetSucceeded(), bk.GetAttempts()))
	}
	xLabels(&b, buckets, label, every)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value in it is a number or escaped above
}

// latencyChart draws p50 and p99 per bucket as two lines, on a scale up to the largest p99; a bucket without
// attempts breaks the lines.
func latencyChart(title string, buckets []*casekeeperv1.HealthBucket, label func(time.Time) string, every int) template.HTML {
	var b strings.Builder
	id := "latency-" + chartID(title)
	svgOpen(&b, id, "Latency, "+title, "Median (p50) and 99th percentile (p99) response time per period.")
	var top time.Duration
	for _, bk := range buckets {
		top = max(top, bk.GetLatencyP99().AsDuration())
	}
	if top == 0 {
		top = 100 * time.Millisecond
	}
	for i := range latencyGridLines + 1 {
		f := float64(i) / latencyGridLines
		yGrid(&b, f, latencyText(time.Duration(f*float64(top))))
	}
	plotH := chartH - plotT - plotB
	for _, line := range []struct {
		class string
		get   func(*casekeeperv1.HealthBucket) time.Duration
	}{
		{"p99", func(bk *casekeeperv1.HealthBucket) time.Duration { return bk.GetLatencyP99().AsDuration() }},
		{"p50", func(bk *casekeeperv1.HealthBucket) time.Duration { return bk.GetLatencyP50().AsDuration() }},
	} {
		var run []string
		flush := func() {
			if len(run) > 0 {
				fmt.Fprintf(&b, `<polyline class="line %s" points="%s"/>`, line.class, strings.Join(run, " "))
			}
			run = nil
		}
		for i, bk := range buckets {
			if bk.GetAttempts() == 0 {
				flush()
				continue
			}
			x, w := slot(i, len(buckets))
			d := line.get(bk)
			y := plotT + plotH - float64(d)/float64(top)*plotH
			run = append(run, fmt.Sprintf("%.1f,%.1f", x+w/2, y))
			fmt.Fprintf(&b, `<circle class="dot %s" cx="%.1f" cy="%.1f" r="2.5"><title>%s: %s %s</title></circle>`, line.class, x+w/2, y,
				template.HTMLEscapeString(label(bk.GetStart().AsTime())), line.class, latencyText(d))
		}
		flush()
	}
	xLabels(&b, buckets, label, every)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value in it is a number or escaped above
}

func chartID(title string) string {
	return strings.ReplaceAll(strings.ToLower(title), " ", "-")
}

// healthViews are the two periods the endpoint page shows.
func healthViews(h *casekeeperv1.GetEndpointHealthResponse) []healthView {
	return []healthView{
		viewHealth("last 24 hours", h.GetHoursTotal(), h.GetHours(), func(t time.Time) string { return t.UTC().Format("15:04") }, 4),
		viewHealth("last 7 days", h.GetDaysTotal(), h.GetDays(), func(t time.Time) string { return t.UTC().Format("Mon 02") }, 1),
	}
}
