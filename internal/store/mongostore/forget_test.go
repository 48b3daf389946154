package mongostore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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

// Two deletions of one user at once (two processes): one runs, the other is refused, and
// the counts go down by exactly what was deleted; a lock left by a dead deletion is taken
// over once expired.
func TestForgetTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	a, srv := openTest(t)
	b := openOn(t, srv, "evptest")
	at := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := range 2500 {
		user := "busy"
		if i%5 == 0 {
			user = "other"
		}
		evs = append(evs, event.Event{EventID: fmt.Sprintf("t%d", i), EventType: []string{"click", "view"}[i%2], UserID: user, SessionID: "s",
			Timestamp: at.Add(time.Duration(i) * time.Second), ReceivedAt: at, Priority: 1})
	}
	for i := 0; i < len(evs); i += 500 {
		if _, _, err := a.InsertBatch(ctx, evs[i:i+500], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// A lock left by a deletion that died.
	_, release, ok, err := a.lockUser(ctx, "busy")
	if err != nil || !ok {
		t.Fatalf("lockUser = %v, %v", ok, err)
	}
	if n, err := b.ForgetUser(ctx, "busy"); n != 0 || !errors.Is(err, store.ErrForgetRunning) {
		t.Fatalf("ForgetUser while locked = %d, %v; want ErrForgetRunning", n, err)
	}
	if _, err := a.writes.UpdateMany(ctx, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: time.Now().Add(-time.Second)}}}}); err != nil {
		t.Fatal(err)
	}
	_ = release // the dead deletion never releases it
	var wg sync.WaitGroup
	var na, nb int64
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); na, ea = a.ForgetUser(ctx, "busy") }()
	go func() { defer wg.Done(); nb, eb = b.ForgetUser(ctx, "busy") }()
	wg.Wait()
	if na+nb != 2000 || (ea == nil) == (eb == nil) || !errors.Is(errors.Join(ea, eb), store.ErrForgetRunning) {
		t.Fatalf("deleted %d + %d (%v, %v), want 2000 by one and the other refused", na, nb, ea, eb)
	}
	res, err := a.Analytics(ctx, store.AnalyticsQuery{Start: at, End: at.Add(time.Hour), Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalEvents != 500 || res.UniqueUsers != 1 {
		t.Fatalf("after: %d events, %d users; want 500 of one user", res.TotalEvents, res.UniqueUsers)
	}
}
