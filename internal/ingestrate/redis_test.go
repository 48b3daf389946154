package ingestrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func testClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("EVP_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis at %s is required (EVP_REQUIRE_SERVICES=1): %v", url, err)
		}
		t.Skipf("Redis at %s is unreachable, skipping: %v", url, err)
	}
	return c
}

// Two replicas counting into the same prefix report one rate over the last full seconds.
func TestRateAcrossReplicas(t *testing.T) {
	c := testClient(t)
	var b [6]byte
	rand.Read(b[:])
	prefix := "evp-test-" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		keys, _ := c.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	base := time.Unix(1_900_000_000, 0)
	clock := base
	a, z := NewRedis(c, prefix), NewRedis(c, prefix)
	a.now = func() time.Time { return clock }
	z.now = func() time.Time { return clock }

	a.Add(300) // second base
	z.Add(200)
	clock = base.Add(3 * time.Second)
	a.Add(500) // second base+3
	a.flush()
	z.flush()

	ctx := context.Background()
	// At base+3 the current second is partial and not counted: only base's 500.
	if got, err := a.Rate(ctx); err != nil || got != 50 {
		t.Fatalf("rate at base+3 = %v, %v; want 50", got, err)
	}
	clock = base.Add(4 * time.Second)
	if got, _ := z.Rate(ctx); got != 100 {
		t.Fatalf("rate at base+4 = %v, want 100 (1000 events / 10 s)", got)
	}
	clock = base.Add(12 * time.Second) // base has left the window
	if got, _ := a.Rate(ctx); got != 50 {
		t.Fatalf("rate at base+12 = %v, want 50", got)
	}
	a.Close()
	z.Close()
	if ttl := c.TTL(ctx, prefix+"ingest:1900000000").Val(); ttl <= 0 || ttl > 2*Window*time.Second {
		t.Errorf("per-second key TTL = %v, want within %v", ttl, 2*Window*time.Second)
	}
}
