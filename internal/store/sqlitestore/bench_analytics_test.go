package sqlitestore

import (
	"context"
	"os"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

// BenchmarkAnalytics measures analytics queries on a store holding EVP_BENCH_EVENTS events
// (default 1,000,000) from 10,000 users and 10 types spread evenly over
// EVP_BENCH_SPAN_HOURS hours (default 24; 168 spreads them over the 7-day range), like
// `evp loadgen` traffic: a start on the stored events (reopen), and for each range and
// filter the first query after a start (first) and the following ones.
func BenchmarkAnalytics(b *testing.B) {
	n, span := benchSize(24 * time.Hour)
	ctx := context.Background()
	dir := b.TempDir()
	st, err := Open(ctx, dir, sqlitedb.SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { st.Close() }()
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-span)
	step := span / time.Duration(n)
	types := []string{"page_view", "click", "purchase", "signup", "login", "logout", "add_to_cart", "search", "share", "video_play"}
	// Each user sends one type (as in the figures of BENCHMARKS.md), or with
	// EVP_BENCH_RANDOM_TYPES=1 every type at random, as evp loadgen does.
	typeOf := func(i int) string { return types[i%len(types)] }
	if os.Getenv("EVP_BENCH_RANDOM_TYPES") == "1" {
		typeOf = func(i int) string { return types[(i*2654435761)>>7%len(types)] }
	}
	batch := make([]event.Event, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, event.Event{EventID: event.NewID(), EventType: typeOf(i),
			UserID: "user_" + strconv.Itoa((i*7919)%10000), SessionID: "sess_" + strconv.Itoa(i%50000),
			Timestamp: start.Add(time.Duration(i) * step), Priority: 1, ReceivedAt: end})
		if len(batch) == cap(batch) || i == n-1 {
			if _, _, err := st.InsertBatch(ctx, batch, time.Now()); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	reopen := func(b *testing.B) {
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if st, err = Open(ctx, dir, sqlitedb.SyncNormal); err != nil {
			b.Fatal(err)
		}
	}
	reopen(b) // seals and persists the head
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.Logf("after a start: heap in use %.1f MB", float64(ms.HeapInuse)/(1<<20))
	b.Run("reopen", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			reopen(b)
		}
	})
	for _, r := range []struct {
		name   string
		span   time.Duration
		bucket time.Duration
	}{{"15m", 15 * time.Minute, time.Minute}, {"1h", time.Hour, time.Minute}, {"24h", 24 * time.Hour, 30 * time.Minute}, {"7d", 7 * 24 * time.Hour, 3 * time.Hour}} {
		// No filter; one event type; one user id; a user id substring matching 111 users
		// (user_12, user_120-129, user_1200-1299); one matching every user; a type and a
		// user id together.
		for _, f := range []struct{ name, eventType, userID string }{
			{"all", "", ""}, {"eventType", "click", ""}, {"userId-one", "", "user_1234"}, {"userId-111", "", "user_12"},
			{"userId-all", "", "user"}, {"both", "click", "user_12"},
		} {
			q := store.AnalyticsQuery{Start: end.Add(-r.span), End: end, Bucket: r.bucket, EventType: f.eventType, UserID: f.userID}
			b.Run(r.name+"/"+f.name, func(b *testing.B) {
				var lat latencies
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, err := st.Analytics(ctx, q); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				lat.report(b)
			})
			b.Run(r.name+"/"+f.name+"-first", func(b *testing.B) {
				var lat latencies
				for i := 0; i < b.N; i++ {
					reopen(b)
					t0 := time.Now()
					if _, err := st.Analytics(ctx, q); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				lat.report(b)
			})
		}
	}
}

// benchSize is how many events a store benchmark stores (EVP_BENCH_EVENTS, default
// 1,000,000) and over how long (EVP_BENCH_SPAN_HOURS, default span).
func benchSize(span time.Duration) (int, time.Duration) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("EVP_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("EVP_BENCH_SPAN_HOURS")); err == nil && v > 0 {
		span = time.Duration(v) * time.Hour
	}
	return n, span
}

// latencies are the durations of a benchmark's operations, reported as their median and
// 95th percentile in milliseconds (the mean, ns/op, hides a slow first query).
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(l[len(l)/2]), "p50-ms")
	b.ReportMetric(ms(l[min(len(l)-1, len(l)*95/100)]), "p95-ms")
}
