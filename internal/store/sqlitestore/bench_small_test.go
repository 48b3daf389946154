package sqlitestore

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
)

// BenchmarkInsertSmallBatches measures the batch sizes the workers see under single-event
// load (FULL sync, evp's indexes and rollups): the per-batch costs dominate there.
func BenchmarkInsertSmallBatches(b *testing.B) {
	for _, batch := range []int{10, 100} {
		b.Run("batch"+strconv.Itoa(batch), func(b *testing.B) {
			ctx := context.Background()
			st, err := Open(ctx, b.TempDir(), sqlitedb.SyncFull)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			meta := json.RawMessage(`{"source":"web"}`)
			types := []string{"page_view", "click", "purchase", "signup", "login"}
			events := make([]event.Event, batch)
			now := time.Now()
			seq := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fillBenchEvents(events, &seq, now, types, meta)
				if _, _, err := st.InsertBatch(ctx, events, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// fillBenchEvents fills events with the next ones after *seq: 10,000 users, 50,000 sessions,
// the types in turn, a millisecond apart from now.
func fillBenchEvents(events []event.Event, seq *int, now time.Time, types []string, meta json.RawMessage) {
	for j := range events {
		*seq++
		n := *seq
		events[j] = event.Event{EventID: event.NewID(), EventType: types[n%len(types)],
			UserID: "user_" + strconv.Itoa((n*7919)%10000), SessionID: "sess_" + strconv.Itoa(n%50000),
			Timestamp: now.Add(time.Duration(n) * time.Millisecond), Metadata: meta, Priority: 1, ReceivedAt: now}
	}
}
