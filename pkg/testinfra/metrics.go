package testinfra

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metric reads one unlabelled counter or gauge from the Prometheus text exposition at url (a service's /metrics).
func Metric(t testing.TB, url, name string) float64 {
	t.Helper()
	for _, line := range scrape(t, url) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("testinfra: metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("testinfra: metric %s not exported at %s", name, url)
	return 0
}

// Histogram reads the cumulative buckets of one unlabelled histogram from the exposition at url: upper bound →
// count.
func Histogram(t testing.TB, url, name string) map[float64]float64 {
	t.Helper()
	out := map[float64]float64{}
	for _, line := range scrape(t, url) {
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(count, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("testinfra: metric line %q", line)
		}
		out[bound] = n
	}
	if len(out) == 0 {
		t.Fatalf("testinfra: histogram %s not exported at %s", name, url)
	}
	return out
}

func scrape(t testing.TB, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("testinfra: scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testinfra: scrape %s: %v", url, err)
	}
	return strings.Split(string(body), "\n")
}
