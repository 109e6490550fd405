package casesvc_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// BenchmarkProjection measures how long a case write takes to reach the projection in MongoDB: writes at a fixed
// 500 per second over 200 cases, and for every tenth write the time from its acknowledgement until the database
// holds that version (polled by _id every 5 ms), with 100 and with 100,000 cases already stored.
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
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token(b, acmeProvider))
	cases := make([]string, 200)
	for i := range cases {
		cases[i] = create(b, st, acmeProvider, fmt.Sprintf("projection-%d-%d", b.N, i)).Id
	}
	coll := testinfra.ConnectMongo(b, st.cfg.Mongo.URI.Reveal(), st.cfg.Mongo.Database).Collection("cases")
	var (
		mu     sync.Mutex
		delays []time.Duration
		late   int
	)
	work := make(chan int, 1024)
	var writers, pollers sync.WaitGroup
	for range 16 {
		writers.Go(func() {
			for i := range work {
				id := cases[i%len(cases)]
				resp, err := st.api.UpdateCase(ctx, &pb.UpdateCaseRequest{Id: id, Labels: []string{fmt.Sprint("p", i)},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
				if err != nil {
					b.Error(err)
					return
				}
				if i%10 != 0 {
					continue
				}
				acked, version := time.Now(), resp.GetCase().GetVersion()
				pollers.Go(func() {
					deadline := acked.Add(10 * time.Second)
					for time.Now().Before(deadline) {
						var doc struct {
							Version int64 `bson:"version"`
						}
						err := coll.FindOne(context.Background(), bson.D{{Key: "_id", Value: id}},
							options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&doc)
						if err == nil && doc.Version >= version {
							mu.Lock()
							delays = append(delays, time.Since(acked))
							mu.Unlock()
							return
						}
						time.Sleep(5 * time.Millisecond)
					}
					mu.Lock()
					late++
					mu.Unlock()
				})
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range b.N {
		<-tick.C
		work <- i
	}
	tick.Stop()
	close(work)
	writers.Wait()
	elapsed := time.Since(start)
	pollers.Wait()
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if late > 0 {
		b.Errorf("%d sampled writes did not reach the projection within 10 s", late)
	}
	if len(delays) == 0 {
		b.Fatal("no sample")
	}
	slices.Sort(delays)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds())/1000, "p99-ms")
}
