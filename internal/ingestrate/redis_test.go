package ingestrate

import (
	"context"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/testutil"
)

// Two replicas counting into the same prefix report one rate over the last full seconds.
func TestRateAcrossReplicas(t *testing.T) {
	c := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, c)
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
	if ttl := c.TTL(ctx, prefix+"{ingest}:1900000000").Val(); ttl <= 0 || ttl > 2*Window*time.Second {
		t.Errorf("per-second key TTL = %v, want within %v", ttl, 2*Window*time.Second)
	}
}
