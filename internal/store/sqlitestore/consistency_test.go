package sqlitestore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evp-dev/evp/internal/event"
	"github.com/evp-dev/evp/internal/store"
)

// stopAnalytics stops the background feed and sealing, so that events reach the engine
// only when a query asks (Close then only closes the databases).
func (s *Store) stopAnalytics() {
	if s.an.stop != nil {
		close(s.an.stop)
		<-s.an.done
		s.an.stop = nil
	}
}

// stateT0 is where the stateBatch events begin: they fall in 10:00-12:40.
var stateT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// stateQueries cover whole hours (10:00-12:00, from block headers once sealed) and minutes
// at both edges.
var stateQueries = []store.AnalyticsQuery{
	{Start: stateT0.Add(-15 * time.Minute), End: stateT0.Add(170 * time.Minute), Bucket: 5 * time.Minute},
	{Start: stateT0.Add(-15 * time.Minute), End: stateT0.Add(170 * time.Minute), Bucket: 5 * time.Minute, UserID: "top"},
	{Start: stateT0.Add(-15 * time.Minute), End: stateT0.Add(170 * time.Minute), Bucket: 5 * time.Minute, EventType: "view"},
}

// stateBatch returns batch k (from 1): 20 new users with one "view" event each and a new
// user top<k> with 20+k "click" events, in 10 new sessions. After batches 1..j, every
// figure is known: top<j> leads topUsers, and each batch adds 21 users and 10 sessions, so
// a distinct count that misses a batch the totals hold is far from what they imply.
func stateBatch(k int) []event.Event {
	var out []event.Event
	add := func(i int, typ, user string) {
		off := time.Duration((k*37+i*53)%160)*time.Minute + time.Duration(i)*time.Second
		out = append(out, event.Event{EventID: fmt.Sprintf("b%d-%d", k, i), EventType: typ, UserID: user,
			SessionID: fmt.Sprintf("s%d_%d", k, i%10), Timestamp: stateT0.Add(off), ReceivedAt: stateT0})
	}
	for i := 0; i < 20; i++ {
		add(i, "view", fmt.Sprintf("u%d_%d", k, i))
	}
	for i := 20; i < 40+k; i++ {
		add(i, "click", fmt.Sprintf("top%d", k))
	}
	return out
}

// stateOf returns the j for which ans is the answer of q after batches 1..j, or an error
// naming the figure that belongs to no such state.
func stateOf(q store.AnalyticsQuery, ans store.AnalyticsResult) (int, error) {
	perBatch := func(k int) (events, users, sessions int64) {
		switch {
		case q.UserID != "":
			return int64(20 + k), 1, 10
		case q.EventType != "":
			return 20, 20, 10
		}
		return int64(40 + k), 21, 10
	}
	var total, users, sessions int64
	for j := 0; total <= ans.TotalEvents; j++ {
		if total == ans.TotalEvents {
			// Distinct users are exact with a filter; the sketches are exact or within one
			// at these numbers.
			tol := int64(1)
			if q.UserID != "" || q.EventType != "" {
				tol = 0
			}
			if d := ans.UniqueUsers - users; d < -tol || d > tol {
				return j, fmt.Errorf("totalEvents %d (batches 1..%d) with uniqueUsers %d, want %d", ans.TotalEvents, j, ans.UniqueUsers, users)
			}
			// Distinct sessions are estimates with a filter too (within 2 % here).
			if d, tol := ans.UniqueSessions-sessions, sessions/50+1; d < -tol || d > tol {
				return j, fmt.Errorf("totalEvents %d (batches 1..%d) with uniqueSessions %d, want %d", ans.TotalEvents, j, ans.UniqueSessions, sessions)
			}
			if q.EventType == "" && j > 0 {
				want := fmt.Sprintf("top%d", j)
				if len(ans.TopUsers) == 0 || ans.TopUsers[0].UserID != want || ans.TopUsers[0].EventCount != int64(20+j) {
					return j, fmt.Errorf("totalEvents %d (batches 1..%d) with topUsers %v, want %s first with %d events", ans.TotalEvents, j, ans.TopUsers, want, 20+j)
				}
			}
			return j, nil
		}
		e, u, s := perBatch(j + 1)
		total, users, sessions = total+e, users+u, sessions+s
	}
	return -1, fmt.Errorf("totalEvents %d is no number of whole batches", ans.TotalEvents)
}

// Every answer covers every batch stored before it, whether its hours are in the head or
// in sealed blocks, and each figure the same batches.
func TestAnalyticsFiguresShareOneState(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	s.stopAnalytics()
	check := func(step string, want int) {
		t.Helper()
		for _, q := range stateQueries {
			ans, err := s.Analytics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			j, err := stateOf(q, ans)
			if err != nil {
				t.Fatalf("%s, query %+v: %v", step, q, err)
			}
			if j != want {
				t.Fatalf("%s, query %+v: the answer of batches 1..%d, want 1..%d", step, q, j, want)
			}
		}
	}
	for k := 1; k <= 4; k++ {
		insert(t, s, stateBatch(k), 40+k, 0)
		check(fmt.Sprintf("batch %d stored", k), k)
		if err := s.seal(ctx, k%2 == 0); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("batch %d sealed", k), k)
	}
}

// Queries answered while batches are stored and built see whole batches only: every
// figure of each answer belongs to one number of batches, which never goes back.
func TestAnalyticsWhileInserting(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const batches = 50
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for k := 1; k <= batches; k++ {
			if _, _, err := s.InsertBatch(ctx, stateBatch(k), time.Now()); err != nil {
				t.Error(err)
				return
			}
			// Seals between queries too, as the background pass may.
			if err := s.seal(ctx, k%3 == 0); err != nil {
				t.Error(err)
				return
			}
		}
	})
	seen := make([]int, len(stateQueries))
	query := func() error {
		for i, q := range stateQueries {
			ans, err := s.Analytics(ctx, q)
			if err != nil {
				return err
			}
			j, err := stateOf(q, ans)
			if err != nil {
				return fmt.Errorf("query %+v: %w", q, err)
			}
			if j < seen[i] {
				return fmt.Errorf("query %+v: the answer of batches 1..%d after one of 1..%d", q, j, seen[i])
			}
			seen[i] = j
		}
		return nil
	}
	var err error
	for running := true; running && err == nil; {
		select {
		case <-done:
			running = false
		default:
		}
		err = query()
	}
	wg.Wait()
	if err == nil {
		err = query()
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range seen {
		if j != batches {
			t.Errorf("query %+v: the answer of batches 1..%d after every batch was stored, want 1..%d", stateQueries[i], j, batches)
		}
	}
}

// A filtered query's top user gets the time of the newest matching event, whether it is in a
// sealed block or in the head.
func TestFilteredLastEventIsCounted(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	s.stopAnalytics()
	ev := func(id, typ string, at time.Duration) event.Event {
		return event.Event{EventID: id, EventType: typ, UserID: "x", SessionID: "s", Timestamp: stateT0.Add(at), ReceivedAt: stateT0}
	}
	insert(t, s, []event.Event{ev("a", "click", 5*time.Minute+10*time.Second), ev("b", "view", 30*time.Minute)}, 2, 0)
	if err := s.feed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(ctx, true); err != nil {
		t.Fatal(err)
	}
	insert(t, s, []event.Event{ev("c", "click", 5*time.Minute+50*time.Second)}, 1, 0) // in the head
	q := store.AnalyticsQuery{Start: stateT0, End: stateT0.Add(time.Hour), Bucket: 5 * time.Minute, EventType: "click"}
	ans, err := s.Analytics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := stateT0.Add(5*time.Minute + 50*time.Second)
	if ans.TotalEvents != 2 || len(ans.TopUsers) != 1 || ans.TopUsers[0].EventCount != 2 || !ans.TopUsers[0].LastEventAt.Equal(want) {
		t.Fatalf("totalEvents %d, topUsers %+v; want 2 events, x with 2 events, the last at %v", ans.TotalEvents, ans.TopUsers, want)
	}
}

// queryPlan returns SQLite's plan of query with args, one step a line joined by "; ".
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}

// The feed reads the events after the engine's by seq, not by a scan or through the time
// index; retention finds the events before its cut-off through events_hour.
func TestQueriesUseTheirIndexes(t *testing.T) {
	s := openStore(t, t.TempDir())
	if p := queryPlan(t, s, readRowsSQL, 0, 1); !strings.Contains(p, "SEARCH events USING INTEGER PRIMARY KEY") {
		t.Errorf("plan %q does not read events by seq", p)
	}
	if p := queryPlan(t, s, `SELECT seq FROM events WHERE `+pruneWhere, 5, 5*hourNs, int64(placeholderTS), 10); !strings.Contains(p, "USING INDEX events_hour") {
		t.Errorf("retention's plan %q does not use events_hour", p)
	}
}
