package worker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
	"github.com/evp-dev/evp/internal/queue/logqueue"
)

// TestLingerFillsPartialBatch: an entry that arrives alone waits, up to BatchLinger, for
// more, and the batch is stored as soon as it is full; without a linger each arrival is
// stored by itself.
func TestLingerFillsPartialBatch(t *testing.T) {
	for _, tc := range []struct {
		linger time.Duration
		want   [][]string
	}{
		{time.Minute, [][]string{{"evt_1", "evt_2", "evt_3"}}},
		{0, [][]string{{"evt_1"}, {"evt_2", "evt_3"}}},
	} {
		t.Run(fmt.Sprint("linger ", tc.linger), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q, err := logqueue.Open(ctx, t.TempDir(), logqueue.Options{NoFsync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			enqueue := func(ids ...int) {
				var entries []queue.Entry
				for _, id := range ids {
					m := msg(t, 0, fmt.Sprintf("evt_%d", id), 0)
					entries = append(entries, queue.Entry{EventID: m.EventID, Data: m.Data})
				}
				if err := q.Enqueue(ctx, entries); err != nil {
					t.Fatal(err)
				}
			}
			st := newFakeStore()
			p := newPool(t, Config{BatchSize: 3, BatchLinger: tc.linger, Concurrency: 1}, q, st)
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()

			enqueue(1)
			waitFor(t, "the first entry fetched", func() bool { // the worker holds it, or has stored it
				s, err := q.Stats(ctx)
				return err == nil && s.Pending == 1 || len(st.insertIDs()) > 0
			})
			enqueue(2, 3)
			waitFor(t, "three events stored", func() bool { return len(slices.Concat(st.insertIDs()...)) == 3 })
			cancel()
			<-done

			if got := st.insertIDs(); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("stored in batches %q, want %q", got, tc.want)
			}
		})
	}
}
