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

// BenchmarkInsertBatch measures 1000-event batches with the indexes evp keeps (unique
// event id + time) against fewer and more, which is how the index set was chosen.
func BenchmarkInsertBatch(b *testing.B) {
	variants := []struct {
		name  string
		setup string
	}{
		{"id-only", `DROP INDEX events_ts`},
		{"id+ts(evp)", ``},
		{"id+ts+type_ts", `CREATE INDEX events_type_ts ON events(event_type, ts)`},
		{"id+ts+user_ts", `CREATE INDEX events_user_ts ON events(user_id, ts)`},
	}
	for _, sync := range []sqlitedb.Sync{sqlitedb.SyncNormal, sqlitedb.SyncFull} {
		for _, v := range variants {
			b.Run(string(sync)+"/"+v.name, func(b *testing.B) {
				ctx := context.Background()
				st, err := Open(ctx, b.TempDir(), sync)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				if v.setup != "" {
					if _, err := st.DB().Exec(v.setup); err != nil {
						b.Fatal(err)
					}
				}
				const batch = 1000
				meta := json.RawMessage(`{"source":"web","browser":"chrome","version":"1.2.3"}`)
				payload := json.RawMessage(`{"page":"/products/42","referrer":"https://example.com/search?q=shoes","durationMs":1234}`)
				types := []string{"page_view", "click", "purchase", "signup", "login", "logout", "add_to_cart", "search", "share", "video_play"}
				events := make([]event.Event, batch)
				now := time.Now()
				seq := 0
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for j := range events {
						seq++
						events[j] = event.Event{
							EventID: event.NewID(), EventType: types[seq%len(types)],
							UserID: "user_" + strconv.Itoa((seq*7919)%100000), SessionID: "sess_" + strconv.Itoa(seq%50000),
							Timestamp: now.Add(time.Duration(seq) * time.Microsecond), Metadata: meta, Payload: payload,
							Priority: 1, ReceivedAt: now,
						}
					}
					if _, _, err := st.InsertBatch(ctx, events, now); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
