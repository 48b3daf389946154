package storetest

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// testForget deletes the busiest user's events (some in settled hours, some not, one the
// store's newest) and checks that nothing counts or shows them any more: the stored count
// and the per-type counts, analytics against brute force (the user alone in a minute, and
// with one other, exactly), the events explorer; that a second deletion finds nothing; and
// that events stored afterwards, one of them a forgotten event sent again, are stored and
// counted, through settling and retention.
func testForget(t *testing.T, s Store) {
	f, ok := s.(store.Forgetter)
	if !ok {
		t.Skip("the store does not forget users")
	}
	ctx := context.Background()
	const gone = "User_000" // the busiest user of the corpus
	at := func(id, user, session string, d time.Duration) event.Event {
		return event.Event{EventID: id, EventType: "signup", UserID: user, SessionID: session, Timestamp: base.Add(d), ReceivedAt: base, Priority: 1, Source: event.SourceAPI}
	}
	lone := at("f_lone", gone, "s_lone", -30*time.Minute)
	evs := append(Corpus(600, 23), lone, at("f_shared_a", gone, "s_a", -20*time.Minute), at("f_shared_b", "user_x", "s_b", -20*time.Minute))
	for i := 0; i < len(evs); i += 100 {
		insert(t, s, evs[i:min(i+100, len(evs))], min(100, len(evs)-i), 0)
		if st, ok := s.(Settler); ok && i == 300 {
			if err := st.Settle(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	newest := at("f_newest", gone, "s_newest", 2*time.Hour) // the last row stored
	insert(t, s, []event.Event{newest}, 1, 0)
	evs = append(evs, newest)
	var kept []event.Event
	for _, e := range evs {
		if e.UserID != gone {
			kept = append(kept, e)
		}
	}
	if len(evs)-len(kept) < 20 {
		t.Fatalf("corpus: %s has %d events, want a busy user", gone, len(evs)-len(kept))
	}

	// Dead letters: one of the user's events, one of another's, and an entry that does not
	// decode but names the user; the first and the last go.
	letter, err := event.Marshal(&event.Event{EventID: "f_dead", EventType: "click", UserID: gone, SessionID: "s", Timestamp: base, ReceivedAt: base, Priority: 1})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := event.Marshal(&evs[0])
	if err := s.DeadLetter(ctx, []store.DeadLetter{{EventID: "f_dead", Data: letter, Error: "x", Attempts: 3, FailedAt: base},
		{EventID: evs[0].EventID, Data: other, Error: "x", Attempts: 3, FailedAt: base},
		{Data: []byte(`{"userId":"` + gone + `",`), Error: "undecodable", Attempts: 1, FailedAt: base},
		{Data: []byte(`{"note":"` + gone + `",`), Error: "undecodable, names the user elsewhere", Attempts: 1, FailedAt: base}}); err != nil {
		t.Fatal(err)
	}
	n, err := f.ForgetUser(ctx, gone)
	if err != nil || n != int64(len(evs)-len(kept)+2) {
		t.Fatalf("ForgetUser(%s) = %d, %v; want %d events and 2 dead letters", gone, n, err, len(evs)-len(kept))
	}
	if dl, ok := s.(store.DeadLetters); ok {
		left, _, err := dl.ListDeadLetters(ctx, "", 10)
		if err != nil || len(left) != 2 || left[0].Error != "undecodable, names the user elsewhere" || left[1].EventID != evs[0].EventID {
			t.Fatalf("dead letters left: %+v, %v; want %s's and the one naming the user elsewhere", left, err, evs[0].UserID)
		}
	}
	checkForgotten(t, s, "forgotten", kept, gone, lone)
	if n, err := f.ForgetUser(ctx, gone); err != nil || n != 0 {
		t.Fatalf("ForgetUser again = %d, %v; want 0", n, err)
	}

	// Events stored afterwards count, the user's new ones included; so does a forgotten
	// event sent again (its id is free).
	more := []event.Event{at("f_after", gone, "s_after", time.Hour), at("f_after_b", "user_y", "s_y", time.Hour), lone}
	insert(t, s, more, len(more), 0)
	kept = append(kept, more...)
	checkForgotten(t, s, "more events", kept, "", event.Event{})
	if st, ok := s.(Settler); ok {
		if err := st.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		checkForgotten(t, s, "settled", kept, "", event.Event{})
	}
	if p, ok := s.(Pruner); ok {
		cut := base.Add(-25 * time.Minute) // lone goes, the rest stays
		if _, err := p.Prune(ctx, cut); err != nil {
			t.Fatal(err)
		}
		var left []event.Event
		for _, e := range kept {
			if !e.Timestamp.Before(cut) {
				left = append(left, e)
			}
		}
		checkForgotten(t, s, "after retention", left, "", event.Event{})
	}
}

// checkForgotten checks that the store holds and counts exactly want, and (when gone is
// set) nothing of gone, whose event lone was alone in its minute.
func checkForgotten(t *testing.T, s Store, stage string, want []event.Event, gone string, lone event.Event) {
	t.Helper()
	ctx := context.Background()
	if n := count(t, s); n != int64(len(want)) {
		t.Fatalf("%s: Count = %d, want %d", stage, n, len(want))
	}
	if tc, ok := s.(store.TypeCounter); ok {
		got, err := tc.CountByType(ctx)
		if err != nil {
			t.Fatal(err)
		}
		maps.DeleteFunc(got, func(_ string, n int64) bool { return n == 0 })
		byType := map[string]int64{}
		for _, e := range want {
			byType[e.EventType]++
		}
		if !maps.Equal(got, byType) {
			t.Fatalf("%s: CountByType = %v, want %v", stage, got, byType)
		}
	}
	start := minute(base)
	for _, c := range []struct {
		q     store.AnalyticsQuery
		exact bool
	}{
		{store.AnalyticsQuery{Start: start.Add(-time.Hour), End: start.Add(4 * time.Hour), Bucket: 5 * time.Minute}, false},
		{store.AnalyticsQuery{Start: start, End: start.Add(4 * time.Hour), Bucket: time.Hour, EventType: "click"}, true},
		{store.AnalyticsQuery{Start: start.Add(-time.Hour), End: start.Add(4 * time.Hour), Bucket: time.Hour, UserID: "user_000"}, true},
		{store.AnalyticsQuery{Start: start.Add(-30 * time.Minute), End: start.Add(-29 * time.Minute), Bucket: time.Minute}, true},
		{store.AnalyticsQuery{Start: start.Add(-20 * time.Minute), End: start.Add(-19 * time.Minute), Bucket: time.Minute}, true},
	} {
		if err := Compare(analytics(t, s, c.q), Expect(want, c.q), c.exact); err != nil {
			t.Fatalf("%s: %+v: %v", stage, c.q, err)
		}
	}
	r, ok := s.(store.EventReader)
	if !ok {
		return
	}
	all, _ := readAll(t, r, store.EventQuery{Limit: 100})
	checkRead(t, stage, all, want, store.EventQuery{})
	if gone == "" {
		return
	}
	if got, _ := readAll(t, r, store.EventQuery{UserID: gone}); len(got) != 0 {
		t.Fatalf("%s: %d events of %s read back", stage, len(got), gone)
	}
	if _, err := r.GetEvent(ctx, lone.EventID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: GetEvent(%s) = %v, want ErrNotFound", stage, lone.EventID, err)
	}
}
