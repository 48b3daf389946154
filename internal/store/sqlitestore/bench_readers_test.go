package sqlitestore

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
	"github.com/evp-dev/evp/internal/store"
)

// BenchmarkInsertWhileQuerying measures 100-event batch inserts (FULL sync) while another
// goroutine runs filtered analytics queries over the last hour without pause. The inserts
// should be slowed by the CPU the queries take, not stopped while a query holds a lock.
func BenchmarkInsertWhileQuerying(b *testing.B) {
	ctx := context.Background()
	st, err := Open(ctx, b.TempDir(), sqlitedb.SyncFull)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	meta := json.RawMessage(`{"source":"web"}`)
	types := []string{"page_view", "click", "purchase", "signup", "login"}
	now := time.Now().Add(-30 * time.Minute)
	events := make([]event.Event, 1000)
	seq := 0
	for i := 0; i < 200; i++ { // 200,000 events in the hour queried
		fillBenchEvents(events, &seq, now, types, meta)
		if _, _, err := st.InsertBatch(ctx, events, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	end := time.Now().Truncate(time.Minute).Add(time.Minute)
	q := store.AnalyticsQuery{Start: end.Add(-time.Hour), End: end, Bucket: time.Minute, UserID: "user_1"}
	var stop atomic.Bool
	var queries atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if _, err := st.Analytics(ctx, q); err != nil {
				b.Error(err)
				return
			}
			queries.Add(1)
		}
	})
	events = events[:100]
	var slowest time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fillBenchEvents(events, &seq, now, types, meta)
		t0 := time.Now()
		if _, _, err := st.InsertBatch(ctx, events, time.Now()); err != nil {
			b.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(queries.Load())/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64(slowest)/float64(time.Millisecond), "slowest-insert-ms")
}
