package mongostore

import (
	"fmt"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/testutil/ferret"
)

// BenchmarkInsertBatch100 stores 100-event batches of new events, as a worker does, against
// FerretDB (SQLite handler): it measures this store's round trips and encoding, not what a
// real MongoDB sustains.
func BenchmarkInsertBatch100(b *testing.B) {
	srv := ferret.Start(b)
	s, err := Open(ctx, Options{URI: srv.URI(), Database: "evpbench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	batch := make([]event.Event, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range batch {
			k := n*100 + i
			batch[i] = event.Event{EventID: fmt.Sprintf("bench_%09d", k), EventType: "page_view",
				UserID: fmt.Sprintf("user_%d", k%1000), SessionID: fmt.Sprintf("sess_%d", k%3000),
				Timestamp: now.Add(time.Duration(k) * time.Millisecond), Priority: 1, ReceivedAt: now,
				Metadata: []byte(`{"source":"web","appVersion":"2.14.1"}`)}
		}
		if ins, _, err := s.InsertBatch(ctx, batch, time.Now()); err != nil || ins != 100 {
			b.Fatalf("InsertBatch = %d, %v", ins, err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
