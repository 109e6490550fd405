package app

import (
	"net/netip"
	"strconv"
	"strings"
)

// numericHost reports whether host is an IPv4 address in the eyes of a resolver or a browser, and which one.
// inet_aton (glibc, musl) and the WHATWG URL standard read far more than a.b.c.d: one to four parts, each decimal,
// octal (a leading 0) or hex (0x), the last part filling the remaining bytes, and a trailing dot — so that
// 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518 and 169.254.169.254. all name 169.254.169.254.
// A host whose last label is a number is numeric (the WHATWG rule); ok is false when it is numeric but no address
// at all (a part out of range, too many parts).
func numericHost(host string) (addr netip.Addr, numeric, ok bool) {
	labels := strings.Split(host, ".")
	if len(labels) > 1 && labels[len(labels)-1] == "" {
		labels = labels[:len(labels)-1]
	}
	if !numberLabel(labels[len(labels)-1]) {
		return netip.Addr{}, false, false
	}
	if len(labels) > 4 {
		return netip.Addr{}, true, false
	}
	parts := make([]uint64, len(labels))
	for i, l := range labels {
		n, ok := parseIPv4Part(l)
		if !ok {
			return netip.Addr{}, true, false
		}
		parts[i] = n
	}
	for _, p := range parts[:len(parts)-1] {
		if p > 0xff {
			return netip.Addr{}, true, false
		}
	}
	last := parts[len(parts)-1]
	if last >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, true, false
	}
	v := last
	for i, p := range parts[:len(parts)-1] {
		v |= p << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, true
}

func numberLabel(l string) bool {
	if l == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(l), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

func parseIPv4Part(l string) (uint64, bool) {
	base, digits := 10, l
	switch lower := strings.ToLower(l); {
	case strings.HasPrefix(lower, "0x"):
		base, digits = 16, lower[2:]
		if digits == "" {
			return 0, true // "0x" is 0 to the WHATWG parser
		}
	case len(l) > 1 && l[0] == '0':
		base, digits = 8, l[1:]
	}
	if digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, base, 32)
	return n, err == nil
}
