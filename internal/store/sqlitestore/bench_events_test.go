package sqlitestore

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

// BenchmarkEvents measures the events explorer's reads (store.EventReader) on a store
// holding EVP_BENCH_EVENTS events (default 1,000,000) from 10,000 users, 50,000 sessions
// and 10 types spread evenly over EVP_BENCH_SPAN_HOURS hours (default 168), each with a
// page property of 50 values and a small payload (and one user seen only three days ago):
// the first page of 50 for each filter,
// as GET /api/v1/events asks it (a 0.5 s budget), and an export of one hour.
func BenchmarkEvents(b *testing.B) {
	st, end := explorerStore(b)
	ctx := context.Background()
	prop := func(v string) []store.PropCond {
		return []store.PropCond{{Field: "metadata", Path: []string{"page"}, Value: v}}
	}
	for _, c := range []struct {
		name string
		q    store.EventQuery
	}{
		{"all", store.EventQuery{}},
		{"1h", store.EventQuery{From: end.Add(-time.Hour)}},
		{"24h-ago-1h", store.EventQuery{From: end.Add(-25 * time.Hour), To: end.Add(-24 * time.Hour)}},
		{"eventType", store.EventQuery{EventType: "click"}},
		{"userId", store.EventQuery{UserID: "user_1234"}},
		{"userId-rare", store.EventQuery{UserID: "user_rare"}},
		{"sessionId", store.EventQuery{SessionID: "sess_4321"}},
		{"sessionId-rare", store.EventQuery{SessionID: "sess_rare"}},
		{"prop-24h", store.EventQuery{From: end.Add(-24 * time.Hour), Props: prop("/p7")}},
		{"prop-24h-none", store.EventQuery{From: end.Add(-24 * time.Hour), Props: prop("/nowhere")}},
	} {
		c.q.Limit, c.q.Budget = 50, 500*time.Millisecond
		b.Run("page/"+c.name, func(b *testing.B) {
			var lat latencies
			got := 0
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := st.ScanEvents(ctx, c.q, func(*store.StoredEvent) bool { got++; return true }); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			lat.report(b)
			b.ReportMetric(float64(got)/float64(b.N), "events/page")
		})
	}
	b.Run("export-1h", func(b *testing.B) {
		got := 0
		for i := 0; i < b.N; i++ {
			q := store.EventQuery{From: end.Add(-2 * time.Hour), To: end.Add(-time.Hour)}
			if _, err := st.ScanEvents(ctx, q, func(*store.StoredEvent) bool { got++; return true }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "events/s")
	})
}

// explorerStore opens a store holding BenchmarkEvents' events (the store is closed and
// opened again, as after a restart) and returns it with the end of their span.
func explorerStore(b *testing.B) (*Store, time.Time) {
	n, span := benchSize(168 * time.Hour)
	ctx := context.Background()
	dir := b.TempDir()
	st, err := Open(ctx, dir, sqlitedb.SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-span)
	step := span / time.Duration(n)
	types := []string{"page_view", "click", "purchase", "signup", "login", "logout", "add_to_cart", "search", "share", "video_play"}
	pay := json.RawMessage(`{"orderId":"ord_000042","amount":129.99,"currency":"EUR","items":3}`)
	batch := make([]event.Event, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, event.Event{EventID: event.NewID(), EventType: types[i%len(types)],
			UserID: "user_" + strconv.Itoa((i*7919)%10000), SessionID: "sess_" + strconv.Itoa(i%50000),
			Timestamp: start.Add(time.Duration(i) * step), Priority: 1, ReceivedAt: end,
			Metadata: json.RawMessage(`{"page":"/p` + strconv.Itoa(i%50) + `","source":"web"}`), Payload: pay, Source: event.SourceAPI})
		if len(batch) == cap(batch) || i == n-1 {
			if _, _, err := st.InsertBatch(ctx, batch, time.Now()); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// A user seen only three days ago: 50 events in one hour, in one session.
	rare := make([]event.Event, 50)
	for i := range rare {
		rare[i] = event.Event{EventID: event.NewID(), EventType: "login", UserID: "user_rare", SessionID: "sess_rare",
			Timestamp: end.Add(-72*time.Hour + time.Duration(i)*time.Minute), Priority: 1, ReceivedAt: end}
	}
	if _, _, err := st.InsertBatch(ctx, rare, time.Now()); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if st, err = Open(ctx, dir, sqlitedb.SyncNormal); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, end
}

// BenchmarkForget measures deleting every event of one user (store.Forgetter) on
// BenchmarkEvents' store: one of its 10,000 users (n/10,000 events spread over the span),
// and a user whose 50 events are in one hour three days ago; with the longest an analytics
// query took meanwhile (the engine rebuilds the user's hours under the feed's lock).
func BenchmarkForget(b *testing.B) {
	st, end := explorerStore(b)
	ctx := context.Background()
	q := store.AnalyticsQuery{Start: end.Add(-24 * time.Hour), End: end, Bucket: time.Hour}
	for _, c := range []struct {
		name string
		user func(i int) string // made ready before the timed deletion
	}{
		{"busy-user", func(i int) string { return "user_" + strconv.Itoa(i) }},
		{"one-hour-user", func(i int) string {
			user := "user_hour_" + strconv.Itoa(i)
			evs := make([]event.Event, 50)
			for j := range evs {
				evs[j] = event.Event{EventID: event.NewID(), EventType: "login", UserID: user, SessionID: user,
					Timestamp: end.Add(-72*time.Hour + time.Duration(j)*time.Minute), Priority: 1, ReceivedAt: end}
			}
			if _, _, err := st.InsertBatch(ctx, evs, time.Now()); err != nil {
				b.Fatal(err)
			}
			return user
		}},
	} {
		next := 0 // a user not deleted yet, whatever b.N the runs before took
		b.Run(c.name, func(b *testing.B) {
			var lat latencies
			var worst time.Duration
			deleted := int64(0)
			for i := 0; i < b.N; i++ {
				user := c.user(next)
				next++
				if _, err := st.Analytics(ctx, q); err != nil { // fed, as a running store is
					b.Fatal(err)
				}
				done := make(chan struct{})
				asked := make(chan time.Duration)
				go func() {
					var w time.Duration
					for {
						select {
						case <-done:
							asked <- w
							return
						default:
						}
						t0 := time.Now()
						if _, err := st.Analytics(ctx, q); err != nil {
							panic(err)
						}
						w = max(w, time.Since(t0))
					}
				}()
				t0 := time.Now()
				n, err := st.ForgetUser(ctx, user)
				lat = append(lat, time.Since(t0))
				close(done)
				worst = max(worst, <-asked)
				if err != nil || n == 0 {
					b.Fatalf("ForgetUser(%s) = %d, %v", user, n, err)
				}
				deleted += n
			}
			lat.report(b)
			b.ReportMetric(float64(deleted)/float64(b.N), "events/op")
			b.ReportMetric(float64(worst)/float64(time.Millisecond), "analytics-max-ms")
		})
	}
}
