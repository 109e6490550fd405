package natsbus_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/natsbus"
	"github.com/casekeeper/core/pkg/testinfra"
)

// A lone message is handed over at once; messages that arrive while a round is handled make the next round, in
// order, up to Batch.
func TestConsumeBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := testinfra.JetStream(t, testinfra.NATS(t).URL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var rounds [][]int
	var firstAt time.Time
	gate := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- natsbus.ConsumeBatches(ctx, cons, natsbus.BatchOptions{Batch: 50, MaxWait: 20 * time.Millisecond}, func(msgs []jetstream.Msg) {
			var round []int
			for _, m := range msgs {
				n, _ := strconv.Atoi(string(m.Data()))
				round = append(round, n)
				_ = m.Ack()
			}
			mu.Lock()
			rounds = append(rounds, round)
			if len(rounds) == 1 {
				firstAt = time.Now()
			}
			mu.Unlock()
			if len(rounds) == 1 {
				<-gate // hold the first round while the rest arrive
			}
		})
	}()
	sent := time.Now()
	if _, err := js.Publish(ctx, "t.x", []byte("0")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 120; i++ {
		for {
			mu.Lock()
			started := len(rounds) > 0
			mu.Unlock()
			if started {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := js.Publish(ctx, "t.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		total := 0
		for _, r := range rounds {
			total += len(r)
		}
		mu.Unlock()
		if total == 121 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 121 messages handed over", total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ConsumeBatches ended with %v after its context ended", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The others were published only once the first round had begun: it did not wait for them.
	if len(rounds[0]) != 1 {
		t.Fatalf("the lone first message came as a round of %d after %s", len(rounds[0]), firstAt.Sub(sent))
	}
	next := 0
	for _, r := range rounds {
		if len(r) > 50 {
			t.Fatalf("a round of %d, above the batch of 50", len(r))
		}
		for _, n := range r {
			if n != next {
				t.Fatalf("message %d handed over where %d was due", n, next)
			}
			next++
		}
	}
	// 120 messages waiting when the first round returned: whole rounds of 50, not one per message.
	if len(rounds) > 4 {
		t.Fatalf("120 waiting messages came in %d rounds", len(rounds)-1)
	}
}
