package redisqueue

import (
	"context"
	"testing"
	"time"
)

// A consumer that touches its entries keeps them past ClaimIdle, and the touches do not
// count as deliveries.
func TestTouchKeepsEntriesFromOtherConsumers(t *testing.T) {
	const idle = 500 * time.Millisecond
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	busy := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "busy", ClaimIdle: idle})
	other := open(t, Options{Client: c, KeyPrefix: prefix, Consumer: "other", ClaimIdle: idle})
	if err := busy.Enqueue(ctx, entries("t", 3)); err != nil {
		t.Fatal(err)
	}
	taken := fetchAll(t, busy, 3, time.Second)
	ids := make([]int64, len(taken))
	for i, m := range taken {
		ids[i] = m.ID
	}
	for end := time.Now().Add(3 * idle); time.Now().Before(end); {
		if err := busy.Touch(ctx, ids); err != nil {
			t.Fatal(err)
		}
		if msgs, err := other.Fetch(ctx, 10, 20*time.Millisecond); err != nil || len(msgs) != 0 {
			t.Fatalf("other consumer got %d touched entries (%v)", len(msgs), err)
		}
		time.Sleep(idle / 5)
	}
	// Touches stopped: the other consumer claims them, counting one earlier delivery.
	var got int
	for deadline := time.Now().Add(5 * time.Second); got < 3 && time.Now().Before(deadline); {
		msgs, err := other.Fetch(ctx, 10, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Attempts != 1 {
				t.Errorf("claimed %s with Attempts %d, want 1 (touches are not deliveries)", m.EventID, m.Attempts)
			}
		}
		got += len(msgs)
	}
	if got != 3 {
		t.Fatalf("other consumer claimed %d of 3 after the touches stopped", got)
	}
}
