package httpapi

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
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

// An answer the store marks unsettled is served but not cached: the next request computes
// the answer again, and the first settled one is kept.
func TestUnsettledAnalyticsNotCached(t *testing.T) {
	unsettled := 2
	calls := 0
	s := historyServer(Deps{Reading: ReadingDeps{
		Analytics: func(context.Context, store.AnalyticsQuery) (store.AnalyticsResult, error) {
			calls++
			res := store.AnalyticsResult{TotalEvents: int64(calls), Unsettled: unsettled > 0}
			unsettled--
			return res, nil
		},
	}})
	for i, want := range []struct {
		cache string
		total string
	}{{"MISS", `"totalEvents":1`}, {"MISS", `"totalEvents":2`}, {"MISS", `"totalEvents":3`}, {"HIT", `"totalEvents":3`}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/analytics/metrics?timeRange=1h", nil)
		req.Header.Set("x-api-key", "evp_bench")
		s.Handler().ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != 200 || rec.Header().Get("X-Cache") != want.cache || !strings.Contains(body, want.total) {
			t.Errorf("request %d: %d X-Cache=%q %s; want X-Cache=%s and %s", i+1, rec.Code, rec.Header().Get("X-Cache"), body, want.cache, want.total)
		}
		if strings.Contains(body, "nsettled") {
			t.Errorf("request %d: the answer shows the Unsettled flag: %s", i+1, body)
		}
	}
}

// forgetterFunc is a store.Forgetter from a function.
type forgetterFunc func(context.Context, string) (int64, error)

func (f forgetterFunc) ForgetUser(ctx context.Context, user string) (int64, error) {
	return f(ctx, user)
}

// A deletion of a user's events drops the cached answers that counted them.
func TestForgetPurgesAnalyticsCache(t *testing.T) {
	total := 5
	s := historyServer(Deps{Reading: ReadingDeps{
		Analytics: func(context.Context, store.AnalyticsQuery) (store.AnalyticsResult, error) {
			return store.AnalyticsResult{TotalEvents: int64(total)}, nil
		},
		Forget: forgetterFunc(func(context.Context, string) (int64, error) { total -= 2; return 2, nil }),
	}})
	ask := func() (cache, body string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/analytics/metrics?timeRange=1h", nil)
		req.Header.Set("x-api-key", "evp_bench")
		s.Handler().ServeHTTP(rec, req)
		return rec.Header().Get("X-Cache"), rec.Body.String()
	}
	ask()
	if cache, body := ask(); cache != "HIT" || !strings.Contains(body, `"totalEvents":5`) {
		t.Fatalf("second ask: X-Cache=%s %s, want a HIT of 5", cache, body)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("DELETE", "/api/v1/users/u1/events", nil)
	req.SetPathValue("userId", "u1")
	if e := s.forgetUser(rec, req); e != nil || !strings.Contains(rec.Body.String(), `"deleted":2`) {
		t.Fatalf("forgetUser: %v %s", e, rec.Body.String())
	}
	if cache, body := ask(); cache != "MISS" || !strings.Contains(body, `"totalEvents":3`) {
		t.Fatalf("after the deletion: X-Cache=%s %s, want a MISS of 3", cache, body)
	}
}
