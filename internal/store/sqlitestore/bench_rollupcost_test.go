package sqlitestore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/sqlitedb"
)

// BenchmarkRollupCost measures what building the rollups costs the store's throughput:
// 100-event batches (FULL sync, 10,000 users, 10 types) with the rollup builder running as
// in evp (every second, and once more at the end so every event is covered) against the
// builder stopped.
func BenchmarkRollupCost(b *testing.B) {
	for _, rollups := range []bool{false, true} {
		name := "without-rollups"
		if rollups {
			name = "with-rollups"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := Open(ctx, b.TempDir(), sqlitedb.SyncFull)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if !rollups {
				close(st.mem.stop)
				<-st.mem.done
				st.mem.stop = nil
			}
			meta := json.RawMessage(`{"source":"web","browser":"chrome"}`)
			types := []string{"page_view", "click", "purchase", "signup", "login", "logout", "add_to_cart", "search", "share", "video_play"}
			events := make([]event.Event, 100)
			now := time.Now()
			seq := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fillBenchEvents(events, &seq, now, types, meta)
				if _, _, err := st.InsertBatch(ctx, events, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			if rollups {
				if err := st.BuildRollups(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
