package casesvc_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// BenchmarkCaseWrites measures authenticated case writes through the gRPC API on the embedded stack (JetStream
// file storage, FerretDB for the projection, real Keycloak tokens) at 1, 8 and 64 concurrent clients, each client
// writing its own case, with 100 and with 100,000 cases already stored (on the stream and in the projection).
// It reports writes/s, the latency from the start of a write to its event being delivered from the stream (p50,
// p99), and the limit: bare synchronous JetStream publishes by as many goroutines to the same server, measured in
// the same run, with the ratio of the two.
func BenchmarkCaseWrites(b *testing.B) {
	for _, stored := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) {
			st := startStack(b)
			seedCases(b, st, stored)
			for _, clients := range []int{1, 8, 64} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					benchWrites(b, st, clients)
				})
			}
		})
	}
}

// seedCases stores n cases as the service would have: a creation event on each case's subject, and the case in
// the projection (written straight to the database, in bulk, since projecting 100,000 cases one batch at a time
// is not what is measured here).
func seedCases(b *testing.B, st *stack, n int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var acks []jetstream.PubAckFuture
	docs := make([]any, 0, 1000)
	db := testinfra.ConnectMongo(b, st.cfg.Mongo.URI.Reveal(), st.cfg.Mongo.Database)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range n {
		id := fmt.Sprintf("01900000-0000-7000-8000-%012d", i)
		ev := &pb.CaseEvent{Id: "seed-" + id, Type: events.TypeCreated, Tenant: "acme", CaseId: id, CaseVersion: 1,
			Data: &pb.Case{Id: id, Tenant: "acme", Status: pb.CaseStatus_CASE_STATUS_DRAFT, Version: 1, Applicant: jane()}}
		msg, err := events.Message(ev)
		if err != nil {
			b.Fatal(err)
		}
		ack, err := st.js.PublishMsgAsync(msg)
		if err != nil {
			b.Fatal(err)
		}
		acks = append(acks, ack)
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: "acme"}, {Key: "status", Value: "draft"},
			{Key: "version", Value: int64(1)}, {Key: "created_at", Value: now}, {Key: "updated_at", Value: now}})
		if len(docs) == cap(docs) || i == n-1 {
			if _, err := db.Collection("cases").InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
			docs = docs[:0]
		}
	}
	for _, a := range acks {
		select {
		case <-a.Ok():
		case err := <-a.Err():
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d cases on the stream and in the database in %v; the projector catches up", n, time.Since(start).Round(time.Millisecond))
	// The projector consumes the seeded events too; let it get through them before measuring.
	waitProjected(b, st, 10*time.Minute)
	b.Logf("seeded %d cases in %v", n, time.Since(start).Round(time.Millisecond))
}

// projectorCaughtUp reports whether the projection consumer has acknowledged everything on the stream.
func projectorCaughtUp(b *testing.B, st *stack) bool {
	cons, err := st.js.Consumer(context.Background(), events.Stream, "case-projection")
	if err != nil {
		return false
	}
	info, err := cons.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func benchWrites(b *testing.B, st *stack, clients int) {
	limit := barePublishRate(b, st, clients)
	// No deadline: a benchmark at 64 clients may run longer than the tests' per-call bound.
	ctx := testinfra.Bearer(context.Background(), token(b, acmeProvider))
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = create(b, st, acmeProvider, fmt.Sprintf("bench-%d-%d-%d", clients, b.N, i)).Id
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
	var received atomic.Int64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		key := m.Headers().Get(events.HeaderCaseID) + "/" + m.Headers().Get(events.HeaderVersion)
		now := time.Now()
		mu.Lock()
		if t0, ok := started[key]; ok {
			lat = append(lat, now.Sub(t0))
			delete(started, key)
			received.Add(1)
		}
		mu.Unlock()
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
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if n := received.Load(); n < int64(b.N) {
		b.Fatalf("only %d of %d events arrived", n, b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "writes/s")
	b.ReportMetric(limit, "limit-publishes/s")
	b.ReportMetric(rate/limit, "ratio")
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// barePublishRate is the limit a case write is compared with: synchronous JetStream publishes (file storage, one
// acknowledgement each) from as many goroutines as clients, to a stream of their own on the same server, for one
// second.
func barePublishRate(b *testing.B, st *stack, clients int) float64 {
	b.Helper()
	ctx := context.Background()
	if _, err := st.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_LIMIT", Subjects: []string{"bench.limit.>"},
		Storage: jetstream.FileStorage, MaxMsgs: 100_000}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 600) // about the size of a case event
	var n atomic.Int64
	end := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			subject := fmt.Sprintf("bench.limit.%d", c)
			for time.Now().Before(end) {
				if _, err := st.js.Publish(ctx, subject, body); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load())
}
