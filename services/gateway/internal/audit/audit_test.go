package audit

import (
	"testing"
	"time"
)

func TestPageTokenRoundTrip(t *testing.T) {
	at := time.Now().UTC().Truncate(time.Millisecond)
	r := Record{ID: NewID(at), At: at}
	p, err := NewPage("acme", time.Time{}, 0, NextToken(r))
	if err != nil || !p.AfterAt.Equal(at) || p.AfterID != r.ID || p.Limit != DefaultPageSize {
		t.Fatalf("page %+v %v", p, err)
	}
	if _, err := NewPage("acme", time.Time{}, 0, "junk"); err == nil {
		t.Fatal("junk token accepted")
	}
}
