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
)

// BenchmarkRollupCost measures what building the rollups costs the store's throughput:
// 100-event batches (FULL sync, 10,000 users, 10 types) with the rollup builder running as
// in evp (every second, and once more at the end so every event is covered) against the
// builder stopped.
func BenchmarkRollupCost(b *testing.B) {
	// The events' times advance 1 ms an event whatever the rate: at 200,000 events/s each second of inserts
	// covers over three minutes of event time, as a backfill would, and the builder
	// upserts a per-user row for every minute of it. "realtime" stamps events with the
	// wall clock, as live traffic is. workers-4 inserts from four goroutines as evp's four
	// workers do (the store serializes their transactions on its write connection, which
	// the builder shares).
	for _, v := range []struct {
		prefix   string
		workers  int
		realtime bool
	}{{"", 1, false}, {"workers-4/", 4, false}, {"realtime/workers-4/", 4, true}} {
		for _, rollups := range []bool{false, true} {
			name := v.prefix + "without-rollups"
			if rollups {
				name = v.prefix + "with-rollups"
			}
			b.Run(name, func(b *testing.B) { rollupCost(b, v.workers, v.realtime, rollups) })
		}
	}
}

func rollupCost(b *testing.B, workers int, realtime, rollups bool) {
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
	now := time.Now()
	var next atomic.Int64 // batches started
	var seqs atomic.Int64 // event numbers, so that workers' events differ
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			events := make([]event.Event, 100)
			for next.Add(1) <= int64(b.N) {
				seq := int(seqs.Add(int64(len(events)))) - len(events)
				fillBenchEvents(events, &seq, now, types, meta)
				if realtime {
					t := time.Now()
					for j := range events {
						events[j].Timestamp = t
					}
				}
				if _, _, err := st.InsertBatch(ctx, events, time.Now()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if rollups {
		if err := st.BuildRollups(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
