package events_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/casekeeper/core/pkg/events"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

func TestMessageCarriesRoutingHeadersAndDecodes(t *testing.T) {
	ev := &pb.CaseEvent{Id: "ev-1", Type: events.TypeStatusChanged, Tenant: "acme", CaseId: "c-1", CaseVersion: 7,
		Data: &pb.Case{Id: "c-1", Version: 7}}
	m, err := events.Message(ev)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "cases.acme.c-1" || m.Header.Get(jetstream.MsgIDHeader) != "ev-1" ||
		m.Header.Get(events.HeaderType) != events.TypeStatusChanged || m.Header.Get(events.HeaderVersion) != "7" {
		t.Fatalf("message: %s %v", m.Subject, m.Header)
	}
	back, err := events.Decode(m.Data)
	if err != nil || !proto.Equal(back, ev) {
		t.Fatalf("decode: %v %v", back, err)
	}
	if _, err := events.Decode([]byte{0xff, 0xff}); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestStreamConfigKeepsDedupWithinRetention(t *testing.T) {
	cfg := events.StreamConfig(time.Hour, 0)
	if cfg.Duplicates > cfg.MaxAge || cfg.Replicas != 1 || cfg.Storage != jetstream.FileStorage {
		t.Fatalf("%+v", cfg)
	}
	if events.StreamConfig(720*time.Hour, 3).Duplicates != 24*time.Hour {
		t.Fatal("a day of deduplication expected")
	}
}
