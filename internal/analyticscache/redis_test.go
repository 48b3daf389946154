package analyticscache_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/analyticscache"
	"github.com/evp-dev/evp/internal/httpapi"
	"github.com/evp-dev/evp/internal/store"
	"github.com/evp-dev/evp/internal/testutil"
)

var _ httpapi.AnalyticsCache = (*analyticscache.Redis)(nil)

func TestGetSetExpire(t *testing.T) {
	c := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, c)
	cache := analyticscache.NewRedis(c, prefix)
	ctx := context.Background()

	if v, ok, err := cache.Get(ctx, "q1"); err != nil || ok || v != nil {
		t.Fatalf("empty cache: %q %v %v", v, ok, err)
	}
	if err := cache.Set(ctx, "q1", []byte(`{"totalEvents":3}`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := cache.Get(ctx, "q1"); err != nil || !ok || string(v) != `{"totalEvents":3}` {
		t.Fatalf("after Set: %q %v %v", v, ok, err)
	}
	if _, ok, _ := cache.Get(ctx, "q2"); ok {
		t.Fatal("another key hit")
	}
	key := cache.Key("q1")
	if !strings.HasPrefix(key, prefix+"analytics:") || cache.Key("q2") == key {
		t.Fatalf("key %q", key)
	}
	if ttl := c.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("TTL %v, want (0, 10s]", ttl)
	}
	// An entry is gone once its TTL has passed.
	if err := cache.Set(ctx, "short", []byte("x"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, err := cache.Get(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry still there 10 s after a 50 ms TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type staticKeys struct{}

func (staticKeys) Authenticate(_ context.Context, plain string) (accounts.APIKey, error) {
	if plain != "evp_test" {
		return accounts.APIKey{}, accounts.ErrInvalidKey
	}
	return accounts.APIKey{ID: "key_test"}, nil
}

func (staticKeys) MarkUsed(accounts.APIKey) {}

// replica is one API server with its own analytics backend, counting computations.
type replica struct {
	srv   *httpapi.Server
	calls atomic.Int64
}

func newReplica(cache httpapi.AnalyticsCache, total *atomic.Int64) *replica {
	r := &replica{}
	r.srv = httpapi.New(httpapi.Deps{
		Auth: httpapi.AuthDeps{Keys: staticKeys{}}, Serving: httpapi.ServingDeps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Reading: httpapi.ReadingDeps{AnalyticsCache: cache,
			Analytics: func(_ context.Context, q store.AnalyticsQuery) (store.AnalyticsResult, error) {
				r.calls.Add(1)
				n := total.Add(1) // a different answer each time it is computed
				return store.AnalyticsResult{TotalEvents: n, EventsByType: []store.TypeCount{{EventType: q.EventType, Count: n, Percentage: 100}}}, nil
			}},
	})
	r.srv.SetReady(true)
	return r
}

// get asks for analytics and returns X-Cache and totalEvents.
func (r *replica) get(t *testing.T, query string) (string, float64) {
	t.Helper()
	req := httptest.NewRequest("GET", "/api/v1/analytics/metrics?"+query, nil)
	req.Header.Set("x-api-key", "evp_test")
	rec := httptest.NewRecorder()
	r.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", query, rec.Code, rec.Body)
	}
	var env struct {
		Success bool `json:"success"`
		Data    struct {
			TotalEvents float64 `json:"totalEvents"`
			TimeRange   struct {
				Start string `json:"start"`
			} `json:"timeRange"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || !env.Success || env.Data.TimeRange.Start == "" {
		t.Fatalf("%s: %v %s", query, err, rec.Body)
	}
	return rec.Header().Get("X-Cache"), env.Data.TotalEvents
}

// Two replicas with their own Redis clients share answers: one computes, the other hits,
// and every parameter is part of the key.
func TestReplicasShareAnswers(t *testing.T) {
	c1 := testutil.Redis(t)
	prefix := testutil.RedisPrefix(t, c1)
	c2 := testutil.Redis(t)
	var total atomic.Int64
	a := newReplica(analyticscache.NewRedis(c1, prefix), &total)
	b := newReplica(analyticscache.NewRedis(c2, prefix), &total)

	const day = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
	if xc, n := a.get(t, day); xc != "MISS" || n != 1 {
		t.Fatalf("first: X-Cache=%s totalEvents=%v", xc, n)
	}
	if xc, n := b.get(t, day); xc != "HIT" || n != 1 || b.calls.Load() != 0 {
		t.Fatalf("other replica: X-Cache=%s totalEvents=%v, %d computations", xc, n, b.calls.Load())
	}
	// The same range written differently (seconds inside the minute) is the same query.
	if xc, n := b.get(t, "from=2026-01-01T00:00:30Z&to=2026-01-01T23:59:10Z"); xc != "HIT" || n != 1 {
		t.Fatalf("same range: X-Cache=%s totalEvents=%v", xc, n)
	}
	// Each parameter makes its own entry.
	for i, q := range []string{
		day + "&eventType=click",
		day + "&userId=alice",
		day + "&eventType=click&userId=alice",
		"from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z",
		"from=2025-12-31T00:00:00Z&to=2026-01-02T00:00:00Z",
		"from=2025-12-31T00:00:00Z&to=2025-12-31T00:20:00Z",
	} {
		want := float64(i + 2)
		if xc, n := b.get(t, q); xc != "MISS" || n != want {
			t.Fatalf("%s: X-Cache=%s totalEvents=%v, want MISS %v", q, xc, n, want)
		}
		if xc, n := a.get(t, q); xc != "HIT" || n != want {
			t.Fatalf("%s on the first replica: X-Cache=%s totalEvents=%v, want HIT %v", q, xc, n, want)
		}
	}
	if got := a.calls.Load() + b.calls.Load(); got != 7 {
		t.Errorf("%d computations for 7 distinct queries", got)
	}
	// Every entry is under the prefix with the 10 s TTL.
	keys, err := c1.Keys(context.Background(), prefix+"analytics:*").Result()
	if err != nil || len(keys) != 7 {
		t.Fatalf("%d keys under the prefix (%v), want 7", len(keys), err)
	}
	for _, k := range keys {
		if ttl := c1.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > 10*time.Second {
			t.Errorf("%s: TTL %v, want (0, 10s]", k, ttl)
		}
	}
}

// A Redis that cannot be reached, or that answers with an error, costs the cache, never
// the answer.
func TestFailsOpen(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		cache := analyticscache.NewRedis(c, "evp:")
		if _, _, err := cache.Get(context.Background(), "q"); err == nil {
			t.Fatal("Get on an unreachable Redis: no error")
		}
		var total atomic.Int64
		r := newReplica(cache, &total)
		for want := 1.0; want <= 2; want++ {
			if xc, n := r.get(t, "timeRange=1h"); xc != "MISS" || n != want {
				t.Fatalf("X-Cache=%s totalEvents=%v, want MISS %v", xc, n, want)
			}
		}
	})
	t.Run("error reply", func(t *testing.T) {
		c := testutil.Redis(t)
		prefix := testutil.RedisPrefix(t, c)
		cache := analyticscache.NewRedis(c, prefix)
		var total atomic.Int64
		r := newReplica(cache, &total)
		const day = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
		if xc, _ := r.get(t, day); xc != "MISS" {
			t.Fatalf("X-Cache=%s", xc)
		}
		// The entry's key now holds a list: GET answers WRONGTYPE.
		ctx := context.Background()
		keys, _ := c.Keys(ctx, prefix+"analytics:*").Result()
		if len(keys) != 1 {
			t.Fatalf("keys %v", keys)
		}
		c.Del(ctx, keys[0])
		c.LPush(ctx, keys[0], "x")
		if err := c.Get(ctx, keys[0]).Err(); err == nil || errors.Is(err, redis.Nil) {
			t.Fatalf("GET of a list: %v, want WRONGTYPE", err)
		}
		if xc, n := r.get(t, day); xc != "MISS" || n != 2 {
			t.Fatalf("X-Cache=%s totalEvents=%v, want MISS 2", xc, n)
		}
		// SET replaced the list with the new answer, which the next request gets.
		if xc, n := r.get(t, day); xc != "HIT" || n != 2 {
			t.Fatalf("X-Cache=%s totalEvents=%v, want HIT 2", xc, n)
		}
	})
}

// Purge drops every answer of the prefix, more than one SCAN page of them, and nothing of
// another prefix.
func TestPurge(t *testing.T) {
	c := testutil.Redis(t)
	ctx := context.Background()
	cache := analyticscache.NewRedis(c, testutil.RedisPrefix(t, c))
	other := analyticscache.NewRedis(c, testutil.RedisPrefix(t, c)+"other:")
	for i := range 2500 {
		if err := cache.Set(ctx, "q"+strconv.Itoa(i), []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Set(ctx, "q0", []byte("kept"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := cache.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"q0", "q1234", "q2499"} {
		if _, ok, err := cache.Get(ctx, q); ok || err != nil {
			t.Fatalf("%s after Purge: hit %v, %v", q, ok, err)
		}
	}
	if v, ok, err := other.Get(ctx, "q0"); !ok || err != nil || string(v) != "kept" {
		t.Fatalf("another prefix's answer after Purge: %q %v %v", v, ok, err)
	}
}
