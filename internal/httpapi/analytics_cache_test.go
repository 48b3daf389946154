package httpapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

func TestLocalAnalyticsCache(t *testing.T) {
	c := newLocalAnalyticsCache()
	ctx := context.Background()
	set := func(key, value string, ttl time.Duration) {
		t.Helper()
		if err := c.Set(ctx, key, []byte(value), ttl); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := c.Get(ctx, "q"); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	set("q", "answer", time.Hour)
	if v, ok, _ := c.Get(ctx, "q"); !ok || string(v) != "answer" {
		t.Fatalf("after Set: %q %v", v, ok)
	}
	if _, ok, _ := c.Get(ctx, "other"); ok {
		t.Fatal("another key hit")
	}
	// An entry is gone once its TTL has passed.
	set("short", "x", time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok, _ := c.Get(ctx, "short"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry still there 10 s after a 1 ms TTL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Expired entries are dropped when a Set finds 1000 held; live ones stay.
	c = newLocalAnalyticsCache()
	set("live", "x", time.Hour)
	for i := range 999 {
		set(fmt.Sprint("old", i), "x", -time.Second)
	}
	if n := len(c.entries); n != 1000 {
		t.Fatalf("%d entries before the sweep, want 1000", n)
	}
	set("new", "y", time.Hour)
	if n := len(c.entries); n != 2 {
		t.Fatalf("%d entries after the sweep, want 2 (live and new)", n)
	}
	if _, ok, _ := c.Get(ctx, "live"); !ok {
		t.Fatal("the sweep dropped a live entry")
	}
}

func TestAnalyticsKeyCoversEveryParameter(t *testing.T) {
	base := store.AnalyticsQuery{Start: time.Unix(1767225600, 0), End: time.Unix(1767225600+3600, 0), Bucket: time.Minute}
	variants := []store.AnalyticsQuery{base}
	for _, f := range []func(*store.AnalyticsQuery){
		func(q *store.AnalyticsQuery) { q.Start = q.Start.Add(-time.Minute) },
		func(q *store.AnalyticsQuery) { q.End = q.End.Add(time.Minute) },
		func(q *store.AnalyticsQuery) { q.Bucket = 5 * time.Minute },
		func(q *store.AnalyticsQuery) { q.EventType = "click" },
		func(q *store.AnalyticsQuery) { q.UserID = "click" },
		func(q *store.AnalyticsQuery) { q.EventType, q.UserID = "a\x00b", "c" },
		func(q *store.AnalyticsQuery) { q.EventType, q.UserID = "a", "b\x00c" },
	} {
		q := base
		f(&q)
		variants = append(variants, q)
	}
	seen := map[string]int{}
	for i, q := range variants {
		k := analyticsKey(q)
		if j, dup := seen[k]; dup {
			t.Errorf("queries %d and %d share the key %q", j, i, k)
		}
		seen[k] = i
	}
	same := base
	same.Start = same.Start.In(time.FixedZone("x", 3600))
	if analyticsKey(same) != analyticsKey(base) {
		t.Error("the same instant in another zone has another key")
	}
}
