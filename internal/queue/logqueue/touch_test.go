package logqueue

import (
	"context"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/queue"
)

// Touch keeps an entry with its worker past the claim timeout.
func TestTouchKeepsEntryInFlight(t *testing.T) {
	const idle = 500 * time.Millisecond
	ctx := context.Background()
	q := open(t, t.TempDir(), Options{ClaimIdle: idle})
	if err := q.Enqueue(ctx, []queue.Entry{{EventID: "a", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	first, err := q.Fetch(ctx, 10, time.Second)
	if err != nil || len(first) != 1 {
		t.Fatalf("Fetch = %d, %v", len(first), err)
	}
	for end := time.Now().Add(3 * idle); time.Now().Before(end); {
		if err := q.Touch(ctx, []int64{first[0].ID}); err != nil {
			t.Fatal(err)
		}
		if got, _ := q.Fetch(ctx, 10, 0); len(got) != 0 {
			t.Fatalf("a touched entry was delivered again: %+v", got)
		}
		time.Sleep(idle / 5)
	}
	time.Sleep(idle + 100*time.Millisecond) // no more touches: claimable again
	got, err := q.Fetch(ctx, 10, 0)
	if err != nil || len(got) != 1 || got[0].ID != first[0].ID {
		t.Fatalf("after touches stopped: %+v, %v; want the entry again", got, err)
	}
}
