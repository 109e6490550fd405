package casesvc_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/events"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// BenchmarkCaseWrites measures authenticated case writes through the gRPC API on the embedded stack (FerretDB,
// JetStream, real Keycloak tokens) at 1, 8 and 64 concurrent clients, each client writing its own case: writes/s,
// and the latency from the start of a write to its event being delivered from the stream (p50, p99).
func BenchmarkCaseWrites(b *testing.B) {
	for _, clients := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchWrites(b, clients)
		})
	}
}

func benchWrites(b *testing.B, clients int) {
	st := startStack(b)
	// No deadline: a benchmark at 64 clients may run longer than the tests' per-call bound.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token(b, acmeProvider))
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = create(b, st, acmeProvider, fmt.Sprintf("bench-%d-%d", clients, i)).Id
	}

	var (
		mu      sync.Mutex
		started = map[string]time.Time{}
		lat     []time.Duration
	)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := st.js.OrderedConsumer(cctx, events.Stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	received := make(chan struct{}, 1<<16)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		key := m.Headers().Get(events.HeaderCaseID) + "/" + m.Headers().Get(events.HeaderVersion)
		now := time.Now()
		mu.Lock()
		if t0, ok := started[key]; ok {
			lat = append(lat, now.Sub(t0))
			delete(started, key)
		}
		mu.Unlock()
		received <- struct{}{}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, b.N)
	for i := range b.N {
		next <- i
	}
	close(next)
	for c := range clients {
		wg.Go(func() {
			version := int64(1)
			for i := range next {
				key := fmt.Sprintf("%s/%d", ids[c], version+1)
				mu.Lock()
				started[key] = time.Now()
				mu.Unlock()
				resp, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: ids[c], Labels: []string{fmt.Sprint("l", i)},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
				if err != nil {
					b.Error(err)
					return
				}
				version = resp.GetCase().GetVersion()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	deadline := time.After(60 * time.Second)
	for n := 0; n < b.N; n++ {
		select {
		case <-received:
		case <-deadline:
			b.Fatalf("only %d of %d events arrived", n, b.N)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	mu.Lock()
	defer mu.Unlock()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
