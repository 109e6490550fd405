package notify

import (
	"testing"
	"time"
)

func TestNotifyWakesOnlyTheTenantsReaders(t *testing.T) {
	h := NewHub()
	acme, globex := h.Changed("acme"), h.Changed("globex")
	if h.Changed("acme") != acme {
		t.Fatal("two readers of one tenant got different channels")
	}
	h.Notify("acme")
	select {
	case <-acme:
	case <-time.After(time.Second):
		t.Fatal("acme reader not woken")
	}
	select {
	case <-globex:
		t.Fatal("globex reader woken by acme's write")
	default:
	}
	h.Notify("nobody-waits") // must not panic or keep state
	if len(h.chans) != 1 {
		t.Fatalf("hub keeps %d channels, want 1 (globex)", len(h.chans))
	}
}
