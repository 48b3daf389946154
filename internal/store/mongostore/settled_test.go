package mongostore

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

func wholeRange() store.AnalyticsQuery {
	q := whole
	q.End = q.Start.Add(2 * time.Hour)
	return q
}

func analyze(t *testing.T, s *Store, q store.AnalyticsQuery) store.AnalyticsResult {
	t.Helper()
	res, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatalf("Analytics: %v", err)
	}
	return res
}

// An answer read while a call is registered is unsettled; once none is, it is settled. A
// userId-filtered answer, one pass over the raw events, is settled either way.
func TestAnalyticsUnsettledWhileACallIsRegistered(t *testing.T) {
	s, _ := openTest(t)
	insertOK(t, s, batch(0, 20), 20, 0)
	if res := analyze(t, s, wholeRange()); res.Unsettled || res.TotalEvents != 20 {
		t.Fatalf("quiet store: Unsettled=%v total=%d, want settled 20", res.Unsettled, res.TotalEvents)
	}
	// Another process's call, registered and not yet finished (too young to be recovered).
	tok := fmt.Sprintf("%016x-%s-%d", uint64(time.Now().UnixNano()), "otherwriter00001", 1)
	if _, err := s.pending.InsertOne(ctx, bson.D{{Key: "_id", Value: tok}}); err != nil {
		t.Fatal(err)
	}
	if res := analyze(t, s, wholeRange()); !res.Unsettled {
		t.Error("a call registered: answer settled, want unsettled")
	}
	byUser := wholeRange()
	byUser.UserID = "user_1"
	if res := analyze(t, s, byUser); res.Unsettled {
		t.Error("userId filter: answer unsettled, want settled")
	}
	if _, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: tok}}); err != nil {
		t.Fatal(err)
	}
	if res := analyze(t, s, wholeRange()); res.Unsettled {
		t.Error("no call registered: answer unsettled, want settled")
	}
}

// A call that starts and finishes between the two reads of writeState changes the finished
// count, so that Analytics sees it.
func TestFinishedCallsAreCounted(t *testing.T) {
	s, _ := openTest(t)
	before, err := s.writeState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insertOK(t, s, batch(0, 5), 5, 0)
	insertOK(t, s, batch(0, 5), 0, 5) // all duplicates: it still ran, and is counted
	after, err := s.writeState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.pending || after.finished != before.finished+2 {
		t.Errorf("writeState %+v then %+v, want 2 more finished and none pending", before, after)
	}
}

// A call that died before its sketches: the recovery adds its users and sessions.
func TestRecoveryAddsTheSketchesOfACrashedCall(t *testing.T) {
	s, _ := openTest(t)
	var evs []event.Event
	for i := range 12 {
		e := batch(i, i+1)[0]
		e.UserID, e.SessionID = fmt.Sprintf("ghost_%d", i), fmt.Sprintf("ghost_sess_%d", i%4)
		evs = append(evs, e)
	}
	crashAfterInsert(t, s, evs, oldToken("deadwriter0000009"))
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	res := analyze(t, s, wholeRange())
	if res.Unsettled || res.TotalEvents != 12 || res.UniqueUsers != 12 || res.UniqueSessions != 4 {
		t.Errorf("after recovery: Unsettled=%v total=%d users=%d sessions=%d, want settled 12, 12, 4",
			res.Unsettled, res.TotalEvents, res.UniqueUsers, res.UniqueSessions)
	}
}
