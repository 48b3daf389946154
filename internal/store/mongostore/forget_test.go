package mongostore

import (
	"context"
	"fmt"
	"sync"
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

// Two deletions of one user at once (two processes) delete each event once between them
// and lower the counts by exactly what each deleted.
func TestForgetTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	a, srv := openTest(t)
	b := openOn(t, srv, "evptest")
	at := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := range 1000 {
		user := "busy"
		if i%5 == 0 {
			user = "other"
		}
		evs = append(evs, event.Event{EventID: fmt.Sprintf("t%d", i), EventType: []string{"click", "view"}[i%2], UserID: user, SessionID: "s",
			Timestamp: at.Add(time.Duration(i) * time.Second), ReceivedAt: at, Priority: 1})
	}
	for i := 0; i < len(evs); i += 250 {
		if _, _, err := a.InsertBatch(ctx, evs[i:i+250], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var na, nb int64
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); na, ea = a.ForgetUser(ctx, "busy") }()
	go func() { defer wg.Done(); nb, eb = b.ForgetUser(ctx, "busy") }()
	wg.Wait()
	if ea != nil || eb != nil || na+nb != 800 {
		t.Fatalf("deleted %d + %d (%v, %v), want 800 between them", na, nb, ea, eb)
	}
	res, err := a.Analytics(ctx, store.AnalyticsQuery{Start: at, End: at.Add(time.Hour), Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalEvents != 200 || res.UniqueUsers != 1 {
		t.Fatalf("after: %d events, %d users; want 200 of one user", res.TotalEvents, res.UniqueUsers)
	}
}
