// Package httpsender makes the outbound POST of a webhook through a client that refuses to reach internal
// networks: the address is checked when the connection is made, after DNS resolution, so a name that resolves to
// a private address later than it was saved is still refused.
package httpsender

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrForbiddenAddress is a destination inside a network that webhooks must not reach.
var ErrForbiddenAddress = errors.New("destination address is not allowed")

// blocked lists ranges that are not covered by the netip predicates below but are not the public internet.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),         // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),     // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),      // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),     // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),       // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),      // NAT64: may embed a private IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),    // local-use NAT64
	netip.MustParsePrefix("2002::/16"),         // 6to4: may embed a private IPv4 address
	netip.MustParsePrefix("fd00:ec2::254/128"), // AWS metadata over IPv6 (also inside fc00::/7)
}

// CheckAddr refuses private, loopback (unless allowLoopback), link-local (which holds the cloud metadata address
// 169.254.169.254), multicast, unspecified and reserved addresses.
func CheckAddr(ip netip.Addr, allowLoopback bool) error {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: invalid address", ErrForbiddenAddress)
	case ip.IsLoopback():
		if allowLoopback {
			return nil
		}
		return fmt.Errorf("%w: %s is a loopback address", ErrForbiddenAddress, ip)
	case ip.IsPrivate():
		return fmt.Errorf("%w: %s is a private address", ErrForbiddenAddress, ip)
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is a link-local address", ErrForbiddenAddress, ip)
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: %s is not a unicast address", ErrForbiddenAddress, ip)
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is in the reserved range %s", ErrForbiddenAddress, ip, p)
		}
	}
	return nil
}

// control runs on every socket before connect, with the resolved address: the one place that cannot be fooled by
// DNS rebinding, since it sees exactly what is dialled.
func control(allowLoopback bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
		}
		return CheckAddr(ap.Addr(), allowLoopback)
	}
}
