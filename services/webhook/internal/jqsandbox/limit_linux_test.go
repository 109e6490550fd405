package jqsandbox

import "testing"

func TestLinksLibc(t *testing.T) {
	for _, c := range []struct {
		maps string
		want bool
	}{
		{"00400000-00e3c000 r-xp 00000000 08:01 123 /usr/local/bin/webhook\n7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n", false},
		{"00400000-00e3c000 r-xp 00000000 08:01 123 /tmp/go-build/tests.test\n" +
			"7f1c2a000000-7f1c2a028000 r--p 00000000 08:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6\n", true},
		{"7f1c2a000000-7f1c2a028000 r--p 00000000 08:01 456 /opt/libc.so.6.bak/webhook\n", false},
		{"7f1c2a000000-7f1c2a028000 rw-p 00000000 00:00 0 \n", false},
	} {
		if got := linksLibc(c.maps); got != c.want {
			t.Errorf("linksLibc(%q) = %v, want %v", c.maps, got, c.want)
		}
	}
}
