package mongostore

import (
	"context"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// A deletion through one Store reaches the sketches another Store (another worker) keeps
// in memory: that one's next write to the same minute does not put the user back.
func TestForgetReachesAnotherWritersSketches(t *testing.T) {
	ctx := context.Background()
	a, srv := openTest(t)
	b := openOn(t, srv, "evptest")
	at := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	ev := func(id, user string) event.Event {
		return event.Event{EventID: id, EventType: "click", UserID: user, SessionID: "s_" + user, Timestamp: at.Add(10 * time.Second), ReceivedAt: at, Priority: 1}
	}
	if _, _, err := a.InsertBatch(ctx, []event.Event{ev("e1", "gone"), ev("e2", "kept")}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ForgetUser(ctx, "gone"); err != nil || n != 1 {
		t.Fatalf("ForgetUser = %d, %v; want 1", n, err)
	}
	if _, _, err := a.InsertBatch(ctx, []event.Event{ev("e3", "other")}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.AnalyticsQuery{
		{Start: at, End: at.Add(time.Minute), Bucket: time.Minute},
		{Start: at.Add(-6 * time.Minute), End: at.Add(54 * time.Minute), Bucket: time.Hour}, // the hour's sketch
	} {
		res, err := b.Analytics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if res.TotalEvents != 2 || res.UniqueUsers != 2 || res.UniqueSessions != 2 {
			t.Fatalf("%v..%v: %d events, %d users, %d sessions; want 2, 2, 2", q.Start, q.End, res.TotalEvents, res.UniqueUsers, res.UniqueSessions)
		}
	}
}
