package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ff::/48")}
	for _, c := range []struct {
		name   string
		trust  bool
		remote string
		xff    []string
		other  map[string]string
		want   string
	}{
		{"no proxy trusted: the peer", false, "203.0.113.9:4000", []string{"198.51.100.1"}, nil, "203.0.113.9"},
		{"untrusted peer: its X-Forwarded-For is ignored", true, "203.0.113.9:4000", []string{"198.51.100.1"}, nil, "203.0.113.9"},
		{"trusted peer without X-Forwarded-For", true, "10.0.0.1:4000", nil, nil, "10.0.0.1"},
		{"one hop", true, "10.0.0.1:4000", []string{"198.51.100.1"}, nil, "198.51.100.1"},
		{"a forged entry on the left", true, "10.0.0.1:4000", []string{"spoofed, 198.51.100.1"}, nil, "198.51.100.1"},
		{"a forged address on the left", true, "10.0.0.1:4000", []string{"192.0.2.66, 198.51.100.1"}, nil, "198.51.100.1"},
		{"a forged trusted address on the left", true, "10.0.0.1:4000", []string{"10.1.1.1, 198.51.100.1"}, nil, "198.51.100.1"},
		{"two trusted hops", true, "10.0.0.1:4000", []string{"192.0.2.66, 198.51.100.1, 10.0.0.2,10.0.0.3"}, nil, "198.51.100.1"},
		{"every hop trusted: the left-most", true, "10.0.0.1:4000", []string{"10.0.0.7, 10.0.0.2"}, nil, "10.0.0.7"},
		{"several headers, in order", true, "10.0.0.1:4000", []string{"192.0.2.66", "198.51.100.1, 10.0.0.2"}, nil, "198.51.100.1"},
		{"several headers, the client in the first", true, "10.0.0.1:4000", []string{"192.0.2.66, 198.51.100.1", "10.0.0.2"}, nil, "198.51.100.1"},
		{"a forged header before the proxy's", true, "10.0.0.1:4000", []string{"192.0.2.66", "198.51.100.1"}, nil, "198.51.100.1"},
		{"garbage after a trusted hop: that hop", true, "10.0.0.1:4000", []string{"198.51.100.1, garbage, 10.0.0.2"}, nil, "10.0.0.2"},
		{"garbage right of the peer: the peer", true, "10.0.0.1:4000", []string{"198.51.100.1, unknown"}, nil, "10.0.0.1"},
		{"empty entries are skipped", true, "10.0.0.1:4000", []string{"198.51.100.1,, ,", ""}, nil, "198.51.100.1"},
		{"an entry with a port", true, "10.0.0.1:4000", []string{"198.51.100.1:5555"}, nil, "198.51.100.1"},
		{"IPv4-mapped IPv6", true, "[::ffff:10.0.0.1]:4000", []string{"::ffff:198.51.100.1"}, nil, "198.51.100.1"},
		{"IPv6 through an IPv6 proxy", true, "[2001:db8:ff::1]:4000", []string{"2001:db8:1:2::3, 2001:db8:ff::2"}, nil, "2001:db8:1:2::3"},
		{"IPv6 in brackets, with a port", true, "[2001:db8:ff::1]:4000", []string{"[2001:db8:1:2::3]:5555"}, nil, "2001:db8:1:2::3"},
		{"IPv6 in brackets", true, "[2001:db8:ff::1]:4000", []string{"[2001:db8:1:2::3]"}, nil, "2001:db8:1:2::3"},
		{"an IPv6 zone is dropped", true, "[fe80::1%eth0]:4000", nil, nil, "fe80::1"},
		{"True-Client-IP and X-Real-IP are ignored", true, "10.0.0.1:4000", []string{"198.51.100.1"},
			map[string]string{"True-Client-IP": "192.0.2.1", "X-Real-IP": "192.0.2.2", "Forwarded": "for=192.0.2.3"}, "198.51.100.1"},
		{"True-Client-IP from an untrusted peer", true, "203.0.113.9:4000", nil, map[string]string{"True-Client-IP": "192.0.2.1"}, "203.0.113.9"},
		{"a bare RemoteAddr", true, "198.51.100.1", nil, nil, "198.51.100.1"},
		{"a Unix socket", true, "@", []string{"198.51.100.1"}, nil, "invalid IP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for k, v := range c.other {
				r.Header.Set(k, v)
			}
			if got := New(c.trust, proxies).Addr(r).String(); got != c.want {
				t.Errorf("Addr = %s, want %s", got, c.want)
			}
		})
	}
}

func TestDefaultTrusted(t *testing.T) {
	c := New(true, nil)
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fd12::1", "::ffff:10.0.0.1"} {
		if !c.Trusts(netip.MustParseAddr(a)) {
			t.Errorf("%s is not trusted by default", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "172.32.0.1", "169.254.1.1", "fe80::1", "100.64.0.1", "2001:db8::1", "::ffff:8.8.8.8"} {
		if c.Trusts(netip.MustParseAddr(a)) {
			t.Errorf("%s is trusted by default", a)
		}
	}
	if New(false, nil).Trusts(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a proxy is trusted without trustProxy")
	}
	only := New(true, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")})
	if only.Trusts(netip.MustParseAddr("127.0.0.1")) || !only.Trusts(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a configured list does not replace the default")
	}
}

func TestKey(t *testing.T) {
	for a, want := range map[string]string{
		"198.51.100.1":         "198.51.100.1",
		"::ffff:198.51.100.1":  "198.51.100.1",
		"2001:db8:1:2::3":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::3":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
	} {
		if got := Key(netip.MustParseAddr(a)); got != want {
			t.Errorf("Key(%s) = %s, want %s", a, got, want)
		}
	}
}
