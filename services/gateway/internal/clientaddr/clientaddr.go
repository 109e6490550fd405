// Package clientaddr finds the address of the client behind a request: the TCP peer, unless the peer is one of the
// configured trusted proxies, in which case X-Forwarded-For is read from the right, hop by hop, to the first
// address that is not a trusted proxy. Entries further left were written by the client and are never believed.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver knows which proxies to believe. The zero value trusts none: the TCP peer is the client.
type Resolver struct{ trusted []netip.Prefix }

// New parses the trusted proxies (GATEWAY_TRUSTED_PROXIES): CIDR prefixes or single addresses.
func New(proxies []string) (*Resolver, error) {
	r := &Resolver{}
	for _, p := range proxies {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR prefix", p)
			}
			a = a.Unmap()
			r.trusted = append(r.trusted, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR prefix", p)
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		r.trusted = append(r.trusted, pfx.Masked())
	}
	return r, nil
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns the client's address. A peer that is no trusted proxy is the client, whatever headers it sends.
func (r *Resolver) Of(req *http.Request) netip.Addr {
	peer := parse(req.RemoteAddr)
	if !peer.IsValid() || len(r.trusted) == 0 || !r.isTrusted(peer) {
		return peer
	}
	hops := forwardedFor(req.Header)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parse(hops[i])
		if !a.IsValid() {
			// Not written by a proxy we trust (they write addresses): stop at the last hop that was.
			return client
		}
		client = a
		if !r.isTrusted(a) {
			return a
		}
	}
	return client
}

// forwardedFor is every X-Forwarded-For entry in order, over all the header's lines.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(line, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	return hops
}

// parse reads "1.2.3.4", "1.2.3.4:5678", "::1", "[::1]:5678"; anything else is the invalid Addr.
func parse(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

// Key is the budget key of an address: IPv4 addresses as they are, IPv6 by their /64, which one subscriber
// usually holds whole (so rotating addresses within it does not give a fresh budget). An invalid address (no
// peer) is one key of its own.
func Key(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	default:
		p, _ := a.Prefix(64)
		return p.String()
	}
}
