package clientaddr_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/casekeeper/core/services/gateway/internal/clientaddr"
)

func TestOf(t *testing.T) {
	r, err := clientaddr.New([]string{"10.0.0.0/8", "192.0.2.1", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy: the peer", "198.51.100.7:4000", nil, "198.51.100.7"},
		{"untrusted peer: its header is ignored", "198.51.100.7:4000", []string{"203.0.113.9"}, "198.51.100.7"},
		{"trusted peer: the hop it saw", "10.1.2.3:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"client-written entries left of the first untrusted hop are ignored", "10.1.2.3:4000",
			[]string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", "10.1.2.3:4000", []string{"203.0.113.9, 10.9.9.9", "192.0.2.1"}, "203.0.113.9"},
		{"garbage from a trusted proxy stops at the last believable hop", "10.1.2.3:4000",
			[]string{"203.0.113.9, nonsense, 10.9.9.9"}, "10.9.9.9"},
		{"only trusted hops: the leftmost", "10.1.2.3:4000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"trusted peer without a header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"mapped prefix", "172.16.0.9:1", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		req := &http.Request{RemoteAddr: c.peer, Header: http.Header{}}
		for _, v := range c.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		if got := r.Of(req).String(); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNewRefusesWhatIsNoAddress(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0"} {
		if _, err := clientaddr.New([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestKey(t *testing.T) {
	a := clientaddr.Key(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := clientaddr.Key(netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	if a != b || a != "2001:db8:1:2::/64" {
		t.Errorf("one /64, two keys: %s %s", a, b)
	}
	if k := clientaddr.Key(netip.MustParseAddr("203.0.113.9")); k != "203.0.113.9" {
		t.Errorf("IPv4 key %s", k)
	}
}
