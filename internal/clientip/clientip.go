// Package clientip finds the address of the client behind a request, believing
// X-Forwarded-For only as far as it was written by trusted proxies.
//
// Each proxy appends the address of its own peer to X-Forwarded-For, so the entries a client
// can forge are on the left. The client is the right-most entry that is not a trusted proxy,
// and only when the direct peer is itself a trusted proxy. True-Client-IP, X-Real-IP and
// the Forwarded header are ignored: whether a proxy overwrites them is not known.
package clientip

import (
	"net/http"
	"net/netip"
	"strings"
)

// Private are the proxies trusted when none are configured: loopback and the private
// ranges (RFC 1918, IPv6 unique local). Link-local ranges are not in it: any host on a link
// can take a link-local address without being given one.
var Private = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// Resolver finds client addresses. Safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix // nil: X-Forwarded-For is never believed
}

// New returns a Resolver. Without trustProxy every request's client is its direct peer;
// with it, X-Forwarded-For is believed from the proxies in trusted, or in Private when
// trusted is empty.
func New(trustProxy bool, trusted []netip.Prefix) *Resolver {
	if !trustProxy {
		return &Resolver{}
	}
	if len(trusted) == 0 {
		trusted = Private
	}
	ps := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		ps[i] = netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked()
	}
	return &Resolver{trusted: ps}
}

// unmappedBits is p's length once an IPv4-mapped IPv6 prefix is written as IPv4.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// Trusts reports whether a is a trusted proxy.
func (c *Resolver) Trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr returns the address of the client that made r: the direct peer (r.RemoteAddr),
// unless that is a trusted proxy; then the right-most X-Forwarded-For entry (over every
// X-Forwarded-For header, in order) that is not a trusted proxy. When every entry is a
// trusted proxy, the left-most is the client; an entry that is not an address ends the walk
// at the last address known, the trusted proxy that would have written it. The address is
// invalid only when RemoteAddr is not an IP address (a Unix socket).
func (c *Resolver) Addr(r *http.Request) netip.Addr {
	client := peer(r.RemoteAddr)
	if !client.IsValid() || !c.Trusts(client) {
		return client
	}
	hs := r.Header["X-Forwarded-For"]
	for i := len(hs) - 1; i >= 0; i-- {
		list := hs[i]
		for list != "" {
			entry := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, ok := parse(entry)
			if !ok {
				return client
			}
			client = a
			if !c.Trusts(a) {
				return client
			}
		}
	}
	return client
}

// peer parses a RemoteAddr ("host:port", or a bare address).
func peer(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return normal(ap.Addr())
	}
	a, _ := parse(remote)
	return a
}

// parse reads one X-Forwarded-For entry: an address, optionally with a port, an IPv6
// address optionally in brackets.
func parse(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normal(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normal(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return normal(a), true
		}
	}
	return netip.Addr{}, false
}

// normal writes IPv4-mapped addresses as IPv4 and drops IPv6 zones, so that one client has
// one form.
func normal(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// Key returns the rate-limit key of a client address: an IPv4 address as it is, an IPv6
// address's /64 (a client usually holds a whole /64, and could rotate within it).
func Key(a netip.Addr) string {
	a = normal(a)
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
