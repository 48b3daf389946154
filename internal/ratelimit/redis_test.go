package ratelimit_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/httprate"

	"github.com/evp-dev/evp/internal/ratelimit"
	"github.com/evp-dev/evp/internal/testutil"
)

func TestCounterRoundTrip(t *testing.T) {
	rc := testutil.Redis(t)
	c := ratelimit.NewRedis(rc, testutil.RedisPrefix(t, rc))
	c.Config(10, time.Minute)
	now := time.Now().Truncate(time.Minute)
	prev := now.Add(-time.Minute)
	if err := c.IncrementBy("1.2.3.4", prev, 4); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Increment("1.2.3.4", now); err != nil {
			t.Fatal(err)
		}
	}
	cur, old, err := c.Get("1.2.3.4", now, prev)
	if err != nil || cur != 3 || old != 4 {
		t.Fatalf("Get = %d, %d, %v; want 3, 4", cur, old, err)
	}
	if cur, old, err := c.Get("5.6.7.8", now, prev); err != nil || cur != 0 || old != 0 {
		t.Fatalf("Get(other key) = %d, %d, %v; want 0, 0", cur, old, err)
	}
}

// clientIP keys a request by the TCP peer's address.
func clientIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	return host, err
}

// Two limiters (two API replicas) sharing Redis enforce one limit together.
func TestReplicasShareTheLimit(t *testing.T) {
	client := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, client)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	replica := func() http.Handler {
		return httprate.LimitBy(5, time.Hour, clientIP,
			httprate.WithLimitCounter(ratelimit.NewRedis(client, prefix)))(ok)
	}
	a, b := replica(), replica()
	codes := []int{}
	for i := range 8 {
		h := a
		if i%2 == 1 {
			h = b
		}
		req := httptest.NewRequest("POST", "/api/auth/request-code", nil)
		req.RemoteAddr = "203.0.113.9:5555"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		codes = append(codes, rec.Code)
	}
	passed := 0
	for _, c := range codes {
		if c == 200 {
			passed++
		}
	}
	if passed != 5 || codes[5] != http.StatusTooManyRequests {
		t.Fatalf("statuses across two replicas = %v; want the first 5 through and the rest 429", codes)
	}
}
