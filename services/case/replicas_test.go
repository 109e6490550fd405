package casesvc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// The claims about replicas are proven with separate OS processes of the real binary, sharing one NATS and one
// database, as two pods of the case service would.

// replica is one case-service process.
type replica struct {
	env  []string
	grpc string
	http string
	proc *testinfra.Process
}

func startReplica(t *testing.T, bin string, env []string) *replica {
	t.Helper()
	r := &replica{env: env, grpc: testinfra.FreeAddr(t), http: testinfra.FreeAddr(t)}
	r.start(t, bin)
	return r
}

func (r *replica) start(t *testing.T, bin string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), r.env...), "CASE_GRPC_ADDR="+r.grpc, "CASE_HTTP_ADDR="+r.http, "LOG_LEVEL=warn")
	r.proc = testinfra.StartProcess(t, cmd)
	r.proc.WaitReady(t, "http://"+r.http+"/readyz", 60*time.Second)
}

type ackedWrite struct {
	caseID  string
	version int64
	ref     string
}

func TestTwoProcessesGiveOneSuccessorPerVersion(t *testing.T) {
	replicaWrites(t, false)
}

func TestTwoProcessesOneKilledMidRunLoseNoAcknowledgedWrite(t *testing.T) {
	replicaWrites(t, true)
}

// replicaWrites runs 2,400 concurrent writes from 8 clients, spread over two case-service processes, against the
// same 20 cases, and reconciles what was acknowledged with what the stream holds. With kill, one process is
// SIGKILLed a third of the way in and started again.
func replicaWrites(t *testing.T, kill bool) {
	bin := testinfra.Build(t, "./cmd/case")
	srv := testinfra.NATS(t)
	uri, db := testinfra.Mongo(t)
	env := []string{"NATS_URL=" + srv.URL(), "MONGODB_URI=" + uri, "MONGODB_DATABASE=" + db,
		"KEYCLOAK_URL=" + testinfra.KeycloakURL(t)}
	replicas := []*replica{startReplica(t, bin, env), startReplica(t, bin, env)}
	apis := make([]pb.CaseServiceClient, len(replicas))
	for i, r := range replicas {
		apis[i] = pb.NewCaseServiceClient(testinfra.Dial(t, r.grpc))
	}
	ctx := testinfra.Bearer(t.Context(), token(t, acmeProvider))

	// Idempotent creation across replicas: the same request id sent to both at once makes one case.
	const caseCount = 20
	ids := make([]string, caseCount)
	for i := range ids {
		var wg sync.WaitGroup
		got := make([]string, 6)
		for k := range got {
			wg.Go(func() {
				resp, err := apis[k%2].CreateCase(ctx, &pb.CreateCaseRequest{RequestId: fmt.Sprintf("replica-case-%d", i), Applicant: jane()})
				if err != nil {
					t.Errorf("create %d via replica %d: %v", i, k%2, err)
					return
				}
				got[k] = resp.GetCase().GetId()
			})
		}
		wg.Wait()
		for _, id := range got {
			if id != got[0] {
				t.Fatalf("one request id made two cases across replicas: %v", got)
			}
		}
		ids[i] = got[0]
	}
	if t.Failed() {
		return
	}

	const clients, perClient = 8, 300
	var (
		mu      sync.Mutex
		acked   []ackedWrite
		failed  atomic.Int64
		started atomic.Int64
	)
	killAt := int64(clients * perClient / 3)
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := range perClient {
				if kill && started.Add(1) == killAt {
					close(killed)
				}
				caseID := ids[(c*7+n)%caseCount]
				ref := fmt.Sprintf("c%d-w%d", c, n)
				resp, err := apis[c%2].UpdateCase(ctx, &pb.UpdateCaseRequest{Id: caseID, Metadata: map[string]string{"write": ref},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"metadata"}}})
				if err != nil {
					if !kill {
						t.Errorf("client %d write %d: %v", c, n, err)
						return
					}
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, ackedWrite{caseID: caseID, version: resp.GetCase().GetVersion(), ref: ref})
				mu.Unlock()
			}
		})
	}
	if kill {
		<-killed
		replicas[1].proc.Kill()
		time.Sleep(300 * time.Millisecond)
		replicas[1].start(t, bin)
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every acknowledged write has its own (case, version).
	seen := map[string]string{}
	for _, w := range acked {
		key := fmt.Sprintf("%s/%d", w.caseID, w.version)
		if other, dup := seen[key]; dup {
			t.Fatalf("two acknowledged writes got %s: %s and %s", key, other, w.ref)
		}
		seen[key] = w.ref
	}

	// The stream: per case, versions contiguous from 1, each once; each acknowledged write is the event of its
	// version.
	byCase := streamEvents(t, srv.URL())
	total := 0
	for _, id := range ids {
		evs := byCase[id]
		total += len(evs)
		for i, ev := range evs {
			if ev.GetCaseVersion() != int64(i+1) {
				t.Fatalf("case %s: event %d carries version %d; versions must be contiguous from 1, each once", id, i, ev.GetCaseVersion())
			}
		}
	}
	for _, w := range acked {
		evs := byCase[w.caseID]
		if int(w.version) > len(evs) {
			t.Fatalf("acknowledged write %s (%s v%d) is not on the stream", w.ref, w.caseID, w.version)
		}
		if evs[w.version-1].GetData().GetMetadata()["write"] != w.ref {
			t.Fatalf("the event of %s v%d is not the acknowledged write %s", w.caseID, w.version, w.ref)
		}
	}
	inDoubt := total - caseCount - len(acked)
	switch {
	case !kill && inDoubt != 0:
		t.Fatalf("the stream holds %d events, want %d (20 creations + %d acknowledged writes)", total, caseCount+len(acked), len(acked))
	case inDoubt < 0 || int64(inDoubt) > failed.Load():
		t.Fatalf("%d events on the stream beyond the acknowledged writes, with %d failed calls", inDoubt, failed.Load())
	}
	t.Logf("%d writes acknowledged, %d failed (process killed: %v), %d of those stored before the failure reached the client",
		len(acked), failed.Load(), kill, inDoubt)
	if len(acked) < 2000 && !kill {
		t.Fatalf("only %d acknowledged writes", len(acked))
	}

	// The projection converges on the stream's last version of every case.
	testinfra.Eventually(t, 30*time.Second, "the projection at every case's last version", func() bool {
		resp, err := apis[0].ListCases(ctx, &pb.ListCasesRequest{PageSize: 100})
		if err != nil {
			return false
		}
		n := 0
		for _, c := range resp.GetCases() {
			if evs := byCase[c.GetId()]; len(evs) > 0 && c.GetVersion() == int64(len(evs)) {
				n++
			}
		}
		return n == caseCount
	})
}

// streamEvents reads every case event on the stream, grouped by case in stream order.
func streamEvents(t *testing.T, url string) map[string][]*pb.CaseEvent {
	t.Helper()
	js := testinfra.JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*pb.CaseEvent{}
	for n := uint64(0); n < info.State.Msgs; n++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) {
				t.Fatalf("read %d of %d events", n, info.State.Msgs)
			}
			t.Fatal(err)
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out[ev.GetCaseId()] = append(out[ev.GetCaseId()], ev)
	}
	return out
}
