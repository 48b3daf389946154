package app

import (
	"context"
	"testing"

	"github.com/evp-dev/evp/internal/testutil"
)

// With REDIS_URL set, API replicas share analytics answers: what one computed, another
// serves from Redis, under the configured key prefix.
func TestAnalyticsCacheSharedByReplicas(t *testing.T) {
	c := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, c)
	dir := t.TempDir()
	vars := map[string]string{
		"EVP_DATA_DIR": dir, "PORT": "0", "SERVER_HOST": "127.0.0.1", "REDIS_URL": testutil.RedisURL(),
		"EVP_STREAM": prefix + "events_stream", "EVP_REDIS_PREFIX": prefix, "EVP_STORE_SYNC": "normal",
	}
	key := createKey(t, dir)
	a := &instance{t: t, url: startRole(t, RoleAPI, vars), dir: dir, key: key}
	b := &instance{t: t, url: startRole(t, RoleAPI, vars), dir: dir, key: key}

	const q = "/api/v1/analytics/metrics?from=2026-01-01T00:00:00Z&to=2026-01-01T06:00:00Z&eventType=click"
	ra := a.do("GET", q, nil, nil)
	if ra.status != 200 || ra.header.Get("X-Cache") != "MISS" {
		t.Fatalf("first replica: %d X-Cache=%q %s", ra.status, ra.header.Get("X-Cache"), ra.raw)
	}
	rb := b.do("GET", q, nil, nil)
	if rb.status != 200 || rb.header.Get("X-Cache") != "HIT" || string(rb.raw) != string(ra.raw) {
		t.Fatalf("second replica: %d X-Cache=%q %s, want the first replica's answer %s", rb.status, rb.header.Get("X-Cache"), rb.raw, ra.raw)
	}
	if r := b.do("GET", q+"&userId=x", nil, nil); r.status != 200 || r.header.Get("X-Cache") != "MISS" {
		t.Fatalf("another filter: %d X-Cache=%q", r.status, r.header.Get("X-Cache"))
	}
	keys, err := c.Keys(context.Background(), prefix+"analytics:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys under %sanalytics: %v %v, want 2", prefix, keys, err)
	}
}
