package delivery

import (
	"math"
	"time"
)

// An endpoint's health is kept as aggregates, one per endpoint and hour and one per endpoint and UTC day, that the
// delivery log's projector adds each attempt to: reading 24 hours and 7 days is 31 reads by key, whatever the
// number of deliveries ever made.

// LatencyBounds are the upper bounds of the latency histogram of a health bucket; a latency above the last one
// counts in a final, open bucket.
var LatencyBounds = []time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// HealthKept is how long health buckets are kept: the 7 days the chart shows, and one more.
const HealthKept = 8 * 24 * time.Hour

// Periods of the health buckets.
const (
	Hourly = "h"
	Daily  = "d"
)

// HealthBucket is the attempts of one endpoint in one period.
type HealthBucket struct {
	Start     time.Time
	Attempts  int64
	Succeeded int64
	// Latency counts attempts by LatencyBounds, the last element those above the last bound.
	Latency []int64
}

// PeriodStart is the start of the period (Hourly or Daily, UTC) that holds t.
func PeriodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	if period == Daily {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return t.Truncate(time.Hour)
}

// Counted reports whether an attempt belongs in the endpoint's health: it sent a request.
func (a Attempt) Counted() bool { return len(a.RequestHeaders) > 0 }

// Succeeded reports whether the endpoint answered 2xx.
func (a Attempt) Succeeded() bool { return a.Error == "" && a.StatusCode >= 200 && a.StatusCode <= 299 }

// LatencyIndex is the histogram bucket of a latency.
func LatencyIndex(d time.Duration) int {
	for i, b := range LatencyBounds {
		if d <= b {
			return i
		}
	}
	return len(LatencyBounds)
}

// Add counts one attempt in the bucket.
func (b *HealthBucket) Add(a Attempt) {
	if len(b.Latency) != len(LatencyBounds)+1 {
		b.Latency = make([]int64, len(LatencyBounds)+1)
	}
	b.Attempts++
	if a.Succeeded() {
		b.Succeeded++
	}
	b.Latency[LatencyIndex(a.Latency)]++
}

// Percentile is the upper bound of the histogram bucket that holds the q-th quantile (0 < q ≤ 1) of the latencies;
// past the last bound it is that bound (the histogram knows no more). Zero without attempts.
func (b HealthBucket) Percentile(q float64) time.Duration {
	var total int64
	for _, n := range b.Latency {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := max(1, int64(math.Ceil(q*float64(total)))) // the rank-th smallest latency
	var seen int64
	for i, n := range b.Latency {
		if seen += n; seen >= rank {
			return LatencyBounds[min(i, len(LatencyBounds)-1)]
		}
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

// Merge is the buckets together, starting with the first.
func Merge(bs []HealthBucket) HealthBucket {
	var m HealthBucket
	if len(bs) > 0 {
		m.Start = bs[0].Start
	}
	m.Latency = make([]int64, len(LatencyBounds)+1)
	for _, b := range bs {
		m.Attempts += b.Attempts
		m.Succeeded += b.Succeeded
		for i, n := range b.Latency {
			m.Latency[i] += n
		}
	}
	return m
}
