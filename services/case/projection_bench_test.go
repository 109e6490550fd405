package casesvc_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// BenchmarkProjection measures how long a case write takes to reach the projection in MongoDB: writes at a fixed
// 500 per second over 200 cases, with 100 and with 100,000 cases already stored. The projector records, for every
// case it writes, the time from the change to the database write (case_projection_delay_seconds); the benchmark
// reads that histogram before and after the writes and reports p50 and p99 (the bucket bound at or above them).
// Polling the database for each write would itself load the single-writer embedded store.
func BenchmarkProjection(b *testing.B) {
	for _, stored := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) {
			st := startStack(b)
			seedCases(b, st, stored)
			b.Run("rate=500/s", func(b *testing.B) { benchProjection(b, st, 500) })
		})
	}
}

func benchProjection(b *testing.B, st *stack, rate int) {
	ctx := testinfra.Bearer(context.Background(), token(b, acmeProvider))
	cases := make([]string, 200)
	for i := range cases {
		cases[i] = create(b, st, acmeProvider, fmt.Sprintf("projection-%d-%d", b.N, i)).Id
	}
	waitProjected(b, st, 2*time.Minute)
	before := testinfra.Histogram(b, st.url("/metrics"), "case_projection_delay_seconds")
	work := make(chan int, 1024)
	var writers sync.WaitGroup
	// Enough writers that a slow write does not lower the offered rate.
	for range 64 {
		writers.Go(func() {
			for i := range work {
				_, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: cases[i%len(cases)], Labels: []string{fmt.Sprint("p", i)},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	// Paced against the clock rather than a ticker: a ticker drops ticks whenever this goroutine is scheduled late,
	// which on a busy machine lowers the offered rate. Write i is due at start + i/rate; a late write goes at once.
	interval := time.Second / time.Duration(rate)
	for i := range b.N {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		work <- i
	}
	close(work)
	writers.Wait()
	elapsed := time.Since(start)
	waitProjected(b, st, 2*time.Minute)
	b.StopTimer()
	after := testinfra.Histogram(b, st.url("/metrics"), "case_projection_delay_seconds")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(quantile(b, before, after, 0.5)*1000, "p50-ms")
	b.ReportMetric(quantile(b, before, after, 0.99)*1000, "p99-ms")
}

// waitProjected waits until the projection consumer has acknowledged everything on the stream.
func waitProjected(b *testing.B, st *stack, within time.Duration) {
	b.Helper()
	testinfra.Eventually(b, within, "the projector through every event", func() bool { return projectorCaughtUp(b, st) })
}

// quantile is the smallest bucket bound at or above the q-quantile of what was observed between two readings.
func quantile(b *testing.B, before, after map[float64]float64, q float64) float64 {
	b.Helper()
	bounds := slices.Sorted(maps.Keys(after))
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total == 0 {
		b.Fatal("the projector recorded no delay")
	}
	for _, le := range bounds {
		if after[le]-before[le] >= q*total {
			return le
		}
	}
	return math.Inf(1)
}
