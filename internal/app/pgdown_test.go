package app

import (
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// tcpProxy forwards a loopback port to target until it is cut, which also drops every
// connection through it: a way to take a real server away from evp in a test.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// cut refuses new connections and closes the open ones.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// PostgreSQL down: keys already cached keep ingesting, a key not yet seen gets 503
// with Retry-After, health names the account store; all of it recovers when it returns.
func TestPostgresDown(t *testing.T) {
	dbURL := testutil.PostgresDB(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Skipf("EVP_TEST_DATABASE_URL is not a URL; this test needs one: %v", err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	in := start(t, "", map[string]string{"DATABASE_URL": u.String(), "JWT_SECRET": strings.Repeat("k", 40)})
	admin := in.signInAs("ops@example.com")
	mk := func(name string) string {
		r := in.do("POST", "/api/auth/api-key", mustJSON(t, map[string]string{"name": name}), bearer(admin))
		if r.status != 200 {
			t.Fatalf("create key: %d %s", r.status, r.raw)
		}
		k, _ := r.data()["apiKey"].(string)
		return k
	}
	cached, fresh := mk("cached"), mk("fresh")
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("pg-down-1", "click")), map[string]string{"x-api-key": cached}); r.status != 202 {
		t.Fatalf("before the outage: %d %s", r.status, r.raw)
	}

	proxy.cut()
	if r := in.do("POST", "/api/v1/events", mustJSON(t, ev("pg-down-2", "click")), map[string]string{"x-api-key": cached}); r.status != 202 {
		t.Fatalf("cached key during the outage: %d %s, want 202", r.status, r.raw)
	}
	started := time.Now()
	r := in.do("POST", "/api/v1/events", mustJSON(t, ev("pg-down-3", "click")), map[string]string{"x-api-key": fresh})
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.errorCode() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("new key during the outage: %d %v %s, want 503 with Retry-After", r.status, r.header, r.raw)
	}
	t.Logf("503 after %v", time.Since(started))
	h := in.do("GET", "/api/health", nil, noKey())
	if h.status != 503 || !strings.Contains(string(h.raw), "accountStore") {
		t.Fatalf("health during the outage: %d %s, want 503 naming accountStore", h.status, h.raw)
	}

	proxy.restore()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := in.do("POST", "/api/v1/events", mustJSON(t, ev("pg-down-3", "click")), map[string]string{"x-api-key": fresh})
		if r.status == 202 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after PostgreSQL came back: %d %s", r.status, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h := in.do("GET", "/api/health", nil, noKey()); h.status != 200 {
		t.Fatalf("health after the outage: %d %s", h.status, h.raw)
	}
	in.key = cached // the key start made lives in the embedded store, not in PostgreSQL
	in.waitStored(3)
}
